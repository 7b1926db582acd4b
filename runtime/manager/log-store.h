/* An app's log on disk (docs/design.md, "Logs"): its last lines, kept
 * across redeploys and dynod restarts, bounded.
 *
 * Two segments in the app's directory, each of newline-ended lines in
 * docs/design.md's format, mode 0600: `log` (appended to) and `log.1` (the
 * one before). When `log` holds max_lines lines it is renamed over `log.1`
 * and a new `log` starts, so the last max_lines lines are always on disk
 * and at most about 2 * max_lines are. Appends are buffered and written
 * with one write per flush (the intake flushes once per loop round), never
 * fsync'd: a dynod crash loses nothing the kernel took, a host crash may
 * lose the last lines. The files are opened through the directory's fd, so
 * once the app is destroyed (its directory renamed to a grave) writes go
 * to the grave, which is removed with it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define LSTORE_MSG_MAX  10000 /* a message longer than this is split */
#define LSTORE_LINE_MAX (LSTORE_MSG_MAX + 256)

/* The parts of a line "TS SOURCE[PROC]: MSG" (slices of the line). */
struct lstore_parts {
	const char *source, *proc, *msg;
	size_t source_len, proc_len, msg_len;
	size_t prefix_len; /* up to the message */
};

/* Splits line[0..len) into its parts. Returns false when it is not in the
 * format (no timestamp word, no "SOURCE[PROC]: "). */
bool lstore_parse(const char *line, size_t len, struct lstore_parts *ret);

/* Which lines a reader wants: dyno "web" matches every web.N, "web.1"
 * only web.1 (router lines are PROC "router"); source "app", "dyno" or
 * "router". NULL: any. */
struct lstore_filter {
	const char *dyno;
	const char *source;
};

bool lstore_match(const struct lstore_filter *f, const char *line, size_t len);

/* Called with each line as stored (without its newline). */
typedef void (*lstore_line_fn)(void *ctx, const char *line, size_t len);

struct lstore;

/* Opens (creating them when missing) the segments in dir, keeping
 * max_lines lines (>= 1). A last line cut short (a crash mid-write) is
 * dropped. Returns 0 and *ret (lstore_free), or < 0. */
int lstore_open(const char *dir, uint32_t max_lines, struct lstore **ret, struct dy_error **err);

/* Appends line[0..len) (no newline): a newline inside it, or a message
 * over LSTORE_MSG_MAX bytes, splits it into several lines with the same
 * "TS SOURCE[PROC]: " prefix. Each line stored is passed to fn (may be
 * NULL) before it is written. Buffered: written by lstore_flush(), or at
 * once when the buffer is over 256 KiB. */
void lstore_append(struct lstore *s, const char *line, size_t len, lstore_line_fn fn, void *ctx);

/* Writes what is buffered (one write), rotating the segments when `log`
 * is full. Returns 0, or < 0 when the write failed (those lines are
 * lost, counted in lstore_lost()). */
int lstore_flush(struct lstore *s, struct dy_error **err);

/* Calls fn with the last n lines that match f (NULL: all), oldest first,
 * what is buffered included. Returns the number of lines given, or < 0. */
int lstore_read(struct lstore *s, size_t n, const struct lstore_filter *f, lstore_line_fn fn,
                void *ctx, struct dy_error **err);

/* Lines lost to failed writes. */
uint64_t lstore_lost(const struct lstore *s);

/* Flushes and closes. Accepts NULL. */
void lstore_free(struct lstore *s);
