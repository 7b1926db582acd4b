#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "router/routes.h"

static const char good[] =
    "{\"version\": 42, \"apps\": [{\"name\": \"hello\", \"hosts\": [\"hello.localhost\", "
    "\"www.example.com\"], \"state\": \"up\", \"keepalive\": true, \"health_path\": null, "
    "\"backends\": [{\"dyno\": \"web.1\", \"addr\": \"10.213.0.5:5000\", \"draining\": false},"
    "{\"dyno\": \"web.2\", \"addr\": \"[::1]:5001\", \"draining\": true}]},"
    "{\"name\": \"down\", \"state\": \"crashed\", \"keepalive\": false, \"health_path\": \"/h\","
    " \"backends\": []}]}";

static int added;
static void on_added(struct route_backend *b, void *data)
{
	added++;
}
static int removed;
static void on_removed(struct route_backend *b, void *data)
{
	removed++;
}

static struct route_table *parse(const char *s, const struct route_table *old)
{
	struct route_hooks hooks = {on_added, on_removed, NULL};
	struct route_table *t = NULL;
	_cleanup_error_ struct dy_error *err = NULL;
	int r = route_table_parse(s, strlen(s), "localhost", old, &hooks, &t, &err);
	if (r < 0)
		print_error("%s\n", dy_error_msg(err));
	return t;
}

static void test_parse_and_lookup(void **state)
{
	added = 0;
	struct route_table *t = parse(good, NULL);
	assert_non_null(t);
	assert_int_equal(t->version, 42);
	assert_int_equal(t->napps, 2);
	assert_int_equal(added, 2);
	struct route_app *a = route_lookup(t, "hello.localhost", 15);
	assert_non_null(a);
	assert_string_equal(a->name, "hello");
	assert_ptr_equal(route_lookup(t, "WWW.example.COM:8080", 20), a);
	assert_ptr_equal(route_lookup(t, "hello.localhost.", 16), a);
	route_table_free(t);
	t = parse("{\"apps\": [{\"name\": \"a\", \"hosts\": [\"x.example.\", \"a.localhost.\"]}]}",
	          NULL);
	assert_non_null(t);
	assert_int_equal(t->apps[0].nhosts, 2);
	assert_non_null(route_lookup(t, "x.example", 9));
	assert_non_null(route_lookup(t, "x.example.", 10));
	route_table_free(t);
	t = parse(good, NULL);
	a = route_lookup(t, "hello.localhost", 15);
	assert_null(route_lookup(t, "nope.localhost", 14));
	assert_null(route_lookup(t, "hello.localhos", 14));
	struct route_app *d = route_lookup(t, "down.localhost", 14);
	assert_non_null(d);
	assert_int_equal(d->state, ROUTE_CRASHED);
	assert_false(d->keepalive);
	assert_string_equal(d->health_path, "/h");
	assert_int_equal(a->nbackends, 2);
	assert_true(a->backends[0]->healthy);
	assert_false(a->backends[0]->draining);
	assert_true(a->backends[1]->draining);
	assert_string_equal(a->backends[1]->addr_text, "[::1]:5001");
	route_table_free(t);
}

static void test_reload_keeps_backends(void **state)
{
	struct route_table *t1 = parse(good, NULL);
	struct route_backend *b1 = route_lookup(t1, "hello.localhost", 15)->backends[0];
	b1->inflight = 3;
	b1->healthy = false;
	added = removed = 0;
	struct route_table *t2 = parse("{\"version\": 43, \"apps\": [{\"name\": \"hello\", "
	                               "\"backends\": [{\"dyno\": \"web.1\", "
	                               "\"addr\": \"10.213.0.5:5000\"}, {\"dyno\": \"web.3\", "
	                               "\"addr\": \"10.213.0.6:5000\"}]}]}",
	                               t1);
	assert_non_null(t2);
	assert_int_equal(added, 1); /* web.3 only */
	struct route_app *a = route_lookup(t2, "hello.localhost", 15);
	assert_ptr_equal(a->backends[0], b1);
	assert_int_equal(b1->inflight, 3);
	assert_false(b1->healthy);
	assert_true(a->backends[1]->healthy);
	route_table_retire(t1, t2, &(struct route_hooks){on_added, on_removed, NULL});
	assert_int_equal(removed, 1); /* web.2 */
	route_table_free(t1);
	route_table_free(t2);
}

static void test_failed_reload_changes_nothing(void **state)
{
	struct route_table *t1 = parse(good, NULL);
	struct route_backend *b1 = route_lookup(t1, "hello.localhost", 15)->backends[0];
	/* web.1 turns draining, but a later app is bad: the reload fails */
	const char *bad =
	    "{\"apps\": [{\"name\": \"hello\", \"keepalive\": false, \"backends\": "
	    "[{\"dyno\": \"web.1\", \"addr\": \"10.213.0.5:5000\", \"draining\": true}]},"
	    "{\"name\": \"x\", \"state\": \"bad\"}]}";
	struct route_table *t2 = NULL;
	_cleanup_error_ struct dy_error *err = NULL;
	assert_true(route_table_parse(bad, strlen(bad), "localhost", t1, NULL, &t2, &err) < 0);
	assert_null(t2);
	assert_false(b1->draining);
	assert_true(b1->keepalive);
	assert_int_equal(b1->refs, 1);
	route_table_free(t1);
}

static void test_errors_name_the_key(void **state)
{
	static const struct {
		const char *json, *msg;
	} cases[] = {
	    {"{\"apps\": 1}", "apps: missing or not an array"},
	    {"{\"apps\": [{\"name\": \"a b\"}]}", "apps[0].name: missing or invalid"},
	    {"{\"apps\": [{\"name\": \"a\", \"state\": \"sleepy\"}]}",
	     "apps[0].state: unknown state \"sleepy\""},
	    {"{\"apps\": [{\"name\": \"a\", \"backends\": [{\"dyno\": \"web.1\", \"addr\": "
	     "\"1.2.3.4\"}]}]}",
	     "apps[0].backends[0].addr: invalid address"},
	    {"{\"apps\": [{\"name\": \"a\", \"backends\": [{\"dyno\": \"web.1\", \"addr\": "
	     "\"1.2.3.4:0\"}]}]}",
	     "apps[0].backends[0].addr: invalid address"},
	    {"{\"apps\": [{\"name\": \"a\", \"hosts\": [\"x.y\"]}, {\"name\": \"b\", \"hosts\": "
	     "[\"X.y\"]}]}",
	     "host \"X.y\" belongs to two apps"},
	    {"{\"apps\": [{\"name\": \"a\"}, {\"name\": \"a\"}]}",
	     "apps[1].name: \"a\" listed twice"},
	    {"{\"apps\": [{\"name\": \"a\", \"health_path\": \"x\"}]}",
	     "apps[0].health_path: not an absolute path"},
	    {"[", NULL},
	};
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct route_table *t = NULL;
		_cleanup_error_ struct dy_error *err = NULL;
		int r = route_table_parse(cases[i].json, strlen(cases[i].json), "localhost", NULL,
		                          NULL, &t, &err);
		assert_true(r < 0);
		assert_null(t);
		if (cases[i].msg)
			assert_string_equal(dy_error_msg(err), cases[i].msg);
	}
}

/* A rollout lists web.1 twice, the old one draining beside its successor:
 * each keeps its own backend (keyed on its id) across reloads. */
static void test_a_name_twice_by_id(void **state)
{
	static const char two[] =
	    "{\"version\": 1, \"apps\": [{\"name\": \"a\", \"backends\": ["
	    "{\"id\": \"old1\", \"dyno\": \"web.1\", \"addr\": \"10.0.0.1:5000\"},"
	    "{\"id\": \"new1\", \"dyno\": \"web.1\", \"addr\": \"10.0.0.2:5000\"}]}]}";
	static const char drained[] =
	    "{\"version\": 2, \"apps\": [{\"name\": \"a\", \"backends\": ["
	    "{\"id\": \"old1\", \"dyno\": \"web.1\", \"addr\": \"10.0.0.1:5000\", "
	    "\"draining\": true},"
	    "{\"id\": \"new1\", \"dyno\": \"web.1\", \"addr\": \"10.0.0.2:5000\"}]}]}";
	struct route_table *t1 = parse(two, NULL);
	assert_non_null(t1);
	assert_int_equal(t1->apps[0].nbackends, 2);
	struct route_backend *old1 = t1->apps[0].backends[0], *new1 = t1->apps[0].backends[1];
	assert_string_equal(old1->id, "old1");
	assert_string_equal(new1->dyno, "web.1");
	struct route_table *t2 = parse(drained, t1);
	assert_non_null(t2);
	/* the same objects, the old one now draining (set once t2 is taken) */
	assert_ptr_equal(t2->apps[0].backends[0], old1);
	assert_ptr_equal(t2->apps[0].backends[1], new1);
	route_table_free(t1);
	route_table_free(t2);

	struct route_table *t = NULL;
	_cleanup_error_ struct dy_error *err = NULL;
	static const char same[] =
	    "{\"apps\": [{\"name\": \"a\", \"backends\": ["
	    "{\"id\": \"x\", \"dyno\": \"web.1\", \"addr\": \"10.0.0.1:5000\"},"
	    "{\"id\": \"x\", \"dyno\": \"web.2\", \"addr\": \"10.0.0.2:5000\"}]}]}";
	assert_true(route_table_parse(same, strlen(same), "localhost", NULL, NULL, &t, &err) < 0);
	assert_string_equal(dy_error_msg(err), "apps[0].backends[1]: id x listed twice");
	dy_error_free(&err);
	/* without ids (a table written by hand), the name is the key */
	static const char names[] =
	    "{\"apps\": [{\"name\": \"a\", \"backends\": ["
	    "{\"dyno\": \"web.1\", \"addr\": \"10.0.0.1:5000\"},"
	    "{\"dyno\": \"web.1\", \"addr\": \"10.0.0.2:5000\"}]}]}";
	assert_true(route_table_parse(names, strlen(names), "localhost", NULL, NULL, &t, &err) <
	            0);
	assert_string_equal(dy_error_msg(err), "apps[0].backends[1]: id web.1 listed twice");
	dy_error_free(&err);
	static const char bad[] = "{\"apps\": [{\"name\": \"a\", \"backends\": ["
	                          "{\"id\": 7, \"dyno\": \"web.1\", \"addr\": \"10.0.0.1:5000\"}]}]}";
	assert_true(route_table_parse(bad, strlen(bad), "localhost", NULL, NULL, &t, &err) < 0);
	assert_string_equal(dy_error_msg(err), "apps[0].backends[0].id: missing or invalid");
}

static void test_parse_addr(void **state)
{
	struct sockaddr_storage sa;
	socklen_t len;
	assert_int_equal(route_parse_addr("127.0.0.1:80", &sa, &len), 0);
	assert_int_equal(sa.ss_family, AF_INET);
	assert_int_equal(route_parse_addr("[::1]:80", &sa, &len), 0);
	assert_int_equal(sa.ss_family, AF_INET6);
	assert_true(route_parse_addr("127.0.0.1", &sa, &len) < 0);
	assert_true(route_parse_addr("127.0.0.1:x", &sa, &len) < 0);
	assert_true(route_parse_addr("127.0.0.1:65536", &sa, &len) < 0);
	assert_true(route_parse_addr("host:80", &sa, &len) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_and_lookup),
	    cmocka_unit_test(test_reload_keeps_backends),
	    cmocka_unit_test(test_failed_reload_changes_nothing),
	    cmocka_unit_test(test_errors_name_the_key),
	    cmocka_unit_test(test_a_name_twice_by_id),
	    cmocka_unit_test(test_parse_addr),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
