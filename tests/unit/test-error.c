#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/error.h"

static int fails_with_errno(struct dy_error **err)
{
	return dy_error_errno(err, ENOENT, "open %s", "/nope");
}

static void test_errno_message_and_value(void **state)
{
	struct dy_error *err = NULL;
	assert_int_equal(fails_with_errno(&err), -ENOENT);
	assert_string_equal(dy_error_msg(err), "open /nope: No such file or directory");
	assert_int_equal(err->errnum, ENOENT);
	assert_int_equal(dy_error_prefix(&err, "unpack %s", "a.tgz"), -ENOENT);
	assert_string_equal(dy_error_msg(err),
	                    "unpack a.tgz: open /nope: No such file or directory");
	dy_error_free(&err);
	assert_null(err);
	dy_error_free(&err); /* accepts an empty error */
}

static void test_first_error_wins(void **state)
{
	struct dy_error *err = NULL;
	assert_int_equal(dy_error(&err, "first %d", 1), -1);
	assert_int_equal(dy_error(&err, "second"), -1);
	assert_string_equal(dy_error_msg(err), "first 1");
	dy_error_free(&err);
}

static void test_null_sink(void **state)
{
	assert_int_equal(dy_error(NULL, "ignored"), -1);
	assert_int_equal(dy_error_errno(NULL, EACCES, "ignored"), -EACCES);
	assert_string_equal(dy_error_msg(NULL), "unknown error");
}

static void test_kind(void **state)
{
	struct dy_error *err = NULL;
	/* a plain error is the platform's own failure */
	dy_error_errno(&err, EIO, "write state");
	assert_int_equal(dy_error_kind_of(err), DY_E_INTERNAL);
	/* the first error keeps its kind too */
	assert_int_equal(dy_error_as(&err, DY_E_NOT_FOUND, "later"), -1);
	assert_int_equal(dy_error_kind_of(err), DY_E_INTERNAL);
	dy_error_free(&err);

	assert_int_equal(dy_error_as(&err, DY_E_NOT_FOUND, "app %s not found", "x"), -1);
	assert_int_equal(dy_error_kind_of(err), DY_E_NOT_FOUND);
	assert_int_equal(err->errnum, 0);
	dy_error_prefix(&err, "restart");
	assert_string_equal(dy_error_msg(err), "restart: app x not found");
	assert_int_equal(dy_error_kind_of(err), DY_E_NOT_FOUND);
	dy_error_free(&err);

	/* a full disk is no bug of the platform's: its own kind (507) */
	dy_error_errno(&err, ENOSPC, "write state");
	assert_int_equal(dy_error_kind_of(err), DY_E_NO_SPACE);
	assert_string_equal(dy_error_kind_str(DY_E_NO_SPACE), "no_space");
	dy_error_free(&err);
	dy_error_errno(&err, EDQUOT, "write state");
	assert_int_equal(dy_error_kind_of(err), DY_E_NO_SPACE);
	dy_error_free(&err);
	/* unless it was given a kind of its own */
	dy_error_as(&err, DY_E_CONFLICT, "no room to unpack");
	err->errnum = ENOSPC;
	assert_int_equal(dy_error_kind_of(err), DY_E_CONFLICT);
	dy_error_free(&err);

	assert_int_equal(dy_error_as(NULL, DY_E_INVALID, "ignored"), -1);
	assert_int_equal(dy_error_kind_of(NULL), DY_E_INTERNAL);
	assert_string_equal(dy_error_kind_str(DY_E_CONFLICT), "conflict");
	assert_string_equal(dy_error_kind_str(_DY_E_MAX), "unknown");
	for (int k = 0; k < _DY_E_MAX; k++)
		assert_string_not_equal(dy_error_kind_str(k), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_errno_message_and_value),
	    cmocka_unit_test(test_first_error_wins),
	    cmocka_unit_test(test_null_sink),
	    cmocka_unit_test(test_kind),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
