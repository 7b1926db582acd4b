/* Watching drains through the router (drain-watch.h). */
#include "runtime/manager/drain-watch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

#define DW_TIMEOUT_USEC (1000ULL * 1000) /* one exchange at most */
#define DW_MAX_BYTES    (8u << 20)       /* the answer at most */

static const char REQUEST[] = "GET /metrics HTTP/1.1\r\nHost: dynod\r\nConnection: close\r\n\r\n";

/* ---- the metrics ---- */

void dw_metrics_clear(struct dw_metrics *m)
{
	free(m->backends);
	*m = (struct dw_metrics){.version = -1};
}

/* The entry of addr[0..len) in m, added when new: *ret (NULL for an
 * address too long to be a backend's). Returns 0 or -ENOMEM. */
static int backend_of(struct dw_metrics *m, const char *addr, size_t len, struct dw_backend **ret)
{
	*ret = NULL;
	for (size_t i = 0; i < m->n; i++)
		if (strlen(m->backends[i].addr) == len && memcmp(m->backends[i].addr, addr, len) == 0) {
			*ret = &m->backends[i];
			return 0;
		}
	if (len >= sizeof(m->backends[0].addr))
		return 0;
	struct dw_backend *v = realloc(m->backends, (m->n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	m->backends = v;
	struct dw_backend *b = &v[m->n++];
	*b = (struct dw_backend){0};
	memcpy(b->addr, addr, len);
	*ret = b;
	return 0;
}

/* The value at the end of line[0..len): the number after the last ' '. */
static long long value_of(const char *line, size_t len)
{
	const char *sp = NULL;
	for (size_t i = len; i-- > 0;)
		if (line[i] == ' ') {
			sp = line + i + 1;
			break;
		}
	if (!sp || sp == line + len)
		return -1;
	long long v = 0;
	for (const char *p = sp; p < line + len; p++) {
		if (*p < '0' || *p > '9' || v > 1000000000000LL)
			return -1;
		v = v * 10 + (*p - '0');
	}
	return v;
}

int dw_parse(const char *text, size_t len, struct dw_metrics *ret)
{
	static const char version[] = "dyno_router_routes_version ";
	static const char draining[] = "dyno_router_backend_draining{";
	static const char in_flight[] = "dyno_router_backend_in_flight{";
	*ret = (struct dw_metrics){.version = -1};
	for (const char *p = text, *end = text + len; p < end;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		const char *next = nl ? nl + 1 : end;
		bool is_d = n >= sizeof(draining) && memcmp(p, draining, sizeof(draining) - 1) == 0;
		bool is_f = n >= sizeof(in_flight) && memcmp(p, in_flight, sizeof(in_flight) - 1) == 0;
		if (n >= sizeof(version) && memcmp(p, version, sizeof(version) - 1) == 0) {
			ret->version = value_of(p, n);
		} else if (is_d || is_f) {
			/* ...{app="a",dyno="web.1",addr="10.0.0.5:5000"} 3 */
			const char *a = memmem(p, n, "addr=\"", 6);
			const char *q = a ? memchr(a + 6, '"', (size_t)(p + n - a - 6)) : NULL;
			long long v = value_of(p, n);
			if (q && v >= 0) {
				struct dw_backend *b;
				if (backend_of(ret, a + 6, (size_t)(q - a - 6), &b) < 0) {
					dw_metrics_clear(ret);
					return -ENOMEM;
				}
				if (b && is_d)
					b->draining = v != 0;
				else if (b)
					b->in_flight = (unsigned)v;
			}
		}
		p = next;
	}
	return 0;
}

bool dw_drained(const struct dw_metrics *m, const char *addr, long long min_version)
{
	if (m->version < min_version)
		return false;
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->backends[i].addr, addr) == 0)
			return m->backends[i].in_flight == 0;
	return true; /* no longer a backend: nothing of it in flight */
}

/* ---- the exchange ---- */

struct dw_watch {
	struct loop *loop;
	struct sockaddr_storage sa;
	socklen_t sa_len;
	dw_done_fn fn;
	void *ctx;
	int fd; /* -1: no exchange under way */
	bool sent;
	char *in;
	size_t in_len, in_cap;
	struct loop_io io;
	struct loop_timer timer;
};

static void finish(struct dw_watch *w, bool ok)
{
	loop_io_stop(w->loop, &w->io);
	loop_timer_stop(w->loop, &w->timer);
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	struct dw_metrics m;
	bool parsed = false;
	if (ok) {
		/* the body follows the head; a 200 only */
		const char *body = w->in_len > 12 && memcmp(w->in, "HTTP/1.1 200", 12) == 0
		                       ? memmem(w->in, w->in_len, "\r\n\r\n", 4)
		                       : NULL;
		parsed = body && dw_parse(body + 4, w->in_len - (size_t)(body + 4 - w->in), &m) == 0;
	}
	w->in_len = 0;
	w->fn(w->ctx, parsed ? &m : NULL);
	if (parsed)
		dw_metrics_clear(&m);
}

static void on_io(struct loop *loop, struct loop_io *io, uint32_t events)
{
	(void)loop;
	(void)events;
	struct dw_watch *w = loop_container_of(io, struct dw_watch, io);
	if (!w->sent) {
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (getsockopt(w->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr != 0 ||
		    send(w->fd, REQUEST, sizeof(REQUEST) - 1, MSG_NOSIGNAL) !=
		        (ssize_t)(sizeof(REQUEST) - 1) ||
		    loop_io_set(w->loop, &w->io, LOOP_READ, NULL) < 0) {
			finish(w, false);
			return;
		}
		w->sent = true;
		return;
	}
	for (;;) {
		if (w->in_cap - w->in_len < 16384) {
			size_t cap = w->in_cap ? w->in_cap * 2 : 65536;
			char *p = cap <= DW_MAX_BYTES ? realloc(w->in, cap) : NULL;
			if (!p) {
				finish(w, false);
				return;
			}
			w->in = p;
			w->in_cap = cap;
		}
		ssize_t n = recv(w->fd, w->in + w->in_len, w->in_cap - w->in_len, MSG_DONTWAIT);
		if (n > 0) {
			w->in_len += (size_t)n;
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		finish(w, n == 0); /* the close ends the answer */
		return;
	}
}

static void on_timer(struct loop *loop, struct loop_timer *t)
{
	(void)loop;
	finish(loop_container_of(t, struct dw_watch, timer), false);
}

int dw_new(struct loop *loop, const struct sockaddr *sa, socklen_t len, dw_done_fn fn, void *ctx,
           struct dw_watch **ret)
{
	struct dw_watch *w = calloc(1, sizeof(*w));
	if (!w || len > sizeof(w->sa)) {
		free(w);
		return -ENOMEM;
	}
	w->loop = loop;
	memcpy(&w->sa, sa, len);
	w->sa_len = len;
	w->fn = fn;
	w->ctx = ctx;
	w->fd = -1;
	loop_io_init(&w->io, -1, on_io);
	loop_timer_init(&w->timer, on_timer);
	*ret = w;
	return 0;
}

void dw_ask(struct dw_watch *w)
{
	if (w->fd >= 0)
		return;
	w->fd = socket(w->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	w->sent = false;
	if (w->fd < 0 ||
	    (connect(w->fd, (struct sockaddr *)&w->sa, w->sa_len) < 0 && errno != EINPROGRESS)) {
		finish(w, false);
		return;
	}
	loop_io_init(&w->io, w->fd, on_io);
	if (loop_io_set(w->loop, &w->io, LOOP_WRITE, NULL) < 0) {
		finish(w, false);
		return;
	}
	loop_timer_start(w->loop, &w->timer, DW_TIMEOUT_USEC, NULL);
}

void dw_free(struct dw_watch *w)
{
	if (!w)
		return;
	loop_io_stop(w->loop, &w->io);
	loop_timer_stop(w->loop, &w->timer);
	if (w->fd >= 0)
		close(w->fd);
	free(w->in);
	free(w);
}
