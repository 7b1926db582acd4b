/* libFuzzer target for h1_parse_response(). Byte 0 holds the
 * H1_RESP_* flags, bytes 1-2 a split point; the head is parsed whole and
 * in two calls (the first on an exact-size copy of the prefix), and both
 * must agree, or the target aborts. */
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
}

static void same_response(const struct h1_response *a, const char *abase,
                          const struct h1_response *b, const char *bbase)
{
	same_slice(a->reason, abase, b->reason, bbase);
	if (a->minor != b->minor || a->status != b->status || a->nheaders != b->nheaders ||
	    a->body != b->body || a->content_length != b->content_length ||
	    a->chunked != b->chunked || a->keep_alive != b->keep_alive ||
	    a->upgrade != b->upgrade || a->head_len != b->head_len)
		abort();
	for (size_t i = 0; i < a->nheaders; i++) {
		same_slice(a->headers[i].name, abase, b->headers[i].name, bbase);
		same_slice(a->headers[i].value, abase, b->headers[i].value, bbase);
	}
}

static void check_result(int r, size_t len, unsigned flags, const struct h1_response *res)
{
	if (r < H1_E_MIN || (r > 0 && (size_t)r > len))
		abort();
	if (r > 0) {
		if (res->status < 100 || res->status > 599)
			abort();
		if ((flags & H1_RESP_HEAD) && res->body != H1_BODY_NONE)
			abort();
		if ((res->body == H1_BODY_CLOSE || res->body == H1_BODY_TUNNEL) && res->keep_alive)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 3)
		return 0;
	unsigned flags = data[0] & (H1_RESP_HEAD | H1_RESP_CONNECT);
	const char *buf = (const char *)data + 3;
	size_t len = size - 3;
	size_t split = (((size_t)data[1] << 8) | data[2]) % (len + 1);

	static struct h1_header hw[16], hs[16];
	struct h1_parser pw, ps;
	struct h1_response rw, rs;

	h1_parser_init(&pw, &limits, hw, 16);
	int w = h1_parse_response(&pw, buf, len, flags, &rw);
	check_result(w, len, flags, &rw);

	char *prefix = malloc(split ? split : 1);
	if (prefix == NULL)
		return 0;
	memcpy(prefix, buf, split);
	h1_parser_init(&ps, &limits, hs, 16);
	int a = h1_parse_response(&ps, prefix, split, flags, &rs);
	if (a != 0) {
		if (a != w)
			abort();
		if (a > 0)
			same_response(&rw, buf, &rs, prefix);
	} else {
		int b = h1_parse_response(&ps, buf, len, flags, &rs);
		if (b != w)
			abort();
		if (b > 0)
			same_response(&rw, buf, &rs, buf);
	}
	free(prefix);
	return 0;
}
