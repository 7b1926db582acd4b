/* Heroku's codes: one table in the code, and the docs' tables agree with
 * it row by row. */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/heroku-codes.h"
#include "common/macro.h"

static void test_table(void **state)
{
	assert_null(hk_code_str(HK_NONE));
	assert_null(hk_code(_HK_MAX)->code);
	assert_null(hk_code((enum hk_code) - 1)->code);
	for (int c = 1; c < _HK_MAX; c++) {
		const struct hk_code_info *i = hk_code(c);
		assert_non_null(i->code);
		assert_non_null(i->desc);
		assert_non_null(i->metric);
		assert_int_equal(hk_code_from_str(i->code), c);
		/* H-codes answer a status, R-codes none */
		if (i->code[0] == 'H')
			assert_true(i->status >= 400 && i->status < 600);
		else
			assert_int_equal(i->status, 0);
		for (int d = 1; d < c; d++) {
			assert_string_not_equal(hk_code(d)->code, i->code);
			assert_string_not_equal(hk_code(d)->metric, i->metric);
		}
	}
	assert_int_equal(hk_code_from_str("H99"), HK_NONE);
	assert_int_equal(hk_code_from_str(NULL), HK_NONE);
	char line[128];
	snprintf(line, sizeof(line), HK_ERROR_FMT, HK_ERROR_ARGS(HK_R14));
	assert_string_equal(line, "Error R14 (Memory quota exceeded)");
}

/* Every row "| CODE | ... |" of the docs file whose first cell is a code of
 * kind 'H' or 'R': its cells must match the table. Returns how many. */
static int check_doc(const char *rel, char kind, int status_cell, int desc_cell)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", DYNO_SOURCE_ROOT, rel);
	FILE *f = fopen(path, "r");
	if (!f)
		fail_msg("open %s", path);
	char buf[2048];
	int rows = 0;
	bool seen[_HK_MAX] = {false};
	while (fgets(buf, sizeof(buf), f)) {
		if (buf[0] != '|' || buf[2] != kind || !isdigit((unsigned char)buf[3]) ||
		    !isdigit((unsigned char)buf[4]) || buf[5] != ' ')
			continue;
		char *cells[8];
		int n = 0;
		for (char *p = strtok(buf + 1, "|"); p && n < 8; p = strtok(NULL, "|")) {
			while (*p == ' ')
				p++;
			char *e = p + strlen(p);
			while (e > p && (e[-1] == ' ' || e[-1] == '\n'))
				*--e = '\0';
			cells[n++] = p;
		}
		enum hk_code c = hk_code_from_str(cells[0]);
		if (c == HK_NONE)
			fail_msg("%s: %s is not in common/heroku-codes.c", rel, cells[0]);
		if (status_cell >= 0 && atoi(cells[status_cell]) != hk_code(c)->status)
			fail_msg("%s: %s has status %s, the code %d", rel, cells[0],
			         cells[status_cell], hk_code(c)->status);
		if (strcmp(cells[desc_cell], hk_code(c)->desc) != 0)
			fail_msg("%s: %s is \"%s\", the code \"%s\"", rel, cells[0],
			         cells[desc_cell], hk_code(c)->desc);
		seen[c] = true;
		rows++;
	}
	fclose(f);
	for (int c = 1; c < _HK_MAX; c++)
		if (hk_code(c)->code[0] == kind && !seen[c])
			fail_msg("%s lacks a row for %s", rel, hk_code(c)->code);
	return rows;
}

static void test_docs_agree(void **state)
{
	assert_true(check_doc("docs/router.md", 'H', 1, 2) > 0);
	assert_true(check_doc("docs/design.md", 'R', -1, 1) > 0);
	assert_true(check_doc("docs/design.md", 'L', -1, 1) > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_docs_agree),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
