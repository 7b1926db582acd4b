#include "common/http-response.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>

#include "common/macro.h"

static const struct {
	int status;
	const char *reason;
} reasons[] = {
    {100, "Continue"},
    {101, "Switching Protocols"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {400, "Bad Request"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {422, "Unprocessable Content"},
    {431, "Request Header Fields Too Large"},
    {499, "Client Closed Request"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

const char *http_reason(int status)
{
	for (size_t i = 0; i < ELEMENTSOF(reasons); i++)
		if (reasons[i].status == status)
			return reasons[i].reason;
	return status >= 500 ? "Internal Server Error" : "Error";
}

ssize_t http_head_format(char *buf, size_t cap, const struct http_head *h)
{
	bool rid = h->request_id != NULL && h->request_id[0] != '\0';
	int n = snprintf(
	    buf, cap, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s%s%s\r\n",
	    h->status, http_reason(h->status), h->type, h->length,
	    h->close ? "Connection: close\r\n" : "", rid ? "X-Request-Id: " : "",
	    rid ? h->request_id : "", rid ? "\r\n" : "");
	if (n < 0 || (size_t)n >= cap)
		return -ENOBUFS;
	return n;
}

ssize_t http_response_append(struct buf *out, const struct http_head *h, const void *body,
                             bool head_only)
{
	char head[512];
	ssize_t n = http_head_format(head, sizeof(head), h);
	if (n < 0)
		return n;
	size_t before = buf_len(out);
	if (buf_append(out, head, (size_t)n, SIZE_MAX) < 0)
		return -ENOMEM;
	if (head_only || h->length == 0)
		return n;
	if (buf_append(out, body, h->length, SIZE_MAX) < 0) {
		out->end = out->start + before; /* the head goes too */
		return -ENOMEM;
	}
	return n + (ssize_t)h->length;
}
