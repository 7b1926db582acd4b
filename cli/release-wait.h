/* The wait of the verbs that change what an app runs (deploy, config:set,
 * config:unset, rollback, ps:restart): the release phase, its output
 * streamed, then the new web dynos up (docs/cli.md, "Waiting"). */
#pragma once

#include <jansson.h>
#include <stdbool.h>

/* Notes the time the change is asked for (log lines from before it are
 * not the change's) and the processes of app's dynos (NULL: none; a dyno
 * still running one is not the change's). Call just before the request. */
void cli_wait_begin(const char *app);

/* Waits for release rel (the API's object, as the change answered it) of
 * app: its release phase when it is pending, printing the phase's output,
 * then, when it succeeded, the web dynos of its version up. Prints
 * `done, vN` and returns CLI_OK; or prints `dyno: error: release vN
 * failed: <reason>` / `... web.1 crashed: Error R10 (Boot timeout)` and
 * returns CLI_ERROR. Bounded: the phase at most an hour, the web dynos
 * the boot timeout plus 30 s. */
int cli_wait_release(const char *app, const json_t *rel);

/* Waits for the web dynos restarted since cli_wait_begin() to be up, as
 * cli_wait_release's second part: which is ps:restart's word (NULL or
 * "web": every web dyno of the formation; "web.N": that one; another
 * type or dyno: none). Prints `done` and returns CLI_OK, or CLI_ERROR
 * after naming what failed. */
int cli_wait_restart(const char *app, const char *which);

/* The version of app's newest release, 0 when none. */
int cli_newest_version(const char *app);

/* After a change that may have made a release (before: the newest
 * version before it): prints `done, vN (no change)`, or `created vN` and
 * waits for it (cli_wait_release()), or `done, vN` with no_wait. */
int cli_finish_release(const char *app, int before, bool no_wait);
