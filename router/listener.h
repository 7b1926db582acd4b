/* Listening sockets of dyno-router: bound from the configuration, or
 * handed over by dynod (systemd's LISTEN_FDS protocol), accepted in
 * batches from the event loop. */
#pragma once

#include <stddef.h>
#include <sys/socket.h>

#include "common/error.h"

struct loop;
struct lsn;

/* Called with each accepted socket (non-blocking, close-on-exec), owned by
 * the callee, its peer, and the local port of the listener. */
typedef void (*lsn_accept_fn)(void *data, int fd, const struct sockaddr *peer, unsigned port);

/* Binds and listens on sa (SO_REUSEADDR, backlog 4096). Returns the
 * socket (non-blocking, close-on-exec) or < 0; errors name text. */
int lsn_bind(const struct sockaddr *sa, socklen_t len, const char *text, struct dy_error **err);

/* The sockets handed over as LISTEN_FDS=N (from fd 3; LISTEN_PID, when
 * set, must be ours), named by LISTEN_FDNAMES (":"-separated; dynod names
 * the admin socket "admin"): made non-blocking and close-on-exec and kept
 * at their numbers, for dynod finds them there again with pidfd_getfd(2)
 * when it re-adopts the router (docs/router.md). The admin socket goes to
 * *ret_admin (-1 when none was named), the others to fds (at most max).
 * Returns how many are in fds, 0 when none were given. */
size_t lsn_inherited(int *fds, size_t max, int *ret_admin);

/* Watches listening socket fd (owned from now on) and calls fn for each
 * connection. Returns 0 and *ret (free with lsn_free()), or < 0. */
int lsn_start(struct loop *loop, int fd, lsn_accept_fn fn, void *data, struct lsn **ret,
              struct dy_error **err);

/* The local port of l. */
unsigned lsn_port(const struct lsn *l);

/* Stops accepting and closes the socket. Accepts NULL. */
void lsn_free(struct lsn *l);
