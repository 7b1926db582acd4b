/* /metrics over HTTP/1.1 on the admin listener. */
#include "router/admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/conn.h"
#include "common/http-response.h"
#include "common/http1.h"
#include "common/loop.h"
#include "router/metrics.h"
#include "router/proxy.h"

#define ADMIN_TIMEOUT_USEC (5ull * 1000 * 1000)
#define ADMIN_IN_MAX       8192

struct admin_conn {
	struct admin *admin;
	struct dy_conn conn;
	bool answered;  /* the response is in out */
	struct buf in;  /* the request head, ADMIN_IN_MAX bytes at most */
	struct buf out; /* the response, then close */
	struct h1_parser parser;
	struct h1_header headers[64];
};

struct admin {
	struct loop *loop;
	struct proxy *px;
	struct rlog *log;
	struct dy_conn_list conns;
};

int admin_new(struct loop *loop, struct proxy *px, struct rlog *l, struct admin **ret,
              struct dy_error **err)
{
	struct admin *a = calloc(1, sizeof(*a));
	if (a == NULL)
		return dy_error_errno(err, ENOMEM, "admin");
	a->loop = loop;
	a->px = px;
	a->log = l;
	*ret = a;
	return 0;
}

static void conn_free_deferred(struct loop_deferred *d)
{
	struct admin_conn *c = loop_container_of(d, struct admin_conn, conn.reap);
	buf_free(&c->in);
	buf_free(&c->out);
	free(c);
}

static void conn_close(struct admin_conn *c)
{
	dy_conn_close(c->admin->loop, &c->admin->conns, &c->conn);
}

static void respond(struct admin_conn *c, int status, const char *type, const char *body,
                    size_t len, bool head_only)
{
	struct http_head h = {.status = status, .type = type, .length = len, .close = true};
	http_response_append(&c->out, &h, body, head_only);
}

static void on_io(struct loop *loop, struct loop_io *io, uint32_t events)
{
	struct admin_conn *c = loop_container_of(io, struct admin_conn, conn.io);
	struct admin *a = c->admin;
	if (!c->answered) {
		ssize_t r = buf_recv(&c->in, io->fd, ADMIN_IN_MAX);
		if (r == -EAGAIN)
			return;
		if (r <= 0 && r != -ENOBUFS) {
			conn_close(c);
			return;
		}
		struct h1_request req;
		int n = h1_parse_request(&c->parser, buf_data(&c->in), buf_len(&c->in), &req);
		if (n == 0 && buf_len(&c->in) == ADMIN_IN_MAX)
			n = H1_E_HEAD_TOO_LARGE;
		if (n == 0)
			return;
		if (n < 0) {
			respond(c, 400, "text/plain", "bad request\n", 12, false);
		} else if (req.method_id != H1_METHOD_GET && req.method_id != H1_METHOD_HEAD) {
			respond(c, 405, "text/plain", "GET only\n", 9, false);
		} else if (h1_slice_eq_ci(req.target, "/metrics")) {
			char *body = NULL;
			size_t len = 0;
			if (metrics_render(proxy_metrics(a->px), proxy_table(a->px), a->log, &body,
			                   &len) < 0) {
				conn_close(c);
				return;
			}
			respond(c, 200, "text/plain; version=0.0.4", body, len,
			        req.method_id == H1_METHOD_HEAD);
			free(body);
		} else if (h1_slice_eq_ci(req.target, "/health")) {
			respond(c, 200, "text/plain", "ok\n", 3, req.method_id == H1_METHOD_HEAD);
		} else {
			respond(c, 404, "text/plain", "not found\n", 10, false);
		}
		if (buf_len(&c->out) == 0) {
			conn_close(c); /* out of memory */
			return;
		}
		c->answered = true;
		loop_io_set(loop, io, LOOP_WRITE, NULL);
	}
	bool blocked = false;
	while (buf_len(&c->out) > 0 && !blocked)
		if (buf_flush(&c->out, io->fd, &blocked) < 0)
			break;
	if (blocked && buf_len(&c->out) > 0)
		return;
	conn_close(c);
}

static void on_timer(struct loop *loop, struct loop_timer *t)
{
	conn_close(loop_container_of(t, struct admin_conn, conn.timer));
}

void admin_accept(void *data, int fd, const struct sockaddr *peer, unsigned port)
{
	struct admin *a = data;
	struct admin_conn *c = calloc(1, sizeof(*c));
	if (c == NULL) {
		close(fd);
		return;
	}
	c->admin = a;
	h1_parser_init(&c->parser, NULL, c->headers, 64);
	dy_conn_init(&c->conn, fd, on_io, on_timer, conn_free_deferred);
	dy_conn_start(a->loop, &a->conns, &c->conn, ADMIN_TIMEOUT_USEC);
}

void admin_free(struct admin *a)
{
	if (a == NULL)
		return;
	while (a->conns.head)
		conn_close(loop_container_of(a->conns.head, struct admin_conn, conn));
	free(a);
}
