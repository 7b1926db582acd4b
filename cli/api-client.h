/* The CLI's client of the Platform API: HTTP/1.1 over dynod's Unix socket
 * ($DYNO_API, else api_socket of the configuration, else its default),
 * responses read with common/http1's parser. One request per connection. */
#pragma once

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

struct api_response {
	int status;
	char *body; /* NUL-terminated, owned */
	size_t body_len;
};

void api_response_clear(struct api_response *r);

/* The socket path: $DYNO_API, else the configuration's api_socket. Never
 * NULL; the string is static or from the environment. */
const char *api_client_socket(void);

/* A stream socket connected to dynod's API socket: the fd, or < 0. */
int api_client_connect(struct dy_error **err);

/* Sends method path with body (len bytes, may be NULL) as JSON and reads
 * the whole response into *ret. Returns 0 (whatever the status) or < 0
 * when dynod cannot be reached or answers something that is not HTTP. */
int api_client_request(const char *method, const char *path, const void *body, size_t len,
                       struct api_response *ret, struct dy_error **err);

/* Told the bytes sent so far of total, after each chunk. */
typedef void (*api_progress_fn)(uint64_t sent, uint64_t total, void *ctx);

/* As api_client_request with the body read from fd (len bytes), sent as
 * application/octet-stream; progress (may be NULL) told as it goes. */
int api_client_request_fd(const char *method, const char *path, int fd, uint64_t len,
                          api_progress_fn progress, void *ctx,
                          struct api_response *ret, struct dy_error **err);

/* Called with each piece of a streamed body, as it arrives. Returns 0 to
 * go on, < 0 to stop. */
typedef int (*api_stream_fn)(void *ctx, const char *p, size_t n);

/* GET path and streams the body of a 2xx answer to fn as it arrives,
 * until dynod ends it (a chunked body's last chunk, or the close; a body
 * of a Content-Length: that many bytes, fewer is an error). Any
 * other status: the whole body goes to *ret (status and body), fn is not
 * called. Returns 0, or < 0 when dynod cannot be reached, answers
 * something that is not HTTP, or the body is cut short. */
int api_client_stream(const char *path, api_stream_fn fn, void *ctx, struct api_response *ret,
                      struct dy_error **err);

/* Called when a stream has been quiet for idle_ms. Returns 0 to go on
 * waiting, < 0 to stop. */
typedef int (*api_idle_fn)(void *ctx);

/* As api_client_stream, calling idle(ctx) (when not NULL) each time the
 * body has been quiet for idle_ms, so a reader can look at other things
 * (and give up) while a tail stays silent. fn may also stop the stream. */
int api_client_stream_idle(const char *path, api_stream_fn fn, api_idle_fn idle, int idle_ms,
                           void *ctx, struct api_response *ret, struct dy_error **err);

/* The CLI's usual call: sends body (may be NULL; not stolen) and parses the
 * answer. On a 2xx status returns 0 and the JSON in *ret (owned; NULL
 * allowed). Otherwise prints `dyno: error: <message of the API>` and
 * returns CLI_ERROR. */
int cli_api(const char *method, const char *path, json_t *body, json_t **ret);

/* As cli_api for a response already read. */
int cli_api_result(struct api_response *r, json_t **ret);

/* The app of an app command: opt (-a APP), else $DYNO_APP; NULL when
 * neither is set. */
const char *cli_app(const char *opt);

/* Appends "/apps/<app>" + suffix to a new string, escaping the name for a
 * URL path. Exits on ENOMEM. */
char *cli_app_path(const char *app, const char *suffix);

/* Prints j as indented JSON on stdout, keeping the API's order. */
void cli_print_json(const json_t *j);
