/* The manager: the operations of the Platform API on apps, slugs,
 * releases, config vars and formation (docs/design.md, "Platform API").
 *
 * Each operation checks its input, changes the state in memory and saves
 * the app's state file: before it returns, or with a writer
 * (mgr_set_writer()) queued off the loop, mgr_wait_saved() telling when it
 * is durable; the API server (api.c) only
 * translates HTTP to these calls. A refused input carries its kind
 * (enum dy_error_kind: not found, invalid, conflict), which the API maps to
 * its error ids and statuses.
 *
 * Running dynos is the supervisor's job (supervisor.h, on the launcher):
 * struct manager_ops is the hook through which the manager starts and
 * stops dynos and runs the release phase. With no ops (the unit tests),
 * formation is recorded but no dyno runs, and a slug with a `release`
 * process type is refused (its release phase could not run). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/config.h"
#include "common/error.h"
#include "runtime/manager/state-writer.h"
#include "common/work.h"
#include "runtime/manager/state.h"
#include "slugs/slug.h"

#define MGR_QUANTITY_MAX   100 /* dynos of one process type */
#define MGR_CONFIG_KEY_MAX 256

/* A host path bound into a build dyno. */
struct mgr_bind {
	const char *src;
	const char *dst;
	bool rw;
};

/* A one-off dyno to run (POST /apps/{app}/dynos). */
struct mgr_run {
	const char *command;
	const char *size; /* NULL: the default */
	int attach_fd;    /* -1: detached; else the client's connection, taken
	                   * on success */
	bool tty;         /* attached: the app's stdio is a pty */
	/* a build dyno, build.N (docs/builds.md), when app_dir is set: /app
	 * is app_dir read-write, the binds are added, env (NULL-terminated
	 * "K=V") is its whole environment; no release or slug is needed */
	const char *app_dir;
	const struct mgr_bind *binds;
	size_t nbinds;
	char *const *env;
};

/* The launcher's side (runtime/manager/supervisor.c on the launcher), called by the
 * manager. Every pointer may be NULL, and so may the whole struct. */
struct manager_ops {
	/* Runs the release phase of rel (a one-off release.N with the
	 * Procfile's release command). Asynchronous: the manager leaves rel
	 * pending; the launcher reports the outcome with
	 * mgr_release_finished(). Returns 0 once started, or < 0. */
	int (*run_release)(void *data, const struct state_app *app, const struct state_release *rel,
	                   struct dy_error **err);
	/* Makes the app's running dynos match its formation for release rel
	 * (starting, replacing and stopping dynos). Returns 0 or < 0. */
	int (*apply_formation)(void *data, const struct state_app *app,
	                       const struct state_release *rel, struct dy_error **err);
	/* Stops every dyno of app name (SIGTERM, grace, SIGKILL) once its
	 * app is destroyed; calls gone(arg) when the last of them has
	 * exited: at once (before returning) when none runs. gone is called
	 * exactly once, at the latest when the launcher is freed. */
	void (*stop_app)(void *data, const char *name, void (*gone)(void *arg), void *arg);
	/* The dyno objects of app: a list, or the one called name (NULL and
	 * DY_E_NOT_FOUND when there is none). New reference. */
	json_t *(*dynos_json)(void *data, const struct state_app *app, const char *name,
	                      struct dy_error **err);
	/* Restarts app's dynos: all (which NULL), of a type, or one. */
	int (*restart)(void *data, const struct state_app *app, const char *which,
	               struct dy_error **err);
	/* Stops dyno name of app. */
	int (*stop_dyno)(void *data, const struct state_app *app, const char *name,
	                 struct dy_error **err);
	/* Starts a one-off run.N of app's current release (asynchronous:
	 * the dyno is starting). Takes run->attach_fd on success.
	 * Returns the dyno object (new reference), or NULL with err. */
	json_t *(*run)(void *data, const struct state_app *app, const struct mgr_run *run,
	               struct dy_error **err);
	/* Rolls pending release rel out (docs/design.md, "Releases without
	 * downtime"): fresh dynos beside the old ones, then the switch.
	 * Asynchronous: the launcher reports the end with
	 * mgr_rollout_finished(). Returns 0 once under way, or < 0. */
	int (*roll_out)(void *data, const struct state_app *app, const struct state_release *rel,
	                struct dy_error **err);
	/* An app's hosts or maintenance changed: routes.json is rewritten. */
	void (*routing_changed)(void *data);
	void *data;
};

struct mgr;

/* <state_dir>/repos: the apps' bare git repositories (APP.git), 02770
 * root:api_group (docs/deploy.md). */
#define MGR_REPOS_DIR "repos"

/* Creates the manager over cfg and st (both borrowed, must outlive it).
 * ops may be NULL (no launcher). Returns 0 and *ret (mgr_free), or < 0. */
int mgr_new(const struct config *cfg, struct state *st, const struct manager_ops *ops,
            struct mgr **ret, struct dy_error **err);

void mgr_free(struct mgr *m);

const struct state *mgr_state(const struct mgr *m);

/* From now on, changes are saved through w (borrowed; NULL: on the calling
 * thread, before each operation returns, as without a call). */
void mgr_set_writer(struct mgr *m, struct state_writer *w);

/* Calls fn(wait, ...) once app's changes so far are on disk (or their write
 * failed, r < 0). Returns false, without calling fn, when they are on disk
 * already (always without a writer). */
bool mgr_wait_saved(struct mgr *m, const struct state_app *app, struct state_wait *wait,
                    state_wait_fn fn);

/* True when dynos run (the launcher's hook is there). */
bool mgr_has_dynos(const struct mgr *m);

/* The dyno objects of app name: the list, or dyno (when not NULL). New
 * reference, or NULL with err (DY_E_NOT_FOUND). */
json_t *mgr_dynos_json(struct mgr *m, const char *name, const char *dyno, struct dy_error **err);

/* Restarts the dynos of app name: all (which NULL), a process type's, or
 * one dyno's. DY_E_NOT_FOUND when which matches none. */
int mgr_dynos_restart(struct mgr *m, const char *name, const char *which, struct dy_error **err);

/* Starts a one-off dyno of app name (struct manager_ops.run): its dyno
 * object, or NULL with err (DY_E_NOT_FOUND: no app; DY_E_INVALID: an
 * unknown size; DY_E_CONFLICT: no release to run). run->attach_fd is
 * taken on success only. */
json_t *mgr_dyno_run(struct mgr *m, const char *name, const struct mgr_run *run,
                     struct dy_error **err);

/* Stops dyno of app name (a formation dyno is started again). */
int mgr_dyno_stop(struct mgr *m, const char *name, const char *dyno, struct dy_error **err);

/* The port of router.listen's first address (for web_url). */
unsigned mgr_router_port(const struct mgr *m);

/* The app object of docs/design.md (new reference). */
json_t *mgr_app_json(const struct mgr *m, const struct state_app *app);

/* The app called name; DY_E_NOT_FOUND when there is none. */
int mgr_app_get(struct mgr *m, const char *name, struct state_app **ret, struct dy_error **err);

/* Creates app name with the lowest free uid of the configured range.
 * Returns 0 and the app in *ret (owned by the state), or < 0. */
int mgr_app_create(struct mgr *m, const char *name, struct state_app **ret, struct dy_error **err);

/* Destroys app name: it leaves the state and its state file goes at once;
 * its dynos are stopped (through ops) and its unpacked slugs are removed
 * once the last of them has exited (after the stop grace at most).
 * Stored slugs stay (other apps may share them). */
int mgr_app_destroy(struct mgr *m, const char *name, struct dy_error **err);

/* Slug work off the loop (docs/architecture.md, "Work off the loop"):
 * checking an upload, unpacking a slug for an app, removing trees nobody
 * needs. Each runs on the manager's work pool (mgr_set_pool) as a job;
 * the jobs of one app run one at a time, in the order started, so two
 * deploys never unpack the same tree at once and a removal never races an
 * unpack. cb runs on the loop's thread once the job is done, unless the
 * job was detached first; err is NULL on success and is the callee's to
 * free otherwise. Its message names the app and the slug, never a host
 * path (internal failures are logged in full and answered with their
 * errno text). Without a pool (the unit tests) a job runs at once, inside
 * the call that starts it. */
struct mgr_job;
typedef void (*mgr_job_cb)(void *arg, const struct slug_info *info, struct dy_error *err);

/* Uses pool (borrowed; freed after mgr_stop_work() and before the
 * manager) for the jobs. */
void mgr_set_pool(struct mgr *m, struct work_pool *pool);

/* Jobs running stop early ("interrupted") and jobs not started fail at
 * once: called before the pool is freed. */
void mgr_stop_work(struct mgr *m);

/* The job will not call its cb (its requester is gone). Accepts NULL. */
void mgr_job_detach(struct mgr_job *job);

/* Starts checking and storing the slug read from fd (taken: closed by the
 * job) for app name, within its disk budget (slugs.app_disk_budget);
 * cb gets the slug's info. Returns 0 and the job in *ret_job (borrowed:
 * valid until cb runs; may be NULL when cb already ran), or < 0 when it
 * cannot start (then cb is not called). */
int mgr_slug_put_start(struct mgr *m, const char *name, int fd, mgr_job_cb cb, void *arg,
                       struct mgr_job **ret_job, struct dy_error **err);

/* Starts unpacking stored slug slug_id for app name, unless its tree is
 * there already: within the app's disk budget and the free space of the
 * state dir's filesystem. cb gets the slug's info (sizes, process types).
 * Then mgr_deploy(), mgr_rollback() or mgr_config_update() of that slug
 * find the tree and do not unpack. Returns as mgr_slug_put_start. */
int mgr_unpack_start(struct mgr *m, const char *name, const char *slug_id, mgr_job_cb cb, void *arg,
                     struct mgr_job **ret_job, struct dy_error **err);

/* Stores the slug read from fd (up to slugs.max_compressed) for app
 * name, checking it (Procfile included). Fills *ret_info (slug_info_clear).
 * Returns 0 or < 0 (DY_E_INVALID for a refused slug). */
int mgr_slug_put(struct mgr *m, const char *name, int fd, struct slug_info *ret_info,
                 struct dy_error **err);

/* Deploys stored slug slug_id to app name as a new release "Deploy
 * <7 hex>", with the current config vars. Unpacks the slug for the app
 * (once) when no pool is set; with a pool its tree must be there already
 * (mgr_unpack_start). After any new release the unpacked trees the app
 * no longer keeps are removed, off the loop (docs/slugs.md, "Disk"). The first deploy of an app
 * with a web type scales web to 1. *ret is the new release (owned by the state). */
int mgr_deploy(struct mgr *m, const char *name, const char *slug_id, struct state_release **ret,
               struct dy_error **err);

/* As mgr_deploy, described as desc ("Deploy 1a2b3c4" of a pushed commit;
 * NULL: of the slug). */
int mgr_deploy_as(struct mgr *m, const char *name, const char *slug_id, const char *desc,
                  struct state_release **ret, struct dy_error **err);

/* A new release "Rollback to vN" with release version's slug and config
 * vars. version must exist and have a slug. */
int mgr_rollback(struct mgr *m, const char *name, int version, struct state_release **ret,
                 struct dy_error **err);

/* The launcher's report on the release phase of app name's release
 * version (pending): it becomes succeeded (then the formation is applied
 * with it) or failed (it keeps its number; the current release stays
 * serving), failure (copied; may be NULL) saying why, as the release's
 * `failure`. DY_E_NOT_FOUND for an unknown app or release, DY_E_CONFLICT
 * when it is not pending. */
int mgr_release_finished(struct mgr *m, const char *name, int version, bool succeeded,
                         const char *failure, struct dy_error **err);

/* The launcher's report on the rollout of app name's pending release
 * version: succeeded (it is the current release now) or failed for the
 * reason failure (copied; may be NULL). Saved. DY_E_NOT_FOUND,
 * DY_E_CONFLICT as mgr_release_finished(). */
int mgr_rollout_finished(struct mgr *m, const char *name, int version, bool succeeded,
                         const char *failure, struct dy_error **err);

/* Adds custom hostname host to app name (docs/api.md, "Domains"): a DNS
 * name of labels [a-z0-9-] (case-insensitive, kept lower case), not under
 * the platform's domain, used by no other app (DY_E_CONFLICT; the other
 * app is not named). Saved; routes.json follows. */
int mgr_domain_add(struct mgr *m, const char *name, const char *host, struct dy_error **err);

/* Removes custom hostname host of app name (DY_E_NOT_FOUND when it has
 * none such). Saved; routes.json follows. */
int mgr_domain_remove(struct mgr *m, const char *name, const char *host, struct dy_error **err);

/* Turns maintenance mode of app name on or off (the router answers H80
 * while on). Saved; routes.json follows. */
int mgr_set_maintenance(struct mgr *m, const char *name, bool on, struct dy_error **err);

/* Fails every pending release ("why"): at start-up, a release phase or a
 * rollout that a stop of dynod cut short. Returns how many. */
int mgr_fail_pending(struct mgr *m, const char *why);

/* The app's config vars (its newest release's that has not failed, a
 * pending one included), borrowed; NULL (no config vars) before any
 * release. */
json_t *mgr_config_vars(const struct state_app *app);

/* Applies changes ({"K": "V", "GONE": null}) to the config vars as a new
 * release "Set K config vars" / "Remove GONE config vars". Keys must match
 * [A-Za-z_][A-Za-z0-9_]* (at most MGR_CONFIG_KEY_MAX bytes), values be
 * strings or null. *ret is the new release, or NULL when nothing changed. */
int mgr_config_update(struct mgr *m, const char *name, json_t *changes, struct state_release **ret,
                      struct dy_error **err);

/* As mgr_config_update(), the release described as desc (NULL: as
 * mgr_config_update() does): "Attach DATABASE (@ref:postgresql-...)". */
int mgr_config_update_as(struct mgr *m, const char *name, json_t *changes, const char *desc,
                         struct state_release **ret, struct dy_error **err);

struct mgr_formation_update {
	const char *type;
	int quantity;     /* -1: unchanged */
	const char *size; /* NULL: unchanged */
};

/* Applies updates, all or none: each type must be a process type of the
 * current release (not `release`), quantity 0..MGR_QUANTITY_MAX, size one
 * of the configured sizes. */
int mgr_formation_update(struct mgr *m, const char *name, const struct mgr_formation_update *u,
                         size_t n, struct dy_error **err);

/* The formation list of docs/design.md for app (one entry per process type of
 * the current release but `release`, in Procfile order), or only type when
 * type is not NULL (then a formation object, or NULL with DY_E_NOT_FOUND). */
json_t *mgr_formation_json(const struct mgr *m, const struct state_app *app, const char *type,
                           struct dy_error **err);
