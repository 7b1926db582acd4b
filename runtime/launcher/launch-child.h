/* The child's half of launch_start() (launch.c), from clone3 to the exec
 * of dyno-init: hostname, mounts, its network namespace, eth0, pivot_root,
 * in step with the parent over the sync socket (sync.h). Internal to the
 * launcher. */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>

#include "runtime/launcher/cgroup.h"
#include "runtime/launcher/launch.h"

/* What both children need, prepared by the parent before clone (the
 * child works on its copy of the parent's memory). */
struct launch_child_common {
	int sock; /* the child's end of the sync socket */
	const struct cg *cg;
	struct in_addr addr, gw;
	int init_fd;
	int filter_fd;
	bool born_in_cgroup; /* CLONE_INTO_CGROUP | CLONE_NEWCGROUP done */
};

/* A start's child's. */
struct launch_child_args {
	struct launch_child_common c;
	const struct launch_params *p;
	int slug_fd;
	const char *sink_dir; /* host path, bound at MOUNTS_SINK_DIR */
	const char *sink_name;
	int env_fd; /* sealed memfd: the app's environment */
};

/* Runs in the child of clone3, on its copy of the parent's memory: sets
 * up the dyno and execs dyno-init with the sync socket, the seccomp
 * program and the environment as fds 3, 4 and 5. Never returns: a failure
 * goes to the parent as LAUNCH_SYNC_ERROR (errno and message) and the
 * child exits 1; so does a parent that gave up (closed its end). */
__attribute__((noreturn)) void launch_child_main(struct launch_child_args *a);

/* A pooled child's (launch-pool.c), prepared by the pool's thread. */
struct launch_pool_child_args {
	struct launch_child_common c;
	const char *id; /* hostname, /etc/hostname */
};

/* Runs in the child of clone3 of a pool's thread: builds what needs no
 * dyno (hostname, mounts but /app's part, network namespace, eth0 with
 * its address, cgroup namespace), sends LAUNCH_SYNC_POOL_READY and waits
 * for LAUNCH_SYNC_TAKE; then /app, scratch, /tmp, /dev/shm, the sink,
 * /etc/passwd, pivot_root, and execs dyno-init as launch_child_main()
 * does. Allocates nothing (the take is read into static memory). Never
 * returns; an end of stream while waiting (the pool ended) exits 1. */
__attribute__((noreturn)) void launch_pool_child_main(struct launch_pool_child_args *a);
