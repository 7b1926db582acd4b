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

/* What kind of failure an error is, for whoever must answer for it (the
 * Platform API turns a kind into an HTTP status and an error id in one
 * table, runtime/manager/api.c). The zero value is a failure of the
 * platform itself: a system call, memory, a bug. */
enum dy_error_kind {
	DY_E_INTERNAL = 0, /* the platform failed: 500 internal_error */
	DY_E_BAD_REQUEST,  /* the request cannot be read: 400 bad_request */
	DY_E_FORBIDDEN,    /* not allowed for this caller: 403 forbidden */
	DY_E_NOT_FOUND,    /* no such thing: 404 not_found */
	DY_E_NOT_ALLOWED,  /* not with this method: 405 */
	DY_E_CONFLICT,     /* clashes with the current state: 409 conflict */
	DY_E_TOO_LARGE,    /* over a size limit: 413 */
	DY_E_INVALID,      /* read, but a value is refused: 422 invalid_params */
	DY_E_UNSUPPORTED,  /* a feature not implemented: 501 */
	DY_E_NO_SPACE,     /* the disk is full (ENOSPC, EDQUOT): 507 insufficient_storage */
	_DY_E_MAX,
};

struct dy_error {
	enum dy_error_kind kind;
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

/* As dy_error(), with the error's kind set (see enum dy_error_kind).
 * Returns -1. */
int dy_error_as(struct dy_error **err, enum dy_error_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The kind of err; DY_E_INTERNAL for NULL. A failure of the platform
 * whose errno is ENOSPC or EDQUOT is DY_E_NO_SPACE: a full disk is the
 * host's to fix, not a bug. */
enum dy_error_kind dy_error_kind_of(const struct dy_error *err);

/* "internal", "not_found", ...: the kind's name, for logs and tests. */
const char *dy_error_kind_str(enum dy_error_kind kind);

/* Prepends "<formatted>: " to an error already set. Returns the value the
 * error carries (-errnum, or -1). Harmless when err or *err is NULL. */
int dy_error_prefix(struct dy_error **err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The message of err, or "unknown error". Never NULL. */
const char *dy_error_msg(const struct dy_error *err);

/* Frees *err and sets it to NULL. Accepts NULL and an empty error. */
void dy_error_free(struct dy_error **err);

#define _cleanup_error_ __attribute__((cleanup(dy_error_free)))
