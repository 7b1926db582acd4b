/* runtime/state: apps, release numbering, persistence, schema version,
 * and the Platform API objects. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "runtime/manager/state.h"

static char *tmpdir(void)
{
	char tmpl[] = "/tmp/test-state-XXXXXX";
	char *d = mkdtemp(tmpl);
	assert_non_null(d);
	return strdup(d);
}

static void rmrf(const char *dir)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static struct state *open_ok(const char *dir)
{
	struct state *st = NULL;
	struct dy_error *err = NULL;
	if (state_open(dir, &st, &err) < 0)
		fail_msg("state_open: %s", dy_error_msg(err));
	return st;
}

static struct state_app *add_ok(struct state *st, const char *name, uint32_t uid)
{
	struct state_app *app = NULL;
	struct dy_error *err = NULL;
	if (state_app_add(st, name, uid, "2026-11-26T11:00:00Z", &app, &err) < 0)
		fail_msg("state_app_add: %s", dy_error_msg(err));
	return app;
}

static struct state_release *rel_ok(struct state_app *app, const char *desc,
                                    enum state_release_status s, const char *slug,
                                    const char *cfg_json)
{
	struct state_release *rel = NULL;
	struct dy_error *err = NULL;
	json_t *cfg = json_loads(cfg_json, 0, NULL);
	json_t *pt = slug ? json_pack("{s:s}", "web", "./server") : NULL;
	if (state_release_append(app, desc, s, slug, cfg, pt, "2026-11-26T11:00:01Z", &rel, &err) <
	    0)
		fail_msg("append: %s", dy_error_msg(err));
	return rel;
}

#define SLUG_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SLUG_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static void test_names(void **unused)
{
	assert_true(state_app_name_valid("abc"));
	assert_true(state_app_name_valid("my-app-2"));
	assert_true(state_app_name_valid("a23456789012345678901234567890"));
	assert_false(state_app_name_valid("a234567890123456789012345678901"));
	assert_false(state_app_name_valid("ab"));
	assert_false(state_app_name_valid("1abc"));
	assert_false(state_app_name_valid("abc-"));
	assert_false(state_app_name_valid("Abc"));
	assert_false(state_app_name_valid("a_bc"));
	assert_false(state_app_name_valid("a/bc"));
	assert_false(state_app_name_valid(""));
}

static void test_create_and_number(void **unused)
{
	char *dir = tmpdir();
	struct state *st = open_ok(dir);
	struct state_app *app = add_ok(st, "hello", 200000);
	struct dy_error *err = NULL;
	struct state_app *dup = NULL;
	assert_true(state_app_add(st, "hello", 200001, "x", &dup, &err) < 0);
	dy_error_free(&err);
	assert_true(state_app_add(st, "Bad", 200001, "x", &dup, &err) < 0);
	dy_error_free(&err);
	add_ok(st, "alpha", 200001);
	assert_string_equal(st->apps[0]->name, "alpha"); /* sorted */
	assert_ptr_equal(state_app_find(st, "hello"), app);
	assert_null(state_app_find(st, "nope"));

	assert_null(state_app_current(app));
	assert_int_equal(
	    rel_ok(app, "Set A config vars", STATE_RELEASE_SUCCEEDED, NULL, "{\"A\": \"1\"}")
	        ->version,
	    1);
	assert_int_equal(
	    rel_ok(app, "Deploy aaaaaaa", STATE_RELEASE_SUCCEEDED, SLUG_A, "{}")->version, 2);
	assert_int_equal(rel_ok(app, "Deploy bbbbbbb", STATE_RELEASE_FAILED, SLUG_B, "{}")->version,
	                 3);
	/* the current release is the newest succeeded one, a failed one keeps its number */
	assert_int_equal(state_app_current(app)->version, 2);
	assert_int_equal(rel_ok(app, "Rollback to v1", STATE_RELEASE_PENDING, NULL, "{}")->version,
	                 4);
	assert_int_equal(state_app_current(app)->version, 2);
	assert_non_null(state_release_find(app, 3));
	assert_null(state_release_find(app, 5));
	state_free(st);
	rmrf(dir);
	free(dir);
}

static void test_persist_reload(void **unused)
{
	char *dir = tmpdir();
	struct state *st = open_ok(dir);
	struct state_app *app = add_ok(st, "hello", 200007);
	rel_ok(app, "Set A config vars", STATE_RELEASE_SUCCEEDED, NULL, "{\"A\": \"x y\"}");
	rel_ok(app, "Deploy aaaaaaa", STATE_RELEASE_SUCCEEDED, SLUG_A, "{\"A\": \"x y\"}");
	struct state_formation *f = NULL;
	struct dy_error *err = NULL;
	assert_int_equal(state_formation_get(app, "web", "standard-1x", &f, &err), 0);
	f->quantity = 3;
	assert_int_equal(state_app_save(st, app, &err), 0);
	/* no temporary file is left beside it */
	char path[512];
	snprintf(path, sizeof(path), "%s/apps/hello", dir);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) -eq 1", path);
	assert_int_equal(system(cmd), 0);
	state_free(st);

	st = open_ok(dir);
	assert_int_equal(st->napps, 1);
	app = state_app_find(st, "hello");
	assert_non_null(app);
	assert_int_equal(app->uid, 200007);
	assert_string_equal(app->created_at, "2026-11-26T11:00:00Z");
	assert_int_equal(app->nreleases, 2);
	assert_string_equal(app->releases[1].slug_id, SLUG_A);
	assert_string_equal(app->releases[0].slug_id, "");
	assert_null(app->releases[0].process_types);
	assert_string_equal(json_string_value(json_object_get(app->releases[1].config, "A")),
	                    "x y");
	assert_string_equal(app->releases[1].description, "Deploy aaaaaaa");
	f = state_formation_find(app, "web");
	assert_non_null(f);
	assert_int_equal(f->quantity, 3);
	assert_string_equal(f->size, "standard-1x");
	/* numbering goes on after a reload */
	assert_int_equal(rel_ok(app, "x", STATE_RELEASE_SUCCEEDED, NULL, "{}")->version, 3);

	/* remove: state file and directory go */
	assert_int_equal(state_app_remove(st, app, &err), 0);
	assert_int_equal(st->napps, 0);
	struct stat sb;
	assert_true(stat(path, &sb) < 0);
	state_free(st);
	st = open_ok(dir);
	assert_int_equal(st->napps, 0);
	state_free(st);
	rmrf(dir);
	free(dir);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void open_fails(const char *dir, const char *needle)
{
	struct state *st = NULL;
	struct dy_error *err = NULL;
	assert_true(state_open(dir, &st, &err) < 0);
	assert_null(st);
	if (strstr(dy_error_msg(err), needle) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", dy_error_msg(err), needle);
	dy_error_free(&err);
}

static void test_schema_version(void **unused)
{
	char *dir = tmpdir();
	struct state *st = open_ok(dir);
	struct state_app *app = add_ok(st, "hello", 200000);
	struct dy_error *err = NULL;
	assert_int_equal(state_app_save(st, app, &err), 0);
	state_free(st);
	char path[512];
	snprintf(path, sizeof(path), "%s/apps/hello/app.json", dir);
	write_file(path, "{\"schema_version\": 2, \"name\": \"hello\"}");
	open_fails(dir, "schema_version 2 is not supported (this dynod reads 1)");
	write_file(path, "{\"name\": \"hello\"}");
	open_fails(dir, "no schema_version");
	write_file(path, "{\"schema_version\": 1, ");
	open_fails(dir, "app.json: line");
	write_file(path,
	           "{\"schema_version\": 1, \"name\": \"other\", \"created_at\": \"x\", \"uid\": 1,"
	           " \"releases\": [], \"formation\": []}");
	open_fails(dir, "differs from its directory");
	write_file(
	    path,
	    "{\"schema_version\": 1, \"name\": \"hello\", \"created_at\": \"x\", \"uid\": 1,"
	    " \"releases\": [{\"version\": 2, \"description\": \"d\", \"status\": \"succeeded\","
	    " \"slug\": null, \"created_at\": \"x\", \"config\": {}, \"process_types\": null}],"
	    " \"formation\": []}");
	open_fails(dir, "version 2, expected 1");
	rmrf(dir);
	free(dir);
}

static void test_json_objects(void **unused)
{
	char *dir = tmpdir();
	struct state *st = open_ok(dir);
	struct state_app *app = add_ok(st, "hello", 200000);
	json_t *j = state_app_json(app, "localhost", 8080);
	char *s = json_dumps(j, JSON_PRESERVE_ORDER | JSON_COMPACT);
	assert_string_equal(s,
	                    "{\"name\":\"hello\",\"created_at\":\"2026-11-26T11:00:00Z\","
	                    "\"web_url\":\"http://hello.localhost:8080/\",\"released_at\":null}");
	free(s);
	json_decref(j);
	struct state_release *rel =
	    rel_ok(app, "Deploy aaaaaaa", STATE_RELEASE_SUCCEEDED, SLUG_A, "{}");
	j = state_release_json(rel);
	s = json_dumps(j, JSON_PRESERVE_ORDER | JSON_COMPACT);
	assert_string_equal(s, "{\"version\":1,\"description\":\"Deploy aaaaaaa\",\"status\":"
	                       "\"succeeded\",\"slug\":{\"id\":\"" SLUG_A "\"},\"created_at\":"
	                       "\"2026-11-26T11:00:01Z\"}");
	free(s);
	json_decref(j);
	rel = rel_ok(app, "Set X config vars", STATE_RELEASE_FAILED, NULL, "{}");
	j = state_release_json(rel);
	assert_true(json_is_null(json_object_get(j, "slug")));
	assert_string_equal(json_string_value(json_object_get(j, "status")), "failed");
	json_decref(j);
	j = state_app_json(app, "example.com", 80);
	assert_string_equal(json_string_value(json_object_get(j, "released_at")),
	                    "2026-11-26T11:00:01Z");
	json_decref(j);
	struct state_formation f = {.type = "web", .quantity = 2, .size = "standard-2x"};
	j = state_formation_json(&f, "./server");
	s = json_dumps(j, JSON_PRESERVE_ORDER | JSON_COMPACT);
	assert_string_equal(s, "{\"type\":\"web\",\"quantity\":2,\"size\":\"standard-2x\","
	                       "\"command\":\"./server\"}");
	free(s);
	json_decref(j);
	char now[STATE_TIME_LEN + 1];
	state_now(now);
	assert_int_equal(strlen(now), STATE_TIME_LEN);
	assert_int_equal(now[STATE_TIME_LEN - 1], 'Z');
	state_free(st);
	rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names),          cmocka_unit_test(test_create_and_number),
	    cmocka_unit_test(test_persist_reload), cmocka_unit_test(test_schema_version),
	    cmocka_unit_test(test_json_objects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
