/* runtime/manager/lifecycle: the dyno state machine: transitions, the
 * crash cool-off (at once, then doubling to a cap), its reset after time
 * up, and one-offs that never restart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/manager/lifecycle.h"

#define SEC    (1000ULL * 1000)
#define MINUTE (60 * SEC)

/* dynod.json's defaults: 10s doubling to 20m, reset after 5m up */
static const struct lc_policy policy = {
    .first = 10 * SEC, .max = 20 * MINUTE, .reset_after = 5 * MINUTE};

static void test_state_str(void **state)
{
	(void)state;
	assert_string_equal(lc_state_str(LC_STARTING), "starting");
	assert_string_equal(lc_state_str(LC_UP), "up");
	assert_string_equal(lc_state_str(LC_CRASHED), "crashed");
	assert_string_equal(lc_state_str(LC_DOWN), "down");
	assert_string_equal(lc_state_str(LC_COMPLETE), "complete");
	assert_string_equal(lc_state_str((enum lc_state)99), "unknown");
}

static void test_cooloff_doubles_to_cap(void **state)
{
	(void)state;
	assert_int_equal(lc_cooloff(&policy, 0), 0);
	assert_int_equal(lc_cooloff(&policy, 1), 0); /* the first restart: at once */
	assert_int_equal(lc_cooloff(&policy, 2), 10 * SEC);
	assert_int_equal(lc_cooloff(&policy, 3), 20 * SEC);
	assert_int_equal(lc_cooloff(&policy, 4), 40 * SEC);
	assert_int_equal(lc_cooloff(&policy, 8), 640 * SEC);
	assert_int_equal(lc_cooloff(&policy, 9), 20 * MINUTE); /* 1280 s capped */
	assert_int_equal(lc_cooloff(&policy, 10), 20 * MINUTE);
	/* no overflow however many crashes */
	assert_int_equal(lc_cooloff(&policy, 100000), 20 * MINUTE);
	assert_int_equal(lc_cooloff(&policy, UINT32_MAX), 20 * MINUTE);
}

static void test_transitions(void **state)
{
	(void)state;
	struct lc_dyno l;
	lc_init(&l, false);
	assert_int_equal(l.state, LC_STARTING);
	assert_int_equal(l.crashes, 0);
	lc_started(&l);
	assert_int_equal(l.state, LC_STARTING);
	lc_up(&l, 1000 * SEC);
	assert_int_equal(l.state, LC_UP);
	assert_int_equal(l.up_since, 1000 * SEC);
	/* an exit of a formation dyno is a crash, restarted at once */
	uint64_t delay = 12345;
	assert_int_equal(lc_exited(&l, &policy, 1001 * SEC, &delay), LC_NEXT_RESTART);
	assert_int_equal(l.state, LC_CRASHED);
	assert_int_equal(l.crashes, 1);
	assert_int_equal(delay, 0);
	lc_started(&l);
	assert_int_equal(l.state, LC_STARTING);
	/* crashing while starting (never up) counts too */
	assert_int_equal(lc_exited(&l, &policy, 1002 * SEC, &delay), LC_NEXT_RESTART);
	assert_int_equal(l.crashes, 2);
	assert_int_equal(delay, 10 * SEC);
}

static void test_crash_loop_and_reset(void **state)
{
	(void)state;
	struct lc_dyno l;
	lc_init(&l, false);
	uint64_t now = 1 * SEC, delay = 0;
	const uint64_t want[] = {0, 10 * SEC, 20 * SEC, 40 * SEC, 80 * SEC};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		lc_started(&l);
		lc_up(&l, now);
		now += 4 * MINUTE; /* up, but not long enough to reset */
		assert_int_equal(lc_exited(&l, &policy, now, &delay), LC_NEXT_RESTART);
		assert_int_equal(delay, want[i]);
		now += delay;
	}
	assert_int_equal(l.crashes, 5);
	/* up for reset_after: the next crash is the first again */
	lc_started(&l);
	lc_up(&l, now);
	assert_int_equal(lc_exited(&l, &policy, now + 5 * MINUTE, &delay), LC_NEXT_RESTART);
	assert_int_equal(l.crashes, 1);
	assert_int_equal(delay, 0);
	/* time only counts when up: starting for long does not reset */
	lc_started(&l);
	assert_int_equal(lc_exited(&l, &policy, now + 60 * MINUTE, &delay), LC_NEXT_RESTART);
	assert_int_equal(l.crashes, 2);
	assert_int_equal(delay, 10 * SEC);
}

static void test_start_failed_waits(void **state)
{
	(void)state;
	struct lc_dyno l;
	lc_init(&l, false);
	uint64_t delay = 0;
	/* a failed start is never retried at once, even the first */
	assert_int_equal(lc_start_failed(&l, &policy, &delay), LC_NEXT_RESTART);
	assert_int_equal(l.state, LC_CRASHED);
	assert_int_equal(delay, 10 * SEC);
	assert_int_equal(lc_start_failed(&l, &policy, &delay), LC_NEXT_RESTART);
	assert_int_equal(delay, 10 * SEC);
	assert_int_equal(lc_start_failed(&l, &policy, &delay), LC_NEXT_RESTART);
	assert_int_equal(delay, 20 * SEC);
	assert_int_equal(l.crashes, 3);
}

static void test_oneoff_never_restarts(void **state)
{
	(void)state;
	struct lc_dyno l;
	uint64_t delay = 1;
	/* exit 0 or not: complete, removed */
	lc_init(&l, true);
	lc_started(&l);
	lc_up(&l, 5 * SEC);
	assert_int_equal(lc_exited(&l, &policy, 6 * SEC, &delay), LC_NEXT_REMOVE);
	assert_int_equal(l.state, LC_COMPLETE);
	assert_int_equal(l.crashes, 0);
	/* a failed start gives it up, no crash */
	lc_init(&l, true);
	assert_int_equal(lc_start_failed(&l, &policy, &delay), LC_NEXT_REMOVE);
	assert_int_equal(l.state, LC_STARTING);
	assert_int_equal(l.crashes, 0);
	/* stopped before it ran: down */
	lc_init(&l, true);
	assert_int_equal(lc_stop(&l, false), LC_NEXT_REMOVE);
	assert_int_equal(l.state, LC_DOWN);
}

static void test_stop(void **state)
{
	(void)state;
	struct lc_dyno l;
	uint64_t delay = 1;
	/* running: stopping until it exits, then down, not a crash */
	lc_init(&l, false);
	lc_started(&l);
	lc_up(&l, 1 * SEC);
	assert_int_equal(lc_stop(&l, true), LC_NEXT_NONE);
	assert_true(l.stopping);
	assert_int_equal(l.state, LC_UP);
	assert_int_equal(lc_stop(&l, true), LC_NEXT_NONE); /* twice: nothing more */
	assert_int_equal(lc_exited(&l, &policy, 2 * SEC, &delay), LC_NEXT_REMOVE);
	assert_int_equal(l.state, LC_DOWN);
	assert_int_equal(l.crashes, 0);
	assert_int_equal(delay, 0);
	/* crashed, in its cool-off (no process): down at once */
	lc_init(&l, false);
	assert_int_equal(lc_start_failed(&l, &policy, &delay), LC_NEXT_RESTART);
	assert_int_equal(lc_stop(&l, false), LC_NEXT_REMOVE);
	assert_int_equal(l.state, LC_DOWN);
	assert_int_equal(lc_stop(&l, false), LC_NEXT_NONE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_state_str),
	    cmocka_unit_test(test_cooloff_doubles_to_cap),
	    cmocka_unit_test(test_transitions),
	    cmocka_unit_test(test_crash_loop_and_reset),
	    cmocka_unit_test(test_start_failed_waits),
	    cmocka_unit_test(test_oneoff_never_restarts),
	    cmocka_unit_test(test_stop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
