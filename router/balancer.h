/* Power of two choices (docs/design.md, "Router"): of two random usable web
 * backends, the one with fewer requests in flight; ties broken at random. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "router/routes.h"

#define BAL_SKIP_USEC (5ull * 1000 * 1000) /* a connect failure skips a dyno 5 s */

/* A small xorshift generator; seed it with bal_seed(). */
struct bal_rng {
	uint64_t s;
};

/* Seeds rng from getrandom(2) (or the clock when that fails). */
void bal_seed(struct bal_rng *rng);

/* A pseudo-random 64-bit value. */
uint64_t bal_next(struct bal_rng *rng);

/* True when b may take a new request at monotonic time now: not draining,
 * not removed, healthy and not skipped. */
bool bal_usable(const struct route_backend *b, uint64_t now);

/* Picks a backend of app for a new request at time now, leaving out the
 * ntried backends in tried (already failed for this request). Returns a
 * borrowed pointer, or NULL when no backend is usable. */
struct route_backend *bal_pick(const struct route_app *app, uint64_t now,
                               struct route_backend *const *tried, size_t ntried,
                               struct bal_rng *rng);

/* Marks b skipped for BAL_SKIP_USEC after now (a connect failure). */
void bal_skip(struct route_backend *b, uint64_t now);
