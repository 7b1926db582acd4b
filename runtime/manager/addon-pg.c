/* The PostgreSQL add-on on dynod's loop: records, operations, the server's
 * watch; see addon-pg.h. */
#include "runtime/manager/addon-pg.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/macro.h"
#include "runtime/launcher/net.h"
#include "runtime/manager/addon-pg-internal.h"
#include "runtime/manager/manager.h"
#include "runtime/manager/state.h"

#define ADDONS_SCHEMA 1

/* Heroku-like names: postgresql-<word>-<5 digits> */
static const char *const words[] = {
    "amber",       "angular",    "animate",     "aromatic",    "backlit",  "bright",
    "clean",       "closed",     "concave",     "cubic",       "curly",    "deep",
    "dimensional", "elliptical", "encircled",   "flat",        "fluffy",   "graceful",
    "horizontal",  "infinite",   "opaque",      "parallel",    "polished", "reticulated",
    "rigged",      "round",      "shallow",     "silhouetted", "solid",    "spherical",
    "symmetrical", "tapered",    "transparent", "triangular",  "vertical"};

static const char *const colors[] = {
    "AMBER", "AQUA",   "BLACK", "BLUE",   "BRONZE", "COBALT", "COPPER", "CRIMSON", "GOLD",
    "GRAY",  "GREEN",  "IVORY", "JADE",   "MAROON", "NAVY",   "OLIVE",  "ONYX",    "ORANGE",
    "PINK",  "PURPLE", "RED",   "SILVER", "TEAL",   "WHITE",  "YELLOW"};

static void fill_random(void *buf, size_t n)
{
	uint8_t *p = buf;
	while (n > 0) {
		ssize_t k = getrandom(p, n, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			abort(); /* no entropy at all: never hand out a guessable password */
		p += k;
		n -= (size_t)k;
	}
}

/* 43 URL-safe characters (256 bits). */
static void make_password(char out[64])
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	uint8_t raw[43];
	fill_random(raw, sizeof(raw));
	for (size_t i = 0; i < sizeof(raw); i++)
		out[i] = b64[raw[i] & 63];
	out[sizeof(raw)] = '\0';
}

struct pg_addon *pg_find(struct pg *pg, const char *app, const char *name)
{
	for (size_t i = 0; i < pg->n; i++)
		if (strcmp(pg->addons[i].app, app) == 0 &&
		    (name == NULL || strcmp(pg->addons[i].name, name) == 0))
			return &pg->addons[i];
	return NULL;
}

static bool name_used(struct pg *pg, const char *name)
{
	for (size_t i = 0; i < pg->n; i++)
		if (strcmp(pg->addons[i].name, name) == 0)
			return true;
	return false;
}

static bool var_used(struct pg *pg, const char *app, const char *var)
{
	for (size_t i = 0; i < pg->n; i++)
		if (strcmp(pg->addons[i].app, app) == 0 && strcmp(pg->addons[i].var, var) == 0)
			return true;
	return false;
}

static void mark_app(struct pg *pg, const char *app, int delta)
{
	struct state_app *sa = state_app_find(mgr_state(pg->mgr), app);
	if (sa && (delta > 0 || sa->addons > 0))
		sa->addons = (unsigned)((int)sa->addons + delta);
}

static json_t *addon_json(const struct pg *pg, const struct pg_addon *a)
{
	const char *plan =
	    pg->cfg->addons.postgresql.mode == CONFIG_PG_EXTERNAL ? "external" : "embedded";
	char var[PG_NAME_MAX + 8];
	snprintf(var, sizeof(var), "%s_URL", a->var);
	return json_pack("{s:s, s:s, s:s, s:s, s:[s], s:s, s:{s:s}}", "name", a->name, "service",
	                 "postgresql", "plan", plan, "state", "provisioned", "config_vars", var,
	                 "created_at", a->created_at, "app", "name", a->app);
}

/* addons.json, replaced atomically (0600 root: it holds the URLs). */
static int save(struct pg *pg, struct dy_error **err)
{
	_cleanup_json_ json_t *list = json_array();
	if (!list)
		return dy_error_errno(err, ENOMEM, "addons");
	for (size_t i = 0; i < pg->n; i++) {
		const struct pg_addon *a = &pg->addons[i];
		json_array_append_new(list, json_pack("{s:s, s:s, s:s, s:s, s:s}", "app", a->app,
		                                      "name", a->name, "var", a->var, "created_at",
		                                      a->created_at, "url", a->url));
	}
	_cleanup_json_ json_t *doc =
	    json_pack("{s:i, s:O}", "schema_version", ADDONS_SCHEMA, "addons", list);
	_cleanup_free_ char *text = doc ? json_dumps(doc, JSON_INDENT(1)) : NULL;
	if (!text)
		return dy_error_errno(err, ENOMEM, "addons");
	return dy_write_file_atomic(pg->file, text, strlen(text), 0600, err);
}

static int load(struct pg *pg, struct dy_error **err)
{
	json_error_t je;
	_cleanup_json_ json_t *doc = json_load_file(pg->file, 0, &je);
	if (!doc) {
		if (access(pg->file, F_OK) < 0 && errno == ENOENT)
			return 0;
		return dy_error(err, "%s: %s (line %d)", pg->file, je.text, je.line);
	}
	json_t *list = json_object_get(doc, "addons");
	json_t *ver = json_object_get(doc, "schema_version");
	if (!json_is_integer(ver) || json_integer_value(ver) != ADDONS_SCHEMA ||
	    !json_is_array(list))
		return dy_error(err, "%s: expected schema_version %d and a list of addons",
		                pg->file, ADDONS_SCHEMA);
	size_t n = json_array_size(list);
	pg->addons = calloc(n ? n : 1, sizeof(*pg->addons));
	if (!pg->addons)
		return dy_error_errno(err, ENOMEM, "addons");
	for (size_t i = 0; i < n; i++) {
		const char *app, *name, *var, *created, *url;
		if (json_unpack(json_array_get(list, i), "{s:s, s:s, s:s, s:s, s:s}", "app", &app,
		                "name", &name, "var", &var, "created_at", &created, "url",
		                &url) < 0 ||
		    strlen(app) > STATE_APP_NAME_MAX || strlen(name) > PG_NAME_MAX ||
		    strlen(var) > PG_NAME_MAX || strlen(created) > STATE_TIME_LEN)
			return dy_error(err,
			                "%s: add-on %zu is not {app, name, var, created_at, url}",
			                pg->file, i + 1);
		struct pg_addon *a = &pg->addons[pg->n];
		snprintf(a->app, sizeof(a->app), "%s", app);
		snprintf(a->name, sizeof(a->name), "%s", name);
		snprintf(a->var, sizeof(a->var), "%s", var);
		snprintf(a->created_at, sizeof(a->created_at), "%s", created);
		a->url = strdup(url);
		if (!a->url)
			return dy_error_errno(err, ENOMEM, "addons");
		pg->n++;
		mark_app(pg, a->app, 1);
	}
	return 0;
}

static int add_record(struct pg *pg, struct pg_addon *a, struct dy_error **err)
{
	struct pg_addon *more = realloc(pg->addons, (pg->n + 1) * sizeof(*more));
	if (!more)
		return dy_error_errno(err, ENOMEM, "addons");
	pg->addons = more;
	pg->addons[pg->n++] = *a;
	a->url = NULL; /* the record's now */
	if (save(pg, err) < 0) {
		pg->n--;
		a->url = pg->addons[pg->n].url;
		return -1;
	}
	return 0;
}

/* Removes the record (a pointer into pg->addons), saved. */
static int remove_record(struct pg *pg, struct pg_addon *a, struct dy_error **err)
{
	size_t i = (size_t)(a - pg->addons);
	struct pg_addon gone = *a;
	memmove(a, a + 1, (pg->n - i - 1) * sizeof(*a));
	pg->n--;
	int r = save(pg, err);
	free(gone.url);
	return r;
}

/* ---- operations: one at a time on the pool ---- */

static void op_free(struct pg_op *op)
{
	free(op->dir);
	free(op->keep);
	free(op->a.url);
	free(op->out);
	dy_error_free(&op->err);
	free(op);
}

/* A dynod killed in the middle of a create or a drop leaves a database or
 * role of an add-on's name that no record names: dropped at start-up
 * (keep: the recorded names). */
static void sweep(struct pg_op *op)
{
	const struct pg_env *e = &op->pg->env;
	const char *const q[] = {
	    "SELECT datname FROM pg_database WHERE datname ~ '^postgresql-[a-z]+-[0-9]{5}$' "
	    "UNION SELECT rolname FROM pg_roles WHERE rolname ~ '^postgresql-[a-z]+-[0-9]{5}$'"};
	if (!op->keep || pgw_sql(e, "postgres", q, 1, &op->out, &op->err) < 0)
		return;
	for (char *line = op->out, *next; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		char want[PG_NAME_MAX + 3];
		snprintf(want, sizeof(want), "\n%s\n", line);
		if (!line[0] || (op->keep && strstr(op->keep, want)))
			continue;
		_cleanup_free_ char *id = pgw_ident(line), *d1 = NULL, *d2 = NULL;
		if (!id || asprintf(&d1, "DROP DATABASE IF EXISTS %s WITH (FORCE)", id) < 0 ||
		    asprintf(&d2, "DROP ROLE IF EXISTS %s", id) < 0)
			continue;
		const char *const drop[] = {d1, d2};
		if (pgw_sql(e, "postgres", drop, 2, NULL, NULL) == 0)
			dy_log("addons",
			       "dropped %s: no add-on names it (a create or a drop cut "
			       "short)",
			       line);
	}
}

static void op_run(struct work *w)
{
	struct pg_op *op = loop_container_of(w, struct pg_op, work);
	const struct pg_env *e = &op->pg->env;
	op->r = pgw_ensure(e, &op->pid, &op->err);
	if (op->r < 0 || op->kind == OP_START)
		return;
	if (op->kind == OP_SWEEP) {
		sweep(op);
		return;
	}
	_cleanup_free_ char *id = pgw_ident(op->a.name);
	_cleanup_free_ char *lit = pgw_literal(op->a.name);
	_cleanup_free_ char *pw = pgw_literal(op->password);
	if (!id || !lit || !pw) {
		op->r = dy_error_errno(&op->err, ENOMEM, "postgresql");
		return;
	}
	_cleanup_free_ char *s1 = NULL, *s2 = NULL, *s3 = NULL, *s4 = NULL;
	if (op->kind == OP_CREATE && e->external) {
		/* the server answers (else an error naming it, nothing made),
		 * and says whether dynod's connection is TLS: the dynos' URL
		 * asks for TLS only when the server speaks it */
		const char *const q[] = {
		    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"};
		_cleanup_free_ char *ssl = NULL;
		op->r = pgw_sql(e, "postgres", q, 1, &ssl, &op->err);
		if (op->r < 0) {
			dy_error_prefix(&op->err, "creating database and role %s", op->a.name);
			return;
		}
		char *tls = strstr(op->a.url, "?sslmode=require");
		if (tls && (!ssl || ssl[0] != 't'))
			*tls = '\0';
	}
	if (op->kind == OP_CREATE) {
		if (asprintf(&s1, "CREATE ROLE %s LOGIN PASSWORD %s CONNECTION LIMIT %u", id, pw,
		             op->pg->cfg->addons.postgresql.connections_per_database) < 0 ||
		    asprintf(&s2, "CREATE DATABASE %s OWNER %s", id, id) < 0 ||
		    asprintf(&s3, "REVOKE ALL ON DATABASE %s FROM PUBLIC", id) < 0 ||
		    asprintf(&s4, "GRANT CONNECT, TEMPORARY ON DATABASE %s TO %s", id, id) < 0) {
			op->r = dy_error_errno(&op->err, ENOMEM, "postgresql");
			return;
		}
		/* scram whatever the server's default (an external one's) */
		const char *const create[] = {"SET password_encryption = 'scram-sha-256'", s1, s2,
		                              s3, s4};
		op->r = pgw_sql(e, "postgres", create, ELEMENTSOF(create), NULL, &op->err);
		if (op->r < 0) {
			/* nothing half-made: what was made goes */
			_cleanup_free_ char *d1 = NULL, *d2 = NULL;
			if (asprintf(&d1, "DROP DATABASE IF EXISTS %s WITH (FORCE)", id) >= 0 &&
			    asprintf(&d2, "DROP ROLE IF EXISTS %s", id) >= 0) {
				const char *const undo[] = {d1, d2};
				pgw_sql(e, "postgres", undo, 2, NULL, NULL);
			}
			dy_error_prefix(&op->err, "creating database and role %s", op->a.name);
		}
	} else if (op->kind == OP_DROP) {
		if (asprintf(&s1, "DROP DATABASE IF EXISTS %s WITH (FORCE)", id) < 0 ||
		    asprintf(&s2, "DROP ROLE IF EXISTS %s", id) < 0) {
			op->r = dy_error_errno(&op->err, ENOMEM, "postgresql");
			return;
		}
		const char *const drop[] = {s1, s2};
		op->r = pgw_sql(e, "postgres", drop, 2, NULL, &op->err);
		if (op->r < 0)
			dy_error_prefix(&op->err, "dropping database and role %s", op->a.name);
		else if (op->dir)
			pgw_remove_dir(op->dir); /* its backups go with it */
	} else if (op->kind == OP_CAPTURE || op->kind == OP_RESTORE) {
		_cleanup_free_ char *path = NULL;
		if (asprintf(&path, "%s/%s.dump", op->dir, op->backup) < 0) {
			op->r = dy_error_errno(&op->err, ENOMEM, "backup");
			return;
		}
		if (op->kind == OP_CAPTURE)
			op->r = dy_mkdir_p(op->dir, 0700, &op->err) < 0
			            ? -1
			            : pgw_capture(e, op->a.name, path, &op->err);
		else
			op->r = pgw_restore(e, op->a.name, path, &op->err);
	} else {
		if (asprintf(&s1,
		             "SELECT current_setting('server_version'), "
		             "pg_database_size(current_database()), "
		             "(SELECT count(*) - 1 FROM pg_stat_activity WHERE datname = "
		             "current_database()), "
		             "(SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname NOT IN "
		             "('pg_catalog', 'information_schema')), "
		             "(SELECT rolconnlimit FROM pg_roles WHERE rolname = %s)",
		             lit) < 0) {
			op->r = dy_error_errno(&op->err, ENOMEM, "postgresql");
			return;
		}
		const char *const q[] = {s1};
		op->r = pgw_sql(e, op->a.name, q, 1, &op->out, &op->err);
	}
}

static void next_op(struct pg *pg);
static void watch(struct pg *pg, pid_t pid);

/* A create's database and role exist: record it, then the release. */
static json_t *created(struct pg *pg, struct pg_op *op, struct dy_error **err)
{
	struct state_app *app;
	if (mgr_app_get(pg->mgr, op->a.app, &app, err) < 0)
		return NULL; /* destroyed meanwhile */
	struct pg_addon a = op->a;
	_cleanup_json_ json_t *j = addon_json(pg, &a);
	char var[PG_NAME_MAX + 8];
	snprintf(var, sizeof(var), "%s_URL", a.var);
	_cleanup_json_ json_t *change = json_pack("{s:s}", var, a.url);
	if (!j || !change) {
		dy_error_errno(err, ENOMEM, "addons");
		return NULL;
	}
	op->a.url = NULL;
	if (add_record(pg, &a, err) < 0) {
		op->a.url = a.url;
		return NULL;
	}
	/* the dynos of the release reach the port (their own rule) */
	mark_app(pg, a.app, 1);
	struct state_release *rel = NULL;
	char desc[2 * PG_NAME_MAX + 32];
	snprintf(desc, sizeof(desc), "Attach %s (@ref:%s)", a.var, a.name);
	if (mgr_config_update_as(pg->mgr, a.app, change, desc, &rel, err) < 0) {
		mark_app(pg, a.app, -1);
		struct pg_addon *rec = pg_find(pg, a.app, a.name);
		op->a.url = rec->url ? strdup(rec->url) : NULL;
		remove_record(pg, rec, NULL);
		return NULL;
	}
	if (rel) {
		dy_log("addons", "%s: v%d %s", a.app, rel->version, rel->description);
		dy_log_to_app(a.app, "api", "Release v%d created: %s", rel->version, desc);
	}
	return json_incref(j);
}

/* A drop is done: the record and the var go. */
static json_t *dropped(struct pg *pg, struct pg_op *op)
{
	struct pg_addon *rec = op->app_gone ? NULL : pg_find(pg, op->a.app, op->a.name);
	if (!rec)
		return addon_json(pg, &op->a); /* forgotten with its app */
	json_t *j = addon_json(pg, rec);
	char var[PG_NAME_MAX + 8];
	snprintf(var, sizeof(var), "%s_URL", rec->var);
	struct dy_error *e = NULL;
	if (remove_record(pg, rec, &e) < 0) {
		dy_log("addons", "%s: %s", op->a.app, dy_error_msg(e));
		dy_error_free(&e);
	}
	mark_app(pg, op->a.app, -1);
	json_t *change = json_pack("{s:n}", var);
	struct state_release *rel = NULL;
	char desc[2 * PG_NAME_MAX + 32];
	snprintf(desc, sizeof(desc), "Detach %s (@ref:%s)", op->a.var, op->a.name);
	if (change && mgr_config_update_as(pg->mgr, op->a.app, change, desc, &rel, &e) < 0) {
		dy_log("addons", "%s: unsetting %s: %s", op->a.app, var, dy_error_msg(e));
		dy_error_free(&e);
	} else if (rel) {
		dy_log_to_app(op->a.app, "api", "Release v%d created: %s", rel->version, desc);
	}
	json_decref(change);
	return j;
}

static json_t *info_json(struct pg_op *op)
{
	char version[64] = "";
	long long size = 0, conns = 0, tables = 0, limit = 0;
	if (!op->out || sscanf(op->out, "%63[^|]|%lld|%lld|%lld|%lld", version, &size, &conns,
	                       &tables, &limit) != 5)
		return NULL;
	return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "name", op->a.name, "version",
	                 version, "state", "available", "data_size", (json_int_t)size, "tables",
	                 (json_int_t)tables, "connections", (json_int_t)(conns < 0 ? 0 : conns),
	                 "connection_limit", (json_int_t)limit);
}

static void op_done(struct work *w)
{
	struct pg_op *op = loop_container_of(w, struct pg_op, work);
	struct pg *pg = op->pg;
	pg->running = NULL;
	if (op->pid > 0 && op->pid != pg->pid) {
		if (pg->stopping)
			kill(op->pid, SIGINT); /* started while dynod stopped */
		else
			watch(pg, op->pid);
	}
	json_t *j = NULL;
	struct dy_error *err = TAKE_PTR(op->err);
	if (op->r < 0) {
		dy_log("addons", "%s%s%s", op->a.app, op->a.app[0] ? ": " : "", dy_error_msg(err));
		if (op->kind == OP_CREATE)
			dy_error_prefix(&err, "add-on not created");
	} else if (op->kind == OP_CREATE) {
		j = created(pg, op, &err);
		if (!j) {
			/* its database and role go again */
			struct pg_op *undo = calloc(1, sizeof(*undo));
			if (undo) {
				undo->pg = pg;
				undo->kind = OP_DROP;
				undo->a = op->a;
				op->a.url = NULL;
				if (pg->tail)
					pg->tail->next = undo;
				else
					pg->head = undo;
				pg->tail = undo;
			}
			dy_error_prefix(&err, "add-on not created");
		} else {
			dy_log("addons", "%s: created %s", op->a.app, op->a.name);
		}
	} else if (op->kind == OP_DROP) {
		j = dropped(pg, op);
		dy_log("addons", "%s: destroyed %s", op->a.app, op->a.name);
	} else if (op->kind == OP_CAPTURE || op->kind == OP_RESTORE) {
		j = pgb_json(op->dir, op->a.name, op->backup);
		dy_log("addons", "%s: %s %s of %s", op->a.app,
		       op->kind == OP_CAPTURE ? "captured" : "restored", op->backup, op->a.name);
		if (!j)
			dy_error(&err, "backup %s of %s: gone", op->backup, op->a.name);
	} else if (op->kind == OP_INFO) {
		j = info_json(op);
		if (!j)
			dy_error(&err, "pg:info of %s: unexpected answer from psql", op->a.name);
	}
	if (op->cb)
		op->cb(op->arg, j, TAKE_PTR(err));
	else if (j)
		json_decref(j);
	dy_error_free(&err);
	op_free(op);
	next_op(pg);
}

static void next_op(struct pg *pg)
{
	if (pg->running || pg->no_more || !pg->head)
		return;
	struct pg_op *op = pg->head;
	pg->head = op->next;
	if (!pg->head)
		pg->tail = NULL;
	op->next = NULL;
	pg->running = op;
	work_submit(pg->pool, &op->work, op_run, op_done);
}

static struct pg_op *op_queue(struct pg *pg, enum pg_op_kind kind, pg_cb cb, void *arg)
{
	struct pg_op *op = calloc(1, sizeof(*op));
	if (!op)
		return NULL;
	op->pg = pg;
	op->kind = kind;
	op->cb = cb;
	op->arg = arg;
	if (pg->tail)
		pg->tail->next = op;
	else
		pg->head = op;
	pg->tail = op;
	return op;
}

void pg_op_detach(struct pg_op *op)
{
	if (op)
		op->cb = NULL;
}

/* ---- the server ---- */

static void start_again(struct loop *loop, struct loop_timer *t)
{
	(void)loop;
	struct pg *pg = loop_container_of(t, struct pg, restart);
	if (pg->pid == 0 && !pg->stopping && op_queue(pg, OP_START, NULL, NULL))
		next_op(pg);
}

static void server_exited(struct loop *loop, struct loop_child *child, const siginfo_t *info)
{
	(void)info;
	struct pg *pg = loop_container_of(child, struct pg, child);
	dy_log("addons", "PostgreSQL (pid %d) exited: started again in %llu ms", (int)pg->pid,
	       (unsigned long long)(PG_RESTART_USEC / 1000));
	pg->pid = 0;
	loop_timer_start(loop, &pg->restart, PG_RESTART_USEC, NULL);
}

static void watch(struct pg *pg, pid_t pid)
{
	if (pg->pid > 0)
		loop_child_stop(pg->loop, &pg->child);
	pg->pid = 0;
	struct dy_error *err = NULL;
	if (loop_child_start(pg->loop, &pg->child, pid, server_exited, &err) < 0) {
		dy_log("addons", "PostgreSQL (pid %d): %s", (int)pid, dy_error_msg(err));
		dy_error_free(&err);
		loop_timer_start(pg->loop, &pg->restart, PG_RESTART_USEC, NULL);
		return;
	}
	pg->pid = pid;
	dy_log("addons", "PostgreSQL (pid %d) on %s:%u, socket in %s", (int)pid, pg->env.gw,
	       pg->env.port, pg->env.sockdir);
}

/* At start-up: the sweep (it starts the server), then the drops of the
 * records whose app is gone (an apps:destroy cut short). */
/* App is gone: its records go at once (a new app of its name starts
 * afresh), its databases, roles and backups with the drops queued; a drop
 * a kill cuts short is the start-up sweep's. */
static void forget_app(struct pg *pg, const char *app_name)
{
	char app[STATE_APP_NAME_MAX + 1]; /* app_name may be a record's */
	snprintf(app, sizeof(app), "%s", app_name);
	struct pg_addon *a;
	while ((a = pg_find(pg, app, NULL))) {
		struct dy_error *err = NULL;
		struct pg_op *op = NULL;
		if (pg_op_on(pg, OP_DROP, app, a->name, NULL, NULL, &op, &err) == 0)
			op->app_gone = true;
		if (remove_record(pg, a, &err) < 0 || err) {
			dy_log("addons", "%s: %s", app, dy_error_msg(err));
			dy_error_free(&err);
		}
	}
}

/* At start-up: the add-ons of apps that are gone (an apps:destroy cut
 * short) go, then the sweep (which starts the server). */
static void queue_sweep(struct pg *pg)
{
	for (size_t i = 0; i < pg->n;) {
		if (!state_app_find(mgr_state(pg->mgr), pg->addons[i].app))
			forget_app(pg, pg->addons[i].app);
		else
			i++;
	}
	/* an operator's server may hold databases of another dynod's, named
	 * alike: only those of records are dropped there */
	if (pg->env.external) {
		next_op(pg);
		return;
	}
	struct pg_op *op = op_queue(pg, OP_SWEEP, NULL, NULL);
	size_t len = 2;
	for (size_t i = 0; i < pg->n; i++)
		len += strlen(pg->addons[i].name) + 1;
	if (op && (op->keep = malloc(len))) {
		strcpy(op->keep, "\n");
		for (size_t i = 0; i < pg->n; i++) {
			strcat(op->keep, pg->addons[i].name);
			strcat(op->keep, "\n");
		}
	}
	next_op(pg);
}

/* Where and how the server runs (pg->env); in external mode the forward
 * of the gateway port to it too. */
static int env_setup(struct pg *pg, struct dy_error **err)
{
	if (pgw_env_init(&pg->env, pg->cfg, err) < 0)
		return -1;
	if (!pg->env.external) {
		/* an earlier dynod's forward (external mode then) would take
		 * the dynos' connections away from this server */
		net_forward_port_del(NULL);
		return 0;
	}
	if (pg_ext_forward(&pg->env, err) < 0) {
		pgw_env_clear(&pg->env);
		return -1;
	}
	dy_log("addons",
	       "PostgreSQL: the server at %s:%u (%s), the gateway's %s:%u forwarded to it",
	       pg->env.ext_host, pg->env.ext_port, pg->env.ext_addr, pg->env.gw, pg->env.port);
	return 0;
}

int pg_new(struct loop *loop, const struct config *cfg, struct mgr *m, struct work_pool *pool,
           struct pg **ret, struct dy_error **err)
{
	struct pg *pg = calloc(1, sizeof(*pg));
	if (!pg)
		return dy_error_errno(err, ENOMEM, "addons");
	pg->loop = loop;
	pg->cfg = cfg;
	pg->mgr = m;
	pg->pool = pool;
	loop_timer_init(&pg->restart, start_again);
	_cleanup_free_ char *dir = NULL;
	if (asprintf(&dir, "%s/" PG_ADDONS_DIR, cfg->state_dir) < 0 ||
	    asprintf(&pg->file, "%s/" PG_ADDONS_FILE, cfg->state_dir) < 0) {
		pg_free(pg);
		return dy_error_errno(err, ENOMEM, "addons");
	}
	/* postgres must traverse it (and the state dir, 0711) to its data */
	if (dy_dir_mode(dir, 0711, err) < 0 || load(pg, err) < 0) {
		pg_free(pg);
		return -1;
	}
	struct dy_error *e = NULL;
	if (env_setup(pg, &e) < 0) {
		if (cfg->addons.postgresql.mode == CONFIG_PG_EXTERNAL)
			dy_log("addons", "%s (again at the next add-on operation)",
			       dy_error_msg(e));
		dy_error_free(&e);
	} else {
		pid_t pid = pgw_server_pid(&pg->env);
		if (pid > 0) {
			dy_log("addons", "re-adopting PostgreSQL (pid %d)", (int)pid);
			watch(pg, pid);
		}
		if (pid > 0 || pg->n > 0)
			queue_sweep(pg); /* starts the server too, when records need it */
	}
	*ret = pg;
	return 0;
}

void pg_stop_work(struct pg *pg)
{
	if (!pg)
		return;
	pg->no_more = true;
	while (pg->head) {
		struct pg_op *op = pg->head;
		pg->head = op->next;
		if (op->cb) {
			struct dy_error *err = NULL;
			dy_error(&err, "dynod is stopping");
			op->cb(op->arg, NULL, err);
		}
		op_free(op);
	}
	pg->tail = NULL;
}

void pg_stop(struct pg *pg)
{
	if (!pg)
		return;
	pg->stopping = true;
	loop_timer_stop(pg->loop, &pg->restart);
	if (pg->env.external) {
		/* the dynos are gone: the forward goes with dynod */
		struct dy_error *err = NULL;
		if (net_forward_port_del(&err) < 0) {
			dy_log("addons", "%s", dy_error_msg(err));
			dy_error_free(&err);
		}
	}
	if (pg->pid <= 0)
		return;
	pid_t pid = pg->pid;
	loop_child_stop(pg->loop, &pg->child);
	pg->pid = 0;
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	dy_log("addons", "stopping PostgreSQL (pid %d, fast shutdown)", (int)pid);
	kill(pid, SIGINT);
	if (fd < 0)
		return;
	struct pollfd p = {.fd = fd, .events = POLLIN};
	if (poll(&p, 1, 30000) == 0) {
		dy_log("addons", "PostgreSQL (pid %d) still runs after 30 s: SIGQUIT", (int)pid);
		kill(pid, SIGQUIT);
		poll(&p, 1, 5000);
	}
	close(fd);
	rmdir(pg->env.mnt_dst); /* where the programs saw the data */
	rmdir(pg->env.sockdir); /* empty once the server is gone */
}

void pg_free(struct pg *pg)
{
	if (!pg)
		return;
	pg_stop_work(pg);
	if (pg->pid > 0)
		loop_child_stop(pg->loop, &pg->child);
	loop_timer_stop(pg->loop, &pg->restart);
	for (size_t i = 0; i < pg->n; i++)
		free(pg->addons[i].url);
	free(pg->addons);
	free(pg->file);
	pgw_env_clear(&pg->env);
	free(pg);
}

/* ---- the API's calls ---- */

json_t *pg_addons_json(struct pg *pg, const char *app, const char *name, struct dy_error **err)
{
	if (name) {
		struct pg_addon *a = pg_find(pg, app, name);
		if (!a) {
			dy_error_as(err, DY_E_NOT_FOUND, "app %s has no add-on %s", app, name);
			return NULL;
		}
		return addon_json(pg, a);
	}
	json_t *list = json_array();
	for (size_t i = 0; list && i < pg->n; i++)
		if (strcmp(pg->addons[i].app, app) == 0)
			json_array_append_new(list, addon_json(pg, &pg->addons[i]));
	return list;
}

static bool var_name_valid(const char *s)
{
	if (!(*s >= 'A' && *s <= 'Z') || strlen(s) > PG_NAME_MAX - 4)
		return false;
	for (; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

static int env_ready(struct pg *pg, struct dy_error **err)
{
	if (pg->env.gw[0])
		return 0;
	return env_setup(pg, err);
}

int pg_create(struct pg *pg, const char *app, const char *service, const char *as, pg_cb cb,
              void *arg, struct pg_op **ret_op, struct dy_error **err)
{
	if (!service || (strcmp(service, "postgresql") != 0 &&
	                 strncmp(service, "heroku-postgresql", strlen("heroku-postgresql")) != 0))
		return dy_error_as(err, DY_E_INVALID,
		                   "service: expected \"postgresql\" (the only add-on), got %s%s%s",
		                   service ? "\"" : "", service ? service : "nothing",
		                   service ? "\"" : "");
	if (env_ready(pg, err) < 0)
		return -1;
	char var[PG_NAME_MAX + 1] = "";
	if (as) {
		if (!var_name_valid(as))
			return dy_error_as(
			    err, DY_E_INVALID,
			    "as: expected a name of [A-Z0-9_], starting with a letter "
			    "(its var is NAME_URL), got \"%.64s\"",
			    as);
		snprintf(var, sizeof(var), "%s", as);
	} else if (!var_used(pg, app, "DATABASE")) {
		snprintf(var, sizeof(var), "DATABASE");
	} else {
		for (size_t i = 0; i < ELEMENTSOF(colors) && !var[0]; i++) {
			snprintf(var, sizeof(var), "HEROKU_POSTGRESQL_%s", colors[i]);
			if (var_used(pg, app, var))
				var[0] = '\0';
		}
		if (!var[0])
			return dy_error_as(err, DY_E_CONFLICT,
			                   "app %s has an add-on of every color", app);
	}
	if (var_used(pg, app, var))
		return dy_error_as(err, DY_E_CONFLICT,
		                   "app %s has an add-on attached as %s already", app, var);
	struct pg_op *op = op_queue(pg, OP_CREATE, cb, arg);
	if (!op)
		return dy_error_errno(err, ENOMEM, "addons");
	snprintf(op->a.app, sizeof(op->a.app), "%s", app);
	snprintf(op->a.var, sizeof(op->a.var), "%s", var);
	do {
		uint32_t r[2];
		fill_random(r, sizeof(r));
		snprintf(op->a.name, sizeof(op->a.name), "postgresql-%s-%05u",
		         words[r[0] % ELEMENTSOF(words)], r[1] % 100000);
	} while (name_used(pg, op->a.name));
	state_now(op->a.created_at);
	make_password(op->password);
	if (asprintf(&op->a.url, "postgres://%s:%s@%s:%u/%s?sslmode=require", op->a.name,
	             op->password, pg->env.gw, pg->env.port, op->a.name) < 0) {
		op->a.url = NULL;
		/* not started yet: the tail of the queue goes */
		struct pg_op **pp = &pg->head;
		while (*pp != op)
			pp = &(*pp)->next;
		*pp = NULL;
		pg->tail = NULL;
		for (struct pg_op *q = pg->head; q; q = q->next)
			pg->tail = q;
		op_free(op);
		return dy_error_errno(err, ENOMEM, "addons");
	}
	*ret_op = op;
	next_op(pg);
	return 0;
}

int pg_op_on(struct pg *pg, enum pg_op_kind kind, const char *app, const char *name, pg_cb cb,
             void *arg, struct pg_op **ret_op, struct dy_error **err)
{
	struct pg_addon *a = pg_find(pg, app, name);
	if (!a)
		return dy_error_as(err, DY_E_NOT_FOUND, "app %s has no add-on %s", app, name);
	if (env_ready(pg, err) < 0)
		return -1;
	struct pg_op *op = op_queue(pg, kind, cb, arg);
	if (!op)
		return dy_error_errno(err, ENOMEM, "addons");
	op->a = *a;
	op->a.url = NULL;
	op->dir = pgb_dir(pg->cfg->state_dir, a->name);
	if (ret_op)
		*ret_op = op;
	return 0;
}

void pg_ops_go(struct pg *pg)
{
	next_op(pg);
}

int pg_destroy(struct pg *pg, const char *app, const char *name, pg_cb cb, void *arg,
               struct pg_op **ret_op, struct dy_error **err)
{
	if (pg_op_on(pg, OP_DROP, app, name, cb, arg, ret_op, err) < 0)
		return -1;
	next_op(pg);
	return 0;
}

int pg_info(struct pg *pg, const char *app, const char *name, pg_cb cb, void *arg,
            struct pg_op **ret_op, struct dy_error **err)
{
	if (pg_op_on(pg, OP_INFO, app, name, cb, arg, ret_op, err) < 0)
		return -1;
	next_op(pg);
	return 0;
}

void pg_app_destroyed(struct pg *pg, const char *app)
{
	if (!pg)
		return;
	forget_app(pg, app);
	next_op(pg);
}
