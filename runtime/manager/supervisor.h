/* The supervisor: runs each app's formation on the launcher inside dynod
 * (docs/design.md, "Lifecycle"), and has routes.json written for the
 * router ("Internal contract: routes.json"; routes-writer.h).
 *
 * Everything happens on dynod's loop: one pidfd watcher and one OOM
 * watcher per dyno, and a timer per meaning: per dyno the boot probe
 * (boot.h), the stop grace and the restart after a cool-off (lifecycle.h);
 * for all dynos the memory watch (memory-watch.h), the sweep of leftovers
 * and the retry of a failed routes.json write. Nothing waits for a dyno:
 * a stop sends SIGTERM and arms the grace timer; only SIGKILL is waited
 * for (the kernel finishes it at once).
 *
 * The supervisor is the manager's struct manager_ops (sup_ops()). */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "common/config.h"
#include "common/error.h"
#include "common/loop.h"
#include "runtime/manager/manager.h"

struct sup;

/* Creates the supervisor on loop for cfg (both borrowed). cgroup_parent
 * names the cgroup under which dynos live (NULL: "dyno"). The dynos a
 * previous dynod of this state dir left running are re-adopted from
 * <state_dir>/dynos.json (dyno-record.h) when their init still runs; the
 * other leftovers there are killed and swept. Returns 0 and *ret
 * (sup_free), or < 0 (a dynos.json of a newer schema or that cannot be
 * read: it is left as it is, and so is every dyno). */
int sup_new(struct loop *loop, const struct config *cfg, const char *cgroup_parent,
            struct sup **ret, struct dy_error **err);

/* The manager the supervisor reports to (release phases) and reads apps
 * from (routes.json). Call once, before the first operation. */
void sup_set_mgr(struct sup *s, struct mgr *m);

struct lgi;

/* Starts the warm pool of dyno.pool.size prepared dynos (launch.h), once
 * sup_new() has swept what a previous dynod left (the entries carry our id
 * prefix) and the gateway is set up. A pool that cannot start is logged:
 * dynos then start the usual way. */
void sup_pool_start(struct sup *s);

/* The log intake (log-intake.h, borrowed): dynos get their app's sink.
 * Without it they run with no sink (their output is dropped). */
void sup_set_logs(struct sup *s, struct lgi *logs);

/* The hook to pass to mgr_new(); points into s. */
const struct manager_ops *sup_ops(struct sup *s);

/* Reconciles every app's formation with the dynos re-adopted (at dynod's
 * start): starts what is missing, stops what is extra, and writes
 * routes.json (held back since sup_new()). */
void sup_start_all(struct sup *s);

/* The dyno objects of app (docs/design.md, "Platform API"): a list of every
 * dyno when name is NULL, else the dyno called name (NULL with
 * DY_E_NOT_FOUND when there is none). New reference. */
json_t *sup_dynos_json(struct sup *s, const struct state_app *app, const char *name,
                       struct dy_error **err);

/* Restarts app's dynos: all of them (which NULL), those of a process type,
 * or one dyno. DY_E_NOT_FOUND when which matches none. */
int sup_restart(struct sup *s, const struct state_app *app, const char *which,
                struct dy_error **err);

/* Stops dyno name of app; the formation starts it again (as Heroku's
 * ps:stop of a formation dyno). DY_E_NOT_FOUND when there is none. */
int sup_stop_dyno(struct sup *s, const struct state_app *app, const char *name,
                  struct dy_error **err);

/* Stops every dyno (SIGTERM, grace, SIGKILL), then calls loop_stop(). */
void sup_shutdown(struct sup *s);

/* Leaves every dyno running (SIGQUIT, an upgrade; a start-up that
 * failed): sup_free() then writes the record of what runs and lets go of
 * the dynos without stopping them. Stops the loop. */
void sup_leave(struct sup *s);

/* Kills and cleans whatever still runs (the loop is gone) unless
 * sup_leave() was called, writes the record (dynos.json) of what runs
 * still, frees s. Accepts NULL. */
void sup_free(struct sup *s);
