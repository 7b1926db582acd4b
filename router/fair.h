/* The router's fair share among apps (docs/router.md, "Limits"): how many
 * client connections each app holds, the bound on them
 * (router.max_connections_per_app), and the floor of free file descriptors
 * that no single app may take. One slow app (a backend that holds its
 * connections) then costs its own app only: its new requests are refused
 * with H11 while every other app is still served.
 *
 * A client connection counts against an app once the Host of its request
 * is known (fair_join()), until it closes or its next request names
 * another app (fair_leave(), then fair_join()). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FAIR_FD_FLOOR_MIN 64 /* the free-fd floor: this, or 5% of the limit */

/* One app's count; the entry lives while a connection counts against it. */
struct fair_app {
	struct fair_app *next; /* in its hash bucket */
	unsigned conns;
	char name[];
};

struct fair {
	struct fair_app **buckets;
	size_t nbuckets;
	size_t napps;      /* apps with at least one connection */
	unsigned max_app;  /* connections per app */
	uint64_t fd_limit; /* RLIMIT_NOFILE in force; 0: no floor */
	uint64_t fd_floor; /* free fds kept back once low */
};

/* Prepares f: max_app connections per app, fd_limit the open-file limit
 * (0: unknown, no floor). Returns 0 or -ENOMEM. */
int fair_init(struct fair *f, unsigned max_app, uint64_t fd_limit);

/* Frees what f holds (the entries of apps still counted too). */
void fair_done(struct fair *f);

/* The floor of free fds for limit: 5% of it, at least FAIR_FD_FLOOR_MIN
 * (and never above half of it). */
uint64_t fair_fd_floor(uint64_t limit);

/* Counts one more connection against app. Returns its entry (owned by f,
 * valid until the matching fair_leave()), or NULL when memory is short. */
struct fair_app *fair_join(struct fair *f, const char *app);

/* Counts one connection less against a (NULL: a no-op); a's entry is freed
 * when it was the last. */
void fair_leave(struct fair *f, struct fair_app *a);

/* Whether a request of a connection counted on a must be refused (H11):
 * joined (the connection was counted against a for this request) and a
 * now holds more than max_app connections, so that only the connection
 * past the bound is refused, not the requests of those under it; or free
 * fds are low (fds_open of fd_limit leave fewer than fd_floor) and a holds
 * more than its fair share, the usable fds split evenly among the apps
 * holding connections (each connection may hold a dyno connection too: two
 * fds). */
bool fair_refuse(const struct fair *f, const struct fair_app *a, bool joined, uint64_t fds_open);
