/* Whether a drain is done, from the router's /metrics
 * (runtime/manager/drain-watch.c): the routes version the router runs and
 * each backend's gauges, as router/metrics.c writes them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/manager/drain-watch.h"

static const char metrics[] =
    "# TYPE dyno_router_routes_version gauge\n"
    "dyno_router_routes_version 42\n"
    "# TYPE dyno_router_backend_up gauge\n"
    "dyno_router_backend_up{app=\"a\",dyno=\"web.1\",addr=\"10.213.0.5:5000\"} 1\n"
    "# TYPE dyno_router_backend_draining gauge\n"
    "dyno_router_backend_draining{app=\"a\",dyno=\"web.1\",addr=\"10.213.0.5:5000\"} 1\n"
    "dyno_router_backend_draining{app=\"a\",dyno=\"web.1\",addr=\"10.213.0.9:5000\"} 0\n"
    "dyno_router_backend_draining{app=\"b\",dyno=\"web.1\",addr=\"10.213.0.7:5000\"} 1\n"
    "# TYPE dyno_router_backend_in_flight gauge\n"
    "dyno_router_backend_in_flight{app=\"a\",dyno=\"web.1\",addr=\"10.213.0.5:5000\"} 3\n"
    "dyno_router_backend_in_flight{app=\"a\",dyno=\"web.1\",addr=\"10.213.0.9:5000\"} 7\n"
    "dyno_router_backend_in_flight{app=\"b\",dyno=\"web.1\",addr=\"10.213.0.7:5000\"} 0\n"
    "dyno_router_backend_in_flight{app=\"c\",dyno=\"web.1\",addr=\"bad\"} x\n";

static void test_parse(void **state)
{
	(void)state;
	struct dw_metrics m;
	assert_int_equal(dw_parse(metrics, strlen(metrics), &m), 0);
	assert_int_equal(m.version, 42);
	assert_int_equal(m.n, 3);
	assert_string_equal(m.backends[0].addr, "10.213.0.5:5000");
	assert_true(m.backends[0].draining);
	assert_int_equal(m.backends[0].in_flight, 3);
	assert_false(m.backends[1].draining);
	assert_int_equal(m.backends[1].in_flight, 7);
	dw_metrics_clear(&m);
	/* a one-digit version */
	static const char small[] = "dyno_router_routes_version 5\n";
	assert_int_equal(dw_parse(small, strlen(small), &m), 0);
	assert_int_equal(m.version, 5);
	dw_metrics_clear(&m);
	/* nothing of ours: no version, no backend */
	assert_int_equal(dw_parse("hello\n", 6, &m), 0);
	assert_int_equal(m.version, -1);
	assert_int_equal(m.n, 0);
	dw_metrics_clear(&m);
}

static void test_drained(void **state)
{
	(void)state;
	struct dw_metrics m;
	assert_int_equal(dw_parse(metrics, strlen(metrics), &m), 0);
	/* requests in flight: not yet */
	assert_false(dw_drained(&m, "10.213.0.5:5000", 42));
	/* none in flight, and the router runs the table that drains it */
	assert_true(dw_drained(&m, "10.213.0.7:5000", 42));
	/* the router has not loaded that table yet: it may still pick it */
	assert_false(dw_drained(&m, "10.213.0.7:5000", 43));
	/* no longer a backend of the table the router runs */
	assert_true(dw_drained(&m, "10.213.0.8:5000", 40));
	dw_metrics_clear(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_drained),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
