/* HTTP/1.1 responses that a server of ours writes itself, shared by the
 * router (its error answers, 100 Continue, the admin listener) and the
 * Platform API server: the reason phrases, the interim 100 Continue, and
 * a simple head (status, Content-Type, Content-Length, close) with its
 * body. Heads relayed from a dyno are rebuilt by router/headers.c, not
 * here. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/buf.h"

/* The interim response a server sends before reading a body the client
 * holds back with Expect: 100-continue (RFC 9110 10.1.1, 15.2.1). */
#define HTTP_100_CONTINUE "HTTP/1.1 100 Continue\r\n\r\n"

/* The reason phrase of status (RFC 9110 15; 499 is nginx's "Client
 * Closed Request", which Heroku's router logs as well). An unknown status
 * gets "Internal Server Error" from 500 up, else "Error". Never NULL,
 * static. */
const char *http_reason(int status);

/* What a simple response head says. */
struct http_head {
	int status;
	const char *type;       /* Content-Type */
	size_t length;          /* Content-Length: the body's bytes */
	bool close;             /* Connection: close */
	const char *request_id; /* X-Request-Id; NULL or "" for none */
};

/* Formats the head of h, with the empty line ending it, into buf[0..cap):
 *   HTTP/1.1 <status> <reason>\r\nContent-Type: ..\r\nContent-Length: ..\r\n
 *   [Connection: close\r\n][X-Request-Id: ..\r\n]\r\n
 * Returns its length (not NUL-terminated), or -ENOBUFS when it does not
 * fit. */
ssize_t http_head_format(char *buf, size_t cap, const struct http_head *h);

/* Appends the head of h and, unless head_only (the answer to HEAD, RFC
 * 9110 9.3.2), the h->length bytes of body to out (growing it without a
 * cap). Returns the bytes appended, or -ENOMEM (nothing appended that
 * counts: out is cut back). */
ssize_t http_response_append(struct buf *out, const struct http_head *h, const void *body,
                             bool head_only);
