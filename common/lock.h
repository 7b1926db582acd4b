/* Whole-process locks on directories (flock(2) on a directory fd): the
 * lock lives as long as the fd, goes with the process however it dies, and
 * leaves no file behind. dynod holds one on its state directory and one on
 * its cgroup parent, so that a second dynod on either refuses to start and
 * names the first. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

#include "common/error.h"

/* Opens the directory path (O_CLOEXEC, not following a last-component
 * link) and takes an exclusive lock on it without waiting. Returns 0 and
 * the fd holding the lock in *ret_fd (the caller's, to keep open while it
 * holds the lock), -EWOULDBLOCK when another process holds it (its pid in
 * *ret_holder, 0 when it cannot be told), or another < 0 with err. */
int dy_lock_dir(const char *path, int *ret_fd, pid_t *ret_holder, struct dy_error **err);

/* " (pid N: its command line)" for a message naming the holder pid, or ""
 * when pid is 0. Returns buf. */
const char *dy_lock_holder_text(pid_t pid, char *buf, size_t size);

/* The pid of a process holding a flock on the file open at fd, other than
 * the caller, from /proc/locks; 0 when none is found. */
pid_t dy_lock_holder(int fd);
