/* Router log lines: formatting, batching, stdout and the log intake. */
#include "router/rlog.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/loop.h"
#include "common/macro.h"

#define RLOG_LINE_MAX   4096
#define RLOG_BATCH_MAX  256 /* lines per flush; more are flushed at once */
#define RLOG_RETRY_USEC 1000000

struct fmt {
	char *p;
	size_t len, cap;
};

static void add(struct fmt *f, const char *s)
{
	if (s == NULL)
		return;
	size_t n = MIN(strlen(s), f->cap - 1 - f->len);
	memcpy(f->p + f->len, s, n);
	f->len += n;
}

static void add_quoted(struct fmt *f, const char *s)
{
	add(f, "\"");
	for (; s && *s && f->len + 2 < f->cap; s++) {
		if (*s == '"' || *s == '\\')
			f->p[f->len++] = '\\';
		f->p[f->len++] = *s;
	}
	add(f, "\"");
}

static void add_u(struct fmt *f, uint64_t v, const char *suffix)
{
	/* by hand: snprintf costs more than the rest of the line */
	char b[24];
	size_t i = sizeof(b);
	b[--i] = '\0';
	do {
		b[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v > 0);
	add(f, b + i);
	add(f, suffix);
}

size_t rlog_format_entry(char *buf, size_t cap, const struct rlog_entry *e)
{
	if (cap == 0)
		return 0;
	struct fmt f = {buf, 0, cap};
	/* the table is looked up for errors only: most lines are at=info */
	const char *code = NULL, *desc = e->desc;
	if (e->code != HK_NONE) {
		code = hk_code_str(e->code);
		if (desc == NULL)
			desc = hk_code(e->code)->desc;
	}
	if (code || desc) {
		add(&f, "at=error");
		if (code) {
			add(&f, " code=");
			add(&f, code);
		}
		if (desc) {
			add(&f, " desc=");
			add_quoted(&f, desc);
		}
		add(&f, " method=");
	} else {
		add(&f, "at=info method=");
	}
	add(&f, e->method);
	add(&f, " path=");
	add_quoted(&f, e->path);
	add(&f, " host=");
	add(&f, e->host);
	add(&f, " request_id=");
	add(&f, e->request_id);
	add(&f, " fwd=");
	add_quoted(&f, e->fwd);
	add(&f, " dyno=");
	add(&f, e->dyno);
	add(&f, " connect=");
	add_u(&f, e->connect_ms, "ms");
	add(&f, " service=");
	add_u(&f, e->service_ms, "ms");
	add(&f, " status=");
	add_u(&f, (uint64_t)e->status, "");
	add(&f, " bytes=");
	add_u(&f, e->bytes, "");
	add(&f, " protocol=http");
	buf[f.len] = '\0';
	return f.len;
}

size_t rlog_format_line(char *buf, size_t cap, const struct timespec *ts, const char *msg)
{
	return dy_log_format(buf, cap, ts, "router", "router", msg);
}

struct rlog {
	struct loop *loop;
	int out_fd;
	bool out_owned;                   /* out_fd is our own description (closed by rlog_free) */
	bool out_send;                    /* out_fd is a socket: written with MSG_DONTWAIT */
	char out_pend[RLOG_LINE_MAX + 2]; /* the tail of a line cut by a short write */
	size_t out_pend_len;
	uint64_t out_dropped;
	char *intake_path;
	int sock;
	bool connected;
	uint64_t retry_at;
	/* queued lines: text with '\n' after each, and where each starts */
	char *buf;
	size_t len, cap;
	size_t starts[RLOG_BATCH_MAX + 1];
	size_t app_len[RLOG_BATCH_MAX]; /* "APP " prefix length of each line */
	size_t n;
	struct loop_deferred flush; /* queued once per round with lines */
	uint64_t sent, dropped;
	/* cached seconds of the timestamp */
	time_t stamp_sec;
	char stamp[DY_LOG_TIMESTAMP_LEN + 1];
};

static void deferred_flush(struct loop_deferred *d)
{
	rlog_flush(loop_container_of(d, struct rlog, flush));
}

/* Sets l up to write to fd without ever waiting. O_NONBLOCK belongs to the
 * open file description, which our stdout shares with whoever started us
 * (dynod's own stdout and stderr, often one pipe): setting it there would
 * make their writes fail with EAGAIN. A pipe or a terminal is opened again
 * through /proc/self/fd, which gives a description of our own (open(2) of
 * a FIFO or a device opens it anew); a socket cannot be, and is written
 * with MSG_DONTWAIT instead; a regular file never makes a write wait. Only
 * when the reopen fails is the shared description made non-blocking. */
static void out_setup(struct rlog *l, int fd)
{
	l->out_fd = fd;
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || S_ISREG(st.st_mode))
		return;
	if (S_ISSOCK(st.st_mode)) {
		l->out_send = true;
		return;
	}
	if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		int own = open(path, O_WRONLY | O_APPEND | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
		if (own >= 0) {
			l->out_fd = own;
			l->out_owned = true;
			return;
		}
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int rlog_new(struct loop *loop, int out_fd, const char *intake_path, struct rlog **ret,
             struct dy_error **err)
{
	struct rlog *l = calloc(1, sizeof(*l));
	if (l == NULL)
		return dy_error_errno(err, ENOMEM, "router log");
	l->loop = loop;
	out_setup(l, out_fd);
	l->sock = -1;
	l->stamp_sec = -1;
	loop_defer_init(&l->flush, deferred_flush);
	l->cap = RLOG_BATCH_MAX * 512;
	l->buf = malloc(l->cap);
	if (l->buf == NULL) {
		free(l);
		return dy_error_errno(err, ENOMEM, "router log");
	}
	if (intake_path) {
		struct sockaddr_un sun;
		if (strlen(intake_path) >= sizeof(sun.sun_path)) {
			rlog_free(l);
			return dy_error(err, "log intake %s: path too long", intake_path);
		}
		l->intake_path = strdup(intake_path);
		l->sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (l->sock < 0 || l->intake_path == NULL) {
			int e = errno;
			rlog_free(l);
			return dy_error_errno(err, e, "log intake socket");
		}
	}
	*ret = l;
	return 0;
}

static void try_connect(struct rlog *l, uint64_t now)
{
	if (l->connected || l->sock < 0 || now < l->retry_at)
		return;
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", l->intake_path);
	/* A datagram connect only records the peer: it fails at once with
	 * ENOENT or ECONNREFUSED while dynod is away; retry once a second. */
	if (connect(l->sock, (struct sockaddr *)&sun, sizeof(sun)) == 0)
		l->connected = true;
	else
		l->retry_at = now + RLOG_RETRY_USEC;
}

/* Writes p[0..n) to stdout without waiting. Returns how much was
 * written: the rest would have blocked, or failed. */
static size_t out_put(struct rlog *l, const char *p, size_t n)
{
	size_t done = 0;
	while (done < n) {
		ssize_t w = l->out_send
		                ? send(l->out_fd, p + done, n - done, MSG_DONTWAIT | MSG_NOSIGNAL)
		                : write(l->out_fd, p + done, n - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		done += (size_t)w;
	}
	return done;
}

/* The queued lines to stdout, without their app prefix, in one write. What
 * would block is dropped and counted, as for the intake, but lines stay
 * whole: a line cut by a short write keeps its tail, written first next
 * time, and new lines are dropped while that tail cannot go. */
static void flush_out(struct rlog *l)
{
	static char out[RLOG_BATCH_MAX * 512];
	size_t ends[RLOG_BATCH_MAX];
	if (l->out_pend_len > 0) {
		size_t w = out_put(l, l->out_pend, l->out_pend_len);
		memmove(l->out_pend, l->out_pend + w, l->out_pend_len - w);
		l->out_pend_len -= w;
		if (l->out_pend_len > 0) {
			l->out_dropped += l->n;
			return;
		}
	}
	size_t off = 0, nlines = 0;
	for (size_t i = 0; i < l->n; i++) {
		size_t s = l->starts[i] + l->app_len[i];
		size_t n = l->starts[i + 1] - s;
		if (off + n > sizeof(out))
			break;
		memcpy(out + off, l->buf + s, n);
		off += n;
		ends[nlines++] = off;
	}
	l->out_dropped += l->n - nlines;
	size_t w = out_put(l, out, off);
	if (w == off)
		return;
	size_t i = 0;
	while (ends[i] <= w)
		i++;
	size_t start = i > 0 ? ends[i - 1] : 0;
	if (w > start) {
		/* line i went out in part: keep its tail */
		assert(ends[i] - w <= sizeof(l->out_pend));
		memcpy(l->out_pend, out + w, ends[i] - w);
		l->out_pend_len = ends[i] - w;
		i++;
	}
	l->out_dropped += nlines - i;
}

void rlog_flush(struct rlog *l)
{
	if (l == NULL)
		return;
	if (l->n == 0)
		return;
	if (l->out_fd >= 0)
		flush_out(l);
	if (l->sock >= 0) {
		uint64_t now = loop_now(l->loop);
		try_connect(l, now);
		if (!l->connected) {
			l->dropped += l->n;
		} else {
			struct mmsghdr msgs[RLOG_BATCH_MAX];
			struct iovec iov[RLOG_BATCH_MAX];
			memset(msgs, 0, sizeof(struct mmsghdr) * l->n);
			for (size_t i = 0; i < l->n; i++) {
				iov[i].iov_base = l->buf + l->starts[i];
				/* without the newline */
				iov[i].iov_len = l->starts[i + 1] - l->starts[i] - 1;
				msgs[i].msg_hdr.msg_iov = &iov[i];
				msgs[i].msg_hdr.msg_iovlen = 1;
			}
			size_t done = 0;
			while (done < l->n) {
				int r = sendmmsg(l->sock, msgs + done, (unsigned)(l->n - done),
				                 MSG_DONTWAIT | MSG_NOSIGNAL);
				if (r < 0 && errno == EINTR)
					continue;
				if (r <= 0) {
					if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
						/* dynod went away: reconnect later */
						l->connected = false;
						l->retry_at = now + RLOG_RETRY_USEC;
						struct sockaddr sa = {.sa_family = AF_UNSPEC};
						(void)!connect(l->sock, &sa, sizeof(sa));
					}
					break;
				}
				done += (size_t)r;
			}
			l->sent += done;
			l->dropped += l->n - done;
		}
	}
	l->n = 0;
	l->len = 0;
}

/* True when some byte of the 8 in w is a control byte (< 0x20, or 0x7f).
 * Bit tricks after "Bit Twiddling Hacks" (hasless, haszero): exact as a
 * whole, though not per byte. */
static inline bool word_has_ctl(uint64_t w)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	uint64_t below = (w - ones * 0x20) & ~w & highs;
	uint64_t x = w ^ (ones * 0x7f);
	uint64_t del = (x - ones) & ~x & highs;
	return (below | del) != 0;
}

/* A line stays one line: control bytes but tabs become spaces. Eight bytes
 * are looked at a time, since almost every line has none, and this runs
 * over every byte the router logs (about 200 a request). */
static void sanitize(char *p, size_t n)
{
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, sizeof(w));
		if (!word_has_ctl(w))
			continue;
		for (size_t k = i; k < i + 8; k++) {
			unsigned char c = (unsigned char)p[k];
			if ((c < 0x20 && c != '\t') || c == 0x7f)
				p[k] = ' ';
		}
	}
	for (; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			p[i] = ' ';
	}
}

void rlog_emit(struct rlog *l, const char *app, const char *msg)
{
	if (l == NULL)
		return;
	if (l->n == RLOG_BATCH_MAX || l->cap - l->len < RLOG_LINE_MAX + 128)
		rlog_flush(l);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec != l->stamp_sec) {
		struct timespec whole = {.tv_sec = ts.tv_sec, .tv_nsec = 0};
		dy_log_timestamp(l->stamp, sizeof(l->stamp), &whole);
		l->stamp_sec = ts.tv_sec;
	}
	char *p = l->buf + l->len;
	/* "APP " then the line; "YYYY-MM-DDTHH:MM:SS." is 20 bytes */
	const char *a = app ? app : "-";
	size_t alen = strnlen(a, 64);
	memcpy(p, a, alen);
	p[alen] = ' ';
	size_t pre = alen + 1;
	memcpy(p + pre, l->stamp, 20);
	long us = ts.tv_nsec / 1000;
	for (int i = 5; i >= 0; i--) {
		p[pre + 20 + (size_t)i] = (char)('0' + us % 10);
		us /= 10;
	}
	static const char tail[] = "+00:00 router[router]: ";
	memcpy(p + pre + 26, tail, sizeof(tail) - 1);
	size_t len = pre + 26 + sizeof(tail) - 1;
	size_t mlen = MIN(strlen(msg), (size_t)RLOG_LINE_MAX - len);
	memcpy(p + len, msg, mlen);
	sanitize(p + len, mlen);
	len += mlen;
	p[len++] = '\n';
	l->starts[l->n] = l->len;
	l->app_len[l->n] = pre;
	l->len += len;
	l->n++;
	l->starts[l->n] = l->len;
	loop_defer(l->loop, &l->flush);
}

uint64_t rlog_sent(const struct rlog *l)
{
	return l ? l->sent : 0;
}

uint64_t rlog_dropped(const struct rlog *l)
{
	return l ? l->dropped : 0;
}

uint64_t rlog_out_dropped(const struct rlog *l)
{
	return l ? l->out_dropped : 0;
}

void rlog_free(struct rlog *l)
{
	if (l == NULL)
		return;
	rlog_flush(l);
	if (l->sock >= 0)
		close(l->sock);
	if (l->out_owned)
		close(l->out_fd);
	free(l->intake_path);
	free(l->buf);
	free(l);
}
