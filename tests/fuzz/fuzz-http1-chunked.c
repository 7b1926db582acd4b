/* libFuzzer target for h1_chunked_decode(). Bytes 0-1 choose a split
 * point. The body is decoded in one piece, in two pieces (each an
 * exact-size copy, so that ASan sees reads past either), and for small
 * inputs one byte at a time; the result, the decoded data and the
 * consumed length must agree, or the target aborts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/http1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct h1_limits limits = {
    .request_line = 200,
    .header_line = 60,
    .header_name = 20,
    .headers = 4,
    .head = 200,
    .chunk_ext = 32,
};

struct outcome {
	int result; /* < 0 error, 1 done, 0 incomplete */
	size_t consumed;
	size_t out_len;
};

/* Feeds one piece; appends decoded data to out. Returns the decoder's
 * error, or 0. */
static int feed(struct h1_chunked *c, const char *piece, size_t len, char *out, struct outcome *o)
{
	size_t off = 0;
	while (off < len && !h1_chunked_done(c)) {
		struct h1_slice d;
		int n = h1_chunked_decode(c, piece + off, len - off, &d);
		if (n < 0)
			return n;
		if (n == 0)
			abort(); /* not done and bytes given: must consume */
		if (d.len > 0) {
			if (d.p < piece + off || d.p + d.len > piece + off + n)
				abort();
			memcpy(out + o->out_len, d.p, d.len);
			o->out_len += d.len;
		} else if (d.p != NULL) {
			abort();
		}
		off += (size_t)n;
		o->consumed += (size_t)n;
	}
	return 0;
}

static void decode(const char *buf, size_t len, const size_t *cuts, size_t ncuts, char *out,
                   struct outcome *o)
{
	struct h1_chunked c;
	h1_chunked_init(&c, &limits);
	memset(o, 0, sizeof(*o));
	size_t start = 0;
	for (size_t i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : len;
		char *piece = malloc(end - start ? end - start : 1);
		if (piece == NULL)
			abort();
		memcpy(piece, buf + start, end - start);
		int r = feed(&c, piece, end - start, out, o);
		free(piece);
		if (r < 0) {
			o->result = r;
			return;
		}
		start = end;
	}
	o->result = h1_chunked_done(&c) ? 1 : 0;
	if (o->out_len != c.total)
		abort();
}

static void same(const struct outcome *a, const struct outcome *b, const char *oa, const char *ob)
{
	if (a->result != b->result || a->out_len != b->out_len || memcmp(oa, ob, a->out_len) != 0)
		abort();
	/* Without an error, the consumed length is the body's length
	 * (done) or everything (incomplete). */
	if (a->result >= 0 && a->consumed != b->consumed)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	const char *buf = (const char *)data + 2;
	size_t len = size - 2;
	size_t split = (((size_t)data[0] << 8) | data[1]) % (len + 1);

	char *out1 = malloc(len + 1), *out2 = malloc(len + 1);
	if (out1 == NULL || out2 == NULL)
		abort();
	struct outcome whole, two;
	decode(buf, len, NULL, 0, out1, &whole);
	if (whole.result < H1_E_MIN || whole.consumed > len)
		abort();
	if (whole.result == 0 && whole.consumed != len)
		abort();
	decode(buf, len, &split, 1, out2, &two);
	same(&whole, &two, out1, out2);

	if (len <= 256) {
		size_t cuts[256];
		for (size_t i = 0; i + 1 < len; i++)
			cuts[i] = i + 1;
		struct outcome bytes;
		decode(buf, len, cuts, len ? len - 1 : 0, out2, &bytes);
		same(&whole, &bytes, out1, out2);
	}
	free(out1);
	free(out2);
	return 0;
}
