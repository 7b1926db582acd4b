#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/log.h"

static void test_line_format(void **state)
{
	/* 2026-11-26T11:00:00 UTC */
	struct timespec ts = {.tv_sec = 1795690800, .tv_nsec = 123456789};
	char buf[256];
	size_t n = dy_log_format(buf, sizeof(buf), &ts, "dyno", "web.1",
	                         "State changed from starting to up");
	assert_string_equal(buf, "2026-11-26T11:00:00.123456+00:00 dyno[web.1]: State changed "
	                         "from starting to up");
	assert_int_equal(n, strlen(buf));
}

static void test_newlines_do_not_split_a_line(void **state)
{
	struct timespec ts = {.tv_sec = 0, .tv_nsec = 0};
	char buf[128];
	dy_log_format(buf, sizeof(buf), &ts, "app", "web.1", "a\nb\rc");
	assert_string_equal(buf, "1970-01-01T00:00:00.000000+00:00 app[web.1]: a b c");
}

static void test_truncation(void **state)
{
	struct timespec ts = {.tv_sec = 0, .tv_nsec = 0};
	char buf[40];
	size_t n = dy_log_format(buf, sizeof(buf), &ts, "app", "web.1", "long message here");
	assert_int_equal(n, sizeof(buf) - 1);
	assert_int_equal(strlen(buf), sizeof(buf) - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_line_format),
	    cmocka_unit_test(test_newlines_do_not_split_a_line),
	    cmocka_unit_test(test_truncation),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
