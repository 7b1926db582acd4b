/* The router keeper's pure parts: router.pid's line, /proc/PID/stat's
 * comm and start time, the crash-loop back-off. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "runtime/manager/router-keeper.h"

static void test_pidfile_round_trip(void **state)
{
	struct rkeep_pidfile p = {
	    .pid = 4242, .start_time = 123456789ull, .fds = {3, 4, 5}, .nfds = 3};
	char buf[128];
	int n = rkeep_pidfile_format(buf, sizeof(buf), &p);
	assert_int_equal(n, (int)strlen("4242 123456789 3 4 5\n"));
	assert_string_equal(buf, "4242 123456789 3 4 5\n");
	struct rkeep_pidfile q;
	assert_int_equal(rkeep_pidfile_parse(buf, &q), 0);
	assert_int_equal(q.pid, 4242);
	assert_true(q.start_time == 123456789ull);
	assert_int_equal(q.nfds, 3);
	assert_int_equal(q.fds[2], 5);
	/* too small a buffer: refused, not cut */
	assert_true(rkeep_pidfile_format(buf, 8, &p) < 0);
}

static void test_pidfile_refuses_garbage(void **state)
{
	static const char *bad[] = {
	    "",
	    "\n",
	    "4242\n",
	    "4242 1\n",
	    "4242 1 3",
	    "x 1 3\n",
	    "1 5 3\n",
	    "4242 1 2\n",
	    "4242 1 3 \n",
	    "4242 -1 3\n",
	    "4242 1 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20\n",
	    "4242 1 3\nmore\n",
	};
	struct rkeep_pidfile q;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (rkeep_pidfile_parse(bad[i], &q) == 0)
			fail_msg("parsed \"%s\"", bad[i]);
	}
}

static void test_proc_stat_of_self(void **state)
{
	char comm[16];
	unsigned long long start = 0;
	assert_int_equal(rkeep_proc_stat(getpid(), comm, &start), 0);
	assert_string_equal(comm, "test-router-kee"); /* comm: 15 bytes */
	assert_true(start > 0);
	unsigned long long again = 0;
	assert_int_equal(rkeep_proc_stat(getpid(), comm, &again), 0);
	assert_true(again == start);
	assert_true(rkeep_proc_stat(0x3fffffff, comm, &start) < 0);
}

static void test_backoff(void **state)
{
	uint64_t b = RKEEP_BACKOFF_FIRST;
	/* a router that ran long enough: restarted at once */
	assert_true(rkeep_next_delay(5 * RKEEP_CRASH_USEC, &b) == 0);
	/* a crash loop: 1 s, 2 s, 4 s ... 30 s */
	uint64_t want[] = {1, 2, 4, 8, 16, 30, 30};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_true(rkeep_next_delay(1000, &b) == want[i] * 1000 * 1000);
	/* one long run resets it */
	assert_true(rkeep_next_delay(RKEEP_CRASH_USEC, &b) == 0);
	assert_true(rkeep_next_delay(0, &b) == RKEEP_BACKOFF_FIRST);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pidfile_round_trip),
	    cmocka_unit_test(test_pidfile_refuses_garbage),
	    cmocka_unit_test(test_proc_stat_of_self),
	    cmocka_unit_test(test_backoff),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
