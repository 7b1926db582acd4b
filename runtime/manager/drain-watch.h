/* Watching drains through the router (docs/design.md, "Releases without
 * downtime"): an old web dyno drains (no new requests) until the router
 * has no request of it in flight, at most dyno.timeouts.drain. dynod asks
 * the router's admin listener for its /metrics (docs/router.md,
 * "Metrics"): the routes version it has loaded, and each backend's
 * `draining` and `in_flight`. A backend is drained once the router runs a
 * table at least as new as the one that marked it draining and has no
 * request of it in flight (or no longer lists it).
 *
 * The exchange is non-blocking on dynod's loop (connect, one GET, read to
 * the close) and bounded in time and size; a router that cannot be asked
 * (router.external without an admin listener, a restart) leaves the drain
 * to its timeout. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "common/loop.h"

struct dw_backend {
	char addr[64]; /* "10.213.0.5:5000" */
	bool draining;
	unsigned in_flight;
};

struct dw_metrics {
	long long version; /* dyno_router_routes_version; -1: not given */
	struct dw_backend *backends;
	size_t n;
};

/* Reads the router's /metrics text[0..len): the routes version and every
 * backend's draining and in-flight gauges (other lines ignored). Returns
 * 0 (dw_metrics_clear()), or < 0 when out of memory. */
int dw_parse(const char *text, size_t len, struct dw_metrics *ret);

void dw_metrics_clear(struct dw_metrics *m);

/* True when the router runs a table of version >= min_version and has no
 * request to addr in flight (it may not list addr any more). */
bool dw_drained(const struct dw_metrics *m, const char *addr, long long min_version);

/* One exchange's end: the metrics (NULL: the router could not be asked). */
typedef void (*dw_done_fn)(void *ctx, const struct dw_metrics *m);

struct dw_watch;

/* A watcher of the router at sa (the admin listener). Returns 0 and *ret
 * (dw_free()), or < 0. */
int dw_new(struct loop *loop, const struct sockaddr *sa, socklen_t len, dw_done_fn fn, void *ctx,
           struct dw_watch **ret);

/* Asks the router once, unless an exchange is under way; fn follows. */
void dw_ask(struct dw_watch *w);

/* Frees w (an exchange under way is dropped, fn not called). Accepts NULL. */
void dw_free(struct dw_watch *w);
