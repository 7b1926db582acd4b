/* The PostgreSQL add-on, embedded (docs/addons.md): dynod's own
 * PostgreSQL 15 cluster (Debian's postgresql-15, run as `postgres`) and one
 * database and role per add-on.
 *
 * The cluster is made with initdb under <state_dir>/addons/postgresql
 * (0700, postgres's; made as postgresql.new and renamed, so a failed
 * initdb leaves nothing) on the first add-on, with a self-signed TLS
 * certificate and a pg_hba.conf of `hostssl sameuser` with scram-sha-256
 * only. It listens on the gateway address (network.subnet's first, on the
 * link net_gateway_setup() made) at addons.postgresql.port and on a Unix
 * socket in PG_SOCKET_PARENT/dyno-pg-<12 hex of sha256(state_dir)> (a
 * socket path has at most 107 bytes: the state dir may be long), never on
 * the host's other addresses.
 *
 * Everything that runs a program (initdb, openssl, pg_ctl, psql) runs on
 * the work pool, one operation at a time (so the cluster is made and
 * started once); completions come back on the loop. The server is started
 * with pg_ctl in a session of its own and lives like the router: kept
 * across kill -9 and SIGQUIT of dynod, re-adopted from postmaster.pid (pid,
 * comm `postgres`, data directory) and watched through a pidfd; a server
 * that dies is started again after PG_RESTART_USEC; pg_stop() (SIGTERM,
 * SIGINT of dynod) stops it fast.
 *
 * Backups are pg_dump's custom format under <state_dir>/addons/backups.
 *
 * External mode (addons.postgresql.mode "external", addon-pg-ext.c): no
 * cluster; the databases and roles are made on the server of
 * addons.postgresql.url (an administrator's URL) by the same clients, run
 * as root with the connection in their environment, and the gateway port
 * is forwarded there (net_forward_port(): a DNAT, removed by pg_stop()).
 *
 * The add-ons are recorded in <state_dir>/addons/addons.json (0600,
 * replaced atomically): app, name, the config var it set, its URL. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "common/config.h"
#include "common/error.h"
#include "common/loop.h"
#include "common/work.h"

struct mgr;
struct pg;
struct pg_op;

#define PG_BIN_DIR       "/usr/lib/postgresql/15/bin"
#define PG_USER          "postgres"
#define PG_ADDONS_DIR    "addons"            /* under state_dir, 0711 root */
#define PG_DATA_DIR      "addons/postgresql" /* under state_dir */
#define PG_ADDONS_FILE   "addons/addons.json"
#define PG_BACKUPS_DIR   "addons/backups" /* under state_dir, 0700 root */
#define PG_SOCKET_PARENT "/run"
#define PG_RESTART_USEC  (1000ull * 1000)
#define PG_NAME_MAX      63 /* a PostgreSQL identifier */

/* The report of an operation, on the loop: j (new reference, the callee's)
 * on success, else err (the callee's to free; its message names what was
 * wrong). Not called once the operation is detached. */
typedef void (*pg_cb)(void *arg, json_t *j, struct dy_error *err);

/* The add-on keeper of cfg on loop, with m (for config var releases) and
 * pool (borrowed; pg_stop_work() before the pool is freed, pg_free()
 * after). Reads addons.json (marking the apps with add-ons), re-adopts a
 * running server, or starts one when add-ons exist. Returns 0 and *ret, or
 * < 0 (a file that cannot be read). */
int pg_new(struct loop *loop, const struct config *cfg, struct mgr *m, struct work_pool *pool,
           struct pg **ret, struct dy_error **err);

/* Forgets the server (it keeps running: the next dynod adopts it) and
 * frees pg. Accepts NULL. Call after the work pool is freed. */
void pg_free(struct pg *pg);

/* Before the work pool is freed: nothing more is submitted; queued
 * operations fail ("dynod is stopping"). */
void pg_stop_work(struct pg *pg);

/* Stops the server fast (SIGINT; SIGQUIT after 30 s), waiting for it:
 * dynod's SIGTERM/SIGINT, after the loop. */
void pg_stop(struct pg *pg);

/* GET: the add-ons of app (a list), or the one called name (NULL with
 * DY_E_NOT_FOUND). New reference. */
json_t *pg_addons_json(struct pg *pg, const char *app, const char *name, struct dy_error **err);

/* POST: a new add-on of service ("postgresql") for app, its config var
 * NAME_URL (as NULL: DATABASE first, then HEROKU_POSTGRESQL_<COLOR>); cb
 * gets the add-on object once its database, role and release exist. A
 * failure leaves no database, no role, no var. Returns 0 and *ret_op
 * (valid until cb runs), or < 0 (refused at once: cb is not called). */
int pg_create(struct pg *pg, const char *app, const char *service, const char *as, pg_cb cb,
              void *arg, struct pg_op **ret_op, struct dy_error **err);

/* DELETE: drops add-on name of app (database, role), then unsets its var
 * (a new release); cb gets the add-on object. As pg_create(). */
int pg_destroy(struct pg *pg, const char *app, const char *name, pg_cb cb, void *arg,
               struct pg_op **ret_op, struct dy_error **err);

/* pg:info's figures of add-on name of app: {name, version, state,
 * data_size, tables, connections, connection_limit}. As pg_create(). */
int pg_info(struct pg *pg, const char *app, const char *name, pg_cb cb, void *arg,
            struct pg_op **ret_op, struct dy_error **err);

/* Backups (docs/addons.md, "Backups"): pg_dump's custom format, in
 * <state_dir>/addons/backups/<name>/bNNN.dump (0600 root's), gone with the
 * add-on. The list of add-on name's backups (a JSON list), or NULL with
 * DY_E_NOT_FOUND. */
json_t *pg_backups_json(struct pg *pg, const char *app, const char *name, struct dy_error **err);

/* Captures a new backup (the next bNNN); cb gets its object. As
 * pg_create(). */
int pg_capture(struct pg *pg, const char *app, const char *name, pg_cb cb, void *arg,
               struct pg_op **ret_op, struct dy_error **err);

/* Restores backup id (NULL: the newest) into add-on name's database, all
 * or nothing (the database's objects replaced, as its role's); cb gets the
 * backup's object. As pg_create(). */
int pg_restore(struct pg *pg, const char *app, const char *name, const char *id, pg_cb cb,
               void *arg, struct pg_op **ret_op, struct dy_error **err);

/* Answers on the socket fd (taken, closed once done: the connection is
 * handed over) 200 with backup id's bytes, off the loop. Returns 0, or < 0
 * (fd not taken) for an unknown add-on or backup. */
int pg_download(struct pg *pg, const char *app, const char *name, const char *id, int fd,
                struct dy_error **err);

/* App name is destroyed: its databases and roles are dropped, its records
 * go. */
void pg_app_destroyed(struct pg *pg, const char *app);

/* The operation's cb will not be called (its requester is gone). Accepts
 * NULL. */
void pg_op_detach(struct pg_op *op);
