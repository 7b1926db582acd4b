/* The proxy of dyno-router: takes accepted client connections and serves
 * their requests from the dynos of the routing table. The work is split as
 * h2o splits it: router/client.c (the client state machine: heads,
 * rejections, routing, retries), router/pump.c (bodies both ways, chunked,
 * tunnels), router/upstream.c (connections to dynos and their keep-alive
 * pools); this interface is the glue in router/proxy.c. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/error.h"
#include "router/health.h"
#include "router/metrics.h"
#include "router/routes.h"

struct loop;
struct rlog;

struct proxy_config {
	uint64_t connect_timeout;    /* microseconds: H19 */
	uint64_t first_byte_timeout; /* H12 */
	uint64_t idle_timeout;       /* H15 / H28, idle keep-alive connections */
	uint64_t head_timeout;       /* 408 */
	uint64_t health_interval;    /* 0: no active checks */
	unsigned rise, fall;
	const char *domain;               /* apps answer on NAME.<domain> */
	unsigned max_inflight_per_dyno;   /* then requests queue for the dyno */
	unsigned queue_per_dyno;          /* then H11 */
	unsigned max_connections_per_app; /* then H11 */
	uint64_t fd_limit;                /* RLIMIT_NOFILE (0: no fd floor) */
};

struct proxy;

/* Creates the proxy on loop, logging through log (borrowed). Returns 0 and
 * *ret (free with proxy_free()), or < 0. */
int proxy_new(struct loop *loop, const struct proxy_config *cfg, struct rlog *log,
              struct proxy **ret, struct dy_error **err);

/* Takes over an accepted, non-blocking client socket fd from peer, accepted
 * on a listener bound to local port listen_port. */
void proxy_accept(struct proxy *px, int fd, const struct sockaddr *peer, unsigned listen_port);

/* The table in use (borrowed), and the hooks that keep health checks and
 * pools in step with it. */
const struct route_table *proxy_table(const struct proxy *px);
const struct route_hooks *proxy_route_hooks(struct proxy *px);

/* Puts t in place (taking ownership) and frees the previous table; the
 * connections in flight keep their backends. */
void proxy_set_table(struct proxy *px, struct route_table *t);

/* The counters, for /metrics and the reloader. */
struct metrics *proxy_metrics(struct proxy *px);

/* Stops taking requests: idle connections close now, the others after
 * their response. proxy_busy() tells when none is left. */
void proxy_shutdown(struct proxy *px);
bool proxy_busy(const struct proxy *px);

/* Closes every connection and frees px. Accepts NULL. */
void proxy_free(struct proxy *px);
