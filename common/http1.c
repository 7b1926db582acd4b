/* Strict, incremental HTTP/1.1 codec, written from RFC 9110 and RFC 9112.
 *
 * The head parser works in two steps. As bytes arrive, a scanner finds line
 * ends with memchr() from where the previous call stopped, enforcing the
 * line-ending rules and every size limit at once, and checks the start line
 * as soon as it is complete (so that an HTTP/2 preface or an HTTP/0.9
 * request is answered without waiting for more). When the empty line that
 * ends the head has arrived, the head is validated and split in one pass.
 * Each byte is thus scanned once for line ends across any number of calls
 * and parsed once, whatever the splits. */
#include "common/http1.h"
#include "common/macro.h"

#include <string.h>

const struct h1_limits h1_limits_default = {
    .request_line = 8192,
    .header_line = 8192,
    .header_name = 1000,
    .headers = 1000,
    .head = 65536,
    .chunk_ext = 1024,
};

/* Character classes: tchar (RFC 9110 5.6.2), field-value bytes (VCHAR,
 * obs-text, SP, HTAB: RFC 9110 5.5), request-target bytes (VCHAR but "#":
 * RFC 9112 3.2 has no fragment), reg-name bytes (RFC 3986 3.2.2) and hex. */
#define C_TCHAR  0x01
#define C_VALUE  0x02
#define C_TARGET 0x04
#define C_HOST   0x08
#define C_HEX    0x10

static const unsigned char char_class[256] = {
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x02, 0x0f, 0x06, 0x03, 0x0f, 0x0f, 0x0f, 0x0f, 0x0e, 0x0e, 0x0f, 0x0f, 0x0e, 0x0f, 0x0f, 0x06,
    0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x06, 0x0e, 0x06, 0x0e, 0x06, 0x06,
    0x06, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f,
    0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x06, 0x06, 0x06, 0x07, 0x0f,
    0x07, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x1f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f,
    0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x0f, 0x06, 0x07, 0x06, 0x0f, 0x00,
    0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
    0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
    0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
    0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
    0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
    0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
    0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
    0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,
};

static inline bool is_tchar(unsigned char c)
{
	return char_class[c] & C_TCHAR;
}

static inline bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static inline char lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
}

static int hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool mem_eq_ci(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen)
		return false;
	for (size_t i = 0; i < alen; i++)
		if (lower(a[i]) != lower(b[i]))
			return false;
	return true;
}

bool h1_mem_eq_ci(const char *a, const char *b, size_t n)
{
	return mem_eq_ci(a, n, b, n);
}

static struct h1_slice slice(const char *p, size_t len)
{
	return (struct h1_slice){.p = p, .len = len};
}

static struct h1_slice trim_ows(struct h1_slice s)
{
	while (s.len > 0 && is_ows(s.p[0])) {
		s.p++;
		s.len--;
	}
	while (s.len > 0 && is_ows(s.p[s.len - 1]))
		s.len--;
	return s;
}

static bool is_token(struct h1_slice s)
{
	if (s.len == 0)
		return false;
	for (size_t i = 0; i < s.len; i++)
		if (!is_tchar((unsigned char)s.p[i]))
			return false;
	return true;
}

const char *h1_strerror(int err)
{
	switch (err) {
	case H1_OK:
		return "success";
	case H1_E_BARE_LF:
		return "line ends with a bare LF instead of CRLF";
	case H1_E_BARE_CR:
		return "CR not followed by LF";
	case H1_E_NUL:
		return "NUL byte in the message head";
	case H1_E_REQUEST_LINE:
		return "malformed request line (want method SP target SP version)";
	case H1_E_METHOD:
		return "invalid character in the method";
	case H1_E_TARGET:
		return "invalid request-target";
	case H1_E_VERSION:
		return "malformed HTTP version";
	case H1_E_VERSION_UNSUPPORTED:
		return "HTTP version not supported (only HTTP/1.0 and HTTP/1.1)";
	case H1_E_HTTP09:
		return "HTTP/0.9 request (no version in the request line)";
	case H1_E_HTTP2_PREFACE:
		return "HTTP/2 connection preface on an HTTP/1 connection";
	case H1_E_CONNECT:
		return "CONNECT method not allowed";
	case H1_E_STATUS_LINE:
		return "malformed status line";
	case H1_E_STATUS:
		return "status code not in 100..599";
	case H1_E_HEADER_NAME:
		return "header name empty or with a character that is not a token character";
	case H1_E_SPACE_BEFORE_COLON:
		return "whitespace between header name and colon";
	case H1_E_NO_COLON:
		return "header line without a colon";
	case H1_E_OBS_FOLD:
		return "header line folded (starts with space or tab)";
	case H1_E_HEADER_VALUE:
		return "control character in a header value";
	case H1_E_HOST_MISSING:
		return "HTTP/1.1 request without a Host header";
	case H1_E_HOST_DUPLICATE:
		return "more than one Host header";
	case H1_E_HOST_INVALID:
		return "invalid Host header value";
	case H1_E_HOST_MISMATCH:
		return "absolute-form target host differs from the Host header";
	case H1_E_CL_INVALID:
		return "invalid Content-Length value";
	case H1_E_CL_MISMATCH:
		return "differing Content-Length values";
	case H1_E_CL_AND_TE:
		return "both Content-Length and Transfer-Encoding";
	case H1_E_TE_INVALID:
		return "malformed Transfer-Encoding list";
	case H1_E_TE_UNKNOWN:
		return "unknown transfer coding in Transfer-Encoding";
	case H1_E_TE_NOT_CHUNKED:
		return "Transfer-Encoding without chunked as its last, only chunked coding";
	case H1_E_TE_HTTP10:
		return "Transfer-Encoding in an HTTP/1.0 message";
	case H1_E_CONNECTION:
		return "invalid token in the Connection header";
	case H1_E_REQUEST_LINE_TOO_LONG:
		return "request or status line too long";
	case H1_E_HEADER_LINE_TOO_LONG:
		return "header line too long";
	case H1_E_NAME_TOO_LONG:
		return "header name too long";
	case H1_E_TOO_MANY_HEADERS:
		return "too many header lines";
	case H1_E_HEAD_TOO_LARGE:
		return "message head or trailer section too large";
	case H1_E_CHUNK_SIZE:
		return "invalid chunk size line";
	case H1_E_CHUNK_SIZE_OVERFLOW:
		return "chunk size has more than 16 hex digits";
	case H1_E_CHUNK_EXT:
		return "invalid chunk extension";
	case H1_E_CHUNK_EXT_TOO_LONG:
		return "chunk extensions too long";
	case H1_E_CHUNK_CRLF:
		return "chunk data not followed by CRLF";
	case H1_E_INVALID_ARGUMENT:
		return "invalid argument to the HTTP/1 codec";
	}
	return "unknown HTTP/1 error";
}

int h1_error_status(int err)
{
	switch (err) {
	case H1_OK:
		return 200;
	case H1_E_HTTP09:
		/* An HTTP/0.9 client cannot read a status line. */
		return 0;
	case H1_E_VERSION_UNSUPPORTED:
	case H1_E_HTTP2_PREFACE:
		return 505;
	case H1_E_TE_UNKNOWN:
		return 501;
	case H1_E_REQUEST_LINE_TOO_LONG:
		return 414;
	case H1_E_HEADER_LINE_TOO_LONG:
	case H1_E_NAME_TOO_LONG:
	case H1_E_TOO_MANY_HEADERS:
	case H1_E_HEAD_TOO_LARGE:
		return 431;
	case H1_E_INVALID_ARGUMENT:
		return 500;
	}
	return 400;
}

const char *h1_method_str(enum h1_method m)
{
	switch (m) {
	case H1_METHOD_OTHER:
		return "OTHER";
	case H1_METHOD_GET:
		return "GET";
	case H1_METHOD_HEAD:
		return "HEAD";
	case H1_METHOD_POST:
		return "POST";
	case H1_METHOD_PUT:
		return "PUT";
	case H1_METHOD_DELETE:
		return "DELETE";
	case H1_METHOD_CONNECT:
		return "CONNECT";
	case H1_METHOD_OPTIONS:
		return "OPTIONS";
	case H1_METHOD_TRACE:
		return "TRACE";
	case H1_METHOD_PATCH:
		return "PATCH";
	}
	return "OTHER";
}

const char *h1_body_str(enum h1_body b)
{
	switch (b) {
	case H1_BODY_NONE:
		return "none";
	case H1_BODY_LENGTH:
		return "length";
	case H1_BODY_CHUNKED:
		return "chunked";
	case H1_BODY_CLOSE:
		return "close";
	case H1_BODY_TUNNEL:
		return "tunnel";
	}
	return "unknown";
}

const char *h1_chunk_state_str(enum h1_chunk_state s)
{
	static const char *const names[] = {
	    [H1_CHUNK_SIZE_START] = "size-start",
	    [H1_CHUNK_SIZE] = "size",
	    [H1_CHUNK_EXT_NAME_START] = "ext-name-start",
	    [H1_CHUNK_EXT_NAME] = "ext-name",
	    [H1_CHUNK_EXT_VALUE_START] = "ext-value-start",
	    [H1_CHUNK_EXT_TOKEN] = "ext-token",
	    [H1_CHUNK_EXT_QUOTED] = "ext-quoted",
	    [H1_CHUNK_EXT_QUOTED_PAIR] = "ext-quoted-pair",
	    [H1_CHUNK_EXT_QUOTED_END] = "ext-quoted-end",
	    [H1_CHUNK_SIZE_LF] = "size-lf",
	    [H1_CHUNK_DATA] = "data",
	    [H1_CHUNK_DATA_CR] = "data-cr",
	    [H1_CHUNK_DATA_LF] = "data-lf",
	    [H1_CHUNK_TRAILER_START] = "trailer-start",
	    [H1_CHUNK_TRAILER_NAME] = "trailer-name",
	    [H1_CHUNK_TRAILER_NAME_WS] = "trailer-name-ws",
	    [H1_CHUNK_TRAILER_VALUE] = "trailer-value",
	    [H1_CHUNK_TRAILER_LF] = "trailer-lf",
	    [H1_CHUNK_FINAL_LF] = "final-lf",
	    [H1_CHUNK_DONE] = "done",
	    [H1_CHUNK_ERROR] = "error",
	};
	if ((unsigned)s < sizeof(names) / sizeof(names[0]) && names[s] != NULL)
		return names[s];
	return "unknown";
}

/* --- helpers on parsed heads --- */

const struct h1_header *h1_header_find(const struct h1_header *headers, size_t n, const char *name,
                                       size_t *pos)
{
	size_t nlen = strlen(name);
	for (size_t i = pos ? *pos : 0; i < n; i++) {
		if (mem_eq_ci(headers[i].name.p, headers[i].name.len, name, nlen)) {
			if (pos)
				*pos = i + 1;
			return &headers[i];
		}
	}
	if (pos)
		*pos = n;
	return NULL;
}

bool h1_list_next(struct h1_slice value, size_t *pos, struct h1_slice *ret_elem)
{
	while (*pos < value.len) {
		const char *start = value.p + *pos;
		const char *comma = memchr(start, ',', value.len - *pos);
		size_t n = comma ? (size_t)(comma - start) : value.len - *pos;
		*pos += n + (comma ? 1 : 0);
		struct h1_slice e = trim_ows(slice(start, n));
		if (e.len > 0) {
			*ret_elem = e;
			return true;
		}
	}
	return false;
}

bool h1_connection_has(const struct h1_header *headers, size_t n, const char *token)
{
	size_t at = 0;
	const struct h1_header *h;
	while ((h = h1_header_find(headers, n, "connection", &at)) != NULL) {
		size_t pos = 0;
		struct h1_slice e;
		while (h1_list_next(h->value, &pos, &e))
			if (h1_slice_eq_ci(e, token))
				return true;
	}
	return false;
}

/* Strict list iteration for framing headers (Content-Length,
 * Transfer-Encoding): an empty element is an error there, unlike in
 * h1_list_next(), because a list like "chunked," is read differently by
 * different parsers. Returns 1 with an element, 0 at the end, -1 on an
 * empty element. */
static int strict_list_next(struct h1_slice value, size_t *pos, struct h1_slice *ret_elem)
{
	if (*pos > value.len)
		return 0;
	const char *start = value.p + *pos;
	size_t left = value.len - *pos;
	const char *comma = memchr(start, ',', left);
	size_t n = comma ? (size_t)(comma - start) : left;
	/* Past the end when there was no comma; an element follows a comma. */
	*pos += n + 1;
	*ret_elem = trim_ows(slice(start, n));
	return ret_elem->len > 0 ? 1 : -1;
}

/* --- the start lines --- */

static int parse_version(const char *v, size_t n, int *ret_minor)
{
	if (n != 8 || memcmp(v, "HTTP/", 5) != 0 || v[6] != '.' || v[5] < '0' || v[5] > '9' ||
	    v[7] < '0' || v[7] > '9')
		return H1_E_VERSION;
	if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
		return H1_E_VERSION_UNSUPPORTED;
	*ret_minor = v[7] - '0';
	return 0;
}

static enum h1_method method_id(struct h1_slice m)
{
	/* Methods are case-sensitive (RFC 9110 9.1). */
	static const struct {
		const char *name;
		enum h1_method id;
	} known[] = {
	    {"GET", H1_METHOD_GET},         {"HEAD", H1_METHOD_HEAD},
	    {"POST", H1_METHOD_POST},       {"PUT", H1_METHOD_PUT},
	    {"DELETE", H1_METHOD_DELETE},   {"CONNECT", H1_METHOD_CONNECT},
	    {"OPTIONS", H1_METHOD_OPTIONS}, {"TRACE", H1_METHOD_TRACE},
	    {"PATCH", H1_METHOD_PATCH},
	};
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strlen(known[i].name) == m.len && memcmp(known[i].name, m.p, m.len) == 0)
			return known[i].id;
	return H1_METHOD_OTHER;
}

/* Checks the byte that broke a run of valid bytes and names it: CR and NUL
 * get their own codes because they are what smuggling attempts use. */
static int bad_byte(unsigned char c, int otherwise)
{
	if (c == '\r')
		return H1_E_BARE_CR;
	if (c == '\0')
		return H1_E_NUL;
	return otherwise;
}

/* request-line = method SP request-target SP HTTP-version (RFC 9112 3),
 * exactly one SP each. line has no CRLF. */
static int parse_request_line(const char *line, size_t n, struct h1_request *r)
{
	static const char preface[] = "PRI * HTTP/2.0";
	if (n == sizeof(preface) - 1 && memcmp(line, preface, n) == 0)
		return H1_E_HTTP2_PREFACE;

	size_t i = 0;
	while (i < n && is_tchar((unsigned char)line[i]))
		i++;
	if (i == n)
		return H1_E_REQUEST_LINE;
	if (line[i] != ' ')
		return bad_byte((unsigned char)line[i], H1_E_METHOD);
	if (i == 0)
		return H1_E_REQUEST_LINE;
	r->method = slice(line, i);

	const char *rest = line + i + 1;
	size_t rest_len = n - i - 1;
	const char *last_sp = memrchr(rest, ' ', rest_len);
	if (last_sp == NULL) {
		/* "GET /path": only HTTP/0.9 had no version; a lone version
		 * token is a request line missing its target. */
		if (rest_len >= 5 && memcmp(rest, "HTTP/", 5) == 0)
			return H1_E_REQUEST_LINE;
		if (rest_len == 0)
			return H1_E_REQUEST_LINE;
		return H1_E_HTTP09;
	}
	/* The version first: "GET / HTTP/1.1 " is a bad version, not a
	 * target with a space. */
	const char *v = last_sp + 1;
	size_t vlen = n - (size_t)(v - line);
	int rv = parse_version(v, vlen, &r->minor);
	if (rv < 0) {
		for (size_t k = 0; k < vlen; k++)
			if (v[k] == '\r' || v[k] == '\0')
				return bad_byte((unsigned char)v[k], rv);
		return rv;
	}

	size_t tlen = (size_t)(last_sp - rest);
	if (tlen == 0)
		return H1_E_REQUEST_LINE;
	for (size_t k = 0; k < tlen; k++)
		if (!(char_class[(unsigned char)rest[k]] & C_TARGET))
			return bad_byte((unsigned char)rest[k], H1_E_TARGET);
	r->target = slice(rest, tlen);

	r->method_id = method_id(r->method);
	if (r->method_id == H1_METHOD_CONNECT)
		return H1_E_CONNECT;

	/* request-target forms, RFC 9112 3.2. */
	r->authority = slice(NULL, 0);
	if (r->target.p[0] == '/') {
		r->target_form = H1_TARGET_ORIGIN;
	} else if (tlen == 1 && r->target.p[0] == '*') {
		if (r->method_id != H1_METHOD_OPTIONS)
			return H1_E_TARGET;
		r->target_form = H1_TARGET_ASTERISK;
	} else {
		size_t skip;
		if (tlen > 7 && mem_eq_ci(r->target.p, 7, "http://", 7))
			skip = 7;
		else if (tlen > 8 && mem_eq_ci(r->target.p, 8, "https://", 8))
			skip = 8;
		else
			return H1_E_TARGET;
		const char *a = r->target.p + skip;
		size_t alen = 0;
		while (skip + alen < tlen && a[alen] != '/' && a[alen] != '?')
			alen++;
		/* userinfo is deprecated (RFC 9110 4.2.4) and a way to
		 * disguise the host. */
		if (alen == 0 || memchr(a, '@', alen) != NULL)
			return H1_E_TARGET;
		r->authority = slice(a, alen);
		r->target_form = H1_TARGET_ABSOLUTE;
	}
	return 0;
}

/* status-line = HTTP-version SP status-code SP [ reason-phrase ]
 * (RFC 9112 4). A missing SP after the code is tolerated, since the reason
 * is ignored anyway. */
static int parse_status_line(const char *line, size_t n, struct h1_response *r)
{
	if (n < 12 || line[8] != ' ') {
		if (n >= 8 && parse_version(line, 8, &r->minor) < 0)
			return H1_E_VERSION;
		return H1_E_STATUS_LINE;
	}
	int rv = parse_version(line, 8, &r->minor);
	if (rv < 0)
		return rv;
	int status = 0;
	for (size_t i = 9; i < 12; i++) {
		if (line[i] < '0' || line[i] > '9')
			return H1_E_STATUS;
		status = status * 10 + (line[i] - '0');
	}
	if (status < 100 || status > 599)
		return H1_E_STATUS;
	r->status = status;
	r->reason = slice(line + n, 0);
	if (n > 12) {
		if (line[12] != ' ')
			return H1_E_STATUS;
		for (size_t i = 13; i < n; i++)
			if (!(char_class[(unsigned char)line[i]] & C_VALUE))
				return bad_byte((unsigned char)line[i], H1_E_STATUS_LINE);
		r->reason = slice(line + 13, n - 13);
	}
	return 0;
}

/* --- field lines --- */

/* What the head's fields say about framing, collected in one pass. */
struct fields {
	size_t n;
	unsigned host_count;
	struct h1_slice host;
	bool has_cl;
	int64_t cl;
	bool has_te;
	unsigned te_chunked;  /* times "chunked" appears */
	bool te_last_chunked; /* the last coding is chunked */
	bool te_unknown;
	bool conn_close;
	bool conn_keep_alive;
	bool conn_upgrade;
	bool has_upgrade;
	struct h1_slice upgrade;
	bool expect_continue;
};

/* field-line = field-name ":" OWS field-value OWS (RFC 9112 5). line has
 * no CRLF and is not empty. */
static int parse_field_line(const char *line, size_t n, const struct h1_limits *l,
                            struct h1_header *h)
{
	/* obs-fold, or whitespace before the first field (RFC 9112 2.2 and
	 * 5.2): both are refused. */
	if (is_ows(line[0]))
		return H1_E_OBS_FOLD;
	size_t i = 0;
	while (i < n && is_tchar((unsigned char)line[i]))
		i++;
	if (i > l->header_name)
		return H1_E_NAME_TOO_LONG;
	if (i == n)
		return H1_E_NO_COLON;
	if (line[i] != ':') {
		size_t k = i;
		while (k < n && is_ows(line[k]))
			k++;
		if (k > i && k < n && line[k] == ':')
			return H1_E_SPACE_BEFORE_COLON;
		if (line[i] == '\r' || line[i] == '\0')
			return bad_byte((unsigned char)line[i], H1_E_HEADER_NAME);
		if (memchr(line + i, ':', n - i) == NULL)
			return H1_E_NO_COLON;
		return H1_E_HEADER_NAME;
	}
	if (i == 0)
		return H1_E_HEADER_NAME;
	h->name = slice(line, i);
	for (size_t k = i + 1; k < n; k++)
		if (!(char_class[(unsigned char)line[k]] & C_VALUE))
			return bad_byte((unsigned char)line[k], H1_E_HEADER_VALUE);
	h->value = trim_ows(slice(line + i + 1, n - i - 1));
	return 0;
}

static int parse_content_length(struct fields *f, struct h1_slice value)
{
	/* RFC 9112 6.3 (5): a list of identical values may be taken as
	 * one; we do, across lines too. Any other list is refused. */
	size_t pos = 0;
	struct h1_slice e;
	int r;
	while ((r = strict_list_next(value, &pos, &e)) != 0) {
		if (r < 0)
			return H1_E_CL_INVALID;
		int64_t v = 0;
		for (size_t i = 0; i < e.len; i++) {
			if (e.p[i] < '0' || e.p[i] > '9')
				return H1_E_CL_INVALID;
			int d = e.p[i] - '0';
			if (v > (INT64_MAX - d) / 10)
				return H1_E_CL_INVALID;
			v = v * 10 + d;
		}
		if (f->has_cl && f->cl != v)
			return H1_E_CL_MISMATCH;
		f->has_cl = true;
		f->cl = v;
	}
	return 0;
}

static bool known_coding(struct h1_slice c)
{
	/* The registered transfer codings (RFC 9112 7); "identity" is no
	 * longer one. */
	return h1_slice_eq_ci(c, "gzip") || h1_slice_eq_ci(c, "deflate") ||
	       h1_slice_eq_ci(c, "compress") || h1_slice_eq_ci(c, "x-gzip") ||
	       h1_slice_eq_ci(c, "x-compress");
}

static int parse_transfer_encoding(struct fields *f, struct h1_slice value)
{
	size_t pos = 0;
	struct h1_slice e;
	int r;
	f->has_te = true;
	while ((r = strict_list_next(value, &pos, &e)) != 0) {
		/* Parameters are refused too: no coding we accept has any. */
		if (r < 0 || !is_token(e))
			return H1_E_TE_INVALID;
		if (h1_slice_eq_ci(e, "chunked")) {
			f->te_chunked++;
			f->te_last_chunked = true;
		} else {
			f->te_last_chunked = false;
			if (!known_coding(e))
				f->te_unknown = true;
		}
	}
	return 0;
}

static int parse_connection(struct fields *f, struct h1_slice value)
{
	size_t pos = 0;
	struct h1_slice e;
	while (h1_list_next(value, &pos, &e)) {
		if (!is_token(e))
			return H1_E_CONNECTION;
		if (h1_slice_eq_ci(e, "close"))
			f->conn_close = true;
		else if (h1_slice_eq_ci(e, "keep-alive"))
			f->conn_keep_alive = true;
		else if (h1_slice_eq_ci(e, "upgrade"))
			f->conn_upgrade = true;
	}
	return 0;
}

static int process_field(struct fields *f, const struct h1_header *h)
{
	const struct h1_slice name = h->name;
	switch (name.len) {
	case 4:
		if (h1_slice_eq_ci(name, "host")) {
			if (f->host_count++ == 0)
				f->host = h->value;
		}
		break;
	case 6:
		if (h1_slice_eq_ci(name, "expect")) {
			size_t pos = 0;
			struct h1_slice e;
			while (h1_list_next(h->value, &pos, &e))
				if (h1_slice_eq_ci(e, "100-continue"))
					f->expect_continue = true;
		}
		break;
	case 7:
		if (h1_slice_eq_ci(name, "upgrade") && !f->has_upgrade && h->value.len > 0) {
			f->has_upgrade = true;
			f->upgrade = h->value;
		}
		break;
	case 10:
		if (h1_slice_eq_ci(name, "connection"))
			return parse_connection(f, h->value);
		break;
	case 14:
		if (h1_slice_eq_ci(name, "content-length"))
			return parse_content_length(f, h->value);
		break;
	case 17:
		if (h1_slice_eq_ci(name, "transfer-encoding"))
			return parse_transfer_encoding(f, h->value);
		break;
	}
	return 0;
}

/* The meaning of the fields, once every line is known to be well formed:
 * "Transfer-Encoding:" followed by an obs-fold line is an obs-fold. */
static int process_fields(struct h1_parser *p, struct fields *f)
{
	for (size_t i = 0; i < f->n; i++) {
		int r = process_field(f, &p->headers[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Splits and checks the field lines from off up to the head's empty line;
 * the scanner has already checked line endings and limits. */
static int parse_fields(struct h1_parser *p, const char *buf, size_t off, struct fields *f)
{
	for (;;) {
		const char *nl = memchr(buf + off, '\n', p->end - off);
		size_t lf = (size_t)(nl - buf);
		size_t n = lf - 1 - off;
		if (n == 0)
			return process_fields(p, f);
		if (f->n >= p->headers_cap)
			return H1_E_TOO_MANY_HEADERS;
		int r = parse_field_line(buf + off, n, &p->limits, &p->headers[f->n]);
		if (r < 0)
			return r;
		f->n++;
		off = lf + 1;
	}
}

/* Host = uri-host [ ":" port ] (RFC 9110 7.2, RFC 3986 3.2.2). Empty is
 * allowed (RFC 9112 3.2: a target without authority). */
static bool host_valid(struct h1_slice h)
{
	size_t i = 0;
	if (h.len == 0)
		return true;
	if (h.p[0] == '[') {
		const char *end = memchr(h.p, ']', h.len);
		if (end == NULL || end == h.p + 1)
			return false;
		for (const char *c = h.p + 1; c < end; c++)
			if (!(char_class[(unsigned char)*c] & C_HOST) && *c != ':')
				return false;
		i = (size_t)(end - h.p) + 1;
	} else {
		while (i < h.len && h.p[i] != ':') {
			unsigned char c = (unsigned char)h.p[i];
			if (!(char_class[c] & C_HOST))
				return false;
			if (c == '%' &&
			    (i + 2 >= h.len || hex_value((unsigned char)h.p[i + 1]) < 0 ||
			     hex_value((unsigned char)h.p[i + 2]) < 0))
				return false;
			i++;
		}
		if (i == 0)
			return false;
	}
	if (i == h.len)
		return true;
	if (h.p[i] != ':')
		return false;
	for (i++; i < h.len; i++)
		if (h.p[i] < '0' || h.p[i] > '9')
			return false;
	return true;
}

/* --- the incremental scanner --- */

void h1_parser_init(struct h1_parser *p, const struct h1_limits *limits, struct h1_header *headers,
                    size_t headers_cap)
{
	memset(p, 0, sizeof(*p));
	p->limits = limits ? *limits : h1_limits_default;
	/* The head length is returned as an int. */
	if (p->limits.head > (size_t)INT32_MAX)
		p->limits.head = (size_t)INT32_MAX;
	p->headers = headers;
	p->headers_cap = headers ? headers_cap : 0;
	if (p->headers_cap > p->limits.headers)
		p->headers_cap = p->limits.headers;
}

static size_t line_limit(const struct h1_parser *p)
{
	return p->start_done ? p->limits.header_line : p->limits.request_line;
}

/* Finds line ends in the bytes not yet scanned, checking line endings,
 * limits and (once complete) the start line. Returns < 0, 0 (need more)
 * or 1 with p->end set. */
static int scan(struct h1_parser *p, const char *buf, size_t len, bool request)
{
	const struct h1_limits *l = &p->limits;
	size_t limit = MIN(len, l->head);
	while (p->scan_pos < limit) {
		const char *nl = memchr(buf + p->scan_pos, '\n', limit - p->scan_pos);
		if (nl == NULL) {
			p->scan_pos = limit;
			break;
		}
		size_t lf = (size_t)(nl - buf);
		p->scan_pos = lf + 1;
		/* Length first, as the partial-line check below would have
		 * seen it had the bytes come in two calls: the error must
		 * not depend on the splits. */
		if (lf - p->line_start > line_limit(p) + 1)
			return p->start_done ? H1_E_HEADER_LINE_TOO_LONG
			                     : H1_E_REQUEST_LINE_TOO_LONG;
		/* RFC 9112 2.2 lets a recipient accept a bare LF; a proxy
		 * must not, or it reads lines differently from the dyno. */
		if (lf == p->line_start || buf[lf - 1] != '\r')
			return H1_E_BARE_LF;
		size_t start = p->line_start;
		size_t n = lf - 1 - start;
		p->line_start = lf + 1;
		if (!p->start_done) {
			if (n == 0) {
				/* RFC 9112 2.2: empty lines before a request
				 * line are ignored (a client's CRLF after a
				 * body); a response has no such allowance. */
				if (!request)
					return H1_E_STATUS_LINE;
				p->start_off = lf + 1;
				continue;
			}
			if (n > l->request_line)
				return H1_E_REQUEST_LINE_TOO_LONG;
			int r;
			if (request) {
				struct h1_request tmp;
				r = parse_request_line(buf + start, n, &tmp);
			} else {
				struct h1_response tmp;
				r = parse_status_line(buf + start, n, &tmp);
			}
			if (r < 0)
				return r;
			p->start_done = true;
			continue;
		}
		if (n == 0) {
			p->end = lf + 1;
			return 1;
		}
		if (n > l->header_line)
			return H1_E_HEADER_LINE_TOO_LONG;
		if (++p->nlines > p->headers_cap)
			return H1_E_TOO_MANY_HEADERS;
	}
	/* A partial line already longer than allowed (its CR may still be
	 * counted in it) fails now rather than at its end. */
	if (p->scan_pos - p->line_start > line_limit(p) + 1)
		return p->start_done ? H1_E_HEADER_LINE_TOO_LONG : H1_E_REQUEST_LINE_TOO_LONG;
	if (len >= l->head)
		return H1_E_HEAD_TOO_LARGE;
	return 0;
}

/* Runs the scanner; 1 when the head is complete. */
static int advance(struct h1_parser *p, const char *buf, size_t len, bool request)
{
	if (p->error)
		return p->error;
	if (p->end) {
		if (len < p->end)
			return H1_E_INVALID_ARGUMENT;
		return 1;
	}
	int r = scan(p, buf, len, request);
	if (r < 0)
		p->error = r;
	return r;
}

static int finish_request(struct h1_parser *p, const char *buf, struct h1_request *ret)
{
	struct h1_request r;
	struct fields f;
	memset(&r, 0, sizeof(r));
	memset(&f, 0, sizeof(f));

	size_t off = p->start_off;
	const char *nl = memchr(buf + off, '\n', p->end - off);
	int rv = parse_request_line(buf + off, (size_t)(nl - buf) - 1 - off, &r);
	if (rv < 0)
		return rv;
	rv = parse_fields(p, buf, (size_t)(nl - buf) + 1, &f);
	if (rv < 0)
		return rv;
	r.headers = p->headers;
	r.nheaders = f.n;

	/* RFC 9112 3.2: a 1.1 request has exactly one Host; a 1.0 one at
	 * most one. */
	if (f.host_count > 1)
		return H1_E_HOST_DUPLICATE;
	if (f.host_count == 0 && r.minor == 1)
		return H1_E_HOST_MISSING;
	if (f.host_count == 1) {
		if (!host_valid(f.host))
			return H1_E_HOST_INVALID;
		r.host = f.host;
		r.has_host = true;
	}
	if (r.target_form == H1_TARGET_ABSOLUTE) {
		if (!host_valid(r.authority))
			return H1_E_TARGET;
		/* RFC 9112 3.2.2 tells an origin to prefer the target's
		 * authority; a proxy that routed on Host would disagree
		 * with it, so the two must be the same. */
		if (r.has_host && !mem_eq_ci(r.host.p, r.host.len, r.authority.p, r.authority.len))
			return H1_E_HOST_MISMATCH;
		if (!r.has_host)
			r.host = r.authority;
	}

	/* Framing, RFC 9112 6.1 and 6.3. */
	if (f.has_te && f.has_cl)
		return H1_E_CL_AND_TE;
	r.content_length = -1;
	if (f.has_te) {
		if (r.minor == 0)
			return H1_E_TE_HTTP10;
		if (f.te_chunked != 1 || !f.te_last_chunked)
			return H1_E_TE_NOT_CHUNKED;
		if (f.te_unknown)
			return H1_E_TE_UNKNOWN;
		r.body = H1_BODY_CHUNKED;
		r.chunked = true;
	} else if (f.has_cl) {
		r.body = H1_BODY_LENGTH;
		r.content_length = f.cl;
	} else {
		r.body = H1_BODY_NONE;
	}

	r.keep_alive = r.minor == 1 ? !f.conn_close : (f.conn_keep_alive && !f.conn_close);
	/* 100-continue and Upgrade are ignored from 1.0 clients (RFC 9110
	 * 10.1.1, 7.8). */
	r.expect_continue = r.minor == 1 && f.expect_continue;
	r.upgrade = r.minor == 1 && f.conn_upgrade && f.has_upgrade;
	if (f.has_upgrade)
		r.upgrade_proto = f.upgrade;
	r.head_len = p->end;
	*ret = r;
	return (int)p->end;
}

int h1_parse_request(struct h1_parser *p, const char *buf, size_t len, struct h1_request *ret)
{
	if (p == NULL || ret == NULL || (buf == NULL && len > 0))
		return H1_E_INVALID_ARGUMENT;
	int r = advance(p, buf, len, true);
	if (r <= 0)
		return r;
	r = finish_request(p, buf, ret);
	if (r < 0)
		p->error = r;
	return r;
}

static int finish_response(struct h1_parser *p, const char *buf, unsigned flags,
                           struct h1_response *ret)
{
	struct h1_response r;
	struct fields f;
	memset(&r, 0, sizeof(r));
	memset(&f, 0, sizeof(f));

	const char *nl = memchr(buf, '\n', p->end);
	int rv = parse_status_line(buf, (size_t)(nl - buf) - 1, &r);
	if (rv < 0)
		return rv;
	rv = parse_fields(p, buf, (size_t)(nl - buf) + 1, &f);
	if (rv < 0)
		return rv;
	r.headers = p->headers;
	r.nheaders = f.n;

	if (f.has_te && f.has_cl)
		return H1_E_CL_AND_TE;
	if (f.has_te && r.minor == 0)
		return H1_E_TE_HTTP10;
	if (f.has_te && f.te_chunked > 1)
		return H1_E_TE_NOT_CHUNKED;
	r.content_length = f.has_cl ? f.cl : -1;
	r.keep_alive = r.minor == 1 ? !f.conn_close : (f.conn_keep_alive && !f.conn_close);
	r.upgrade = r.status == 101;

	/* RFC 9112 6.3, in its order. */
	if ((flags & H1_RESP_HEAD) || r.status < 200 || r.status == 204 || r.status == 304) {
		r.body = H1_BODY_NONE;
	} else if ((flags & H1_RESP_CONNECT) && r.status < 300) {
		r.body = H1_BODY_TUNNEL;
		r.keep_alive = false;
	} else if (f.has_te) {
		if (f.te_last_chunked) {
			r.body = H1_BODY_CHUNKED;
			r.chunked = true;
		} else {
			r.body = H1_BODY_CLOSE;
			r.keep_alive = false;
		}
	} else if (f.has_cl) {
		r.body = H1_BODY_LENGTH;
	} else {
		r.body = H1_BODY_CLOSE;
		r.keep_alive = false;
	}
	r.head_len = p->end;
	*ret = r;
	return (int)p->end;
}

int h1_parse_response(struct h1_parser *p, const char *buf, size_t len, unsigned flags,
                      struct h1_response *ret)
{
	if (p == NULL || ret == NULL || (buf == NULL && len > 0))
		return H1_E_INVALID_ARGUMENT;
	int r = advance(p, buf, len, false);
	if (r <= 0)
		return r;
	r = finish_response(p, buf, flags, ret);
	if (r < 0)
		p->error = r;
	return r;
}

/* --- chunked bodies, RFC 9112 7.1 --- */

void h1_chunked_init(struct h1_chunked *c, const struct h1_limits *limits)
{
	memset(c, 0, sizeof(*c));
	c->limits = limits ? *limits : h1_limits_default;
	c->state = H1_CHUNK_SIZE_START;
}

bool h1_chunked_done(const struct h1_chunked *c)
{
	return c->state == H1_CHUNK_DONE;
}

static inline bool is_qdtext(unsigned char ch)
{
	/* qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text */
	return ch == '\t' || ch == ' ' || ch == 0x21 || (ch >= 0x23 && ch <= 0x5b) ||
	       (ch >= 0x5d && ch <= 0x7e) || ch >= 0x80;
}

/* One byte of framing (not chunk data). Returns 0 or < 0. */
static int chunk_step(struct h1_chunked *c, unsigned char ch)
{
	const struct h1_limits *l = &c->limits;
	int d;

	/* Extensions are counted from their ";" up to the CR. */
	if (c->state >= H1_CHUNK_EXT_NAME_START && c->state <= H1_CHUNK_EXT_QUOTED_END &&
	    ch != '\r' && ++c->ext_len > l->chunk_ext)
		return H1_E_CHUNK_EXT_TOO_LONG;
	if (c->state >= H1_CHUNK_TRAILER_START && c->state <= H1_CHUNK_FINAL_LF) {
		if (++c->trailers_len > l->head)
			return H1_E_HEAD_TOO_LARGE;
		if (ch != '\r' && ch != '\n' && ++c->line_len > l->header_line)
			return H1_E_HEADER_LINE_TOO_LONG;
	}

	switch (c->state) {
	case H1_CHUNK_SIZE_START:
		d = hex_value(ch);
		if (d < 0)
			return ch == '\n' ? H1_E_BARE_LF : H1_E_CHUNK_SIZE;
		c->size = (uint64_t)d;
		c->digits = 1;
		c->state = H1_CHUNK_SIZE;
		return 0;
	case H1_CHUNK_SIZE:
		d = hex_value(ch);
		if (d >= 0) {
			/* 16 hex digits fill 64 bits: no overflow below. */
			if (++c->digits > 16)
				return H1_E_CHUNK_SIZE_OVERFLOW;
			c->size = (c->size << 4) | (uint64_t)d;
		} else if (ch == ';') {
			c->ext_len = 1;
			c->state = H1_CHUNK_EXT_NAME_START;
		} else if (ch == '\r') {
			c->state = H1_CHUNK_SIZE_LF;
		} else {
			return ch == '\n' ? H1_E_BARE_LF : H1_E_CHUNK_SIZE;
		}
		return 0;
	case H1_CHUNK_EXT_NAME_START:
		if (!is_tchar(ch))
			return H1_E_CHUNK_EXT;
		c->state = H1_CHUNK_EXT_NAME;
		return 0;
	case H1_CHUNK_EXT_NAME:
	case H1_CHUNK_EXT_TOKEN:
		if (is_tchar(ch))
			return 0;
		if (ch == '=' && c->state == H1_CHUNK_EXT_NAME)
			c->state = H1_CHUNK_EXT_VALUE_START;
		else if (ch == ';')
			c->state = H1_CHUNK_EXT_NAME_START;
		else if (ch == '\r')
			c->state = H1_CHUNK_SIZE_LF;
		else
			return ch == '\n' ? H1_E_BARE_LF : H1_E_CHUNK_EXT;
		return 0;
	case H1_CHUNK_EXT_VALUE_START:
		if (is_tchar(ch))
			c->state = H1_CHUNK_EXT_TOKEN;
		else if (ch == '"')
			c->state = H1_CHUNK_EXT_QUOTED;
		else
			return H1_E_CHUNK_EXT;
		return 0;
	case H1_CHUNK_EXT_QUOTED:
		if (ch == '"')
			c->state = H1_CHUNK_EXT_QUOTED_END;
		else if (ch == '\\')
			c->state = H1_CHUNK_EXT_QUOTED_PAIR;
		else if (!is_qdtext(ch))
			return bad_byte(ch, H1_E_CHUNK_EXT);
		return 0;
	case H1_CHUNK_EXT_QUOTED_PAIR:
		/* quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) */
		if (ch != '\t' && ch != ' ' && (ch < 0x21 || ch == 0x7f))
			return bad_byte(ch, H1_E_CHUNK_EXT);
		c->state = H1_CHUNK_EXT_QUOTED;
		return 0;
	case H1_CHUNK_EXT_QUOTED_END:
		if (ch == ';')
			c->state = H1_CHUNK_EXT_NAME_START;
		else if (ch == '\r')
			c->state = H1_CHUNK_SIZE_LF;
		else
			return ch == '\n' ? H1_E_BARE_LF : H1_E_CHUNK_EXT;
		return 0;
	case H1_CHUNK_SIZE_LF:
		if (ch != '\n')
			return H1_E_BARE_CR;
		c->ext_len = 0;
		if (c->size == 0) {
			c->line_len = 0;
			c->state = H1_CHUNK_TRAILER_START;
		} else {
			c->remaining = c->size;
			c->state = H1_CHUNK_DATA;
		}
		return 0;
	case H1_CHUNK_DATA_CR:
		if (ch != '\r')
			return H1_E_CHUNK_CRLF;
		c->state = H1_CHUNK_DATA_LF;
		return 0;
	case H1_CHUNK_DATA_LF:
		if (ch != '\n')
			return H1_E_CHUNK_CRLF;
		c->state = H1_CHUNK_SIZE_START;
		return 0;
	case H1_CHUNK_TRAILER_START:
		/* Trailer fields follow the head's rules (RFC 9112 7.1.2). */
		if (ch == '\r') {
			c->state = H1_CHUNK_FINAL_LF;
		} else if (is_tchar(ch)) {
			if (++c->ntrailers > l->headers)
				return H1_E_TOO_MANY_HEADERS;
			c->name_len = 1;
			c->state = H1_CHUNK_TRAILER_NAME;
		} else if (ch == ' ' || ch == '\t') {
			return H1_E_OBS_FOLD;
		} else if (ch == '\n') {
			return H1_E_BARE_LF;
		} else {
			return bad_byte(ch, H1_E_HEADER_NAME);
		}
		return 0;
	case H1_CHUNK_TRAILER_NAME:
		if (is_tchar(ch)) {
			if (++c->name_len > l->header_name)
				return H1_E_NAME_TOO_LONG;
		} else if (ch == ':') {
			c->state = H1_CHUNK_TRAILER_VALUE;
		} else if (ch == ' ' || ch == '\t') {
			c->state = H1_CHUNK_TRAILER_NAME_WS;
		} else if (ch == '\r' || ch == '\n') {
			return H1_E_NO_COLON;
		} else {
			return bad_byte(ch, H1_E_HEADER_NAME);
		}
		return 0;
	case H1_CHUNK_TRAILER_NAME_WS:
		if (ch == ':')
			return H1_E_SPACE_BEFORE_COLON;
		if (ch == '\r' || ch == '\n')
			return H1_E_NO_COLON;
		if (ch != ' ' && ch != '\t')
			return bad_byte(ch, H1_E_HEADER_NAME);
		return 0;
	case H1_CHUNK_TRAILER_VALUE:
		if (ch == '\r')
			c->state = H1_CHUNK_TRAILER_LF;
		else if (ch == '\n')
			return H1_E_BARE_LF;
		else if (!(char_class[ch] & C_VALUE))
			return bad_byte(ch, H1_E_HEADER_VALUE);
		return 0;
	case H1_CHUNK_TRAILER_LF:
		if (ch != '\n')
			return H1_E_BARE_CR;
		c->line_len = 0;
		c->state = H1_CHUNK_TRAILER_START;
		return 0;
	case H1_CHUNK_FINAL_LF:
		if (ch != '\n')
			return H1_E_BARE_CR;
		c->state = H1_CHUNK_DONE;
		return 0;
	case H1_CHUNK_DATA:
	case H1_CHUNK_DONE:
	case H1_CHUNK_ERROR:
		break;
	}
	return H1_E_INVALID_ARGUMENT;
}

int h1_chunked_decode(struct h1_chunked *c, const char *buf, size_t len, struct h1_slice *ret_data)
{
	if (c == NULL || ret_data == NULL || (buf == NULL && len > 0))
		return H1_E_INVALID_ARGUMENT;
	*ret_data = slice(NULL, 0);
	/* The return value is an int: take at most INT32_MAX bytes a call;
	 * the caller passes the rest again. */
	if (len > (size_t)INT32_MAX)
		len = (size_t)INT32_MAX;
	if (c->error)
		return c->error;
	size_t i = 0;
	while (i < len && c->state != H1_CHUNK_DONE) {
		if (c->state == H1_CHUNK_DATA) {
			size_t n = len - i;
			if ((uint64_t)n > c->remaining)
				n = (size_t)c->remaining;
			*ret_data = slice(buf + i, n);
			i += n;
			c->remaining -= n;
			c->total += n;
			if (c->remaining == 0)
				c->state = H1_CHUNK_DATA_CR;
			/* One span per call, so the caller can forward it. */
			break;
		}
		int r = chunk_step(c, (unsigned char)buf[i]);
		if (r < 0) {
			c->error = r;
			c->state = H1_CHUNK_ERROR;
			return r;
		}
		i++;
	}
	return (int)i;
}
