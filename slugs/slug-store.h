/* The slug store (docs/design.md, Slug): <state_dir>/slugs/<sha256>.slug holds
 * the bytes as uploaded; each slug is unpacked once per app, owned by the
 * app's uid, under <state_dir>/apps/<app>/slugs/<sha256>/.
 *
 * Modes: slugs/ and apps/<app>/slugs/ are 0700 and root's, a stored slug
 * 0600: another tenant (or any unprivileged user of the host) reads neither
 * a stored slug nor another app's code. A dyno sees its tree through the
 * mounts its launcher makes as root, which the modes do not hinder. */
#pragma once

#include <sys/types.h>

#include "common/error.h"
#include "slugs/slug.h"

#define SLUG_STORE_FILE_MODE 0600 /* a stored slug: root reads it */

/* Copies the slug read from fd into the store, hashing it on the way:
 * written to a temporary file, fsynced, renamed to <id>.slug, the
 * directory fsynced. Checks the slug (slug_inspect's checks) before it is
 * kept. An identical slug already stored is kept as it is. Fills *ret_info.
 * Returns 0 or < 0. */
int slug_store_put_fd(const char *state_dir, int fd, const struct slug_limits *limits,
                      struct slug_info *ret_info, struct dy_error **err);

/* As slug_store_put_fd for a file path. */
int slug_store_put(const char *state_dir, const char *file, const struct slug_limits *limits,
                   struct slug_info *ret_info, struct dy_error **err);

/* The path of the stored slug id (64 hex digits), whether it exists or not.
 * Returns 0, or < 0 for an id that is not 64 lower-case hex digits. The
 * string is owned by the caller. */
int slug_store_path(const char *state_dir, const char *id, char **ret, struct dy_error **err);

/* Unpacks the stored slug id for app (once: an existing unpacked tree is
 * reused), owned by uid:gid. *ret_dir (owned by the caller) is the
 * directory that becomes a dyno's /app lower layer. Returns 0 or < 0. */
int slug_store_unpack(const char *state_dir, const char *id, const char *app, uid_t uid, gid_t gid,
                      const struct slug_limits *limits, char **ret_dir, struct dy_error **err);

/* Removes leftovers of interrupted work (".*.unpack-*" and "*.tmp-*") in
 * the store. Returns the number removed. */
int slug_store_sweep(const char *state_dir);
