/* runtime/manager/addon-pg: identifiers and literals quoted for psql, and
 * the backups' numbering on disk (addon-pg-backup.c), external mode's
 * administrator URL taken apart and its clients' environment
 * (addon-pg-ext.c). */
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

static int ext(struct pg_env *e, const char *url, struct dy_error **err)
{
	*e = (struct pg_env){0};
	snprintf(e->gw, sizeof(e->gw), "10.213.0.1");
	e->port = 5433;
	return pgw_ext_init(e, url, err);
}

static bool has(char **envp, const char *kv)
{
	for (size_t i = 0; envp[i]; i++)
		if (strcmp(envp[i], kv) == 0)
			return true;
	return false;
}

static void test_external_url(void **state)
{
	(void)state;
	struct pg_env e;
	struct dy_error *err = NULL;
	assert_int_equal(
	    ext(&e, "postgres://admin:p%3A%2F%40w@10.99.0.1:6543/ops?sslmode=require", &err), 0);
	assert_true(e.external);
	assert_string_equal(e.ext_user, "admin");
	assert_string_equal(e.ext_password, "p:/@w");
	assert_string_equal(e.ext_host, "10.99.0.1");
	assert_string_equal(e.ext_addr, "10.99.0.1");
	assert_int_equal(e.ext_port, 6543);
	assert_string_equal(e.ext_db, "ops");
	assert_string_equal(e.ext_sslmode, "require");
	char **envp = pgw_ext_envp(&e);
	assert_non_null(envp);
	assert_true(has(envp, "PGPASSWORD=p:/@w"));
	assert_true(has(envp, "PGHOSTADDR=10.99.0.1"));
	assert_true(has(envp, "PGPORT=6543"));
	assert_true(has(envp, "PGSSLMODE=require"));
	pgw_envp_free(envp);
	pgw_ext_clear(&e);

	/* defaults: port 5432, database postgres, libpq's sslmode */
	assert_int_equal(ext(&e, "postgresql://root:pw@127.0.0.2", &err), 0);
	assert_int_equal(e.ext_port, 5432);
	assert_string_equal(e.ext_db, "postgres");
	assert_null(e.ext_sslmode);
	pgw_ext_clear(&e);

	/* what is wrong is named */
	static const struct {
		const char *url, *says;
	} bad[] = {
	    {"postgres://10.99.0.1/postgres", "USER@"},
	    {"postgres://a:b@10.99.0.1:0/x", "bad port"},
	    {"postgres://a:b@10.99.0.1:99999/x", "bad port"},
	    {"postgres://a:b@[::1]:5432/x", "IPv6"},
	    {"postgres://a:b@10.99.0.1/x?application_name=y", "application_name"},
	    {"postgres://a:%zz@10.99.0.1/x", "password"},
	    {"postgres://a:b@10.213.0.1/x", "gateway"},
	    {"postgres://a:b@/x", "no host"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(ext(&e, bad[i].url, &err), -1);
		if (!strstr(dy_error_msg(err), bad[i].says))
			fail_msg("%s: %s", bad[i].url, dy_error_msg(err));
		dy_error_free(&err);
		pgw_ext_clear(&e);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_quoting),
	    cmocka_unit_test(test_backup_numbers),
	    cmocka_unit_test(test_external_url),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
