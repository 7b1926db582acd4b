#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "slugs/procfile.h"

static struct procfile *parse_ok(const char *s, size_t len)
{
	struct procfile *pf = NULL;
	struct dy_error *err = NULL;
	int r = procfile_parse(s, len, &pf, &err);
	if (r < 0)
		fail_msg("unexpected error: %s", dy_error_msg(err));
	assert_null(err);
	assert_non_null(pf);
	return pf;
}

/* Parses s (len bytes) expecting failure with exactly msg. */
static void parse_fails(const char *s, size_t len, const char *msg)
{
	struct procfile *pf = NULL;
	struct dy_error *err = NULL;
	assert_true(procfile_parse(s, len, &pf, &err) < 0);
	assert_null(pf);
	assert_non_null(err);
	assert_string_equal(dy_error_msg(err), msg);
	dy_error_free(&err);
}

#define OK(s)         parse_ok(s, strlen(s))
#define FAILS(s, msg) parse_fails(s, strlen(s), msg)

static void test_valid(void **state)
{
	struct procfile *pf = OK("# a comment\n"
	                         "\n"
	                         "web: bundle exec puma -p $PORT\r\n"
	                         "   \t\n"
	                         "  worker   :   python worker.py  \n"
	                         "\tclock\t:\tnode clock.js\t\n"
	                         "release: ./migrate\tnow\n"
	                         "  # indented comment\n"
	                         "A_b-9: x");
	assert_int_equal(pf->n, 5);
	assert_string_equal(pf->entries[0].name, "web");
	assert_string_equal(pf->entries[0].command, "bundle exec puma -p $PORT");
	assert_string_equal(pf->entries[1].name, "worker");
	assert_string_equal(pf->entries[1].command, "python worker.py");
	assert_string_equal(pf->entries[2].name, "clock");
	assert_string_equal(pf->entries[2].command, "node clock.js");
	assert_string_equal(pf->entries[3].command, "./migrate\tnow");
	assert_string_equal(pf->entries[4].name, "A_b-9");
	assert_string_equal(pf->entries[4].command, "x");
	procfile_free(pf);
}

static void test_command_keeps_colons(void **state)
{
	struct procfile *pf = OK("web:echo a:b: c\n");
	assert_int_equal(pf->n, 1);
	assert_string_equal(pf->entries[0].command, "echo a:b: c");
	procfile_free(pf);
}

static void test_crlf_only(void **state)
{
	struct procfile *pf = OK("web: a\r\nworker: b\r\n\r\n");
	assert_int_equal(pf->n, 2);
	assert_string_equal(pf->entries[0].command, "a");
	assert_string_equal(pf->entries[1].command, "b");
	procfile_free(pf);
}

static void test_name_lengths(void **state)
{
	char buf[128];
	/* 30 characters: the longest name */
	snprintf(buf, sizeof(buf), "%s: x\n", "a23456789012345678901234567890");
	struct procfile *pf = OK(buf);
	assert_int_equal(strlen(pf->entries[0].name), 30);
	procfile_free(pf);
	snprintf(buf, sizeof(buf), "web: x\n%s: x\n", "a234567890123456789012345678901");
	FAILS(buf, "Procfile line 2: process type name is longer than 30 characters");
}

static void test_errors(void **state)
{
	FAILS("web: a\nworker\n", "Procfile line 2: expected \"name: command\"");
	FAILS("web x: a\n", "Procfile line 1: expected \"name: command\"");
	FAILS("# c\n\n: a\n", "Procfile line 3: missing process type name before ':'");
	FAILS("we.b: a\n",
	      "Procfile line 1: invalid process type name \"we.b\" (letters, digits, '_' and "
	      "'-', starting with a letter or digit)");
	FAILS("_web: a\n",
	      "Procfile line 1: invalid process type name \"_web\" (letters, digits, '_' and "
	      "'-', starting with a letter or digit)");
	FAILS("-web: a\n",
	      "Procfile line 1: invalid process type name \"-web\" (letters, digits, '_' and "
	      "'-', starting with a letter or digit)");
	FAILS("web: a\nrun: bash\n",
	      "Procfile line 2: process type name \"run\" is reserved for one-off dynos");
	FAILS("web: a\nworker: b\nweb: c\n", "Procfile line 3: duplicate process type \"web\"");
	FAILS("web: a\nworker:   \n", "Procfile line 2: process type \"worker\" has no command");
	FAILS("web:", "Procfile line 1: process type \"web\" has no command");
	FAILS("web: a\x01"
	      "b\n",
	      "Procfile line 1: control character 0x01 in command");
	FAILS("web: a\x7f\n", "Procfile line 1: control character 0x7f in command");
	FAILS("web: a\rb\n", "Procfile line 1: control character 0x0d in command");
	parse_fails("web: a\n\nwor\0ker: b\n", 19, "Procfile line 3: NUL byte");
	parse_fails("\0", 1, "Procfile line 1: NUL byte");
}

static void test_run_prefix_is_fine(void **state)
{
	struct procfile *pf = OK("runner: a\nRun: b\nrun2: c\n");
	assert_int_equal(pf->n, 3);
	procfile_free(pf);
}

static void test_empty(void **state)
{
	parse_fails("", 0, "Procfile declares no process types");
	FAILS("# only comments\n\n  \n", "Procfile declares no process types");
}

static void test_too_big(void **state)
{
	size_t len = PROCFILE_MAX_BYTES + 1;
	char *big = malloc(len);
	assert_non_null(big);
	memset(big, '#', len);
	big[0] = 'w';
	parse_fails(big, len, "Procfile is larger than 65536 bytes");
	/* exactly 64 KiB is accepted */
	memcpy(big, "web: x\n", 7);
	struct procfile *pf = parse_ok(big, PROCFILE_MAX_BYTES);
	assert_int_equal(pf->n, 1);
	procfile_free(pf);
	free(big);
}

static void test_not_nul_terminated(void **state)
{
	/* data need not be NUL-terminated: hand an exact-size buffer */
	char *buf = malloc(6);
	assert_non_null(buf);
	memcpy(buf, "web: x", 6);
	struct procfile *pf = parse_ok(buf, 6);
	assert_string_equal(pf->entries[0].command, "x");
	procfile_free(pf);
	free(buf);
}

static void test_command_lookup(void **state)
{
	struct procfile *pf = OK("web: a\nworker: b\n");
	assert_string_equal(procfile_command(pf, "web"), "a");
	assert_string_equal(procfile_command(pf, "worker"), "b");
	assert_null(procfile_command(pf, "clock"));
	assert_null(procfile_command(pf, "we"));
	assert_null(procfile_command(NULL, "web"));
	procfile_free(pf);
	procfile_free(NULL);
}

static void test_valid_name(void **state)
{
	assert_true(procfile_valid_name("web", 3));
	assert_true(procfile_valid_name("9", 1));
	assert_false(procfile_valid_name("", 0));
	assert_false(procfile_valid_name("a b", 3));
	assert_false(procfile_valid_name("a234567890123456789012345678901", 31));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid),
	    cmocka_unit_test(test_command_keeps_colons),
	    cmocka_unit_test(test_crlf_only),
	    cmocka_unit_test(test_name_lengths),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_run_prefix_is_fine),
	    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_too_big),
	    cmocka_unit_test(test_not_nul_terminated),
	    cmocka_unit_test(test_command_lookup),
	    cmocka_unit_test(test_valid_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
