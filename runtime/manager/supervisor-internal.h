/* What supervisor.c shares with supervisor-api.c (the dynos as the
 * Platform API sees them) and adopt.c (re-adoption of running dynos after
 * a crash of dynod); not for other modules, which use supervisor.h. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "common/loop.h"
#include "common/work.h"
#include "runtime/launcher/launch.h"
#include "runtime/manager/boot.h"
#include "runtime/manager/drain-watch.h"
#include "runtime/manager/dyno-record.h"
#include "runtime/manager/lifecycle.h"
#include "runtime/manager/memory-watch.h"
#include "runtime/manager/supervisor.h"
#include "runtime/manager/teardown.h"

#define SUP_CHECK_USEC   (1000ULL * 1000) /* memory watch, sweeps, routes.json retries */
/* routes.json is written at most once in this time: each write is the
 * whole table (O(dynos)) and the router reads it whole; 1000 dynos coming
 * up one by one wrote it 3000 times, 7 ms each, on the loop */
#define SUP_ROUTES_GAP_USEC (20ULL * 1000)
#define SUP_SWEEP_CHECKS 60               /* sweeps after a failed clean-up */
#define SUP_WEB_PORT     5000
#define SUP_NAME_MAX     48
#define SUP_WHY_MAX      160
#define SUP_DRAIN_POLL_USEC (200ULL * 1000)

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
	bool removed; /* unlinked, free deferred */
	struct lc_dyno lc;
	struct boot_probe boot; /* web dynos, while starting */
	struct mw_dyno mem;
	struct launch_dyno *ld;
	/* its launch_start() runs on the start thread: no process yet, and
	 * d is neither started again nor freed until the start's done */
	struct sup_start *start;
	unsigned long long start_time; /* of ld->pid, for the record */
	struct loop_io exit_io;        /* on ld->pidfd */
	struct loop_io oom_io;         /* on ld->oom_fd */
	struct loop_timer start_timer; /* cool-off over, or a release phase due */
	struct loop_timer boot_timer;  /* the next boot probe */
	struct loop_timer stop_timer;  /* the stop grace ran out: R12 */
	/* the free, after the dispatch round */
	struct loop_deferred reap;
	/* its slug's tree was gone: unpacked off the loop, then started */
	struct mgr_job *unpack_job;
	struct dy_error *unpack_err; /* the unpack failed: the start fails */
	char created_at[STATE_TIME_LEN + 1];
	char updated_at[STATE_TIME_LEN + 1];
	/* an attached run.N: the client's connection, handed to its init at
	 * the start (closed here then, or when the dyno goes unstarted) */
	int attach_fd;
	bool attach_tty;
	/* rollouts (rollout.c): started by one, not switched to yet; or
	 * being replaced by a ps:restart */
	bool fresh;
	bool replaced;
	struct loop_timer drain_timer; /* draining: SIGTERM when it runs out */
	long long drain_version;       /* the routes.json that marks it draining */
	/* why it last crashed ("Error R10 (Boot timeout)", "Process exited
	 * with status 3"): an aborted rollout names it */
	char why[SUP_WHY_MAX];
	unsigned start_failures; /* in a row: starts that failed (not the app's exits) */
	/* its init reported how the app ended (its last log line) */
	bool exit_reported;
	int exit_status;
	/* a build dyno's /app, binds and environment (mgr_run) */
	struct sup_build *build;
};

/* What a build dyno runs with: owned copies (dyno-start.c). */
struct sup_build {
	char *app_dir;
	size_t nbinds;
	struct launch_bind binds[LAUNCH_BINDS_MAX];
	char **env;
};

/* A copy of run's build part, or NULL (no memory, too many binds). */
struct sup_build *sup_build_new(const struct mgr_run *run);
void sup_build_free(struct sup_build *b);

struct sup_rollout;

struct sup {
	struct loop *loop;
	const struct config *cfg;
	const char *cgroup_parent;
	struct mgr *mgr;
	struct manager_ops ops;
	struct lc_policy policy;
	struct sup_dyno *dynos;
	struct td_graves graves;
	struct rw_writer *routes;
	struct dr_writer *record; /* dynos.json: what a next dynod re-adopts */
	char boot_id[DR_BOOT_ID_LEN + 1];
	uint16_t pg_port; /* addons.postgresql.port: open to dynos of apps with add-ons */
	bool leaving;                   /* SIGQUIT: every dyno is left running */
	struct loop_timer mem_timer;    /* the memory watch of every dyno */
	struct loop_timer sweep_timer;  /* runs while sweeps_due */
	struct loop_timer routes_timer; /* a failed or held routes.json write */
	uint64_t routes_written_at;     /* loop_now() of the last write */
	unsigned seq;                   /* instance ids */
	unsigned release_seq;
	unsigned run_seq; /* run.N */
	unsigned build_seq; /* build.N */
	bool shutting_down;
	bool routes_dirty;
	unsigned sweeps_due; /* a clean-up failed: sweep leftovers so many times */
	/* one thread runs every launch_start() in turn (launch.h, "Threads"),
	 * off the loop; nstarting of them are in flight */
	struct work_pool *starts;
	struct launch_pool *pool; /* dyno.pool.size prepared dynos, or NULL */
	unsigned nstarting;
	unsigned ncleaning; /* clean-ups queued on the same thread */
	bool freeing;     /* sup_free(): a start's done only hands over its dyno */
	unsigned batch;   /* > 0: routes.json is written when it drops to 0 */
	char *init_path;  /* dyno-init, NULL: the launcher's default */
	struct lgi *logs; /* the log intake: each app's sink; NULL: none */
	/* the start of every dyno id of this state dir ("1a2b3c4d-"): what a
	 * sweep at start-up may remove (another state dir's dynos under the
	 * same cgroup parent are not ours) */
	char id_prefix[16];
	int parent_lock; /* flock on the cgroup parent: one dynod owns it */
	struct sup_rollout *rollouts;   /* rollout.c: one per app at most */
	struct dw_watch *drains;        /* asks the router whether drains are done */
	struct loop_timer drain_poll;   /* while dynos drain: every SUP_DRAIN_POLL_USEC */
	struct loop_timer rollout_timer; /* decides them after the events */
};

/* Rollouts (rollout.c; docs/design.md, "Releases without downtime"). */

/* manager_ops.roll_out: replaces app's web dynos by fresh ones of rel
 * beside them; the release's end goes to mgr_rollout_finished(). A
 * rollout of the app under way is superseded (its release fails). */
int sup_roll_out(void *data, const struct state_app *app, const struct state_release *rel,
                 struct dy_error **err);

/* A ps:restart: the dynos marked `replaced` are replaced by fresh ones of
 * the current release as a rollout does (no release). */
int sup_roll_restart(struct sup *s, const struct state_app *app, struct dy_error **err);

/* When app has a rollout under way: its rolling reconcile (*ret_rolling
 * true); else nothing. Returns 0 or < 0. */
int sup_rollout_apply(struct sup *s, const struct state_app *app, bool *ret_rolling,
                      struct dy_error **err);

/* d changed state: its app's rollout is decided again soon (a fresh dyno
 * crashed: aborted). */
void sup_rollout_changed(struct sup_dyno *d);

/* True while app has a rollout under way. */
bool sup_rolling(const struct sup *s, const char *app);

void sup_rollout_init(struct sup *s);
void sup_rollouts_free(struct sup *s);

/* Drains d (an up web dyno replaced by a rollout): no new requests until
 * the router has none of it in flight, at most dyno.timeouts.drain, then
 * stopped as sup_dyno_stop() does (rollout.c). */
void sup_dyno_drain(struct sup_dyno *d);

/* routes.json says what changed (batched while a reconcile runs). */
void sup_routes_changed(struct sup *s);

/* SIGTERM to d's process and the stop timer (its grace). */
void sup_send_sigterm(struct sup_dyno *d);

/* The drains' timers and the router's answer (rollout.c). */
void sup_on_drain_timer(struct loop *loop, struct loop_timer *t);
void sup_on_drain_poll(struct loop *loop, struct loop_timer *t);
void sup_on_drains(void *ctx, const struct dw_metrics *m);

/* Stops d: SIGTERM to its init, the stop timer (R12 when the grace runs
 * out); a dyno not running yet is dropped. */
void sup_dyno_stop(struct sup_dyno *d);

/* Makes app's dynos match the formation of rel (data: the struct sup):
 * starts what is missing, stops what is extra. Returns 0 or < 0. */
int sup_apply_formation(void *data, const struct state_app *app, const struct state_release *rel,
                        struct dy_error **err);

/* Watches d's process: its exit (pidfd) and OOM events. */
void sup_watch_process(struct sup_dyno *d);

/* Logs and publishes a change of d's state from was. */
void sup_state_changed(struct sup_dyno *d, enum lc_state was);

/* d is up: into routes.json (a web dyno), the cool-off clock starts. */
void sup_mark_up(struct sup_dyno *d);

/* True for a formation dyno of type web. */
bool sup_is_web(const struct sup_dyno *d);

/* A new supervised dyno of app, linked into s's list, not started. */
struct sup_dyno *sup_dyno_new(struct sup *s, const char *app, const char *type, int index,
                              const char *command, const char *size, int version, bool oneoff);

/* Starts the boot probe of a starting web dyno (R10 at its deadline). */
void sup_boot_begin(struct sup_dyno *d);

/* Starts d's process (off the loop, on the start thread); its result is
 * taken up on the loop. */
void sup_dyno_start(struct sup_dyno *d);

/* SIGKILL to d's cgroup now (no grace). */
void sup_kill_now(struct sup_dyno *d);

/* d's process is gone: the crash, restart or end of a one-off. */
void sup_on_exited(struct sup_dyno *d);

/* Tells the manager how the release phase d ran ended (why: the failure, or NULL). */
void sup_report_release(struct sup_dyno *d, bool ok, const char *why);

/* Sweeps leftovers on the next checks (a clean-up failed). */
void sup_sweep_soon(struct sup *s);

/* Takes d out of the list; it is freed after the dispatch round. */
void sup_unlink_dyno(struct sup_dyno *d);

/* The ops of the manager (manager.h, struct manager_ops), over sup_dynos_json(),
 * sup_restart() and sup_stop_dyno(). */
json_t *sup_ops_dynos_json(void *data, const struct state_app *app, const char *name,
                           struct dy_error **err);
int sup_ops_restart(void *data, const struct state_app *app, const char *which,
                    struct dy_error **err);
int sup_ops_stop_dyno(void *data, const struct state_app *app, const char *name,
                      struct dy_error **err);
json_t *sup_ops_run(void *data, const struct state_app *app, const struct mgr_run *run,
                    struct dy_error **err);

/* Re-adopts the dynos of s's record (dynos.json) that still run: fills
 * *ret_keep with their ids (nothing else of ours is kept). Returns 0, or
 * < 0 for a record that cannot be read (start-up stops). */
int sup_adopt_recorded(struct sup *s, char ***ret_keep, size_t *ret_nkeep, struct dy_error **err);
