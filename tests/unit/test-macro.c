/* common/macro.h: bounds evaluate their arguments once; the cleanup
 * generator frees and clears. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "common/macro.h"

static int freed;

static void counted_free(int *p)
{
	freed++;
	free(p);
}

DY_DEFINE_CLEANUP(int *, counted_free, counted_freep)

static void test_bounds(void **state)
{
	int i = 0;
	assert_int_equal(MIN(i++, 10), 0);
	assert_int_equal(i, 1); /* once */
	assert_int_equal(MAX(i++, -3), 1);
	assert_int_equal(i, 2);
	assert_int_equal(CLAMP(i++, 5, 9), 5);
	assert_int_equal(i, 3);
	assert_int_equal(CLAMP(42, 5, 9), 9);
	assert_int_equal(CLAMP(7, 5, 9), 7);
	assert_true(MIN((uint64_t)1 << 40, (uint64_t)UINT32_MAX) == UINT32_MAX);
	assert_int_equal(MAX(-1, -2), -1);
}

static void test_elementsof(void **state)
{
	int a[7];
	const char *names[] = {"a", "b", "c"};
	assert_int_equal(ELEMENTSOF(a), 7);
	assert_int_equal(ELEMENTSOF(names), 3);
	/* ELEMENTSOF(&a[0]) does not compile: a pointer is not an array */
}

static void test_cleanup_generator(void **state)
{
	freed = 0;
	{
		_cleanup_(counted_freep) int *p = malloc(sizeof(int));
		_cleanup_(counted_freep) int *none = NULL;
		assert_non_null(p);
		(void)none;
	}
	assert_int_equal(freed, 1); /* NULL is not passed to the function */
	int *kept = malloc(sizeof(int));
	{
		_cleanup_(counted_freep) int *p = kept;
		int *mine = TAKE_PTR(p);
		assert_ptr_equal(mine, kept);
	}
	assert_int_equal(freed, 1);
	counted_freep(&kept);
	assert_null(kept);
	assert_int_equal(freed, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bounds),
	    cmocka_unit_test(test_elementsof),
	    cmocka_unit_test(test_cleanup_generator),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
