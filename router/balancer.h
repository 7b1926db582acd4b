/* Power of two choices (docs/design.md, "Router"): of two random usable web
 * backends, the one with fewer requests in flight; ties broken at random.
 *
 * A dyno takes at most max_inflight requests at once (router.
 * max_inflight_per_dyno): a dyno at its bound is not picked. When every
 * usable dyno of the app is at its bound, the request waits in the queue of
 * one of them (the shortest), FIFO, at most queue_max deep
 * (router.queue_per_dyno); past that the router answers H11. A slot freed on
 * a dyno goes to the head of its queue (bal_queue_pop()). */
#pragma once

#include <stdbool.h>
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

/* A request waiting for a dyno: embed it in the request's owner and find
 * the owner again with loop_container_of(). */
struct bal_waiter {
	struct bal_waiter *prev, *next;
	struct route_backend *be; /* the dyno waited for (referenced); NULL: not queued */
};

/* Picks a backend of app for a new request at time now, leaving out the
 * ntried backends in tried (already failed for this request) and those
 * with max_inflight requests in flight. Returns a borrowed pointer, or NULL
 * when none is left; then *ret_busy (when not NULL) tells whether some
 * usable backend was left out only for being at its bound: the request may
 * wait for one (bal_queue_pick()). */
struct route_backend *bal_pick(const struct route_app *app, uint64_t now,
                               struct route_backend *const *tried, size_t ntried,
                               unsigned max_inflight, struct bal_rng *rng, bool *ret_busy);

/* The usable, untried backend of app with the shortest queue, when that
 * queue holds fewer than queue_max requests; NULL when every queue is full
 * (H11). */
struct route_backend *bal_queue_pick(const struct route_app *app, uint64_t now,
                                     struct route_backend *const *tried, size_t ntried,
                                     unsigned queue_max);

/* Queues w last on b, taking a reference on b. w must not be queued. */
void bal_queue_push(struct route_backend *b, struct bal_waiter *w);

/* Takes the first waiter off b's queue (NULL when empty); w->be is NULL
 * again and b's reference dropped, so b may be freed on return when its
 * last other user is gone. */
struct bal_waiter *bal_queue_pop(struct route_backend *b);

/* Takes w off the queue it is in, if any (as bal_queue_pop()). */
void bal_queue_remove(struct bal_waiter *w);

/* Marks b skipped for BAL_SKIP_USEC after now (a connect failure). */
void bal_skip(struct route_backend *b, uint64_t now);
