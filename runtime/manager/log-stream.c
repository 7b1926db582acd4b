/* The log-stream answer: backlog, then tail (log-stream.h). */
#include "runtime/manager/log-stream.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/conn.h"
#include "common/heroku-codes.h"
#include "common/log.h"
#include "common/macro.h"

#define LSTREAM_MAX 256 /* readers at once; more get 503 from the API */

struct lstreams {
	struct loop *loop;
	struct lgi *logs;
	struct dy_conn_list conns;
};

struct lstream {
	struct lstreams *set;
	struct dy_conn conn;
	struct buf out;  /* framed: head, chunks */
	struct buf pend; /* lines not framed yet */
	struct lgi_tail tail;
	bool capped;  /* the backlog is out: the cap holds */
	bool ending;  /* the last chunk is queued: close once it is out */
	bool tailing; /* the tail is started */
	uint64_t dropped;
	char dyno[48], source[8];
};

static bool is_name(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' || *s == '-'))
			return false;
	return true;
}

int lstream_parse_query(const char *query, struct lstream_params *ret, struct dy_error **err)
{
	*ret = (struct lstream_params){.lines = LSTREAM_LINES_DEFAULT};
	const char *p = query ? query : "";
	while (*p) {
		size_t n = strcspn(p, "&");
		const char *eq = memchr(p, '=', n);
		size_t klen = eq ? (size_t)(eq - p) : n;
		char val[64];
		size_t vlen = eq ? n - klen - 1 : 0;
		if (vlen >= sizeof(val))
			return dy_error_as(err, DY_E_INVALID, "%.*s: value too long", (int)klen, p);
		memcpy(val, eq ? eq + 1 : "", vlen);
		val[vlen] = '\0';
		if (klen == 5 && strncmp(p, "lines", 5) == 0) {
			char *end;
			errno = 0;
			unsigned long v = strtoul(val, &end, 10);
			if (!vlen || *end || errno || v < 1 || v > LSTREAM_LINES_MAX ||
			    val[0] == '-')
				return dy_error_as(
				    err, DY_E_INVALID,
				    "lines: expected an integer from 1 to %d, got \"%s\"",
				    LSTREAM_LINES_MAX, val);
			ret->lines = (uint32_t)v;
		} else if (klen == 4 && strncmp(p, "tail", 4) == 0) {
			if (strcmp(val, "1") == 0 || strcmp(val, "true") == 0 || vlen == 0)
				ret->tail = true;
			else if (strcmp(val, "0") == 0 || strcmp(val, "false") == 0)
				ret->tail = false;
			else
				return dy_error_as(err, DY_E_INVALID,
				                   "tail: expected 1 or 0, got \"%s\"", val);
		} else if (klen == 4 && strncmp(p, "dyno", 4) == 0) {
			if (vlen == 0 || vlen >= sizeof(ret->dyno) || !is_name(val))
				return dy_error_as(err, DY_E_INVALID,
				                   "dyno: expected a process type or a dyno name "
				                   "(web, web.1, router), got \"%s\"",
				                   val);
			memcpy(ret->dyno, val, vlen + 1);
		} else if (klen == 6 && strncmp(p, "source", 6) == 0) {
			if (strcmp(val, "app") != 0 && strcmp(val, "dyno") != 0 &&
			    strcmp(val, "router") != 0)
				return dy_error_as(
				    err, DY_E_INVALID,
				    "source: expected app, dyno or router, got \"%s\"", val);
			memcpy(ret->source, val, vlen + 1);
		}
		p += n;
		if (*p == '&')
			p++;
	}
	return 0;
}

static void stream_close(struct lstream *s)
{
	lgi_tail_stop(&s->tail);
	dy_conn_close(s->set->loop, &s->set->conns, &s->conn);
}

static void stream_free(struct loop_deferred *d)
{
	struct lstream *s = loop_container_of(d, struct lstream, conn.reap);
	buf_free(&s->out);
	buf_free(&s->pend);
	free(s);
}

/* Frames what is pending as one chunk (RFC 9112 7.1). */
static int frame(struct lstream *s)
{
	size_t n = buf_len(&s->pend);
	if (n == 0)
		return 0;
	char head[24];
	int h = snprintf(head, sizeof(head), "%zx\r\n", n);
	if (buf_append(&s->out, head, (size_t)h, SIZE_MAX) < 0 ||
	    buf_append(&s->out, buf_data(&s->pend), n, SIZE_MAX) < 0 ||
	    buf_append(&s->out, "\r\n", 2, SIZE_MAX) < 0)
		return -ENOMEM;
	buf_clear(&s->pend);
	return 0;
}

static void update_interest(struct lstream *s)
{
	if (s->conn.closed)
		return;
	uint32_t ev = LOOP_READ;
	if (buf_len(&s->out) > 0 || buf_len(&s->pend) > 0)
		ev |= LOOP_WRITE;
	if (loop_io_set(s->set->loop, &s->conn.io, ev, NULL) < 0)
		stream_close(s);
}

static void add_line(struct lstream *s, const char *line, size_t len)
{
	if (s->capped && buf_len(&s->out) + buf_len(&s->pend) + len + 1 > LSTREAM_BUF_MAX) {
		s->dropped++;
		return;
	}
	if (buf_append(&s->pend, line, len, SIZE_MAX) < 0 ||
	    buf_append(&s->pend, "\n", 1, SIZE_MAX) < 0)
		s->dropped++;
}

static void on_backlog_line(void *ctx, const char *line, size_t len)
{
	add_line(ctx, line, len);
}

static void on_tail_line(void *ctx, const char *line, size_t len)
{
	struct lstream *s = ctx;
	add_line(s, line, len);
	update_interest(s);
}

/* The app is destroyed (or dynod stops): the body ends. */
static void on_tail_gone(struct lgi_tail *t)
{
	struct lstream *s = loop_container_of(t, struct lstream, tail);
	if (s->conn.closed)
		return;
	if (frame(s) < 0 || buf_append(&s->out, "0\r\n\r\n", 5, SIZE_MAX) < 0) {
		stream_close(s);
		return;
	}
	s->ending = true;
	update_interest(s);
}

/* Lines were dropped for this reader: say so once half the buffer is free. */
static void report_drops(struct lstream *s)
{
	if (s->dropped == 0 || buf_len(&s->out) + buf_len(&s->pend) > LSTREAM_BUF_MAX / 2)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	char msg[128], line[256];
	snprintf(msg, sizeof(msg), HK_ERROR_FMT ": %llu lines dropped for this reader",
	         HK_ERROR_ARGS(HK_L11), (unsigned long long)s->dropped);
	size_t n = dy_log_format(line, sizeof(line), &ts, "dyno", "logs", msg);
	s->dropped = 0;
	add_line(s, line, n);
}

static void on_io(struct loop *loop, struct loop_io *io, uint32_t events)
{
	struct lstream *s = loop_container_of(io, struct lstream, conn.io);
	if (events & LOOP_READ) {
		/* nothing more is read from a reader: its bytes are dropped,
		 * its end (or an error) ends the stream */
		char scratch[4096];
		ssize_t n = recv(s->conn.io.fd, scratch, sizeof(scratch), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			stream_close(s);
			return;
		}
	}
	report_drops(s);
	if (frame(s) < 0) {
		stream_close(s);
		return;
	}
	bool blocked = false;
	while (buf_len(&s->out) > 0 && !blocked) {
		if (buf_flush(&s->out, s->conn.io.fd, &blocked) < 0) {
			stream_close(s);
			return;
		}
	}
	if (buf_len(&s->out) == 0 && s->ending) {
		stream_close(s);
		return;
	}
	report_drops(s);
	update_interest(s);
}

int lstream_start(struct lstreams *set, int fd, const char *app, const struct lstream_params *p,
                  bool head_only, struct dy_error **err)
{
	if (set->conns.n >= LSTREAM_MAX)
		return dy_error_as(err, DY_E_CONFLICT, "too many log readers at once (%d)",
		                   LSTREAM_MAX);
	struct lstream *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return dy_error_errno(err, ENOMEM, "log stream");
	s->set = set;
	snprintf(s->dyno, sizeof(s->dyno), "%s", p->dyno);
	snprintf(s->source, sizeof(s->source), "%s", p->source);
	s->tail.filter.dyno = s->dyno[0] ? s->dyno : NULL;
	s->tail.filter.source = s->source[0] ? s->source : NULL;
	s->tail.fn = on_tail_line;
	s->tail.gone = on_tail_gone;
	s->tail.ctx = s;
	static const char head[] = "HTTP/1.1 200 OK\r\n"
	                           "Content-Type: text/plain; charset=utf-8\r\n"
	                           "Cache-Control: no-cache\r\n"
	                           "Transfer-Encoding: chunked\r\n"
	                           "Connection: close\r\n\r\n";
	int r = buf_append(&s->out, head, sizeof(head) - 1, SIZE_MAX);
	if (r == 0 && !head_only)
		r = lgi_read(set->logs, app, p->lines, &s->tail.filter, on_backlog_line, s, err);
	else if (r < 0)
		r = dy_error_errno(err, ENOMEM, "log stream");
	if (r >= 0 && !head_only && p->tail)
		r = lgi_tail_start(set->logs, app, &s->tail, err);
	if (r < 0) {
		lgi_tail_stop(&s->tail);
		buf_free(&s->out);
		buf_free(&s->pend);
		free(s);
		return -1;
	}
	s->capped = true;
	s->tailing = !head_only && p->tail;
	if (head_only)
		s->ending = true;
	else if (!s->tailing && (frame(s) < 0 || buf_append(&s->out, "0\r\n\r\n", 5, SIZE_MAX) < 0))
		s->dropped++; /* memory: the body ends short */
	else if (!s->tailing)
		s->ending = true;
	dy_conn_init(&s->conn, fd, on_io, NULL, stream_free);
	if (dy_conn_start(set->loop, &set->conns, &s->conn, 0) < 0) {
		lgi_tail_stop(&s->tail); /* closed, its free queued: fd is taken all the same */
		return 0;
	}
	update_interest(s);
	return 0;
}

int lstreams_new(struct loop *loop, struct lgi *logs, struct lstreams **ret, struct dy_error **err)
{
	struct lstreams *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return dy_error_errno(err, ENOMEM, "log streams");
	s->loop = loop;
	s->logs = logs;
	*ret = s;
	return 0;
}

size_t lstreams_count(const struct lstreams *s)
{
	return s ? s->conns.n : 0;
}

void lstreams_free(struct lstreams *s)
{
	if (s == NULL)
		return;
	while (s->conns.head)
		stream_close(loop_container_of(s->conns.head, struct lstream, conn));
	free(s);
}
