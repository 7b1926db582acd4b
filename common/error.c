#include "common/error.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int error_value(int errnum)
{
	return errnum > 0 ? -errnum : -1;
}

/* The attribute lets -Wformat=2 (clang's -Wformat-nonliteral) check the
 * callers instead of flagging the vasprintf() below. */
static int error_setv(struct dy_error **err, int errnum, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static int error_setv(struct dy_error **err, int errnum, const char *fmt, va_list ap)
{
	if (err == NULL || *err != NULL)
		return error_value(errnum);

	struct dy_error *e = calloc(1, sizeof(*e));
	if (e == NULL)
		return error_value(errnum);
	char *msg = NULL;
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	if (msg != NULL && errnum > 0) {
		char *full = NULL;
		if (asprintf(&full, "%s: %s", msg, strerror(errnum)) >= 0) {
			free(msg);
			msg = full;
		}
	}
	e->errnum = errnum;
	e->msg = msg;
	*err = e;
	return error_value(errnum);
}

int dy_error(struct dy_error **err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = error_setv(err, 0, fmt, ap);
	va_end(ap);
	return r;
}

int dy_error_errno(struct dy_error **err, int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = error_setv(err, errnum, fmt, ap);
	va_end(ap);
	return r;
}

int dy_error_as(struct dy_error **err, enum dy_error_kind kind, const char *fmt, ...)
{
	bool was_set = err == NULL || *err != NULL;
	va_list ap;
	va_start(ap, fmt);
	int r = error_setv(err, 0, fmt, ap);
	va_end(ap);
	/* an error already set keeps its kind: the first failure wins */
	if (!was_set && *err != NULL)
		(*err)->kind = kind;
	return r;
}

enum dy_error_kind dy_error_kind_of(const struct dy_error *err)
{
	if (err == NULL)
		return DY_E_INTERNAL;
	if (err->kind == DY_E_INTERNAL && (err->errnum == ENOSPC || err->errnum == EDQUOT))
		return DY_E_NO_SPACE;
	return err->kind;
}

const char *dy_error_kind_str(enum dy_error_kind kind)
{
	static const char *const names[_DY_E_MAX] = {
	    [DY_E_INTERNAL] = "internal",       [DY_E_BAD_REQUEST] = "bad_request",
	    [DY_E_FORBIDDEN] = "forbidden",     [DY_E_NOT_FOUND] = "not_found",
	    [DY_E_NOT_ALLOWED] = "not_allowed", [DY_E_CONFLICT] = "conflict",
	    [DY_E_TOO_LARGE] = "too_large",     [DY_E_INVALID] = "invalid",
	    [DY_E_UNSUPPORTED] = "unsupported", [DY_E_NO_SPACE] = "no_space",
	};
	if ((unsigned)kind >= _DY_E_MAX)
		return "unknown";
	return names[kind];
}

int dy_error_prefix(struct dy_error **err, const char *fmt, ...)
{
	if (err == NULL || *err == NULL)
		return -1;
	struct dy_error *e = *err;
	char *prefix = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&prefix, fmt, ap);
	va_end(ap);
	if (n >= 0) {
		char *full = NULL;
		if (asprintf(&full, "%s: %s", prefix, e->msg ? e->msg : "unknown error") >= 0) {
			free(e->msg);
			e->msg = full;
		}
		free(prefix);
	}
	return error_value(e->errnum);
}

const char *dy_error_msg(const struct dy_error *err)
{
	if (err == NULL || err->msg == NULL)
		return "unknown error";
	return err->msg;
}

void dy_error_free(struct dy_error **err)
{
	if (err == NULL || *err == NULL)
		return;
	free((*err)->msg);
	free(*err);
	*err = NULL;
}
