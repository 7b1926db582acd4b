/* The slug store (docs/design.md, Slug): <state_dir>/slugs/<sha256>.slug holds
 * the bytes as uploaded; each slug is unpacked once per app, owned by the
 * app's uid, under <state_dir>/apps/<app>/slugs/<sha256>/.
 *
 * Modes: slugs/ and apps/<app>/slugs/ are 0700 and root's, a stored slug
 * 0600: another tenant (or any unprivileged user of the host) reads neither
 * a stored slug nor another app's code. A dyno sees its tree through the
 * mounts its launcher makes as root, which the modes do not hinder. */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"
#include "slugs/slug.h"

#define SLUG_STORE_FILE_MODE 0600 /* a stored slug: root reads it */

/* A stored slug no release references is kept this long after its upload
 * (for the deploy that follows it), then removed by slug_store_gc(). */
#define SLUG_STORE_UPLOAD_GRACE_SEC (60 * 60)

/* Called by slug_store_put_fd_checked() once the slug passed its checks,
 * before it is kept: < 0 (with err set) refuses it and nothing is kept. */
typedef int (*slug_store_check_fn)(const struct slug_info *info, void *arg, struct dy_error **err);

/* Copies the slug read from fd into the store, hashing it on the way:
 * written to a temporary file (an fd that is an unnamed file of the
 * store's filesystem, read from its start, is linked to that name
 * instead), fsynced, renamed to <id>.slug, the directory fsynced. Checks the slug (slug_inspect's checks) before it is
 * kept. An identical slug already stored is kept as it is. Fills *ret_info.
 * Returns 0 or < 0. */
int slug_store_put_fd(const char *state_dir, int fd, const struct slug_limits *limits,
                      struct slug_info *ret_info, struct dy_error **err);

/* As slug_store_put_fd, with check called before the slug is kept (may
 * be NULL). Beside <id>.slug, writes <id>.meta: the sizes and the Procfile
 * of the check, so a deploy needs not read the slug again
 * (slug_store_meta()). Errors name no host path. */
int slug_store_put_fd_checked(const char *state_dir, int fd, const struct slug_limits *limits,
                              slug_store_check_fn check, void *arg, struct slug_info *ret_info,
                              struct dy_error **err);

/* Where slug_store_put_fd_unpack() unpacks an upload as it checks it. */
struct slug_store_app_tree {
	const char *app;
	uid_t uid; /* the tree's owner */
	gid_t gid;
	uint64_t write_limit; /* bytes of file data the tree may take */
};

/* As slug_store_put_fd_checked, and in the same pass over the slug (it is
 * decompressed once) unpacks it for app_tree->app: into a temporary
 * directory beside the app's trees, renamed to
 * <state_dir>/apps/<app>/slugs/<id>/ (owned by uid:gid, as
 * slug_store_unpack makes it) once the slug is stored. The checks,
 * errors and *ret_info are those of slug_store_put_fd_checked. The tree
 * is best effort: when it would take more than write_limit bytes, or
 * writing it fails, it is dropped and the slug is still checked and
 * stored (a deploy unpacks it). *ret_unpacked (may be NULL) says
 * whether the tree is there. A refused slug leaves neither file nor
 * tree. */
int slug_store_put_fd_unpack(const char *state_dir, int fd, const struct slug_limits *limits,
                             slug_store_check_fn check, void *arg,
                             const struct slug_store_app_tree *app_tree, struct slug_info *ret_info,
                             bool *ret_unpacked, struct dy_error **err);

/* The check's result for stored slug id (sizes, entries, process types):
 * read from <id>.meta, or, for a slug stored without one, by reading the
 * slug again (then the meta file is written). The id is not filled.
 * Returns 0 (*ret_info: slug_info_clear) or < 0 (DY_E_NOT_FOUND when the
 * slug is not stored). */
int slug_store_meta(const char *state_dir, const char *id, const struct slug_limits *limits,
                    struct slug_info *ret_info, struct dy_error **err);

/* Records that app uploaded slug id: <state_dir>/apps/<app>/slugs/.upload-<id>,
 * whose mtime is the upload's time. The slug then counts against the app's
 * disk budget, and slug_store_gc() keeps it for SLUG_STORE_UPLOAD_GRACE_SEC.
 * Returns 0 or < 0. */
int slug_store_mark_upload(const char *state_dir, const char *app, const char *id,
                           struct dy_error **err);

/* The bytes app holds on disk: its unpacked trees and everything else
 * under <state_dir>/apps/<app>/slugs/, and each stored slug of ids[0..n)
 * or of its upload marks once. Returns 0 or < 0. */
int slug_store_app_usage(const char *state_dir, const char *app, const char *const *ids, size_t n,
                         uint64_t *ret, struct dy_error **err);

/* As slug_store_app_usage; *ret_spare (may be NULL) gets the bytes of
 * the app's unpacked trees of none of ids (with ids the slugs of the
 * app's releases: the trees its uploads made, not deployed yet). */
int slug_store_app_usage_ex(const char *state_dir, const char *app, const char *const *ids,
                            size_t n, uint64_t *ret, uint64_t *ret_spare, struct dy_error **err);

/* Removes app's unpacked trees but those of keep[0..nkeep). Returns the
 * number removed. */
int slug_store_remove_trees(const char *state_dir, const char *app, const char *const *keep,
                            size_t nkeep);

/* Removes app's unpacked trees but those of keep[0..nkeep) and those of
 * its uploads of the last SLUG_STORE_UPLOAD_GRACE_SEC that no release
 * uses yet (none of released[0..nreleased), the slugs of the app's
 * releases: a tree its upload made waits for its deploy), and its upload
 * marks older than SLUG_STORE_UPLOAD_GRACE_SEC. Returns the number of
 * trees removed. */
int slug_store_gc_app(const char *state_dir, const char *app, const char *const *keep, size_t nkeep,
                      const char *const *released, size_t nreleased);

/* Removes each stored slug (and its meta) that is none of referenced[0..n)
 * (the slugs of every app's releases), was stored more than
 * SLUG_STORE_UPLOAD_GRACE_SEC ago, and has no recent upload mark of any
 * app. Returns the number removed. */
int slug_store_gc(const char *state_dir, const char *const *referenced, size_t n);

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

/* The directory slug id is (or would be) unpacked into for app, whether
 * it exists or not (owned by the caller). Returns 0 or < 0. */
int slug_store_tree(const char *state_dir, const char *id, const char *app, char **ret,
                    struct dy_error **err);

/* As slug_store_unpack, with more: *ret_over_limit (when not NULL) is set
 * when the unpack was refused for limits->max_unpacked; errors name the
 * slug by its short id, never a host path. */
int slug_store_unpack_ex(const char *state_dir, const char *id, const char *app, uid_t uid,
                         gid_t gid, const struct slug_limits *limits, volatile sig_atomic_t *cancel,
                         bool *ret_over_limit, char **ret_dir, struct dy_error **err);

/* Removes leftovers of interrupted work (".*.unpack-*" and "*.tmp-*") in
 * the store. Returns the number removed. */
int slug_store_sweep(const char *state_dir);
