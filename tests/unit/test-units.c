#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/units.h"

static void test_sizes(void **state)
{
	uint64_t v;
	assert_int_equal(dy_parse_size("512M", &v, NULL), 0);
	assert_int_equal(v, 512ULL << 20);
	assert_int_equal(dy_parse_size("1G", &v, NULL), 0);
	assert_int_equal(v, 1ULL << 30);
	assert_int_equal(dy_parse_size("2560M", &v, NULL), 0);
	assert_int_equal(v, 2560ULL << 20);
	assert_int_equal(dy_parse_size("1024", &v, NULL), 0);
	assert_int_equal(v, 1024);
	assert_int_equal(dy_parse_size("4GiB", &v, NULL), 0);
	assert_int_equal(v, 4ULL << 30);
	assert_int_equal(dy_parse_size("10k", &v, NULL), 0);
	assert_int_equal(v, 10240);
}

static void test_bad_sizes(void **state)
{
	const char *bad[] = {"",         "M", "-1", "1X", "1 G", "1GG", "99999999999999999999",
	                     "20000000T"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct dy_error *err = NULL;
		uint64_t v = 7;
		assert_true(dy_parse_size(bad[i], &v, &err) < 0);
		assert_non_null(err);
		assert_non_null(strstr(dy_error_msg(err), "invalid size"));
		assert_int_equal(v, 7);
		dy_error_free(&err);
	}
}

static void test_durations(void **state)
{
	uint64_t v;
	assert_int_equal(dy_parse_duration("30s", &v, NULL), 0);
	assert_int_equal(v, 30000000);
	assert_int_equal(dy_parse_duration("500ms", &v, NULL), 0);
	assert_int_equal(v, 500000);
	assert_int_equal(dy_parse_duration("20m", &v, NULL), 0);
	assert_int_equal(v, 1200000000ULL);
	assert_int_equal(dy_parse_duration("1m30s", &v, NULL), 0);
	assert_int_equal(v, 90000000);
	assert_int_equal(dy_parse_duration("1h", &v, NULL), 0);
	assert_int_equal(v, 3600000000ULL);
	assert_int_equal(dy_parse_duration("250us", &v, NULL), 0);
	assert_int_equal(v, 250);
}

static void test_bad_durations(void **state)
{
	const char *bad[] = {"", "30", "s", "30x", "1.5s", "-1s", "30 s", "99999999999999999h"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct dy_error *err = NULL;
		uint64_t v;
		assert_true(dy_parse_duration(bad[i], &v, &err) < 0);
		assert_non_null(strstr(dy_error_msg(err), "invalid duration"));
		dy_error_free(&err);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sizes),
	    cmocka_unit_test(test_bad_sizes),
	    cmocka_unit_test(test_durations),
	    cmocka_unit_test(test_bad_durations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
