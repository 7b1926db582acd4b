/* File-system helpers shared by the state layer, the slug store and the
 * supervisor: directories made on the way, and files replaced atomically
 * (docs/design.md: temp file, fsync, rename, fsync dir). */
#pragma once

#include <stddef.h>
#include <sys/types.h>

#include "common/error.h"

/* Creates path and every missing parent with mode (existing ones are
 * fine). Returns 0 or < 0 naming the directory that could not be made. */
int dy_mkdir_p(const char *path, mode_t mode, struct dy_error **err);

/* As dy_mkdir_p(), then sets path's own mode to exactly mode (whatever the
 * umask, also when it existed); path must be a directory, not a link to
 * one. Returns 0 or < 0. */
int dy_dir_mode(const char *path, mode_t mode, struct dy_error **err);

/* fsync()s the directory path, so a rename in it survives a crash.
 * Returns 0 or < 0. */
int dy_fsync_dir(const char *path, struct dy_error **err);

/* Replaces path with len bytes of data: written to a temporary sibling
 * ".<name>.tmp-XXXXXX" with mode, fsynced, renamed over path, and the
 * directory fsynced. A failure leaves path as it was and no temporary
 * file. Returns 0 or < 0 naming path. */
int dy_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                         struct dy_error **err);

/* As dy_write_file_atomic(), the file's group set to gid first
 * ((gid_t)-1: the caller's). */
int dy_write_file_atomic_as(const char *path, const void *data, size_t len, mode_t mode, gid_t gid,
                            struct dy_error **err);

/* As dy_write_file_atomic_as(), without the fsyncs: a reader never sees
 * half a file, but a power loss may take the new content back. For files
 * rebuilt from durable state at start-up (routes.json): two fsyncs cost
 * milliseconds on a busy disk, on every change. */
int dy_write_file_replace_as(const char *path, const void *data, size_t len, mode_t mode,
                             gid_t gid, struct dy_error **err);

/* Writes the n bytes at p to the blocking fd, retrying short writes and
 * EINTR. Returns 0, or -1 with errno set (EIO for a write of nothing). */
int dy_write_all(int fd, const void *p, size_t n);

/* Removes the temporary files dy_write_file_atomic() leaves in dir when
 * its process dies mid-write (".NAME.tmp-XXXXXX", regular files). Only
 * for a directory no writer of this process uses at the moment (start-up).
 * Returns how many. */
int dy_remove_stale_tmp(const char *dir);
