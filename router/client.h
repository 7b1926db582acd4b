/* Client connections of dyno-router: the state machine that reads request
 * heads, rejects or routes them, attaches an upstream (router/upstream.h)
 * and hands the bytes to the pumps (router/pump.h), one request at a time.
 * Shared by the proxy's modules only (router/proxy.c, client.c, pump.c).
 *
 * One client connection carries one request at a time; bytes of pipelined
 * requests wait in its input buffer until the response before them is
 * complete, so responses go out in order. All progress of a client and its
 * upstream happens in client_run(), called after any event on either
 * socket; it ends by setting the epoll interest of both. */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/buf.h"
#include "common/conn.h"
#include "common/heroku-codes.h"
#include "common/http1.h"
#include "common/loop.h"
#include "router/balancer.h"
#include "router/fair.h"
#include "router/headers.h"
#include "router/health.h"
#include "router/metrics.h"
#include "router/proxy.h"
#include "router/upstream.h"

#define CLIENT_BUF_MAX     (65536 + 4096) /* a whole head (64 KiB) fits */
#define CLIENT_OUT_MAX     (65536 + 8192)
#define CLIENT_MAX_TRIES   8
#define CLIENT_MAX_HEADERS 1000
#define CLIENT_PATH_LOG    1024
#define PROXY_POOL_MAX     512 /* idle connections kept per backend */
#define PROXY_FDS_BASE     32  /* fds besides clients and upstreams: listeners, epoll, logs... */

/* A response body with a Content-Length past BUF_START is read from the
 * dyno in pieces up to this size: a 64 KiB body takes one or two reads and
 * sends instead of five (docs/router.md, "Proxying") */
#define CLIENT_BODY_READ 65536

enum client_state {
	CLIENT_HEAD = 0, /* waiting for / reading a request head */
	CLIENT_PROXY,    /* a request is being served by a dyno */
	CLIENT_TUNNEL,   /* after 101: bytes both ways */
	CLIENT_ERROR,    /* writing a router answer, then close */
	CLIENT_LINGER,   /* answered and shut down: reading what the client still sends */
};

/* "head", "proxy", "tunnel", "error", "linger". */
const char *client_state_str(enum client_state s);

/* The request in flight on a client connection, reset for each. */
struct client_req {
	uint64_t start;        /* monotonic us: first byte of the head */
	uint64_t connect_at;   /* monotonic us: connect started */
	uint64_t connected_at; /* monotonic us: connected */
	uint64_t queued_at;    /* monotonic us: first queued for a dyno (0: never) */
	char method[24];
	char path[CLIENT_PATH_LOG];
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
	struct route_backend *tried[CLIENT_MAX_TRIES];
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

struct client {
	struct proxy *px;
	struct dy_conn conn; /* socket, timer, list, deferred free; conn.closed */
	enum client_state state;
	struct buf in, out;
	struct h1_parser parser;
	char ip[INET6_ADDRSTRLEN];
	unsigned port;
	bool rd_eof;
	bool wblocked;
	bool closing;        /* close once the current response is out */
	bool in_request;     /* bytes of a head arrived */
	uint64_t wait_start; /* monotonic us: waiting for a head since */
	uint64_t last_active;
	struct upstream *up;
	struct client_req req;
	struct bal_waiter wait;    /* queued for a dyno at its bound (wait.be) */
	struct buf held;           /* the request head for the dyno, while queued */
	struct fair_app *app_slot; /* the app this connection counts against */
};

/* The proxy as its modules see it (the public surface is router/proxy.h). */
struct proxy {
	struct loop *loop;
	struct proxy_config cfg;
	struct route_table *table;
	struct route_hooks hooks;
	struct metrics metrics;
	struct rlog *log;
	struct hc_ctx hc;
	struct bal_rng rng;
	struct upstream_pool pool;
	struct dy_conn_list clients;
	struct fair fair;
	bool shutting_down;
	struct h1_header headers[CLIENT_MAX_HEADERS]; /* scratch: heads are used at once */
	char scratch[CLIENT_OUT_MAX];
};

/* Takes over the accepted non-blocking socket fd of peer, accepted on local
 * port listen_port, and waits for its first request head. Closes fd when
 * memory is short. */
void client_accept(struct proxy *px, int fd, const struct sockaddr *peer, unsigned listen_port);

/* Runs c's state machine until it waits for an event, then sets the epoll
 * interest of c and its upstream. c may be closed on return (c->conn.closed). */
void client_run(struct client *c);

/* Closes c and its upstream now (watchers stopped, sockets closed, the free
 * deferred). A no-op on a closed client. */
void client_close(struct client *c);

/* Ends the request with Heroku error code (status and description from
 * common/heroku-codes): answers it when no response head went out yet,
 * then closes; logs it and counts it. */
void client_fail(struct client *c, enum hk_code code);

/* As client_fail() for a router answer without an H-code (404 for an
 * unknown host, 400 for a bad request, 408...): status, and desc for the
 * log line. */
void client_reject(struct client *c, int status, const char *desc);

/* Logs the request once (code HK_NONE and desc NULL: at=info) and counts it
 * in the metrics. */
void client_log(struct client *c, enum hk_code code, const char *desc);

/* The upstream of c failed before any byte of response (connect_failed:
 * the connect did, timeout: by timing out; why goes to the health check):
 * closes it and tries another dyno with the same request head. c may be
 * failed and closed on return. */
void client_retry(struct client *c, bool connect_failed, bool timeout, const char *why);

/* A slot of a dyno freed for c, taken off its queue: picks a dyno again
 * (or queues again, or fails) and goes on. c may be closed on return. */
void client_wake(struct client *c);

/* The file descriptors the proxy holds, about: clients, upstreams and
 * PROXY_FDS_BASE for the rest. */
uint64_t proxy_fds_open(const struct proxy *px);

/* The pool's callbacks: events of an upstream attached to a client. */
void client_upstream_io(struct upstream *u, uint32_t events);
void client_upstream_timer(struct upstream *u);
