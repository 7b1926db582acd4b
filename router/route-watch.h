/* Watches routes.json with inotify: dynod replaces it atomically (rename),
 * so the directory is watched for the file's name arriving or being
 * written; the callback reloads. A directory that does not exist yet is
 * waited for. */
#pragma once

#include "common/error.h"

struct loop;
struct route_watch;

#define ROUTE_WATCH_RETRY_MS 250

typedef void (*route_watch_fn)(void *data);

/* Watches path; fn(data) runs after each change of the file. A directory
 * not there yet (dynod makes the state dir, and may start after the
 * router) is waited for: its watch is retried every ROUTE_WATCH_RETRY_MS,
 * logged once, and fn runs once it is watched. Returns 0 and *ret (free
 * with route_watch_free()), or < 0 (inotify refused, the path is not a
 * directory's). */
int route_watch_start(struct loop *loop, const char *path, route_watch_fn fn, void *data,
                      struct route_watch **ret, struct dy_error **err);

/* Stops watching. Accepts NULL. */
void route_watch_free(struct route_watch *w);
