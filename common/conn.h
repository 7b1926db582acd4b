/* What every connection of our servers (the router's clients and admin
 * listener, the Platform API) has in common: its socket watcher, its timer,
 * its deferred free and its place in the server's list. Embed a struct
 * dy_conn in the connection and find the connection again from a callback
 * with loop_container_of(io, struct foo, conn.io).
 *
 * dy_conn_close() does what common/loop.h asks of a close: stop the
 * watchers, then close the socket, then free only after the dispatch round,
 * through the deferred call (which cannot fail). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/loop.h"

struct dy_conn {
	struct dy_conn *prev, *next; /* in the server's list */
	struct loop_io io;
	struct loop_timer timer;
	struct loop_deferred reap;
	bool closed;
};

/* A server's open connections. */
struct dy_conn_list {
	struct dy_conn *head;
	size_t n;
};

/* Prepares c on the socket fd (owned by c from here): io_fn gets its
 * events, timer_fn its timer, free_fn frees the connection after
 * dy_conn_close(). */
void dy_conn_init(struct dy_conn *c, int fd, loop_io_fn io_fn, loop_timer_fn timer_fn,
                  loop_defer_fn free_fn);

/* Links c first in list, watches its socket for reading and, unless
 * timeout_usec is 0, starts its timer. Returns 0, or < 0 after
 * dy_conn_close() (epoll or memory refused: c's free is deferred). */
int dy_conn_start(struct loop *loop, struct dy_conn_list *list, struct dy_conn *c,
                  uint64_t timeout_usec);

/* Stops c's watcher and timer, closes its socket, unlinks it from list and
 * defers its free. Returns true, or false when c was closed already (a
 * no-op). */
bool dy_conn_close(struct loop *loop, struct dy_conn_list *list, struct dy_conn *c);
