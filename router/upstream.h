/* Connections from the router to dynos ("upstreams") and the pool of idle
 * keep-alive ones, per backend (as h2o's lib/common/socketpool.c): connect,
 * take an idle one for reuse, give one back after a response, close.
 *
 * An upstream is attached to one owner (a client connection) while it
 * carries a request; the owner gets the events of its socket and timer
 * through the pool's on_io and on_timer. Idle, in its backend's list, the
 * upstream watches itself: any byte or close from the dyno, or the idle
 * timeout, closes it. Upstreams are freed after the dispatch round
 * (loop_defer), never inside their own callbacks. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/loop.h"
#include "router/routes.h"

enum upstream_state {
	UPSTREAM_CONNECTING = 0, /* connect(2) in progress */
	UPSTREAM_ACTIVE,         /* connected, attached to an owner */
	UPSTREAM_IDLE,           /* in its backend's pool */
};

/* "connecting", "active", "idle". */
const char *upstream_state_str(enum upstream_state s);

struct upstream;
typedef void (*upstream_io_fn)(struct upstream *u, uint32_t events);
typedef void (*upstream_timer_fn)(struct upstream *u);
typedef void (*upstream_slot_fn)(struct route_backend *b, void *data);

struct upstream_pool {
	struct loop *loop;
	size_t idle_max;       /* idle connections kept per backend */
	uint64_t idle_timeout; /* microseconds an idle connection is kept */
	bool closing;          /* shutting down: released connections close */
	upstream_io_fn on_io;  /* events of an attached upstream */
	upstream_timer_fn on_timer;
	/* a request slot of b was freed (an attached upstream released or
	 * closed) while requests wait for b: called once the upstream is back
	 * in the pool or gone, so a waiter may reuse it */
	upstream_slot_fn on_slot;
	void *slot_data;
	struct upstream *all; /* every open upstream */
	size_t n;             /* in all: the sockets the pool holds */
};

struct upstream {
	struct upstream_pool *pool;
	struct upstream *prev, *next; /* pool->all */
	struct upstream *idle_next;   /* be->pool */
	struct loop_io io;
	struct loop_timer timer; /* the owner's while attached */
	struct loop_deferred reap;
	enum upstream_state state;
	struct route_backend *be; /* referenced */
	void *owner;              /* NULL while idle */
	struct upstream **owner_ref;
	struct buf in, out;
	bool wblocked; /* last write hit EAGAIN: wait for LOOP_WRITE */
	bool rd_eof;
	bool wr_shut;
	bool reused; /* taken from the pool */
	bool dead;   /* closed, free deferred */
	uint64_t last_active;
};

/* Prepares pool p on loop: idle_max idle connections kept per backend for
 * idle_timeout microseconds; attached upstreams report to on_io and
 * on_timer. */
void upstream_pool_init(struct upstream_pool *p, struct loop *loop, size_t idle_max,
                        uint64_t idle_timeout, upstream_io_fn on_io, upstream_timer_fn on_timer);

/* Takes the most recently pooled idle connection to b, now UPSTREAM_ACTIVE
 * and marked reused; NULL when b has none. Its timer still runs the idle
 * timeout: attach it and restart the timer before returning to the loop. */
struct upstream *upstream_take(struct upstream_pool *p, struct route_backend *b);

/* Starts a non-blocking connection to b (TCP_NODELAY, O_CLOEXEC). Returns 0
 * and *ret, UPSTREAM_ACTIVE when connect(2) completed at once, else
 * UPSTREAM_CONNECTING (upstream_connected() tells the outcome once the
 * socket is writable); or -errno, with *ret_refused true when the dyno
 * refused at once (connect(2) failed: try another) and false for a local
 * failure (socket(2), memory). The upstream holds a reference on b; attach
 * it before returning to the loop. */
int upstream_connect(struct upstream_pool *p, struct route_backend *b, struct upstream **ret,
                     bool *ret_refused);

/* Gives u to owner, which keeps it in *ref until u is released or closed
 * (then *ref is set to NULL); counts a request in flight on u's backend.
 * u's socket is not watched yet: the owner sets its interest. */
void upstream_attach(struct upstream *u, void *owner, struct upstream **ref);

/* The outcome of an UPSTREAM_CONNECTING connect, once writable: 0 (now
 * UPSTREAM_ACTIVE) or -errno (SO_ERROR; u stays as it is, to be closed). */
int upstream_connected(struct upstream *u);

/* Detaches u from its owner: back into its backend's pool when keep and
 * reusable (the backend is still routed, its pool has room, nothing was
 * left unread, the dyno did not close, the pool is not closing), closed
 * otherwise. A pooled upstream is read only to notice a close, for
 * pool->idle_timeout at most. */
void upstream_release(struct upstream *u, bool keep);

/* Closes u: stops its watchers, closes the socket, detaches it from its
 * owner or its pool, drops the backend reference and defers the free.
 * Accepts NULL and a closed upstream. */
void upstream_close(struct upstream *u);

/* Closes the idle connections of b (removed from the table, draining). */
void upstream_close_idle(struct route_backend *b);

/* Closes every upstream of p, attached or idle. */
void upstream_pool_close_all(struct upstream_pool *p);
