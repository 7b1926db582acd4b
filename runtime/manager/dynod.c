/* dynod [--config FILE]: the manager and the Platform API, in the
 * foreground (docs/design.md, "Daemons and configuration"), and dyno-router
 * under it unless router.external (router-keeper.h). Ready when the API
 * socket accepts; SIGTERM or SIGINT stops it cleanly, the router last;
 * SIGQUIT (an upgrade) leaves every dyno and the router running for the
 * next dynod to re-adopt. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/config.h"
#include "common/fs.h"
#include "common/lock.h"
#include "common/log.h"
#include "common/loop.h"
#include "common/work.h"
#include "runtime/launcher/net.h"
#include "runtime/manager/addon-pg.h"
#include "runtime/manager/api.h"
#include "runtime/manager/log-intake.h"
#include "runtime/manager/log-stream.h"
#include "runtime/manager/manager.h"
#include "runtime/manager/router-keeper.h"
#include "runtime/manager/state.h"
#include "runtime/manager/supervisor.h"
#include "slugs/slug-store.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: dynod [--config FILE]\n"
	           "  runs the dyno manager and the Platform API in the foreground\n"
	           "  (default configuration: " CONFIG_DEFAULT_PATH ", else built-in defaults)\n");
}

/* Worker threads for slug work off the loop (checks, unpacks, removals):
 * a few, so one tenant's long unpack does not hold up another's. */
#define DYNOD_WORK_THREADS 3

static struct sup *the_sup;
static int signals_seen;
static bool leaving; /* SIGQUIT: dynos and router left running */

/* The first SIGTERM or SIGINT stops every dyno in order (SIGTERM, grace,
 * SIGKILL) and then the loop, after which run() stops the router; a
 * second one stops the loop at once (what still runs is killed on the way
 * out; a router told SIGTERM finishes on its own). */
static void on_signal(struct loop *loop, struct loop_signal *sig, int signo,
                      const struct signalfd_siginfo *info)
{
	(void)info;
	if (signo == SIGQUIT) {
		/* an upgrade: the next dynod re-adopts the dynos (dynos.json)
		 * and the router (router.pid); nothing is stopped */
		dy_log("dynod", "%s: leaving every dyno and the router running", strsignal(signo));
		leaving = true;
		if (the_sup)
			sup_leave(the_sup);
		loop_stop(loop);
		return;
	}
	dy_log("dynod", "%s: stopping", strsignal(signo));
	if (the_sup && ++signals_seen == 1) {
		sup_shutdown(the_sup);
		return;
	}
	if (!the_sup)
		signals_seen++;
	loop_stop(loop);
}


/* <state_dir>/repos: the apps' bare repositories, made by members of
 * api_group (dyno git:remote, git-receive) and written by their pushes:
 * 02770 root:api_group, the group kept on what is made inside. */
static int repos_dir(const struct config *cfg, struct dy_error **err)
{
	gid_t gid;
	if (config_api_gid(cfg, &gid, err) < 0)
		return -1;
	_cleanup_free_ char *path = NULL;
	if (asprintf(&path, "%s/" MGR_REPOS_DIR, cfg->state_dir) < 0)
		return dy_error_errno(err, ENOMEM, "repos");
	if (mkdir(path, 02770) < 0 && errno != EEXIST)
		return dy_error_errno(err, errno, "mkdir %s", path);
	if (chown(path, 0, gid) < 0 || chmod(path, 02770) < 0)
		return dy_error_errno(err, errno, "%s", path);
	return 0;
}

static int run(const char *config_path)
{
	struct dy_error *err = NULL;
	struct config *cfg = NULL;
	struct state *st = NULL;
	struct mgr *m = NULL;
	struct loop *loop = NULL;
	struct api *api = NULL;
	struct sup *sup = NULL;
	struct state_writer *writer = NULL;
	struct work_pool *pool = NULL;
	struct rkeep *router = NULL;
	struct pg *pg = NULL;
	struct lgi *logs = NULL;
	struct lstreams *streams = NULL;
	struct loop_signal sig;
	_cleanup_close_ int state_lock = -1;
	bool sig_started = false;
	bool ran = false; /* the loop ran: the dynos are this dynod's */
	int status = 1;

	if (config_load(config_path, &cfg, &err) < 0)
		goto out;
	/* one dynod per state dir: taken before anything in it is read or
	 * swept (the sweep would remove a running dynod's uploads) */
	if (dy_mkdir_p(cfg->state_dir, STATE_DIR_MODE, &err) < 0)
		goto out;
	pid_t holder = 0;
	int r = dy_lock_dir(cfg->state_dir, &state_lock, &holder, &err);
	if (r == -EWOULDBLOCK) {
		dy_error(&err, "state_dir %s is in use by another dynod%s", cfg->state_dir,
		         dy_lock_holder_text(holder, (char[320]){0}, 320));
		goto out;
	}
	if (r < 0)
		goto out;
	if (state_open(cfg->state_dir, &st, &err) < 0) {
		dy_error_prefix(&err, "state_dir %s", cfg->state_dir);
		goto out;
	}
	if (repos_dir(cfg, &err) < 0)
		goto out;
	/* what a killed dynod left mid-write: dynos.json's, routes.json's,
	 * an app file's temporary files */
	int stale = dy_remove_stale_tmp(cfg->state_dir);
	for (size_t i = 0; i < st->napps; i++) {
		_cleanup_free_ char *adir = NULL;
		if (asprintf(&adir, "%s/apps/%s", cfg->state_dir, st->apps[i]->name) >= 0)
			stale += dy_remove_stale_tmp(adir);
	}
	if (stale > 0)
		dy_log("dynod", "removed %d temporary files of interrupted writes", stale);
	int swept = slug_store_sweep(cfg->state_dir);
	if (swept > 0)
		dy_log("dynod", "removed %d leftovers of interrupted uploads and unpacks", swept);
	if (loop_new(&loop, &err) < 0)
		goto out;
	/* DYNOD_NO_LAUNCHER=1: formation is recorded, no dyno runs (the API
	 * tests on hosts without namespaces) */
	const char *no_launcher = getenv("DYNOD_NO_LAUNCHER");
	if (!no_launcher || strcmp(no_launcher, "1") != 0) {
		if (sup_new(loop, cfg, cfg->cgroup_parent, &sup, &err) < 0)
			goto out;
		/* the gateway address exists before any dyno: the add-on
		 * database binds it (docs/isolation.md, "Network") */
		if (net_gateway_setup(cfg->network.subnet, cfg->network.subnet_prefix, &err) < 0)
			goto out;
		sup_pool_start(sup);
	}
	if (mgr_new(cfg, st, sup ? sup_ops(sup) : NULL, &m, &err) < 0)
		goto out;
	/* every app's log sink, and <state_dir>/log.sock for the router,
	 * before any dyno or the router starts (docs/design.md, "Logs") */
	if (lgi_new(loop, cfg, st, &logs, &err) < 0 || lstreams_new(loop, logs, &streams, &err) < 0)
		goto out;
	if (sup)
		sup_set_logs(sup, logs);
	/* app.json is written off the loop (docs/operating.md, "State") */
	if (state_writer_new(loop, st, &writer, &err) < 0)
		goto out;
	mgr_set_writer(m, writer);
	if (work_pool_new(loop, DYNOD_WORK_THREADS, &pool, &err) < 0)
		goto out;
	mgr_set_pool(m, pool);
	if (sup) {
		sup_set_mgr(sup, m);
		the_sup = sup;
	}
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGQUIT);
	if (loop_signal_start(loop, &sig, &mask, on_signal, &err) < 0)
		goto out;
	sig_started = true;
	/* a client gone mid-answer must not kill dynod (send uses
	 * MSG_NOSIGNAL; this covers every other write) */
	signal(SIGPIPE, SIG_IGN);
	/* the router before the API: once dynod answers, it routes */
	if (!cfg->router.external && rkeep_new(loop, cfg, config_path, &router, &err) < 0)
		goto out;
	if (api_new(loop, m, cfg, &api, &err) < 0)
		goto out;
	api_set_logs(api, logs, streams);
	/* the PostgreSQL add-on (needs the gateway: with the launcher only);
	 * a running server is re-adopted */
	if (sup) {
		if (pg_new(loop, cfg, m, pool, &pg, &err) < 0)
			goto out;
		api_set_pg(api, pg);
	}
	if (sup) {
		/* a release phase or rollout the last dynod left unfinished
		 * failed: its dynos are replaced by the current release's */
		int n = mgr_fail_pending(m, "interrupted: dynod stopped before it ended");
		if (n > 0)
			dy_log("dynod", "%d pending releases failed (interrupted)", n);
		sup_start_all(sup);
	}
	dy_log("dynod", "ready: %zu apps, API on %s, state in %s", st->napps, cfg->api_socket,
	       cfg->state_dir);
	ran = true;
	if (loop_run(loop, &err) < 0)
		goto out;
	/* stopped by one signal, the dynos are down: the router next
	 * (rkeep_stop() stops the loop once it is gone) */
	if (router && signals_seen == 1 && !leaving) {
		rkeep_stop(router);
		if (loop_run(loop, &err) < 0)
			goto out;
	}
	/* and the add-on database, fast (an upgrade, a crash leave it) */
	if (signals_seen == 1 && !leaving)
		pg_stop(pg);
	status = 0;
out:
	if (err) {
		fprintf(stderr, "dynod: error: %s\n", dy_error_msg(err));
		dy_error_free(&err);
	}
	/* first: the jobs' done callbacks answer API connections and make
	 * releases; running unpacks stop early */
	if (m)
		mgr_stop_work(m);
	pg_stop_work(pg);
	work_pool_free(pool);
	pg_free(pg); /* a server still running is the next dynod's */
	api_free(api);
	lstreams_free(streams);
	/* still running here (an error, a second signal): it goes on serving,
	 * the next dynod adopts it */
	rkeep_free(router);
	the_sup = NULL;
	/* a start-up that failed leaves the dynos it re-adopted running, as
	 * it found them */
	if (sup && !ran)
		sup_leave(sup);
	sup_free(sup);
	/* after the supervisor: its last lines are filed; the stores flush */
	lgi_free(logs);
	/* after everything that changes the state: writes what is queued */
	if (m)
		mgr_set_writer(m, NULL);
	state_writer_free(writer);
	if (sig_started)
		loop_signal_stop(loop, &sig);
	loop_free(loop);
	mgr_free(m);
	state_free(st);
	config_free(cfg);
	return status;
}

int main(int argc, char **argv)
{
	const char *config_path = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
			config_path = argv[++i];
		} else if (strncmp(argv[i], "--config=", 9) == 0) {
			config_path = argv[i] + 9;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("dynod %s\n", DYNO_VERSION);
			return 0;
		} else {
			fprintf(stderr, "dynod: unexpected argument \"%s\"\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	return run(config_path);
}
