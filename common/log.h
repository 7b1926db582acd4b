/* Log lines in docs/design.md's format:
 *
 *	2026-11-26T11:00:00.123456+00:00 SOURCE[PROC]: message
 *
 * always UTC with microseconds. */
#pragma once

#include <stddef.h>
#include <time.h>

#define DY_LOG_TIMESTAMP_LEN 32 /* "2026-11-26T11:00:00.123456+00:00" */

/* Writes the timestamp of ts (UTC) into buf (at least
 * DY_LOG_TIMESTAMP_LEN + 1 bytes). Returns the length written. */
size_t dy_log_timestamp(char *buf, size_t size, const struct timespec *ts);

/* Formats one log line (no trailing newline) into buf. The message is cut
 * to fit; control characters in it (a newline above all) become spaces so a
 * line stays one line. Returns the length written, < size. */
size_t dy_log_format(char *buf, size_t size, const struct timespec *ts, const char *source,
                     const char *proc, const char *msg);

/* Writes one line, stamped now, to stderr: "dyno[PROC]: message". */
void dy_log(const char *proc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Where lines for an app's own log go (dynod: its log intake, which files
 * line[0..len) under app). NULL: nowhere. */
typedef void (*dy_log_app_fn)(void *ctx, const char *app, const char *line, size_t len);
void dy_log_set_app_sink(dy_log_app_fn fn, void *ctx);

/* As dy_log(), and the same line into app's log (a platform line:
 * "dyno[web.1]: State changed from starting to up"). */
void dy_log_app(const char *app, const char *proc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Only into app's log, not stderr (the API's "dyno[api]: ..." lines, whose
 * stderr line says more). */
void dy_log_to_app(const char *app, const char *proc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Copies in[0..len) to out for a terminal: control bytes (C0 but tab, DEL,
 * the C1 controls U+0080..U+009F) and bytes that are not valid UTF-8
 * become "\xNN" each, so that no escape sequence of the app's reaches the
 * terminal. out needs 4 * len + 1 bytes; it is NUL-terminated. Returns
 * the length written. */
size_t dy_log_escape(char *out, const char *in, size_t len);
