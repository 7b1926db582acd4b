#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "router/balancer.h"

static void test_pick_least_in_flight_of_two(void **state)
{
	struct route_backend b[2] = {{.healthy = true, .inflight = 5}, {.healthy = true}};
	struct route_backend *list[] = {&b[0], &b[1]};
	struct route_app app = {.backends = list, .nbackends = 2};
	struct bal_rng rng;
	bal_seed(&rng);
	/* with two backends both are always drawn: the less loaded wins */
	for (int i = 0; i < 100; i++)
		assert_ptr_equal(bal_pick(&app, 0, NULL, 0, &rng), &b[1]);
}

static void test_ties_spread_and_three_backends(void **state)
{
	struct route_backend b[3] = {{.healthy = true}, {.healthy = true}, {.healthy = true}};
	struct route_backend *list[] = {&b[0], &b[1], &b[2]};
	struct route_app app = {.backends = list, .nbackends = 3};
	struct bal_rng rng = {12345};
	int counts[3] = {0};
	for (int i = 0; i < 3000; i++)
		counts[bal_pick(&app, 0, NULL, 0, &rng) - b]++;
	for (int i = 0; i < 3; i++)
		assert_true(counts[i] > 800);
	/* the busiest of three is never picked: it loses every pair */
	b[2].inflight = 10;
	for (int i = 0; i < 300; i++)
		assert_ptr_not_equal(bal_pick(&app, 0, NULL, 0, &rng), &b[2]);
}

static void test_skips_unusable(void **state)
{
	struct route_backend b[4] = {{.healthy = false},
	                             {.healthy = true, .draining = true},
	                             {.healthy = true, .skip_until = 1000},
	                             {.healthy = true}};
	struct route_backend *list[] = {&b[0], &b[1], &b[2], &b[3]};
	struct route_app app = {.backends = list, .nbackends = 4};
	struct bal_rng rng = {7};
	for (int i = 0; i < 50; i++)
		assert_ptr_equal(bal_pick(&app, 500, NULL, 0, &rng), &b[3]);
	/* the skip ends */
	int seen2 = 0;
	for (int i = 0; i < 50; i++)
		seen2 += bal_pick(&app, 1000, NULL, 0, &rng) == &b[2];
	assert_true(seen2 > 0);
	/* tried ones are left out */
	struct route_backend *tried[] = {&b[3]};
	assert_null(bal_pick(&app, 500, tried, 1, &rng));
	bal_skip(&b[3], 2000);
	assert_int_equal(b[3].skip_until, 2000 + BAL_SKIP_USEC);
	assert_false(bal_usable(&b[3], 3000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pick_least_in_flight_of_two),
	    cmocka_unit_test(test_ties_spread_and_three_backends),
	    cmocka_unit_test(test_skips_unusable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
