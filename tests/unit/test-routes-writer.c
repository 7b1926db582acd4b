/* runtime/manager/routes-writer: the routes.json dynod writes for the
 * router (docs/router.md; router/routes.c parses it): its shape, app
 * states, backends, versions that go on across writers, atomic
 * replacement that leaves no temporary file, and what the router's own
 * parser reads from it. */
#include <arpa/inet.h>
#include <dirent.h>
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

/* a group the file is given to: another than ours when we may chown */
#define TEST_GID (geteuid() == 0 ? (gid_t)12345 : getegid())

#include "router/routes.h"
#include "runtime/manager/routes-writer.h"

static struct in_addr ip(const char *s)
{
	struct in_addr a;
	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a;
}

static void rmrf(const char *dir)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

/* The names in dir, sorted and joined by spaces. */
static void list_dir(const char *dir, char *buf, size_t size)
{
	struct dirent **names;
	int n = scandir(dir, &names, NULL, alphasort);
	assert_true(n >= 0);
	buf[0] = '\0';
	for (int i = 0; i < n; i++) {
		if (strcmp(names[i]->d_name, ".") != 0 && strcmp(names[i]->d_name, "..") != 0) {
			strncat(buf, names[i]->d_name, size - strlen(buf) - 2);
			strcat(buf, " ");
		}
		free(names[i]);
	}
	free(names);
}

static json_t *app_of(json_t *doc, size_t i)
{
	json_t *a = json_array_get(json_object_get(doc, "apps"), i);
	assert_non_null(a);
	return a;
}

static const char *str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	assert_non_null(s);
	return s;
}

static void test_render_shape(void **state)
{
	(void)state;
	const struct rw_dyno web[] = {
	    {.name = "web.1",
	     .id = "new-web-1",
	     .state = LC_UP,
	     .running = true,
	     .addr = ip("10.0.0.2"),
	     .port = 5000},
	    {.name = "web.2",
	     .state = LC_STARTING,
	     .running = true,
	     .addr = ip("10.0.0.3"),
	     .port = 5000},
	    /* the web.1 it replaces, draining beside it */
	    {.name = "web.1",
	     .id = "old-web-1",
	     .state = LC_UP,
	     .stopping = true,
	     .running = true,
	     .addr = ip("10.0.0.4"),
	     .port = 5000},
	};
	const struct rw_app apps[] = {
	    {.name = "hello", .web = true, .dynos = web, .ndynos = 3},
	    {.name = "quiet", .web = false},
	};
	json_t *doc = rw_render(7, "example.test", apps, 2);
	assert_non_null(doc);
	assert_int_equal(json_integer_value(json_object_get(doc, "version")), 7);
	assert_int_equal(json_array_size(json_object_get(doc, "apps")), 2);

	json_t *a = app_of(doc, 0);
	assert_string_equal(str(a, "name"), "hello");
	json_t *hosts = json_object_get(a, "hosts");
	assert_int_equal(json_array_size(hosts), 1);
	assert_string_equal(json_string_value(json_array_get(hosts, 0)), "hello.example.test");
	assert_string_equal(str(a, "state"), "up");
	assert_true(json_is_true(json_object_get(a, "keepalive")));
	assert_true(json_is_null(json_object_get(a, "health_path")));
	/* only dynos that are up are backends; one being stopped drains */
	json_t *b = json_object_get(a, "backends");
	assert_int_equal(json_array_size(b), 2);
	assert_string_equal(str(json_array_get(b, 0), "dyno"), "web.1");
	assert_string_equal(str(json_array_get(b, 0), "id"), "new-web-1");
	assert_string_equal(str(json_array_get(b, 0), "addr"), "10.0.0.2:5000");
	assert_true(json_is_false(json_object_get(json_array_get(b, 0), "draining")));
	assert_string_equal(str(json_array_get(b, 1), "dyno"), "web.1");
	assert_string_equal(str(json_array_get(b, 1), "id"), "old-web-1");
	assert_string_equal(str(json_array_get(b, 1), "addr"), "10.0.0.4:5000");
	assert_true(json_is_true(json_object_get(json_array_get(b, 1), "draining")));

	json_t *q = app_of(doc, 1);
	assert_string_equal(str(q, "state"), "no-web");
	assert_int_equal(json_array_size(json_object_get(q, "backends")), 0);
	json_decref(doc);
}

static const char *state_of(const struct rw_dyno *dynos, size_t n, bool web)
{
	static char buf[16];
	const struct rw_app app = {.name = "a", .web = web, .dynos = dynos, .ndynos = n};
	json_t *doc = rw_render(1, "d", &app, 1);
	assert_non_null(doc);
	snprintf(buf, sizeof(buf), "%s", str(app_of(doc, 0), "state"));
	json_decref(doc);
	return buf;
}

static void test_app_states(void **state)
{
	(void)state;
	const struct rw_dyno crashed = {.name = "web.1", .state = LC_CRASHED};
	const struct rw_dyno up = {.name = "web.2", .state = LC_UP, .running = true, .port = 5000};
	const struct rw_dyno draining = {
	    .name = "web.3", .state = LC_UP, .stopping = true, .running = true, .port = 5000};
	const struct rw_dyno starting = {.name = "web.4", .state = LC_STARTING, .running = true};
	const struct rw_dyno crashed_stopping = {
	    .name = "web.5", .state = LC_CRASHED, .stopping = true};

	/* a web dyno crashed and none up */
	assert_string_equal(state_of(&crashed, 1, true), "crashed");
	const struct rw_dyno crashed_draining[] = {crashed, draining};
	assert_string_equal(state_of(crashed_draining, 2, true), "crashed");
	/* one up is enough */
	const struct rw_dyno crashed_up[] = {crashed, up};
	assert_string_equal(state_of(crashed_up, 2, true), "up");
	/* starting, or nothing yet: up (the router queues, no H10) */
	assert_string_equal(state_of(&starting, 1, true), "up");
	assert_string_equal(state_of(NULL, 0, true), "up");
	/* a crashed dyno being stopped does not count */
	assert_string_equal(state_of(&crashed_stopping, 1, true), "up");
	/* no web type (or scaled to 0): no-web, whatever runs */
	assert_string_equal(state_of(crashed_up, 2, false), "no-web");
}

/* Custom domains follow the app's own host; maintenance wins over every
 * other state (the router answers H80), backends still listed. */
static void test_domains_and_maintenance(void **state)
{
	(void)state;
	const struct rw_dyno up = {
	    .name = "web.1", .state = LC_UP, .running = true, .addr = ip("10.0.0.2"), .port = 5000};
	const char *const hosts[] = {"www.example.com", "api.example.com"};
	const struct rw_app app = {.name = "hello",
	                           .web = true,
	                           .maintenance = true,
	                           .hosts = hosts,
	                           .nhosts = 2,
	                           .dynos = &up,
	                           .ndynos = 1};
	json_t *doc = rw_render(1, "localhost", &app, 1);
	json_t *a = app_of(doc, 0);
	assert_string_equal(str(a, "state"), "maintenance");
	json_t *h = json_object_get(a, "hosts");
	assert_int_equal(json_array_size(h), 3);
	assert_string_equal(json_string_value(json_array_get(h, 0)), "hello.localhost");
	assert_string_equal(json_string_value(json_array_get(h, 2)), "api.example.com");
	assert_int_equal(json_array_size(json_object_get(a, "backends")), 1);
	json_decref(doc);
}

/* The text is written by hand (not through jansson): strings that need
 * escaping come back as they were, and the document is one line. */
static void test_strings_escaped(void **state)
{
	(void)state;
	const struct rw_dyno up = {.name = "web.\"1\\",
	                           .id = "id\n\x01",
	                           .state = LC_UP,
	                           .running = true,
	                           .addr = ip("10.0.0.2"),
	                           .port = 5000};
	const char *const hosts[] = {"a\"b\\c"};
	const struct rw_app app = {
	    .name = "hello", .web = true, .hosts = hosts, .nhosts = 1, .dynos = &up, .ndynos = 1};
	json_t *doc = rw_render(3, "localhost", &app, 1);
	assert_non_null(doc);
	json_t *a = app_of(doc, 0);
	assert_string_equal(json_string_value(json_array_get(json_object_get(a, "hosts"), 1)),
	                    "a\"b\\c");
	json_t *b = json_array_get(json_object_get(a, "backends"), 0);
	assert_string_equal(str(b, "dyno"), "web.\"1\\");
	assert_string_equal(str(b, "id"), "id\n\x01");
	assert_string_equal(str(b, "addr"), "10.0.0.2:5000");
	assert_true(json_is_false(json_object_get(b, "draining")));
	assert_true(json_is_null(json_object_get(a, "health_path")));
	json_decref(doc);
}

static void test_write_versions_atomic(void **state)
{
	(void)state;
	char dir[] = "/tmp/test-routes-writer-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128];
	snprintf(path, sizeof(path), "%s/routes.json", dir);

	struct rw_writer *w = NULL;
	struct dy_error *err = NULL;
	assert_int_equal(rw_new(dir, "example.test", TEST_GID, &w, &err), 0);
	assert_int_equal(rw_version(w), 0);
	const struct rw_dyno web = {
	    .name = "web.1", .state = LC_UP, .running = true, .addr = ip("10.1.2.3"), .port = 5000};
	const struct rw_app app = {.name = "hello", .web = true, .dynos = &web, .ndynos = 1};
	for (int i = 1; i <= 3; i++) {
		assert_int_equal(rw_write(w, &app, 1, &err), 0);
		assert_int_equal(rw_version(w), (uint64_t)i);
		json_error_t je;
		json_t *doc = json_load_file(path, 0, &je);
		assert_non_null(doc);
		assert_int_equal(json_integer_value(json_object_get(doc, "version")), i);
		assert_string_equal(
		    str(json_array_get(json_object_get(app_of(doc, 0), "backends"), 0), "addr"),
		    "10.1.2.3:5000");
		json_decref(doc);
	}
	/* one line, ending in a newline; nothing but the file in dir */
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char text[1024];
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	assert_true(n > 0 && text[n - 1] == '\n');
	assert_ptr_equal(strchr(text, '\n'), text + n - 1);
	struct stat sb;
	assert_int_equal(stat(path, &sb), 0);
	/* root's, readable by the API's group only (docs/operating.md) */
	assert_int_equal(sb.st_mode & 0777, 0640);
	if (geteuid() == 0)
		assert_int_equal(sb.st_gid, TEST_GID);
	char names[256];
	list_dir(dir, names, sizeof(names));
	assert_string_equal(names, "routes.json ");
	rw_free(w);

	/* a new writer (dynod restarted) goes on from the file's version */
	assert_int_equal(rw_new(dir, "example.test", TEST_GID, &w, &err), 0);
	assert_int_equal(rw_version(w), 3);
	assert_int_equal(rw_write(w, NULL, 0, &err), 0);
	json_t *doc = json_load_file(path, 0, NULL);
	assert_int_equal(json_integer_value(json_object_get(doc, "version")), 4);
	assert_int_equal(json_array_size(json_object_get(doc, "apps")), 0);
	json_decref(doc);
	rw_free(w);
	rmrf(dir);
}

static void test_write_failure_leaves_nothing(void **state)
{
	(void)state;
	char dir[] = "/tmp/test-routes-writer-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128];
	snprintf(path, sizeof(path), "%s/routes.json", dir);
	/* a directory in the way: the rename fails, even for root */
	assert_int_equal(mkdir(path, 0755), 0);
	struct rw_writer *w = NULL;
	struct dy_error *err = NULL;
	assert_int_equal(rw_new(dir, "example.test", TEST_GID, &w, &err), 0);
	assert_true(rw_write(w, NULL, 0, &err) < 0);
	assert_non_null(err);
	assert_non_null(strstr(dy_error_msg(err), "routes.json"));
	dy_error_free(&err);
	char names[256];
	list_dir(dir, names, sizeof(names));
	assert_string_equal(names, "routes.json ");
	struct stat sb;
	assert_int_equal(stat(path, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	rw_free(w);
	rmrf(dir);
}

/* The contract end to end: what dynod writes, the router reads. */
static void test_router_reads_it(void **state)
{
	(void)state;
	char dir[] = "/tmp/test-routes-writer-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128];
	snprintf(path, sizeof(path), "%s/routes.json", dir);
	const struct rw_dyno web[] = {
	    {.name = "web.1",
	     .state = LC_UP,
	     .running = true,
	     .addr = ip("10.0.0.2"),
	     .port = 5000},
	    {.name = "web.2",
	     .state = LC_UP,
	     .stopping = true,
	     .running = true,
	     .addr = ip("10.0.0.3"),
	     .port = 5000},
	};
	const struct rw_dyno crashed = {.name = "web.1", .state = LC_CRASHED};
	const struct rw_app apps[] = {
	    {.name = "hello", .web = true, .dynos = web, .ndynos = 2},
	    {.name = "broken", .web = true, .dynos = &crashed, .ndynos = 1},
	    {.name = "worker-only", .web = false},
	};
	struct rw_writer *w = NULL;
	struct dy_error *err = NULL;
	assert_int_equal(rw_new(dir, "example.test", TEST_GID, &w, &err), 0);
	assert_int_equal(rw_write(w, apps, 3, &err), 0);
	struct route_table *t = NULL;
	if (route_table_load(path, "example.test", NULL, NULL, &t, &err) < 0)
		fail_msg("route_table_load: %s", dy_error_msg(err));
	assert_int_equal(t->version, 1);
	assert_int_equal(t->napps, 3);
	struct route_app *a = route_lookup(t, "hello.example.test", strlen("hello.example.test"));
	assert_non_null(a);
	assert_int_equal(a->state, ROUTE_UP);
	assert_true(a->keepalive);
	assert_null(a->health_path);
	assert_int_equal(a->nbackends, 2);
	assert_string_equal(a->backends[0]->dyno, "web.1");
	assert_string_equal(a->backends[0]->addr_text, "10.0.0.2:5000");
	assert_false(a->backends[0]->draining);
	assert_string_equal(a->backends[1]->dyno, "web.2");
	assert_true(a->backends[1]->draining);
	a = route_lookup(t, "broken.example.test", strlen("broken.example.test"));
	assert_non_null(a);
	assert_int_equal(a->state, ROUTE_CRASHED);
	assert_int_equal(a->nbackends, 0);
	a = route_lookup(t, "worker-only.example.test", strlen("worker-only.example.test"));
	assert_non_null(a);
	assert_int_equal(a->state, ROUTE_NO_WEB);
	route_table_free(t);
	rw_free(w);
	rmrf(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_render_shape),
	    cmocka_unit_test(test_app_states),
	    cmocka_unit_test(test_write_versions_atomic),
	    cmocka_unit_test(test_write_failure_leaves_nothing),
	    cmocka_unit_test(test_router_reads_it),
	    cmocka_unit_test(test_domains_and_maintenance),
	    cmocka_unit_test(test_strings_escaped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
