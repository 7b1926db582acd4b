/* Client and upstream connection state machines of dyno-router.
 *
 * One client connection carries one request at a time; bytes of pipelined
 * requests wait in its input buffer until the response before them is
 * complete, so responses go out in order. Bodies stream through bounded
 * buffers: bytes are written from one side's input buffer straight to the
 * other side's socket, and a side is only read while its buffer has room.
 * All progress of a client and its upstream happens in conn_run(), called
 * after any event on either socket; it ends by setting the epoll interest
 * of both. Objects are freed after the dispatch round (loop_defer), never
 * inside their own callbacks. */
#include "router/proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/http1.h"
#include "common/loop.h"
#include "router/balancer.h"
#include "router/headers.h"
#include "router/rlog.h"

#define BUF_START   16384
#define BUF_MAX     (65536 + 4096) /* a whole head (64 KiB) fits */
#define OUT_MAX     (65536 + 8192)
#define MAX_TRIES   8
#define POOL_MAX    512 /* idle connections kept per backend */
#define PATH_LOG    1024
#define MAX_HEADERS 1000

struct pbuf {
	char *p;
	size_t start, end, cap;
};

static size_t pb_len(const struct pbuf *b)
{
	return b->end - b->start;
}

static char *pb_data(const struct pbuf *b)
{
	return b->p + b->start;
}

static void pb_consume(struct pbuf *b, size_t n)
{
	b->start += n;
	if (b->start == b->end)
		b->start = b->end = 0;
}

/* Room for at least one byte at the end, compacting, then growing up to
 * max. Returns the room (0: full). */
static size_t pb_room(struct pbuf *b, size_t max)
{
	if (b->p == NULL) {
		b->cap = BUF_START < max ? BUF_START : max;
		b->p = malloc(b->cap);
		if (b->p == NULL) {
			b->cap = 0;
			return 0;
		}
	}
	if (b->end == b->cap && b->start > 0) {
		memmove(b->p, b->p + b->start, b->end - b->start);
		b->end -= b->start;
		b->start = 0;
	}
	if (b->end == b->cap && b->cap < max) {
		size_t ncap = b->cap * 2 < max ? b->cap * 2 : max;
		char *np = realloc(b->p, ncap);
		if (np != NULL) {
			b->p = np;
			b->cap = ncap;
		}
	}
	return b->cap - b->end;
}

static bool pb_append(struct pbuf *b, const char *s, size_t n)
{
	if (b->cap - b->end < n && b->start > 0) {
		memmove(b->p, b->p + b->start, b->end - b->start);
		b->end -= b->start;
		b->start = 0;
	}
	if (b->cap - b->end < n) {
		size_t ncap = b->end + n < 4096 ? 4096 : b->end + n;
		char *np = realloc(b->p, ncap);
		if (np == NULL)
			return false;
		b->p = np;
		b->cap = ncap;
	}
	memcpy(b->p + b->end, s, n);
	b->end += n;
	return true;
}

static void pb_free(struct pbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

enum pc_state {
	PC_HEAD = 0, /* waiting for / reading a request head */
	PC_PROXY,    /* a request is being served by a dyno */
	PC_TUNNEL,   /* after 101: bytes both ways */
	PC_ERROR,    /* writing a router answer, then close */
	PC_LINGER,   /* answered and shut down: reading what the client still sends */
};

enum pu_state {
	PU_CONNECTING = 0,
	PU_ACTIVE,
	PU_IDLE, /* in its backend's pool */
};

struct proxy_client;

struct proxy_upstream {
	struct proxy *px;
	struct proxy_upstream *prev, *next; /* all upstreams */
	struct proxy_upstream *pool_next;
	struct loop_io io;
	struct loop_timer timer;
	struct loop_deferred reap;
	enum pu_state state;
	struct route_backend *be; /* referenced */
	struct proxy_client *client;
	struct pbuf in, out;
	bool wblocked; /* last write hit EAGAIN: wait for LOOP_WRITE */
	bool rd_eof;
	bool wr_shut;
	bool reused;
	bool dead;
	uint64_t last_active;
};

struct proxy_req {
	uint64_t start;        /* monotonic us: first byte of the head */
	uint64_t connect_at;   /* monotonic us: connect started */
	uint64_t connected_at; /* monotonic us: connected */
	char method[24];
	char path[PATH_LOG];
	char host[256];
	char request_id[HDR_REQUEST_ID_MAX + 1];
	char fwd[HDR_FWD_MAX];
	char app[64];
	char dyno[32];
	enum h1_method method_id;
	bool minor0;
	bool keep_alive;
	bool upgrade;
	bool idempotent;
	bool expect;
	bool keepalive_app;
	/* request body */
	enum h1_body body;
	uint64_t body_left;
	uint64_t body_sent;
	struct h1_chunked chunk;
	size_t body_ready; /* bytes at the head of c->in validated, not yet sent */
	bool body_done;
	bool req_sent; /* head and body written to the dyno */
	/* tries */
	struct route_backend *tried[MAX_TRIES];
	size_t ntried;
	bool last_timeout;
	/* response */
	bool resp_started; /* head queued to the client */
	bool got_any;      /* a byte came from the dyno */
	int status;
	enum h1_body resp_body;
	uint64_t resp_left;
	struct h1_chunked resp_chunk;
	size_t resp_ready;
	bool dechunk;
	bool resp_done;
	bool up_keep; /* the dyno connection may be pooled afterwards */
	uint64_t bytes;
	bool logged;
};

struct proxy_client {
	struct proxy *px;
	struct proxy_client *prev, *next;
	struct loop_io io;
	struct loop_timer timer;
	struct loop_deferred reap;
	enum pc_state state;
	struct pbuf in, out;
	struct h1_parser parser;
	char ip[INET6_ADDRSTRLEN];
	unsigned port;
	bool rd_eof;
	bool wblocked;
	bool closing; /* close once the current response is out */
	bool dead;
	bool in_request;     /* bytes of a head arrived */
	uint64_t wait_start; /* monotonic us: waiting for a head since */
	uint64_t last_active;
	struct proxy_upstream *up;
	struct proxy_req req;
};

struct proxy {
	struct loop *loop;
	struct proxy_config cfg;
	struct route_table *table;
	struct route_hooks hooks;
	struct metrics metrics;
	struct rlog *log;
	struct hc_ctx hc;
	struct bal_rng rng;
	struct proxy_client *clients;
	struct proxy_upstream *upstreams;
	size_t nclients;
	bool shutting_down;
	struct h1_header headers[MAX_HEADERS]; /* scratch: heads are used at once */
	char scratch[OUT_MAX];
};

static void conn_run(struct proxy_client *c);
static void upstream_close(struct proxy_upstream *u);
static void client_connect(struct proxy_client *c);

/* ---- small helpers ---- */

static void set_nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Writes up to n bytes; returns bytes written (0 with *blocked on EAGAIN)
 * or -1 on an error (errno set). */
static ssize_t xsend(int fd, const char *p, size_t n, bool *blocked)
{
	for (;;) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w >= 0) {
			if ((size_t)w < n)
				*blocked = true;
			return w;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			*blocked = true;
			return 0;
		}
		return -1;
	}
}

/* As xsend() with the n1 bytes at p1 then the n2 at p2, in one sendmsg,
 * so that a head and the body after it leave in one segment. */
static ssize_t xsend2(int fd, const char *p1, size_t n1, const char *p2, size_t n2, bool *blocked)
{
	if (n1 == 0)
		return xsend(fd, p2, n2, blocked);
	if (n2 == 0)
		return xsend(fd, p1, n1, blocked);
	struct iovec iov[2] = {{(void *)p1, n1}, {(void *)p2, n2}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
	for (;;) {
		ssize_t w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w >= 0) {
			if ((size_t)w < n1 + n2)
				*blocked = true;
			return w;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			*blocked = true;
			return 0;
		}
		return -1;
	}
}

/* Reads into b (up to max); returns bytes read, 0 on EOF, -1 on error,
 * -2 when nothing is there (EAGAIN) or b is full. */
static ssize_t xrecv(int fd, struct pbuf *b, size_t max)
{
	size_t room = pb_room(b, max);
	if (room == 0)
		return -2;
	for (;;) {
		ssize_t r = recv(fd, b->p + b->end, room, 0);
		if (r > 0) {
			b->end += (size_t)r;
			return r;
		}
		if (r == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -2;
		return -1;
	}
}

static void slice_copy(char *dst, size_t cap, struct h1_slice s)
{
	size_t n = s.len < cap - 1 ? s.len : cap - 1;
	memcpy(dst, s.p, n);
	dst[n] = '\0';
}

static uint64_t ms(uint64_t usec)
{
	return usec / 1000;
}

static const char *status_reason(int status)
{
	switch (status) {
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 408:
		return "Request Timeout";
	case 414:
		return "URI Too Long";
	case 431:
		return "Request Header Fields Too Large";
	case 499:
		return "Client Closed Request";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	}
	return "Error";
}

/* ---- logging ---- */

static void req_log(struct proxy_client *c, const char *code, const char *desc)
{
	struct proxy_req *r = &c->req;
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
	    .connect_ms = ms(connect),
	    .service_ms = ms(service),
	    .status = r->status,
	    .bytes = r->bytes,
	};
	char msg[2048];
	rlog_format_entry(msg, sizeof(msg), &e);
	rlog_emit(px->log, r->app[0] ? r->app : NULL, msg);
	metrics_request(&px->metrics, r->status, code, now - r->start);
}

/* ---- upstreams ---- */

static void upstream_free_deferred(struct loop_deferred *d)
{
	struct proxy_upstream *u = loop_container_of(d, struct proxy_upstream, reap);
	pb_free(&u->in);
	pb_free(&u->out);
	free(u);
}

static void pool_remove(struct proxy_upstream *u)
{
	struct route_backend *b = u->be;
	for (struct proxy_upstream **pp = &b->pool; *pp; pp = &(*pp)->pool_next)
		if (*pp == u) {
			*pp = u->pool_next;
			b->npool--;
			break;
		}
	u->pool_next = NULL;
}

static void upstream_close(struct proxy_upstream *u)
{
	if (u == NULL || u->dead)
		return;
	struct proxy *px = u->px;
	u->dead = true;
	if (u->state == PU_IDLE)
		pool_remove(u);
	loop_io_stop(px->loop, &u->io);
	loop_timer_stop(px->loop, &u->timer);
	close(u->io.fd);
	u->io.fd = -1;
	if (u->client) {
		u->client->up = NULL;
		u->client = NULL;
		u->be->inflight--;
	}
	if (u->prev)
		u->prev->next = u->next;
	else
		px->upstreams = u->next;
	if (u->next)
		u->next->prev = u->prev;
	route_backend_unref(u->be);
	u->be = NULL;
	loop_defer(px->loop, &u->reap);
}

/* Detaches u from its client: into the pool when reusable, else closed. */
static void upstream_release(struct proxy_upstream *u, bool keep)
{
	struct route_backend *b = u->be;
	if (!keep || b->removed || b->draining || b->npool >= POOL_MAX || pb_len(&u->in) > 0 ||
	    u->rd_eof || u->px->shutting_down) {
		upstream_close(u);
		return;
	}
	u->client->up = NULL;
	u->client = NULL;
	b->inflight--;
	u->state = PU_IDLE;
	u->out.start = u->out.end = 0;
	u->in.start = u->in.end = 0;
	u->pool_next = b->pool;
	b->pool = u;
	b->npool++;
	/* an idle dyno connection is only read to notice its close */
	loop_io_set(u->px->loop, &u->io, LOOP_READ, NULL);
	u->last_active = loop_now(u->px->loop);
	loop_timer_start(u->px->loop, &u->timer, u->px->cfg.idle_timeout, NULL);
}

/* ---- clients ---- */

static void client_free_deferred(struct loop_deferred *d)
{
	struct proxy_client *c = loop_container_of(d, struct proxy_client, reap);
	pb_free(&c->in);
	pb_free(&c->out);
	free(c);
}

static void client_close(struct proxy_client *c)
{
	if (c->dead)
		return;
	struct proxy *px = c->px;
	c->dead = true;
	if (c->up)
		upstream_close(c->up);
	loop_io_stop(px->loop, &c->io);
	loop_timer_stop(px->loop, &c->timer);
	close(c->io.fd);
	c->io.fd = -1;
	if (c->prev)
		c->prev->next = c->next;
	else
		px->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	px->nclients--;
	px->metrics.open_clients = px->nclients;
	loop_defer(px->loop, &c->reap);
	if (px->shutting_down && px->nclients == 0)
		loop_stop(px->loop);
}

/* Answers the request with a router response (or closes when its head
 * went out already), logs it with code/desc, and closes afterwards. */
static void client_fail(struct proxy_client *c, int status, const char *code, const char *desc)
{
	struct proxy_req *r = &c->req;
	if (c->up)
		upstream_close(c->up);
	if (r->resp_started || status == 499) {
		/* the dyno's head went out already, or the client is gone:
		 * all we can do is close */
		r->status = status;
		req_log(c, code, desc);
		client_close(c);
		return;
	}
	r->status = status;
	c->closing = true;
	if (status > 0) {
		char body[64];
		if (status == 404)
			snprintf(body, sizeof(body), "No such app\n");
		else if (code != NULL)
			snprintf(body, sizeof(body), "Application error\n");
		else
			snprintf(body, sizeof(body), "%s\n", status_reason(status));
		char head[512];
		int n = snprintf(head, sizeof(head),
		                 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: "
		                 "%zu\r\nConnection: close\r\n%s%s%s\r\n%s",
		                 status, status_reason(status), strlen(body),
		                 r->request_id[0] ? "X-Request-Id: " : "", r->request_id,
		                 r->request_id[0] ? "\r\n" : "",
		                 r->method_id == H1_METHOD_HEAD ? "" : body);
		c->out.start = c->out.end = 0;
		pb_append(&c->out, head, (size_t)n);
		r->bytes = (uint64_t)n;
	}
	req_log(c, code, desc);
	c->state = PC_ERROR;
	loop_timer_stop(c->px->loop, &c->timer);
	/* bound the time spent writing the answer to a slow client */
	c->last_active = loop_now(c->px->loop);
	loop_timer_start(c->px->loop, &c->timer, c->px->cfg.head_timeout, NULL);
}

static void client_wait_head(struct proxy_client *c)
{
	struct proxy *px = c->px;
	memset(&c->req, 0, sizeof(c->req));
	c->state = PC_HEAD;
	c->in_request = false;
	h1_parser_init(&c->parser, NULL, px->headers, MAX_HEADERS);
	c->last_active = c->wait_start = loop_now(px->loop);
	/* the earlier of the two deadlines client_on_timer() checks */
	uint64_t first = px->cfg.head_timeout < px->cfg.idle_timeout ? px->cfg.head_timeout
	                                                             : px->cfg.idle_timeout;
	loop_timer_start(px->loop, &c->timer, first, NULL);
}

/* The head is complete and valid: note what the log needs, route it. */
static void client_begin(struct proxy_client *c, const struct h1_request *hr)
{
	struct proxy *px = c->px;
	struct proxy_req *r = &c->req;
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
		client_fail(c, 404, NULL, "No such app");
		return;
	}
	snprintf(r->app, sizeof(r->app), "%s", app->name);
	r->keepalive_app = app->keepalive;
	switch (app->state) {
	case ROUTE_CRASHED:
		client_fail(c, 503, "H10", "App crashed");
		return;
	case ROUTE_NO_WEB:
		client_fail(c, 503, "H14", "No web processes running");
		return;
	case ROUTE_MAINTENANCE:
		client_fail(c, 503, "H80", "Maintenance mode");
		return;
	case ROUTE_UP:
		break;
	}
	bool any = false;
	for (size_t i = 0; i < app->nbackends; i++)
		if (!app->backends[i]->draining)
			any = true;
	if (!any) {
		client_fail(c, 503, "H14", "No web processes running");
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
		client_fail(c, 431, NULL, "Request head too large");
		return;
	}
	pb_consume(&c->in, hr->head_len);
	c->state = PC_PROXY;
	/* the head timer is left running: it is moved for the next head,
	 * and ignored outside PC_HEAD, which saves two heap operations */
	if (r->expect) {
		/* RFC 9110 10.1.1: the router answers 100-continue itself */
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		pb_append(&c->out, cont, sizeof(cont) - 1);
	}
	client_connect(c);
	if (c->dead || c->state != PC_PROXY || c->up == NULL)
		return;
	/* the head goes to the upstream's buffer (a pooled one reuses its
	 * memory); a retry moves it to the next upstream */
	c->up->out.start = c->up->out.end = 0;
	if (!pb_append(&c->up->out, px->scratch, (size_t)n))
		client_fail(c, 503, NULL, "Out of memory");
}

static void upstream_on_io(struct loop *loop, struct loop_io *io, uint32_t events);
static void upstream_on_timer(struct loop *loop, struct loop_timer *t);

static void client_no_backend(struct proxy_client *c)
{
	struct proxy_req *r = &c->req;
	if (r->ntried > 0 && r->last_timeout)
		client_fail(c, 503, "H19", "Backend connection timeout");
	else
		client_fail(c, 503, "H21", "Backend connection refused");
}

/* Finds a backend for the request and an upstream to it: a pooled one, or a
 * new connect. Connect failures skip the dyno and try the next. */
static void client_connect(struct proxy_client *c)
{
	struct proxy *px = c->px;
	struct proxy_req *r = &c->req;
	uint64_t now = loop_now(px->loop);
	while (r->ntried < MAX_TRIES) {
		struct route_app *app = route_lookup(px->table, r->host, strlen(r->host));
		if (app == NULL || app->state != ROUTE_UP) {
			client_no_backend(c);
			return;
		}
		struct route_backend *b = bal_pick(app, now, r->tried, r->ntried, &px->rng);
		if (b == NULL) {
			client_no_backend(c);
			return;
		}
		r->tried[r->ntried++] = b;
		snprintf(r->dyno, sizeof(r->dyno), "%s", b->dyno);
		r->connect_at = now;
		struct proxy_upstream *u = b->pool;
		if (u != NULL) {
			pool_remove(u);
			u->state = PU_ACTIVE;
			u->reused = true;
			r->connected_at = now;
		} else {
			int fd =
			    socket(b->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			if (fd < 0) {
				client_fail(c, 503, "H21", "Backend connection refused");
				return;
			}
			set_nodelay(fd);
			int cr = connect(fd, (struct sockaddr *)&b->sa, b->sa_len);
			if (cr < 0 && errno != EINPROGRESS) {
				char why[128];
				snprintf(why, sizeof(why), "connect: %s", strerror(errno));
				close(fd);
				bal_skip(b, now);
				hc_passive_fail(&px->hc, b, why);
				r->last_timeout = false;
				continue;
			}
			u = calloc(1, sizeof(*u));
			if (u == NULL) {
				close(fd);
				client_fail(c, 503, NULL, "Out of memory");
				return;
			}
			u->px = px;
			loop_io_init(&u->io, fd, upstream_on_io);
			loop_timer_init(&u->timer, upstream_on_timer);
			loop_defer_init(&u->reap, upstream_free_deferred);
			u->be = b;
			route_backend_ref(b);
			u->state = cr == 0 ? PU_ACTIVE : PU_CONNECTING;
			if (cr == 0)
				r->connected_at = now;
			u->next = px->upstreams;
			if (u->next)
				u->next->prev = u;
			px->upstreams = u;
			u->last_active = now;
			loop_timer_start(
			    px->loop, &u->timer,
			    cr == 0 ? px->cfg.first_byte_timeout : px->cfg.connect_timeout, NULL);
		}
		u->client = c;
		c->up = u;
		b->inflight++;
		b->requests++;
		if (u->state == PU_ACTIVE) {
			u->last_active = now;
			loop_timer_start(px->loop, &u->timer, px->cfg.first_byte_timeout, NULL);
		}
		return;
	}
	client_no_backend(c);
}

/* A connect failed or the pooled connection was found closed before any
 * byte of response: try another dyno when that is safe. */
static void upstream_retry(struct proxy_client *c, bool connect_failed, bool timeout,
                           const char *why)
{
	struct proxy *px = c->px;
	struct proxy_upstream *u = c->up;
	struct proxy_req *r = &c->req;
	struct route_backend *b = u->be;
	bool reused = u->reused;
	struct pbuf head = u->out;
	memset(&u->out, 0, sizeof(u->out));
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
	client_connect(c);
	if (c->up && !c->dead) {
		pb_free(&c->up->out);
		c->up->out = head;
	} else {
		pb_free(&head);
	}
}

/* ---- the pumps ---- */

/* Moves request bytes to the dyno: what is left of the head in u->out and
 * the body bytes that follow it in one sendmsg. Returns false when c was
 * closed. */
static bool pump_request(struct proxy_client *c)
{
	struct proxy_upstream *u = c->up;
	struct proxy_req *r = &c->req;
	if (u == NULL || u->state != PU_ACTIVE || u->wr_shut)
		return true;
	while (!u->wblocked) {
		size_t avail = pb_len(&c->in), n = 0;
		if (r->body_done) {
			n = 0;
		} else if (r->body == H1_BODY_LENGTH) {
			n = avail < r->body_left ? avail : (size_t)r->body_left;
		} else if (r->body == H1_BODY_CHUNKED) {
			while (r->body_ready < avail && !h1_chunked_done(&r->chunk)) {
				struct h1_slice data;
				int d =
				    h1_chunked_decode(&r->chunk, pb_data(&c->in) + r->body_ready,
				                      avail - r->body_ready, &data);
				if (d < 0) {
					/* docs/design.md: a bad chunk after forwarding began
					 * closes both connections */
					client_fail(c, 400, NULL, h1_strerror(d));
					return false;
				}
				if (d == 0)
					break;
				r->body_ready += (size_t)d;
			}
			n = r->body_ready;
		}
		size_t hl = pb_len(&u->out);
		if (hl == 0 && n == 0) {
			if (!r->body_done && c->rd_eof) {
				client_fail(c, 499, "H27", "Client Request Interrupted");
				return false;
			}
			break;
		}
		ssize_t w =
		    xsend2(u->io.fd, pb_data(&u->out), hl, pb_data(&c->in), n, &u->wblocked);
		if (w < 0)
			goto write_error;
		size_t from_head = (size_t)w < hl ? (size_t)w : hl;
		u->out.start += from_head; /* kept for a retry: not consumed */
		size_t bw = (size_t)w - from_head;
		if (bw > 0) {
			pb_consume(&c->in, bw);
			r->body_sent += bw;
			if (r->body == H1_BODY_LENGTH) {
				r->body_left -= bw;
				r->body_done = r->body_left == 0;
			} else {
				r->body_ready -= bw;
				r->body_done = r->body_ready == 0 && h1_chunked_done(&r->chunk);
			}
			u->last_active = loop_now(c->px->loop);
		}
	}
	if (r->body_done && pb_len(&u->out) == 0 && !r->req_sent) {
		r->req_sent = true;
		/* with a body, the first byte is awaited from its end; without,
		 * the timer started at the connect is the same */
		if (!r->got_any && r->body_sent > 0) {
			u->last_active = loop_now(c->px->loop);
			loop_timer_start(c->px->loop, &u->timer, c->px->cfg.first_byte_timeout,
			                 NULL);
		}
	}
	return true;
write_error:
	if (!r->got_any && u->reused && r->body_sent == 0 && r->idempotent) {
		upstream_retry(c, false, false, "reused connection closed");
		return !c->dead;
	}
	if (r->got_any) {
		/* the dyno answered early and stopped reading the body: let
		 * the response finish, the client connection closes after */
		u->wr_shut = true;
		c->closing = true;
		return true;
	}
	client_fail(c, 503, "H18", "Server Request Interrupted");
	return false;
}

/* Parses the dyno's response head in u->in and queues the client's head. */
static bool response_head(struct proxy_client *c)
{
	struct proxy *px = c->px;
	struct proxy_upstream *u = c->up;
	struct proxy_req *r = &c->req;
	for (;;) {
		if (pb_len(&u->in) == 0)
			return true;
		struct h1_parser p;
		h1_parser_init(&p, NULL, px->headers, MAX_HEADERS);
		struct h1_response resp;
		int n = h1_parse_response(&p, pb_data(&u->in), pb_len(&u->in),
		                          r->method_id == H1_METHOD_HEAD ? H1_RESP_HEAD : 0, &resp);
		if (n == 0 && (u->rd_eof || pb_len(&u->in) >= BUF_MAX))
			n = H1_E_HEAD_TOO_LARGE; /* cut short, or no end in sight */
		if (n == 0)
			return true;
		if (n < 0) {
			client_fail(c, 502, "H17", "Poorly formatted HTTP response");
			return false;
		}
		if (resp.status >= 100 && resp.status < 200 && resp.status != 101) {
			/* 100 Continue is the router's to send; other 1xx are
			 * dropped too, since 1.0 clients cannot take them */
			pb_consume(&u->in, (size_t)n);
			continue;
		}
		r->status = resp.status;
		r->dechunk = r->minor0 && resp.body == H1_BODY_CHUNKED;
		if (resp.upgrade && !r->upgrade) {
			client_fail(c, 502, "H17", "Poorly formatted HTTP response");
			return false;
		}
		if (resp.body == H1_BODY_CLOSE || r->dechunk || !r->keep_alive || px->shutting_down)
			c->closing = true;
		r->up_keep = resp.keep_alive && r->keepalive_app && resp.body != H1_BODY_CLOSE &&
		             !resp.upgrade;
		struct hdr_response_info info = {
		    .close = c->closing && !resp.upgrade,
		    .client_10 = r->minor0,
		    .dechunk = r->dechunk,
		};
		ssize_t hl = hdr_build_response(&resp, &info, px->scratch, sizeof(px->scratch));
		if (hl < 0 || !pb_append(&c->out, px->scratch, (size_t)hl)) {
			client_fail(c, 502, "H17", "Poorly formatted HTTP response");
			return false;
		}
		r->bytes += (uint64_t)hl;
		r->resp_started = true;
		pb_consume(&u->in, (size_t)n);
		r->resp_body = resp.body;
		if (resp.upgrade) {
			c->state = PC_TUNNEL;
			r->resp_done = true;
			req_log(c, NULL, NULL);
			return true;
		}
		switch (resp.body) {
		case H1_BODY_NONE:
			r->resp_done = true;
			break;
		case H1_BODY_LENGTH:
			r->resp_left = (uint64_t)resp.content_length;
			r->resp_done = r->resp_left == 0;
			break;
		case H1_BODY_CHUNKED:
			h1_chunked_init(&r->resp_chunk, NULL);
			break;
		default:
			break;
		}
		return true;
	}
}

static bool flush_client_out(struct proxy_client *c)
{
	if (pb_len(&c->out) == 0 || c->wblocked)
		return true;
	ssize_t w = xsend(c->io.fd, pb_data(&c->out), pb_len(&c->out), &c->wblocked);
	if (w < 0) {
		if (c->state == PC_PROXY && !c->req.logged) {
			c->req.status = 499;
			client_fail(c, 499, "H27", "Client Request Interrupted");
		} else {
			client_close(c);
		}
		return false;
	}
	pb_consume(&c->out, (size_t)w);
	c->last_active = loop_now(c->px->loop);
	return true;
}

/* Moves response bytes to the client: the queued head and the body bytes
 * after it in one sendmsg. Returns false when c was closed. */
static bool pump_response(struct proxy_client *c)
{
	struct proxy_upstream *u = c->up;
	struct proxy_req *r = &c->req;
	if (u == NULL || u->state != PU_ACTIVE)
		return flush_client_out(c);
	if (!r->resp_started) {
		if (pb_len(&u->in) == 0 && u->rd_eof)
			goto closed;
		if (!response_head(c))
			return false;
		if (!r->resp_started || c->state == PC_TUNNEL)
			return flush_client_out(c);
	}
	while (!r->resp_done && !c->wblocked) {
		size_t avail = pb_len(&u->in), n = 0;
		if (r->resp_body == H1_BODY_LENGTH) {
			n = avail < r->resp_left ? avail : (size_t)r->resp_left;
		} else if (r->resp_body == H1_BODY_CLOSE) {
			n = avail;
		} else if (r->resp_body == H1_BODY_CHUNKED) {
			while (r->resp_ready < avail && !h1_chunked_done(&r->resp_chunk)) {
				struct h1_slice data;
				const char *base = pb_data(&u->in) + r->resp_ready;
				int d = h1_chunked_decode(&r->resp_chunk, base,
				                          avail - r->resp_ready, &data);
				if (d < 0) {
					client_fail(c, 502, "H17",
					            "Poorly formatted HTTP response");
					return false;
				}
				if (d == 0)
					break;
				if (r->dechunk) {
					/* a 1.0 client gets the data alone, the end is
					 * the close */
					if (data.len > 0)
						pb_append(&c->out, data.p, data.len);
					pb_consume(&u->in, (size_t)d);
					avail -= (size_t)d;
					if (pb_len(&c->out) >= OUT_MAX)
						break;
				} else {
					r->resp_ready += (size_t)d;
				}
			}
			if (r->dechunk) {
				r->resp_done = h1_chunked_done(&r->resp_chunk);
				size_t before = pb_len(&c->out);
				if (!flush_client_out(c))
					return false;
				r->bytes += before - pb_len(&c->out);
				if (pb_len(&u->in) == 0 || pb_len(&c->out) > 0) {
					if (!r->resp_done && u->rd_eof && pb_len(&u->in) == 0)
						goto closed;
					break;
				}
				continue;
			}
			n = r->resp_ready;
		}
		if (n == 0) {
			if (u->rd_eof) {
				if (r->resp_body == H1_BODY_CLOSE) {
					r->resp_done = true;
					break;
				}
				goto closed;
			}
			break;
		}
		size_t hl = pb_len(&c->out);
		ssize_t w =
		    xsend2(c->io.fd, pb_data(&c->out), hl, pb_data(&u->in), n, &c->wblocked);
		if (w < 0) {
			client_fail(c, 499, "H27", "Client Request Interrupted");
			return false;
		}
		size_t from_head = (size_t)w < hl ? (size_t)w : hl;
		pb_consume(&c->out, from_head);
		size_t bw = (size_t)w - from_head;
		pb_consume(&u->in, bw);
		r->bytes += bw;
		c->last_active = u->last_active = loop_now(c->px->loop);
		if (r->resp_body == H1_BODY_LENGTH) {
			r->resp_left -= bw;
			r->resp_done = r->resp_left == 0;
		} else if (r->resp_body == H1_BODY_CHUNKED) {
			r->resp_ready -= bw;
			r->resp_done = r->resp_ready == 0 && h1_chunked_done(&r->resp_chunk);
		}
	}
	return flush_client_out(c);
closed:
	if (!r->resp_started && !r->got_any && u->reused && r->body_sent == 0 && r->idempotent) {
		upstream_retry(c, false, false, "reused connection closed");
		return !c->dead;
	}
	if (!r->resp_started)
		client_fail(c, 503, "H13", "Connection closed without response");
	else
		client_fail(c, 503, "H18", "Server Request Interrupted");
	return false;
}

/* Tunnel: raw bytes both ways until both sides are done. */
static bool pump_tunnel(struct proxy_client *c)
{
	struct proxy_upstream *u = c->up;
	if (!flush_client_out(c))
		return false;
	if (u == NULL) {
		client_close(c);
		return false;
	}
	uint64_t now = loop_now(c->px->loop);
	/* dyno -> client */
	while (pb_len(&c->out) == 0 && pb_len(&u->in) > 0 && !c->wblocked) {
		ssize_t w = xsend(c->io.fd, pb_data(&u->in), pb_len(&u->in), &c->wblocked);
		if (w < 0) {
			client_close(c);
			return false;
		}
		pb_consume(&u->in, (size_t)w);
		c->last_active = now;
	}
	/* client -> dyno */
	while (pb_len(&c->in) > 0 && !u->wblocked && !u->wr_shut) {
		ssize_t w = xsend(u->io.fd, pb_data(&c->in), pb_len(&c->in), &u->wblocked);
		if (w < 0) {
			client_close(c);
			return false;
		}
		pb_consume(&c->in, (size_t)w);
		c->last_active = now;
	}
	/* half-closes travel on once the bytes before them are out */
	if (c->rd_eof && pb_len(&c->in) == 0 && !u->wr_shut) {
		shutdown(u->io.fd, SHUT_WR);
		u->wr_shut = true;
	}
	if (u->rd_eof && pb_len(&u->in) == 0 && pb_len(&c->out) == 0) {
		shutdown(c->io.fd, SHUT_WR);
		if (c->rd_eof || u->wr_shut) {
			client_close(c);
			return false;
		}
	}
	if (c->rd_eof && u->rd_eof && pb_len(&u->in) == 0 && pb_len(&c->in) == 0) {
		client_close(c);
		return false;
	}
	return true;
}

/* The response is out: log, hand the upstream back, go on with the next
 * request. Returns false when c was closed. */
static bool client_finish(struct proxy_client *c)
{
	struct proxy_req *r = &c->req;
	req_log(c, NULL, NULL);
	if (c->up) {
		bool keep = r->up_keep && r->body_done && !c->up->wr_shut;
		upstream_release(c->up, keep);
	}
	if (!r->body_done)
		c->closing = true;
	if (c->rd_eof && pb_len(&c->in) == 0) {
		client_close(c);
		return false;
	}
	if (c->closing) {
		/* through PC_ERROR with nothing to write: shut down our side
		 * and drain what the client still sends (lingering close) */
		c->state = PC_ERROR;
		return true;
	}
	client_wait_head(c);
	return true;
}

static void set_interest(struct proxy_client *c)
{
	struct proxy *px = c->px;
	struct proxy_upstream *u = c->up;
	uint32_t ci = 0, ui = 0;
	bool in_room = c->in.p == NULL || c->in.end < c->in.cap || c->in.start > 0 ||
	               c->in.cap < (c->state == PC_HEAD ? BUF_MAX : BUF_START);
	if (!c->rd_eof && in_room && c->state != PC_ERROR)
		ci |= LOOP_READ;
	if (c->wblocked)
		ci |= LOOP_WRITE;
	if (u) {
		bool u_room = u->in.p == NULL || u->in.end < u->in.cap || u->in.start > 0 ||
		              (!c->req.resp_started && u->in.cap < BUF_MAX);
		if (u->state == PU_CONNECTING)
			ui = LOOP_WRITE;
		else {
			if (!u->rd_eof && u_room)
				ui |= LOOP_READ;
			if (u->wblocked)
				ui |= LOOP_WRITE;
		}
		loop_io_set(px->loop, &u->io, ui, NULL);
	}
	loop_io_set(px->loop, &c->io, ci, NULL);
}

static void conn_run(struct proxy_client *c)
{
	struct proxy *px = c->px;
	for (int round = 0; round < 64 && !c->dead; round++) {
		switch (c->state) {
		case PC_HEAD: {
			size_t len = pb_len(&c->in);
			if (len == 0) {
				if (c->rd_eof || px->shutting_down) {
					client_close(c);
					return;
				}
				goto done;
			}
			if (!c->in_request) {
				c->in_request = true;
				c->req.start = loop_now(px->loop);
			}
			struct h1_request hr;
			int n = h1_parse_request(&c->parser, pb_data(&c->in), len, &hr);
			if (n < 0) {
				int status = h1_error_status(n);
				snprintf(c->req.method, sizeof(c->req.method), "-");
				char desc[128];
				snprintf(desc, sizeof(desc), "Bad request: %s", h1_strerror(n));
				if (status == 0) {
					c->req.status = 400;
					req_log(c, NULL, desc);
					client_close(c);
					return;
				}
				client_fail(c, status, NULL, desc);
				continue;
			}
			if (n == 0) {
				if (c->rd_eof) {
					client_close(c);
					return;
				}
				goto done;
			}
			client_begin(c, &hr);
			continue;
		}
		case PC_PROXY: {
			if (!pump_request(c) || c->state != PC_PROXY) {
				if (c->dead)
					return;
				continue;
			}
			if (!pump_response(c) || c->state != PC_PROXY) {
				if (c->dead)
					return;
				continue;
			}
			if (c->state == PC_TUNNEL)
				continue;
			if (c->state == PC_PROXY && c->req.resp_done && pb_len(&c->out) == 0) {
				if (!client_finish(c))
					return;
				continue;
			}
			goto done;
		}
		case PC_TUNNEL:
			if (!pump_tunnel(c)) {
				if (c->dead)
					return;
				continue;
			}
			goto done;
		case PC_ERROR:
			if (!flush_client_out(c)) {
				if (c->dead)
					return;
				continue;
			}
			if (pb_len(&c->out) == 0) {
				/* answered: close our side, then read until the
				 * client closes, since closing with unread bytes
				 * would send a reset that can destroy the answer
				 * (RFC 9112 9.6, "lingering close") */
				shutdown(c->io.fd, SHUT_WR);
				c->state = PC_LINGER;
				c->in.start = c->in.end = 0;
				loop_timer_start(px->loop, &c->timer, px->cfg.head_timeout, NULL);
			}
			goto done;
		case PC_LINGER:
			c->in.start = c->in.end = 0;
			if (c->rd_eof) {
				client_close(c);
				return;
			}
			goto done;
		}
	}
done:
	if (!c->dead)
		set_interest(c);
}

/* ---- callbacks ---- */

static void client_on_io(struct loop *loop, struct loop_io *io, uint32_t events)
{
	struct proxy_client *c = loop_container_of(io, struct proxy_client, io);
	if (c->dead)
		return;
	if (events & LOOP_WRITE)
		c->wblocked = false;
	if (events & LOOP_READ) {
		size_t max = c->state == PC_HEAD ? BUF_MAX : (c->in.cap ? c->in.cap : BUF_START);
		ssize_t r = xrecv(io->fd, &c->in, max);
		if (r > 0) {
			c->last_active = loop_now(loop);
		} else if (r == 0) {
			c->rd_eof = true;
		} else if (r == -1) {
			/* reset by the client */
			if (c->state == PC_LINGER) {
				client_close(c);
				return;
			}
			if (c->state == PC_PROXY && !c->req.logged) {
				client_fail(c, 499, "H27", "Client Request Interrupted");
				return;
			}
			client_close(c);
			return;
		}
	}
	conn_run(c);
}

static void upstream_on_io(struct loop *loop, struct loop_io *io, uint32_t events)
{
	struct proxy_upstream *u = loop_container_of(io, struct proxy_upstream, io);
	if (u->dead)
		return;
	struct proxy_client *c = u->client;
	if (c == NULL) {
		/* pooled: data or a close from an idle dyno connection */
		upstream_close(u);
		return;
	}
	struct proxy_req *r = &c->req;
	if (u->state == PU_CONNECTING) {
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
		if (soerr != 0) {
			char why[128];
			snprintf(why, sizeof(why), "connect: %s", strerror(soerr));
			upstream_retry(c, true, false, why);
			if (!c->dead)
				conn_run(c);
			return;
		}
		u->state = PU_ACTIVE;
		r->connected_at = loop_now(loop);
		u->last_active = r->connected_at;
		loop_timer_start(loop, &u->timer, c->px->cfg.first_byte_timeout, NULL);
		events = LOOP_WRITE;
	}
	if (events & LOOP_WRITE)
		u->wblocked = false;
	if (events & LOOP_READ) {
		size_t max = r->resp_started && c->state != PC_TUNNEL
		                 ? (u->in.cap ? u->in.cap : BUF_START)
		                 : BUF_MAX;
		ssize_t n = xrecv(io->fd, &u->in, max);
		if (n > 0) {
			if (!r->got_any) {
				r->got_any = true;
				/* the timer turns into the idle window, checked
				 * lazily against last_active when it fires */
				if (c->px->cfg.first_byte_timeout > c->px->cfg.idle_timeout)
					loop_timer_start(loop, &u->timer, c->px->cfg.idle_timeout,
					                 NULL);
			}
			u->last_active = loop_now(loop);
		} else if (n == 0 || n == -1) {
			u->rd_eof = true;
		}
	}
	conn_run(c);
}

static void upstream_on_timer(struct loop *loop, struct loop_timer *t)
{
	struct proxy_upstream *u = loop_container_of(t, struct proxy_upstream, timer);
	struct proxy *px = u->px;
	uint64_t now = loop_now(loop);
	struct proxy_client *c = u->client;
	if (c == NULL) {
		upstream_close(u); /* idle in the pool too long */
		return;
	}
	struct proxy_req *r = &c->req;
	if (u->state == PU_CONNECTING) {
		upstream_retry(c, true, true, "connect timed out");
		if (!c->dead)
			conn_run(c);
		return;
	}
	if (!r->got_any) {
		if (!r->body_done && now - u->last_active < px->cfg.first_byte_timeout) {
			loop_timer_start_at(loop, t, u->last_active + px->cfg.first_byte_timeout,
			                    NULL);
			return;
		}
		if (!r->body_done)
			client_fail(c, 499, "H28", "Client Connection Idle");
		else
			client_fail(c, 503, "H12", "Request timeout");
		if (!c->dead)
			conn_run(c);
		return;
	}
	uint64_t last = u->last_active > c->last_active ? u->last_active : c->last_active;
	if (now - last < px->cfg.idle_timeout) {
		loop_timer_start_at(loop, t, last + px->cfg.idle_timeout, NULL);
		return;
	}
	if (c->state == PC_TUNNEL) {
		client_close(c);
		return;
	}
	client_fail(c, 503, "H15", "Idle connection");
	if (!c->dead)
		conn_run(c);
}

static void client_on_timer(struct loop *loop, struct loop_timer *t)
{
	struct proxy_client *c = loop_container_of(t, struct proxy_client, timer);
	if (c->state == PC_ERROR || c->state == PC_LINGER) {
		client_close(c);
		return;
	}
	if (c->state != PC_HEAD)
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
		if (pb_len(&c->in) == 0)
			pb_free(&c->in);
		if (pb_len(&c->out) == 0)
			pb_free(&c->out);
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
	client_fail(c, 408, NULL, "Request head timeout");
	if (!c->dead)
		conn_run(c);
}

/* ---- public ---- */

static void hook_added(struct route_backend *b, void *data)
{
	struct proxy *px = data;
	hc_start(&px->hc, b);
}

static void hook_removed(struct route_backend *b, void *data)
{
	struct proxy *px = data;
	hc_stop(&px->hc, b);
	while (b->pool)
		upstream_close(b->pool);
}

int proxy_new(struct loop *loop, const struct proxy_config *cfg, struct rlog *log,
              struct proxy **ret, struct dy_error **err)
{
	struct proxy *px = calloc(1, sizeof(*px));
	if (px == NULL)
		return dy_error_errno(err, ENOMEM, "proxy");
	px->loop = loop;
	px->cfg = *cfg;
	px->log = log;
	px->table = route_table_empty();
	if (px->table == NULL) {
		free(px);
		return dy_error_errno(err, ENOMEM, "proxy");
	}
	px->hooks.added = hook_added;
	px->hooks.removed = hook_removed;
	px->hooks.data = px;
	px->hc.loop = loop;
	px->hc.log = log;
	px->hc.metrics = &px->metrics;
	px->hc.interval = cfg->health_interval;
	px->hc.timeout = cfg->connect_timeout < cfg->health_interval ? cfg->connect_timeout
	                                                             : cfg->health_interval;
	px->hc.rise = cfg->rise ? cfg->rise : 1;
	px->hc.fall = cfg->fall ? cfg->fall : 1;
	bal_seed(&px->rng);
	*ret = px;
	return 0;
}

void proxy_accept(struct proxy *px, int fd, const struct sockaddr *peer, unsigned listen_port)
{
	if (px->shutting_down) {
		close(fd);
		return;
	}
	struct proxy_client *c = calloc(1, sizeof(*c));
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
	set_nodelay(fd);
	loop_io_init(&c->io, fd, client_on_io);
	loop_timer_init(&c->timer, client_on_timer);
	loop_defer_init(&c->reap, client_free_deferred);
	c->next = px->clients;
	if (c->next)
		c->next->prev = c;
	px->clients = c;
	px->nclients++;
	px->metrics.accepted++;
	px->metrics.open_clients = px->nclients;
	client_wait_head(c);
	if (loop_io_set(px->loop, &c->io, LOOP_READ, NULL) < 0)
		client_close(c);
}

const struct route_table *proxy_table(const struct proxy *px)
{
	return px->table;
}

const struct route_hooks *proxy_route_hooks(struct proxy *px)
{
	return &px->hooks;
}

void proxy_set_table(struct proxy *px, struct route_table *t)
{
	struct route_table *old = px->table;
	px->table = t;
	route_table_retire(old, t, &px->hooks);
	/* pools of backends that turned draining hold no new work */
	for (size_t i = 0; i < t->napps; i++)
		for (size_t k = 0; k < t->apps[i].nbackends; k++) {
			struct route_backend *b = t->apps[i].backends[k];
			while (b->draining && b->pool)
				upstream_close(b->pool);
		}
	route_table_free(old);
}

struct metrics *proxy_metrics(struct proxy *px)
{
	return &px->metrics;
}

void proxy_shutdown(struct proxy *px)
{
	px->shutting_down = true;
	for (struct proxy_client *c = px->clients, *next; c; c = next) {
		next = c->next;
		if (c->state == PC_HEAD && pb_len(&c->in) == 0)
			client_close(c);
	}
	for (size_t i = 0; i < px->table->napps; i++)
		for (size_t k = 0; k < px->table->apps[i].nbackends; k++) {
			struct route_backend *b = px->table->apps[i].backends[k];
			while (b->pool)
				upstream_close(b->pool);
		}
	if (px->nclients == 0)
		loop_stop(px->loop);
}

bool proxy_busy(const struct proxy *px)
{
	return px->nclients > 0;
}

void proxy_free(struct proxy *px)
{
	if (px == NULL)
		return;
	px->shutting_down = true;
	while (px->clients)
		client_close(px->clients);
	while (px->upstreams)
		upstream_close(px->upstreams);
	route_table_retire(px->table, NULL, &px->hooks);
	route_table_free(px->table);
	free(px);
}
