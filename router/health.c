/* Active and passive health checks with rise/fall. */
#include "router/health.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/http1.h"
#include "common/loop.h"
#include "router/metrics.h"
#include "router/rlog.h"

enum hc_phase {
	HC_IDLE = 0,
	HC_CONNECTING,
	HC_SENDING,
	HC_READING,
};

struct hc_check {
	struct hc_ctx *ctx;
	struct route_backend *b;
	struct loop_timer timer;
	struct loop_io io;
	enum hc_phase phase;
	unsigned ok, ko; /* consecutive results */
	char req[1200];
	size_t req_len, sent;
	char buf[2048];
	size_t len;
	struct h1_parser parser;
	struct h1_header headers[64];
};

void hc_set_state(struct hc_ctx *ctx, struct route_backend *b, bool healthy, const char *reason)
{
	if (b->healthy == healthy)
		return;
	b->healthy = healthy;
	if (ctx->metrics)
		ctx->metrics->health_changes++;
	char msg[512];
	snprintf(msg, sizeof(msg),
	         "at=%s event=health app=%s dyno=%s addr=%s state=%s reason=\"%s\"",
	         healthy ? "info" : "warning", b->app, b->dyno, b->addr_text,
	         healthy ? "up" : "down", reason);
	rlog_emit(ctx->log, b->app, msg);
}

static void check_close(struct hc_check *c)
{
	if (c->io.fd >= 0) {
		loop_io_stop(c->ctx->loop, &c->io);
		close(c->io.fd);
		c->io.fd = -1;
	}
	c->phase = HC_IDLE;
}

static void check_done(struct hc_check *c, bool ok, const char *reason)
{
	struct hc_ctx *ctx = c->ctx;
	check_close(c);
	if (ok) {
		c->ko = 0;
		if (c->ok < ctx->rise)
			c->ok++;
		if (!c->b->healthy && c->ok >= ctx->rise)
			hc_set_state(ctx, c->b, true, reason);
	} else {
		c->ok = 0;
		if (c->ko < ctx->fall)
			c->ko++;
		if (c->b->healthy && c->ko >= ctx->fall)
			hc_set_state(ctx, c->b, false, reason);
	}
	loop_timer_start(ctx->loop, &c->timer, ctx->interval, NULL);
}

static void on_io(struct loop *loop, struct loop_io *io, uint32_t events)
{
	struct hc_check *c = loop_container_of(io, struct hc_check, io);
	char why[160];
	if (c->phase == HC_CONNECTING) {
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		if (soerr != 0) {
			snprintf(why, sizeof(why), "connect: %s", strerror(soerr));
			check_done(c, false, why);
			return;
		}
		if (c->b->health_path == NULL) {
			check_done(c, true, "tcp connect ok");
			return;
		}
		c->phase = HC_SENDING;
	}
	if (c->phase == HC_SENDING) {
		ssize_t w = send(io->fd, c->req + c->sent, c->req_len - c->sent, MSG_NOSIGNAL);
		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (w < 0) {
			snprintf(why, sizeof(why), "send: %s", strerror(errno));
			check_done(c, false, why);
			return;
		}
		c->sent += (size_t)w;
		if (c->sent < c->req_len)
			return;
		c->phase = HC_READING;
		loop_io_set(loop, io, LOOP_READ, NULL);
		return;
	}
	if (c->phase == HC_READING) {
		ssize_t r = recv(io->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (r <= 0) {
			check_done(c, false, r == 0 ? "closed without response" : strerror(errno));
			return;
		}
		c->len += (size_t)r;
		struct h1_response resp;
		int pr = h1_parse_response(&c->parser, c->buf, c->len, 0, &resp);
		if (pr == 0 && c->len == sizeof(c->buf))
			pr = H1_E_HEAD_TOO_LARGE;
		if (pr < 0) {
			snprintf(why, sizeof(why), "bad response: %s", h1_strerror(pr));
			check_done(c, false, why);
		} else if (pr > 0) {
			snprintf(why, sizeof(why), "GET %s: %d", c->b->health_path, resp.status);
			check_done(c, resp.status >= 200 && resp.status < 400, why);
		}
	}
}

static void on_timer(struct loop *loop, struct loop_timer *t)
{
	struct hc_check *c = loop_container_of(t, struct hc_check, timer);
	struct hc_ctx *ctx = c->ctx;
	if (c->phase != HC_IDLE) {
		check_done(c, false, "check timed out");
		return;
	}
	int fd = socket(c->b->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		loop_timer_start(loop, t, ctx->interval, NULL);
		return;
	}
	loop_io_init(&c->io, fd, on_io);
	c->phase = HC_CONNECTING;
	c->sent = 0;
	c->len = 0;
	h1_parser_init(&c->parser, NULL, c->headers, ELEMENTSOF(c->headers));
	if (c->b->health_path)
		c->req_len = (size_t)snprintf(c->req, sizeof(c->req),
		                              "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: "
		                              "dyno-router-health\r\nConnection: close\r\n\r\n",
		                              c->b->health_path, c->b->health_host);
	if (connect(fd, (struct sockaddr *)&c->b->sa, c->b->sa_len) < 0 && errno != EINPROGRESS) {
		char why[160];
		snprintf(why, sizeof(why), "connect: %s", strerror(errno));
		check_done(c, false, why);
		return;
	}
	if (loop_io_set(loop, &c->io, LOOP_WRITE, NULL) < 0) {
		check_done(c, false, "cannot poll");
		return;
	}
	loop_timer_start(loop, t, ctx->timeout, NULL);
}

int hc_start(struct hc_ctx *ctx, struct route_backend *b)
{
	if (b->hc != NULL || ctx->interval == 0)
		return 0;
	struct hc_check *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	c->ctx = ctx;
	c->b = b;
	c->io.fd = -1;
	c->ok = ctx->rise;
	route_backend_ref(b);
	b->hc = c;
	loop_timer_init(&c->timer, on_timer);
	/* spread the first checks over the interval */
	uint64_t first = ctx->interval / 2 + (uint64_t)(rand() % 1000) * ctx->interval / 2000;
	return loop_timer_start(ctx->loop, &c->timer, first, NULL);
}

void hc_stop(struct hc_ctx *ctx, struct route_backend *b)
{
	struct hc_check *c = b->hc;
	if (c == NULL)
		return;
	check_close(c);
	loop_timer_stop(ctx->loop, &c->timer);
	b->hc = NULL;
	free(c);
	route_backend_unref(b);
}

void hc_passive_fail(struct hc_ctx *ctx, struct route_backend *b, const char *reason)
{
	if (b->hc) {
		b->hc->ok = 0;
		if (b->hc->ko < ctx->fall)
			b->hc->ko = ctx->fall;
	}
	char why[200];
	snprintf(why, sizeof(why), "passive: %s", reason);
	/* without active checks nothing would bring it back: the 5 s skip
	 * of the balancer is the only penalty then */
	if (b->hc)
		hc_set_state(ctx, b, false, why);
}
