/* The PostgreSQL add-on's parts (addon-pg.c: records, operations, on the
 * loop; addon-pg-run.c: the programs it runs, on a worker thread). Not for
 * other modules: the interface is addon-pg.h. */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/config.h"
#include <jansson.h>

#include "common/error.h"

/* Where and how the cluster runs: made once by pgw_env_init() on the loop,
 * read-only afterwards (the worker reads it). */
struct pg_env {
	char *data;     /* <state_dir>/addons/postgresql */
	char *data_new; /* ... .new, while initdb runs */
	char *sockdir;  /* PG_SOCKET_PARENT/dyno-pg-<12 hex> */
	char gw[INET_ADDRSTRLEN];
	unsigned port;
	uid_t uid; /* postgres's */
	gid_t gid;
};

int pgw_env_init(struct pg_env *e, const struct config *cfg, struct dy_error **err);
void pgw_env_clear(struct pg_env *e);

/* The pid of the postmaster running on e->data (postmaster.pid names it, its
 * comm is postgres, its data directory line is e->data), else 0. */
pid_t pgw_server_pid(const struct pg_env *e);

/* Makes the cluster when it is not there (initdb as postgres into
 * data_new, its configuration, a self-signed certificate, then the rename)
 * and starts the server when none runs (pg_ctl -w, its own session).
 * *ret_pid: the postmaster's pid. Blocks: a worker thread's. */
int pgw_ensure(const struct pg_env *e, pid_t *ret_pid, struct dy_error **err);

/* Runs statements (each its own transaction: psql -c each, stopping at
 * the first error) as postgres over the Unix socket on database db;
 * *out (may be NULL): what psql printed (unaligned, tuples only). */
int pgw_sql(const struct pg_env *e, const char *db, const char *const *stmts, size_t n, char **out,
            struct dy_error **err);

/* "ident" with embedded quotes doubled; 'literal' likewise. Newly
 * allocated, NULL when memory is short. */
char *pgw_ident(const char *s);
char *pgw_literal(const char *s);

/* pg_dump -Fc of db into path (path.tmp, fsync, rename: a failed capture
 * leaves nothing), 0600 root's. */
int pgw_capture(const struct pg_env *e, const char *db, const char *path, struct dy_error **err);

/* pg_restore of path into db, as its role (objects the role's), in one
 * transaction: --clean --if-exists, all or nothing. */
int pgw_restore(const struct pg_env *e, const char *db, const char *path, struct dy_error **err);

/* Removes dir's files and dir (a flat backups directory). */
void pgw_remove_dir(const char *dir);

/* Writes an HTTP 200 of path's bytes (application/octet-stream) to the
 * socket fd, blocking: a worker's. */
int pgw_send_file(int fd, const char *path, struct dy_error **err);

/* <state_dir>/addons/backups/<addon> (newly allocated, NULL: no memory). */
char *pgb_dir(const char *state_dir, const char *addon);

/* The backup object {id, num, created_at, size, addon} of id in dir; NULL
 * when there is none. New reference. */
json_t *pgb_json(const char *dir, const char *addon, const char *id);

/* The backups in dir, oldest first. New reference. */
json_t *pgb_list_json(const char *dir, const char *addon);

/* Into out: the next id (next), the newest (id NULL or "latest") or id itself
 * (b + at least 3 digits: "b007" and "b0007" alike) when it exists. Returns 0 or -ENOENT. */
int pgb_pick(const char *dir, const char *id, bool next, char out[16]);
