/* runtime/manager/memory-watch: R14 over the quota at most once a minute,
 * R15 when the OOM kill count goes up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "runtime/manager/memory-watch.h"

#define SEC (1000ULL * 1000)
#define MB  (1024ULL * 1024)

static void test_r14_once_a_minute(void **state)
{
	(void)state;
	struct mw_dyno w;
	mw_init(&w);
	const uint64_t quota = 512 * MB;
	uint64_t t0 = 100 * SEC;
	assert_int_equal(mw_usage(&w, t0, quota, quota), HK_NONE); /* at the quota: fine */
	assert_int_equal(mw_usage(&w, t0, 100 * MB, quota), HK_NONE);
	assert_int_equal(mw_usage(&w, t0, quota + 1, quota), HK_R14);
	/* still over, each second: not again within the minute */
	for (uint64_t s = 1; s < 60; s++)
		assert_int_equal(mw_usage(&w, t0 + s * SEC, 600 * MB, quota), HK_NONE);
	assert_int_equal(mw_usage(&w, t0 + 60 * SEC - 1, 600 * MB, quota), HK_NONE);
	assert_int_equal(mw_usage(&w, t0 + 60 * SEC, 600 * MB, quota), HK_R14);
	/* under the quota in between does not re-arm it early */
	assert_int_equal(mw_usage(&w, t0 + 61 * SEC, 100 * MB, quota), HK_NONE);
	assert_int_equal(mw_usage(&w, t0 + 62 * SEC, 600 * MB, quota), HK_NONE);
	assert_int_equal(mw_usage(&w, t0 + 120 * SEC, 600 * MB, quota), HK_R14);
}

static void test_r14_survives_restart(void **state)
{
	(void)state;
	struct mw_dyno w;
	mw_init(&w);
	assert_int_equal(mw_usage(&w, 10 * SEC, 2 * MB, MB), HK_R14);
	mw_started(&w); /* a restart of the dyno's process */
	assert_int_equal(mw_usage(&w, 20 * SEC, 2 * MB, MB), HK_NONE);
	assert_int_equal(mw_usage(&w, 70 * SEC, 2 * MB, MB), HK_R14);
}

static void test_r15_on_oom_increase(void **state)
{
	(void)state;
	struct mw_dyno w;
	mw_init(&w);
	assert_int_equal(mw_oom(&w, 0), HK_NONE);
	assert_int_equal(mw_oom(&w, 1), HK_R15);
	assert_int_equal(mw_oom(&w, 1), HK_NONE); /* the same kill: once */
	assert_int_equal(mw_oom(&w, 3), HK_R15);
	/* a new process counts from 0 again */
	mw_started(&w);
	assert_int_equal(mw_oom(&w, 0), HK_NONE);
	assert_int_equal(mw_oom(&w, 1), HK_R15);
}

static void test_codes_text(void **state)
{
	(void)state;
	/* the lines the supervisor logs from these verdicts */
	char buf[64];
	snprintf(buf, sizeof(buf), HK_ERROR_FMT, HK_ERROR_ARGS(HK_R14));
	assert_string_equal(buf, "Error R14 (Memory quota exceeded)");
	snprintf(buf, sizeof(buf), HK_ERROR_FMT, HK_ERROR_ARGS(HK_R15));
	assert_string_equal(buf, "Error R15 (Memory quota vastly exceeded)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_r14_once_a_minute),
	    cmocka_unit_test(test_r14_survives_restart),
	    cmocka_unit_test(test_r15_on_oom_increase),
	    cmocka_unit_test(test_codes_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
