/* runtime/manager: deploy, config releases, rollback semantics, formation
 * rules, and the error classes the API maps to its ids. Needs root for the
 * unpack's chown (as dynod does); skipped otherwise. */
#include <dirent.h>
#include <fcntl.h>
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

#include "common/loop.h"
#include "common/work.h"
#include "runtime/manager/manager.h"
#include "slugs/slug.h"

struct fx {
	char dir[64];
	struct config *cfg;
	struct state *st;
	struct mgr *m;
};

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* Packs a slug with procfile into the store; returns its id (static). */
static const char *make_slug(struct fx *fx, const char *name, const char *procfile)
{
	static char id[STATE_SLUG_ID_LEN + 1];
	char src[128], file[160];
	snprintf(src, sizeof(src), "%s/src-%s", fx->dir, name);
	snprintf(file, sizeof(file), "%s/%s.tgz", fx->dir, name);
	assert_int_equal(mkdir(src, 0755), 0);
	char pf[200];
	snprintf(pf, sizeof(pf), "%s/Procfile", src);
	write_file(pf, procfile);
	struct dy_error *err = NULL;
	if (slug_pack(src, file, SLUG_COMPRESSION_GZIP, &err) < 0)
		fail_msg("slug_pack: %s", dy_error_msg(err));
	FILE *f = fopen(file, "r");
	assert_non_null(f);
	struct slug_info info;
	if (mgr_slug_put(fx->m, "hello", fileno(f), &info, &err) < 0)
		fail_msg("mgr_slug_put: %s", dy_error_msg(err));
	fclose(f);
	snprintf(id, sizeof(id), "%s", info.id);
	slug_info_clear(&info);
	return id;
}

static int setup(void **state)
{
	if (geteuid() != 0)
		skip();
	struct fx *fx = calloc(1, sizeof(*fx));
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test-manager-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	char json[512];
	snprintf(json, sizeof(json),
	         "{\"state_dir\": \"%s/state\", \"api_group\": \"root\","
	         " \"router\": {\"listen\": \"127.0.0.1:9999\"}, \"domain\": \"example.test\","
	         " \"config_vars\": {\"max_size\": \"1K\"}}",
	         fx->dir);
	struct dy_error *err = NULL;
	if (config_load_string(json, strlen(json), "test", &fx->cfg, &err) < 0)
		fail_msg("config: %s", dy_error_msg(err));
	if (state_open(fx->cfg->state_dir, &fx->st, &err) < 0)
		fail_msg("state: %s", dy_error_msg(err));
	assert_int_equal(mgr_new(fx->cfg, fx->st, NULL, &fx->m, &err), 0);
	struct state_app *app;
	if (mgr_app_create(fx->m, "hello", &app, &err) < 0)
		fail_msg("create: %s", dy_error_msg(err));
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	mgr_free(fx->m);
	state_free(fx->st);
	config_free(fx->cfg);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	assert_int_equal(system(cmd), 0);
	free(fx);
	return 0;
}

/* Expects the last call to have failed with kind kind and a message
 * containing needle. */
static void expect_error(struct dy_error **err, enum dy_error_kind kind, const char *needle)
{
	assert_non_null(*err);
	assert_string_equal(dy_error_kind_str((*err)->kind), dy_error_kind_str(kind));
	if (strstr(dy_error_msg(*err), needle) == NULL)
		fail_msg("error \"%s\" lacks \"%s\"", dy_error_msg(*err), needle);
	dy_error_free(err);
}

static void test_apps(void **state)
{
	struct fx *fx = *state;
	struct dy_error *err = NULL;
	struct state_app *app;
	assert_true(mgr_app_create(fx->m, "hello", &app, &err) < 0);
	expect_error(&err, DY_E_CONFLICT, "already exists");
	assert_true(mgr_app_create(fx->m, "-x", &app, &err) < 0);
	expect_error(&err, DY_E_INVALID, "invalid app name \"-x\"");
	assert_int_equal(mgr_app_create(fx->m, "second", &app, &err), 0);
	assert_int_equal(app->uid, 200001);
	json_t *j = mgr_app_json(fx->m, app);
	assert_string_equal(json_string_value(json_object_get(j, "web_url")),
	                    "http://second.example.test:9999/");
	json_decref(j);
	assert_int_equal(mgr_app_destroy(fx->m, "second", &err), 0);
	assert_true(mgr_app_destroy(fx->m, "second", &err) < 0);
	expect_error(&err, DY_E_NOT_FOUND, "app \"second\" not found");
	/* the freed uid is given again */
	assert_int_equal(mgr_app_create(fx->m, "third", &app, &err), 0);
	assert_int_equal(app->uid, 200001);
}

static void test_deploy_config_rollback(void **state)
{
	struct fx *fx = *state;
	struct dy_error *err = NULL;
	struct state_release *rel;
	json_t *ch = json_pack("{s:s}", "FOO", "one");
	assert_int_equal(mgr_config_update(fx->m, "hello", ch, &rel, &err), 0);
	json_decref(ch);
	assert_int_equal(rel->version, 1);
	assert_string_equal(rel->slug_id, "");
	assert_string_equal(rel->description, "Set FOO config vars");

	char id[STATE_SLUG_ID_LEN + 1];
	snprintf(id, sizeof(id), "%s", make_slug(fx, "a", "web: ./web\nworker: ./w\n"));
	if (mgr_deploy(fx->m, "hello", id, &rel, &err) < 0)
		fail_msg("deploy: %s", dy_error_msg(err));
	assert_int_equal(rel->version, 2);
	assert_int_equal(rel->status, STATE_RELEASE_SUCCEEDED);
	char desc[32];
	snprintf(desc, sizeof(desc), "Deploy %.7s", id);
	assert_string_equal(rel->description, desc);
	assert_string_equal(json_string_value(json_object_get(rel->config, "FOO")), "one");
	struct state_app *app;
	assert_int_equal(mgr_app_get(fx->m, "hello", &app, &err), 0);
	/* first deploy with web: web at 1 */
	assert_int_equal(state_formation_find(app, "web")->quantity, 1);
	char unpacked[256];
	snprintf(unpacked, sizeof(unpacked), "%s/apps/hello/slugs/%s/Procfile", fx->cfg->state_dir,
	         id);
	struct stat sb;
	assert_int_equal(stat(unpacked, &sb), 0);
	assert_int_equal(sb.st_uid, app->uid);

	ch = json_pack("{s:s, s:n, s:s}", "BAR", "two", "FOO", "ZED", "z");
	assert_int_equal(mgr_config_update(fx->m, "hello", ch, &rel, &err), 0);
	json_decref(ch);
	assert_int_equal(rel->version, 3);
	assert_string_equal(rel->description, "Set BAR, ZED; remove FOO config vars");
	assert_string_equal(rel->slug_id, id);
	/* nothing changes: no release */
	ch = json_pack("{s:s, s:n}", "BAR", "two", "NOPE");
	assert_int_equal(mgr_config_update(fx->m, "hello", ch, &rel, &err), 0);
	json_decref(ch);
	assert_null(rel);
	ch = json_pack("{s:s}", "1BAD", "x");
	assert_true(mgr_config_update(fx->m, "hello", ch, &rel, &err) < 0);
	json_decref(ch);
	expect_error(&err, DY_E_INVALID, "invalid config var name \"1BAD\"");
	ch = json_pack("{s:i}", "NUM", 1);
	assert_true(mgr_config_update(fx->m, "hello", ch, &rel, &err) < 0);
	json_decref(ch);
	expect_error(&err, DY_E_INVALID, "config var NUM: the value must be a string");

	/* a second slug, then roll back to v2: slug and config of v2 */
	char id2[STATE_SLUG_ID_LEN + 1];
	snprintf(id2, sizeof(id2), "%s", make_slug(fx, "b", "web: ./web2\n"));
	assert_int_equal(mgr_deploy(fx->m, "hello", id2, &rel, &err), 0);
	assert_int_equal(rel->version, 4);
	assert_int_equal(state_formation_find(app, "web")->quantity, 1);
	assert_int_equal(mgr_rollback(fx->m, "hello", 2, &rel, &err), 0);
	assert_int_equal(rel->version, 5);
	assert_string_equal(rel->description, "Rollback to v2");
	assert_string_equal(rel->slug_id, id);
	json_t *cfg = mgr_config_vars(app);
	assert_int_equal(json_object_size(cfg), 1);
	assert_string_equal(json_string_value(json_object_get(cfg, "FOO")), "one");
	assert_non_null(json_object_get(state_app_current(app)->process_types, "worker"));

	assert_true(mgr_rollback(fx->m, "hello", 1, &rel, &err) < 0);
	expect_error(&err, DY_E_INVALID, "release v1 has no slug");
	assert_true(mgr_rollback(fx->m, "hello", 42, &rel, &err) < 0);
	expect_error(&err, DY_E_NOT_FOUND, "release v42 of hello not found");
	assert_true(mgr_deploy(fx->m, "hello", "abc", &rel, &err) < 0);
	expect_error(&err, DY_E_INVALID, "invalid slug id");
	assert_true(mgr_deploy(fx->m, "hello",
	                       "0000000000000000000000000000000000000000000000000000000000000000",
	                       &rel, &err) < 0);
	expect_error(&err, DY_E_NOT_FOUND, "not found");

	/* a release phase needs the launcher: refused, no release made */
	char id3[STATE_SLUG_ID_LEN + 1];
	snprintf(id3, sizeof(id3), "%s", make_slug(fx, "c", "web: ./w\nrelease: ./migrate\n"));
	assert_true(mgr_deploy(fx->m, "hello", id3, &rel, &err) < 0);
	expect_error(&err, DY_E_CONFLICT, "release process type");
	assert_int_equal(app->nreleases, 5);

	/* everything survives a reload */
	state_free(fx->st);
	mgr_free(fx->m);
	assert_int_equal(state_open(fx->cfg->state_dir, &fx->st, &err), 0);
	assert_int_equal(mgr_new(fx->cfg, fx->st, NULL, &fx->m, &err), 0);
	assert_int_equal(mgr_app_get(fx->m, "hello", &app, &err), 0);
	assert_int_equal(app->nreleases, 5);
	assert_int_equal(state_app_current(app)->version, 5);
}

static void test_formation(void **state)
{
	struct fx *fx = *state;
	struct dy_error *err = NULL;
	struct mgr_formation_update u = {.type = "web", .quantity = 2, .size = NULL};
	assert_true(mgr_formation_update(fx->m, "hello", &u, 1, &err) < 0);
	expect_error(&err, DY_E_INVALID, "no release with a slug yet");
	const char *id = make_slug(fx, "a", "web: ./web\nworker: ./w\n");
	struct state_release *rel;
	assert_int_equal(mgr_deploy(fx->m, "hello", id, &rel, &err), 0);

	struct mgr_formation_update ups[] = {
	    {.type = "worker", .quantity = 3, .size = "performance-m"},
	    {.type = "web", .quantity = 0, .size = NULL},
	};
	assert_int_equal(mgr_formation_update(fx->m, "hello", ups, 2, &err), 0);
	struct state_app *app;
	assert_int_equal(mgr_app_get(fx->m, "hello", &app, &err), 0);
	json_t *j = mgr_formation_json(fx->m, app, NULL, &err);
	char *s = json_dumps(j, JSON_PRESERVE_ORDER | JSON_COMPACT);
	assert_string_equal(s, "[{\"type\":\"web\",\"quantity\":0,\"size\":\"standard-1x\","
	                       "\"command\":\"./web\"},{\"type\":\"worker\",\"quantity\":3,"
	                       "\"size\":\"performance-m\",\"command\":\"./w\"}]");
	free(s);
	json_decref(j);

	struct mgr_formation_update bad[] = {
	    {.type = "web", .quantity = 5, .size = NULL},
	    {.type = "clock", .quantity = 1, .size = NULL},
	};
	assert_true(mgr_formation_update(fx->m, "hello", bad, 2, &err) < 0);
	expect_error(&err, DY_E_INVALID,
	             "no process type \"clock\" in the current release's Procfile (types: web, "
	             "worker)");
	/* all or nothing */
	assert_int_equal(state_formation_find(app, "web")->quantity, 0);
	u = (struct mgr_formation_update){.type = "web", .quantity = 101, .size = NULL};
	assert_true(mgr_formation_update(fx->m, "hello", &u, 1, &err) < 0);
	expect_error(&err, DY_E_INVALID, "quantity 101 is out of range 0..100");
	u = (struct mgr_formation_update){.type = "web", .quantity = -1, .size = "huge"};
	assert_true(mgr_formation_update(fx->m, "hello", &u, 1, &err) < 0);
	expect_error(&err, DY_E_INVALID, "unknown size \"huge\" (sizes: standard-1x, standard-2x");
	assert_null(mgr_formation_json(fx->m, app, "clock", &err));
	expect_error(&err, DY_E_NOT_FOUND, "no process type \"clock\"");
}

struct fake {
	int releases_run;
	int applied;
	int last_applied_version;
	bool fail_start;
};

static int fake_run_release(void *data, const struct state_app *app,
                            const struct state_release *rel, struct dy_error **err)
{
	struct fake *f = data;
	f->releases_run++;
	if (f->fail_start)
		return dy_error(err, "cannot start release.%d", rel->version);
	return 0;
}

static int fake_apply(void *data, const struct state_app *app, const struct state_release *rel,
                      struct dy_error **err)
{
	struct fake *f = data;
	f->applied++;
	f->last_applied_version = rel ? rel->version : 0;
	return 0;
}

/* With a launcher (ops), a release phase leaves the release pending until
 * the launcher reports; the current release stays the previous one. */
static void test_release_phase_hook(void **state)
{
	struct fx *fx = *state;
	struct fake fk = {0};
	const struct manager_ops ops = {
	    .run_release = fake_run_release, .apply_formation = fake_apply, .data = &fk};
	mgr_free(fx->m);
	struct dy_error *err = NULL;
	assert_int_equal(mgr_new(fx->cfg, fx->st, &ops, &fx->m, &err), 0);
	struct state_release *rel;
	char plain[STATE_SLUG_ID_LEN + 1], phased[STATE_SLUG_ID_LEN + 1];
	snprintf(plain, sizeof(plain), "%s", make_slug(fx, "a", "web: ./web\n"));
	snprintf(phased, sizeof(phased), "%s", make_slug(fx, "b", "web: ./w\nrelease: ./m\n"));
	assert_int_equal(mgr_deploy(fx->m, "hello", plain, &rel, &err), 0);
	assert_int_equal(rel->status, STATE_RELEASE_SUCCEEDED);
	assert_int_equal(fk.releases_run, 0);
	assert_int_equal(fk.applied, 1);

	assert_int_equal(mgr_deploy(fx->m, "hello", phased, &rel, &err), 0);
	assert_int_equal(rel->version, 2);
	assert_int_equal(rel->status, STATE_RELEASE_PENDING);
	assert_int_equal(fk.releases_run, 1);
	assert_int_equal(fk.applied, 1);
	struct state_app *app;
	assert_int_equal(mgr_app_get(fx->m, "hello", &app, &err), 0);
	assert_int_equal(state_app_current(app)->version, 1);
	/* the release phase succeeds: v2 is current and applied */
	assert_int_equal(mgr_release_finished(fx->m, "hello", 2, true, NULL, &err), 0);
	assert_int_equal(state_app_current(app)->version, 2);
	assert_int_equal(fk.last_applied_version, 2);
	assert_true(mgr_release_finished(fx->m, "hello", 2, true, NULL, &err) < 0);
	expect_error(&err, DY_E_CONFLICT, "is succeeded, not pending");

	/* a config change runs the phase again; its failure keeps v2 current */
	json_t *ch = json_pack("{s:s}", "A", "1");
	assert_int_equal(mgr_config_update(fx->m, "hello", ch, &rel, &err), 0);
	json_decref(ch);
	assert_int_equal(rel->status, STATE_RELEASE_PENDING);
	assert_int_equal(mgr_release_finished(fx->m, "hello", 3, false,
	                                      "release command exited with status 3", &err),
	                 0);
	assert_int_equal(state_release_find(app, 3)->status, STATE_RELEASE_FAILED);
	assert_string_equal(state_release_find(app, 3)->failure,
	                    "release command exited with status 3");
	assert_null(state_release_find(app, 2)->failure);
	assert_int_equal(state_app_current(app)->version, 2);
	assert_null(json_object_get(mgr_config_vars(app), "A"));
	/* a phase that cannot even start fails its release at once */
	fk.fail_start = true;
	assert_int_equal(mgr_rollback(fx->m, "hello", 2, &rel, &err), 0);
	assert_int_equal(rel->status, STATE_RELEASE_FAILED);
	assert_int_equal(rel->version, 4);
	assert_non_null(rel->failure);
	assert_non_null(strstr(rel->failure, "release command could not start"));
	assert_null(err);
	/* the reasons survive a reload; the API shows them */
	state_free(fx->st);
	mgr_free(fx->m);
	assert_int_equal(state_open(fx->cfg->state_dir, &fx->st, &err), 0);
	assert_int_equal(mgr_new(fx->cfg, fx->st, &ops, &fx->m, &err), 0);
	assert_int_equal(mgr_app_get(fx->m, "hello", &app, &err), 0);
	json_t *j = state_release_json(state_release_find(app, 3));
	assert_string_equal(json_string_value(json_object_get(j, "failure")),
	                    "release command exited with status 3");
	json_decref(j);
	j = state_release_json(state_release_find(app, 2));
	assert_true(json_is_null(json_object_get(j, "failure")));
	json_decref(j);
	assert_true(mgr_release_finished(fx->m, "hello", 9, true, NULL, &err) < 0);
	expect_error(&err, DY_E_NOT_FOUND, "release v9");
}

/* config_vars.max_size (1K here) bounds names and values together; a change
 * that shrinks them is taken even over the bound. */
static void test_config_bound(void **state)
{
	struct fx *fx = *state;
	struct state_release *rel = NULL;
	struct dy_error *err = NULL;
	char big[1001];
	memset(big, 'x', 1000);
	big[1000] = '\0';
	json_t *ch = json_pack("{s:s}", "A", big); /* 1001 bytes */
	assert_int_equal(mgr_config_update(fx->m, "hello", ch, &rel, &err), 0);
	json_decref(ch);
	assert_non_null(rel);
	ch = json_pack("{s:s}", "BB", big + 980); /* + 22 = 1023 */
	assert_int_equal(mgr_config_update(fx->m, "hello", ch, &rel, &err), 0);
	json_decref(ch);
	ch = json_pack("{s:s}", "C", "xy"); /* + 3 = 1026 > 1024 */
	assert_true(mgr_config_update(fx->m, "hello", ch, &rel, &err) < 0);
	json_decref(ch);
	expect_error(&err, DY_E_INVALID,
	             "config vars of hello would take 1026 bytes (names and values), over the "
	             "limit of 1024 bytes (config_vars.max_size)");
	assert_int_equal(json_object_size(mgr_config_vars(state_app_find(fx->st, "hello"))), 2);
	/* the operator lowers the bound: the app is over it, and a change that
	 * shrinks its vars is still taken */
	fx->cfg->config_vars.max_size = 512;
	ch = json_pack("{s:s}", "D", "x");
	assert_true(mgr_config_update(fx->m, "hello", ch, &rel, &err) < 0);
	json_decref(ch);
	expect_error(&err, DY_E_INVALID, "over the limit of 512 bytes");
	ch = json_pack("{s:n}", "BB");
	assert_int_equal(mgr_config_update(fx->m, "hello", ch, &rel, &err), 0);
	json_decref(ch);
	assert_non_null(rel);
}

static void set_var(struct fx *fx, const char *k, const char *v)
{
	struct state_release *rel = NULL;
	struct dy_error *err = NULL;
	json_t *ch = v ? json_pack("{s:s}", k, v) : json_pack("{s:n}", k);
	if (mgr_config_update(fx->m, "hello", ch, &rel, &err) < 0)
		fail_msg("config: %s", dy_error_msg(err));
	json_decref(ch);
	assert_non_null(rel);
}

/* Config releases share what did not change: equal config vars one
 * snapshot, and an unchanged value one string across snapshots; the
 * file holds each distinct config once. */
static void test_config_shared(void **state)
{
	struct fx *fx = *state;
	char big[901];
	memset(big, 'b', 900);
	big[900] = '\0';
	set_var(fx, "BIG", big);
	for (int i = 0; i < 20; i++)
		set_var(fx, "S", i % 2 ? "odd" : "even");
	set_var(fx, "S", NULL);
	struct state_app *app = state_app_find(fx->st, "hello");
	assert_int_equal(app->nreleases, 22);
	json_t *first = app->releases[0].config;
	json_t *bigval = json_object_get(first, "BIG");
	for (size_t i = 0; i < app->nreleases; i++)
		assert_ptr_equal(json_object_get(app->releases[i].config, "BIG"), bigval);
	/* three distinct configs: {BIG}, {BIG, S=even}, {BIG, S=odd} */
	assert_ptr_equal(app->releases[21].config, first);
	assert_ptr_equal(app->releases[3].config, app->releases[1].config);
	assert_ptr_equal(app->releases[4].config, app->releases[2].config);
	assert_ptr_not_equal(app->releases[1].config, app->releases[2].config);
	/* a rollback names the snapshot it rolls back to */
	const char *slug = make_slug(fx, "one", "web: ./web\n");
	struct state_release *rel = NULL;
	struct dy_error *err = NULL;
	if (mgr_deploy(fx->m, "hello", slug, &rel, &err) < 0)
		fail_msg("deploy: %s", dy_error_msg(err));
	assert_ptr_equal(rel->config, first);
	int deployed = rel->version;
	set_var(fx, "S", "odd");
	if (mgr_rollback(fx->m, "hello", deployed, &rel, &err) < 0)
		fail_msg("rollback: %s", dy_error_msg(err));
	assert_ptr_equal(rel->config, first);

	char path[256];
	snprintf(path, sizeof(path), "%s/state/apps/hello/app.json", fx->dir);
	struct stat sb;
	assert_int_equal(stat(path, &sb), 0);
	/* 25 releases; a copy per release would be over 22 KB */
	assert_true(sb.st_size < 3 * 900 + 25 * 400);
	json_error_t jerr;
	json_t *j = json_load_file(path, 0, &jerr);
	assert_non_null(j);
	assert_int_equal(json_object_size(json_object_get(j, "configs")), 3);
	json_decref(j);
}

/* The tree of slug id for app hello: its stat in *st; returns 0 or -1. */
static int tree_stat(struct fx *fx, const char *id, struct stat *st)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/apps/hello/slugs/%s", fx->cfg->state_dir, id);
	return lstat(path, st);
}

/* No file of the app's slugs directory is a leftover of a pass. */
static void assert_no_leftovers(struct fx *fx)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/apps/hello/slugs", fx->cfg->state_dir);
	DIR *d = opendir(path);
	assert_non_null(d);
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strstr(de->d_name, ".unpack-") || strstr(de->d_name, ".tmp-"))
			fail_msg("leftover %s/%s", path, de->d_name);
	closedir(d);
}

/* An upload is checked and unpacked for the app in one pass over the
 * slug: its deploy decompresses it no more; a release's clean-up keeps
 * the tree of an upload not deployed yet; a tree gone is unpacked again. */
static void test_one_pass(void **state)
{
	struct fx *fx = *state;
	struct dy_error *err = NULL;
	struct state_app *app;
	struct state_release *rel;
	struct stat st, st2;
	assert_int_equal(mgr_app_get(fx->m, "hello", &app, &err), 0);

	uint64_t passes = slug_read_passes();
	char a[STATE_SLUG_ID_LEN + 1], b[STATE_SLUG_ID_LEN + 1];
	snprintf(a, sizeof(a), "%s", make_slug(fx, "a", "web: ./a\n"));
	assert_int_equal(slug_read_passes() - passes, 1);
	/* right after the upload: the app's tree, its own */
	assert_int_equal(tree_stat(fx, a, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_uid, app->uid);
	assert_int_equal(st.st_mode & 07777, 0755);
	if (mgr_deploy(fx->m, "hello", a, &rel, &err) < 0)
		fail_msg("deploy: %s", dy_error_msg(err));
	assert_int_equal(slug_read_passes() - passes, 1);
	assert_int_equal(tree_stat(fx, a, &st2), 0);
	assert_int_equal(st2.st_ino, st.st_ino);

	/* an upload, then a config release (its clean-up runs): the
	 * upload's tree waits for its deploy */
	snprintf(b, sizeof(b), "%s", make_slug(fx, "b", "web: ./b\n"));
	assert_int_equal(slug_read_passes() - passes, 2);
	json_t *ch = json_pack("{s:s}", "FOO", "one");
	assert_int_equal(mgr_config_update(fx->m, "hello", ch, &rel, &err), 0);
	json_decref(ch);
	assert_int_equal(tree_stat(fx, b, &st), 0);
	if (mgr_deploy(fx->m, "hello", b, &rel, &err) < 0)
		fail_msg("deploy: %s", dy_error_msg(err));
	assert_int_equal(slug_read_passes() - passes, 2);
	assert_int_equal(tree_stat(fx, b, &st2), 0);
	assert_int_equal(st2.st_ino, st.st_ino);

	/* a tree gone (removed by hand here; by the clean-up for an old
	 * release) is unpacked again by the deploy: a second pass */
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s/apps/hello/slugs/%s'", fx->cfg->state_dir, a);
	assert_int_equal(system(cmd), 0);
	if (mgr_deploy(fx->m, "hello", a, &rel, &err) < 0)
		fail_msg("deploy: %s", dy_error_msg(err));
	assert_int_equal(slug_read_passes() - passes, 3);
	assert_int_equal(tree_stat(fx, a, &st), 0);
	assert_int_equal(st.st_uid, app->uid);

	/* a refused upload leaves no tree, no temporary directory */
	char src[128], file[160], pf[200];
	snprintf(src, sizeof(src), "%s/src-bad", fx->dir);
	snprintf(file, sizeof(file), "%s/bad.tgz", fx->dir);
	assert_int_equal(mkdir(src, 0755), 0);
	snprintf(pf, sizeof(pf), "%s/Procfile", src);
	write_file(pf, "web: ./bad\n");
	assert_int_equal(slug_pack(src, file, SLUG_COMPRESSION_GZIP, &err), 0);
	/* cut: no end-of-archive marker */
	snprintf(cmd, sizeof(cmd), "gzip -dc '%s' | head -c 1024 | gzip > '%s.cut'", file, file);
	assert_int_equal(system(cmd), 0);
	snprintf(pf, sizeof(pf), "%s.cut", file);
	int fd = open(pf, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	struct slug_info info;
	assert_true(mgr_slug_put(fx->m, "hello", fd, &info, &err) < 0);
	close(fd);
	expect_error(&err, DY_E_INVALID,
	             "slug refused: refused entry \"./app/Procfile\": reading data");
	assert_no_leftovers(fx);
	char path[256];
	snprintf(path, sizeof(path), "%s/apps/hello/slugs", fx->cfg->state_dir);
	DIR *d = opendir(path);
	assert_non_null(d);
	struct dirent *de;
	int trees = 0;
	while ((de = readdir(d)) != NULL)
		trees += strlen(de->d_name) == STATE_SLUG_ID_LEN;
	closedir(d);
	assert_int_equal(trees, 2); /* a and b */
}

struct job_result {
	int calls;
	char msg[256];
};

static void job_cb(void *arg, const struct slug_info *info, struct dy_error *err)
{
	struct job_result *r = arg;
	(void)info;
	r->calls++;
	snprintf(r->msg, sizeof(r->msg), "%s", err ? dy_error_msg(err) : "");
	dy_error_free(&err);
}

/* A job that cannot start (dynod stopping) finishes inside the call even
 * with a pool: the caller gets no job back, which it would keep as
 * "waiting" and detach after its free. */
static void test_job_done_at_start_with_pool(void **state)
{
	struct fx *fx = *state;
	const char *id = make_slug(fx, "a", "web: ./s\n");
	char sid[STATE_SLUG_ID_LEN + 1];
	snprintf(sid, sizeof(sid), "%s", id);
	struct dy_error *err = NULL;
	struct loop *loop = NULL;
	struct work_pool *pool = NULL;
	assert_int_equal(loop_new(&loop, &err), 0);
	assert_int_equal(work_pool_new(loop, 1, &pool, &err), 0);
	mgr_set_pool(fx->m, pool);
	mgr_stop_work(fx->m);
	struct job_result r = {0};
	struct mgr_job *job = (struct mgr_job *)&r; /* not NULL: must be set */
	assert_int_equal(mgr_unpack_start(fx->m, "hello", sid, job_cb, &r, &job, &err), 0);
	assert_int_equal(r.calls, 1);
	assert_null(job);
	assert_non_null(strstr(r.msg, "dynod is stopping"));
	job = (struct mgr_job *)&r;
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	assert_int_equal(mgr_slug_put_start(fx->m, "hello", fd, job_cb, &r, &job, &err), 0);
	assert_int_equal(r.calls, 2);
	assert_null(job);
	work_pool_free(pool);
	mgr_set_pool(fx->m, NULL);
	loop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_apps, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_deploy_config_rollback, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_formation, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_release_phase_hook, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_config_bound, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_config_shared, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_job_done_at_start_with_pool, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_one_pass, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
