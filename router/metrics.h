/* Counters of dyno-router and their Prometheus text rendering (served on
 * the admin listener at /metrics). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/heroku-codes.h"
#include "router/routes.h"

#define METRICS_NBUCKETS 14

struct rlog;

struct metrics {
	uint64_t requests;
	uint64_t status[600];
	uint64_t hcode[_HK_MAX]; /* by enum hk_code */
	uint64_t lat_bucket[METRICS_NBUCKETS + 1];
	uint64_t lat_count;
	uint64_t lat_sum_us;
	uint64_t accepted;
	uint64_t open_clients;
	uint64_t reloads;
	uint64_t reload_errors;
	uint64_t health_changes;
};

/* The upper bounds of the latency buckets, in microseconds. */
extern const uint64_t metrics_bucket_us[METRICS_NBUCKETS];

/* Counts one finished request: its status, its H-code (HK_NONE: none) and
 * its total time in microseconds. */
void metrics_request(struct metrics *m, int status, enum hk_code code, uint64_t usec);

/* Renders every counter, the backends of t (up, in flight, requests) and
 * the log counters of l as Prometheus text into a malloc'ed string (*ret,
 * owned by the caller) of *ret_len bytes. Returns 0 or < 0 (ENOMEM). */
int metrics_render(const struct metrics *m, const struct route_table *t, const struct rlog *l,
                   char **ret, size_t *ret_len);
