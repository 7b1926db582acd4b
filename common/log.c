#include "common/log.h"
#include "common/macro.h"

#include <stdarg.h>
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
