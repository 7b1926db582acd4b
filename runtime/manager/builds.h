/* Builds through Heroku's buildpack API (docs/builds.md): a build dyno
 * (build.N, a one-off of the supervisor) builds the posted source with the
 * app's buildpacks or the first built-in that detects it, packs the slug
 * inside the dyno and hands it back through its stdout; dynod stores it,
 * releases it ("Deploy <commit>") and rolls it out as any deploy.
 *
 * On disk, under <state_dir>:
 *   builds/APP/ID.json      the build object (written atomically)
 *   builds/APP/ID.log       its output: the buildpacks' stdout and stderr
 *   builds/APP/ID/          while it runs: source.tar, app/ (the app's),
 *                           env/ (ENV_DIR), slug.tgz (what came back)
 *   builds/APP/buildpacks.json  the app's buildpacks (host paths)
 *   cache/APP/              the build cache, the app's, kept across builds
 *
 * Everything runs on dynod's loop: the build dyno's stdio comes back over
 * a socket (the attach protocol, common/attach.h) read as it arrives. */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "common/config.h"
#include "common/error.h"
#include "common/loop.h"
#include "runtime/manager/manager.h"

struct builds;

int builds_new(struct loop *loop, struct mgr *m, const struct config *cfg, struct builds **ret,
               struct dy_error **err);

/* Leaves running builds to the supervisor (their dynos are one-offs). */
void builds_free(struct builds *b);

/* Starts a build of app from the tar at fd (app/ prefix; taken), commit
 * the pushed commit ("" or NULL when none). Returns the build object
 * (pending; new reference) or NULL with err. */
json_t *builds_start(struct builds *b, const char *app, int fd, const char *commit,
                     struct dy_error **err);

/* The app's builds, newest last; one build (DY_E_NOT_FOUND). New refs. */
json_t *builds_list(struct builds *b, const char *app, struct dy_error **err);
json_t *builds_get(struct builds *b, const char *app, const char *id, struct dy_error **err);

/* Answers GET .../builds/ID/output on the socket fd (taken on success):
 * the output so far, then what follows until the build is over (chunked
 * text/plain, Connection: close). */
int builds_output(struct builds *b, const char *app, const char *id, int fd, bool head_only,
                  struct dy_error **err);

/* GET/PUT /apps/{app}/buildpack-installations: [{ordinal, buildpack:
 * {url, name}}]; PUT's body {"updates": [{"buildpack": PATH}]} (an
 * absolute path of the host, a directory with bin/detect). */
json_t *builds_buildpacks_get(struct builds *b, const char *app, struct dy_error **err);
json_t *builds_buildpacks_put(struct builds *b, const char *app, json_t *body,
                              struct dy_error **err);

/* DELETE /apps/{app}/build-cache: the cache emptied (a fresh one). */
int builds_cache_purge(struct builds *b, const char *app, struct dy_error **err);
