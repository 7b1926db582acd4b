/* Health checks of backends (docs/design.md, "Router"): an active check every
 * interval (a TCP connect, or GET health_path answered 2xx/3xx), with rise
 * and fall hysteresis as HAProxy's check.c, and passive marking when a
 * proxied connect fails. Only a change of state acts and is logged. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "router/routes.h"

struct loop;
struct rlog;
struct metrics;

struct hc_ctx {
	struct loop *loop;
	struct rlog *log;
	struct metrics *metrics;
	uint64_t interval; /* microseconds; 0 disables active checks */
	uint64_t timeout;  /* of one check */
	unsigned rise, fall;
};

/* Starts the active checks of b (takes a reference on b). Returns 0 or
 * < 0 (ENOMEM). */
int hc_start(struct hc_ctx *ctx, struct route_backend *b);

/* Stops the checks of b and drops their reference. A no-op when none run. */
void hc_stop(struct hc_ctx *ctx, struct route_backend *b);

/* A proxied connect to b failed (reason: "connection refused", ...): a
 * healthy b is marked down at once, and must rise again. */
void hc_passive_fail(struct hc_ctx *ctx, struct route_backend *b, const char *reason);

/* Sets b's state, logging and counting only a change. */
void hc_set_state(struct hc_ctx *ctx, struct route_backend *b, bool healthy, const char *reason);
