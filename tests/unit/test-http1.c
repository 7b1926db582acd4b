#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "common/http1.h"

static struct h1_header hdrs[1000];

static int parse_req_n(const char *s, size_t len, struct h1_request *r)
{
	struct h1_parser p;
	h1_parser_init(&p, NULL, hdrs, ELEMENTSOF(hdrs));
	return h1_parse_request(&p, s, len, r);
}

static int parse_req(const char *s, struct h1_request *r)
{
	return parse_req_n(s, strlen(s), r);
}

static int parse_resp_n(const char *s, size_t len, unsigned flags, struct h1_response *r)
{
	struct h1_parser p;
	h1_parser_init(&p, NULL, hdrs, ELEMENTSOF(hdrs));
	return h1_parse_response(&p, s, len, flags, r);
}

static int parse_resp(const char *s, unsigned flags, struct h1_response *r)
{
	return parse_resp_n(s, strlen(s), flags, r);
}

static void assert_slice(struct h1_slice s, const char *want)
{
	assert_int_equal(s.len, strlen(want));
	assert_memory_equal(s.p, want, s.len);
}

static const char sample[] = "POST /submit?x=1 HTTP/1.1\r\n"
                             "Host: app.localhost:8080\r\n"
                             "User-Agent: test/1.0\r\n"
                             "Content-Length: 0005\r\n"
                             "Connection: keep-alive, Upgrade\r\n"
                             "Upgrade: websocket\r\n"
                             "Expect: 100-continue\r\n"
                             "X-Empty:\r\n"
                             "X-Spaces: \t a b \t\r\n"
                             "\r\n"
                             "hello";

static void test_request_valid(void **state)
{
	struct h1_request r;
	size_t head = strlen(sample) - 5;
	assert_int_equal(parse_req(sample, &r), (int)head);
	assert_int_equal(r.head_len, head);
	assert_slice(r.method, "POST");
	assert_int_equal(r.method_id, H1_METHOD_POST);
	assert_slice(r.target, "/submit?x=1");
	assert_int_equal(r.target_form, H1_TARGET_ORIGIN);
	assert_int_equal(r.minor, 1);
	assert_int_equal(r.nheaders, 8);
	assert_slice(r.headers[0].name, "Host");
	assert_slice(r.host, "app.localhost:8080");
	assert_true(r.has_host);
	assert_int_equal(r.body, H1_BODY_LENGTH);
	assert_int_equal(r.content_length, 5);
	assert_false(r.chunked);
	assert_true(r.keep_alive);
	assert_true(r.expect_continue);
	assert_true(r.upgrade);
	assert_slice(r.upgrade_proto, "websocket");
	assert_slice(r.headers[6].value, "");
	assert_slice(r.headers[7].value, "a b");
	assert_string_equal(h1_body_str(r.body), "length");
	assert_string_equal(h1_method_str(r.method_id), "POST");
}

static void test_request_forms(void **state)
{
	struct h1_request r;
	assert_true(
	    parse_req("GET http://App.Localhost/x?y HTTP/1.1\r\nHost: app.localhost\r\n\r\n", &r) >
	    0);
	assert_int_equal(r.target_form, H1_TARGET_ABSOLUTE);
	assert_slice(r.authority, "App.Localhost");
	assert_true(parse_req("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", &r) > 0);
	assert_int_equal(r.target_form, H1_TARGET_ASTERISK);
	assert_int_equal(r.method_id, H1_METHOD_OPTIONS);
	/* HTTP/1.0: no Host needed, close by default; absolute-form gives host. */
	assert_true(parse_req("GET / HTTP/1.0\r\n\r\n", &r) > 0);
	assert_int_equal(r.minor, 0);
	assert_false(r.keep_alive);
	assert_false(r.has_host);
	assert_int_equal(r.body, H1_BODY_NONE);
	assert_int_equal(r.content_length, -1);
	assert_true(parse_req("GET https://h.example:443/ HTTP/1.0\r\n\r\n", &r) > 0);
	assert_slice(r.host, "h.example:443");
	assert_true(parse_req("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &r) > 0);
	assert_true(r.keep_alive);
	assert_true(parse_req("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", &r) > 0);
	assert_false(r.keep_alive);
	/* 1.0 ignores Expect and Upgrade. */
	assert_true(parse_req("GET / HTTP/1.0\r\nExpect: 100-continue\r\nConnection: upgrade\r\n"
	                      "Upgrade: websocket\r\n\r\n",
	                      &r) > 0);
	assert_false(r.expect_continue);
	assert_false(r.upgrade);
	assert_true(parse_req("GET / HTTP/1.1\r\nHost: a\r\nConnection: ,, CLOSE ,\r\n\r\n", &r) >
	            0);
	assert_false(r.keep_alive);
	/* Upgrade without Connection: upgrade is not an upgrade. */
	assert_true(parse_req("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n", &r) > 0);
	assert_false(r.upgrade);
	/* Empty lines before the request line are skipped and counted. */
	assert_int_equal(parse_req("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", &r), 31);
	assert_slice(r.method, "GET");
	/* Chunked request. */
	assert_true(
	    parse_req("PUT /u HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n",
	              &r) > 0);
	assert_int_equal(r.body, H1_BODY_CHUNKED);
	assert_true(r.chunked);
	assert_int_equal(r.content_length, -1);
	/* Identical Content-Length values are folded (RFC 9112 6.3). */
	assert_true(parse_req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7, 007\r\n"
	                      "Content-Length: 7\r\n\r\n",
	                      &r) > 0);
	assert_int_equal(r.content_length, 7);
	/* Empty Host and IPv6 Host are valid. */
	assert_true(parse_req("GET / HTTP/1.1\r\nHost:\r\n\r\n", &r) > 0);
	assert_true(parse_req("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", &r) > 0);
	assert_slice(r.host, "[::1]:80");
	assert_true(parse_req("BREW /pot HTTP/1.1\r\nHost: a\r\n\r\n", &r) > 0);
	assert_int_equal(r.method_id, H1_METHOD_OTHER);
	assert_true(parse_req("GET / HTTP/1.1\r\nHost: a\r\nX: \x80\xff obs-text\r\n\r\n", &r) > 0);
}

struct reject {
	const char *in;
	size_t len;
	int err;
};

/* Table rows carry their length: some hold a NUL. */
#define R(s, e)                                                                                    \
	{                                                                                          \
		s, sizeof(s) - 1, e                                                                \
	}

static void check_rejects(const struct reject *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct h1_request r;
		int got = parse_req_n(t[i].in, t[i].len, &r);
		if (got != t[i].err)
			fail_msg("case %zu %s: got %d (%s), want %d (%s)", i, t[i].in, got,
			         h1_strerror(got), t[i].err, h1_strerror(t[i].err));
	}
}

#define H "GET / HTTP/1.1\r\nHost: a\r\n"

static void test_request_rejects(void **state)
{
	static const struct reject t[] = {
	    R("GET / HTTP/1.1\nHost: a\r\n\r\n", H1_E_BARE_LF),
	    R("GET / HTTP/1.1\r\nHost: a\n\r\n", H1_E_BARE_LF),
	    R("GET / HTTP/1.1\r\nHost: a\r\n\n", H1_E_BARE_LF),
	    R("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BARE_LF),
	    R(H "X: a\rb\r\n\r\n", H1_E_BARE_CR),
	    R("GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_BARE_CR),
	    R(H "X: a\r\r\n\r\n", H1_E_BARE_CR),
	    R("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_TARGET),
	    R("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", H1_E_VERSION),
	    R(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_REQUEST_LINE),
	    R("GET\r\nHost: a\r\n\r\n", H1_E_REQUEST_LINE),
	    R("GET HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_REQUEST_LINE),
	    R("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_METHOD),
	    R("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_METHOD),
	    R("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_TARGET),
	    R("GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_TARGET),
	    R("GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_TARGET),
	    R("GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_TARGET),
	    R("GET * HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_TARGET),
	    R("GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_TARGET),
	    R("GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_TARGET),
	    R("GET http:/// HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_TARGET),
	    R("GET / HTTP/1.x\r\nHost: a\r\n\r\n", H1_E_VERSION),
	    R("GET / http/1.1\r\nHost: a\r\n\r\n", H1_E_VERSION),
	    R("GET / HTTP/11\r\nHost: a\r\n\r\n", H1_E_VERSION),
	    R("GET / HTTP/1.10\r\nHost: a\r\n\r\n", H1_E_VERSION),
	    R("GET / HTTP/1.2\r\nHost: a\r\n\r\n", H1_E_VERSION_UNSUPPORTED),
	    R("GET / HTTP/2.0\r\nHost: a\r\n\r\n", H1_E_VERSION_UNSUPPORTED),
	    R("GET / HTTP/0.9\r\nHost: a\r\n\r\n", H1_E_VERSION_UNSUPPORTED),
	    R("GET /index.html\r\n", H1_E_HTTP09),
	    R("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", H1_E_HTTP2_PREFACE),
	    R("PRI * HTTP/2.0\r\n", H1_E_HTTP2_PREFACE),
	    R("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", H1_E_CONNECT),
	    R(H "X\0Y: a\r\n\r\n", H1_E_NUL),
	    R(H "X-(: a\r\n\r\n", H1_E_HEADER_NAME),
	    R(H ": a\r\n\r\n", H1_E_HEADER_NAME),
	    R(H "X Y: a\r\n\r\n", H1_E_HEADER_NAME),
	    R(H "X-A : a\r\n\r\n", H1_E_SPACE_BEFORE_COLON),
	    R(H "X-A\t: a\r\n\r\n", H1_E_SPACE_BEFORE_COLON),
	    R(H "X-A\r\n\r\n", H1_E_NO_COLON),
	    R(H "X-A b\r\n\r\n", H1_E_NO_COLON),
	    R(H "X-A: a\r\n b\r\n\r\n", H1_E_OBS_FOLD),
	    R(H "X-A: a\r\n\tb\r\n\r\n", H1_E_OBS_FOLD),
	    R("GET / HTTP/1.1\r\n Host: a\r\n\r\n", H1_E_OBS_FOLD),
	    R(H "X-A: a\x01\r\n\r\n", H1_E_HEADER_VALUE),
	    R(H "X-A: a\x7f\r\n\r\n", H1_E_HEADER_VALUE),
	    R(H "X-A: a\x0b\r\n\r\n", H1_E_HEADER_VALUE),
	    R("GET / HTTP/1.1\r\n\r\n", H1_E_HOST_MISSING),
	    R(H "Host: a\r\n\r\n", H1_E_HOST_DUPLICATE),
	    R(H "host: b\r\n\r\n", H1_E_HOST_DUPLICATE),
	    R("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", H1_E_HOST_DUPLICATE),
	    R("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", H1_E_HOST_INVALID),
	    R("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", H1_E_HOST_INVALID),
	    R("GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", H1_E_HOST_INVALID),
	    R("GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", H1_E_HOST_INVALID),
	    R("GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n", H1_E_HOST_INVALID),
	    R("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", H1_E_HOST_INVALID),
	    R("GET / HTTP/1.1\r\nHost: :80\r\n\r\n", H1_E_HOST_INVALID),
	    R("GET http://b/ HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_HOST_MISMATCH),
	    R("GET http://a:80/ HTTP/1.1\r\nHost: a\r\n\r\n", H1_E_HOST_MISMATCH),
	    R("GET http://a/ HTTP/1.1\r\nHost:\r\n\r\n", H1_E_HOST_MISMATCH),
	    R(H "Connection: close, \"x\"\r\n\r\n", H1_E_CONNECTION),
	    R(H "Connection: a b\r\n\r\n", H1_E_CONNECTION),
	};
	check_rejects(t, ELEMENTSOF(t));
}

static void test_smuggling(void **state)
{
	static const struct reject t[] = {
	    /* CL.TE / TE.CL (RFC 9112 6.1, 11.2). */
	    R(H "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", H1_E_CL_AND_TE),
	    R(H "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", H1_E_CL_AND_TE),
	    R("POST / HTTP/1.0\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
	      H1_E_CL_AND_TE),
	    R("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", H1_E_TE_HTTP10),
	    /* TE.TE obfuscations. */
	    R(H "Transfer-Encoding: xchunked\r\n\r\n", H1_E_TE_NOT_CHUNKED),
	    R(H "Transfer-Encoding: chunked, identity\r\n\r\n", H1_E_TE_NOT_CHUNKED),
	    R(H "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
	      H1_E_TE_NOT_CHUNKED),
	    R(H "Transfer-Encoding: chunked, chunked\r\n\r\n", H1_E_TE_NOT_CHUNKED),
	    R(H "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
	      H1_E_TE_NOT_CHUNKED),
	    R(H "Transfer-Encoding: gzip\r\n\r\n", H1_E_TE_NOT_CHUNKED),
	    R(H "Transfer-Encoding: identity, chunked\r\n\r\n", H1_E_TE_UNKNOWN),
	    R(H "Transfer-Encoding: foo, chunked\r\n\r\n", H1_E_TE_UNKNOWN),
	    R(H "Transfer-Encoding: chunked;q=1\r\n\r\n", H1_E_TE_INVALID),
	    R(H "Transfer-Encoding: \"chunked\"\r\n\r\n", H1_E_TE_INVALID),
	    R(H "Transfer-Encoding: chunked,\r\n\r\n", H1_E_TE_INVALID),
	    R(H "Transfer-Encoding: , chunked\r\n\r\n", H1_E_TE_INVALID),
	    R(H "Transfer-Encoding:\r\n\r\n", H1_E_TE_INVALID),
	    R(H "Transfer-Encoding: chun ked\r\n\r\n", H1_E_TE_INVALID),
	    R(H "Transfer-Encoding : chunked\r\n\r\n", H1_E_SPACE_BEFORE_COLON),
	    R(H "Transfer-Encoding\t: chunked\r\n\r\n", H1_E_SPACE_BEFORE_COLON),
	    R(H " Transfer-Encoding: chunked\r\n\r\n", H1_E_OBS_FOLD),
	    R(H "Transfer-Encoding:\r\n chunked\r\n\r\n", H1_E_OBS_FOLD),
	    R(H "Transfer-Encoding: \x0b"
	        "chunked\r\n\r\n",
	      H1_E_HEADER_VALUE),
	    R(H "Transfer-Encoding: chunked\r\r\n\r\n", H1_E_BARE_CR),
	    R(H "Transfer_Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 0),
	    /* Content-Length. */
	    R(H "Content-Length: +5\r\n\r\n", H1_E_CL_INVALID),
	    R(H "Content-Length: -1\r\n\r\n", H1_E_CL_INVALID),
	    R(H "Content-Length: 5 6\r\n\r\n", H1_E_CL_INVALID),
	    R(H "Content-Length: 0x5\r\n\r\n", H1_E_CL_INVALID),
	    R(H "Content-Length: 5.0\r\n\r\n", H1_E_CL_INVALID),
	    R(H "Content-Length:\r\n\r\n", H1_E_CL_INVALID),
	    R(H "Content-Length: 5,\r\n\r\n", H1_E_CL_INVALID),
	    R(H "Content-Length: 9223372036854775808\r\n\r\n", H1_E_CL_INVALID),
	    R(H "Content-Length: 99999999999999999999999\r\n\r\n", H1_E_CL_INVALID),
	    R(H "Content-Length: 5, 6\r\n\r\n", H1_E_CL_MISMATCH),
	    R(H "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", H1_E_CL_MISMATCH),
	    R(H "Content-Length : 5\r\n\r\n", H1_E_SPACE_BEFORE_COLON),
	    R(H "Content-Length: 5\r\n Content-Length: 6\r\n\r\n", H1_E_OBS_FOLD),
	};
	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		struct h1_request r;
		int got = parse_req_n(t[i].in, t[i].len, &r);
		if (t[i].err == 0) {
			assert_true(got > 0);
			continue;
		}
		if (got != t[i].err)
			fail_msg("case %zu %s: got %d (%s), want %d (%s)", i, t[i].in, got,
			         h1_strerror(got), t[i].err, h1_strerror(t[i].err));
	}
	struct h1_request r;
	assert_true(parse_req(H "Content-Length: 00000000000000000000000042\r\n\r\n", &r) > 0);
	assert_int_equal(r.content_length, 42);
	assert_true(parse_req(H "Content-Length: 9223372036854775807\r\n\r\n", &r) > 0);
	assert_int_equal(r.content_length, INT64_MAX);
	assert_true(parse_req(H "Transfer-Encoding:\tchunked\t\r\n\r\n", &r) > 0);
	assert_true(r.chunked);
	assert_true(
	    parse_req(H "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", &r) > 0);
	assert_true(r.chunked);
}

static void test_every_split(void **state)
{
	size_t len = strlen(sample);
	struct h1_request whole;
	int want = parse_req_n(sample, len, &whole);
	assert_true(want > 0);
	size_t name0 = (size_t)(whole.headers[0].name.p - sample);

	/* One byte at a time, the buffer moving at every call. */
	struct h1_parser p;
	struct h1_request r;
	h1_parser_init(&p, NULL, hdrs, ELEMENTSOF(hdrs));
	int got = 0;
	char *prev = NULL;
	for (size_t n = 0; n <= len && got == 0; n++) {
		char *copy = malloc(n ? n : 1);
		memcpy(copy, sample, n);
		got = h1_parse_request(&p, copy, n, &r);
		if (got == 0)
			assert_true(n < (size_t)want);
		else
			assert_int_equal(n, (size_t)want);
		free(prev);
		prev = copy;
	}
	assert_int_equal(got, want);
	assert_int_equal(r.content_length, whole.content_length);
	assert_int_equal(r.nheaders, whole.nheaders);
	assert_slice(r.headers[7].value, "a b");
	assert_true(r.headers[0].name.p == prev + name0);
	free(prev);

	/* Every two-part split. */
	for (size_t k = 0; k <= len; k++) {
		h1_parser_init(&p, NULL, hdrs, ELEMENTSOF(hdrs));
		int first = h1_parse_request(&p, sample, k, &r);
		assert_int_equal(first, k < (size_t)want ? 0 : want);
		assert_int_equal(h1_parse_request(&p, sample, len, &r), want);
		assert_int_equal(r.upgrade, whole.upgrade);
		assert_true(r.host.p == whole.host.p && r.host.len == whole.host.len);
	}

	/* An error at the same place whatever the splits; and latched. */
	static const char bad[] = "GET / HTTP/1.1\r\nHost: a\r\nX : y\r\n\r\n";
	for (size_t k = 0; k <= strlen(bad); k++) {
		h1_parser_init(&p, NULL, hdrs, ELEMENTSOF(hdrs));
		int first = h1_parse_request(&p, bad, k, &r);
		assert_int_equal(first, k < strlen(bad) ? 0 : H1_E_SPACE_BEFORE_COLON);
		assert_int_equal(h1_parse_request(&p, bad, strlen(bad), &r),
		                 H1_E_SPACE_BEFORE_COLON);
		assert_int_equal(h1_parse_request(&p, bad, strlen(bad), &r),
		                 H1_E_SPACE_BEFORE_COLON);
	}
	/* Early errors need no complete head. */
	h1_parser_init(&p, NULL, hdrs, ELEMENTSOF(hdrs));
	assert_int_equal(h1_parse_request(&p, "PRI * HTTP/2.0\r\n", 16, &r), H1_E_HTTP2_PREFACE);
	h1_parser_init(&p, NULL, hdrs, ELEMENTSOF(hdrs));
	assert_int_equal(h1_parse_request(&p, "GET / HTTP/1.1\r\nA: b\n", 21, &r), H1_E_BARE_LF);
}

/* Builds "GET /<pad> HTTP/1.1\r\n..." with the given request line length. */
static char *request_line_of(size_t n)
{
	size_t tlen = n - strlen("GET  HTTP/1.1");
	char *s = malloc(n + 64);
	strcpy(s, "GET /");
	memset(s + 5, 'a', tlen - 1);
	strcpy(s + 4 + tlen, " HTTP/1.1\r\nHost: a\r\n\r\n");
	return s;
}

static char *header_line_of(size_t n)
{
	char *s = malloc(n + 64);
	strcpy(s, H "X: ");
	size_t off = strlen(s);
	memset(s + off, 'v', n - 3);
	strcpy(s + off + n - 3, "\r\n\r\n");
	return s;
}

static char *header_name_of(size_t n)
{
	char *s = malloc(n + 64);
	strcpy(s, H);
	size_t off = strlen(s);
	memset(s + off, 'N', n);
	strcpy(s + off + n, ": v\r\n\r\n");
	return s;
}

static char *headers_of(size_t count)
{
	char *s = malloc(count * 8 + 64);
	strcpy(s, "GET / HTTP/1.1\r\nHost: a\r\n");
	size_t off = strlen(s);
	for (size_t i = 1; i < count; i++) {
		memcpy(s + off, "X: v\r\n", 6);
		off += 6;
	}
	strcpy(s + off, "\r\n");
	return s;
}

/* A head of exactly total bytes. */
static char *head_of(size_t total)
{
	char *s = malloc(total + 1);
	strcpy(s, H);
	size_t off = strlen(s);
	size_t left = total - off - 2;
	while (left > 0) {
		size_t l = left > 8000 ? 8000 : left;
		if (left - l > 0 && left - l < 8)
			l -= 8;
		memcpy(s + off, "X: ", 3);
		memset(s + off + 3, 'v', l - 5);
		memcpy(s + off + l - 2, "\r\n", 2);
		off += l;
		left -= l;
	}
	strcpy(s + off, "\r\n");
	assert_int_equal(strlen(s), total);
	return s;
}

static void test_limits(void **state)
{
	struct h1_request r;
	char *s;

	s = request_line_of(8192);
	assert_true(parse_req(s, &r) > 0);
	assert_int_equal(r.target.len, 8192 - 13);
	free(s);
	s = request_line_of(8193);
	assert_int_equal(parse_req(s, &r), H1_E_REQUEST_LINE_TOO_LONG);
	assert_int_equal(h1_error_status(H1_E_REQUEST_LINE_TOO_LONG), 414);
	/* Refused before the line ends. */
	assert_int_equal(parse_req_n(s, 8194, &r), H1_E_REQUEST_LINE_TOO_LONG);
	assert_int_equal(parse_req_n(s, 8193, &r), 0);
	free(s);

	s = header_line_of(8192);
	assert_true(parse_req(s, &r) > 0);
	free(s);
	s = header_line_of(8193);
	assert_int_equal(parse_req(s, &r), H1_E_HEADER_LINE_TOO_LONG);
	assert_int_equal(h1_error_status(H1_E_HEADER_LINE_TOO_LONG), 431);
	free(s);

	s = header_name_of(1000);
	assert_true(parse_req(s, &r) > 0);
	free(s);
	s = header_name_of(1001);
	assert_int_equal(parse_req(s, &r), H1_E_NAME_TOO_LONG);
	free(s);

	s = headers_of(1000);
	assert_true(parse_req(s, &r) > 0);
	assert_int_equal(r.nheaders, 1000);
	free(s);
	s = headers_of(1001);
	assert_int_equal(parse_req(s, &r), H1_E_TOO_MANY_HEADERS);
	free(s);

	s = head_of(65536);
	assert_int_equal(parse_req(s, &r), 65536);
	free(s);
	s = head_of(65537);
	assert_int_equal(parse_req(s, &r), H1_E_HEAD_TOO_LARGE);
	assert_int_equal(h1_error_status(H1_E_HEAD_TOO_LARGE), 431);
	free(s);

	/* A too-long line ending in a bare LF is too long whatever the
	 * splits (found by fuzz-http1-request). */
	s = header_line_of(8200);
	char *lf = strstr(s + 30, "\r\n\r\n");
	memmove(lf, lf + 1, strlen(lf));
	for (size_t k = 0; k <= strlen(s); k += 97) {
		struct h1_parser p;
		h1_parser_init(&p, NULL, hdrs, ELEMENTSOF(hdrs));
		int first = h1_parse_request(&p, s, k, &r);
		assert_true(first == 0 || first == H1_E_HEADER_LINE_TOO_LONG);
		assert_int_equal(h1_parse_request(&p, s, strlen(s), &r), H1_E_HEADER_LINE_TOO_LONG);
	}
	free(s);

	/* Configurable limits, and a caller array smaller than the limit. */
	struct h1_limits l = h1_limits_default;
	l.headers = 2;
	struct h1_parser p;
	h1_parser_init(&p, &l, hdrs, ELEMENTSOF(hdrs));
	assert_int_equal(h1_parse_request(&p, H "A: 1\r\nB: 2\r\n\r\n", strlen(H) + 14, &r),
	                 H1_E_TOO_MANY_HEADERS);
	h1_parser_init(&p, NULL, hdrs, 2);
	assert_true(h1_parse_request(&p, H "A: 1\r\n\r\n", strlen(H) + 8, &r) > 0);
	h1_parser_init(&p, NULL, hdrs, 2);
	assert_int_equal(h1_parse_request(&p, H "A: 1\r\nB: 2\r\n\r\n", strlen(H) + 14, &r),
	                 H1_E_TOO_MANY_HEADERS);
}

static void test_responses(void **state)
{
	struct h1_response r;
	assert_true(parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", 0, &r) > 0);
	assert_int_equal(r.status, 200);
	assert_slice(r.reason, "OK");
	assert_int_equal(r.body, H1_BODY_LENGTH);
	assert_int_equal(r.content_length, 3);
	assert_true(r.keep_alive);
	assert_int_equal(r.head_len, 38);

	assert_true(parse_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0, &r) > 0);
	assert_int_equal(r.body, H1_BODY_CHUNKED);
	assert_true(parse_resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 0, &r) > 0);
	assert_int_equal(r.body, H1_BODY_CLOSE);
	assert_false(r.keep_alive);
	assert_true(parse_resp("HTTP/1.1 200 OK\r\n\r\n", 0, &r) > 0);
	assert_int_equal(r.body, H1_BODY_CLOSE);
	assert_false(r.keep_alive);
	assert_true(parse_resp("HTTP/1.1 204 No Content\r\n\r\n", 0, &r) > 0);
	assert_int_equal(r.body, H1_BODY_NONE);
	assert_true(r.keep_alive);
	assert_true(parse_resp("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", 0, &r) >
	            0);
	assert_int_equal(r.body, H1_BODY_NONE);
	assert_int_equal(r.content_length, 10);
	assert_true(parse_resp("HTTP/1.1 100 Continue\r\n\r\n", 0, &r) > 0);
	assert_int_equal(r.body, H1_BODY_NONE);
	assert_true(parse_resp("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	                       "Connection: Upgrade\r\n\r\n",
	                       0, &r) > 0);
	assert_true(r.upgrade);
	assert_int_equal(r.body, H1_BODY_NONE);
	assert_true(parse_resp("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", H1_RESP_HEAD, &r) >
	            0);
	assert_int_equal(r.body, H1_BODY_NONE);
	assert_true(parse_resp("HTTP/1.1 200 OK\r\n\r\n", H1_RESP_CONNECT, &r) > 0);
	assert_int_equal(r.body, H1_BODY_TUNNEL);
	assert_true(
	    parse_resp("HTTP/1.1 407 Auth\r\nContent-Length: 0\r\n\r\n", H1_RESP_CONNECT, &r) > 0);
	assert_int_equal(r.body, H1_BODY_LENGTH);
	assert_true(parse_resp("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", 0, &r) > 0);
	assert_false(r.keep_alive);
	assert_int_equal(r.minor, 0);
	assert_true(
	    parse_resp("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", 0,
	               &r) > 0);
	assert_true(r.keep_alive);
	assert_true(parse_resp("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
	                       0, &r) > 0);
	assert_false(r.keep_alive);
	assert_true(parse_resp("HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n", 0, &r) > 0);
	assert_int_equal(r.status, 404);
	assert_int_equal(r.reason.len, 0);
	assert_true(parse_resp("HTTP/1.1 599 \r\nContent-Length: 0\r\n\r\n", 0, &r) > 0);
	assert_true(parse_resp("HTTP/1.1 200 caf\xc3\xa9 ok\r\nContent-Length: 0\r\n\r\n", 0, &r) >
	            0);

	static const struct reject t[] = {
	    R("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
	      H1_E_CL_AND_TE),
	    R("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", H1_E_TE_HTTP10),
	    R("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
	      H1_E_TE_NOT_CHUNKED),
	    R("HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n", H1_E_CL_MISMATCH),
	    R("HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", H1_E_CL_INVALID),
	    R("HTTP/1.1 099 Low\r\n\r\n", H1_E_STATUS),
	    R("HTTP/1.1 600 High\r\n\r\n", H1_E_STATUS),
	    R("HTTP/1.1 2x0 OK\r\n\r\n", H1_E_STATUS),
	    R("HTTP/1.1 2000 OK\r\n\r\n", H1_E_STATUS),
	    R("HTTP/1.1 20 OK\r\n\r\n", H1_E_STATUS),
	    R("HTTP/1.1  200 OK\r\n\r\n", H1_E_STATUS),
	    R("HTTP/1.1\r\n\r\n", H1_E_STATUS_LINE),
	    R("HTTP/1.3 200 OK\r\n\r\n", H1_E_VERSION_UNSUPPORTED),
	    R("HTTX/1.1 200 OK\r\n\r\n", H1_E_VERSION),
	    R("HTTP/1.1 200 O\x01K\r\n\r\n", H1_E_STATUS_LINE),
	    R("HTTP/1.1 200 O\rK\r\n\r\n", H1_E_BARE_CR),
	    R("\r\nHTTP/1.1 200 OK\r\n\r\n", H1_E_STATUS_LINE),
	    R("HTTP/1.1 200 OK\r\nX : y\r\n\r\n", H1_E_SPACE_BEFORE_COLON),
	    R("HTTP/1.1 200 OK\r\nX: y\r\n z\r\n\r\n", H1_E_OBS_FOLD),
	    R("HTTP/1.1 200 OK\nX: y\r\n\r\n", H1_E_BARE_LF),
	};
	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		int got = parse_resp_n(t[i].in, t[i].len, 0, &r);
		if (got != t[i].err)
			fail_msg("case %zu %s: got %d (%s), want %d", i, t[i].in, got,
			         h1_strerror(got), t[i].err);
	}
}

/* Decodes in, handing it over in pieces: split at k, then the rest.
 * Returns the error, 1 when done (*ret_end = consumed), 0 when incomplete. */
static int dechunk(const char *in, size_t len, size_t k, char *out, size_t *ret_out,
                   size_t *ret_end)
{
	struct h1_chunked c;
	h1_chunked_init(&c, NULL);
	size_t off = 0, o = 0;
	size_t avail[2] = {k, len};
	for (int part = 0; part < 2; part++) {
		while (off < avail[part] && !h1_chunked_done(&c)) {
			struct h1_slice d;
			int n = h1_chunked_decode(&c, in + off, avail[part] - off, &d);
			if (n < 0)
				return n;
			assert_true(n > 0);
			if (d.len) {
				assert_true(d.p >= in + off && d.p + d.len <= in + off + n);
				memcpy(out + o, d.p, d.len);
				o += d.len;
			} else {
				assert_null(d.p);
			}
			off += (size_t)n;
		}
	}
	*ret_out = o;
	*ret_end = off;
	return h1_chunked_done(&c) ? 1 : 0;
}

static const char chunked_sample[] = "5;name=val;q=\"a \\\"b\\\" c\"\r\nhello\r\n"
                                     "00000000000000B\r\n, world!!!!\r\n"
                                     "1;x\r\n.\r\n"
                                     "0\r\nTrailer-A: 1\r\nTrailer-B:\r\n\r\n"
                                     "GET / HTTP/1.1\r\n";

static void test_chunked(void **state)
{
	char out[64];
	size_t olen, end;
	size_t len = strlen(chunked_sample);
	size_t body_len = len - strlen("GET / HTTP/1.1\r\n");
	for (size_t k = 0; k <= len; k++) {
		assert_int_equal(dechunk(chunked_sample, len, k, out, &olen, &end), 1);
		assert_int_equal(olen, 17);
		assert_memory_equal(out, "hello, world!!!!.", 17);
		assert_int_equal(end, body_len);
	}
	/* One byte at a time. */
	struct h1_chunked c;
	h1_chunked_init(&c, NULL);
	size_t o = 0;
	for (size_t i = 0; i < body_len; i++) {
		struct h1_slice d;
		assert_false(h1_chunked_done(&c));
		assert_int_equal(h1_chunked_decode(&c, chunked_sample + i, 1, &d), 1);
		o += d.len;
	}
	assert_true(h1_chunked_done(&c));
	assert_int_equal(o, 17);
	assert_int_equal(c.total, 17);
	struct h1_slice d;
	assert_int_equal(h1_chunked_decode(&c, "x", 1, &d), 0);
	assert_string_equal(h1_chunk_state_str(c.state), "done");

	/* Sixteen hex digits are the most, and fit. */
	h1_chunked_init(&c, NULL);
	assert_int_equal(h1_chunked_decode(&c, "ffffffffffffffff\r\nab", 20, &d), 20);
	assert_int_equal(d.len, 2);
	assert_int_equal(c.remaining, UINT64_MAX - 2);
}

static void test_chunked_rejects(void **state)
{
	static const struct reject t[] = {
	    R("", 0),
	    R("x\r\n", H1_E_CHUNK_SIZE),
	    R("\r\n", H1_E_CHUNK_SIZE),
	    R("-1\r\n", H1_E_CHUNK_SIZE),
	    R("+1\r\na\r\n0\r\n\r\n", H1_E_CHUNK_SIZE),
	    R("0x1\r\n", H1_E_CHUNK_SIZE),
	    R("1 \r\n", H1_E_CHUNK_SIZE),
	    R(" 1\r\n", H1_E_CHUNK_SIZE),
	    R("1 ;a\r\n", H1_E_CHUNK_SIZE),
	    R("1\n", H1_E_BARE_LF),
	    R("1\rx", H1_E_BARE_CR),
	    R("00000000000000001\r\n", H1_E_CHUNK_SIZE_OVERFLOW),
	    R("10000000000000000\r\n", H1_E_CHUNK_SIZE_OVERFLOW),
	    R("1;\r\n", H1_E_CHUNK_EXT),
	    R("1; a\r\n", H1_E_CHUNK_EXT),
	    R("1;a =b\r\n", H1_E_CHUNK_EXT),
	    R("1;a=\r\n", H1_E_CHUNK_EXT),
	    R("1;a=\"x\r\n", H1_E_BARE_CR),
	    R("1;a=\"x\"y\r\n", H1_E_CHUNK_EXT),
	    R("1;a=b=c\r\n", H1_E_CHUNK_EXT),
	    R("1;a=\"\x01\"\r\n", H1_E_CHUNK_EXT),
	    R("1;a\n", H1_E_BARE_LF),
	    R("1\r\nab\r\n", H1_E_CHUNK_CRLF),
	    R("1\r\na\n0\r\n\r\n", H1_E_CHUNK_CRLF),
	    R("1\r\na\r0\r\n\r\n", H1_E_CHUNK_CRLF),
	    R("0\r\n\n", H1_E_BARE_LF),
	    R("0\r\n\rx", H1_E_BARE_CR),
	    R("0\r\n x: y\r\n\r\n", H1_E_OBS_FOLD),
	    R("0\r\nx : y\r\n\r\n", H1_E_SPACE_BEFORE_COLON),
	    R("0\r\nx\r\n\r\n", H1_E_NO_COLON),
	    R("0\r\n: y\r\n\r\n", H1_E_HEADER_NAME),
	    R("0\r\nx(: y\r\n\r\n", H1_E_HEADER_NAME),
	    R("0\r\nx: \x01\r\n\r\n", H1_E_HEADER_VALUE),
	    R("0\r\nx: \0\r\n\r\n", H1_E_NUL),
	    R("0\r\nx: y\n\r\n", H1_E_BARE_LF),
	    R("0\r\nx: y\ry\r\n", H1_E_BARE_CR),
	    R("0\r\nx: y\r\n\rz", H1_E_BARE_CR),
	};
	for (size_t i = 0; i < ELEMENTSOF(t); i++) {
		char out[64];
		size_t olen, end;
		int got = dechunk(t[i].in, t[i].len, 0, out, &olen, &end);
		if (got != t[i].err)
			fail_msg("case %zu: got %d (%s), want %d (%s)", i, got, h1_strerror(got),
			         t[i].err, h1_strerror(t[i].err));
	}

	/* Extension and trailer limits, exactly at and one over. */
	struct h1_limits l = h1_limits_default;
	l.chunk_ext = 8;
	struct h1_chunked c;
	struct h1_slice d;
	h1_chunked_init(&c, &l);
	assert_int_equal(h1_chunked_decode(&c, "1;abcdefg\r\n", 11, &d), 11);
	h1_chunked_init(&c, &l);
	assert_int_equal(h1_chunked_decode(&c, "1;abcdefgh\r\n", 12, &d), H1_E_CHUNK_EXT_TOO_LONG);
	/* Latched. */
	assert_int_equal(h1_chunked_decode(&c, "0\r\n\r\n", 5, &d), H1_E_CHUNK_EXT_TOO_LONG);
	assert_string_equal(h1_chunk_state_str(c.state), "error");

	l = h1_limits_default;
	l.header_line = 6;
	l.headers = 2;
	h1_chunked_init(&c, &l);
	assert_int_equal(h1_chunked_decode(&c, "0\r\nab: cd\r\nx:\r\n\r\n", 17, &d), 17);
	assert_true(h1_chunked_done(&c));
	h1_chunked_init(&c, &l);
	assert_int_equal(h1_chunked_decode(&c, "0\r\nab: cde\r\n", 12, &d),
	                 H1_E_HEADER_LINE_TOO_LONG);
	h1_chunked_init(&c, &l);
	assert_int_equal(h1_chunked_decode(&c, "0\r\na:\r\nb:\r\nc:\r\n", 15, &d),
	                 H1_E_TOO_MANY_HEADERS);
	l = h1_limits_default;
	l.head = 10;
	h1_chunked_init(&c, &l);
	assert_int_equal(h1_chunked_decode(&c, "0\r\nabcde:\r\n\r\n", 13, &d), 13);
	h1_chunked_init(&c, &l);
	assert_int_equal(h1_chunked_decode(&c, "0\r\nabcdef:\r\n\r\n", 14, &d),
	                 H1_E_HEAD_TOO_LARGE);
	l = h1_limits_default;
	l.header_name = 3;
	h1_chunked_init(&c, &l);
	assert_int_equal(h1_chunked_decode(&c, "0\r\nabc:\r\n\r\n", 11, &d), 11);
	h1_chunked_init(&c, &l);
	assert_int_equal(h1_chunked_decode(&c, "0\r\nabcd:\r\n\r\n", 12, &d), H1_E_NAME_TOO_LONG);
}

static void test_helpers(void **state)
{
	struct h1_request r;
	assert_true(parse_req(H "Connection: keep-alive\r\nX-A: 1\r\nconnection: Foo , bar\r\n"
	                        "x-a: 2\r\n\r\n",
	                      &r) > 0);
	size_t pos = 0;
	const struct h1_header *h = h1_header_find(r.headers, r.nheaders, "X-a", &pos);
	assert_non_null(h);
	assert_slice(h->value, "1");
	h = h1_header_find(r.headers, r.nheaders, "X-a", &pos);
	assert_slice(h->value, "2");
	assert_null(h1_header_find(r.headers, r.nheaders, "X-a", &pos));
	assert_null(h1_header_find(r.headers, r.nheaders, "X-b", NULL));
	assert_non_null(h1_header_find(r.headers, r.nheaders, "HOST", NULL));
	assert_true(h1_connection_has(r.headers, r.nheaders, "bar"));
	assert_true(h1_connection_has(r.headers, r.nheaders, "foo"));
	assert_true(h1_connection_has(r.headers, r.nheaders, "Keep-Alive"));
	assert_false(h1_connection_has(r.headers, r.nheaders, "close"));

	struct h1_slice v = {.p = " a ,, b\t,c,", .len = 11}, e;
	const char *want[] = {"a", "b", "c"};
	size_t i = 0;
	pos = 0;
	while (h1_list_next(v, &pos, &e))
		assert_slice(e, want[i++]);
	assert_int_equal(i, 3);

	for (int err = H1_E_MIN; err <= 0; err++) {
		assert_string_not_equal(h1_strerror(err), "unknown HTTP/1 error");
		int st = h1_error_status(err);
		assert_true(st == 0 || (st >= 200 && st <= 505));
	}
	assert_string_equal(h1_strerror(1), "unknown HTTP/1 error");
	assert_int_equal(h1_error_status(H1_E_HTTP09), 0);
	assert_int_equal(h1_error_status(H1_E_HTTP2_PREFACE), 505);
	assert_int_equal(h1_error_status(H1_E_VERSION_UNSUPPORTED), 505);
	assert_int_equal(h1_error_status(H1_E_TE_UNKNOWN), 501);
	assert_int_equal(h1_error_status(H1_E_CL_AND_TE), 400);
	assert_int_equal(h1_error_status(H1_E_CONNECT), 400);
	for (int s = H1_CHUNK_SIZE_START; s <= H1_CHUNK_ERROR; s++)
		assert_string_not_equal(h1_chunk_state_str(s), "unknown");
	assert_string_equal(h1_method_str(H1_METHOD_PATCH), "PATCH");

	struct h1_parser p;
	h1_parser_init(&p, NULL, hdrs, 4);
	assert_int_equal(h1_parse_request(&p, NULL, 1, &r), H1_E_INVALID_ARGUMENT);
	assert_int_equal(h1_parse_request(&p, NULL, 0, &r), 0);
	/* After completion, a shorter buffer is a caller bug. */
	assert_true(h1_parse_request(&p, H "\r\n", strlen(H) + 2, &r) > 0);
	assert_int_equal(h1_parse_request(&p, H, strlen(H), &r), H1_E_INVALID_ARGUMENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_request_valid),   cmocka_unit_test(test_request_forms),
	    cmocka_unit_test(test_request_rejects), cmocka_unit_test(test_smuggling),
	    cmocka_unit_test(test_every_split),     cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_responses),       cmocka_unit_test(test_chunked),
	    cmocka_unit_test(test_chunked_rejects), cmocka_unit_test(test_helpers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
