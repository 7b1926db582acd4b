/* The writer of routes.json (docs/design.md, "Internal contract:
 * routes.json"; the router reads it, router/routes.c): dynod's routing
 * table, rendered from the apps and their web dynos and replaced
 * atomically (temporary file, fsync, rename, fsync of the directory), so
 * the router never reads half a file.
 *
 * Each write carries a version one above the last, going on from the
 * file's across dynod's restarts. An app's state is "no-web" (no web type,
 * or web scaled to 0), "crashed" (a web dyno crashed and none up) or "up";
 * its backends are its web dynos that are up, "draining" while stopped;
 * "maintenance" while the app is in maintenance mode, whatever runs. */
#pragma once

#include <jansson.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"
#include "runtime/manager/lifecycle.h"

/* A web dyno as routes.json sees it (borrowed strings). */
struct rw_dyno {
	const char *name; /* "web.1" */
	const char *id;   /* unique: the router's key (a name repeats in a rollout) */
	enum lc_state state;
	bool stopping;
	bool running; /* has a process: addr is valid */
	struct in_addr addr;
	uint16_t port;
};

/* An app and its web dynos (formation dynos of type web, not one-offs). */
struct rw_app {
	const char *name;
	bool web; /* its current release has a web type scaled above 0 */
	bool maintenance; /* "maintenance": the router answers H80 */
	const char *const *hosts; /* custom hostnames besides <app>.<domain> */
	size_t nhosts;
	const struct rw_dyno *dynos;
	size_t ndynos;
};

#define RW_FILE_MODE 0640 /* root's, readable by api_group */
#define RW_ADDR_MAX  (16 + 8)

/* A backend's "addr" as routes.json writes it ("10.213.0.5:5000"): also
 * how the router's /metrics names it (drain-watch.h). */
void rw_addr_text(struct in_addr addr, uint16_t port, char buf[RW_ADDR_MAX]);

struct rw_writer;

/* A writer of <dir>/routes.json for hosts "<app>.<domain>" (both copied),
 * the file root's and group gid's, mode 0640 (docs/operating.md). The
 * version goes on from the file's when there is one. Returns 0 and *ret
 * (rw_free()), or < 0. */
int rw_new(const char *dir, const char *domain, gid_t gid, struct rw_writer **ret,
           struct dy_error **err);

/* Frees w. Accepts NULL. */
void rw_free(struct rw_writer *w);

/* The version of the last write (or of the file found by rw_new()). */
uint64_t rw_version(const struct rw_writer *w);

/* The document for napps apps at version: {"version": N, "apps": [...]}.
 * New reference, NULL when out of memory. */
json_t *rw_render(uint64_t version, const char *domain, const struct rw_app *apps, size_t napps);

/* Replaces routes.json with the apps, at the next version (a failed write
 * uses one up too: the router only compares). Returns 0, or < 0 with the
 * file as it was and no temporary file left. */
int rw_write(struct rw_writer *w, const struct rw_app *apps, size_t napps, struct dy_error **err);
