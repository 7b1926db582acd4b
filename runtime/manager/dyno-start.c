/* A dyno's start (supervisor-internal.h): its environment, its slug's
 * tree (unpacked by the manager off the loop when it is gone), then
 * launch_start() on the supervisor's start thread, and the result taken
 * up on the loop. */
#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/attach.h"
#include "common/cleanup.h"
#include "common/heroku-codes.h"
#include "common/log.h"
#include "common/macro.h"
#include "runtime/launcher/launch.h"
#include "runtime/manager/boot.h"
#include "runtime/manager/dyno-json.h"
#include "runtime/manager/dyno-record.h"
#include "runtime/manager/host.h"
#include "runtime/manager/lifecycle.h"
#include "runtime/manager/log-intake.h"
#include "runtime/manager/memory-watch.h"
#include "runtime/manager/router-keeper.h"
#include "runtime/manager/routes-writer.h"
#include "runtime/manager/supervisor.h"
#include "runtime/manager/supervisor-internal.h"
#include "slugs/slug-store.h"

/* The environment of release rel: HEROKU_RELEASE_VERSION=vN (Heroku's
 * dyno metadata; a config var of that name does not override it), then its
 * config vars as "K=V". */
static char **env_of(const struct state_release *rel)
{
	size_t n = rel->config ? json_object_size(rel->config) : 0;
	char **env = calloc(n + 2, sizeof(*env));
	if (!env)
		return NULL;
	size_t i = 0;
	if (asprintf(&env[i], "HEROKU_RELEASE_VERSION=v%d", rel->version) < 0) {
		free(env);
		return NULL;
	}
	i++;
	const char *k;
	json_t *v;
	if (rel->config) {
		json_object_foreach(rel->config, k, v)
		{
			const char *sv = json_string_value(v);
			if (!sv || !strcmp(k, "HEROKU_RELEASE_VERSION") ||
			    asprintf(&env[i], "%s=%s", k, sv) < 0) {
				env[i] = NULL;
				continue;
			}
			i++;
		}
	}
	env[i] = NULL;
	return env;
}

static void env_free(char **env)
{
	if (!env)
		return;
	for (char **p = env; *p; p++)
		free(*p);
	free(env);
}

struct sup_build *sup_build_new(const struct mgr_run *run)
{
	if (run->nbinds > LAUNCH_BINDS_MAX)
		return NULL;
	struct sup_build *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	bool ok = (b->app_dir = strdup(run->app_dir)) != NULL;
	for (size_t i = 0; ok && i < run->nbinds; i++) {
		b->binds[i].src = strdup(run->binds[i].src);
		b->binds[i].dst = strdup(run->binds[i].dst);
		b->binds[i].rw = run->binds[i].rw;
		b->nbinds = i + 1;
		ok = b->binds[i].src && b->binds[i].dst;
	}
	size_t n = 0;
	while (run->env && run->env[n])
		n++;
	b->env = ok ? calloc(n + 1, sizeof(*b->env)) : NULL;
	for (size_t i = 0; b->env && i < n && ok; i++)
		ok = (b->env[i] = strdup(run->env[i])) != NULL;
	if (!ok || !b->env) {
		sup_build_free(b);
		return NULL;
	}
	return b;
}

void sup_build_free(struct sup_build *b)
{
	if (!b)
		return;
	free(b->app_dir);
	for (size_t i = 0; i < b->nbinds; i++) {
		free((char *)b->binds[i].src);
		free((char *)b->binds[i].dst);
	}
	env_free(b->env);
	free(b);
}

/* The manager's unpack for d's start is done: start (or fail) now. */
static void on_unpacked(void *arg, const struct slug_info *info, struct dy_error *err)
{
	struct sup_dyno *d = arg;
	d->unpack_job = NULL;
	d->unpack_err = err;
	if (d->lc.stopping) {
		dy_error_free(&d->unpack_err);
		return;
	}
	sup_dyno_start(d);
}

/* A start on the start thread: its own copies of everything the
 * launch_params point to, so that nothing the loop changes (the state, the
 * release's config, d) is read off the loop. */
struct sup_start {
	struct work work;
	struct sup_dyno *d; /* only for done, on the loop */
	struct launch_params p;
	char *slug_dir;
	char *name;
	char *id;
	char *command;
	char **env;
	char *log_sink;
	char *cgroup_parent;
	char *init_path;
	struct sup_build *build; /* a build dyno's copy */
	/* the result */
	int r;
	struct launch_dyno *ld;
	struct dy_error *err;
};

static void start_free(struct sup_start *st)
{
	free(st->slug_dir);
	free(st->name);
	free(st->id);
	free(st->command);
	env_free(st->env);
	free(st->log_sink);
	free(st->cgroup_parent);
	free(st->init_path);
	sup_build_free(st->build);
	dy_error_free(&st->err);
	free(st);
}

static char *dup_or_null(const char *str, bool *ok)
{
	if (!str)
		return NULL;
	char *c = strdup(str);
	if (!c)
		*ok = false;
	return c;
}

/* work_fn, on the start thread: only st's own copies. */
static void start_run(struct work *w)
{
	struct sup_start *st = loop_container_of(w, struct sup_start, work);
	st->r = launch_start(&st->p, &st->ld, &st->err);
}

static void start_finish(struct sup_dyno *d, int r, struct dy_error *e);

/* work_fn, on the loop: the start is over. d was kept (not started
 * again, not freed) while it ran; a stop that came meanwhile is done now. */
static void start_done(struct work *w)
{
	struct sup_start *st = loop_container_of(w, struct sup_start, work);
	struct sup_dyno *d = st->d;
	struct sup *s = d->sup;
	s->nstarting--;
	d->start = NULL;
	d->ld = st->r < 0 ? NULL : TAKE_PTR(st->ld);
	int r = st->r;
	struct dy_error *e = TAKE_PTR(st->err);
	start_free(st);
	start_finish(d, r, e);
}

static void submit_start(struct sup_dyno *d, struct sup_start *w);

/* The copies every start makes; false when memory ran out. */
static bool copy_common(struct sup_start *w, struct sup_dyno *d, const char *id)
{
	bool ok = true;
	w->name = dup_or_null(d->name, &ok);
	w->id = dup_or_null(id, &ok);
	w->command = dup_or_null(d->command, &ok);
	w->cgroup_parent = dup_or_null(d->sup->cgroup_parent, &ok);
	w->init_path = dup_or_null(d->sup->init_path, &ok);
	return ok;
}

static void alloc_failed(struct sup_dyno *d, struct sup_start *w)
{
	struct dy_error *e = NULL;
	if (w)
		start_free(w);
	start_finish(d, dy_error_errno(&e, ENOMEM, "start of %s", d->name), e);
}

/* A build dyno's start: its build directory at /app, read-write, its
 * binds, its environment (mgr_run). */
static void build_start(struct sup_dyno *d, const struct state_app *app,
                        const struct config_size *sz)
{
	struct sup *s = d->sup;
	char id[64];
	snprintf(id, sizeof(id), "%s%.30s-%u-%u", s->id_prefix, d->app, (unsigned)getpid() % 100000,
	         ++s->seq);
	struct sup_start *w = calloc(1, sizeof(*w));
	bool ok = w != NULL;
	if (w) {
		w->d = d;
		w->build = sup_build_new(&(struct mgr_run){
		    .app_dir = d->build->app_dir,
		    .binds = NULL,
		    .env = d->build->env,
		});
		ok = w->build != NULL;
		for (size_t i = 0; ok && i < d->build->nbinds; i++) {
			struct launch_bind *b = &w->build->binds[i];
			b->src = strdup(d->build->binds[i].src);
			b->dst = strdup(d->build->binds[i].dst);
			b->rw = d->build->binds[i].rw;
			w->build->nbinds = i + 1;
			ok = b->src && b->dst;
		}
		ok = copy_common(w, d, id) && ok;
	}
	if (!ok) {
		alloc_failed(d, w);
		return;
	}
	w->p = (struct launch_params){
	    .slug_dir = w->build->app_dir,
	    .app_rw = true,
	    .binds = w->build->binds,
	    .nbinds = w->build->nbinds,
	    .uid = app->uid,
	    .gid = app->uid,
	    .name = w->name,
	    .id = w->id,
	    .command = w->command,
	    .env = w->build->env,
	    .limits = {.memory = sz->memory, .pids = sz->pids, .cpu = sz->cpu},
	    .cgroup_parent = w->cgroup_parent,
	    .subnet = s->cfg->network.subnet,
	    .subnet_prefix = s->cfg->network.subnet_prefix,
	    .egress = s->cfg->network.egress,
	    .setup_timeout_usec = s->cfg->dyno.timeouts.setup,
	    .init_path = w->init_path,
	    .attach = d->attach_fd >= 0,
	    .attach_fd = d->attach_fd,
	};
	dy_log_app(d->app, d->name, "Starting process with command `%s`", d->command);
	submit_start(d, w);
}

/* Launches d's process for its release, on the start thread: d is
 * starting, without a process, until start_done(). On failure d is
 * crashed (and retried after a cool-off), or a release phase fails. */
void sup_dyno_start(struct sup_dyno *d)
{
	struct sup *s = d->sup;
	struct dy_error *e = NULL;
	if (d->start)
		return; /* one at a time */
	loop_timer_stop(s->loop, &d->start_timer);
	const struct state *st = s->mgr ? mgr_state(s->mgr) : NULL;
	const struct state_app *app = st ? state_app_find(st, d->app) : NULL;
	const struct state_release *rel = app ? state_release_find(app, d->version) : NULL;
	const struct config_size *sz = config_size_find(s->cfg, d->size);
	if (d->build && app && sz) {
		build_start(d, app, sz);
		return;
	}
	if (!rel || !rel->slug_id[0] || !sz) {
		dy_log(d->name, "release v%d or size %s is gone", d->version, d->size);
		if (d->lc.oneoff)
			sup_report_release(d, false, "release or dyno size is gone");
		sup_unlink_dyno(d);
		return;
	}
	_cleanup_free_ char *dir = NULL;
	char id[64];
	snprintf(id, sizeof(id), "%s%.30s-%u-%u", s->id_prefix, d->app, (unsigned)getpid() % 100000,
	         ++s->seq);
	int r = slug_store_tree(st->dir, rel->slug_id, app->name, &dir, &e);
	struct stat sb;
	if (d->unpack_err) {
		e = TAKE_PTR(d->unpack_err);
		r = -1;
	} else if (r >= 0 && (lstat(dir, &sb) < 0 || !S_ISDIR(sb.st_mode))) {
		/* the tree was removed (its release is no longer kept, or by
		 * hand): the manager unpacks it again off the loop, within the
		 * app's disk budget, and the start goes on in on_unpacked */
		if (d->unpack_job)
			return;
		dy_log(d->name, "slug %.7s is not unpacked: unpacking it", rel->slug_id);
		r = mgr_unpack_start(s->mgr, app->name, rel->slug_id, on_unpacked, d,
		                     &d->unpack_job, &e);
		if (r >= 0)
			return;
	}
	if (r < 0) {
		start_finish(d, r, e);
		return;
	}
	struct sup_start *w = calloc(1, sizeof(*w));
	bool ok = w != NULL;
	if (w) {
		w->d = d;
		w->slug_dir = TAKE_PTR(dir);
		ok = copy_common(w, d, id);
		w->env = env_of(rel);
		ok = ok && w->env;
		w->log_sink = dup_or_null(lgi_app_sink(s->logs, d->app), &ok);
	}
	if (!ok) {
		alloc_failed(d, w);
		return;
	}
	w->p = (struct launch_params){
	    .slug_dir = w->slug_dir,
	    .uid = app->uid,
	    .gid = app->uid,
	    .name = w->name,
	    .id = w->id,
	    .command = w->command,
	    .env = w->env,
	    .limits = {.memory = sz->memory, .pids = sz->pids, .cpu = sz->cpu},
	    .port = d->port,
	    .cgroup_parent = w->cgroup_parent,
	    .subnet = s->cfg->network.subnet,
	    .subnet_prefix = s->cfg->network.subnet_prefix,
	    .egress = s->cfg->network.egress,
	    .setup_timeout_usec = s->cfg->dyno.timeouts.setup,
	    /* an app with an add-on reaches its database on the gateway */
	    .gateway_ports = app->addons ? &s->pg_port : NULL,
	    .n_gateway_ports = app->addons ? 1 : 0,
	    .init_path = w->init_path,
	    .log_sink = w->log_sink,
	    .attach = d->attach_fd >= 0,
	    .attach_tty = d->attach_tty,
	    .attach_fd = d->attach_fd, /* stays open until done: d keeps it */
	    /* taken from the warm pool when it serves this start (not an
	     * attached one): the dyno's id is then the entry's */
	    .pool = s->pool,
	};
	dy_log_app(d->app, d->name, "Starting process with command `%s`", d->command);
	submit_start(d, w);
}

static void submit_start(struct sup_dyno *d, struct sup_start *w)
{
	struct sup *s = d->sup;
	d->start = w;
	s->nstarting++;
	if (s->starts) {
		work_submit(s->starts, &w->work, start_run, start_done);
	} else { /* no start thread (sup_new() could not make one): inline */
		start_run(&w->work);
		start_done(&w->work);
	}
}

/* The end of d's start: r < 0 with e (taken) when it failed, else d->ld
 * runs. */
static void start_finish(struct sup_dyno *d, int r, struct dy_error *e)
{
	struct sup *s = d->sup;
	if (d->attach_fd >= 0) {
		/* init has its copy now; a failed start is told to the client */
		if (r < 0)
			attach_write(d->attach_fd, ATTACH_ERROR, dy_error_msg(e),
			             strlen(dy_error_msg(e)));
		close(TAKE_FD(d->attach_fd));
	}
	if (s->freeing) {
		/* sup_free() waits for the start thread: it kills (or, leaving,
		 * keeps) what started */
		dy_error_free(&e);
		if (d->ld) {
			char comm[16];
			if (rkeep_proc_stat(d->ld->pid, comm, &d->start_time) < 0)
				d->start_time = 0;
		}
		return;
	}
	enum lc_state was = d->lc.state;
	if (r < 0) {
		dy_log(d->name, "start: %s", dy_error_msg(e));
		char why[256];
		snprintf(why, sizeof(why), "release command could not start: %s", dy_error_msg(e));
		snprintf(d->why, sizeof(d->why), "could not start: %s", dy_error_msg(e));
		dy_error_free(&e);
		d->ld = NULL;
		/* a child stuck in the kernel leaves its cgroup, veth and
		 * rules to the sweep (and its pid to be reaped) */
		sup_sweep_soon(s);
		if (d->lc.stopping) { /* stopped while it started: down */
			d->lc.state = LC_DOWN;
			if (d->lc.oneoff)
				sup_report_release(d, false, "release command was stopped");
			sup_state_changed(d, was);
			sup_unlink_dyno(d);
			return;
		}
		uint64_t wait = 0;
		d->start_failures++;
		if (lc_start_failed(&d->lc, &s->policy, &wait) == LC_NEXT_REMOVE) {
			sup_report_release(d, false, why);
			sup_unlink_dyno(d);
			return;
		}
		sup_state_changed(d, was);
		loop_timer_start(s->loop, &d->start_timer, wait, NULL);
		return;
	}
	mw_started(&d->mem);
	d->start_failures = 0;
	lc_started(&d->lc);
	sup_state_changed(d, was);
	sup_watch_process(d);
	if (d->lc.stopping) {
		/* a stop, scale down, restart, destroy or shutdown came while it
		 * started: it goes at once, with no grace (it has not run) */
		dy_log_app(d->app, d->name, "Stopping process with SIGKILL");
		sup_kill_now(d);
		sup_on_exited(d);
		return;
	}
	if (sup_is_web(d))
		sup_boot_begin(d);
	else
		sup_mark_up(d);
}
