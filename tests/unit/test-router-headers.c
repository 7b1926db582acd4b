#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/loop.h"

#include "router/headers.h"
#include "router/rlog.h"

static struct h1_header hdrs[64];

static struct h1_request parse_req(const char *s)
{
	struct h1_parser p;
	struct h1_request r;
	h1_parser_init(&p, NULL, hdrs, 64);
	assert_true(h1_parse_request(&p, s, strlen(s), &r) > 0);
	return r;
}

static void test_request_rewrite(void **state)
{
	struct h1_request r = parse_req("POST /a?b HTTP/1.1\r\nHost: h.localhost\r\n"
	                                "X-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\n"
	                                "Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\n"
	                                "Keep-Alive: 5\r\nTE: trailers\r\nVia: 1.0 a\r\n"
	                                "X-Request-Id: old\r\nX-Forwarded-Proto: https\r\n"
	                                "Expect: 100-continue\r\nUpgrade: h2c\r\n"
	                                "Content-Length: 3\r\n\r\n");
	char out[2048], fwd[HDR_FWD_MAX];
	struct hdr_request_info info = {"127.0.0.1", 8080, 1700000000123ull,
	                                "abcdefabcdefabcdefabcd", false};
	ssize_t n = hdr_build_request(&r, &info, out, sizeof(out), fwd, sizeof(fwd));
	assert_true(n > 0);
	out[n] = '\0';
	assert_string_equal(out, "POST /a?b HTTP/1.1\r\n"
	                         "Host: h.localhost\r\n"
	                         "Content-Length: 3\r\n"
	                         "X-Forwarded-For: 1.1.1.1, 2.2.2.2, 127.0.0.1\r\n"
	                         "X-Forwarded-Proto: http\r\n"
	                         "X-Forwarded-Port: 8080\r\n"
	                         "X-Request-Start: 1700000000123\r\n"
	                         "X-Request-Id: abcdefabcdefabcdefabcd\r\n"
	                         "Via: 1.0 a, 1.1 dyno-router\r\n"
	                         "\r\n");
	assert_string_equal(fwd, "1.1.1.1, 2.2.2.2, 127.0.0.1");
	/* too small a buffer */
	assert_int_equal(hdr_build_request(&r, &info, out, 40, NULL, 0), -1);
}

static void test_request_upgrade_and_close(void **state)
{
	struct h1_request r = parse_req("GET /ws HTTP/1.0\r\nHost: h\r\n\r\n");
	char out[1024];
	struct hdr_request_info info = {"::1", 80, 1, "abcdefabcdefabcdefabcd", true};
	ssize_t n = hdr_build_request(&r, &info, out, sizeof(out) - 1, NULL, 0);
	out[n] = '\0';
	assert_non_null(strstr(out, "GET /ws HTTP/1.1\r\n"));
	assert_non_null(strstr(out, "\r\nConnection: close\r\n\r\n"));
	r = parse_req(
	    "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n");
	info.close = false;
	n = hdr_build_request(&r, &info, out, sizeof(out) - 1, NULL, 0);
	out[n] = '\0';
	assert_non_null(strstr(out, "\r\nUpgrade: websocket\r\n"));
	assert_non_null(strstr(out, "\r\nConnection: upgrade\r\n\r\n"));
}

static void test_connection_cannot_drop_host_or_framing(void **state)
{
	struct h1_request r = parse_req("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
	                                "Connection: Host, Content-Length, X-A\r\nX-A: 1\r\n\r\n");
	char out[1024];
	struct hdr_request_info info = {"127.0.0.1", 80, 1, "abcdefabcdefabcdefabcd", false};
	ssize_t n = hdr_build_request(&r, &info, out, sizeof(out) - 1, NULL, 0);
	out[n] = '\0';
	assert_non_null(strstr(out, "\r\nHost: h\r\n"));
	assert_non_null(strstr(out, "\r\nContent-Length: 3\r\n"));
	assert_null(strstr(out, "X-A"));
	const char *s = "HTTP/1.1 200 OK\r\nConnection: Content-Length, Transfer-Encoding\r\n"
	                "Content-Length: 2\r\n\r\n";
	struct h1_parser p;
	struct h1_response resp;
	h1_parser_init(&p, NULL, hdrs, 64);
	assert_true(h1_parse_response(&p, s, strlen(s), 0, &resp) > 0);
	struct hdr_response_info ri = {0};
	n = hdr_build_response(&resp, &ri, out, sizeof(out) - 1);
	out[n] = '\0';
	assert_string_equal(out, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n");
}

static void test_response_rewrite(void **state)
{
	const char *s = "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nKeep-Alive: 5\r\n"
	                "Transfer-Encoding: chunked\r\nX-A: b\r\n\r\n";
	struct h1_parser p;
	struct h1_response r;
	h1_parser_init(&p, NULL, hdrs, 64);
	assert_true(h1_parse_response(&p, s, strlen(s), 0, &r) > 0);
	char out[512];
	struct hdr_response_info info = {.close = true, .client_10 = true, .dechunk = true};
	ssize_t n = hdr_build_response(&r, &info, out, sizeof(out) - 1);
	out[n] = '\0';
	assert_string_equal(out, "HTTP/1.1 200 OK\r\nX-A: b\r\nConnection: close\r\n\r\n");
	info = (struct hdr_response_info){.client_10 = true};
	n = hdr_build_response(&r, &info, out, sizeof(out) - 1);
	out[n] = '\0';
	assert_string_equal(out, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: "
	                         "b\r\nConnection: keep-alive\r\n\r\n");
}

static void test_request_id(void **state)
{
	assert_true(hdr_request_id_valid("abcdefghij0123456789", 20));
	assert_false(hdr_request_id_valid("abcdefghij012345678", 19));
	assert_true(hdr_request_id_valid("a+b/c=d-e+f/g=h-i+j/", 20));
	assert_false(hdr_request_id_valid("abcdefghij 123456789", 20));
	char big[201];
	memset(big, 'a', sizeof(big));
	assert_true(hdr_request_id_valid(big, 200));
	assert_false(hdr_request_id_valid(big, 201));
	char u[37];
	hdr_uuid_format(0, 0, u);
	assert_string_equal(u, "00000000-0000-4000-8000-000000000000");
	hdr_uuid_format(~0ull, ~0ull, u);
	assert_string_equal(u, "ffffffff-ffff-4fff-bfff-ffffffffffff");
}

static void test_log_format(void **state)
{
	struct rlog_entry e = {
	    .method = "GET",
	    .path = "/a\"b",
	    .host = "hello.localhost",
	    .request_id = "abc",
	    .fwd = "1.2.3.4",
	    .dyno = "web.1",
	    .connect_ms = 1,
	    .service_ms = 23,
	    .status = 200,
	    .bytes = 123,
	};
	char buf[512];
	rlog_format_entry(buf, sizeof(buf), &e);
	assert_string_equal(buf, "at=info method=GET path=\"/a\\\"b\" host=hello.localhost "
	                         "request_id=abc fwd=\"1.2.3.4\" dyno=web.1 connect=1ms "
	                         "service=23ms status=200 bytes=123 protocol=http");
	/* a code brings its description from the table */
	e.code = HK_H12;
	e.status = 503;
	e.path = "/";
	rlog_format_entry(buf, sizeof(buf), &e);
	assert_string_equal(buf, "at=error code=H12 desc=\"Request timeout\" method=GET path=\"/\" "
	                         "host=hello.localhost request_id=abc fwd=\"1.2.3.4\" dyno=web.1 "
	                         "connect=1ms service=23ms status=503 bytes=123 protocol=http");
	/* a router answer without a code: its desc alone */
	e.code = HK_NONE;
	e.desc = "No such app";
	e.status = 404;
	rlog_format_entry(buf, sizeof(buf), &e);
	assert_string_equal(buf, "at=error desc=\"No such app\" method=GET path=\"/\" "
	                         "host=hello.localhost request_id=abc fwd=\"1.2.3.4\" dyno=web.1 "
	                         "connect=1ms service=23ms status=404 bytes=123 protocol=http");
	e.code = HK_H12;
	e.desc = NULL;
	struct timespec ts = {.tv_sec = 1795690800, .tv_nsec = 5000};
	char line[600];
	rlog_format_line(line, sizeof(line), &ts, "at=info");
	assert_string_equal(line, "2026-11-26T11:00:00.000005+00:00 router[router]: at=info");
	/* cut to fit, always terminated */
	assert_true(rlog_format_entry(buf, 20, &e) < 20);
	assert_int_equal(strlen(buf), 19);
}

/* Control bytes anywhere in a message (in a word of eight, in the tail)
 * become spaces, tabs and high bytes stay: a line stays one line. */
static void test_log_line_sanitized(void **state)
{
	struct loop *loop = NULL;
	assert_int_equal(loop_new(&loop, NULL), 0);
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	struct rlog *l = NULL;
	assert_int_equal(rlog_new(loop, fds[1], NULL, &l, NULL), 0);
	const char msg[] = "at=info path=\"/a\x01"
	                   "b\tc\x7f\" host=h\xc3\xa9\x1f x=0123456789\r\n";
	rlog_emit(l, "app", msg);
	rlog_emit(l, NULL, "clean line, no control byte in it at all");
	rlog_flush(l);
	char out[1024];
	ssize_t n = read(fds[0], out, sizeof(out) - 1);
	assert_true(n > 0);
	out[n] = '\0';
	char *nl = strchr(out, '\n');
	assert_non_null(nl);
	*nl = '\0';
	const char *m = strstr(out, "router[router]: ");
	assert_non_null(m);
	assert_string_equal(m + 16, "at=info path=\"/a b\tc \" host=h\xc3\xa9  x=0123456789  ");
	assert_non_null(
	    strstr(nl + 1, "router[router]: clean line, no control byte in it at all\n"));
	/* the flush stays queued on the loop: the loop goes first */
	loop_free(loop);
	rlog_free(l);
	close(fds[0]);
	close(fds[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_request_rewrite),
	    cmocka_unit_test(test_request_upgrade_and_close),
	    cmocka_unit_test(test_connection_cannot_drop_host_or_framing),
	    cmocka_unit_test(test_response_rewrite),
	    cmocka_unit_test(test_request_id),
	    cmocka_unit_test(test_log_format),
	    cmocka_unit_test(test_log_line_sanitized),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
