/* Router log lines (docs/design.md, "Logs"): one logfmt line per request, to
 * stdout and to dynod's log intake (a Unix datagram socket). Sending never
 * blocks: while the intake is away, or stdout is full (a pipe nobody
 * reads), lines are dropped and counted; a line is never cut. Lines are
 * batched and flushed once per loop iteration (loop_defer), with one write
 * to stdout and one sendmmsg to the intake. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/error.h"
#include "common/heroku-codes.h"

struct loop;

/* What one request's line says. Strings are NUL-terminated; NULL prints
 * as empty. */
struct rlog_entry {
	enum hk_code code; /* HK_H12, or HK_NONE */
	const char *desc;  /* NULL: the code's own ("Request timeout") */
	const char *method;
	const char *path;
	const char *host;
	const char *request_id;
	const char *fwd;
	const char *dyno;
	uint64_t connect_ms;
	uint64_t service_ms;
	int status;
	uint64_t bytes;
};

/* Formats the message of e into buf[0..cap) (NUL-terminated, cut to fit):
 *   at=info method=GET path="/" host=h request_id=r fwd="ip" dyno=web.1
 *   connect=0ms service=3ms status=200 bytes=123 protocol=http
 * with "at=error code=H12 desc="..." " in front of method for errors (a
 * code, or a desc alone for a router answer without one: 404, 408...). Quotes and backslashes
 * inside quoted values are escaped. Returns the length. */
size_t rlog_format_entry(char *buf, size_t cap, const struct rlog_entry *e);

/* Formats a whole line: "<RFC 3339 UTC ts> router[router]: <msg>". Returns
 * the length (< cap). */
size_t rlog_format_line(char *buf, size_t cap, const struct timespec *ts, const char *msg);

struct rlog;

/* Creates the sink: lines go to out_fd (-1: nowhere; borrowed, never made
 * to block: a pipe or terminal is reopened with O_NONBLOCK, a socket sent
 * to with MSG_DONTWAIT) and to the datagram socket at intake_path (NULL:
 * nowhere). Returns 0 and *ret (free with
 * rlog_free()), or < 0. */
int rlog_new(struct loop *loop, int out_fd, const char *intake_path, struct rlog **ret,
             struct dy_error **err);

/* Queues one line for app (NULL: none) with message msg, stamped now. */
void rlog_emit(struct rlog *l, const char *app, const char *msg);

/* Writes what is queued. Called from the deferred flush; also at exit. */
void rlog_flush(struct rlog *l);

/* Lines given to the intake, and lines dropped because it was away. */
uint64_t rlog_sent(const struct rlog *l);
uint64_t rlog_dropped(const struct rlog *l);

/* Lines dropped from stdout because writing them would have blocked. */
uint64_t rlog_out_dropped(const struct rlog *l);

/* Flushes and frees. Accepts NULL. Call it once the loop is freed (or
 * outside a round with no line queued): the flush is deferred on it. */
void rlog_free(struct rlog *l);
