/* runtime/manager/teardown: a destroyed app's callback waits in its grave
 * until its last dyno has gone, and is called exactly once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "runtime/manager/teardown.h"

static void count(void *arg)
{
	(*(int *)arg)++;
}

static void test_done_calls_the_app_only(void **state)
{
	(void)state;
	struct td_graves g = {0};
	int a = 0, a2 = 0, b = 0;
	assert_false(td_any(&g));
	assert_int_equal(td_add(&g, "alpha", count, &a), 0);
	assert_int_equal(td_add(&g, "beta", count, &b), 0);
	assert_int_equal(td_add(&g, "alpha", count, &a2), 0);
	assert_true(td_any(&g));
	assert_int_equal(td_done(&g, "gamma"), 0);
	assert_int_equal(td_done(&g, "alph"), 0); /* whole names only */
	assert_int_equal(a + a2 + b, 0);
	assert_int_equal(td_done(&g, "alpha"), 2);
	assert_int_equal(a, 1);
	assert_int_equal(a2, 1);
	assert_int_equal(b, 0);
	assert_int_equal(td_done(&g, "alpha"), 0); /* once */
	assert_int_equal(a, 1);
	assert_true(td_any(&g));
	td_flush(&g);
	assert_int_equal(b, 1);
	assert_false(td_any(&g));
	td_flush(&g);
	assert_int_equal(b, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_done_calls_the_app_only),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
