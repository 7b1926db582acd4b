/* The routing table of dyno-router, read from routes.json (docs/design.md,
 * "Internal contract: routes.json"): apps, their hosts, their state and
 * their web backends. A reload builds a new table which takes over the
 * backend objects of the old one that are still listed (same app, dyno and
 * address), so their health, in-flight count and idle pool survive it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/error.h"

enum route_state {
	ROUTE_UP = 0,
	ROUTE_CRASHED,     /* H10 */
	ROUTE_NO_WEB,      /* H14 */
	ROUTE_MAINTENANCE, /* H80 */
};

const char *route_state_str(enum route_state s);

struct bal_waiter;
struct hc_check;
struct upstream;

/* One web dyno of an app. Reference counted: the table holds one
 * reference, every connection using it another. */
struct route_backend {
	unsigned refs;
	char *app;         /* the app's name, owned */
	char *health_path; /* NULL: TCP checks; owned */
	char *health_host; /* Host of health requests: the app's first host; owned */
	char dyno[32];
	/* the dyno's unique id (routes.json's "id"): the key across reloads,
	 * as a dyno's name repeats while an old one drains beside its
	 * successor; the name when a table gives none */
	char id[64];
	char addr_text[64];
	struct sockaddr_storage sa;
	socklen_t sa_len;
	bool draining; /* no new requests */
	bool removed;  /* no longer in the table */
	bool keepalive;
	/* balancer */
	unsigned inflight;
	uint64_t skip_until; /* monotonic microseconds; skipped before it */
	bool healthy;
	struct bal_waiter *wait_head, *wait_tail; /* requests waiting for it, FIFO */
	unsigned nwait;
	/* owned by other modules */
	struct hc_check *hc;   /* health.c */
	struct upstream *pool; /* upstream.c: idle keep-alive connections */
	size_t npool;
	uint64_t requests; /* served, for /metrics */
};

struct route_app {
	char *name;
	char **hosts;
	size_t nhosts;
	enum route_state state;
	bool keepalive;
	char *health_path;
	struct route_backend **backends;
	size_t nbackends;
};

struct route_table {
	int64_t version;
	struct route_app *apps;
	size_t napps;
	/* open-addressing index: lower-case host -> app index + 1 (0 empty) */
	char **index_keys;
	size_t *index_vals;
	size_t index_cap;
};

/* Called when a backend enters the table (added) or leaves it (removed,
 * draining changed). Set by the router; NULL hooks are skipped. */
struct route_hooks {
	void (*added)(struct route_backend *b, void *data);
	void (*removed)(struct route_backend *b, void *data);
	void *data;
};

/* Parses routes.json from json[0..len). Hosts are matched case-insensitively,
 * and every app also answers on "NAME.<domain>". Backends of old (may be
 * NULL) that are listed again (same app, dyno, addr) are taken over; new
 * ones start healthy. Returns 0 and the new table in *ret (owned by the
 * caller, free with route_table_free()), or < 0 with an error naming the
 * key; old is left untouched on failure. hooks->added is called for new
 * backends only after success. */
int route_table_parse(const char *json, size_t len, const char *domain,
                      const struct route_table *old, const struct route_hooks *hooks,
                      struct route_table **ret, struct dy_error **err);

/* An empty table (every host unknown). Never fails but on ENOMEM (NULL). */
struct route_table *route_table_empty(void);

/* Calls hooks->removed for the backends of old that are absent from new
 * (new may be NULL: all of them), marking them removed. */
void route_table_retire(const struct route_table *old, const struct route_table *new_table,
                        const struct route_hooks *hooks);

/* The app for a Host value (port ignored, case-insensitive), or NULL. */
struct route_app *route_lookup(const struct route_table *t, const char *host, size_t len);

/* Frees the table and drops its backend references. Accepts NULL. */
void route_table_free(struct route_table *t);

/* Takes / drops a reference to b; the last drop frees it. */
void route_backend_ref(struct route_backend *b);
void route_backend_unref(struct route_backend *b);

/* Parses "A.B.C.D:PORT" or "[V6]:PORT" (PORT 0..65535) into sa. Returns 0
 * or < 0. */
int route_parse_addr(const char *text, struct sockaddr_storage *sa, socklen_t *ret_len);

/* Reads the file at path (at most 16 MiB) and parses it as
 * route_table_parse() does; errors name the path. */
int route_table_load(const char *path, const char *domain, const struct route_table *old,
                     const struct route_hooks *hooks, struct route_table **ret,
                     struct dy_error **err);
