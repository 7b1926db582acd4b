#include "runtime/manager/manager.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <assert.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "slugs/slug-disk.h"
#include "slugs/slug-store.h"

struct mgr {
	const struct config *cfg;
	struct state *st;
	const struct manager_ops *ops;
	struct state_writer *writer; /* NULL: apps are saved on the calling thread */
	struct work_pool *pool;      /* NULL: jobs run inline */
	struct mgr_job *jobs;        /* started and waiting, oldest first */
	volatile sig_atomic_t stop;  /* read by the workers' unpacks */
	bool stopping;
};

int mgr_new(const struct config *cfg, struct state *st, const struct manager_ops *ops,
            struct mgr **ret, struct dy_error **err)
{
	struct mgr *m = calloc(1, sizeof(*m));
	if (m == NULL)
		return dy_error_errno(err, ENOMEM, "manager");
	m->cfg = cfg;
	m->st = st;
	m->ops = ops;
	*ret = m;
	return 0;
}

void mgr_free(struct mgr *m)
{
	if (m == NULL)
		return;
	/* the pool is freed first: every job has run its done */
	assert(m->jobs == NULL);
	free(m);
}

void mgr_set_writer(struct mgr *m, struct state_writer *w)
{
	m->writer = w;
}

/* Saves app after a change: queued for the writer's thread, or written
 * at once without one. */
static int save(struct mgr *m, const struct state_app *app, struct dy_error **err)
{
	if (m->writer)
		return state_writer_save(m->writer, app, err);
	return state_app_save(m->st, app, err);
}

bool mgr_wait_saved(struct mgr *m, const struct state_app *app, struct state_wait *wait,
                    state_wait_fn fn)
{
	return m->writer && state_writer_wait(m->writer, app, wait, fn);
}

const struct state *mgr_state(const struct mgr *m)
{
	return m->st;
}

bool mgr_has_dynos(const struct mgr *m)
{
	return m->ops && m->ops->dynos_json;
}

static int no_dynos(struct dy_error **err)
{
	return dy_error_as(err, DY_E_CONFLICT, "this dynod runs no dynos (no launcher)");
}

json_t *mgr_dynos_json(struct mgr *m, const char *name, const char *dyno, struct dy_error **err)
{
	struct state_app *app;
	if (mgr_app_get(m, name, &app, err) < 0)
		return NULL;
	if (!mgr_has_dynos(m)) {
		no_dynos(err);
		return NULL;
	}
	json_t *j = m->ops->dynos_json(m->ops->data, app, dyno, err);
	if (!j && err && !*err)
		dy_error_errno(err, ENOMEM, "dynos of %s", name);
	return j;
}

int mgr_dynos_restart(struct mgr *m, const char *name, const char *which, struct dy_error **err)
{
	struct state_app *app;
	if (mgr_app_get(m, name, &app, err) < 0)
		return -1;
	if (!m->ops || !m->ops->restart)
		return no_dynos(err);
	return m->ops->restart(m->ops->data, app, which, err);
}

int mgr_dyno_stop(struct mgr *m, const char *name, const char *dyno, struct dy_error **err)
{
	struct state_app *app;
	if (mgr_app_get(m, name, &app, err) < 0)
		return -1;
	if (!m->ops || !m->ops->stop_dyno)
		return no_dynos(err);
	return m->ops->stop_dyno(m->ops->data, app, dyno, err);
}

unsigned mgr_router_port(const struct mgr *m)
{
	const struct config_listen *l = &m->cfg->router.listen;
	if (l->n == 0)
		return 8080;
	const struct sockaddr *sa = &l->addr[0].sa.sa;
	if (sa->sa_family == AF_INET6)
		return ntohs(l->addr[0].sa.in6.sin6_port);
	return ntohs(l->addr[0].sa.in.sin_port);
}

json_t *mgr_app_json(const struct mgr *m, const struct state_app *app)
{
	return state_app_json(app, m->cfg->domain, mgr_router_port(m));
}

int mgr_app_get(struct mgr *m, const char *name, struct state_app **ret, struct dy_error **err)
{
	struct state_app *app = state_app_find(m->st, name);
	if (app == NULL)
		return dy_error_as(err, DY_E_NOT_FOUND, "app \"%.64s\" not found", name);
	*ret = app;
	return 0;
}

int mgr_app_create(struct mgr *m, const char *name, struct state_app **ret, struct dy_error **err)
{
	if (!state_app_name_valid(name))
		return dy_error_as(
		    err, DY_E_INVALID,
		    "invalid app name \"%.64s\": it must match ^[a-z][a-z0-9-]{1,28}[a-z0-9]$",
		    name);
	if (state_app_find(m->st, name))
		return dy_error_as(err, DY_E_CONFLICT, "app \"%s\" already exists", name);
	/* the lowest uid of the range no app holds */
	uint32_t uid = 0;
	bool found = false;
	for (uint64_t u = m->cfg->uids.first;
	     !found && u < (uint64_t)m->cfg->uids.first + m->cfg->uids.count; u++) {
		found = true;
		for (size_t i = 0; i < m->st->napps; i++)
			if (m->st->apps[i]->uid == u) {
				found = false;
				break;
			}
		if (found)
			uid = (uint32_t)u;
	}
	if (!found)
		return dy_error_as(err, DY_E_CONFLICT, "no free uid left in uids (%u from %u)",
		                   m->cfg->uids.count, m->cfg->uids.first);
	char now[STATE_TIME_LEN + 1];
	state_now(now);
	struct state_app *app;
	if (state_app_add(m->st, name, uid, now, &app, err) < 0)
		return -1;
	if (state_app_save(m->st, app, err) < 0) {
		struct dy_error *e2 = NULL;
		state_app_remove(m->st, app, &e2);
		dy_error_free(&e2);
		return dy_error_prefix(err, "create app %s", name);
	}
	*ret = app;
	return 0;
}

/* The unpacked slugs of a destroyed app, once none of its dynos runs. */
static void remove_grave(void *arg)
{
	char *grave = arg;
	int r = state_grave_remove(grave);
	if (r < 0)
		dy_log("api", "remove %s: %s", grave, strerror(-r));
	free(grave);
}

int mgr_app_destroy(struct mgr *m, const char *name, struct dy_error **err)
{
	struct state_app *app;
	if (mgr_app_get(m, name, &app, err) < 0)
		return -1;
	char copy[STATE_APP_NAME_MAX + 1];
	snprintf(copy, sizeof(copy), "%s", app->name);
	char *grave = NULL;
	/* no queued or late write may bring its file back */
	if (m->writer)
		state_writer_forget(m->writer, app);
	if (state_app_detach(m->st, app, &grave, err) < 0)
		return dy_error_prefix(err, "destroy app %s", name);
	if (m->ops && m->ops->stop_app)
		m->ops->stop_app(m->ops->data, copy, remove_grave, grave);
	else
		remove_grave(grave);
	return 0;
}

/* ---- slug jobs ---- */

enum job_kind {
	JOB_PUT = 0, /* check and store an upload */
	JOB_UNPACK,  /* unpack a stored slug for the app */
	JOB_GC,      /* remove the app's trees but the kept ones, then unused slugs */
};

static const char *job_kind_str(enum job_kind k)
{
	switch (k) {
	case JOB_PUT:
		return "store an upload";
	case JOB_UNPACK:
		return "unpack";
	case JOB_GC:
		return "remove unused slugs";
	}
	return "?";
}

/* A job: what its fn reads is copied in when it starts (on the loop);
 * fn writes only the results; done (on the loop) checks the app is still
 * the one it was started for and hands the result to cb. */
struct mgr_job {
	struct work work;
	struct mgr *m;
	struct mgr_job *next; /* m->jobs */
	bool started;
	enum job_kind kind;
	mgr_job_cb cb; /* NULL once detached */
	void *arg;

	/* the app, as started for (a destroyed app's name may come back) */
	char app[STATE_APP_NAME_MAX + 1];
	char created_at[STATE_TIME_LEN + 1];
	uint32_t uid;

	/* fn's own copies */
	char *state_dir;
	char slug_id[STATE_SLUG_ID_LEN + 1];
	struct slug_limits limits;
	uint64_t budget;
	int fd;     /* JOB_PUT: the upload */
	char **ids; /* the app's release slugs (PUT, UNPACK) or the kept trees (GC) */
	size_t nids;
	char **refs; /* GC: every app's release slugs */
	size_t nrefs;
	volatile sig_atomic_t *stop;

	/* fn's results */
	uint64_t used; /* what the app held before */
	struct slug_info info;
	struct dy_error *err;
	int removed_trees, removed_slugs;
};

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

static void job_free(struct mgr_job *j)
{
	if (j == NULL)
		return;
	if (j->fd >= 0)
		close(j->fd);
	free(j->state_dir);
	strv_free(j->ids, j->nids);
	strv_free(j->refs, j->nrefs);
	slug_info_clear(&j->info);
	dy_error_free(&j->err);
	free(j);
}

static void slug_limits_of(const struct mgr *m, struct slug_limits *l)
{
	l->max_compressed = m->cfg->slugs.max_compressed;
	l->max_unpacked = m->cfg->slugs.max_unpacked;
	l->max_entries = m->cfg->slugs.max_entries;
}

static int strv_add(char ***v, size_t *n, const char *s)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*v)[i], s) == 0)
			return 0;
	char **nv = realloc(*v, (*n + 1) * sizeof(**v));
	if (nv == NULL)
		return -ENOMEM;
	*v = nv;
	if ((nv[*n] = strdup(s)) == NULL)
		return -ENOMEM;
	(*n)++;
	return 0;
}

/* The distinct slugs of app's releases, into *v. */
static int app_slugs(const struct state_app *app, char ***v, size_t *n)
{
	for (size_t i = 0; i < app->nreleases; i++)
		if (app->releases[i].slug_id[0] && strv_add(v, n, app->releases[i].slug_id) < 0)
			return -ENOMEM;
	return 0;
}

/* The trees app keeps (slug_disk_keep over its releases), into *v. */
static int app_kept(const struct mgr *m, const struct state_app *app, char ***v, size_t *n)
{
	const struct state_release *cur = state_app_current(app);
	_cleanup_free_ struct slug_disk_release *rels =
	    calloc(app->nreleases ? app->nreleases : 1, sizeof(*rels));
	_cleanup_free_ const char **ids = calloc(app->nreleases ? app->nreleases : 1, sizeof(*ids));
	if (rels == NULL || ids == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < app->nreleases; i++) {
		rels[i].slug_id = app->releases[i].slug_id;
		rels[i].current = &app->releases[i] == cur;
		rels[i].pending = app->releases[i].status == STATE_RELEASE_PENDING;
	}
	size_t k = slug_disk_keep(rels, app->nreleases, m->cfg->slugs.keep_unpacked, ids);
	for (size_t i = 0; i < k; i++)
		if (strv_add(v, n, ids[i]) < 0)
			return -ENOMEM;
	return 0;
}

/* Copies what fn needs, from the state as it is now. */
static int job_fill(struct mgr_job *j, const struct state_app *app)
{
	struct mgr *m = j->m;
	j->state_dir = strdup(m->st->dir);
	if (j->state_dir == NULL)
		return -ENOMEM;
	slug_limits_of(m, &j->limits);
	j->budget = m->cfg->slugs.app_disk_budget;
	j->stop = &m->stop;
	if (j->kind != JOB_GC)
		return app_slugs(app, &j->ids, &j->nids);
	if (app_kept(m, app, &j->ids, &j->nids) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < m->st->napps; i++)
		if (app_slugs(m->st->apps[i], &j->refs, &j->nrefs) < 0)
			return -ENOMEM;
	return 0;
}

static const char *fmt_bytes(uint64_t b, char *buf)
{
	return slug_disk_fmt(b, buf, 32);
}

static int over_budget(struct mgr_job *j, const char *doing, uint64_t total)
{
	char a[32], b[32];
	return dy_error_as(&j->err, DY_E_INVALID,
	                   "slug refused: %s would take app %s to %s, over its disk budget of "
	                   "%s (slugs.app_disk_budget)",
	                   doing, j->app, fmt_bytes(total, a), fmt_bytes(j->budget, b));
}

/* The app's usage now, with slug (when not NULL) counted as its own. */
static int job_usage(struct mgr_job *j, const char *slug)
{
	if (slug && strv_add(&j->ids, &j->nids, slug) < 0)
		return dy_error_errno(&j->err, ENOMEM, "disk usage");
	return slug_store_app_usage(j->state_dir, j->app, (const char *const *)j->ids, j->nids,
	                            &j->used, &j->err);
}

struct put_check {
	struct mgr_job *j;
};

/* Before an upload is kept: its bytes and its unpacked size must fit. */
static int put_check(const struct slug_info *info, void *arg, struct dy_error **err)
{
	struct mgr_job *j = arg;
	(void)err;
	uint64_t total = slug_disk_add(slug_disk_add(j->used, info->size), info->unpacked_size);
	if (total > j->budget)
		return over_budget(j, "storing and unpacking it", total);
	return 0;
}

static void job_put(struct mgr_job *j)
{
	struct stat st;
	if (fstat(j->fd, &st) < 0 || lseek(j->fd, 0, SEEK_SET) < 0) {
		dy_error_errno(&j->err, errno, "read the upload");
		return;
	}
	if (job_usage(j, NULL) < 0)
		return;
	if (slug_disk_over(j->used, (uint64_t)st.st_size, j->budget)) {
		over_budget(j, "storing it", slug_disk_add(j->used, (uint64_t)st.st_size));
		return;
	}
	struct dy_error *e = NULL;
	if (slug_store_put_fd_checked(j->state_dir, j->fd, &j->limits, put_check, j, &j->info, &e) <
	    0) {
		if (j->err == NULL) {
			/* the store's errors are about the slug, but for I/O ones */
			if (e && e->errnum != 0)
				j->err = TAKE_PTR(e);
			else
				dy_error_as(&j->err, DY_E_INVALID, "slug refused: %s",
				            dy_error_msg(e));
		}
		dy_error_free(&e);
		return;
	}
	slug_store_mark_upload(j->state_dir, j->app, j->info.id, &j->err);
}

static void job_unpack(struct mgr_job *j)
{
	_cleanup_free_ char *tree = NULL;
	struct stat st;
	if (slug_store_meta(j->state_dir, j->slug_id, &j->limits, &j->info, &j->err) < 0)
		return;
	if (slug_store_tree(j->state_dir, j->slug_id, j->app, &tree, &j->err) < 0)
		return;
	if (lstat(tree, &st) == 0 && S_ISDIR(st.st_mode))
		return; /* kept from an earlier release: nothing to do */
	if (job_usage(j, j->slug_id) < 0)
		return;
	uint64_t need = j->info.unpacked_size;
	if (slug_disk_over(j->used, need, j->budget)) {
		over_budget(j, "unpacking it", slug_disk_add(j->used, need));
		return;
	}
	uint64_t avail;
	if (slug_disk_available(j->state_dir, &avail, &j->err) < 0)
		return;
	if (slug_disk_over(need, SLUG_DISK_FREE_MARGIN, avail)) {
		char a[32], b[32], c[32];
		dy_error_as(&j->err, DY_E_CONFLICT,
		            "slug %.7s not unpacked for app %s: it needs %s, and the platform's "
		            "disk has %s free (keeping %s free besides)",
		            j->slug_id, j->app, fmt_bytes(need, a), fmt_bytes(avail, b),
		            fmt_bytes(SLUG_DISK_FREE_MARGIN, c));
		return;
	}
	/* the budget bounds the unpack as it goes: an entry that declares
	 * more than is left, or data beyond it, stops it (a slug whose meta
	 * lied, a bomb) */
	struct slug_limits l = j->limits;
	uint64_t left = slug_disk_left(j->used, j->budget);
	bool by_budget = left < l.max_unpacked;
	if (by_budget)
		l.max_unpacked = left;
	bool over = false;
	_cleanup_free_ char *dir = NULL;
	struct dy_error *e = NULL;
	if (slug_store_unpack_ex(j->state_dir, j->slug_id, j->app, j->uid, j->uid, &l, j->stop,
	                         &over, &dir, &e) < 0) {
		if (over && by_budget) {
			char a[32], b[32];
			dy_error_as(&j->err, DY_E_INVALID,
			            "slug refused: unpacking it would take app %s over its disk "
			            "budget of %s (slugs.app_disk_budget): it holds %s already",
			            j->app, fmt_bytes(j->budget, a), fmt_bytes(j->used, b));
			dy_error_free(&e);
		} else if (e && e->errnum == 0 && !(j->stop && *j->stop)) {
			dy_error_as(&j->err, DY_E_INVALID, "slug refused: %s", dy_error_msg(e));
			dy_error_free(&e);
		} else {
			j->err = TAKE_PTR(e);
		}
	}
}

static void job_gc(struct mgr_job *j)
{
	j->removed_trees =
	    slug_store_gc_app(j->state_dir, j->app, (const char *const *)j->ids, j->nids);
	j->removed_slugs = slug_store_gc(j->state_dir, (const char *const *)j->refs, j->nrefs);
}

/* On a worker thread: touches nothing but the job. */
static void job_fn(struct work *w)
{
	struct mgr_job *j = loop_container_of(w, struct mgr_job, work);
	if (j->stop && *j->stop) {
		dy_error(&j->err, "interrupted: dynod is stopping");
		return;
	}
	switch (j->kind) {
	case JOB_PUT:
		job_put(j);
		break;
	case JOB_UNPACK:
		job_unpack(j);
		break;
	case JOB_GC:
		job_gc(j);
		break;
	}
}

/* On the loop: the app the job was for, or NULL when it is gone. */
static struct state_app *job_app(struct mgr_job *j)
{
	struct state_app *app = state_app_find(j->m->st, j->app);
	if (app == NULL || app->uid != j->uid || strcmp(app->created_at, j->created_at) != 0)
		return NULL;
	return app;
}

/* On the loop: logs and answers. An internal failure is logged in full
 * (paths and all) and reaches cb as what failed and its errno text. */
static void job_finish(struct mgr_job *j)
{
	if (j->err == NULL && job_app(j) == NULL && j->kind != JOB_GC)
		dy_error_as(&j->err, DY_E_NOT_FOUND, "app %s was destroyed meanwhile", j->app);
	if (j->err && dy_error_kind_of(j->err) == DY_E_INTERNAL) {
		dy_log("api", "%s: %s slug %.7s: %s", j->app, job_kind_str(j->kind),
		       j->kind == JOB_PUT ? j->info.id : j->slug_id, dy_error_msg(j->err));
		int errnum = j->err->errnum;
		dy_error_free(&j->err);
		char what[128];
		if (j->kind == JOB_PUT)
			snprintf(what, sizeof(what), "storing the upload for app %s failed",
			         j->app);
		else
			snprintf(what, sizeof(what), "unpacking slug %.7s for app %s failed",
			         j->slug_id, j->app);
		if (errnum)
			dy_error_errno(&j->err, errnum, "%s", what);
		else
			dy_error(&j->err, "%s (dynod's log says why)", what);
	}
	if (j->kind == JOB_GC && (j->removed_trees || j->removed_slugs))
		dy_log("api",
		       "%s: removed %d unpacked slugs the app keeps no more, %d stored "
		       "slugs no release uses",
		       j->app, j->removed_trees, j->removed_slugs);
	if (j->cb) {
		mgr_job_cb cb = j->cb;
		j->cb = NULL;
		struct dy_error *e = TAKE_PTR(j->err);
		cb(j->arg, j->err == NULL && e == NULL ? &j->info : NULL, e);
	}
	job_free(j);
}

static void job_start(struct mgr_job *j);

/* The work's done: the next job of the same app may start. */
static void job_done(struct work *w)
{
	struct mgr_job *j = loop_container_of(w, struct mgr_job, work);
	struct mgr *m = j->m;
	struct mgr_job **pp = &m->jobs;
	while (*pp != j)
		pp = &(*pp)->next;
	*pp = j->next;
	struct mgr_job *next = NULL;
	for (struct mgr_job *o = m->jobs; o && !next; o = o->next)
		if (!o->started && strcmp(o->app, j->app) == 0)
			next = o;
	job_finish(j);
	if (next)
		job_start(next);
}

static void job_start(struct mgr_job *j)
{
	struct mgr *m = j->m;
	j->started = true;
	struct state_app *app = job_app(j);
	if (app == NULL)
		dy_error_as(&j->err, DY_E_NOT_FOUND, "app %s was destroyed meanwhile", j->app);
	else if (m->stopping)
		dy_error(&j->err, "interrupted: dynod is stopping");
	else if (job_fill(j, app) < 0)
		dy_error_errno(&j->err, ENOMEM, "start");
	if (j->err || m->pool == NULL) {
		/* inline: at once (no pool), or to fail */
		if (j->err == NULL)
			job_fn(&j->work);
		job_done(&j->work);
		return;
	}
	work_submit(m->pool, &j->work, job_fn, job_done);
}

/* Queues j (taken) behind the app's earlier jobs, or starts it. */
static void job_submit(struct mgr *m, struct mgr_job *j)
{
	bool busy = false;
	struct mgr_job **pp = &m->jobs;
	for (; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->app, j->app) == 0)
			busy = true;
	*pp = j;
	if (!busy)
		job_start(j);
}

static int job_new(struct mgr *m, const struct state_app *app, enum job_kind kind, mgr_job_cb cb,
                   void *arg, struct mgr_job **ret, struct dy_error **err)
{
	struct mgr_job *j = calloc(1, sizeof(*j));
	if (j == NULL)
		return dy_error_errno(err, ENOMEM, "%s", job_kind_str(kind));
	j->m = m;
	j->kind = kind;
	j->cb = cb;
	j->arg = arg;
	j->fd = -1;
	snprintf(j->app, sizeof(j->app), "%s", app->name);
	snprintf(j->created_at, sizeof(j->created_at), "%s", app->created_at);
	j->uid = app->uid;
	*ret = j;
	return 0;
}

void mgr_set_pool(struct mgr *m, struct work_pool *pool)
{
	m->pool = pool;
}

void mgr_stop_work(struct mgr *m)
{
	m->stop = 1;
	m->stopping = true;
}

void mgr_job_detach(struct mgr_job *job)
{
	if (job)
		job->cb = NULL;
}

/* Returns the job submitted, or NULL when it already finished (its cb
 * ran). */
static struct mgr_job *job_go(struct mgr *m, struct mgr_job *j)
{
	/* inline jobs (no pool) finish inside job_submit */
	bool inline_run = m->pool == NULL;
	job_submit(m, j);
	return inline_run ? NULL : j;
}

int mgr_slug_put_start(struct mgr *m, const char *name, int fd, mgr_job_cb cb, void *arg,
                       struct mgr_job **ret_job, struct dy_error **err)
{
	_cleanup_close_ int owned = fd;
	struct state_app *app;
	if (mgr_app_get(m, name, &app, err) < 0)
		return -1;
	struct mgr_job *j;
	if (job_new(m, app, JOB_PUT, cb, arg, &j, err) < 0)
		return -1;
	j->fd = TAKE_FD(owned);
	struct mgr_job *started = job_go(m, j);
	if (ret_job)
		*ret_job = started;
	return 0;
}

static bool valid_slug_id(const char *id)
{
	size_t n = 0;
	for (; id[n]; n++)
		if (!((id[n] >= '0' && id[n] <= '9') || (id[n] >= 'a' && id[n] <= 'f')))
			return false;
	return n == STATE_SLUG_ID_LEN;
}

/* The checks of a deploy that need no disk but a stat: a valid id of a
 * stored slug. */
static int check_slug_id(struct mgr *m, const char *slug_id, struct dy_error **err)
{
	if (!valid_slug_id(slug_id))
		return dy_error_as(err, DY_E_INVALID,
		                   "invalid slug id \"%.80s\": expected 64 hex digits", slug_id);
	_cleanup_free_ char *path = NULL;
	if (slug_store_path(m->st->dir, slug_id, &path, err) < 0)
		return -1;
	if (access(path, F_OK) < 0)
		return dy_error_as(err, DY_E_NOT_FOUND, "slug %s not found (upload it first)",
		                   slug_id);
	return 0;
}

int mgr_unpack_start(struct mgr *m, const char *name, const char *slug_id, mgr_job_cb cb, void *arg,
                     struct mgr_job **ret_job, struct dy_error **err)
{
	struct state_app *app;
	if (mgr_app_get(m, name, &app, err) < 0)
		return -1;
	if (check_slug_id(m, slug_id, err) < 0)
		return -1;
	struct mgr_job *j;
	if (job_new(m, app, JOB_UNPACK, cb, arg, &j, err) < 0)
		return -1;
	snprintf(j->slug_id, sizeof(j->slug_id), "%s", slug_id);
	struct mgr_job *started = job_go(m, j);
	if (ret_job)
		*ret_job = started;
	return 0;
}

/* After a release: removes what app keeps no more, off the loop. */
static void collect(struct mgr *m, const struct state_app *app)
{
	struct mgr_job *j;
	if (job_new(m, app, JOB_GC, NULL, NULL, &j, NULL) < 0)
		return; /* the next release collects */
	job_go(m, j);
}

struct sync_result {
	struct slug_info *info;
	struct dy_error *err;
	bool done;
};

static void sync_cb(void *arg, const struct slug_info *info, struct dy_error *err)
{
	struct sync_result *r = arg;
	r->done = true;
	r->err = err;
	if (info && r->info) {
		*r->info = *info;
		/* the job's copy is cleared with the job: take the procfile */
		((struct slug_info *)info)->procfile = NULL;
	}
}

/* Runs job j at once on the calling thread (the synchronous calls). */
static int run_sync(struct mgr *m, struct mgr_job *j, struct sync_result *res,
                    struct dy_error **err)
{
	/* a job of the same app may wait on the pool: this one runs
	 * beside it only where no pool is (the unit tests) */
	struct work_pool *pool = TAKE_PTR(m->pool);
	job_submit(m, j);
	m->pool = pool;
	if (!res->done) {
		/* queued behind the app's jobs on the pool: it must not write
		 * into res once this returns */
		mgr_job_detach(j);
		return dy_error_as(err, DY_E_CONFLICT, "busy: another slug job of the app runs");
	}
	if (res->err) {
		if (err && *err == NULL)
			*err = res->err;
		else
			dy_error_free(&res->err);
		return -1;
	}
	return 0;
}

int mgr_slug_put(struct mgr *m, const char *name, int fd, struct slug_info *ret_info,
                 struct dy_error **err)
{
	struct state_app *app;
	if (mgr_app_get(m, name, &app, err) < 0)
		return -1;
	int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (copy < 0)
		return dy_error_errno(err, errno, "upload");
	struct mgr_job *j;
	struct sync_result res = {.info = ret_info};
	if (job_new(m, app, JOB_PUT, sync_cb, &res, &j, err) < 0) {
		close(copy);
		return -1;
	}
	j->fd = copy;
	return run_sync(m, j, &res, err);
}

/* Checks that the slug's process types can be released without a
 * launcher, and that its tree is there for app: unpacked now without a
 * pool, by mgr_unpack_start() with one (the loop never unpacks). */
static int prepare_slug(struct mgr *m, struct state_app *app, const char *slug_id,
                        const json_t *process_types, struct dy_error **err)
{
	if (json_object_get(process_types, "release") &&
	    (m->ops == NULL || m->ops->run_release == NULL))
		return dy_error_as(
		    err, DY_E_CONFLICT,
		    "slug %.7s has a release process type, but this dynod has no dyno "
		    "launcher to run the release phase",
		    slug_id);
	_cleanup_free_ char *tree = NULL;
	struct stat st;
	if (slug_store_tree(m->st->dir, slug_id, app->name, &tree, err) < 0)
		return -1;
	if (lstat(tree, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	if (m->pool)
		return dy_error_as(err, DY_E_CONFLICT,
		                   "slug %.7s is not unpacked for app %s yet: try again", slug_id,
		                   app->name);
	struct mgr_job *j;
	struct sync_result res = {0};
	if (job_new(m, app, JOB_UNPACK, sync_cb, &res, &j, err) < 0)
		return -1;
	snprintf(j->slug_id, sizeof(j->slug_id), "%s", slug_id);
	return run_sync(m, j, &res, err);
}

/* Appends a release for app and hands it to the launcher: without a
 * release phase it succeeds at once; with one it stays pending until the
 * launcher reports. Saves the app. */
static int release(struct mgr *m, struct state_app *app, const char *desc, const char *slug_id,
                   json_t *config, json_t *process_types, struct state_release **ret,
                   struct dy_error **err)
{
	char now[STATE_TIME_LEN + 1];
	state_now(now);
	bool phase = process_types && json_object_get(process_types, "release");
	struct state_release *rel;
	if (state_release_append(app, desc, phase ? STATE_RELEASE_PENDING : STATE_RELEASE_SUCCEEDED,
	                         slug_id, config, process_types, now, &rel, err) < 0)
		return -1;
	if (phase) {
		/* prepare_slug refused this without ops->run_release */
		/* a phase that cannot start fails its release, which is still
		 * recorded: the caller gets the release, not an error */
		struct dy_error *e = NULL;
		if (m->ops->run_release(m->ops->data, app, rel, &e) < 0) {
			rel->status = STATE_RELEASE_FAILED;
			dy_log("api", "%s: release phase of v%d: %s", app->name, rel->version,
			       dy_error_msg(e));
			dy_error_free(&e);
		}
	}
	int r = save(m, app, err);
	if (r < 0) {
		/* memory stays what the disk holds */
		state_release_pop(app);
		return r;
	}
	if (rel->status == STATE_RELEASE_SUCCEEDED && m->ops && m->ops->apply_formation)
		m->ops->apply_formation(m->ops->data, app, rel, NULL);
	*ret = rel;
	collect(m, app);
	return 0;
}

/* A new object holding the current config vars (never NULL unless
 * ENOMEM), for a new release to change. Shallow: the values (immutable
 * strings) stay shared with the current snapshot, so a change of one var
 * does not copy the others. */
static json_t *config_copy(const struct state_app *app)
{
	json_t *cur = mgr_config_vars(app);
	return cur ? json_copy(cur) : json_object();
}

json_t *mgr_config_vars(const struct state_app *app)
{
	const struct state_release *cur = state_app_current(app);
	return cur ? cur->config : NULL;
}

int mgr_deploy(struct mgr *m, const char *name, const char *slug_id, struct state_release **ret,
               struct dy_error **err)
{
	struct state_app *app;
	if (mgr_app_get(m, name, &app, err) < 0)
		return -1;
	if (check_slug_id(m, slug_id, err) < 0)
		return -1;
	struct slug_limits l;
	slug_limits_of(m, &l);
	struct slug_info info = {0};
	/* the upload's check, kept beside the slug: the slug is not read
	 * again (but for one stored before meta files, without a pool) */
	if (slug_store_meta(m->st->dir, slug_id, &l, &info, err) < 0)
		return -1;
	_cleanup_json_ json_t *pt = json_object();
	for (size_t i = 0; pt && i < info.procfile->n; i++)
		json_object_set_new(pt, info.procfile->entries[i].name,
		                    json_string(info.procfile->entries[i].command));
	slug_info_clear(&info);
	if (pt == NULL)
		return dy_error_errno(err, ENOMEM, "deploy");
	if (prepare_slug(m, app, slug_id, pt, err) < 0)
		return -1;
	bool first = true;
	for (size_t i = 0; i < app->nreleases; i++)
		if (app->releases[i].slug_id[0])
			first = false;
	bool scale_web = false;
	if (first && json_object_get(pt, "web") && state_formation_find(app, "web") == NULL) {
		struct state_formation *f;
		if (state_formation_get(app, "web", m->cfg->dyno.default_size, &f, err) < 0)
			return -1;
		f->quantity = 1;
		scale_web = true;
	}
	char desc[64];
	snprintf(desc, sizeof(desc), "Deploy %.7s", slug_id);
	json_t *cfg = config_copy(app);
	int r = cfg ? release(m, app, desc, slug_id, cfg, TAKE_PTR(pt), ret, err)
	            : dy_error_errno(err, ENOMEM, "deploy");
	if (r < 0 && scale_web)
		app->nformation--; /* the web entry added above is the last */
	return r;
}

int mgr_release_finished(struct mgr *m, const char *name, int version, bool succeeded,
                         struct dy_error **err)
{
	struct state_app *app;
	if (mgr_app_get(m, name, &app, err) < 0)
		return -1;
	struct state_release *rel = state_release_find(app, version);
	if (rel == NULL)
		return dy_error_as(err, DY_E_NOT_FOUND, "release v%d of %s not found", version,
		                   name);
	if (rel->status != STATE_RELEASE_PENDING)
		return dy_error_as(err, DY_E_CONFLICT, "release v%d of %s is %s, not pending",
		                   version, name, state_release_status_str(rel->status));
	rel->status = succeeded ? STATE_RELEASE_SUCCEEDED : STATE_RELEASE_FAILED;
	if (save(m, app, err) < 0) {
		rel->status = STATE_RELEASE_PENDING;
		return -1;
	}
	if (succeeded && m->ops && m->ops->apply_formation)
		m->ops->apply_formation(m->ops->data, app, rel, NULL);
	return 0;
}

int mgr_rollback(struct mgr *m, const char *name, int version, struct state_release **ret,
                 struct dy_error **err)
{
	struct state_app *app;
	if (mgr_app_get(m, name, &app, err) < 0)
		return -1;
	const struct state_release *to = state_release_find(app, version);
	if (to == NULL)
		return dy_error_as(err, DY_E_NOT_FOUND, "release v%d of %s not found", version,
		                   name);
	if (to->slug_id[0] == '\0')
		return dy_error_as(err, DY_E_INVALID,
		                   "release v%d has no slug: nothing to roll back to", version);
	/* copies first: appending may move the releases array */
	char slug_id[STATE_SLUG_ID_LEN + 1];
	snprintf(slug_id, sizeof(slug_id), "%s", to->slug_id);
	/* the snapshot itself: releases share it, none changes it */
	json_t *cfg = json_incref(to->config);
	json_t *pt = to->process_types ? json_deep_copy(to->process_types) : json_object();
	if (cfg == NULL || pt == NULL) {
		if (cfg)
			json_decref(cfg);
		if (pt)
			json_decref(pt);
		return dy_error_errno(err, ENOMEM, "rollback");
	}
	if (prepare_slug(m, app, slug_id, pt, err) < 0) {
		json_decref(cfg);
		json_decref(pt);
		return -1;
	}
	char desc[64];
	snprintf(desc, sizeof(desc), "Rollback to v%d", version);
	return release(m, app, desc, slug_id, cfg, pt, ret, err);
}

static bool valid_key(const char *k)
{
	size_t n = strlen(k);
	if (n == 0 || n > MGR_CONFIG_KEY_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = k[i];
		bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
		          (i > 0 && c >= '0' && c <= '9');
		if (!ok)
			return false;
	}
	return true;
}

/* Appends "K1, K2" of the keys in changes that are (or are not) null. */
static void describe_keys(char *buf, size_t size, json_t *changes, bool removed)
{
	const char *k;
	json_t *v;
	size_t len = strlen(buf);
	bool first = true;
	json_object_foreach(changes, k, v)
	{
		if (json_is_null(v) != removed)
			continue;
		int n = snprintf(buf + len, size - len, "%s%s", first ? "" : ", ", k);
		if (n < 0 || (size_t)n >= size - len) {
			/* too long for one line: end with an ellipsis */
			if (size > 4)
				snprintf(buf + size - 4, 4, "...");
			return;
		}
		len += (size_t)n;
		first = false;
	}
}

/* Bytes of an object of config vars: keys and values, as Heroku counts
 * them against its 32 KiB per app. */
static uint64_t config_size(json_t *cfg)
{
	uint64_t n = 0;
	const char *k;
	json_t *v;
	json_object_foreach(cfg, k, v) n += strlen(k) + json_string_length(v);
	return n;
}

int mgr_config_update(struct mgr *m, const char *name, json_t *changes, struct state_release **ret,
                      struct dy_error **err)
{
	struct state_app *app;
	if (mgr_app_get(m, name, &app, err) < 0)
		return -1;
	if (!json_is_object(changes))
		return dy_error_as(err, DY_E_INVALID,
		                   "config vars: expected an object of names to strings or null");
	const char *k;
	json_t *v;
	json_object_foreach(changes, k, v)
	{
		if (!valid_key(k))
			return dy_error_as(err, DY_E_INVALID,
			                   "invalid config var name \"%.80s\": it must match "
			                   "[A-Za-z_][A-Za-z0-9_]* (at most %d bytes)",
			                   k, MGR_CONFIG_KEY_MAX);
		if (!json_is_string(v) && !json_is_null(v))
			return dy_error_as(
			    err, DY_E_INVALID,
			    "config var %s: the value must be a string (or null to remove it)", k);
	}
	_cleanup_json_ json_t *cfg = config_copy(app);
	if (cfg == NULL)
		return dy_error_errno(err, ENOMEM, "config");
	_cleanup_json_ json_t *set = json_object(), *removed = json_object();
	if (set == NULL || removed == NULL)
		return dy_error_errno(err, ENOMEM, "config");
	json_object_foreach(changes, k, v)
	{
		json_t *old = json_object_get(cfg, k);
		if (json_is_null(v)) {
			if (old) {
				json_object_del(cfg, k);
				json_object_set(removed, k, v);
			}
		} else if (old == NULL || !json_equal(old, v)) {
			json_object_set(cfg, k, v);
			json_object_set(set, k, v);
		}
	}
	if (json_object_size(set) == 0 && json_object_size(removed) == 0) {
		*ret = NULL; /* nothing changed: no release */
		return 0;
	}
	/* a change that shrinks the vars is always taken, so an app over a
	 * lowered bound can get back under it */
	uint64_t size = config_size(cfg), max = m->cfg->config_vars.max_size;
	json_t *before = mgr_config_vars(app);
	if (size > max && size > (before ? config_size(before) : 0))
		return dy_error_as(
		    err, DY_E_INVALID,
		    "config vars of %s would take %llu bytes (names and values), over "
		    "the limit of %llu bytes (config_vars.max_size)",
		    app->name, (unsigned long long)size, (unsigned long long)max);
	char desc[256] = "";
	if (json_object_size(set)) {
		snprintf(desc, sizeof(desc), "Set ");
		describe_keys(desc, sizeof(desc) - 16, set, false);
	}
	if (json_object_size(removed)) {
		size_t len = strlen(desc);
		snprintf(desc + len, sizeof(desc) - len, "%s", len ? "; remove " : "Remove ");
		describe_keys(desc, sizeof(desc) - 16, removed, true);
	}
	size_t len = strlen(desc);
	snprintf(desc + len, sizeof(desc) - len, " config vars");

	const struct state_release *cur = state_app_current(app);
	char slug_id[STATE_SLUG_ID_LEN + 1] = "";
	json_t *pt = NULL;
	if (cur && cur->slug_id[0]) {
		snprintf(slug_id, sizeof(slug_id), "%s", cur->slug_id);
		pt = cur->process_types ? json_deep_copy(cur->process_types) : json_object();
		if (pt == NULL)
			return dy_error_errno(err, ENOMEM, "config");
		if (prepare_slug(m, app, slug_id, pt, err) < 0) {
			json_decref(pt);
			return -1;
		}
	}
	return release(m, app, desc, slug_id[0] ? slug_id : NULL, TAKE_PTR(cfg), pt, ret, err);
}

/* The current release's process types, or an error saying to deploy. */
static int current_types(const struct state_app *app, json_t **ret, struct dy_error **err)
{
	const struct state_release *cur = state_app_current(app);
	if (cur == NULL || cur->process_types == NULL)
		return dy_error_as(err, DY_E_INVALID,
		                   "app %s has no release with a slug yet: deploy one", app->name);
	*ret = cur->process_types;
	return 0;
}

static void type_list(char *buf, size_t size, json_t *pt)
{
	const char *k;
	json_t *v;
	size_t len = 0;
	buf[0] = '\0';
	json_object_foreach(pt, k, v)
	{
		if (strcmp(k, "release") == 0)
			continue;
		int n = snprintf(buf + len, size - len, "%s%s", len ? ", " : "", k);
		if (n < 0 || (size_t)n >= size - len)
			return;
		len += (size_t)n;
	}
}

int mgr_formation_update(struct mgr *m, const char *name, const struct mgr_formation_update *u,
                         size_t n, struct dy_error **err)
{
	struct state_app *app;
	if (mgr_app_get(m, name, &app, err) < 0)
		return -1;
	json_t *pt;
	if (current_types(app, &pt, err) < 0)
		return -1;
	if (n == 0)
		return dy_error_as(err, DY_E_INVALID, "updates: empty list");
	for (size_t i = 0; i < n; i++) {
		if (u[i].type == NULL || strcmp(u[i].type, "release") == 0 ||
		    json_object_get(pt, u[i].type) == NULL) {
			char types[512];
			type_list(types, sizeof(types), pt);
			return dy_error_as(
			    err, DY_E_INVALID,
			    "no process type \"%.64s\" in the current release's Procfile "
			    "(types: %s)",
			    u[i].type ? u[i].type : "", types);
		}
		if (u[i].quantity != -1 && (u[i].quantity < 0 || u[i].quantity > MGR_QUANTITY_MAX))
			return dy_error_as(err, DY_E_INVALID,
			                   "%s: quantity %d is out of range 0..%d", u[i].type,
			                   u[i].quantity, MGR_QUANTITY_MAX);
		if (u[i].size && config_size_find(m->cfg, u[i].size) == NULL) {
			char sizes[512] = "";
			size_t len = 0;
			for (size_t s = 0; s < m->cfg->sizes.n; s++) {
				int w = snprintf(sizes + len, sizeof(sizes) - len, "%s%s",
				                 s ? ", " : "", m->cfg->sizes.size[s].name);
				if (w < 0 || (size_t)w >= sizeof(sizes) - len)
					break;
				len += (size_t)w;
			}
			return dy_error_as(err, DY_E_INVALID,
			                   "%s: unknown size \"%.64s\" (sizes: %s)", u[i].type,
			                   u[i].size, sizes);
		}
	}
	/* a copy to restore when the state cannot be saved */
	size_t saved_n = app->nformation;
	_cleanup_free_ struct state_formation *saved =
	    saved_n ? malloc(saved_n * sizeof(*saved)) : NULL;
	if (saved_n && saved == NULL)
		return dy_error_errno(err, ENOMEM, "formation");
	if (saved_n)
		memcpy(saved, app->formation, saved_n * sizeof(*saved));
	for (size_t i = 0; i < n; i++) {
		struct state_formation *f;
		if (state_formation_get(app, u[i].type, m->cfg->dyno.default_size, &f, err) < 0) {
			app->nformation = saved_n;
			if (saved_n)
				memcpy(app->formation, saved, saved_n * sizeof(*saved));
			return -1;
		}
		if (u[i].quantity != -1)
			f->quantity = u[i].quantity;
		if (u[i].size)
			snprintf(f->size, sizeof(f->size), "%s", u[i].size);
	}
	if (save(m, app, err) < 0) {
		/* entries added are past saved_n; the array only grew */
		app->nformation = saved_n;
		if (saved_n)
			memcpy(app->formation, saved, saved_n * sizeof(*saved));
		return -1;
	}
	if (m->ops && m->ops->apply_formation)
		m->ops->apply_formation(m->ops->data, app, state_app_current(app), NULL);
	return 0;
}

json_t *mgr_formation_json(const struct mgr *m, const struct state_app *app, const char *type,
                           struct dy_error **err)
{
	const struct state_release *cur = state_app_current(app);
	json_t *pt = cur ? cur->process_types : NULL;
	json_t *list = type ? NULL : json_array();
	if (type == NULL && list == NULL)
		return NULL;
	const char *k;
	json_t *v;
	if (pt)
		json_object_foreach(pt, k, v)
		{
			if (strcmp(k, "release") == 0)
				continue;
			if (type && strcmp(k, type) != 0)
				continue;
			struct state_formation dflt = {.quantity = 0};
			const struct state_formation *f = state_formation_find(app, k);
			if (f == NULL) {
				snprintf(dflt.type, sizeof(dflt.type), "%s", k);
				snprintf(dflt.size, sizeof(dflt.size), "%s",
				         m->cfg->dyno.default_size);
				f = &dflt;
			}
			json_t *o = state_formation_json(f, json_string_value(v));
			if (type)
				return o;
			json_array_append_new(list, o);
		}
	if (type) {
		dy_error_as(err, DY_E_NOT_FOUND, "no process type \"%.64s\" in the formation of %s",
		            type, app->name);
		return NULL;
	}
	return list;
}
