/* The supervisor (supervisor.h): the glue between dynod's loop, the
 * launcher and the manager. The concerns live in modules of their own:
 * the state machine (lifecycle.c), boot detection (boot.c), the memory
 * watch (memory-watch.c), routes.json (routes-writer.c), the graves of
 * destroyed apps (teardown.c) and the API's dyno object (dyno-json.c);
 * here their events are wired to watchers and timers, and the formation
 * is reconciled. */
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
#include "runtime/manager/teardown.h"
#include "slugs/slug-store.h"

static void routes_changed(struct sup *s);

/* Many changes, one routes.json write (a reconcile of 100 dynos). */
static void batch_begin(struct sup *s)
{
	s->batch++;
}

static void batch_end(struct sup *s)
{
	if (--s->batch == 0 && s->routes_dirty)
		routes_changed(s);
}

/* After an event of the state machine: a change from was is logged, dated
 * and shown in routes.json. */
void sup_state_changed(struct sup_dyno *d, enum lc_state was)
{
	if (d->lc.state == was)
		return;
	dy_log_app(d->app, d->name, "State changed from %s to %s", lc_state_str(was),
	           lc_state_str(d->lc.state));
	state_now(d->updated_at);
	routes_changed(d->sup);
	sup_rollout_changed(d);
}

bool sup_is_web(const struct sup_dyno *d)
{
	return !d->lc.oneoff && strcmp(d->type, "web") == 0;
}

static void dyno_free(struct sup_dyno *d)
{
	mgr_job_detach(d->unpack_job);
	dy_error_free(&d->unpack_err);
	boot_stop(&d->boot);
	launch_free(d->ld);
	if (d->attach_fd >= 0)
		close(d->attach_fd); /* never started: the client sees the end */
	free(d->command);
	sup_build_free(d->build);
	free(d);
}

static void dyno_reap(struct loop_deferred *node)
{
	dyno_free(loop_container_of(node, struct sup_dyno, reap));
}

/* True while a stopping dyno of app is in the list. */
static bool app_stopping(const struct sup *s, const char *app)
{
	for (const struct sup_dyno *d = s->dynos; d; d = d->next)
		if (d->lc.stopping && strcmp(d->app, app) == 0)
			return true;
	return false;
}

void sup_unlink_dyno(struct sup_dyno *d)
{
	struct sup *s = d->sup;
	for (struct sup_dyno **p = &s->dynos; *p; p = &(*p)->next) {
		if (*p == d) {
			*p = d->next;
			break;
		}
	}
	d->removed = true;
	mgr_job_detach(d->unpack_job);
	d->unpack_job = NULL;
	loop_timer_stop(s->loop, &d->start_timer);
	loop_timer_stop(s->loop, &d->boot_timer);
	loop_timer_stop(s->loop, &d->stop_timer);
	loop_timer_stop(s->loop, &d->drain_timer);
	routes_changed(s);
	if (td_any(&s->graves) && !app_stopping(s, d->app))
		td_done(&s->graves, d->app);
	loop_defer(s->loop, &d->reap);
	if (s->shutting_down && s->dynos == NULL)
		loop_stop(s->loop);
}

/* Leftovers of a failed start or clean-up are swept for a while: a
 * process stuck in the kernel keeps its cgroup busy. */
void sup_sweep_soon(struct sup *s)
{
	s->sweeps_due = SUP_SWEEP_CHECKS;
	if (!loop_timer_active(&s->sweep_timer))
		loop_timer_start(s->loop, &s->sweep_timer, SUP_CHECK_USEC, NULL);
}

/* A dyno's clean-up (cgroup, veth, rules: netlink and cgroup file system
 * calls) on the start threads, off the loop, in turn with the starts
 * queued before it (a restart's new process has names and an address of
 * its own: the two may overlap). */
struct sup_cleanup {
	struct work work;
	struct sup *sup;
	struct launch_dyno *ld;
	struct dy_error *err;
};

static void cleanup_run(struct work *w)
{
	struct sup_cleanup *c = loop_container_of(w, struct sup_cleanup, work);
	launch_cleanup(c->ld, &c->err);
}

static void cleanup_done(struct work *w)
{
	struct sup_cleanup *c = loop_container_of(w, struct sup_cleanup, work);
	struct sup *s = c->sup;
	s->ncleaning--;
	if (c->err) {
		/* what is left (a cgroup still busy) is retried by a sweep */
		dy_log(c->ld->id, "clean-up: %s", dy_error_msg(c->err));
		dy_error_free(&c->err);
		if (!s->freeing)
			sup_sweep_soon(s);
	}
	launch_free(c->ld);
	free(c);
}

/* Forgets the process of d: watchers, boot probe, timers of the process,
 * cgroup, veth, rules. */
static void release_process(struct sup_dyno *d)
{
	struct sup *s = d->sup;
	loop_io_stop(s->loop, &d->exit_io);
	loop_io_stop(s->loop, &d->oom_io);
	boot_stop(&d->boot);
	loop_timer_stop(s->loop, &d->boot_timer);
	loop_timer_stop(s->loop, &d->stop_timer);
	loop_timer_stop(s->loop, &d->drain_timer);
	if (!d->ld)
		return;
	struct sup_cleanup *c = s->starts && !s->freeing ? calloc(1, sizeof(*c)) : NULL;
	if (c) {
		c->sup = s;
		c->ld = TAKE_PTR(d->ld);
		s->ncleaning++;
		work_submit(s->starts, &c->work, cleanup_run, cleanup_done);
		return;
	}
	/* dynod going away (or no memory): at once */
	struct dy_error *e = NULL;
	if (launch_cleanup(d->ld, &e) < 0) {
		dy_log(d->name, "clean-up: %s", dy_error_msg(e));
		dy_error_free(&e);
		sup_sweep_soon(s);
	}
	launch_free(d->ld);
	d->ld = NULL;
}

/* Reports the end of release phase d: ok, or failed for the reason why
 * (the release's `failure`, docs/api.md). */
void sup_report_release(struct sup_dyno *d, bool ok, const char *why)
{
	struct sup *s = d->sup;
	if (!s->mgr || strcmp(d->type, "release") != 0) /* run.N reports nothing */
		return;
	struct dy_error *e = NULL;
	if (mgr_release_finished(s->mgr, d->app, d->version, ok, ok ? NULL : why, &e) < 0) {
		dy_log(d->name, "release v%d: %s", d->version, dy_error_msg(e));
		dy_error_free(&e);
	}
}

/* The process of d has exited (and was reaped). */
void sup_on_exited(struct sup_dyno *d)
{
	struct sup *s = d->sup;
	/* its init's last lines and its report of the app's end are in its
	 * sink already (sent before it exited) */
	if (s->logs && d->ld)
		lgi_drain_app(s->logs, d->app);
	bool reported = d->exit_reported;
	d->exit_reported = false;
	if (reported && d->ld && d->ld->adopted && !d->ld->status_known) {
		d->ld->status = d->exit_status;
		d->ld->status_known = true;
	}
	int status = d->ld ? d->ld->status : 0;
	bool oom = false;
	if (d->ld) {
		launch_check_oom(d->ld, NULL); /* counts a kill not looked at yet */
		oom = mw_oom(&d->mem, d->ld->oom_kills) == HK_R15;
	}
	if (oom && !d->lc.stopping)
		dy_log_app(d->app, d->name, HK_ERROR_FMT, HK_ERROR_ARGS(HK_R15));
	/* an R10 named itself before the kill */
	if (oom)
		snprintf(d->why, sizeof(d->why), HK_ERROR_FMT, HK_ERROR_ARGS(HK_R15));
	else if (strncmp(d->why, "Error R10", 9) != 0)
		snprintf(d->why, sizeof(d->why), "Process exited with status %d", status);
	/* launch.h: the exit code, or 128 + the signal (as a shell says); a
	 * re-adopted dyno is not dynod's child: no status to collect */
	if (d->ld && d->ld->adopted && !d->ld->status_known)
		dy_log_app(d->app, d->name, "Process exited with status unknown (re-adopted)");
	else if (reported) /* the app's log has its init's line */
		dy_log(d->name, "Process exited with status %d", status);
	else /* its init could not say it (killed, no sink, attached) */
		dy_log_app(d->app, d->name, "Process exited with status %d", status);
	bool stopped = d->lc.stopping;
	release_process(d);
	enum lc_state was = d->lc.state;
	uint64_t wait = 0;
	enum lc_next next = lc_exited(&d->lc, &s->policy, loop_now(s->loop), &wait);
	sup_state_changed(d, was);
	if (d->lc.oneoff) { /* stopped (ps:stop, dynod's SIGTERM) is a failure too:
		             * a release never stays pending */
		char why[80];
		snprintf(why, sizeof(why), "release command exited with status %d", status);
		sup_report_release(d, status == 0 && !stopped,
		                   stopped ? "release command was stopped" : why);
	}
	if (next == LC_NEXT_REMOVE) {
		sup_unlink_dyno(d);
		return;
	}
	if (wait == 0) {
		sup_dyno_start(d);
		return;
	}
	dy_log(d->name, "restarting in %llu s", (unsigned long long)(wait / 1000000));
	if (loop_timer_start(s->loop, &d->start_timer, wait, NULL) < 0)
		sup_dyno_start(d);
}

static void on_exit_io(struct loop *loop, struct loop_io *io, uint32_t events)
{
	(void)loop;
	(void)events;
	struct sup_dyno *d = loop_container_of(io, struct sup_dyno, exit_io);
	struct dy_error *e = NULL;
	int r = launch_poll(d->ld, &e);
	if (r == 0)
		return;
	if (r < 0) {
		dy_log(d->name, "%s", dy_error_msg(e));
		dy_error_free(&e);
		launch_kill(d->ld, NULL);
	}
	sup_on_exited(d);
}

void sup_kill_now(struct sup_dyno *d)
{
	struct dy_error *e = NULL;
	if (launch_kill(d->ld, &e) < 0) {
		dy_log(d->name, "kill: %s", dy_error_msg(e));
		dy_error_free(&e);
	}
}

static void check_oom(struct sup_dyno *d)
{
	struct dy_error *e = NULL;
	int r = launch_check_oom(d->ld, &e);
	if (r < 0) {
		dy_log(d->name, "OOM check: %s", dy_error_msg(e));
		dy_error_free(&e);
	}
	if (r > 0) /* the whole dyno was killed: a crash (logged there) */
		sup_on_exited(d);
}

static void on_oom_io(struct loop *loop, struct loop_io *io, uint32_t events)
{
	(void)loop;
	(void)events;
	check_oom(loop_container_of(io, struct sup_dyno, oom_io));
}

void sup_mark_up(struct sup_dyno *d)
{
	boot_stop(&d->boot);
	loop_timer_stop(d->sup->loop, &d->boot_timer);
	enum lc_state was = d->lc.state;
	d->why[0] = '\0';
	lc_up(&d->lc, loop_now(d->sup->loop));
	sup_state_changed(d, was);
}

static void on_start_timer(struct loop *loop, struct loop_timer *t)
{
	(void)loop;
	sup_dyno_start(loop_container_of(t, struct sup_dyno, start_timer));
}

static void on_stop_timer(struct loop *loop, struct loop_timer *t)
{
	(void)loop;
	struct sup_dyno *d = loop_container_of(t, struct sup_dyno, stop_timer);
	assert(d->ld && d->lc.stopping);
	dy_log_app(d->app, d->name, HK_ERROR_FMT, HK_ERROR_ARGS(HK_R12));
	dy_log_app(d->app, d->name, "Stopping process with SIGKILL");
	sup_kill_now(d);
	sup_on_exited(d);
}

static void on_boot_timer(struct loop *loop, struct loop_timer *t)
{
	struct sup_dyno *d = loop_container_of(t, struct sup_dyno, boot_timer);
	struct sup *s = d->sup;
	assert(d->ld && !d->lc.stopping && d->lc.state == LC_STARTING);
	switch (boot_check(&d->boot, loop_now(loop))) {
	case BOOT_UP:
		sup_mark_up(d);
		return;
	case BOOT_TIMEOUT:
		dy_log_app(d->app, d->name,
		           HK_ERROR_FMT " -> Web process failed to bind to $PORT within "
		                        "%llu seconds of launch",
		           HK_ERROR_ARGS(HK_R10),
		           (unsigned long long)(s->cfg->dyno.timeouts.boot / 1000000));
		snprintf(d->why, sizeof(d->why), HK_ERROR_FMT, HK_ERROR_ARGS(HK_R10));
		dy_log_app(d->app, d->name, "Stopping process with SIGKILL");
		sup_kill_now(d);
		sup_on_exited(d);
		return;
	case BOOT_WAITING:
		loop_timer_start(loop, t, BOOT_PROBE_USEC, NULL);
		return;
	}
}

/* Watches the process of d (launched or adopted): its exit, its OOM
 * kills; its init's start time goes in the record. */
void sup_watch_process(struct sup_dyno *d)
{
	struct sup *s = d->sup;
	struct dy_error *e = NULL;
	char comm[16];
	if (rkeep_proc_stat(d->ld->pid, comm, &d->start_time) < 0)
		d->start_time = 0; /* gone already: not recorded */
	loop_io_init(&d->exit_io, d->ld->pidfd, on_exit_io);
	if (loop_io_set(s->loop, &d->exit_io, LOOP_READ, &e) < 0) {
		dy_log(d->name, "%s", dy_error_msg(e));
		dy_error_free(&e);
	}
	if (d->ld->oom_fd >= 0) {
		loop_io_init(&d->oom_io, d->ld->oom_fd, on_oom_io);
		if (loop_io_set(s->loop, &d->oom_io, LOOP_READ, NULL) < 0)
			dy_log(d->name, "cannot watch OOM events");
	}
	if (s->record)
		dr_writer_changed(s->record);
}

/* The boot probe of a starting web dyno, from now. */
void sup_boot_begin(struct sup_dyno *d)
{
	struct sup *s = d->sup;
	boot_start(&d->boot, d->ld->addr, d->port, loop_now(s->loop), s->cfg->dyno.timeouts.boot);
	loop_timer_start(s->loop, &d->boot_timer, BOOT_PROBE_USEC, NULL);
}

struct sup_dyno *sup_dyno_new(struct sup *s, const char *app, const char *type, int index,
                              const char *command, const char *size, int version, bool oneoff)
{
	struct sup_dyno *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->command = strdup(command);
	if (!d->command) {
		free(d);
		return NULL;
	}
	d->sup = s;
	snprintf(d->app, sizeof(d->app), "%s", app);
	snprintf(d->type, sizeof(d->type), "%s", type);
	snprintf(d->name, sizeof(d->name), "%s.%d", type, index);
	snprintf(d->size, sizeof(d->size), "%s", size);
	d->version = version;
	d->attach_fd = -1;
	d->port = !oneoff && strcmp(type, "web") == 0 ? SUP_WEB_PORT : 0;
	lc_init(&d->lc, oneoff);
	boot_init(&d->boot);
	mw_init(&d->mem);
	loop_timer_init(&d->start_timer, on_start_timer);
	loop_timer_init(&d->boot_timer, on_boot_timer);
	loop_timer_init(&d->stop_timer, on_stop_timer);
	loop_timer_init(&d->drain_timer, sup_on_drain_timer);
	loop_defer_init(&d->reap, dyno_reap);
	loop_io_init(&d->exit_io, -1, on_exit_io);
	loop_io_init(&d->oom_io, -1, on_oom_io);
	state_now(d->created_at);
	memcpy(d->updated_at, d->created_at, sizeof(d->updated_at));
	/* newest first in the list; order of start does not matter */
	d->next = s->dynos;
	s->dynos = d;
	return d;
}

/* SIGTERM to d's process; SIGKILL after the grace (the stop timer). */
void sup_send_sigterm(struct sup_dyno *d)
{
	struct sup *s = d->sup;
	dy_log_app(d->app, d->name, "Stopping all processes with SIGTERM");
	if (kill(d->ld->pid, SIGTERM) < 0 && errno != ESRCH)
		dy_log(d->name, "SIGTERM: %s", strerror(errno));
	boot_stop(&d->boot);
	loop_timer_stop(s->loop, &d->boot_timer);
	loop_timer_start(s->loop, &d->stop_timer, s->cfg->dyno.timeouts.stop, NULL);
}

/* Stops d without waiting: SIGTERM now, SIGKILL after the grace. */
void sup_dyno_stop(struct sup_dyno *d)
{
	struct sup *s = d->sup;
	if (d->lc.stopping && loop_timer_active(&d->drain_timer)) {
		/* draining, and now stopped for good (a shutdown, ps:stop) */
		loop_timer_stop(s->loop, &d->drain_timer);
		sup_send_sigterm(d);
		return;
	}
	if (d->lc.stopping || d->removed)
		return;
	enum lc_state was = d->lc.state;
	/* a start in flight has a process soon: start_finish() stops it */
	enum lc_next next = lc_stop(&d->lc, d->ld != NULL || d->start != NULL);
	routes_changed(s); /* draining */
	if (next == LC_NEXT_REMOVE) {
		/* crashed, waiting for its cool-off; or a release phase not
		 * started yet */
		loop_timer_stop(s->loop, &d->start_timer);
		if (d->lc.oneoff)
			sup_report_release(d, false, "release command was stopped");
		sup_state_changed(d, was);
		sup_unlink_dyno(d);
		return;
	}
	if (!d->ld)
		return; /* starting: stopped when its start is done */
	sup_send_sigterm(d);
}

/* manager_ops.apply_formation: dynos of type.N for rel, all others
 * stopped. A dyno of another release or size is replaced: the new one
 * starts, the old one stops. */
static int reconcile(struct sup *s, const struct state_app *app, const struct state_release *rel,
                     struct dy_error **err);

int sup_apply_formation(void *data, const struct state_app *app, const struct state_release *rel,
                        struct dy_error **err)
{
	struct sup *s = data;
	batch_begin(s);
	bool rolling = false;
	/* a rollout under way goes on towards its release, whatever rel */
	int r = sup_rollout_apply(s, app, &rolling, err);
	if (!rolling)
		r = reconcile(s, app, rel, err);
	s->routes_dirty = true; /* written once, now */
	batch_end(s);
	return r;
}

static int reconcile(struct sup *s, const struct state_app *app, const struct state_release *rel,
                     struct dy_error **err)
{
	if (s->shutting_down)
		return 0;
	/* stop what the formation no longer holds */
	for (struct sup_dyno *d = s->dynos, *next; d; d = next) {
		next = d->next;
		if (d->lc.oneoff || d->lc.stopping || strcmp(d->app, app->name) != 0)
			continue;
		const struct state_formation *f = state_formation_find(app, d->type);
		int idx = atoi(d->name + strlen(d->type) + 1);
		json_t *cmd =
		    rel && rel->process_types ? json_object_get(rel->process_types, d->type) : NULL;
		if (rel && f && cmd && idx <= f->quantity && d->version == rel->version &&
		    strcmp(d->size, f->size) == 0 && !d->replaced)
			continue;
		/* replaced by a rollout: the requests it has finish first */
		if (rel && sup_is_web(d) && (d->replaced || d->version != rel->version))
			sup_dyno_drain(d);
		else
			sup_dyno_stop(d);
	}
	if (!rel || !rel->process_types)
		return 0;
	for (size_t i = 0; i < app->nformation; i++) {
		const struct state_formation *f = &app->formation[i];
		json_t *cmd = json_object_get(rel->process_types, f->type);
		if (!json_is_string(cmd) || strcmp(f->type, "release") == 0)
			continue;
		for (int n = 1; n <= f->quantity; n++) {
			char name[SUP_NAME_MAX];
			snprintf(name, sizeof(name), "%s.%d", f->type, n);
			bool have = false;
			for (struct sup_dyno *d = s->dynos; d && !have; d = d->next)
				have = !d->lc.stopping && !d->lc.oneoff &&
				       strcmp(d->app, app->name) == 0 && strcmp(d->name, name) == 0;
			if (have)
				continue;
			struct sup_dyno *d =
			    sup_dyno_new(s, app->name, f->type, n, json_string_value(cmd), f->size,
			                 rel->version, false);
			if (!d)
				return dy_error_errno(err, ENOMEM, "dyno %s", name);
			sup_dyno_start(d);
		}
	}
	routes_changed(s);
	return 0;
}

/* manager_ops.run_release: a one-off release.N with the Procfile's release
 * command. */
static int run_release(void *data, const struct state_app *app, const struct state_release *rel,
                       struct dy_error **err)
{
	struct sup *s = data;
	json_t *cmd = rel->process_types ? json_object_get(rel->process_types, "release") : NULL;
	if (!json_is_string(cmd))
		return dy_error(err, "no release command");
	if (!s->mgr)
		return dy_error(err, "no manager");
	struct sup_dyno *d =
	    sup_dyno_new(s, app->name, "release", (int)++s->release_seq, json_string_value(cmd),
	                 s->cfg->dyno.default_size, rel->version, true);
	if (!d)
		return dy_error_errno(err, ENOMEM, "release dyno");
	/* started on the next round: the manager saves the pending release
	 * first, and mgr_release_finished() must find it */
	loop_timer_start(s->loop, &d->start_timer, 0, NULL);
	return 0;
}

/* manager_ops.stop_app: every dyno of the destroyed app name stops;
 * gone(arg) once the last has exited (its grave waits until then). */
static void stop_app(void *data, const char *name, void (*gone)(void *arg), void *arg)
{
	struct sup *s = data;
	batch_begin(s);
	for (struct sup_dyno *d = s->dynos, *next; d; d = next) {
		next = d->next;
		if (strcmp(d->app, name) == 0)
			sup_dyno_stop(d);
	}
	batch_end(s);
	if (!gone)
		return;
	if (!app_stopping(s, name)) {
		gone(arg);
		return;
	}
	if (td_add(&s->graves, name, gone, arg) < 0) {
		dy_log("supervisor", "%s: out of memory: its files go now", name);
		gone(arg);
	}
}

/* The memory watch of every running dyno, each second: an OOM kill (v1
 * signals the OOM condition before the kill is counted, so the OOM fd is
 * not enough) and memory over the size's quota. */
/* The warm pool (launch.h, "A warm pool"): dyno.pool.size entries made
 * with the default size's limits, ids of our prefix; a start takes one
 * (sup_dyno_start()). Without it (0, or it cannot start) dynos start the
 * usual way. See supervisor.h. */
void sup_pool_start(struct sup *s)
{
	const struct config *cfg = s->cfg;
	const struct config_size *sz = config_size_find(cfg, cfg->dyno.default_size);
	if (cfg->dyno.pool.size == 0 || !sz)
		return;
	struct launch_pool_params pp = {
	    .size = cfg->dyno.pool.size,
	    .cgroup_parent = s->cgroup_parent,
	    .id_prefix = s->id_prefix,
	    .subnet = cfg->network.subnet,
	    .subnet_prefix = cfg->network.subnet_prefix,
	    .init_path = s->init_path,
	    .limits = {.memory = sz->memory, .pids = sz->pids, .cpu = sz->cpu},
	    .setup_timeout_usec = cfg->dyno.timeouts.setup,
	};
	struct dy_error *e = NULL;
	if (launch_pool_new(&pp, &s->pool, &e) < 0) {
		dy_log("dynod", "dyno pool: %s; dynos start without it", dy_error_msg(e));
		dy_error_free(&e);
		s->pool = NULL;
	}
}

static void on_mem_timer(struct loop *loop, struct loop_timer *t)
{
	struct sup *s = loop_container_of(t, struct sup, mem_timer);
	if (s->pool) {
		/* a refill that failed (the pool retries, backing off) */
		struct dy_error *pe = launch_pool_error(s->pool);
		if (pe)
			dy_log("dynod", "dyno pool: %s", dy_error_msg(pe));
		dy_error_free(&pe);
	}
	for (struct sup_dyno *d = s->dynos, *next; d; d = next) {
		next = d->next;
		if (!d->ld || d->ld->exited)
			continue;
		uint64_t kills = d->ld->oom_kills;
		check_oom(d);
		if (d->removed || !d->ld || d->ld->oom_kills != kills)
			continue; /* killed: a crash, not R14 */
		const struct config_size *sz = config_size_find(s->cfg, d->size);
		uint64_t used = 0;
		if (sz && cg_quota_usage(d->ld->cg, sz->memory, &used, NULL) == 0 &&
		    mw_usage(&d->mem, loop_now(loop), used, sz->memory) == HK_R14)
			dy_log_app(d->app, d->name, HK_ERROR_FMT, HK_ERROR_ARGS(HK_R14));
	}
	loop_timer_start(loop, t, SUP_CHECK_USEC, NULL);
}

/* Removes every cgroup of ours without a process (a running dyno's has its
 * init), with its veth and rules, on each of the sweeps due. */
static void on_sweep_timer(struct loop *loop, struct loop_timer *t)
{
	struct sup *s = loop_container_of(t, struct sup, sweep_timer);
	if (s->sweeps_due == 0)
		return;
	if (s->nstarting > 0 || s->ncleaning > 0) {
		/* a dyno being started has an empty cgroup for a moment: a
		 * sweep now could take it (launch.h, "Threads"); one being
		 * cleaned up is the start thread's */
		loop_timer_start(loop, t, SUP_CHECK_USEC, NULL);
		return;
	}
	s->sweeps_due--;
	int n = launch_sweep(s->cgroup_parent, s->id_prefix);
	if (n > 0)
		dy_log("dynod", "swept the leftovers of %d dynos", n);
	if (s->sweeps_due > 0)
		loop_timer_start(loop, t, SUP_CHECK_USEC, NULL);
}

/* The record of running dynos (dyno-record.h) */

/* dr_render_fn: every dyno with a process, for the next dynod: formation
 * dynos and `dyno run`'s run.N (an attached session goes on: its client
 * talks to the dyno's init). A release phase is not recorded: cut short
 * by a crash it is killed and its release fails; nor is a build dyno
 * (its output's reader was dynod: the build reads failed). */
static json_t *render_record(void *arg)
{
	struct sup *s = arg;
	size_t n = 0;
	for (const struct sup_dyno *d = s->dynos; d; d = d->next)
		n++;
	_cleanup_free_ struct dr_entry *v = calloc(MAX(n, (size_t)1), sizeof(*v));
	if (!v)
		return NULL;
	size_t k = 0;
	for (const struct sup_dyno *d = s->dynos; d; d = d->next) {
		if ((d->lc.oneoff && strcmp(d->type, "run") != 0) || !d->ld || d->ld->exited ||
		    d->start_time == 0)
			continue;
		struct dr_entry *e = &v[k++];
		snprintf(e->app, sizeof(e->app), "%s", d->app);
		snprintf(e->name, sizeof(e->name), "%s", d->name);
		snprintf(e->type, sizeof(e->type), "%s", d->type);
		snprintf(e->id, sizeof(e->id), "%s", d->ld->id);
		e->pid = d->ld->pid;
		e->start_time = d->start_time;
		e->version = d->version;
		snprintf(e->size, sizeof(e->size), "%s", d->size);
		e->command = d->command; /* borrowed: not freed here */
		e->addr = d->ld->addr;
		e->port = d->port;
		snprintf(e->veth, sizeof(e->veth), "%s", d->ld->veth);
		memcpy(e->created_at, d->created_at, sizeof(e->created_at));
		e->up = d->lc.state == LC_UP;
		e->stopping = d->lc.stopping;
		e->oneoff = d->lc.oneoff;
	}
	return dr_render(s->boot_id, v, k);
}

/* routes.json */

/* Writes routes.json from the apps of the manager's state and their web
 * dynos. */
static int write_routes(struct sup *s, struct dy_error **err)
{
	const struct state *st = s->mgr ? mgr_state(s->mgr) : NULL;
	size_t napps = st ? st->napps : 0, ndynos = 0;
	for (const struct sup_dyno *d = s->dynos; d; d = d->next)
		ndynos++;
	_cleanup_free_ struct rw_app *apps = calloc(MAX(napps, (size_t)1), sizeof(*apps));
	_cleanup_free_ struct rw_dyno *dynos = calloc(MAX(ndynos, (size_t)1), sizeof(*dynos));
	if (!apps || !dynos)
		return dy_error_errno(err, ENOMEM, "routes.json");
	size_t k = 0;
	for (size_t i = 0; i < napps; i++) {
		const struct state_app *app = st->apps[i];
		const struct state_release *rel = state_app_current(app);
		const struct state_formation *f = state_formation_find(app, "web");
		apps[i].name = app->name;
		apps[i].maintenance = app->maintenance;
		apps[i].hosts = (const char *const *)app->domains;
		apps[i].nhosts = app->ndomains;
		apps[i].web = rel && rel->process_types &&
		              json_object_get(rel->process_types, "web") && f && f->quantity > 0;
		apps[i].dynos = dynos + k;
		for (const struct sup_dyno *d = s->dynos; d; d = d->next) {
			if (strcmp(d->app, app->name) != 0 || !sup_is_web(d))
				continue;
			assert(k < ndynos);
			dynos[k++] = (struct rw_dyno){
			    .name = d->name,
			    .id = d->ld ? d->ld->id : d->name,
			    .state = d->lc.state,
			    .stopping = d->lc.stopping,
			    .running = d->ld != NULL,
			    .addr = d->ld ? d->ld->addr : (struct in_addr){0},
			    .port = d->port,
			};
		}
		apps[i].ndynos = (size_t)(dynos + k - apps[i].dynos);
	}
	return rw_write(s->routes, apps, napps, err);
}

static void on_routes_timer(struct loop *loop, struct loop_timer *t)
{
	(void)loop;
	struct sup *s = loop_container_of(t, struct sup, routes_timer);
	if (s->routes_dirty && s->batch == 0)
		routes_changed(s);
}

/* Writes routes.json when what it says has changed; a failed write is
 * tried again a second later. The record of running dynos shows every
 * such change too: its writer coalesces them (dyno-record.h). */
static void routes_changed(struct sup *s)
{
	if (s->record)
		dr_writer_changed(s->record);
	if (s->batch > 0) {
		s->routes_dirty = true;
		return;
	}
	/* many changes close together, one write (at most every
	 * SUP_ROUTES_GAP_USEC): the first at once, the rest at the gap's end.
	 * A drain stays safe: it waits for the router to load the version
	 * after the one written before it (rollout.c) */
	uint64_t now = loop_now(s->loop);
	if (s->routes_written_at && now - s->routes_written_at < SUP_ROUTES_GAP_USEC) {
		s->routes_dirty = true;
		if (!loop_timer_active(&s->routes_timer))
			loop_timer_start(s->loop, &s->routes_timer,
			                 SUP_ROUTES_GAP_USEC - (now - s->routes_written_at), NULL);
		return;
	}
	s->routes_written_at = now;
	struct dy_error *e = NULL;
	if (write_routes(s, &e) < 0) {
		dy_log("dynod", "routes.json: %s", e ? dy_error_msg(e) : "out of memory");
		dy_error_free(&e);
		s->routes_dirty = true;
		loop_timer_start(s->loop, &s->routes_timer, SUP_CHECK_USEC, NULL);
	} else {
		s->routes_dirty = false;
	}
}

/* manager_ops.routing_changed: an app's hosts or maintenance mode. */
static void routing_changed(void *data)
{
	routes_changed(data);
}

void sup_routes_changed(struct sup *s)
{
	routes_changed(s);
}

void sup_shutdown(struct sup *s)
{
	s->shutting_down = true;
	if (!s->dynos) {
		loop_stop(s->loop);
		return;
	}
	dy_log("dynod", "stopping every dyno");
	batch_begin(s);
	for (struct sup_dyno *d = s->dynos, *next; d; d = next) {
		next = d->next;
		sup_dyno_stop(d);
	}
	batch_end(s);
}

void sup_start_all(struct sup *s)
{
	const struct state *st = s->mgr ? mgr_state(s->mgr) : NULL;
	/* a re-adopted dyno of an app that is no more stops */
	for (struct sup_dyno *d = s->dynos, *next; d; d = next) {
		next = d->next;
		if (!st || !state_app_find(st, d->app))
			sup_dyno_stop(d);
	}
	for (size_t i = 0; st && i < st->napps; i++)
		sup_apply_formation(s, st->apps[i], state_app_current(st->apps[i]), NULL);
	s->routes_dirty = true;
	batch_end(s); /* sup_new()'s: routes.json, with the re-adopted dynos */
}

void sup_leave(struct sup *s)
{
	s->leaving = true;
	loop_stop(s->loop);
}

int sup_new(struct loop *loop, const struct config *cfg, const char *cgroup_parent,
            struct sup **ret, struct dy_error **err)
{
	struct sup *s = calloc(1, sizeof(*s));
	if (!s)
		return dy_error_errno(err, ENOMEM, "calloc");
	s->loop = loop;
	s->cfg = cfg;
	s->pg_port = (uint16_t)cfg->addons.postgresql.port;
	s->cgroup_parent = cgroup_parent ? cgroup_parent : "dyno";
	s->policy = (struct lc_policy){.first = cfg->dyno.cooloff.first,
	                               .max = cfg->dyno.cooloff.max,
	                               .reset_after = cfg->dyno.cooloff.reset_after};
	s->ops.run_release = run_release;
	s->ops.apply_formation = sup_apply_formation;
	s->ops.stop_app = stop_app;
	s->ops.dynos_json = sup_ops_dynos_json;
	s->ops.restart = sup_ops_restart;
	s->ops.stop_dyno = sup_ops_stop_dyno;
	s->ops.roll_out = sup_roll_out;
	s->ops.routing_changed = routing_changed;
	s->ops.run = sup_ops_run;
	s->ops.data = s;
	/* routes.json versions go on from the file's */
	gid_t gid;
	if (config_api_gid(cfg, &gid, err) < 0 ||
	    rw_new(cfg->state_dir, cfg->domain, gid, &s->routes, err) < 0) {
		free(s);
		return -1;
	}
	s->init_path = host_find_helper("dyno-init");
	s->parent_lock = -1;
	if (host_own_parent(cfg, s->cgroup_parent, s->id_prefix, &s->parent_lock, err) < 0) {
		rw_free(s->routes);
		free(s->init_path);
		free(s);
		return -1;
	}
	loop_timer_init(&s->sweep_timer, on_sweep_timer);
	loop_timer_init(&s->routes_timer, on_routes_timer);
	loop_timer_init(&s->drain_poll, sup_on_drain_poll);
	sup_rollout_init(s);
	loop_timer_init(&s->mem_timer, on_mem_timer);
	dr_boot_id(s->boot_id);
	/* dyno.start_threads starts at once (launch.h, "Threads": a start
	 * mostly waits for its child, two overlap well on two cores); without
	 * the pool they run inline */
	if (work_pool_new(loop, cfg->dyno.start_threads ? cfg->dyno.start_threads : 1, &s->starts,
	                  NULL) < 0)
		s->starts = NULL;
	/* the router's admin listener says when a drain is done; without it
	 * a drain lasts dyno.timeouts.drain */
	const struct config_addr *adm = &cfg->router.admin_listen;
	socklen_t alen = adm->sa.sa.sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
	                                                  : sizeof(struct sockaddr_in);
	if (dw_new(loop, &adm->sa.sa, alen, sup_on_drains, s, &s->drains) < 0)
		s->drains = NULL;
	/* routes.json waits for the manager's state (sup_start_all()): a
	 * write now would drop every app's routes */
	batch_begin(s);
	/* the dynos a previous dynod of this state dir left running are
	 * re-adopted, before any sweep; what is not (gone, another process
	 * now, not in the record) is killed and swept */
	char **keep = NULL;
	size_t nkeep = 0;
	_cleanup_free_ char *record = NULL;
	if (sup_adopt_recorded(s, &keep, &nkeep, err) < 0 ||
	    asprintf(&record, "%s/" DR_FILE, cfg->state_dir) < 0 ||
	    dr_writer_new(loop, record, render_record, s, &s->record, err) < 0) {
		for (size_t i = 0; i < nkeep; i++)
			free(keep[i]);
		free(keep);
		s->leaving = true; /* what was adopted keeps running */
		sup_free(s);
		return -1;
	}
	int killed =
	    launch_kill_leftovers(s->cgroup_parent, s->id_prefix, (const char *const *)keep, nkeep);
	for (size_t i = 0; i < nkeep; i++)
		free(keep[i]);
	free(keep);
	int n = launch_sweep(s->cgroup_parent, s->id_prefix);
	if (n > 0)
		dy_log("dynod", "swept %d dynos left by a previous dynod", n);
	if (killed > 0)
		sup_sweep_soon(s); /* a killed cgroup may take a moment to empty */
	if (loop_timer_start(loop, &s->mem_timer, SUP_CHECK_USEC, err) < 0) {
		s->leaving = true;
		sup_free(s);
		return -1;
	}
	*ret = s;
	return 0;
}

void sup_set_mgr(struct sup *s, struct mgr *m)
{
	s->mgr = m;
}

/* lgi_exit_fn: the init of pid reported its app's end. */
static void on_init_exit(void *ctx, const char *app, pid_t pid, int status)
{
	struct sup *s = ctx;
	for (struct sup_dyno *d = s->dynos; d; d = d->next)
		if (d->ld && d->ld->pid == pid && strcmp(d->app, app) == 0) {
			d->exit_reported = true;
			d->exit_status = status;
			return;
		}
}

void sup_set_logs(struct sup *s, struct lgi *logs)
{
	s->logs = logs;
	if (logs)
		lgi_set_exit_fn(logs, on_init_exit, s);
}

const struct manager_ops *sup_ops(struct sup *s)
{
	return &s->ops;
}

void sup_free(struct sup *s)
{
	if (!s)
		return;
	loop_timer_stop(s->loop, &s->mem_timer);
	loop_timer_stop(s->loop, &s->sweep_timer);
	loop_timer_stop(s->loop, &s->routes_timer);
	if (s->routes_dirty && s->routes) /* held back by the gap: as it is now */
		write_routes(s, NULL);
	sup_rollouts_free(s);
	loop_timer_stop(s->loop, &s->drain_poll);
	dw_free(s->drains);
	if (s->logs) /* the intake outlives us */
		lgi_set_exit_fn(s->logs, NULL, NULL);
	/* the starts in flight end first: their dynos are in the list below,
	 * killed or (leaving) kept and recorded */
	s->freeing = true;
	work_pool_free(s->starts);
	s->starts = NULL;
	/* the waiting entries end (their child, veth, rules, cgroup): no
	 * dyno of theirs runs yet */
	launch_pool_free(s->pool);
	s->pool = NULL;
	struct dy_error *e = NULL;
	if (s->leaving && s->record && dr_writer_free(s->record, true, &e) < 0) {
		dy_log("dynod", "%s", dy_error_msg(e));
		dy_error_free(&e);
	}
	if (s->leaving)
		s->record = NULL; /* written: what runs is recorded */
	while (s->dynos) {
		struct sup_dyno *d = s->dynos;
		s->dynos = d->next;
		loop_timer_stop(s->loop, &d->start_timer);
		if (s->leaving) {
			/* left running for the next dynod: only our handles go */
			loop_io_stop(s->loop, &d->exit_io);
			loop_io_stop(s->loop, &d->oom_io);
			loop_timer_stop(s->loop, &d->boot_timer);
			loop_timer_stop(s->loop, &d->stop_timer);
			loop_timer_stop(s->loop, &d->drain_timer);
			dyno_free(d);
			continue;
		}
		if (d->ld && !d->ld->exited)
			launch_kill(d->ld, NULL);
		release_process(d);
		dyno_free(d);
	}
	/* nothing runs any more: the record says so */
	if (s->record && dr_writer_free(s->record, true, &e) < 0) {
		dy_log("dynod", "%s", dy_error_msg(e));
		dy_error_free(&e);
	}
	td_flush(&s->graves); /* their dynos were killed above */
	rw_free(s->routes);
	free(s->init_path);
	if (s->parent_lock >= 0)
		close(s->parent_lock);
	free(s);
}
