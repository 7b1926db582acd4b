#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/http-response.h"

static void test_reasons(void **state)
{
	assert_string_equal(http_reason(100), "Continue");
	assert_string_equal(http_reason(200), "OK");
	assert_string_equal(http_reason(404), "Not Found");
	assert_string_equal(http_reason(413), "Content Too Large");
	assert_string_equal(http_reason(431), "Request Header Fields Too Large");
	assert_string_equal(http_reason(499), "Client Closed Request");
	assert_string_equal(http_reason(503), "Service Unavailable");
	assert_string_equal(http_reason(505), "HTTP Version Not Supported");
	/* unknown */
	assert_string_equal(http_reason(418), "Error");
	assert_string_equal(http_reason(599), "Internal Server Error");
	assert_string_equal(http_reason(-1), "Error");
	assert_int_equal(strlen(HTTP_100_CONTINUE), 25);
	assert_memory_equal(HTTP_100_CONTINUE, "HTTP/1.1 100 Continue\r\n\r\n", 25);
}

static void test_head_format(void **state)
{
	char buf[256];
	struct http_head h = {.status = 200, .type = "application/json", .length = 3};
	const char *want = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
	                   "Content-Length: 3\r\n\r\n";
	assert_int_equal(http_head_format(buf, sizeof(buf), &h), (ssize_t)strlen(want));
	assert_memory_equal(buf, want, strlen(want));

	h = (struct http_head){.status = 503,
	                       .type = "text/plain",
	                       .length = 18,
	                       .close = true,
	                       .request_id = "abc-1"};
	want = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
	       "Content-Length: 18\r\nConnection: close\r\nX-Request-Id: abc-1\r\n\r\n";
	assert_int_equal(http_head_format(buf, sizeof(buf), &h), (ssize_t)strlen(want));
	assert_memory_equal(buf, want, strlen(want));
	/* an empty request id is none */
	h.request_id = "";
	assert_null(strstr(buf + 0 * http_head_format(buf, sizeof(buf), &h), "X-Request-Id"));
	/* too small: refused, not cut */
	assert_int_equal(http_head_format(buf, 20, &h), -ENOBUFS);
}

static void test_response_append(void **state)
{
	struct buf out = {0};
	assert_int_equal(buf_append(&out, "prev", 4, 64), 0);
	struct http_head h = {.status = 404, .type = "text/plain", .length = 10, .close = true};
	ssize_t n = http_response_append(&out, &h, "not found\n", false);
	const char *want = "prevHTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
	                   "Content-Length: 10\r\nConnection: close\r\n\r\nnot found\n";
	assert_int_equal(n, (ssize_t)strlen(want) - 4);
	assert_int_equal(buf_len(&out), strlen(want));
	assert_memory_equal(buf_data(&out), want, strlen(want));
	buf_clear(&out);
	/* HEAD: the length of the body that GET would send, no body */
	n = http_response_append(&out, &h, "not found\n", true);
	assert_int_equal(buf_len(&out), (size_t)n);
	assert_memory_equal(buf_data(&out) + n - 4, "\r\n\r\n", 4);
	assert_non_null(strstr(buf_data(&out), "Content-Length: 10\r\n"));
	buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reasons),
	    cmocka_unit_test(test_head_format),
	    cmocka_unit_test(test_response_append),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
