/* One error type for all of dyno (after crun's libcrun_error_t).
 *
 * A fallible function returns int (< 0 on failure) and takes a trailing
 * `struct dy_error **err`. Setting the error returns the negative value, so
 * a failure is one line:
 *
 *	if (fd < 0)
 *		return dy_error_errno(err, errno, "open %s", path);
 *
 * Callers add context as the error travels up with dy_error_prefix(). Only
 * top-level code prints an error. */
#pragma once

#include <errno.h>
#include <stdarg.h>

struct dy_error {
	int errnum; /* errno value, 0 when the failure is not a system call's */
	char *msg;  /* full message, owned */
};

/* Sets *err (when err is not NULL and *err is empty) to the formatted
 * message. Returns -1. */
int dy_error(struct dy_error **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* As dy_error(), with ": strerror(errnum)" appended. Returns -errnum (or -1
 * when errnum is 0). */
int dy_error_errno(struct dy_error **err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prepends "<formatted>: " to an error already set. Returns the value the
 * error carries (-errnum, or -1). Harmless when err or *err is NULL. */
int dy_error_prefix(struct dy_error **err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The message of err, or "unknown error". Never NULL. */
const char *dy_error_msg(const struct dy_error *err);

/* Frees *err and sets it to NULL. Accepts NULL and an empty error. */
void dy_error_free(struct dy_error **err);

#define _cleanup_error_ __attribute__((cleanup(dy_error_free)))
