/* The admin listener's HTTP server: GET /metrics (Prometheus text) and
 * GET /health; one request per connection. */
#pragma once

#include <sys/socket.h>

#include "common/error.h"

struct loop;
struct proxy;
struct rlog;
struct admin;

/* Creates the server over px's counters and table and l's log counters
 * (both borrowed). Returns 0 and *ret (free with admin_free()), or < 0. */
int admin_new(struct loop *loop, struct proxy *px, struct rlog *l, struct admin **ret,
              struct dy_error **err);

/* An lsn_accept_fn: serves one connection (fd owned). */
void admin_accept(void *data, int fd, const struct sockaddr *peer, unsigned port);

/* Closes every connection and frees a. Accepts NULL. */
void admin_free(struct admin *a);
