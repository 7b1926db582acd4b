/* GET /apps/{app}/log-stream (docs/api.md, "Logs"): the answer, taken over
 * from the Platform API's connection (api.c hands its socket here).
 *
 * A chunked text/plain body of lines (each ending in "\n"): the last
 * `lines` lines of the app's log that match `dyno` and `source`; without
 * `tail` the body ends there, with it the response stays open and every
 * new matching line follows as it is filed (log-intake.h). The connection
 * closes after the answer (Connection: close).
 *
 * A reader never slows the intake: lines wait in the stream's own buffer,
 * at most LSTREAM_BUF_MAX bytes once the backlog is out; past that, new
 * lines are dropped for this reader alone and counted, and once half the
 * buffer has drained it gets "dyno[logs]: Error L11 (Tail buffer
 * overflow): N lines dropped for this reader" in their place. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "common/error.h"
#include "common/loop.h"
#include "runtime/manager/log-intake.h"

#define LSTREAM_LINES_DEFAULT 100
#define LSTREAM_LINES_MAX     1500
#define LSTREAM_BUF_MAX       (1024 * 1024)

struct lstream_params {
	uint32_t lines;
	bool tail;
	char dyno[48];  /* "" for any */
	char source[8]; /* "", "app", "dyno" or "router" */
};

/* Parses a query string ("lines=50&tail=1&dyno=web&source=app", no '?';
 * NULL or "" for the defaults). DY_E_INVALID names the parameter that is
 * wrong; unknown parameters are ignored. */
int lstream_parse_query(const char *query, struct lstream_params *ret, struct dy_error **err);

struct lstreams;

/* The readers of one intake. Returns 0 and *ret (lstreams_free), or < 0. */
int lstreams_new(struct loop *loop, struct lgi *logs, struct lstreams **ret, struct dy_error **err);

/* Answers a log-stream request of app on the socket fd. Returns 0 when fd
 * is taken (owned from here), or < 0 with fd untouched: the app is gone
 * (DY_E_NOT_FOUND) or its log could not be read; the caller answers. */
int lstream_start(struct lstreams *s, int fd, const char *app, const struct lstream_params *p,
                  bool head_only, struct dy_error **err);

/* Readers open now. */
size_t lstreams_count(const struct lstreams *s);

/* Closes every reader. Accepts NULL. */
void lstreams_free(struct lstreams *s);
