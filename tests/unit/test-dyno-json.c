/* runtime/manager/dyno-json: the API's dyno object (docs/design.md,
 * "Platform API") and the list sorted by name. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "runtime/manager/dyno-json.h"

static struct dj_dyno web1(void)
{
	struct dj_dyno d = {.name = "web.1",
	                    .type = "web",
	                    .command = "bin/web",
	                    .size = "standard-1x",
	                    .state = LC_UP,
	                    .version = 3,
	                    .running = true,
	                    .port = 5000,
	                    .pid = 4242,
	                    .created_at = "2024-01-02T03:04:05Z",
	                    .updated_at = "2024-01-02T03:04:06Z"};
	inet_pton(AF_INET, "10.0.0.9", &d.addr);
	return d;
}

static void test_object(void **state)
{
	(void)state;
	struct dj_dyno d = web1();
	json_t *j = dj_dyno_json(&d);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "name")), "web.1");
	assert_string_equal(json_string_value(json_object_get(j, "type")), "web");
	assert_string_equal(json_string_value(json_object_get(j, "state")), "up");
	assert_string_equal(json_string_value(json_object_get(j, "command")), "bin/web");
	assert_string_equal(json_string_value(json_object_get(j, "size")), "standard-1x");
	assert_int_equal(
	    json_integer_value(json_object_get(json_object_get(j, "release"), "version")), 3);
	assert_string_equal(json_string_value(json_object_get(j, "addr")), "10.0.0.9:5000");
	assert_string_equal(json_string_value(json_object_get(j, "created_at")),
	                    "2024-01-02T03:04:05Z");
	assert_string_equal(json_string_value(json_object_get(j, "updated_at")),
	                    "2024-01-02T03:04:06Z");
	assert_int_equal(json_integer_value(json_object_get(j, "pid")), 4242);
	assert_true(json_is_false(json_object_get(j, "stopping")));
	assert_int_equal(json_object_size(j), 11);
	json_decref(j);

	/* draining after a rollout: stopping */
	d.stopping = true;
	j = dj_dyno_json(&d);
	assert_true(json_is_true(json_object_get(j, "stopping")));
	json_decref(j);
	d.stopping = false;

	/* crashed, no process: no address, pid 0 */
	d.state = LC_CRASHED;
	d.running = false;
	j = dj_dyno_json(&d);
	assert_string_equal(json_string_value(json_object_get(j, "state")), "crashed");
	assert_true(json_is_null(json_object_get(j, "addr")));
	assert_int_equal(json_integer_value(json_object_get(j, "pid")), 0);
	json_decref(j);

	/* not web: no port, no address */
	d = web1();
	d.name = "worker.1";
	d.port = 0;
	j = dj_dyno_json(&d);
	assert_true(json_is_null(json_object_get(j, "addr")));
	assert_int_equal(json_integer_value(json_object_get(j, "pid")), 4242);
	json_decref(j);
}

static void test_list_sorted(void **state)
{
	(void)state;
	struct dj_dyno v[3] = {web1(), web1(), web1()};
	v[0].name = "worker.1";
	v[1].name = "web.2";
	v[2].name = "release.1";
	json_t *l = dj_list_json(v, 3);
	assert_int_equal(json_array_size(l), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(l, 0), "name")),
	                    "release.1");
	assert_string_equal(json_string_value(json_object_get(json_array_get(l, 1), "name")),
	                    "web.2");
	assert_string_equal(json_string_value(json_object_get(json_array_get(l, 2), "name")),
	                    "worker.1");
	json_decref(l);
	l = dj_list_json(NULL, 0);
	assert_true(json_is_array(l));
	assert_int_equal(json_array_size(l), 0);
	json_decref(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_object),
	    cmocka_unit_test(test_list_sorted),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
