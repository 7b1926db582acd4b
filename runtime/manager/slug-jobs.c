/* The manager's slug jobs (manager.h, "Slugs off the loop"): checking an
 * upload, unpacking a slug for an app, removing what an app keeps no
 * more; one at a time per app, on the work pool, the loop never waiting. */
#include "runtime/manager/manager.h"
#include "runtime/manager/manager-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "slugs/slug-disk.h"
#include "slugs/slug-store.h"

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
	char **rels; /* GC: the app's release slugs */
	size_t nrels;
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
	strv_free(j->rels, j->nrels);
	slug_info_clear(&j->info);
	dy_error_free(&j->err);
	free(j);
}

void mgr_slug_limits(const struct mgr *m, struct slug_limits *l)
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
	mgr_slug_limits(m, &j->limits);
	j->budget = m->cfg->slugs.app_disk_budget;
	j->stop = &m->stop;
	if (j->kind != JOB_GC)
		return app_slugs(app, &j->ids, &j->nids);
	if (app_kept(m, app, &j->ids, &j->nids) < 0 || app_slugs(app, &j->rels, &j->nrels) < 0)
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

/* The app's usage now, with slug (when not NULL) counted as its own.
 * *ret_spare (may be NULL): the bytes of the trees its uploads made for
 * deploys to come (trees no release of it uses). */
static int job_usage(struct mgr_job *j, const char *slug, uint64_t *ret_spare)
{
	if (slug && strv_add(&j->ids, &j->nids, slug) < 0)
		return dy_error_errno(&j->err, ENOMEM, "disk usage");
	return slug_store_app_usage_ex(j->state_dir, j->app, (const char *const *)j->ids, j->nids,
	                               &j->used, ret_spare, &j->err);
}

/* On a worker thread: dynod is stopping (mgr_stop_work(), on the loop's
 * thread meanwhile: an atomic load). */
static bool job_stopping(const struct mgr_job *j)
{
	return j->stop && __atomic_load_n(j->stop, __ATOMIC_RELAXED);
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
	uint64_t spare = 0;
	if (job_usage(j, NULL, &spare) < 0)
		return;
	/* The budget's checks count the app as if its uploads' trees were
	 * not there yet (as without them: they are unpacked ahead of their
	 * deploys, which give them up when they need the room, job_unpack). */
	uint64_t held = j->used;
	j->used = held - (spare < held ? spare : held);
	if (slug_disk_over(j->used, (uint64_t)st.st_size, j->budget)) {
		over_budget(j, "storing it", slug_disk_add(j->used, (uint64_t)st.st_size));
		return;
	}
	/* The slug is unpacked for the app as it is checked (one pass) when
	 * its tree fits: in the budget with everything the app holds, and
	 * on the disk beside its free margin. Else, or when writing fails,
	 * the deploy unpacks it. */
	uint64_t avail = 0;
	if (slug_disk_available(j->state_dir, &avail, NULL) < 0)
		avail = 0;
	uint64_t limit = slug_disk_left(slug_disk_add(held, (uint64_t)st.st_size), j->budget);
	uint64_t room = slug_disk_left(SLUG_DISK_FREE_MARGIN, avail);
	struct slug_store_app_tree tree = {.app = j->app,
	                                   .uid = j->uid,
	                                   .gid = j->uid,
	                                   .write_limit = limit < room ? limit : room};
	struct dy_error *e = NULL;
	if (slug_store_put_fd_unpack(j->state_dir, j->fd, &j->limits, put_check, j, &tree, &j->info,
	                             NULL, &e) < 0) {
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
	uint64_t spare = 0;
	if (job_usage(j, j->slug_id, &spare) < 0)
		return;
	uint64_t need = j->info.unpacked_size;
	uint64_t before = j->used - (spare < j->used ? spare : j->used);
	if (slug_disk_over(before, need, j->budget)) {
		/* as without the trees of uploads to come */
		over_budget(j, "unpacking it", slug_disk_add(before, need));
		return;
	}
	uint64_t avail;
	if (slug_disk_available(j->state_dir, &avail, &j->err) < 0)
		return;
	if (spare && (slug_disk_over(j->used, need, j->budget) ||
	              slug_disk_over(need, SLUG_DISK_FREE_MARGIN, avail))) {
		/* those trees give way, in the budget and on the disk (their
		 * slugs stay stored: a deploy of one unpacks it) */
		slug_store_remove_trees(j->state_dir, j->app, (const char *const *)j->ids, j->nids);
		if (job_usage(j, NULL, NULL) < 0 ||
		    slug_disk_available(j->state_dir, &avail, &j->err) < 0)
			return;
	}
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
		} else if (e && e->errnum == 0 && !job_stopping(j)) {
			dy_error_as(&j->err, DY_E_INVALID, "slug refused: %s", dy_error_msg(e));
			dy_error_free(&e);
		} else {
			j->err = TAKE_PTR(e);
		}
	}
}

static void job_gc(struct mgr_job *j)
{
	j->removed_trees = slug_store_gc_app(j->state_dir, j->app, (const char *const *)j->ids,
	                                     j->nids, (const char *const *)j->rels, j->nrels);
	j->removed_slugs = slug_store_gc(j->state_dir, (const char *const *)j->refs, j->nrefs);
}

/* On a worker thread: touches nothing but the job. */
static void job_fn(struct work *w)
{
	struct mgr_job *j = loop_container_of(w, struct mgr_job, work);
	if (job_stopping(j)) {
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

/* On the loop, after a check or an unpack for an app destroyed meanwhile:
 * the store makes apps/<app>/slugs by path, so a worker that got there
 * after the destroy renamed the app's directory away made it again, with
 * what it unpacked. Without an app of that name now, that directory is
 * removed (it has no app.json; the next start would sweep it, and a new
 * app of the name would inherit it); a new app of the name collects the
 * trees it does not keep. On the loop, as a destroyed app's grave: an
 * app created meanwhile cannot race the removal. */
static void job_leftovers(struct mgr_job *j)
{
	struct mgr *m = j->m;
	struct state_app *now = state_app_find(m->st, j->app);
	if (now) {
		mgr_collect_slugs(m, now);
		return;
	}
	_cleanup_free_ char *dir = NULL;
	if (asprintf(&dir, "%s/apps/%s", m->st->dir, j->app) < 0)
		return; /* swept at the next start */
	struct stat st;
	if (lstat(dir, &st) < 0)
		return;
	int r = state_grave_remove(dir);
	if (r < 0)
		dy_log("api", "remove %s: %s", dir, strerror(-r));
	else
		dy_log("api", "%s: removed what its %s left after the app was destroyed", j->app,
		       job_kind_str(j->kind));
}

/* On the loop: logs and answers. An internal failure is logged in full
 * (paths and all) and reaches cb as what failed and its errno text. */
static void job_finish(struct mgr_job *j)
{
	if (j->kind != JOB_GC && job_app(j) == NULL) {
		/* whatever the work met on the way (a destroy renames the
		 * app's directory under an unpack: ENOENT), this is the answer */
		dy_error_free(&j->err);
		dy_error_as(&j->err, DY_E_NOT_FOUND, "app %s was destroyed meanwhile", j->app);
		if (j->started && j->state_dir)
			job_leftovers(j); /* its work ran */
	} else if (j->kind == JOB_UNPACK && j->m->stopping && j->err == NULL) {
		/* an unpack done as dynod stops makes no release: its client
		 * would not hear of it (the API closes before the write lands) */
		dy_error(&j->err, "interrupted: dynod is stopping");
	}
	if (j->err && dy_error_kind_of(j->err) == DY_E_INTERNAL) {
		dy_log("api", "%s: %s slug %.7s: %s", j->app, job_kind_str(j->kind),
		       j->kind == JOB_PUT ? j->info.id : j->slug_id, dy_error_msg(j->err));
		int errnum = j->err->errnum;
		dy_error_free(&j->err);
		char what[128];
		if (j->kind == JOB_PUT)
			snprintf(what, sizeof(what), "storing the upload for app %s", j->app);
		else
			snprintf(what, sizeof(what), "unpacking slug %.7s for app %s", j->slug_id,
			         j->app);
		if (j->m->stopping)
			dy_error(&j->err, "%s was interrupted: dynod is stopping", what);
		else if (errnum)
			dy_error_errno(&j->err, errnum, "%s failed", what);
		else
			dy_error(&j->err, "%s failed (dynod's log says why)", what);
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

static bool job_start(struct mgr_job *j);

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

/* Starts j: on the pool, or at once (no pool, or to fail). Returns true
 * when j is done already (its cb ran, j is freed). */
static bool job_start(struct mgr_job *j)
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
		return true;
	}
	work_submit(m->pool, &j->work, job_fn, job_done);
	return false;
}

/* Queues j (taken) behind the app's earlier jobs, or starts it. Returns
 * true when j is done already (freed). */
static bool job_submit(struct mgr *m, struct mgr_job *j)
{
	bool busy = false;
	struct mgr_job **pp = &m->jobs;
	for (; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->app, j->app) == 0)
			busy = true;
	*pp = j;
	return busy ? false : job_start(j);
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
	__atomic_store_n(&m->stop, 1, __ATOMIC_RELAXED); /* read by the workers */
	m->stopping = true;
}

void mgr_job_detach(struct mgr_job *job)
{
	if (job)
		job->cb = NULL;
}

/* Returns the job submitted, or NULL when it already finished (its cb
 * ran): without a pool, and also with one when it failed to start (the
 * app gone, dynod stopping). */
static struct mgr_job *job_go(struct mgr *m, struct mgr_job *j)
{
	return job_submit(m, j) ? NULL : j;
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
int mgr_check_slug_id(struct mgr *m, const char *slug_id, struct dy_error **err)
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
	if (mgr_check_slug_id(m, slug_id, err) < 0)
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
void mgr_collect_slugs(struct mgr *m, const struct state_app *app)
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
int mgr_prepare_slug(struct mgr *m, struct state_app *app, const char *slug_id,
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
