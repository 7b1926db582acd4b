/* Work that must leave the event loop: a small pool of worker threads
 * whose completions come back to the loop through an eventfd.
 *
 * dynod's loop serves the Platform API and supervises every dyno, so a
 * call that blocks it for long (unpacking a 1 GiB slug took 5 s, a large
 * state write, a dyno start waiting on a cgroup move) stalls every tenant.
 * Such a call runs as a struct work: fn on a worker thread, then done on
 * the loop's thread, in the dispatch round after fn returned.
 *
 * Rules:
 * - fn must not touch the loop, nor anything the loop's thread changes
 *   while the work runs: give it its own copies (the work's struct embeds
 *   them). done runs on the loop's thread and may use everything, and free
 *   the work.
 * - A struct work is embedded by the caller (the pool never allocates per
 *   item, so work_submit() cannot fail) and must stay alive until its done
 *   has run.
 * - Every submitted work gets exactly one done: work_pool_free() lets
 *   the queued and running work finish and runs their done before it
 *   returns.
 * - Worker threads block every signal: signals stay the loop's
 *   (signalfd). */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"
#include "common/loop.h"

struct work;
typedef void (*work_fn)(struct work *w);

struct work {
	struct work *next; /* the pool's, while queued or done */
	work_fn fn;        /* on a worker thread */
	work_fn done;      /* on the loop's thread, after fn */
};

struct work_pool;

/* Starts nthreads (1..64) worker threads whose completions are dispatched
 * by loop. Returns 0 and the pool in *ret (owned by the caller, release with
 * work_pool_free()), or < 0. */
int work_pool_new(struct loop *loop, unsigned nthreads, struct work_pool **ret,
                  struct dy_error **err);

/* Queues w: fn(w) runs on the first free worker, then done(w) on the
 * loop's thread. Work runs in the order queued, several at once when the
 * pool has several threads. Cannot fail. */
void work_submit(struct work_pool *p, struct work *w, work_fn fn, work_fn done);

/* The number of works submitted whose done has not run yet. */
size_t work_pool_pending(const struct work_pool *p);

/* Lets the queued and running works finish, runs their done callbacks on
 * the calling thread (the loop's), stops the threads and frees the pool.
 * Accepts NULL. */
void work_pool_free(struct work_pool *p);

DY_DEFINE_CLEANUP(struct work_pool *, work_pool_free, work_pool_freep)
