#include "common/log.h"
#include "common/macro.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

size_t dy_log_timestamp(char *buf, size_t size, const struct timespec *ts)
{
	struct tm tm;
	time_t sec = ts->tv_sec;
	if (gmtime_r(&sec, &tm) == NULL || size == 0)
		return 0;
	int n = snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%06ld+00:00", tm.tm_year + 1900,
	                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	                 (long)(ts->tv_nsec / 1000));
	if (n < 0)
		return 0;
	return MIN((size_t)n, size - 1);
}

size_t dy_log_format(char *buf, size_t size, const struct timespec *ts, const char *source,
                     const char *proc, const char *msg)
{
	if (size == 0)
		return 0;
	char stamp[DY_LOG_TIMESTAMP_LEN + 1];
	dy_log_timestamp(stamp, sizeof(stamp), ts);
	int n = snprintf(buf, size, "%s %s[%s]: ", stamp, source, proc);
	if (n < 0) {
		buf[0] = '\0';
		return 0;
	}
	size_t len = MIN((size_t)n, size - 1);
	for (const char *p = msg; *p != '\0' && len + 1 < size; p++) {
		unsigned char c = (unsigned char)*p;
		buf[len++] = (c < 0x20 && c != '\t') || c == 0x7f ? ' ' : (char)c;
	}
	buf[len] = '\0';
	return len;
}

void dy_log(const char *proc, const char *fmt, ...)
{
	char msg[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	char line[4096 + 128];
	size_t len = dy_log_format(line, sizeof(line) - 1, &ts, "dyno", proc, msg);
	line[len++] = '\n';
	/* One write() per line so concurrent writers do not interleave. */
	ssize_t r = write(STDERR_FILENO, line, len);
	(void)r;
}

static dy_log_app_fn app_sink;
static void *app_sink_ctx;

void dy_log_set_app_sink(dy_log_app_fn fn, void *ctx)
{
	app_sink = fn;
	app_sink_ctx = ctx;
}

__attribute__((format(printf, 4, 0))) static void
log_app_v(bool to_stderr, const char *app, const char *proc, const char *fmt, va_list ap)
{
	char msg[4096];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	char line[4096 + 128];
	size_t len = dy_log_format(line, sizeof(line) - 1, &ts, "dyno", proc, msg);
	if (app_sink && app)
		app_sink(app_sink_ctx, app, line, len);
	if (to_stderr) {
		line[len++] = '\n';
		ssize_t r = write(STDERR_FILENO, line, len);
		(void)r;
	}
}

void dy_log_app(const char *app, const char *proc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_app_v(true, app, proc, fmt, ap);
	va_end(ap);
}

void dy_log_to_app(const char *app, const char *proc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_app_v(false, app, proc, fmt, ap);
	va_end(ap);
}

/* The length of the valid UTF-8 sequence at p (at most n bytes) that is
 * not a C1 control, or 0. */
static size_t utf8_printable(const unsigned char *p, size_t n)
{
	size_t need;
	uint32_t cp;
	if (p[0] < 0xc2 || p[0] > 0xf4)
		return 0; /* a continuation byte, an overlong lead, past U+10FFFF */
	if (p[0] < 0xe0) {
		need = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] < 0xf0) {
		need = 3;
		cp = p[0] & 0x0f;
	} else {
		need = 4;
		cp = p[0] & 0x07;
	}
	if (n < need)
		return 0;
	for (size_t i = 1; i < need; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((need == 3 && cp < 0x800) || (need == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0; /* overlong, out of range, a surrogate */
	if (cp >= 0x80 && cp <= 0x9f)
		return 0; /* C1: 0x9b is CSI for some terminals */
	return need;
}

size_t dy_log_escape(char *out, const char *in, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)in;
	size_t o = 0;
	for (size_t i = 0; i < len;) {
		unsigned char c = p[i];
		if (c >= 0x20 && c < 0x7f) {
			out[o++] = (char)c;
			i++;
			continue;
		}
		if (c == '\t') {
			out[o++] = '\t';
			i++;
			continue;
		}
		size_t n = c >= 0x80 ? utf8_printable(p + i, len - i) : 0;
		if (n > 0) {
			memcpy(out + o, p + i, n);
			o += n;
			i += n;
			continue;
		}
		out[o++] = '\\';
		out[o++] = 'x';
		out[o++] = hex[c >> 4];
		out[o++] = hex[c & 15];
		i++;
	}
	out[o] = '\0';
	return o;
}
