/* Request and response head rewriting. */
#include "router/headers.h"

#include <stdio.h>
#include <string.h>

bool hdr_request_id_valid(const char *s, size_t len)
{
	if (len < 20 || len > HDR_REQUEST_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '+' || c == '/' || c == '=' || c == '-'))
			return false;
	}
	return true;
}

void hdr_uuid_format(uint64_t a, uint64_t b, char out[37])
{
	/* RFC 9562 5.4: version 4, variant 10 */
	static const char hex[] = "0123456789abcdef";
	a = (a & ~0xf000ull) | 0x4000ull;
	b = (b & ~(3ull << 62)) | (2ull << 62);
	size_t k = 0;
	for (int i = 60; i >= 0; i -= 4) {
		out[k++] = hex[(a >> i) & 0xf];
		if (k == 8 || k == 13)
			out[k++] = '-';
	}
	out[k++] = '-';
	for (int i = 60; i >= 0; i -= 4) {
		out[k++] = hex[(b >> i) & 0xf];
		if (k == 23)
			out[k++] = '-';
	}
	out[k] = '\0';
}

/* Decimal digits of v into b (at least 21 bytes), NUL-terminated; returns
 * where they start. */
static char *fmt_u64(char *b, size_t size, uint64_t v)
{
	char *p = b + size;
	*--p = '\0';
	do {
		*--p = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	return p;
}

struct out {
	char *p;
	size_t len, cap;
	bool over;
};

static void put(struct out *o, const char *s, size_t n)
{
	if (n == 0)
		return; /* an empty slice may have p NULL */
	if (o->over || o->cap - o->len < n) {
		o->over = true;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

/* Inline, so that the length of a literal is folded at compile time. */
static inline __attribute__((always_inline)) void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

static void put_slice(struct out *o, struct h1_slice s)
{
	put(o, s.p, s.len);
}

/* True when name is listed by a Connection field: a hop-by-hop field
 * (RFC 9110 7.6.1) that must not be forwarded. Host and the framing fields
 * are never taken as such: dropping them because a peer named them would
 * strip the Host, or desynchronise the framing of the hop after us. */
static bool named_by_connection(const struct h1_header *h, size_t n, struct h1_slice name)
{
	if (h1_slice_eq_ci(name, "host") || h1_slice_eq_ci(name, "content-length") ||
	    h1_slice_eq_ci(name, "transfer-encoding"))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!h1_slice_eq_ci(h[i].name, "connection"))
			continue;
		size_t pos = 0;
		struct h1_slice e;
		while (h1_list_next(h[i].value, &pos, &e))
			if (e.len == name.len && strncasecmp(e.p, name.p, e.len) == 0)
				return true;
	}
	return false;
}

static bool is_any(struct h1_slice name, const char *const *names)
{
	for (size_t i = 0; names[i]; i++)
		if (h1_slice_eq_ci(name, names[i]))
			return true;
	return false;
}

/* Joins every value of the fields called name with ", ". */
static void put_joined(struct out *o, const struct h1_header *h, size_t n, const char *name,
                       bool *any)
{
	for (size_t i = 0; i < n; i++) {
		if (!h1_slice_eq_ci(h[i].name, name) || h[i].value.len == 0)
			continue;
		if (*any)
			puts_(o, ", ");
		put_slice(o, h[i].value);
		*any = true;
	}
}

ssize_t hdr_build_request(const struct h1_request *req, const struct hdr_request_info *info,
                          char *out, size_t cap, char *fwd, size_t fwd_cap)
{
	static const char *const dropped[] = {
	    "connection",
	    "keep-alive",
	    "proxy-connection",
	    "te",
	    "x-forwarded-for",
	    "x-forwarded-proto",
	    "x-forwarded-port",
	    "x-request-start",
	    "x-request-id",
	    "via",
	    NULL,
	};
	struct out o = {out, 0, cap, false};
	put_slice(&o, req->method);
	puts_(&o, " ");
	put_slice(&o, req->target);
	puts_(&o, " HTTP/1.1\r\n");
	if (!req->has_host) {
		/* a 1.0 request without Host (absolute-form): HTTP/1.1 needs
		 * one (RFC 9112 3.2) */
		puts_(&o, "Host: ");
		put_slice(&o, req->host);
		puts_(&o, "\r\n");
	}
	const struct h1_header *h = req->headers;
	for (size_t i = 0; i < req->nheaders; i++) {
		if (is_any(h[i].name, dropped))
			continue;
		if (h1_slice_eq_ci(h[i].name, "upgrade") && !req->upgrade)
			continue;
		if (h1_slice_eq_ci(h[i].name, "expect") && req->expect_continue)
			continue;
		if (!h1_slice_eq_ci(h[i].name, "upgrade") &&
		    named_by_connection(h, req->nheaders, h[i].name))
			continue;
		put_slice(&o, h[i].name);
		puts_(&o, ": ");
		put_slice(&o, h[i].value);
		puts_(&o, "\r\n");
	}
	size_t fwd_start = o.len + strlen("X-Forwarded-For: ");
	puts_(&o, "X-Forwarded-For: ");
	bool any = false;
	put_joined(&o, h, req->nheaders, "x-forwarded-for", &any);
	if (any)
		puts_(&o, ", ");
	puts_(&o, info->client_ip);
	size_t fwd_end = o.len;
	char num[24];
	puts_(&o, "\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Port: ");
	puts_(&o, fmt_u64(num, sizeof(num), info->port));
	puts_(&o, "\r\nX-Request-Start: ");
	puts_(&o, fmt_u64(num, sizeof(num), info->start_ms));
	puts_(&o, "\r\n");
	puts_(&o, "X-Request-Id: ");
	puts_(&o, info->request_id);
	puts_(&o, "\r\nVia: ");
	any = false;
	put_joined(&o, h, req->nheaders, "via", &any);
	if (any)
		puts_(&o, ", ");
	puts_(&o, "1.1 dyno-router\r\n");
	if (req->upgrade)
		puts_(&o, "Connection: upgrade\r\n");
	else if (info->close)
		puts_(&o, "Connection: close\r\n");
	puts_(&o, "\r\n");
	if (o.over)
		return -1;
	if (fwd != NULL && fwd_cap > 0) {
		size_t n = fwd_end - fwd_start;
		if (n >= fwd_cap)
			n = fwd_cap - 1;
		memcpy(fwd, out + fwd_start, n);
		fwd[n] = '\0';
	}
	return (ssize_t)o.len;
}

ssize_t hdr_build_response(const struct h1_response *resp, const struct hdr_response_info *info,
                           char *out, size_t cap)
{
	static const char *const dropped[] = {"connection", "keep-alive", "proxy-connection", NULL};
	struct out o = {out, 0, cap, false};
	char status[16] = "HTTP/1.1 000 ";
	status[9] = (char)('0' + resp->status / 100 % 10);
	status[10] = (char)('0' + resp->status / 10 % 10);
	status[11] = (char)('0' + resp->status % 10);
	puts_(&o, status);
	put_slice(&o, resp->reason);
	puts_(&o, "\r\n");
	const struct h1_header *h = resp->headers;
	for (size_t i = 0; i < resp->nheaders; i++) {
		if (is_any(h[i].name, dropped))
			continue;
		if (info->dechunk && h1_slice_eq_ci(h[i].name, "transfer-encoding"))
			continue;
		if (!resp->upgrade && h1_slice_eq_ci(h[i].name, "upgrade"))
			continue;
		if (!h1_slice_eq_ci(h[i].name, "upgrade") &&
		    named_by_connection(h, resp->nheaders, h[i].name))
			continue;
		put_slice(&o, h[i].name);
		puts_(&o, ": ");
		put_slice(&o, h[i].value);
		puts_(&o, "\r\n");
	}
	if (resp->upgrade)
		puts_(&o, "Connection: upgrade\r\n");
	else if (info->close)
		puts_(&o, "Connection: close\r\n");
	else if (info->client_10)
		puts_(&o, "Connection: keep-alive\r\n");
	puts_(&o, "\r\n");
	return o.over ? -1 : (ssize_t)o.len;
}
