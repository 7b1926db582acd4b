/* The PostgreSQL add-on's parts (addon-pg.c: records, operations, on the
 * loop; addon-pg-backup.c: the backups; addon-pg-run.c: the programs it
 * runs, on a worker thread). Not for other modules: the interface is
 * addon-pg.h. */
#pragma once

#include <jansson.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/config.h"
#include "common/error.h"
#include "common/loop.h"
#include "common/work.h"
#include "runtime/manager/addon-pg.h"
#include "runtime/manager/state.h"

/* Where and how the cluster runs: made once by pgw_env_init() on the loop,
 * read-only afterwards (the worker reads it). */
/* The programs (initdb, pg_ctl, the server) run as postgres in a mount
 * namespace of their own where <state_dir>/addons is bound at
 * <sockdir>/d: postgres reaches its data whatever the modes of the
 * directories above the state dir (a clone under /root, 0700). data and
 * data_new are the paths they see; host_data and host_data_new dynod's. */
struct pg_env {
	char *data;          /* <sockdir>/d/postgresql */
	char *data_new;      /* ... .new, while initdb runs */
	char *host_data;     /* <state_dir>/addons/postgresql */
	char *host_data_new; /* ... .new */
	char *mnt_src;       /* <state_dir>/addons */
	char *mnt_dst;       /* <sockdir>/d */
	char *sockdir;       /* PG_SOCKET_PARENT/dyno-pg-<12 hex> */
	char gw[INET_ADDRSTRLEN];
	unsigned port;
	uid_t uid; /* postgres's */
	gid_t gid;
	/* external mode (addon-pg-ext.c): addons.postgresql.url's parts;
	 * nothing above but gw and port is set then. dynod's clients run as
	 * root (no namespace), the connection in their environment. */
	bool external;
	char *ext_host; /* as the URL names it */
	char ext_addr[INET_ADDRSTRLEN];
	struct in_addr ext_to; /* ext_host's address, looked up once */
	unsigned ext_port;
	char *ext_user, *ext_password, *ext_db; /* decoded */
	char *ext_sslmode, *ext_sslrootcert;    /* NULL: libpq's default */
};

/* How long dynod's clients wait for the external server (seconds). */
#define PG_EXT_CONNECT_TIMEOUT 10

/* ---- addon-pg.c's, shared with addon-pg-backup.c ---- */

struct pg_addon {
	char app[STATE_APP_NAME_MAX + 1];
	char name[PG_NAME_MAX + 1];
	char var[PG_NAME_MAX + 1]; /* DATABASE: the config var is DATABASE_URL */
	char created_at[STATE_TIME_LEN + 1];
	char *url;
};

enum pg_op_kind { OP_START, OP_CREATE, OP_DROP, OP_INFO, OP_CAPTURE, OP_RESTORE, OP_SWEEP };

struct pg_op {
	struct work work;
	struct pg *pg;
	struct pg_op *next; /* queued */
	enum pg_op_kind kind;
	pg_cb cb; /* NULL: detached, or nobody asked */
	void *arg;
	struct pg_addon a; /* the add-on it is about (a.url owned) */
	char password[64];
	bool app_gone;   /* its app was destroyed: no release */
	char *dir;       /* the add-on's backups directory */
	char backup[16]; /* OP_CAPTURE, OP_RESTORE: bNNN */
	char *keep;      /* OP_SWEEP: the recorded names, one a line */
	/* the worker's results */
	int r;
	struct dy_error *err;
	pid_t pid; /* the server's */
	char *out;
};

struct pg {
	struct loop *loop;
	const struct config *cfg;
	struct mgr *mgr;
	struct work_pool *pool;
	struct pg_env env;
	char *file; /* addons.json */
	struct pg_addon *addons;
	size_t n;
	struct pg_op *head, *tail; /* queued, not yet submitted */
	struct pg_op *running;
	bool no_more; /* the pool is going: nothing more is submitted */
	bool stopping;
	pid_t pid; /* the server, 0 when none is watched */
	struct loop_child child;
	struct loop_timer restart;
};

/* The record of add-on name (NULL: the first) of app, or NULL. */
struct pg_addon *pg_find(struct pg *pg, const char *app, const char *name);

/* Queues an operation of kind on app's add-on name (a copy of its record),
 * with its backups directory: not started before pg_ops_go(), so that the
 * caller fills in the rest first (the worker reads it). Returns 0 and
 * *ret_op (may be NULL), or < 0 (DY_E_NOT_FOUND). */
int pg_op_on(struct pg *pg, enum pg_op_kind kind, const char *app, const char *name, pg_cb cb,
             void *arg, struct pg_op **ret_op, struct dy_error **err);

/* Starts the next queued operation unless one runs. */
void pg_ops_go(struct pg *pg);

/* ---- addon-pg-run.c: on a worker thread ---- */

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

/* Runs statements (each its own transaction, stopping at the first error;
 * fed through psql's stdin, never its argv) as postgres over the Unix
 * socket on database db;
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

/* ---- addon-pg-ext.c ---- */

/* External mode: url's parts into e (e->gw and e->port set before), the
 * host looked up (IPv4). Returns 0, or < 0 naming what was wrong. */
int pgw_ext_init(struct pg_env *e, const char *url, struct dy_error **err);
void pgw_ext_clear(struct pg_env *e);

/* The environment of a client of the external server (PGHOST, PGPASSWORD,
 * ...), NULL-terminated, for pgw_envp_free(); NULL: no memory. */
char **pgw_ext_envp(const struct pg_env *e);
void pgw_envp_free(char **envp);

/* The DNAT of the gateway port to the external server (net_forward_port). */
int pg_ext_forward(const struct pg_env *e, struct dy_error **err);

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
