/* Fuzz target for the router's head rewriting: a request head as the
 * client sent it, parsed by the codec; when it is accepted, the head for
 * the dyno is built into buffers of several sizes, and must then parse
 * again as a valid request with the same method, target and Host. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/http1.h"
#include "router/headers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct h1_header hdrs[1000], hdrs2[1100];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct h1_parser p;
	struct h1_request req;
	h1_parser_init(&p, NULL, hdrs, 1000);
	if (h1_parse_request(&p, (const char *)data, size, &req) <= 0)
		return 0;
	static char out[70000 + 4096];
	char fwd[HDR_FWD_MAX];
	struct hdr_request_info info = {"127.0.0.1", 8080, 1, "0123456789abcdefghij", false};
	size_t caps[] = {16, 256, 4096, sizeof(out)};
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		ssize_t n = hdr_build_request(&req, &info, out, caps[i], fwd, sizeof(fwd));
		if (n < 0)
			continue;
		if ((size_t)n > caps[i] || strlen(fwd) >= sizeof(fwd))
			__builtin_trap();
		struct h1_parser p2;
		struct h1_request r2;
		struct h1_limits lim = h1_limits_default;
		lim.head = sizeof(out);
		lim.headers = 1100;
		h1_parser_init(&p2, &lim, hdrs2, 1100);
		int r = h1_parse_request(&p2, out, (size_t)n, &r2);
		if (r != (int)n || r2.method.len != req.method.len ||
		    memcmp(r2.method.p, req.method.p, req.method.len) != 0 ||
		    r2.target.len != req.target.len ||
		    memcmp(r2.target.p, req.target.p, req.target.len) != 0 || r2.minor != 1)
			__builtin_trap();
	}
	return 0;
}
