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
