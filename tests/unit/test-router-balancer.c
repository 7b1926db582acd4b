#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <limits.h>
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
		assert_ptr_equal(bal_pick(&app, 0, NULL, 0, UINT_MAX, &rng, NULL), &b[1]);
}

static void test_ties_spread_and_three_backends(void **state)
{
	struct route_backend b[3] = {{.healthy = true}, {.healthy = true}, {.healthy = true}};
	struct route_backend *list[] = {&b[0], &b[1], &b[2]};
	struct route_app app = {.backends = list, .nbackends = 3};
	struct bal_rng rng = {12345};
	int counts[3] = {0};
	for (int i = 0; i < 3000; i++)
		counts[bal_pick(&app, 0, NULL, 0, UINT_MAX, &rng, NULL) - b]++;
	for (int i = 0; i < 3; i++)
		assert_true(counts[i] > 800);
	/* the busiest of three is never picked: it loses every pair */
	b[2].inflight = 10;
	for (int i = 0; i < 300; i++)
		assert_ptr_not_equal(bal_pick(&app, 0, NULL, 0, UINT_MAX, &rng, NULL), &b[2]);
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
		assert_ptr_equal(bal_pick(&app, 500, NULL, 0, UINT_MAX, &rng, NULL), &b[3]);
	/* the skip ends */
	int seen2 = 0;
	for (int i = 0; i < 50; i++)
		seen2 += bal_pick(&app, 1000, NULL, 0, UINT_MAX, &rng, NULL) == &b[2];
	assert_true(seen2 > 0);
	/* tried ones are left out */
	struct route_backend *tried[] = {&b[3]};
	assert_null(bal_pick(&app, 500, tried, 1, UINT_MAX, &rng, NULL));
	bal_skip(&b[3], 2000);
	assert_int_equal(b[3].skip_until, 2000 + BAL_SKIP_USEC);
	assert_false(bal_usable(&b[3], 3000));
}

/* A dyno at its bound is not picked; when all are, the request may wait
 * (busy), in the shortest queue, FIFO, up to the queue's depth. */
static void test_bound_and_queue(void **state)
{
	/* refs: the table's; a waiter holds one more while queued */
	struct route_backend b[2] = {{.refs = 1, .healthy = true, .inflight = 2},
	                             {.refs = 1, .healthy = true, .inflight = 1}};
	struct route_backend *list[] = {&b[0], &b[1]};
	struct route_app app = {.backends = list, .nbackends = 2};
	struct bal_rng rng = {99};
	bool busy = true;
	/* bound 2: only b[1] has room, whatever the draw */
	for (int i = 0; i < 50; i++) {
		assert_ptr_equal(bal_pick(&app, 0, NULL, 0, 2, &rng, &busy), &b[1]);
		assert_true(busy);
	}
	b[1].inflight = 2;
	assert_null(bal_pick(&app, 0, NULL, 0, 2, &rng, &busy));
	assert_true(busy);
	/* no usable dyno at all is not "busy": no queue for it */
	b[0].healthy = b[1].healthy = false;
	assert_null(bal_pick(&app, 0, NULL, 0, 2, &rng, &busy));
	assert_false(busy);
	assert_null(bal_queue_pick(&app, 0, NULL, 0, 5));
	b[0].healthy = b[1].healthy = true;

	/* queues of 2 per dyno: four wait, shortest queue first, the fifth
	 * finds every queue full (H11) */
	struct bal_waiter w[5] = {{0}};
	for (int i = 0; i < 4; i++) {
		struct route_backend *q = bal_queue_pick(&app, 0, NULL, 0, 2);
		assert_non_null(q);
		bal_queue_push(q, &w[i]);
		assert_ptr_equal(w[i].be, q);
	}
	assert_int_equal(b[0].nwait, 2);
	assert_int_equal(b[1].nwait, 2);
	assert_int_equal(b[0].refs, 3);
	assert_null(bal_queue_pick(&app, 0, NULL, 0, 2));
	/* queue 0: nobody waits */
	assert_null(bal_queue_pick(&app, 0, NULL, 0, 0));

	/* FIFO per dyno; one leaving the middle keeps the order */
	struct bal_waiter *first = b[0].wait_head;
	struct bal_waiter *second = first->next;
	bal_queue_remove(first);
	assert_null(first->be);
	assert_int_equal(b[0].nwait, 1);
	assert_ptr_equal(bal_queue_pick(&app, 0, NULL, 0, 2), &b[0]);
	bal_queue_push(&b[0], &w[4]);
	assert_ptr_equal(bal_queue_pop(&b[0]), second);
	assert_ptr_equal(bal_queue_pop(&b[0]), &w[4]);
	assert_null(bal_queue_pop(&b[0]));
	assert_null(b[0].wait_tail);
	assert_int_equal(b[0].refs, 1);
	while (bal_queue_pop(&b[1]))
		;
	assert_int_equal(b[1].refs, 1);
	bal_queue_remove(&w[0]); /* not queued: a no-op */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pick_least_in_flight_of_two),
	    cmocka_unit_test(test_ties_spread_and_three_backends),
	    cmocka_unit_test(test_skips_unusable),
	    cmocka_unit_test(test_bound_and_queue),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
