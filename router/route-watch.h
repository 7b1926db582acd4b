/* Watches routes.json with inotify: dynod replaces it atomically (rename),
 * so the directory is watched for the file's name arriving or being
 * written; the callback reloads. */
#pragma once

#include "common/error.h"

struct loop;
struct route_watch;

typedef void (*route_watch_fn)(void *data);

/* Watches path; fn(data) runs after each change of the file. Returns 0 and
 * *ret (free with route_watch_free()), or < 0 (the directory must exist). */
int route_watch_start(struct loop *loop, const char *path, route_watch_fn fn, void *data,
                      struct route_watch **ret, struct dy_error **err);

/* Stops watching. Accepts NULL. */
void route_watch_free(struct route_watch *w);
