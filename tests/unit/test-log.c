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

static void test_escape_for_a_terminal(void **state)
{
	char out[256];
	/* ESC sequences, NUL, CR, DEL, a C1 CSI: \xNN; tab and UTF-8 stay */
	const char in[] = "a\x1b[31mred\x00nul\rcr\x7f\tt\xc3\xa9\xc2\x9bz\xff";
	size_t n = dy_log_escape(out, in, sizeof(in) - 1);
	assert_string_equal(out, "a\\x1b[31mred\\x00nul\\x0dcr\\x7f\tt\xc3\xa9\\xc2\\x9bz\\xff");
	assert_int_equal(n, strlen(out));
	/* a UTF-8 sequence cut at the end, an overlong one, a surrogate */
	dy_log_escape(out, "\xe2\x82", 2);
	assert_string_equal(out, "\\xe2\\x82");
	dy_log_escape(out, "\xc0\xaf", 2);
	assert_string_equal(out, "\\xc0\\xaf");
	dy_log_escape(out, "\xed\xa0\x80", 3);
	assert_string_equal(out, "\\xed\\xa0\\x80");
	dy_log_escape(out, "\xe2\x82\xac", 3); /* the euro sign */
	assert_string_equal(out, "\xe2\x82\xac");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_line_format),
	    cmocka_unit_test(test_newlines_do_not_split_a_line),
	    cmocka_unit_test(test_truncation),
	    cmocka_unit_test(test_escape_for_a_terminal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
