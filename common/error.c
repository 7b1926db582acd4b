#include "common/error.h"

#include <errno.h>
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
