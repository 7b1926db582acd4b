#include "router/client.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/http-response.h"
#include "common/macro.h"
#include "router/pump.h"
#include "router/rlog.h"

const char *client_state_str(enum client_state s)
{
	switch (s) {
	case CLIENT_HEAD:
		return "head";
	case CLIENT_PROXY:
		return "proxy";
	case CLIENT_TUNNEL:
		return "tunnel";
	case CLIENT_ERROR:
		return "error";
	case CLIENT_LINGER:
		return "linger";
	}
	return "?";
}

static void slice_copy(char *dst, size_t cap, struct h1_slice s)
{
	size_t n = MIN(s.len, cap - 1);
	memcpy(dst, s.p, n);
	dst[n] = '\0';
}

/* ---- logging ---- */

void client_log(struct client *c, enum hk_code code, const char *desc)
{
	struct client_req *r = &c->req;
	struct proxy *px = c->px;
	if (r->logged)
		return;
	r->logged = true;
	uint64_t now = loop_now(px->loop);
	uint64_t connect = 0, service = 0;
	if (r->connected_at) {
		connect = r->connected_at - r->connect_at;
		service = now - r->connected_at;
	}
	struct rlog_entry e = {
	    .code = code,
	    .desc = desc,
	    .method = r->method,
	    .path = r->path,
	    .host = r->host,
	    .request_id = r->request_id,
	    .fwd = r->fwd[0] ? r->fwd : c->ip,
	    .dyno = r->dyno,
	    .connect_ms = connect / 1000,
	    .service_ms = service / 1000,
	    .status = r->status,
	    .bytes = r->bytes,
	};
	char msg[2048];
	rlog_format_entry(msg, sizeof(msg), &e);
	rlog_emit(px->log, r->app[0] ? r->app : NULL, msg);
	metrics_request(&px->metrics, r->status, code, now - r->start);
}

/* ---- lifetime ---- */

static void reap(struct loop_deferred *d)
{
	struct client *c = loop_container_of(d, struct client, conn.reap);
	buf_free(&c->in);
	buf_free(&c->out);
	buf_free(&c->held);
	free(c);
}

void client_close(struct client *c)
{
	struct proxy *px = c->px;
	if (c->conn.closed)
		return;
	bal_queue_remove(&c->wait);
	fair_leave(&px->fair, c->app_slot);
	c->app_slot = NULL;
	upstream_close(c->up);
	dy_conn_close(px->loop, &px->clients, &c->conn);
	px->metrics.open_clients = px->clients.n;
	if (px->shutting_down && px->clients.n == 0)
		loop_stop(px->loop);
}

/* Answers the request with a router response (or closes when its head
 * went out already), logs it with code/desc, and closes afterwards. */
static void answer(struct client *c, int status, enum hk_code code, const char *desc)
{
	struct client_req *r = &c->req;
	bal_queue_remove(&c->wait);
	upstream_close(c->up);
	r->status = status;
	if (r->resp_started || status == 499) {
		/* the dyno's head went out already, or the client is gone:
		 * all we can do is close */
		client_log(c, code, desc);
		client_close(c);
		return;
	}
	c->closing = true;
	const char *body = "No such app\n";
	char text[64];
	if (code == HK_H80) {
		/* as Heroku's page: the app is offline on purpose, not broken */
		body = "Offline for maintenance\n";
	} else if (code != HK_NONE) {
		body = "Application error\n";
	} else if (status != 404) {
		snprintf(text, sizeof(text), "%s\n", http_reason(status));
		body = text;
	}
	struct http_head h = {
	    .status = status,
	    .type = "text/plain",
	    .length = strlen(body),
	    .close = true,
	    .request_id = r->request_id,
	};
	buf_clear(&c->out);
	ssize_t n = http_response_append(&c->out, &h, body, r->method_id == H1_METHOD_HEAD);
	r->bytes = (uint64_t)MAX(n, (ssize_t)0);
	client_log(c, code, desc);
	c->state = CLIENT_ERROR;
	/* bound the time spent writing the answer to a slow client */
	c->last_active = loop_now(c->px->loop);
	loop_timer_start(c->px->loop, &c->conn.timer, c->px->cfg.head_timeout, NULL);
}

void client_fail(struct client *c, enum hk_code code)
{
	assert(hk_code(code)->status > 0);
	answer(c, hk_code(code)->status, code, NULL);
}

void client_reject(struct client *c, int status, const char *desc)
{
	answer(c, status, HK_NONE, desc);
}

static void wait_head(struct client *c)
{
	struct proxy *px = c->px;
	memset(&c->req, 0, sizeof(c->req));
	c->state = CLIENT_HEAD;
	c->in_request = false;
	h1_parser_init(&c->parser, NULL, px->headers, CLIENT_MAX_HEADERS);
	c->last_active = c->wait_start = loop_now(px->loop);
	/* the earlier of the two deadlines on_timer() checks */
	loop_timer_start(px->loop, &c->conn.timer, MIN(px->cfg.head_timeout, px->cfg.idle_timeout),
	                 NULL);
}

/* ---- routing ---- */

static void no_backend(struct client *c)
{
	struct client_req *r = &c->req;
	client_fail(c, r->ntried > 0 && r->last_timeout ? HK_H19 : HK_H21);
}

/* Every usable dyno of app is at its bound: the request waits in the
 * shortest queue, or gets H11 when they are full. The client's timer (idle
 * outside CLIENT_HEAD) bounds the wait: router.timeouts.connect from the
 * first time the request was queued, then H11 too (on_timer()). */
static void wait_backend(struct client *c, const struct route_app *app, uint64_t now)
{
	struct proxy *px = c->px;
	struct client_req *r = &c->req;
	struct route_backend *b =
	    bal_queue_pick(app, now, r->tried, r->ntried, px->cfg.queue_per_dyno);
	if (b == NULL) {
		answer(c, 503, HK_H11, "Backlog too deep: every dyno busy, its queue full");
		return;
	}
	bal_queue_push(b, &c->wait);
	if (r->queued_at == 0)
		r->queued_at = now;
	loop_timer_start_at(px->loop, &c->conn.timer, r->queued_at + px->cfg.connect_timeout, NULL);
}

/* Finds a backend for the request and an upstream to it: a pooled one, or a
 * new connect. Connect failures skip the dyno and try the next. A dyno at
 * router.max_inflight_per_dyno is left out; when all are, the request
 * waits (wait_backend()): c->up stays NULL, c->wait.be is set. */
static void connect_backend(struct client *c)
{
	struct proxy *px = c->px;
	struct client_req *r = &c->req;
	uint64_t now = loop_now(px->loop);
	while (r->ntried < CLIENT_MAX_TRIES) {
		struct route_app *app = route_lookup(px->table, r->host, strlen(r->host));
		if (app == NULL || app->state != ROUTE_UP)
			break;
		bool busy;
		struct route_backend *b = bal_pick(app, now, r->tried, r->ntried,
		                                   px->cfg.max_inflight_per_dyno, &px->rng, &busy);
		if (b == NULL) {
			if (busy) {
				wait_backend(c, app, now);
				return;
			}
			break;
		}
		r->tried[r->ntried++] = b;
		snprintf(r->dyno, sizeof(r->dyno), "%s", b->dyno);
		r->connect_at = now;
		struct upstream *u = upstream_take(&px->pool, b);
		if (u == NULL) {
			bool refused;
			int e = upstream_connect(&px->pool, b, &u, &refused);
			if (e < 0 && refused) {
				char why[128];
				snprintf(why, sizeof(why), "connect: %s", strerror(-e));
				bal_skip(b, now);
				hc_passive_fail(&px->hc, b, why);
				r->last_timeout = false;
				continue;
			}
			if (e == -ENOMEM) {
				client_reject(c, 503, "Out of memory");
				return;
			}
			if (e < 0) {
				client_fail(c, HK_H21);
				return;
			}
		}
		upstream_attach(u, c, &c->up);
		if (u->state == UPSTREAM_ACTIVE) {
			r->connected_at = now;
			u->last_active = now;
			loop_timer_start(px->loop, &u->timer, px->cfg.first_byte_timeout, NULL);
		} else {
			loop_timer_start(px->loop, &u->timer, px->cfg.connect_timeout, NULL);
		}
		return;
	}
	no_backend(c);
}

void client_retry(struct client *c, bool connect_failed, bool timeout, const char *why)
{
	struct proxy *px = c->px;
	struct upstream *u = c->up;
	struct client_req *r = &c->req;
	struct route_backend *b = u->be;
	bool reused = u->reused;
	/* the head, kept whole in u->out (pump_request() only moves its
	 * start), goes on to the next upstream without a copy */
	struct buf head = u->out;
	u->out = (struct buf){0};
	if (connect_failed) {
		bal_skip(b, loop_now(px->loop));
		hc_passive_fail(&px->hc, b, why);
	}
	upstream_close(u);
	r->last_timeout = timeout;
	r->connected_at = 0;
	if (reused && r->ntried > 0) {
		/* a stale pooled connection is not the dyno's fault: the same
		 * dyno may be tried again on a new connection */
		r->ntried--;
	}
	head.start = 0;
	connect_backend(c);
	if (c->up && !c->conn.closed) {
		buf_free(&c->up->out);
		c->up->out = head;
	} else if (c->wait.be && !c->conn.closed) {
		buf_free(&c->held);
		c->held = head;
	} else {
		buf_free(&head);
	}
}

void client_wake(struct client *c)
{
	if (c->conn.closed || c->state != CLIENT_PROXY || c->up != NULL)
		return;
	connect_backend(c);
	if (c->conn.closed)
		return;
	if (c->up) {
		/* the head that waited goes to the dyno */
		buf_free(&c->up->out);
		c->up->out = c->held;
		c->held = (struct buf){0};
	}
	client_run(c);
}

/* The head is complete and valid: note what the log needs, route it. */
static void begin(struct client *c, const struct h1_request *hr)
{
	struct proxy *px = c->px;
	struct client_req *r = &c->req;
	slice_copy(r->method, sizeof(r->method), hr->method);
	slice_copy(r->path, sizeof(r->path), hr->target);
	slice_copy(r->host, sizeof(r->host), hr->host);
	r->method_id = hr->method_id;
	r->minor0 = hr->minor == 0;
	r->keep_alive = hr->keep_alive;
	r->upgrade = hr->upgrade;
	r->expect = hr->expect_continue;
	r->idempotent = hr->method_id == H1_METHOD_GET || hr->method_id == H1_METHOD_HEAD ||
	                hr->method_id == H1_METHOD_PUT || hr->method_id == H1_METHOD_DELETE ||
	                hr->method_id == H1_METHOD_OPTIONS || hr->method_id == H1_METHOD_TRACE;
	r->body = hr->body;
	r->body_left = hr->body == H1_BODY_LENGTH ? (uint64_t)hr->content_length : 0;
	if (hr->body == H1_BODY_CHUNKED)
		h1_chunked_init(&r->chunk, NULL);
	r->body_done =
	    hr->body == H1_BODY_NONE || (hr->body == H1_BODY_LENGTH && hr->content_length == 0);
	if (!hr->keep_alive || px->shutting_down)
		c->closing = true;

	const struct h1_header *rid =
	    h1_header_find(hr->headers, hr->nheaders, "x-request-id", NULL);
	if (rid && hdr_request_id_valid(rid->value.p, rid->value.len))
		slice_copy(r->request_id, sizeof(r->request_id), rid->value);
	else
		hdr_uuid_format(bal_next(&px->rng), bal_next(&px->rng), r->request_id);

	struct route_app *app = route_lookup(px->table, hr->host.p, hr->host.len);
	if (app == NULL) {
		client_reject(c, 404, "No such app");
		return;
	}
	snprintf(r->app, sizeof(r->app), "%s", app->name);
	r->keepalive_app = app->keepalive;
	/* the connection counts against the app of its latest request */
	bool joined = false;
	if (c->app_slot == NULL || strcmp(c->app_slot->name, app->name) != 0) {
		joined = true;
		fair_leave(&px->fair, c->app_slot);
		c->app_slot = fair_join(&px->fair, app->name);
		if (c->app_slot == NULL) {
			client_reject(c, 503, "Out of memory");
			return;
		}
	}
	switch (app->state) {
	case ROUTE_CRASHED:
		client_fail(c, HK_H10);
		return;
	case ROUTE_NO_WEB:
		client_fail(c, HK_H14);
		return;
	case ROUTE_MAINTENANCE:
		client_fail(c, HK_H80);
		return;
	case ROUTE_UP:
		break;
	}
	bool any = false;
	for (size_t i = 0; i < app->nbackends; i++)
		if (!app->backends[i]->draining)
			any = true;
	if (!any) {
		client_fail(c, HK_H14);
		return;
	}
	if (fair_refuse(&px->fair, c->app_slot, joined, proxy_fds_open(px))) {
		/* before any byte goes to a dyno: the app's own bound, or its
		 * share of the fds while they are short */
		answer(c, 503, HK_H11,
		       joined && c->app_slot->conns > px->fair.max_app
		           ? "Backlog too deep: too many connections for the app"
		           : "Backlog too deep: file descriptors low, the app over its share");
		return;
	}

	/* the head for the dyno, built in the scratch buffer and copied to
	 * the upstream's buffer below (a retry moves it on from there) */
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	struct hdr_request_info info = {
	    .client_ip = c->ip,
	    .port = c->port,
	    .start_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000,
	    .request_id = r->request_id,
	    .close = !app->keepalive,
	};
	ssize_t n =
	    hdr_build_request(hr, &info, px->scratch, sizeof(px->scratch), r->fwd, sizeof(r->fwd));
	if (n < 0) {
		client_reject(c, 431, "Request head too large");
		return;
	}
	buf_consume(&c->in, hr->head_len);
	c->state = CLIENT_PROXY;
	/* the head timer is left running: it is moved for the next head,
	 * and ignored outside CLIENT_HEAD, which saves two heap operations */
	if (r->expect) {
		/* RFC 9110 10.1.1: the router answers 100-continue itself */
		buf_append(&c->out, HTTP_100_CONTINUE, sizeof(HTTP_100_CONTINUE) - 1, SIZE_MAX);
	}
	connect_backend(c);
	if (c->conn.closed || c->state != CLIENT_PROXY)
		return;
	if (c->up == NULL) {
		/* queued for a dyno: the head waits with the request */
		buf_clear(&c->held);
		if (c->wait.be && buf_append(&c->held, px->scratch, (size_t)n, SIZE_MAX) < 0)
			client_reject(c, 503, "Out of memory");
		return;
	}
	/* the head goes to the upstream's buffer (a pooled one reuses its
	 * memory); a retry moves it to the next upstream */
	buf_clear(&c->up->out);
	if (buf_append(&c->up->out, px->scratch, (size_t)n, SIZE_MAX) < 0)
		client_reject(c, 503, "Out of memory");
}

/* The response is out: log, hand the upstream back, go on with the next
 * request. Returns false when c was closed. */
static bool finish(struct client *c)
{
	struct client_req *r = &c->req;
	client_log(c, HK_NONE, NULL);
	if (c->up) {
		bool keep = r->up_keep && r->body_done && !c->up->wr_shut;
		upstream_release(c->up, keep);
	}
	if (!r->body_done)
		c->closing = true;
	if (c->rd_eof && buf_len(&c->in) == 0) {
		client_close(c);
		return false;
	}
	if (c->closing) {
		/* through CLIENT_ERROR with nothing to write: shut down our
		 * side and drain what the client still sends (lingering close) */
		c->state = CLIENT_ERROR;
		return true;
	}
	wait_head(c);
	return true;
}

/* ---- the state machine ---- */

static void set_interest(struct client *c)
{
	struct proxy *px = c->px;
	struct upstream *u = c->up;
	uint32_t ci = 0, ui = 0;
	bool in_room = buf_can_take(&c->in, c->state == CLIENT_HEAD ? CLIENT_BUF_MAX : BUF_START);
	if (!c->rd_eof && in_room && c->state != CLIENT_ERROR)
		ci |= LOOP_READ;
	if (c->wblocked)
		ci |= LOOP_WRITE;
	if (u) {
		bool u_room = buf_can_take(&u->in, c->req.resp_started ? 0 : CLIENT_BUF_MAX);
		if (u->state == UPSTREAM_CONNECTING)
			ui = LOOP_WRITE;
		else {
			if (!u->rd_eof && u_room)
				ui |= LOOP_READ;
			if (u->wblocked)
				ui |= LOOP_WRITE;
		}
		loop_io_set(px->loop, &u->io, ui, NULL);
	}
	loop_io_set(px->loop, &c->conn.io, ci, NULL);
}

/* CLIENT_HEAD: parses what came of a head. Returns false when c waits or
 * is closed, true to go round again. */
static bool read_head(struct client *c)
{
	struct proxy *px = c->px;
	size_t len = buf_len(&c->in);
	if (len == 0) {
		if (c->rd_eof || px->shutting_down)
			client_close(c);
		return false;
	}
	if (!c->in_request) {
		c->in_request = true;
		c->req.start = loop_now(px->loop);
	}
	struct h1_request hr;
	int n = h1_parse_request(&c->parser, buf_data(&c->in), len, &hr);
	if (n < 0) {
		int status = h1_error_status(n);
		snprintf(c->req.method, sizeof(c->req.method), "-");
		char desc[128];
		snprintf(desc, sizeof(desc), "Bad request: %s", h1_strerror(n));
		if (status == 0) {
			c->req.status = 400;
			client_log(c, HK_NONE, desc);
			client_close(c);
			return false;
		}
		client_reject(c, status, desc);
		return true;
	}
	if (n == 0) {
		if (c->rd_eof)
			client_close(c);
		return false;
	}
	begin(c, &hr);
	return true;
}

void client_run(struct client *c)
{
	struct proxy *px = c->px;
	for (int round = 0; round < 64 && !c->conn.closed; round++) {
		switch (c->state) {
		case CLIENT_HEAD:
			if (!read_head(c))
				goto done;
			continue;
		case CLIENT_PROXY:
			if (!pump_request(c) || c->state != CLIENT_PROXY)
				continue;
			if (!pump_response(c) || c->state != CLIENT_PROXY)
				continue;
			if (c->req.resp_done && buf_len(&c->out) == 0) {
				if (!finish(c))
					return;
				continue;
			}
			goto done;
		case CLIENT_TUNNEL:
			if (!pump_tunnel(c))
				continue;
			goto done;
		case CLIENT_ERROR:
			if (!pump_flush(c))
				continue;
			if (buf_len(&c->out) == 0) {
				/* answered: close our side, then read until the
				 * client closes, since closing with unread bytes
				 * would send a reset that can destroy the answer
				 * (RFC 9112 9.6, "lingering close") */
				shutdown(c->conn.io.fd, SHUT_WR);
				c->state = CLIENT_LINGER;
				buf_clear(&c->in);
				loop_timer_start(px->loop, &c->conn.timer, px->cfg.head_timeout,
				                 NULL);
			}
			goto done;
		case CLIENT_LINGER:
			buf_clear(&c->in);
			if (c->rd_eof) {
				client_close(c);
				return;
			}
			goto done;
		}
	}
done:
	if (!c->conn.closed)
		set_interest(c);
}

/* ---- callbacks ---- */

static void on_io(struct loop *loop, struct loop_io *io, uint32_t events)
{
	struct client *c = loop_container_of(io, struct client, conn.io);
	if (c->conn.closed)
		return;
	if (events & LOOP_WRITE)
		c->wblocked = false;
	if (events & LOOP_READ) {
		size_t max =
		    c->state == CLIENT_HEAD ? CLIENT_BUF_MAX : (c->in.cap ? c->in.cap : BUF_START);
		ssize_t r = buf_recv(&c->in, io->fd, max);
		if (r > 0) {
			c->last_active = loop_now(loop);
		} else if (r == 0) {
			c->rd_eof = true;
		} else if (r != -EAGAIN && r != -ENOBUFS) {
			/* reset by the client */
			if (c->state == CLIENT_PROXY && !c->req.logged)
				client_fail(c, HK_H27);
			else
				client_close(c);
			return;
		}
	}
	client_run(c);
}

void client_upstream_io(struct upstream *u, uint32_t events)
{
	struct client *c = u->owner;
	struct proxy *px = c->px;
	struct client_req *r = &c->req;
	if (u->state == UPSTREAM_CONNECTING) {
		int e = upstream_connected(u);
		if (e < 0) {
			char why[128];
			snprintf(why, sizeof(why), "connect: %s", strerror(-e));
			client_retry(c, true, false, why);
			if (!c->conn.closed)
				client_run(c);
			return;
		}
		r->connected_at = loop_now(px->loop);
		u->last_active = r->connected_at;
		loop_timer_start(px->loop, &u->timer, px->cfg.first_byte_timeout, NULL);
		events = LOOP_WRITE;
	}
	if (events & LOOP_WRITE)
		u->wblocked = false;
	if (events & LOOP_READ) {
		/* a long body gets larger reads once the buffer is drained (no
		 * copy then); a failed growth reads as before */
		if (r->resp_started && c->state != CLIENT_TUNNEL &&
		    r->resp_body == H1_BODY_LENGTH && r->resp_left > BUF_START &&
		    buf_len(&u->in) == 0)
			(void)buf_grow(&u->in, CLIENT_BODY_READ);
		size_t max = r->resp_started && c->state != CLIENT_TUNNEL
		                 ? (u->in.cap ? u->in.cap : BUF_START)
		                 : CLIENT_BUF_MAX;
		ssize_t n = buf_recv(&u->in, u->io.fd, max);
		if (n > 0) {
			if (!r->got_any) {
				r->got_any = true;
				/* the timer turns into the idle window, checked
				 * lazily against last_active when it fires */
				if (px->cfg.first_byte_timeout > px->cfg.idle_timeout)
					loop_timer_start(px->loop, &u->timer, px->cfg.idle_timeout,
					                 NULL);
			}
			u->last_active = loop_now(px->loop);
		} else if (n != -EAGAIN && n != -ENOBUFS) {
			u->rd_eof = true; /* closed or reset */
		}
	}
	client_run(c);
}

void client_upstream_timer(struct upstream *u)
{
	struct client *c = u->owner;
	struct proxy *px = c->px;
	struct loop *loop = px->loop;
	uint64_t now = loop_now(loop);
	struct client_req *r = &c->req;
	if (u->state == UPSTREAM_CONNECTING) {
		client_retry(c, true, true, "connect timed out");
		if (!c->conn.closed)
			client_run(c);
		return;
	}
	if (!r->got_any) {
		if (!r->body_done && now - u->last_active < px->cfg.first_byte_timeout) {
			loop_timer_start_at(loop, &u->timer,
			                    u->last_active + px->cfg.first_byte_timeout, NULL);
			return;
		}
		client_fail(c, r->body_done ? HK_H12 : HK_H28);
		if (!c->conn.closed)
			client_run(c);
		return;
	}
	uint64_t last = MAX(u->last_active, c->last_active);
	if (now - last < px->cfg.idle_timeout) {
		loop_timer_start_at(loop, &u->timer, last + px->cfg.idle_timeout, NULL);
		return;
	}
	if (c->state == CLIENT_TUNNEL) {
		client_close(c);
		return;
	}
	client_fail(c, HK_H15);
	if (!c->conn.closed)
		client_run(c);
}

static void on_timer(struct loop *loop, struct loop_timer *t)
{
	struct client *c = loop_container_of(t, struct client, conn.timer);
	if (c->state == CLIENT_ERROR || c->state == CLIENT_LINGER) {
		client_close(c);
		return;
	}
	if (c->wait.be != NULL) {
		/* queued for a dyno: router.timeouts.connect at most */
		uint64_t deadline = c->req.queued_at + c->px->cfg.connect_timeout;
		if (loop_now(loop) < deadline) {
			loop_timer_start_at(loop, t, deadline, NULL);
			return;
		}
		answer(c, 503, HK_H11, "Backlog too deep: no dyno freed in time");
		if (!c->conn.closed)
			client_run(c);
		return;
	}
	if (c->state != CLIENT_HEAD)
		return;
	/* One timer, checked lazily: an idle connection (no byte of a head
	 * yet) may wait the idle timeout, a head must be complete within
	 * request_head of its first byte (slowloris). */
	struct proxy *px = c->px;
	uint64_t now = loop_now(loop);
	if (!c->in_request) {
		uint64_t deadline = c->wait_start + px->cfg.idle_timeout;
		/* an idle keep-alive connection gives its buffers back until
		 * its next request: many idle clients cost little memory */
		if (buf_len(&c->in) == 0)
			buf_free(&c->in);
		if (buf_len(&c->out) == 0)
			buf_free(&c->out);
		if (now < deadline) {
			loop_timer_start_at(loop, t, deadline, NULL);
			return;
		}
		client_close(c); /* an idle keep-alive connection: quietly */
		return;
	}
	uint64_t deadline = c->req.start + px->cfg.head_timeout;
	if (now < deadline) {
		loop_timer_start_at(loop, t, deadline, NULL);
		return;
	}
	snprintf(c->req.method, sizeof(c->req.method), "-");
	client_reject(c, 408, "Request head timeout");
	if (!c->conn.closed)
		client_run(c);
}

void client_accept(struct proxy *px, int fd, const struct sockaddr *peer, unsigned listen_port)
{
	struct client *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		close(fd);
		return;
	}
	c->px = px;
	c->port = listen_port;
	if (peer->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)peer)->sin_addr, c->ip,
		          sizeof(c->ip));
	else if (peer->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)peer)->sin6_addr, c->ip,
		          sizeof(c->ip));
	else
		snprintf(c->ip, sizeof(c->ip), "unknown");
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	dy_conn_init(&c->conn, fd, on_io, on_timer, reap);
	px->metrics.accepted++;
	wait_head(c);
	if (dy_conn_start(px->loop, &px->clients, &c->conn, 0) == 0)
		px->metrics.open_clients = px->clients.n;
}
