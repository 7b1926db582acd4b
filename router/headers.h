/* Header rewriting of dyno-router (docs/design.md, "Router"): the request head
 * sent to a dyno and the response head sent back to the client. Pure
 * functions over parsed heads (common/http1.h), so they are unit-tested. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/http1.h"

#define HDR_REQUEST_ID_MAX 200
#define HDR_FWD_MAX        512 /* X-Forwarded-For kept for the log line */

/* True when s[0..len) is a client X-Request-Id worth keeping: 20 to 200
 * characters of [A-Za-z0-9+/=-]. */
bool hdr_request_id_valid(const char *s, size_t len);

/* Formats a version 4 UUID from two random words into out (37 bytes). */
void hdr_uuid_format(uint64_t a, uint64_t b, char out[37]);

struct hdr_request_info {
	const char *client_ip;  /* appended to X-Forwarded-For */
	unsigned port;          /* X-Forwarded-Port: the listener's port */
	uint64_t start_ms;      /* X-Request-Start: ms since the epoch */
	const char *request_id; /* X-Request-Id as chosen */
	bool close;             /* Connection: close to the dyno (keep-alive off) */
};

/* Writes the head for the dyno into out[0..cap): the request line as
 * HTTP/1.1 (with a Host taken from the absolute-form target when the client
 * sent none), the client's fields minus hop-by-hop ones (Connection and what
 * it names, Keep-Alive, Proxy-Connection, TE, Upgrade unless upgrading,
 * Expect: 100-continue, which the router answers) and minus the ones it
 * sets (X-Forwarded-*, X-Request-Start, X-Request-Id, Via), then
 * X-Forwarded-For (appended), X-Forwarded-Proto, X-Forwarded-Port,
 * X-Request-Start, X-Request-Id, Via: 1.1 dyno-router (appended), and
 * Connection (close or upgrade). The resulting X-Forwarded-For value is
 * copied to fwd (cut to fwd_cap - 1). Returns the length, or -1 when cap is
 * too small. */
ssize_t hdr_build_request(const struct h1_request *req, const struct hdr_request_info *info,
                          char *out, size_t cap, char *fwd, size_t fwd_cap);

struct hdr_response_info {
	bool close;     /* the client connection closes after this response */
	bool client_10; /* the client spoke HTTP/1.0 */
	bool dechunk;   /* chunked body sent without its framing (1.0 client) */
};

/* Writes the head for the client: "HTTP/1.1 STATUS REASON", the dyno's
 * fields minus hop-by-hop ones (kept for a 101: Upgrade, Connection:
 * upgrade) and minus Transfer-Encoding when dechunking, then
 * "Connection: close", or "Connection: keep-alive" for a 1.0 client kept.
 * Returns the length, or -1 when cap is too small. */
ssize_t hdr_build_response(const struct h1_response *resp, const struct hdr_response_info *info,
                           char *out, size_t cap);
