/* A strict, incremental HTTP/1.1 codec (RFC 9110, RFC 9112) for the router
 * and the Platform API: request and response heads parsed in place, and a
 * chunked body decoder. Nothing here allocates or copies: every slice points
 * into the caller's buffer. docs/http1.md describes the contract, every error
 * code and what the router answers for it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A run of bytes inside the caller's buffer; not NUL-terminated. */
struct h1_slice {
	const char *p;
	size_t len;
};

struct h1_header {
	struct h1_slice name;  /* a token, as received (any case) */
	struct h1_slice value; /* OWS trimmed on both sides; may be empty */
};

/* Sizes exclude the CRLF ending a line. The defaults are docs/design.md's. */
struct h1_limits {
	size_t request_line; /* request or status line: 8192 (414 when over) */
	size_t header_line;  /* one field line, also for trailers: 8192 (431) */
	size_t header_name;  /* one field name: 1000 (431) */
	size_t headers;      /* field lines in a head or trailer section: 1000 (431) */
	size_t head;         /* whole head with its empty line, or whole trailer section: 64 KiB */
	size_t chunk_ext;    /* chunk extensions on one chunk-size line: 1024 */
};

extern const struct h1_limits h1_limits_default;

/* Every rejection has its own code; all are < 0 so that they can be
 * returned as they are. h1_strerror() names what was wrong and
 * h1_error_status() gives the status the router answers with. */
enum h1_error {
	H1_OK = 0,
	H1_E_BARE_LF = -1,                /* LF not preceded by CR (RFC 9112 2.2) */
	H1_E_BARE_CR = -2,                /* CR not followed by LF */
	H1_E_NUL = -3,                    /* NUL byte in the head or trailers */
	H1_E_REQUEST_LINE = -4,           /* request line is not method SP target SP version */
	H1_E_METHOD = -5,                 /* method is not a token */
	H1_E_TARGET = -6,                 /* invalid request-target */
	H1_E_VERSION = -7,                /* malformed HTTP-version */
	H1_E_VERSION_UNSUPPORTED = -8,    /* well-formed but not HTTP/1.0 or 1.1: 505 */
	H1_E_HTTP09 = -9,                 /* an HTTP/0.9 request line (no version): close */
	H1_E_HTTP2_PREFACE = -10,         /* "PRI * HTTP/2.0": 505 */
	H1_E_CONNECT = -11,               /* CONNECT is not served */
	H1_E_STATUS_LINE = -12,           /* malformed status line */
	H1_E_STATUS = -13,                /* status code not in 100..599 */
	H1_E_HEADER_NAME = -14,           /* field name empty or not a token */
	H1_E_SPACE_BEFORE_COLON = -15,    /* whitespace between field name and colon */
	H1_E_NO_COLON = -16,              /* field line without a colon */
	H1_E_OBS_FOLD = -17,              /* line starting with SP or HTAB (obs-fold) */
	H1_E_HEADER_VALUE = -18,          /* control character in a field value */
	H1_E_HOST_MISSING = -19,          /* HTTP/1.1 request without Host */
	H1_E_HOST_DUPLICATE = -20,        /* more than one Host */
	H1_E_HOST_INVALID = -21,          /* Host is not uri-host [":" port] */
	H1_E_HOST_MISMATCH = -22,         /* absolute-form authority differs from Host */
	H1_E_CL_INVALID = -23,            /* Content-Length not 1*DIGIT, or too large */
	H1_E_CL_MISMATCH = -24,           /* Content-Length values differ */
	H1_E_CL_AND_TE = -25,             /* both Content-Length and Transfer-Encoding */
	H1_E_TE_INVALID = -26,            /* Transfer-Encoding list malformed */
	H1_E_TE_UNKNOWN = -27,            /* a transfer coding we do not know: 501 */
	H1_E_TE_NOT_CHUNKED = -28,        /* chunked absent, not last, or twice (request) */
	H1_E_TE_HTTP10 = -29,             /* Transfer-Encoding in an HTTP/1.0 message */
	H1_E_CONNECTION = -30,            /* Connection list holds a non-token */
	H1_E_REQUEST_LINE_TOO_LONG = -31, /* 414 */
	H1_E_HEADER_LINE_TOO_LONG = -32,  /* 431 */
	H1_E_NAME_TOO_LONG = -33,         /* 431 */
	H1_E_TOO_MANY_HEADERS = -34,      /* 431 */
	H1_E_HEAD_TOO_LARGE = -35,        /* 431 */
	H1_E_CHUNK_SIZE = -36,            /* chunk-size line malformed */
	H1_E_CHUNK_SIZE_OVERFLOW = -37,   /* more than 16 hex digits */
	H1_E_CHUNK_EXT = -38,             /* chunk extension malformed */
	H1_E_CHUNK_EXT_TOO_LONG = -39,
	H1_E_CHUNK_CRLF = -40,       /* chunk data not followed by CRLF */
	H1_E_INVALID_ARGUMENT = -41, /* NULL pointer or a call after completion */
};
#define H1_E_MIN H1_E_INVALID_ARGUMENT

/* A static message naming what was wrong for an enum h1_error value (any
 * int is accepted: unknown values give "unknown HTTP/1 error"). Never NULL. */
const char *h1_strerror(int err);

/* The status the router answers a request rejected with err: 400, 414,
 * 431, 501 or 505; 0 means close without answering (HTTP/0.9). For a
 * response from a dyno every error means 502, which the caller decides. */
int h1_error_status(int err);

enum h1_method {
	H1_METHOD_OTHER = 0,
	H1_METHOD_GET,
	H1_METHOD_HEAD,
	H1_METHOD_POST,
	H1_METHOD_PUT,
	H1_METHOD_DELETE,
	H1_METHOD_CONNECT,
	H1_METHOD_OPTIONS,
	H1_METHOD_TRACE,
	H1_METHOD_PATCH,
};

/* "GET", ... or "OTHER". Never NULL. */
const char *h1_method_str(enum h1_method m);

enum h1_target_form {
	H1_TARGET_ORIGIN = 0, /* "/path?query" */
	H1_TARGET_ABSOLUTE,   /* "http://host/path" (http and https only) */
	H1_TARGET_ASTERISK,   /* "*" (OPTIONS only) */
};

/* How the message body is delimited (RFC 9112 6.3). */
enum h1_body {
	H1_BODY_NONE = 0, /* no body */
	H1_BODY_LENGTH,   /* content_length bytes (possibly 0) */
	H1_BODY_CHUNKED,  /* chunked: use struct h1_chunked */
	H1_BODY_CLOSE,    /* response only: until the connection closes */
	H1_BODY_TUNNEL,   /* response only: 2xx to CONNECT, bytes both ways */
};

const char *h1_body_str(enum h1_body b);

/* The head parser's state. Initialise with h1_parser_init() before each
 * message. It holds offsets only, never pointers into the buffer, so the
 * caller may move or grow its buffer between calls. */
struct h1_parser {
	struct h1_limits limits;
	struct h1_header *headers; /* caller's array, headers_cap entries */
	size_t headers_cap;
	/* private */
	size_t scan_pos;   /* bytes already scanned for line ends */
	size_t line_start; /* offset of the current line */
	size_t start_off;  /* offset of the start line (after empty lines) */
	size_t nlines;     /* field lines seen */
	size_t end;        /* head length once complete, else 0 */
	bool start_done;
	int error; /* latched error, or 0 */
};

/* Prepares p for one message head. limits NULL means h1_limits_default.
 * headers is the caller's array that h1_parse_*() fills; a head with more
 * field lines than min(headers_cap, limits->headers) is refused with
 * H1_E_TOO_MANY_HEADERS. The array must outlive the parsed result. */
void h1_parser_init(struct h1_parser *p, const struct h1_limits *limits, struct h1_header *headers,
                    size_t headers_cap);

struct h1_request {
	struct h1_slice method;
	enum h1_method method_id;
	struct h1_slice target;
	enum h1_target_form target_form;
	struct h1_slice authority; /* absolute-form only: the target's authority */
	int minor;                 /* 0 or 1 */
	struct h1_header *headers; /* == the parser's array */
	size_t nheaders;
	struct h1_slice host;   /* the Host value, else the absolute-form authority */
	bool has_host;          /* a Host header (possibly empty) was present */
	enum h1_body body;      /* NONE, LENGTH or CHUNKED */
	int64_t content_length; /* -1 when there is no Content-Length */
	bool chunked;
	bool keep_alive;               /* 1.1 unless "close"; 1.0 only with "keep-alive" */
	bool expect_continue;          /* HTTP/1.1 and Expect: 100-continue */
	bool upgrade;                  /* HTTP/1.1, Connection: upgrade and an Upgrade header */
	struct h1_slice upgrade_proto; /* the Upgrade value */
	size_t head_len;               /* bytes of the head, the return value */
};

/* Parses a request head from buf[0..len). Call again with the same bytes
 * and more after them (the buffer may have moved) while it returns 0. Each
 * byte is scanned once across calls for line ends, and the head is
 * validated in full once, when its empty line has arrived.
 *
 * Returns:
 *   < 0  an enum h1_error: the request is rejected; the same error is
 *        returned again on later calls. Limits and line endings are checked
 *        as bytes arrive, so an over-long line fails before its end.
 *   0    the head is incomplete: read more bytes and call again.
 *   > 0  the head is complete and valid; the value is its length in bytes
 *        (the body, if any, starts there). *ret is filled, its slices point
 *        into buf and its headers into the parser's array.
 * *ret is only written on > 0. Empty lines (CRLF) before the request line
 * are skipped (RFC 9112 2.2) and counted in the returned length. */
int h1_parse_request(struct h1_parser *p, const char *buf, size_t len, struct h1_request *ret);

struct h1_response {
	int minor;  /* 0 or 1 */
	int status; /* 100..599 */
	struct h1_slice reason;
	struct h1_header *headers;
	size_t nheaders;
	enum h1_body body;
	int64_t content_length; /* -1 when there is no Content-Length */
	bool chunked;
	bool keep_alive; /* false as well when the body runs until close */
	bool upgrade;    /* 101 Switching Protocols */
	size_t head_len;
};

/* Flags for h1_parse_response(): what the request was, as RFC 9112 6.3
 * needs it to find the response body. */
#define H1_RESP_HEAD    0x1u /* the request was HEAD: no body */
#define H1_RESP_CONNECT 0x2u /* the request was CONNECT: 2xx is a tunnel */

/* Parses a response head; same contract as h1_parse_request(). No empty
 * lines are allowed before the status line. Framing (RFC 9112 6.3): 1xx,
 * 204, 304 and responses to HEAD have no body; 2xx to CONNECT is a tunnel;
 * Transfer-Encoding ending in chunked is chunked, otherwise the body runs
 * until close; then Content-Length; else until close. Content-Length with
 * Transfer-Encoding is refused (H1_E_CL_AND_TE) rather than resolved,
 * because a proxy must not pass on that ambiguity. */
int h1_parse_response(struct h1_parser *p, const char *buf, size_t len, unsigned flags,
                      struct h1_response *ret);

/* Returns the first header at index >= *pos (0 when pos is NULL) whose
 * name equals name case-insensitively, and stores its index + 1 in *pos so
 * that the next call finds the next one. NULL when there is none. */
const struct h1_header *h1_header_find(const struct h1_header *headers, size_t n, const char *name,
                                       size_t *pos);

/* Iterates the elements of a comma-separated list value (RFC 9110 5.6.1):
 * *pos starts at 0. Returns true and sets *ret_elem to the next non-empty
 * element, OWS trimmed; false at the end. Empty elements are skipped. */
bool h1_list_next(struct h1_slice value, size_t *pos, struct h1_slice *ret_elem);

/* True when any Connection header of the list holds token (case-insensitive). */
bool h1_connection_has(const struct h1_header *headers, size_t n, const char *token);

/* True when the n bytes at a and at b are equal, ASCII case-insensitively. */
bool h1_mem_eq_ci(const char *a, const char *b, size_t n);

/* True when s equals the NUL-terminated lit, ASCII case-insensitively.
 * Inline: the length of a literal is known at compile time, and most
 * comparisons (a header name against the few the router looks for) end at
 * the lengths, without a call. */
static inline bool h1_slice_eq_ci(struct h1_slice s, const char *lit)
{
	size_t n = strlen(lit);
	return s.len == n && h1_mem_eq_ci(s.p, lit, n);
}

enum h1_chunk_state {
	H1_CHUNK_SIZE_START = 0,
	H1_CHUNK_SIZE,
	H1_CHUNK_EXT_NAME_START,
	H1_CHUNK_EXT_NAME,
	H1_CHUNK_EXT_VALUE_START,
	H1_CHUNK_EXT_TOKEN,
	H1_CHUNK_EXT_QUOTED,
	H1_CHUNK_EXT_QUOTED_PAIR,
	H1_CHUNK_EXT_QUOTED_END,
	H1_CHUNK_SIZE_LF,
	H1_CHUNK_DATA,
	H1_CHUNK_DATA_CR,
	H1_CHUNK_DATA_LF,
	H1_CHUNK_TRAILER_START,
	H1_CHUNK_TRAILER_NAME,
	H1_CHUNK_TRAILER_NAME_WS,
	H1_CHUNK_TRAILER_VALUE,
	H1_CHUNK_TRAILER_LF,
	H1_CHUNK_FINAL_LF,
	H1_CHUNK_DONE,
	H1_CHUNK_ERROR,
};

const char *h1_chunk_state_str(enum h1_chunk_state s);

/* The chunked decoder's state (RFC 9112 7.1); fields are read-only. */
struct h1_chunked {
	enum h1_chunk_state state;
	struct h1_limits limits;
	uint64_t size;      /* size of the current chunk */
	uint64_t remaining; /* data bytes left in the current chunk */
	uint64_t total;     /* data bytes decoded so far */
	unsigned digits;
	size_t ext_len;
	size_t line_len;     /* current trailer line */
	size_t name_len;     /* current trailer name */
	size_t trailers_len; /* trailer section so far */
	size_t ntrailers;
	int error;
};

/* Prepares c for one chunked body; limits NULL means h1_limits_default.
 * Chunk extensions are bounded by limits->chunk_ext; trailers follow the
 * head's header_line, header_name, headers and head limits. */
void h1_chunked_init(struct h1_chunked *c, const struct h1_limits *limits);

/* Decodes chunked framing from buf[0..len), which continues where the
 * previous call's consumed bytes ended; splits may fall anywhere.
 *
 * Returns:
 *   < 0  an enum h1_error; latched, returned again on later calls.
 *   0    nothing consumed: len is 0 or the body is already complete.
 *   > 0  bytes of buf consumed. The call stops right after one span of
 *        chunk data: *ret_data is that span inside buf (len 0 and p NULL
 *        when the consumed bytes were framing only). Bytes not consumed
 *        must be passed again. When h1_chunked_done(c), the body including
 *        its trailer section ended exactly at the consumed length.
 * Whitespace in chunk-size lines (BWS, which senders MUST NOT generate) is
 * refused, since parsers disagree on it. */
int h1_chunked_decode(struct h1_chunked *c, const char *buf, size_t len, struct h1_slice *ret_data);

/* True once the last chunk and the trailer section have been decoded. */
bool h1_chunked_done(const struct h1_chunked *c);
