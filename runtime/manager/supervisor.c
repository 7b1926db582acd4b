/* The supervisor (supervisor.h): formation dynos and release phases on the
 * launcher, their lifecycle, and routes.json. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "common/log.h"
#include "runtime/launcher/launch.h"
#include "runtime/manager/supervisor.h"
#include "slugs/slug-store.h"

#define SUP_PROBE_USEC   (100ULL * 1000)   /* web boot probe period */
#define SUP_CHECK_USEC   (1000ULL * 1000)  /* memory checks */
#define SUP_SWEEP_CHECKS 60                /* sweeps after a failed clean-up */
#define SUP_R14_USEC     (60ULL * 1000000) /* R14 at most once a minute */
#define SUP_WEB_PORT     5000
#define SUP_NAME_MAX     48

enum sup_state {
	SUP_STARTING,
	SUP_UP,
	SUP_CRASHED,
	SUP_DOWN,
	SUP_COMPLETE,
};

static const char *sup_state_str(enum sup_state st)
{
	switch (st) {
	case SUP_STARTING:
		return "starting";
	case SUP_UP:
		return "up";
	case SUP_CRASHED:
		return "crashed";
	case SUP_DOWN:
		return "down";
	case SUP_COMPLETE:
		return "complete";
	}
	return "unknown";
}

struct sup_dyno {
	struct sup *sup;
	struct sup_dyno *next;
	char app[STATE_APP_NAME_MAX + 1];
	char name[SUP_NAME_MAX]; /* web.1, release.3 */
	char type[32];
	char size[STATE_SIZE_NAME_MAX + 1];
	char *command;
	int version; /* the release it runs */
	uint16_t port;
	bool oneoff;   /* release.N: never restarted, reports to the manager */
	bool stopping; /* SIGTERM sent: goes away once exited */
	bool removed;  /* unlinked, free deferred */
	enum sup_state state;
	struct launch_dyno *ld;
	struct loop_io exit_io; /* on ld->pidfd */
	struct loop_io oom_io;  /* on ld->oom_fd */
	struct loop_timer timer;
	/* the free, after the dispatch round */
	struct loop_deferred reap;

	int probe_fd;      /* web boot probe: a pending non-blocking connect */
	uint64_t started;  /* monotonic, of the current process */
	uint64_t up_since; /* monotonic, 0 when not up */
	uint64_t last_r14;
	unsigned crashes; /* in a row, for the cool-off */
	char created_at[STATE_TIME_LEN + 1];
	char updated_at[STATE_TIME_LEN + 1];
};

/* A destroyed app whose dynos are still stopping: gone(arg) once the
 * last has exited. */
struct sup_grave {
	struct sup_grave *next;
	char app[STATE_APP_NAME_MAX + 1];
	void (*gone)(void *arg);
	void *arg;
};

struct sup {
	struct loop *loop;
	const struct config *cfg;
	const char *cgroup_parent;
	struct mgr *mgr;
	struct manager_ops ops;
	struct sup_dyno *dynos;
	struct sup_grave *graves;
	struct loop_timer check;
	uint64_t routes_version;
	unsigned seq; /* instance ids */
	unsigned release_seq;
	bool shutting_down;
	bool routes_dirty;
	unsigned sweeps_due; /* a clean-up failed: sweep leftovers on so many checks */
	unsigned batch;      /* > 0: routes.json is written when it drops to 0 */
	char *init_path;     /* dyno-init, NULL: the launcher's default */
};

static void dyno_start(struct sup_dyno *d);

/* Many changes, one routes.json write (a reconcile of 100 dynos). */
static void batch_begin(struct sup *s)
{
	s->batch++;
}

static void routes_changed(struct sup *s);

static void batch_end(struct sup *s)
{
	if (--s->batch == 0 && s->routes_dirty)
		routes_changed(s);
}
static void routes_changed(struct sup *s);

static void set_state(struct sup_dyno *d, enum sup_state st)
{
	if (d->state == st)
		return;
	dy_log(d->name, "State changed from %s to %s", sup_state_str(d->state), sup_state_str(st));
	d->state = st;
	state_now(d->updated_at);
	routes_changed(d->sup);
}

static bool is_web(const struct sup_dyno *d)
{
	return !d->oneoff && strcmp(d->type, "web") == 0;
}

static void dyno_free(struct sup_dyno *d)
{
	if (d->probe_fd >= 0)
		close(d->probe_fd);
	launch_free(d->ld);
	free(d->command);
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
		if (d->stopping && strcmp(d->app, app) == 0)
			return true;
	return false;
}

/* Calls the graves of app whose dynos are all gone. */
static void graves_check(struct sup *s, const char *app)
{
	if (app_stopping(s, app))
		return;
	for (struct sup_grave **p = &s->graves; *p;) {
		struct sup_grave *g = *p;
		if (strcmp(g->app, app) != 0) {
			p = &g->next;
			continue;
		}
		*p = g->next;
		g->gone(g->arg);
		free(g);
	}
}

static void unlink_dyno(struct sup_dyno *d)
{
	struct sup *s = d->sup;
	for (struct sup_dyno **p = &s->dynos; *p; p = &(*p)->next) {
		if (*p == d) {
			*p = d->next;
			break;
		}
	}
	d->removed = true;
	loop_timer_stop(s->loop, &d->timer);
	routes_changed(s);
	if (s->graves)
		graves_check(s, d->app);
	loop_defer(s->loop, &d->reap);
	if (s->shutting_down && s->dynos == NULL)
		loop_stop(s->loop);
}

/* Forgets the process of d: watchers, cgroup, veth, rules. */
static void release_process(struct sup_dyno *d)
{
	struct sup *s = d->sup;
	loop_io_stop(s->loop, &d->exit_io);
	loop_io_stop(s->loop, &d->oom_io);
	if (d->probe_fd >= 0) {
		close(d->probe_fd);
		d->probe_fd = -1;
	}
	if (!d->ld)
		return;
	struct dy_error *e = NULL;
	if (launch_cleanup(d->ld, &e) < 0) {
		/* what is left (a cgroup still busy) is retried by a sweep */
		dy_log(d->name, "clean-up: %s", dy_error_msg(e));
		dy_error_free(&e);
		s->sweeps_due = SUP_SWEEP_CHECKS;
	}
	launch_free(d->ld);
	d->ld = NULL;
	d->up_since = 0;
}

static void report_release(struct sup_dyno *d, bool ok)
{
	struct sup *s = d->sup;
	if (!s->mgr)
		return;
	struct dy_error *e = NULL;
	if (mgr_release_finished(s->mgr, d->app, d->version, ok, &e) < 0) {
		dy_log(d->name, "release v%d: %s", d->version, dy_error_msg(e));
		dy_error_free(&e);
	}
}

/* The cool-off before restart number crashes (1: at once). */
static uint64_t cooloff(const struct sup *s, unsigned crashes)
{
	if (crashes <= 1)
		return 0;
	uint64_t c = s->cfg->dyno.cooloff.first;
	for (unsigned i = 2; i < crashes && c < s->cfg->dyno.cooloff.max; i++)
		c *= 2;
	return c < s->cfg->dyno.cooloff.max ? c : s->cfg->dyno.cooloff.max;
}

/* The process of d has exited (and was reaped). */
static void on_exited(struct sup_dyno *d)
{
	struct sup *s = d->sup;
	int status = d->ld ? d->ld->status : 0;
	bool oom = false;
	if (d->ld) {
		if (launch_check_oom(d->ld, NULL) > 0 || d->ld->oom_kills > 0)
			oom = d->ld->oom_kills > 0;
	}
	if (oom && !d->stopping)
		dy_log(d->name, "Error R15 (Memory quota vastly exceeded)");
	/* launch.h: the exit code, or 128 + the signal (as a shell says) */
	dy_log(d->name, "Process exited with status %d", status);
	bool ok = status == 0;
	bool was_up = d->up_since != 0;
	uint64_t up_for = was_up ? loop_now(s->loop) - d->up_since : 0;
	release_process(d);
	if (d->oneoff) {
		set_state(d, SUP_COMPLETE);
		/* stopped (ps:stop, dynod's SIGTERM) is a failure too: a
		 * release never stays pending */
		report_release(d, ok && !d->stopping);
		unlink_dyno(d);
		return;
	}
	if (d->stopping) {
		set_state(d, SUP_DOWN);
		unlink_dyno(d);
		return;
	}
	/* any exit of a formation dyno is a crash (docs/design.md, Lifecycle) */
	if (was_up && up_for >= s->cfg->dyno.cooloff.reset_after)
		d->crashes = 0;
	d->crashes++;
	set_state(d, SUP_CRASHED);
	uint64_t wait = cooloff(s, d->crashes);
	if (wait == 0) {
		dyno_start(d);
		return;
	}
	dy_log(d->name, "restarting in %llu s", (unsigned long long)(wait / 1000000));
	if (loop_timer_start(s->loop, &d->timer, wait, NULL) < 0)
		dyno_start(d);
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
	on_exited(d);
}

static void kill_now(struct sup_dyno *d)
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
	if (r > 0) /* the whole dyno was killed: a crash (R15 logged there) */
		on_exited(d);
}

static void on_oom_io(struct loop *loop, struct loop_io *io, uint32_t events)
{
	(void)loop;
	(void)events;
	check_oom(loop_container_of(io, struct sup_dyno, oom_io));
}

/* One boot probe of a web dyno: 1 when a TCP connect to DYNO_IP:PORT has
 * succeeded, 0 not yet. Never blocks: a connect in progress is looked at
 * again on the next tick. */
static int probe(struct sup_dyno *d)
{
	if (d->probe_fd >= 0) {
		struct pollfd pf = {d->probe_fd, POLLOUT, 0};
		if (poll(&pf, 1, 0) == 0)
			return 0; /* still in progress */
		int soerr = 0;
		socklen_t len = sizeof(soerr);
		if (getsockopt(d->probe_fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
			soerr = errno;
		close(d->probe_fd);
		d->probe_fd = -1;
		if (soerr == 0)
			return 1;
	}
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	struct sockaddr_in sa = {
	    .sin_family = AF_INET, .sin_port = htons(d->port), .sin_addr = d->ld->addr};
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		close(fd);
		return 1;
	}
	if (errno == EINPROGRESS) {
		d->probe_fd = fd;
		return 0;
	}
	close(fd);
	return 0;
}

static void mark_up(struct sup_dyno *d)
{
	if (d->probe_fd >= 0) {
		close(d->probe_fd);
		d->probe_fd = -1;
	}
	d->up_since = loop_now(d->sup->loop);
	set_state(d, SUP_UP);
}

static void on_timer(struct loop *loop, struct loop_timer *t)
{
	struct sup_dyno *d = loop_container_of(t, struct sup_dyno, timer);
	struct sup *s = d->sup;
	if (!d->ld) { /* cool-off over */
		dyno_start(d);
		return;
	}
	if (d->stopping) { /* the grace ran out */
		dy_log(d->name, "Error R12 (Exit timeout)");
		dy_log(d->name, "Stopping process with SIGKILL");
		kill_now(d);
		on_exited(d);
		return;
	}
	if (d->state != SUP_STARTING)
		return;
	if (probe(d) > 0) {
		mark_up(d);
		return;
	}
	if (loop_now(loop) - d->started >= s->cfg->dyno.timeouts.boot) {
		dy_log(d->name,
		       "Error R10 (Boot timeout) -> Web process failed to bind to $PORT within "
		       "%llu seconds of launch",
		       (unsigned long long)(s->cfg->dyno.timeouts.boot / 1000000));
		dy_log(d->name, "Stopping process with SIGKILL");
		kill_now(d);
		on_exited(d);
		return;
	}
	loop_timer_start(loop, &d->timer, SUP_PROBE_USEC, NULL);
}

/* The environment of release rel: its config vars as "K=V". */
static char **env_of(const struct state_release *rel)
{
	size_t n = rel->config ? json_object_size(rel->config) : 0;
	char **env = calloc(n + 1, sizeof(*env));
	if (!env)
		return NULL;
	size_t i = 0;
	const char *k;
	json_t *v;
	if (rel->config) {
		json_object_foreach(rel->config, k, v)
		{
			const char *sv = json_string_value(v);
			if (!sv || asprintf(&env[i], "%s=%s", k, sv) < 0) {
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

/* Launches d's process for its release. On failure d is crashed (and
 * retried after a cool-off), or a release phase fails. */
static void dyno_start(struct sup_dyno *d)
{
	struct sup *s = d->sup;
	struct dy_error *e = NULL;
	loop_timer_stop(s->loop, &d->timer);
	const struct state *st = s->mgr ? mgr_state(s->mgr) : NULL;
	const struct state_app *app = st ? state_app_find(st, d->app) : NULL;
	const struct state_release *rel = app ? state_release_find(app, d->version) : NULL;
	const struct config_size *sz = config_size_find(s->cfg, d->size);
	if (!rel || !rel->slug_id[0] || !sz) {
		dy_log(d->name, "release v%d or size %s is gone", d->version, d->size);
		if (d->oneoff)
			report_release(d, false);
		unlink_dyno(d);
		return;
	}
	_cleanup_free_ char *dir = NULL;
	struct slug_limits l = {.max_compressed = s->cfg->slugs.max_compressed,
	                        .max_unpacked = s->cfg->slugs.max_unpacked,
	                        .max_entries = s->cfg->slugs.max_entries};
	char **env = NULL;
	char id[64];
	snprintf(id, sizeof(id), "%.30s-%u-%u", d->app, (unsigned)getpid() % 100000, ++s->seq);
	int r =
	    slug_store_unpack(st->dir, rel->slug_id, app->name, app->uid, app->uid, &l, &dir, &e);
	if (r >= 0) {
		env = env_of(rel);
		struct launch_params p = {
		    .slug_dir = dir,
		    .uid = app->uid,
		    .gid = app->uid,
		    .name = d->name,
		    .id = id,
		    .command = d->command,
		    .env = env,
		    .limits = {.memory = sz->memory, .pids = sz->pids, .cpu = sz->cpu},
		    .port = d->port,
		    .cgroup_parent = s->cgroup_parent,
		    .subnet = s->cfg->network.subnet,
		    .subnet_prefix = s->cfg->network.subnet_prefix,
		    .egress = s->cfg->network.egress,
		    .init_path = s->init_path,
		};
		dy_log(d->name, "Starting process with command `%s`", d->command);
		r = launch_start(&p, &d->ld, &e);
	}
	env_free(env);
	if (r < 0) {
		dy_log(d->name, "start: %s", dy_error_msg(e));
		dy_error_free(&e);
		d->ld = NULL;
		/* a child stuck in the kernel leaves its cgroup, veth and
		 * rules to the sweep (and its pid to be reaped) */
		s->sweeps_due = SUP_SWEEP_CHECKS;
		if (d->oneoff) {
			report_release(d, false);
			unlink_dyno(d);
			return;
		}
		d->crashes++;
		set_state(d, SUP_CRASHED);
		uint64_t wait = cooloff(s, d->crashes);
		loop_timer_start(s->loop, &d->timer, wait ? wait : s->cfg->dyno.cooloff.first,
		                 NULL);
		return;
	}
	d->started = loop_now(s->loop);
	set_state(d, SUP_STARTING);
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
	if (is_web(d))
		loop_timer_start(s->loop, &d->timer, SUP_PROBE_USEC, NULL);
	else
		mark_up(d);
}

static struct sup_dyno *dyno_new(struct sup *s, const char *app, const char *type, int index,
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
	d->oneoff = oneoff;
	d->port = !oneoff && strcmp(type, "web") == 0 ? SUP_WEB_PORT : 0;
	d->probe_fd = -1;
	d->state = SUP_STARTING;
	loop_timer_init(&d->timer, on_timer);
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

/* Stops d without waiting: SIGTERM now, SIGKILL after the grace. */
static void dyno_stop(struct sup_dyno *d)
{
	struct sup *s = d->sup;
	if (d->stopping || d->removed)
		return;
	d->stopping = true;
	routes_changed(s);
	if (!d->ld) { /* crashed, waiting for its cool-off; or a release
		       * phase not started yet */
		loop_timer_stop(s->loop, &d->timer);
		if (d->oneoff)
			report_release(d, false);
		set_state(d, SUP_DOWN);
		unlink_dyno(d);
		return;
	}
	dy_log(d->name, "Stopping all processes with SIGTERM");
	if (kill(d->ld->pid, SIGTERM) < 0 && errno != ESRCH)
		dy_log(d->name, "SIGTERM: %s", strerror(errno));
	if (d->probe_fd >= 0) {
		close(d->probe_fd);
		d->probe_fd = -1;
	}
	loop_timer_start(s->loop, &d->timer, s->cfg->dyno.timeouts.stop, NULL);
}

/* manager_ops.apply_formation: dynos of type.N for rel, all others
 * stopped. A dyno of another release or size is replaced: the new one
 * starts, the old one stops. */
static int reconcile(struct sup *s, const struct state_app *app, const struct state_release *rel,
                     struct dy_error **err);

static int apply_formation(void *data, const struct state_app *app, const struct state_release *rel,
                           struct dy_error **err)
{
	struct sup *s = data;
	batch_begin(s);
	int r = reconcile(s, app, rel, err);
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
		if (d->oneoff || d->stopping || strcmp(d->app, app->name) != 0)
			continue;
		const struct state_formation *f = state_formation_find(app, d->type);
		int idx = atoi(d->name + strlen(d->type) + 1);
		json_t *cmd =
		    rel && rel->process_types ? json_object_get(rel->process_types, d->type) : NULL;
		if (!rel || !f || !cmd || idx > f->quantity || d->version != rel->version ||
		    strcmp(d->size, f->size) != 0)
			dyno_stop(d);
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
				have = !d->stopping && !d->oneoff &&
				       strcmp(d->app, app->name) == 0 && strcmp(d->name, name) == 0;
			if (have)
				continue;
			struct sup_dyno *d =
			    dyno_new(s, app->name, f->type, n, json_string_value(cmd), f->size,
			             rel->version, false);
			if (!d)
				return dy_error_errno(err, ENOMEM, "dyno %s", name);
			dyno_start(d);
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
	    dyno_new(s, app->name, "release", (int)++s->release_seq, json_string_value(cmd),
	             s->cfg->dyno.default_size, rel->version, true);
	if (!d)
		return dy_error_errno(err, ENOMEM, "release dyno");
	/* started on the next round: the manager saves the pending release
	 * first, and mgr_release_finished() must find it */
	loop_timer_start(s->loop, &d->timer, 0, NULL);
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
			dyno_stop(d);
	}
	batch_end(s);
	if (!gone)
		return;
	struct sup_grave *g = calloc(1, sizeof(*g));
	if (!app_stopping(s, name) || !g) {
		if (g == NULL)
			dy_log("supervisor", "%s: out of memory: its files go now", name);
		free(g);
		gone(arg);
		return;
	}
	snprintf(g->app, sizeof(g->app), "%s", name);
	g->gone = gone;
	g->arg = arg;
	g->next = s->graves;
	s->graves = g;
}

static void on_check(struct loop *loop, struct loop_timer *t)
{
	struct sup *s = loop_container_of(t, struct sup, check);
	for (struct sup_dyno *d = s->dynos, *next; d; d = next) {
		next = d->next;
		if (!d->ld || d->ld->exited)
			continue;
		/* v1 signals the OOM condition before the kill is counted */
		uint64_t kills = d->ld->oom_kills;
		check_oom(d);
		if (d->removed || !d->ld || d->ld->oom_kills != kills)
			continue;
		const struct config_size *sz = config_size_find(s->cfg, d->size);
		uint64_t used = 0;
		if (sz && cg_quota_usage(d->ld->cg, &used, NULL) == 0 && used > sz->memory &&
		    (d->last_r14 == 0 || loop_now(loop) - d->last_r14 >= SUP_R14_USEC)) {
			d->last_r14 = loop_now(loop);
			dy_log(d->name, "Error R14 (Memory quota exceeded)");
		}
	}
	if (s->routes_dirty) { /* an earlier write failed: try again */
		routes_changed(s);
	}
	if (s->sweeps_due) {
		/* removes every cgroup of ours without a process (a running
		 * dyno's has its init), with its veth and rules; for a while,
		 * since a process stuck in the kernel keeps its cgroup busy */
		s->sweeps_due--;
		int n = launch_sweep(s->cgroup_parent);
		if (n > 0)
			dy_log("dynod", "swept the leftovers of %d dynos", n);
	}
	loop_timer_start(loop, t, SUP_CHECK_USEC, NULL);
}

/* routes.json */

static json_t *routes_json(struct sup *s)
{
	json_t *apps = json_array();
	const struct state *st = s->mgr ? mgr_state(s->mgr) : NULL;
	for (size_t i = 0; st && i < st->napps; i++) {
		const struct state_app *app = st->apps[i];
		const struct state_release *rel = state_app_current(app);
		const struct state_formation *f = state_formation_find(app, "web");
		bool web = rel && rel->process_types &&
		           json_object_get(rel->process_types, "web") && f && f->quantity > 0;
		json_t *backends = json_array();
		bool crashed = false, up = false;
		for (struct sup_dyno *d = s->dynos; d; d = d->next) {
			if (strcmp(d->app, app->name) != 0 || !is_web(d))
				continue;
			if (d->state == SUP_CRASHED && !d->stopping)
				crashed = true;
			if (d->state != SUP_UP || !d->ld)
				continue;
			if (!d->stopping)
				up = true;
			char addr[INET_ADDRSTRLEN + 8], ip[INET_ADDRSTRLEN];
			inet_ntop(AF_INET, &d->ld->addr, ip, sizeof(ip));
			snprintf(addr, sizeof(addr), "%s:%u", ip, (unsigned)d->port);
			json_array_append_new(backends,
			                      json_pack("{s:s, s:s, s:b}", "dyno", d->name, "addr",
			                                addr, "draining", d->stopping));
		}
		const char *state = !web ? "no-web" : (!up && crashed) ? "crashed" : "up";
		char host[STATE_APP_NAME_MAX + 256];
		snprintf(host, sizeof(host), "%s.%s", app->name, s->cfg->domain);
		json_array_append_new(apps, json_pack("{s:s, s:[s], s:s, s:b, s:n, s:o}", "name",
		                                      app->name, "hosts", host, "state", state,
		                                      "keepalive", true, "health_path", "backends",
		                                      backends));
	}
	return json_pack("{s:I, s:o}", "version", (json_int_t)s->routes_version, "apps", apps);
}

static int write_routes(struct sup *s, json_t *j, struct dy_error **err)
{
	_cleanup_free_ char *path = NULL;
	if (asprintf(&path, "%s/routes.json", s->cfg->state_dir) < 0)
		return dy_error_errno(err, ENOMEM, "asprintf");
	_cleanup_free_ char *text = json_dumps(j, JSON_COMPACT);
	if (!text)
		return dy_error_errno(err, ENOMEM, "json_dumps");
	size_t len = strlen(text);
	char *nl = realloc(text, len + 2);
	if (!nl)
		return dy_error_errno(err, ENOMEM, "routes.json");
	text = nl;
	memcpy(text + len, "\n", 2);
	return dy_write_file_atomic(path, text, len + 1, 0644, err);
}

/* Writes routes.json when what it says has changed. */
static void routes_changed(struct sup *s)
{
	if (s->batch > 0) {
		s->routes_dirty = true;
		return;
	}
	s->routes_version++;
	json_t *j = routes_json(s);
	struct dy_error *e = NULL;
	if (!j || write_routes(s, j, &e) < 0) {
		dy_log("dynod", "routes.json: %s", e ? dy_error_msg(e) : "out of memory");
		dy_error_free(&e);
		s->routes_dirty = true;
	} else {
		s->routes_dirty = false;
	}
	json_decref(j);
}

/* API */

static json_t *dyno_json(const struct sup_dyno *d)
{
	json_t *addr = json_null();
	if (d->ld && d->port) {
		char ip[INET_ADDRSTRLEN], buf[INET_ADDRSTRLEN + 8];
		inet_ntop(AF_INET, &d->ld->addr, ip, sizeof(ip));
		snprintf(buf, sizeof(buf), "%s:%u", ip, (unsigned)d->port);
		addr = json_string(buf);
	}
	/* pid (of the dyno's init, on the host; 0 when not running) is beyond
	 * docs/design.md's object: operators and tests find the dyno's processes */
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:i}, s:o, s:s, s:s, s:i}", "name", d->name,
	                 "type", d->type, "state", sup_state_str(d->state), "command", d->command,
	                 "size", d->size, "release", "version", d->version, "addr", addr,
	                 "created_at", d->created_at, "updated_at", d->updated_at, "pid",
	                 d->ld ? (int)d->ld->pid : 0);
}

static int cmp_json_name(const void *a, const void *b)
{
	json_t *const *x = a, *const *y = b;
	return strcmp(json_string_value(json_object_get(*x, "name")),
	              json_string_value(json_object_get(*y, "name")));
}

json_t *sup_dynos_json(struct sup *s, const struct state_app *app, const char *name,
                       struct dy_error **err)
{
	if (name) {
		const struct sup_dyno *found = NULL;
		for (const struct sup_dyno *d = s->dynos; d; d = d->next)
			if (strcmp(d->app, app->name) == 0 && strcmp(d->name, name) == 0 &&
			    (!found || found->stopping))
				found = d;
		if (!found) {
			dy_error_as(err, DY_E_NOT_FOUND, "dyno %.64s of %s not found", name,
			            app->name);
			return NULL;
		}
		return dyno_json(found);
	}
	size_t n = 0;
	for (const struct sup_dyno *d = s->dynos; d; d = d->next)
		n += strcmp(d->app, app->name) == 0;
	json_t **v = calloc(n ? n : 1, sizeof(*v));
	json_t *list = json_array();
	if (!v || !list) {
		free(v);
		json_decref(list);
		return NULL;
	}
	size_t i = 0;
	for (const struct sup_dyno *d = s->dynos; d; d = d->next)
		if (strcmp(d->app, app->name) == 0)
			v[i++] = dyno_json(d);
	qsort(v, n, sizeof(*v), cmp_json_name);
	for (i = 0; i < n; i++)
		json_array_append_new(list, v[i]);
	free(v);
	return list;
}

static int not_found(struct dy_error **err, const char *what, const char *app)
{
	return dy_error_as(err, DY_E_NOT_FOUND, "no dyno %.64s in %s", what, app);
}

int sup_restart(struct sup *s, const struct state_app *app, const char *which,
                struct dy_error **err)
{
	bool any = false;
	for (struct sup_dyno *d = s->dynos, *next; d; d = next) {
		next = d->next;
		if (d->oneoff || d->stopping || strcmp(d->app, app->name) != 0)
			continue;
		if (which && strcmp(which, d->name) != 0 && strcmp(which, d->type) != 0)
			continue;
		any = true;
		dyno_stop(d);
	}
	if (!any && which)
		return not_found(err, which, app->name);
	/* the formation starts them again, fresh (no cool-off) */
	return apply_formation(s, app, state_app_current(app), err);
}

int sup_stop_dyno(struct sup *s, const struct state_app *app, const char *name,
                  struct dy_error **err)
{
	for (struct sup_dyno *d = s->dynos; d; d = d->next) {
		if (!d->stopping && strcmp(d->app, app->name) == 0 && strcmp(d->name, name) == 0) {
			dyno_stop(d);
			if (d->oneoff)
				return 0;
			return apply_formation(s, app, state_app_current(app), err);
		}
	}
	return not_found(err, name, app->name);
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
		dyno_stop(d);
	}
	batch_end(s);
}

void sup_start_all(struct sup *s)
{
	const struct state *st = s->mgr ? mgr_state(s->mgr) : NULL;
	for (size_t i = 0; st && i < st->napps; i++)
		apply_formation(s, st->apps[i], state_app_current(st->apps[i]), NULL);
	routes_changed(s);
}

static json_t *ops_dynos_json(void *data, const struct state_app *app, const char *name,
                              struct dy_error **err)
{
	return sup_dynos_json(data, app, name, err);
}

static int ops_restart(void *data, const struct state_app *app, const char *which,
                       struct dy_error **err)
{
	return sup_restart(data, app, which, err);
}

static int ops_stop_dyno(void *data, const struct state_app *app, const char *name,
                         struct dy_error **err)
{
	return sup_stop_dyno(data, app, name, err);
}

/* dyno-init beside dynod (the build tree), else in ../bin (installed:
 * dynod in sbin), else on PATH; NULL leaves the launcher's default. */
static char *find_init(void)
{
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *path = NULL;
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			if (asprintf(&path, "%s/dyno-init", exe) >= 0 && access(path, X_OK) == 0)
				return path;
			free(path);
			path = NULL;
			if (asprintf(&path, "%s/../bin/dyno-init", exe) >= 0 &&
			    access(path, X_OK) == 0)
				return path;
			free(path);
			path = NULL;
		}
	}
	const char *env = getenv("PATH");
	_cleanup_free_ char *copy = env ? strdup(env) : NULL;
	char *save = NULL;
	for (char *dir = copy ? strtok_r(copy, ":", &save) : NULL; dir;
	     dir = strtok_r(NULL, ":", &save)) {
		if (asprintf(&path, "%s/dyno-init", dir) >= 0 && access(path, X_OK) == 0)
			return path;
		free(path);
		path = NULL;
	}
	return NULL;
}

int sup_new(struct loop *loop, const struct config *cfg, const char *cgroup_parent,
            struct sup **ret, struct dy_error **err)
{
	struct sup *s = calloc(1, sizeof(*s));
	if (!s)
		return dy_error_errno(err, ENOMEM, "calloc");
	s->loop = loop;
	s->cfg = cfg;
	s->cgroup_parent = cgroup_parent ? cgroup_parent : "dyno";
	s->ops.run_release = run_release;
	s->ops.apply_formation = apply_formation;
	s->ops.stop_app = stop_app;
	s->ops.dynos_json = ops_dynos_json;
	s->ops.restart = ops_restart;
	s->ops.stop_dyno = ops_stop_dyno;
	s->ops.data = s;
	s->init_path = find_init();
	/* routes.json versions keep increasing across restarts */
	_cleanup_free_ char *path = NULL;
	if (asprintf(&path, "%s/routes.json", cfg->state_dir) >= 0) {
		json_t *old = json_load_file(path, 0, NULL);
		json_int_t v = json_integer_value(json_object_get(old, "version"));
		s->routes_version = v > 0 ? (uint64_t)v : 0;
		json_decref(old);
	}
	/* re-adoption is a later issue: the dynos a dead dynod left are
	 * killed and swept (their formation starts again) */
	launch_kill_leftovers(s->cgroup_parent);
	int n = launch_sweep(s->cgroup_parent);
	if (n > 0)
		dy_log("dynod", "swept %d dynos left by a previous dynod", n);
	loop_timer_init(&s->check, on_check);
	if (loop_timer_start(loop, &s->check, SUP_CHECK_USEC, err) < 0) {
		free(s->init_path);
		free(s);
		return -1;
	}
	*ret = s;
	return 0;
}

void sup_set_mgr(struct sup *s, struct mgr *m)
{
	s->mgr = m;
}

const struct manager_ops *sup_ops(struct sup *s)
{
	return &s->ops;
}

void sup_free(struct sup *s)
{
	if (!s)
		return;
	loop_timer_stop(s->loop, &s->check);
	while (s->dynos) {
		struct sup_dyno *d = s->dynos;
		s->dynos = d->next;
		loop_timer_stop(s->loop, &d->timer);
		if (d->ld && !d->ld->exited)
			launch_kill(d->ld, NULL);
		release_process(d);
		dyno_free(d);
	}
	while (s->graves) { /* their dynos were killed above */
		struct sup_grave *g = s->graves;
		s->graves = g->next;
		g->gone(g->arg);
		free(g);
	}
	free(s->init_path);
	free(s);
}
