/* runtime/manager/addon-pg: identifiers and literals quoted for psql, and
 * the backups' numbering on disk (addon-pg-backup.c). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "runtime/manager/addon-pg-internal.h"

static void test_quoting(void **state)
{
	(void)state;
	char *s = pgw_ident("postgresql-curly-04521");
	assert_string_equal(s, "\"postgresql-curly-04521\"");
	free(s);
	s = pgw_ident("a\"b");
	assert_string_equal(s, "\"a\"\"b\"");
	free(s);
	s = pgw_literal("it's");
	assert_string_equal(s, "'it''s'");
	free(s);
	s = pgw_literal("");
	assert_string_equal(s, "''");
	free(s);
}

static void touch(const char *dir, const char *name)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs("PGDMP", f);
	fclose(f);
}

static void test_backup_numbers(void **state)
{
	(void)state;
	char dir[] = "/tmp/test-addon-pg-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char id[16];
	/* none yet: the next is b001, there is no newest */
	assert_int_equal(pgb_pick(dir, NULL, true, id), 0);
	assert_string_equal(id, "b001");
	assert_int_equal(pgb_pick(dir, NULL, false, id), -ENOENT);
	touch(dir, "b001.dump");
	touch(dir, "b010.dump");
	touch(dir, "b002.dump.tmp"); /* a capture cut short: not a backup */
	touch(dir, "notes.txt");
	assert_int_equal(pgb_pick(dir, NULL, true, id), 0);
	assert_string_equal(id, "b011");
	assert_int_equal(pgb_pick(dir, "latest", false, id), 0);
	assert_string_equal(id, "b010");
	assert_int_equal(pgb_pick(dir, "b1", false, id), -ENOENT); /* b + 3 digits at least */
	assert_int_equal(pgb_pick(dir, "b0001", false, id), 0);
	assert_string_equal(id, "b001");
	assert_int_equal(pgb_pick(dir, "b002", false, id), -ENOENT);
	assert_int_equal(pgb_pick(dir, "../b001", false, id), -ENOENT);
	json_t *list = pgb_list_json(dir, "postgresql-curly-04521");
	assert_int_equal(json_array_size(list), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(list, 1), "id")),
	                    "b010");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(list, 1), "size")), 5);
	json_decref(list);
	pgw_remove_dir(dir);
	assert_int_equal(access(dir, F_OK), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_quoting),
	    cmocka_unit_test(test_backup_numbers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
