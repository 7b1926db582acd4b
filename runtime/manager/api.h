/* The Platform API server: HTTP/1.1 + JSON on the Unix socket api_socket
 * (docs/design.md, "Platform API"; docs/api.md lists every endpoint).
 *
 * Connections are non-blocking, each with its own input and output
 * buffers and parser state, so one slow client never holds up another.
 * Requests are parsed with common/http1 (keep-alive, pipelining answered in
 * order, Content-Length and chunked bodies, Expect: 100-continue). A slug
 * upload streams to an unnamed temporary file under <state_dir>/slugs as
 * it arrives (at most slugs.max_compressed bytes); JSON bodies are held in
 * memory up to API_JSON_MAX bytes. Checking and storing an upload and
 * unpacking a slug for a release run off the loop (the manager's jobs):
 * that connection waits, its reading paused, and is answered when the job
 * is done; every other connection is served meanwhile. */
#pragma once

#include "common/config.h"
#include "common/error.h"
#include "common/loop.h"
#include "runtime/manager/manager.h"

#define API_JSON_MAX       (1024 * 1024)
#define API_IDLE_USEC      (60ULL * 1000 * 1000) /* an idle connection is closed */
#define API_MAX_CONNS      1024
#define API_OUT_HIGH_WATER (1024 * 1024) /* stop reading while this much waits */

struct api;

/* Listens on cfg->api_socket: mode 0660, group cfg->api_group (which must
 * exist: the error names it). A stale socket file is replaced; a socket
 * another process still accepts on is refused. The parent directory is
 * created when missing. Returns 0 and *ret (api_free), or < 0. */
int api_new(struct loop *loop, struct mgr *m, const struct config *cfg, struct api **ret,
            struct dy_error **err);

struct lgi;
struct lstreams;

/* GET /apps/{app}/log-stream reads logs and answers through streams
 * (both borrowed; runtime/manager/log-stream.h). Without it: 501. */
void api_set_logs(struct api *a, struct lgi *logs, struct lstreams *streams);

struct pg;

/* The add-on endpoints answer through pg (borrowed; addon-pg.h). Without
 * it: 501. */
void api_set_pg(struct api *a, struct pg *pg);

/* Closes every connection and the listening socket, and removes the
 * socket file. Accepts NULL. */
void api_free(struct api *a);
