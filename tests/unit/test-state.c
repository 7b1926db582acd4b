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
	/* a file of a newer dynod is refused, named, never read as ours */
	write_file(path, "{\"schema_version\": 4, \"name\": \"hello\"}");
	open_fails(dir, "hello/app.json: schema_version 4 is newer than this dynod reads (1 to 3)");
	write_file(path, "{\"schema_version\": 0, \"name\": \"hello\"}");
	open_fails(dir, "schema_version 0 is not supported");
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
	/* a release naming a snapshot the file does not hold */
	write_file(path, "{\"schema_version\": 2, \"name\": \"hello\", \"created_at\": \"x\","
	                 " \"uid\": 1, \"releases\": [{\"version\": 1, \"description\": \"d\","
	                 " \"status\": \"succeeded\", \"slug\": null, \"created_at\": \"x\","
	                 " \"config_id\": \"abc\", \"process_types\": null}], \"formation\": [],"
	                 " \"configs\": {}}");
	open_fails(dir, "releases[0]: config_id abc is not in configs");
	/* config vars are strings */
	write_file(path, "{\"schema_version\": 2, \"name\": \"hello\", \"created_at\": \"x\","
	                 " \"uid\": 1, \"releases\": [{\"version\": 1, \"description\": \"d\","
	                 " \"status\": \"succeeded\", \"slug\": null, \"created_at\": \"x\","
	                 " \"config_id\": \"abc\", \"process_types\": null}], \"formation\": [],"
	                 " \"configs\": {\"abc\": {\"A\": 1}}}");
	open_fails(dir, "releases[0]: config is not an object of strings");
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
	                    "\"web_url\":\"http://hello.localhost:8080/\",\"released_at\":null,"
	                    "\"maintenance\":false}");
	free(s);
	json_decref(j);
	struct state_release *rel =
	    rel_ok(app, "Deploy aaaaaaa", STATE_RELEASE_SUCCEEDED, SLUG_A, "{}");
	j = state_release_json(rel);
	s = json_dumps(j, JSON_PRESERVE_ORDER | JSON_COMPACT);
	assert_string_equal(s, "{\"version\":1,\"description\":\"Deploy aaaaaaa\",\"status\":"
	                       "\"succeeded\",\"failure\":null,\"slug\":{\"id\":\"" SLUG_A
	                       "\"},\"created_at\":"
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
	/* port 80 is not written */
	assert_string_equal(json_string_value(json_object_get(j, "web_url")),
	                    "http://hello.example.com/");
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

static json_t *load_json(const char *path)
{
	json_error_t jerr;
	json_t *j = json_load_file(path, 0, &jerr);
	if (j == NULL)
		fail_msg("%s: %s", path, jerr.text);
	return j;
}

static void save_ok(struct state *st, struct state_app *app)
{
	struct dy_error *err = NULL;
	if (state_app_save(st, app, &err) < 0)
		fail_msg("save: %s", dy_error_msg(err));
}

static void test_config_id(void **unused)
{
	char a[STATE_CONFIG_ID_LEN + 1], b[STATE_CONFIG_ID_LEN + 1];
	json_t *x = json_pack("{s:s, s:s}", "A", "1", "B", "2");
	json_t *y = json_pack("{s:s, s:s}", "B", "2", "A", "1");
	assert_int_equal(state_config_id(x, a), 0);
	assert_int_equal(state_config_id(y, b), 0);
	/* the canonical form sorts the keys: insertion order does not matter */
	assert_string_equal(a, b);
	/* sha256 of {"A":"1","B":"2"} */
	assert_string_equal(a, "3eda2f06741f1d082a60e34bf134dace8b60136ae69b552a2137bd898f27ea85");
	json_object_set_new(y, "B", json_string("3"));
	assert_int_equal(state_config_id(y, b), 0);
	assert_string_not_equal(a, b);
	json_t *empty = json_object();
	assert_int_equal(state_config_id(empty, a), 0);
	/* sha256 of {} */
	assert_string_equal(a, "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
	json_decref(x);
	json_decref(y);
	json_decref(empty);
}

/* Releases of equal config vars share one snapshot, in memory and in the
 * file; a snapshot goes with the last release naming it. */
static void test_config_snapshots(void **unused)
{
	char *dir = tmpdir();
	struct state *st = open_ok(dir);
	struct state_app *app = add_ok(st, "hello", 200000);
	struct state_release *r1 =
	    rel_ok(app, "Set A", STATE_RELEASE_SUCCEEDED, NULL, "{\"A\": \"1\"}");
	json_t *snap = r1->config;
	rel_ok(app, "Set B", STATE_RELEASE_SUCCEEDED, NULL, "{\"A\": \"1\", \"B\": \"2\"}");
	/* keys in another order: the same config vars */
	rel_ok(app, "Deploy", STATE_RELEASE_SUCCEEDED, SLUG_A, "{\"B\": \"2\", \"A\": \"1\"}");
	rel_ok(app, "Remove B", STATE_RELEASE_SUCCEEDED, SLUG_A, "{\"A\": \"1\"}");
	assert_int_equal(app->nreleases, 4);
	assert_ptr_equal(app->releases[3].config, snap);
	assert_ptr_equal(app->releases[2].config, app->releases[1].config);
	assert_ptr_not_equal(app->releases[1].config, snap);
	assert_string_equal(app->releases[3].config_id, app->releases[0].config_id);
	assert_int_equal(snap->refcount, 2);
	assert_int_equal(app->releases[1].config->refcount, 2);
	save_ok(st, app);

	char path[512];
	snprintf(path, sizeof(path), "%s/apps/hello/app.json", dir);
	json_t *j = load_json(path);
	assert_int_equal(json_integer_value(json_object_get(j, "schema_version")), 3);
	json_t *configs = json_object_get(j, "configs");
	assert_int_equal(json_object_size(configs), 2);
	json_t *rels = json_object_get(j, "releases");
	assert_int_equal(json_array_size(rels), 4);
	const char *id0 = json_string_value(json_object_get(json_array_get(rels, 0), "config_id"));
	const char *id3 = json_string_value(json_object_get(json_array_get(rels, 3), "config_id"));
	assert_string_equal(id0, app->releases[0].config_id);
	assert_string_equal(id0, id3);
	assert_null(json_object_get(json_array_get(rels, 0), "config"));
	assert_true(json_equal(json_object_get(configs, id0), snap));
	json_decref(j);

	/* a new snapshot, then its release undone: it leaves memory and file */
	rel_ok(app, "Set C", STATE_RELEASE_FAILED, NULL, "{\"C\": \"3\"}");
	save_ok(st, app);
	j = load_json(path);
	assert_int_equal(json_object_size(json_object_get(j, "configs")), 3);
	json_decref(j);
	state_release_pop(app);
	save_ok(st, app);
	j = load_json(path);
	assert_int_equal(json_object_size(json_object_get(j, "configs")), 2);
	json_decref(j);
	/* the last reference of the first snapshot dropped from memory */
	state_release_pop(app);
	assert_int_equal(snap->refcount, 1);
	state_free(st);

	/* reloaded (as last saved, four releases): still shared */
	st = open_ok(dir);
	assert_int_equal(st->migrated, 0);
	app = state_app_find(st, "hello");
	assert_int_equal(app->nreleases, 4);
	assert_ptr_equal(app->releases[0].config, app->releases[3].config);
	assert_ptr_equal(app->releases[1].config, app->releases[2].config);
	assert_int_equal(app->releases[1].config->refcount, 2);
	assert_string_equal(json_string_value(json_object_get(app->releases[2].config, "B")), "2");
	assert_null(app->releases[0].process_types);
	assert_non_null(app->releases[2].process_types);
	state_free(st);
	rmrf(dir);
	free(dir);
}

/* A file of schema_version 1 (a copy of the config vars in each release)
 * is read and rewritten with one snapshot per distinct config. */
/* Custom domains and maintenance survive a reload; a domain is kept lower
 * case and once. */
static void test_domains_and_maintenance_persist(void **unused)
{
	char *dir = tmpdir();
	struct state *st = open_ok(dir);
	struct state_app *app = add_ok(st, "hello", 200000);
	struct dy_error *err = NULL;
	assert_int_equal(state_domain_add(app, "WWW.Example.com", &err), 0);
	assert_int_equal(state_domain_add(app, "api.example.com", &err), 0);
	assert_int_equal(state_domain_find(app, "www.example.COM"), 0);
	app->maintenance = true;
	save_ok(st, app);
	state_free(st);
	st = open_ok(dir);
	app = state_app_find(st, "hello");
	assert_non_null(app);
	assert_int_equal(app->ndomains, 2);
	assert_string_equal(app->domains[0], "www.example.com");
	assert_true(app->maintenance);
	assert_true(state_domain_remove(app, "www.example.com"));
	assert_false(state_domain_remove(app, "www.example.com"));
	assert_int_equal(app->ndomains, 1);
	assert_string_equal(app->domains[0], "api.example.com");
	state_free(st);
	rmrf(dir);
	free(dir);
}

static void test_migrate_v1(void **unused)
{
	char *dir = tmpdir();
	char path[512];
	snprintf(path, sizeof(path), "%s/apps/hello", dir);
	char cmd[600];
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", path);
	assert_int_equal(system(cmd), 0);
	snprintf(path, sizeof(path), "%s/apps/hello/app.json", dir);
	write_file(
	    path,
	    "{\"schema_version\": 1, \"name\": \"hello\", \"created_at\": \"2026-11-26T11:00:00Z\","
	    " \"uid\": 200003, \"releases\": ["
	    "{\"version\": 1, \"description\": \"Set BIG config vars\", \"status\": \"succeeded\","
	    " \"slug\": null, \"created_at\": \"2026-11-26T11:00:01Z\","
	    " \"config\": {\"BIG\": \"xxxxxxxxxxxxxxxxxxxxxxxx\"}, \"process_types\": null},"
	    "{\"version\": 2, \"description\": \"Deploy aaaaaaa\", \"status\": \"succeeded\","
	    " \"slug\": {\"id\": \"" SLUG_A "\"}, \"created_at\": \"2026-11-26T11:00:02Z\","
	    " \"config\": {\"BIG\": \"xxxxxxxxxxxxxxxxxxxxxxxx\"}, \"process_types\": {\"web\": "
	    "\"./s\"}},"
	    "{\"version\": 3, \"description\": \"Set S config vars\", \"status\": \"failed\","
	    " \"slug\": {\"id\": \"" SLUG_A "\"}, \"created_at\": \"2026-11-26T11:00:03Z\","
	    " \"config\": {\"BIG\": \"xxxxxxxxxxxxxxxxxxxxxxxx\", \"S\": \"1\"},"
	    " \"process_types\": {\"web\": \"./s\"}},"
	    "{\"version\": 4, \"description\": \"Rollback to v1\", \"status\": \"succeeded\","
	    " \"slug\": {\"id\": \"" SLUG_A "\"}, \"created_at\": \"2026-11-26T11:00:04Z\","
	    " \"config\": {\"BIG\": \"xxxxxxxxxxxxxxxxxxxxxxxx\"}, \"process_types\": {\"web\": "
	    "\"./s\"}}],"
	    " \"formation\": [{\"type\": \"web\", \"quantity\": 2, \"size\": \"standard-1x\"}]}\n");
	struct state *st = open_ok(dir);
	assert_int_equal(st->migrated, 1);
	struct state_app *app = state_app_find(st, "hello");
	assert_non_null(app);
	assert_int_equal(app->nreleases, 4);
	assert_int_equal(app->uid, 200003);
	/* in memory, one snapshot for the three equal copies */
	assert_ptr_equal(app->releases[0].config, app->releases[1].config);
	assert_ptr_equal(app->releases[0].config, app->releases[3].config);
	assert_int_equal(app->releases[0].config->refcount, 3);
	assert_string_equal(json_string_value(json_object_get(app->releases[2].config, "S")), "1");
	assert_int_equal(app->releases[2].status, STATE_RELEASE_FAILED);
	assert_string_equal(app->releases[3].description, "Rollback to v1");
	assert_int_equal(state_formation_find(app, "web")->quantity, 2);
	state_free(st);

	/* on disk, the new form */
	json_t *j = load_json(path);
	assert_int_equal(json_integer_value(json_object_get(j, "schema_version")),
	                 STATE_SCHEMA_VERSION);
	assert_int_equal(json_object_size(json_object_get(j, "configs")), 2);
	json_t *rels = json_object_get(j, "releases");
	assert_int_equal(json_array_size(rels), 4);
	for (size_t i = 0; i < 4; i++) {
		assert_null(json_object_get(json_array_get(rels, i), "config"));
		assert_non_null(json_object_get(json_array_get(rels, i), "config_id"));
	}
	json_decref(j);
	/* mode kept: the file holds config vars */
	struct stat sb;
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);

	/* read again: nothing left to migrate, the same releases */
	st = open_ok(dir);
	assert_int_equal(st->migrated, 0);
	app = state_app_find(st, "hello");
	assert_int_equal(app->nreleases, 4);
	assert_string_equal(app->releases[1].slug_id, SLUG_A);
	assert_string_equal(json_string_value(json_object_get(app->releases[3].config, "BIG")),
	                    "xxxxxxxxxxxxxxxxxxxxxxxx");
	assert_string_equal(
	    json_string_value(json_object_get(app->releases[1].process_types, "web")), "./s");
	state_free(st);
	rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_create_and_number),
	    cmocka_unit_test(test_persist_reload),
	    cmocka_unit_test(test_schema_version),
	    cmocka_unit_test(test_json_objects),
	    cmocka_unit_test(test_config_id),
	    cmocka_unit_test(test_config_snapshots),
	    cmocka_unit_test(test_migrate_v1),
	    cmocka_unit_test(test_domains_and_maintenance_persist),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
