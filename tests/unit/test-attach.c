/* common/attach.c: the frames of the attach protocol (docs/api.md,
 * "Attach"): parsed whole and in pieces, refused when malformed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/attach.h"

static void parse_whole_and_split(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(pipe(sv), 0);
	assert_int_equal(attach_write(sv[1], ATTACH_STDOUT, "hello", 5), 0);
	assert_int_equal(attach_write(sv[1], ATTACH_STDIN, NULL, 0), 0);
	char buf[64];
	ssize_t n = read(sv[0], buf, sizeof(buf));
	assert_int_equal(n, 2 * ATTACH_HEADER + 5);
	struct attach_frame f;
	/* every prefix of the first frame asks for more */
	for (size_t i = 0; i < ATTACH_HEADER + 5; i++)
		assert_int_equal(attach_parse(buf, i, &f), 0);
	assert_int_equal(attach_parse(buf, (size_t)n, &f), ATTACH_HEADER + 5);
	assert_int_equal(f.type, ATTACH_STDOUT);
	assert_int_equal(f.len, 5);
	assert_memory_equal(f.data, "hello", 5);
	assert_int_equal(attach_parse(buf + ATTACH_HEADER + 5, ATTACH_HEADER, &f), ATTACH_HEADER);
	assert_int_equal(f.type, ATTACH_STDIN);
	assert_int_equal(f.len, 0);
	close(sv[0]);
	close(sv[1]);
}

static void malformed_refused(void **state)
{
	(void)state;
	struct attach_frame f;
	char bad_type[ATTACH_HEADER] = {ATTACH_TYPE_MAX + 1, 0, 0, 0, 0};
	assert_true(attach_parse(bad_type, 1, &f) < 0);
	char hdr[ATTACH_HEADER];
	attach_header(hdr, ATTACH_STDIN, ATTACH_MAX_LEN + 1);
	assert_true(attach_parse(hdr, sizeof(hdr), &f) < 0);
	attach_header(hdr, ATTACH_STDIN, ATTACH_MAX_LEN);
	assert_int_equal(attach_parse(hdr, sizeof(hdr), &f), 0);
	assert_string_equal(attach_type_str(ATTACH_EXIT), "exit");
	assert_string_equal(attach_type_str((enum attach_type)99), "unknown");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(parse_whole_and_split),
	    cmocka_unit_test(malformed_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
