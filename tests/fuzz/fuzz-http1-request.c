/* libFuzzer target for h1_parse_request(). The first two bytes choose a
 * split point: the head is parsed whole, and again in two calls (the first
 * on an exact-size copy of the prefix, so that ASan sees any read past it).
 * Both must agree, or the target aborts. Small limits make every limit
 * reachable by small inputs. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct h1_limits limits = {
    .request_line = 200,
    .header_line = 120,
    .header_name = 40,
    .headers = 12,
    .head = 1024,
    .chunk_ext = 32,
};

static void same_slice(struct h1_slice a, const char *abase, struct h1_slice b, const char *bbase)
{
	if (a.len != b.len || (a.p == NULL) != (b.p == NULL))
		abort();
	if (a.p != NULL && a.p - abase != b.p - bbase)
		abort();
	if (a.len > 0 && memcmp(a.p, b.p, a.len) != 0)
		abort();
}

static void same_request(const struct h1_request *a, const char *abase, const struct h1_request *b,
                         const char *bbase)
{
	same_slice(a->method, abase, b->method, bbase);
	same_slice(a->target, abase, b->target, bbase);
	same_slice(a->authority, abase, b->authority, bbase);
	same_slice(a->host, abase, b->host, bbase);
	same_slice(a->upgrade_proto, abase, b->upgrade_proto, bbase);
	if (a->method_id != b->method_id || a->target_form != b->target_form ||
	    a->minor != b->minor || a->nheaders != b->nheaders || a->has_host != b->has_host ||
	    a->body != b->body || a->content_length != b->content_length ||
	    a->chunked != b->chunked || a->keep_alive != b->keep_alive ||
	    a->expect_continue != b->expect_continue || a->upgrade != b->upgrade ||
	    a->head_len != b->head_len)
		abort();
	for (size_t i = 0; i < a->nheaders; i++) {
		same_slice(a->headers[i].name, abase, b->headers[i].name, bbase);
		same_slice(a->headers[i].value, abase, b->headers[i].value, bbase);
	}
}

static void check_result(int r, size_t len, const struct h1_request *req)
{
	if (r < H1_E_MIN || (r > 0 && (size_t)r > len))
		abort();
	if (r < 0 && h1_strerror(r) == NULL)
		abort();
	if (r > 0) {
		if (req->minor != 0 && req->minor != 1)
			abort();
		if (req->body == H1_BODY_CHUNKED && req->content_length != -1)
			abort();
		if (req->nheaders > limits.headers)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	const char *buf = (const char *)data + 2;
	size_t len = size - 2;
	size_t split = (((size_t)data[0] << 8) | data[1]) % (len + 1);

	static struct h1_header hw[16], hs[16];
	struct h1_parser pw, ps;
	struct h1_request rw, rs;

	h1_parser_init(&pw, &limits, hw, 16);
	int w = h1_parse_request(&pw, buf, len, &rw);
	check_result(w, len, &rw);

	char *prefix = malloc(split ? split : 1);
	if (prefix == NULL)
		return 0;
	memcpy(prefix, buf, split);
	h1_parser_init(&ps, &limits, hs, 16);
	int a = h1_parse_request(&ps, prefix, split, &rs);
	if (a != 0) {
		if (a != w)
			abort();
		if (a > 0)
			same_request(&rw, buf, &rs, prefix);
	} else {
		int b = h1_parse_request(&ps, buf, len, &rs);
		if (b != w)
			abort();
		if (b > 0)
			same_request(&rw, buf, &rs, buf);
	}
	free(prefix);
	return 0;
}
