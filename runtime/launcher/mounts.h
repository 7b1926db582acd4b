/* The dyno's file system (docs/design.md, "A dyno, from inside"), built in the
 * child's own mount namespace, so that nothing is ever mounted on the host:
 *
 *   /            tmpfs, read-only once built
 *   /usr         the stack: the host's /usr, bound read-only
 *   /bin /lib... Debian's merged-/usr links, recreated (not bound)
 *   /etc         a filtered copy: an allowlist of the host's files, read-only,
 *                with a passwd/group naming the app's uid and a hostname
 *   /app         overlay: lower the unpacked slug, upper in the scratch tmpfs
 *                (a build dyno: its build directory, bound read-write)
 *   binds        a build dyno's /cache, /buildpacks, ... (launch_bind)
 *   /tmp         in the scratch tmpfs (size: the dyno's memory quota)
 *   /proc        the dyno's own (new PID namespace); /proc/sys read-only
 *   /dev         tmpfs: null zero full random urandom tty, devpts, ptmx, shm
 *   /sys/fs/cgroup  the dyno's own cgroup, read-only
 *   /.init/sink  the log sink's directory, read-only, under a 0700
 *                directory of root's: for init only, the app cannot enter
 * then pivot_root. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"
#include "runtime/launcher/cgroup.h"

struct launch_bind;

struct mounts_params {
	const char *slug_dir; /* the unpacked slug directory (host path) */
	bool app_rw;          /* /app: slug_dir bound read-write, no overlay */
	const struct launch_bind *binds; /* then these, in order */
	size_t nbinds;
	uid_t uid;
	gid_t gid;
	uint64_t tmpfs_size; /* bytes for the scratch tmpfs and /dev/shm */
	const struct cg *cg; /* the dyno's cgroup, bound at /sys/fs/cgroup */
	const char *hostname;
	const char *sink_dir; /* the log sink's directory (host path), or NULL */
};

/* Where the new root is built: any directory of the host will do, since the
 * tmpfs lands in our private mount namespace only. What it hides (the
 * slug's path may be under it) is reached through an fd opened before:
 * mounts_prepare() does; mounts_app() after mounts_base() cannot (a
 * pooled dyno: its slug and sink must not be under it). */
#define MOUNTS_NEWROOT "/mnt"

/* Where init finds the sink's directory inside the dyno. */
#define MOUNTS_SINK_DIR "/.init/sink"

/* The tree, built in three calls, in this order, by a launcher whose
 * child mounts while the parent creates the cgroup. They run in the child,
 * as root, in its new mount and PID namespaces; errors name the path as
 * the dyno sees it: "mount /app: Invalid argument". Each returns 0 or < 0.
 *   mounts_prepare(): everything but /etc and /sys/fs/cgroup (p->cg is
 *     not used; what it allocates is a few KiB);
 *   mounts_etc(): /etc's files: copies, so tmpfs pages (~228 KiB), which a
 *     v1 memory cgroup charges to whoever writes them: call it once the
 *     child is in the dyno's memory cgroup;
 *   mounts_finish(), once the cgroup exists: binds it, makes / read-only
 *     and pivots. */
int mounts_prepare(const struct mounts_params *p, struct dy_error **err);
int mounts_etc(const struct mounts_params *p, struct dy_error **err);
int mounts_finish(const struct mounts_params *p, struct dy_error **err);

/* The same tree in the halves a pooled child (launch-pool.c) builds ahead
 * and at take, in this order:
 *   ahead: mounts_base() (what needs nothing of the dyno: the root, /usr,
 *     /proc, /dev but its shm), mounts_etc_base() (/etc's copies,
 *     hostname, hosts: p->hostname), mounts_cgroup() (p->cg);
 *   at take: mounts_app() (scratch tmpfs of p->tmpfs_size, /app from
 *     p->slug_dir, /tmp, /dev/shm, the sink, binds), mounts_etc_user()
 *     (passwd and group naming p->uid), mounts_pivot() (/ read-only,
 *     pivot_root).
 * mounts_prepare() is mounts_base() + mounts_app(); mounts_etc() is
 * mounts_etc_base() + mounts_etc_user(); mounts_finish() is
 * mounts_cgroup() + mounts_pivot(). */
int mounts_base(struct dy_error **err);

/* A pooled dyno's (launch-pool.c), which pivots ahead and unmounts
 * nothing at take:
 *   ahead, after mounts_base(), mounts_etc_base(), mounts_cgroup():
 *     mounts_pool_pivot(): /.init/slug, /.init/scratch, the sink's
 *     directory made, pivot_root; / stays writable;
 *   at take, in the new root: mounts_pool_take(): slug_fd and sink_fd
 *     (detached mounts the launcher made with open_tree(OPEN_TREE_CLONE),
 *     read-only; sink_fd -1: none) moved onto /.init/slug and the sink's
 *     directory, the scratch tmpfs of p->tmpfs_size at /.init/scratch,
 *     /app (overlay), /tmp, /dev/shm, /etc/passwd and group, / read-only.
 *     The slug and the scratch stay mounted under /.init (0700, root's). */
int mounts_pool_pivot(struct dy_error **err);
int mounts_pool_take(const struct mounts_params *p, int slug_fd, int sink_fd,
                     struct dy_error **err);
int mounts_app(const struct mounts_params *p, struct dy_error **err);
int mounts_etc_base(const struct mounts_params *p, struct dy_error **err);
int mounts_etc_user(const struct mounts_params *p, struct dy_error **err);
int mounts_cgroup(const struct mounts_params *p, struct dy_error **err);
int mounts_pivot(struct dy_error **err);
