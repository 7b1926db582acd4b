/* The child's half of launch_start(); see launch-child.h. */
#include "runtime/launcher/launch-child.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/macro.h"
#include "runtime/launcher/mounts.h"
#include "runtime/launcher/net.h"
#include "runtime/launcher/sync.h"

/* Reports e to the parent (its errno with it) and exits. */
static __attribute__((noreturn)) void child_fail(int sock, struct dy_error *e)
{
	launch_sync_send_error(sock, e);
	_exit(1);
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* Closes every fd from 3 up but the ones in keep, before anything of the
 * dyno is set up: the caller's fds (listening sockets, the API, other
 * dynos' sockets) must not reach the dyno, O_CLOEXEC or not. */
static int close_others(int *keep, size_t n, struct dy_error **err)
{
	qsort(keep, n, sizeof(*keep), cmp_int);
	unsigned int from = 3;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && keep[i] < (int)from)
			continue;
		unsigned int to = i < n ? (unsigned int)keep[i] - 1 : ~0U;
		if (to >= from && syscall(SYS_close_range, from, to, 0) < 0)
			return dy_error_errno(err, errno, "close_range %u..%u", from, to);
		if (i < n)
			from = (unsigned int)keep[i] + 1;
	}
	return 0;
}

/* Waits for the parent's go-ahead expect. A parent that gave up (closed
 * its end) ends the child; anything else is refused, and said so. */
static void wait_go(int sock, enum launch_sync_type expect)
{
	struct dy_error *e = NULL;
	int r = launch_sync_recv(sock, 0, expect, &e);
	if (r < 0)
		child_fail(sock, e);
	if (r == 0)
		_exit(1);
}

/* What dyno-init is exec'd with. */
struct exec_args {
	int sock, filter_fd, env_fd, attach_fd, init_fd;
	const char *name;
	uid_t uid;
	gid_t gid;
	size_t log_buffer;
	const char *sink_name;
	const char *command;
	const char *attach; /* "", "tty", "pipe" */
};

static __attribute__((noreturn)) void exec_init(const struct exec_args *x)
{
	struct dy_error *e = NULL;
	/* hand over to dyno-init with its fds at 3, 4, 5 (6: the attached
	 * client): first out of the way (any of them may sit at 3..6), then
	 * into place (dup2 clears O_CLOEXEC) */
	int from[4] = {x->sock, x->filter_fd, x->env_fd, x->attach_fd}, high[4];
	int init_fd = fcntl(x->init_fd, F_DUPFD_CLOEXEC, 100);
	if (init_fd < 0) {
		dy_error_errno(&e, errno, "dup");
		child_fail(x->sock, e);
	}
	for (int i = 0; i < 4; i++) {
		high[i] = from[i] < 0 ? -1 : fcntl(from[i], F_DUPFD_CLOEXEC, 100);
		if (from[i] >= 0 && high[i] < 0) {
			dy_error_errno(&e, errno, "dup");
			child_fail(x->sock, e);
		}
	}
	for (int i = 0; i < 4; i++) {
		if (high[i] >= 0 && dup2(high[i], 3 + i) < 0) {
			dy_error_errno(&e, errno, "dup2");
			child_fail(high[0], e);
		}
		if (high[i] < 0)
			close(3 + i);
	}
	char uid[16], gid[16], buffer[32], sink[256] = "";
	snprintf(uid, sizeof(uid), "%u", (unsigned)x->uid);
	snprintf(gid, sizeof(gid), "%u", (unsigned)x->gid);
	snprintf(buffer, sizeof(buffer), "%zu", x->log_buffer ? x->log_buffer : (size_t)1 << 20);
	if (x->sink_name)
		snprintf(sink, sizeof(sink), MOUNTS_SINK_DIR "/%s", x->sink_name);
	char *argv[] = {"dyno-init",        (char *)x->name,   uid, gid, buffer, sink,
	                (char *)x->command, (char *)x->attach, NULL};
	/* an empty environment: see dyno-init.c */
	char *no_env[] = {NULL};
	syscall(SYS_execveat, init_fd, "", argv, no_env, AT_EMPTY_PATH);
	dy_error_errno(&e, errno, "exec dyno-init");
	child_fail(3, e);
}

/* The part of the set-up both children share, from the cgroup's join to
 * eth0: the network namespace once in the dyno's memory cgroup, /etc,
 * lo, /sys/fs/cgroup (and, not pooled, the pivot), the cgroup namespace,
 * eth0. A pooled child's /etc waits for the app's uid (mounts.h). */
static void child_set_up(int sock, bool born_in_cgroup, const struct mounts_params *mp, bool pooled,
                         struct in_addr addr, struct in_addr gw)
{
	struct dy_error *e = NULL;
	if (!born_in_cgroup)
		wait_go(sock, LAUNCH_SYNC_CGROUP_JOINED);
	if (unshare(CLONE_NEWNET) < 0) {
		dy_error_errno(&e, errno, "unshare the network namespace");
		child_fail(sock, e);
	}
	if (launch_sync_send(sock, LAUNCH_SYNC_NETNS_MADE, NULL) < 0)
		_exit(1); /* the parent is gone */
	/* /etc's copies: tmpfs pages, the dyno's to pay for (after
	 * LAUNCH_SYNC_CGROUP_JOINED), made while the parent builds the veth */
	if ((pooled ? mounts_etc_base(mp, &e) : mounts_etc(mp, &e)) < 0)
		child_fail(sock, e);
	/* lo up, IPv6 off: through the host's /proc, still there before
	 * pivot_root (its sysctls are the opener's network namespace's) */
	if (net_dyno_early(&e) < 0) {
		dy_error_prefix(&e, "network");
		child_fail(sock, e);
	}
	/* the cgroup's directories exist since LAUNCH_SYNC_CGROUP_JOINED:
	 * bind them (not pooled: and pivot) */
	if ((pooled ? mounts_cgroup(mp, &e) : mounts_finish(mp, &e)) < 0)
		child_fail(sock, e);

	/* wait until the parent has moved us into every controller's cgroup
	 * and given us eth0 */
	wait_go(sock, LAUNCH_SYNC_VETH_READY);
	/* now the cgroup namespace is rooted at the dyno's own cgroup */
	if (!born_in_cgroup && unshare(CLONE_NEWCGROUP) < 0) {
		dy_error_errno(&e, errno, "unshare the cgroup namespace");
		child_fail(sock, e);
	}
	if (net_dyno_setup(addr, gw, &e) < 0) {
		dy_error_prefix(&e, "network");
		child_fail(sock, e);
	}
}

/* What both children do first: close what is not theirs, their own
 * session, init's name, the hostname. */
static void child_begin(int *keep, size_t nkeep, int sock, const char *hostname)
{
	struct dy_error *e = NULL;
	if (close_others(keep, nkeep, &e) < 0)
		child_fail(sock, e);
	/* its own session: a dyno outlives its launcher (dynod's crash) */
	setsid();
	prctl(PR_SET_NAME, "dyno-init", 0, 0, 0);
	if (sethostname(hostname, strlen(hostname)) < 0) {
		dy_error_errno(&e, errno, "hostname %s", hostname);
		child_fail(sock, e);
	}
}

void launch_child_main(struct launch_child_args *a)
{
	struct dy_error *e = NULL;
	const struct launch_params *p = a->p;
	int keep[] = {a->c.sock,      a->slug_fd, a->c.init_fd,
	              a->c.filter_fd, a->env_fd,  p->attach ? p->attach_fd : a->c.sock};
	child_begin(keep, ELEMENTSOF(keep), a->c.sock, p->id);

	/* What needs nothing of the parent is done while the parent makes
	 * the cgroup (v1), moves us into it, makes the veth and the rules:
	 * the two halves of a start overlap. First the mounts: the few KiB
	 * of kernel memory of the new root are charged to the caller's
	 * memory cgroup on v1 (freed with the dyno's mount namespace). The
	 * network namespace (about 85 KiB of kernel memory, 0.5 ms) only once
	 * we are in our own cgroup (LAUNCH_SYNC_CGROUP_JOINED, or born
	 * there): it is the dyno's to pay for, not the caller's. */
	struct mounts_params mp = {
	    .slug_dir = p->slug_dir,
	    .app_rw = p->app_rw,
	    .binds = p->binds,
	    .nbinds = p->nbinds,
	    .uid = p->uid,
	    .gid = p->gid,
	    .tmpfs_size = p->limits.memory,
	    .cg = a->c.cg,
	    .hostname = p->id,
	    .sink_dir = a->sink_dir,
	};
	if (mounts_prepare(&mp, &e) < 0)
		child_fail(a->c.sock, e);
	close(a->slug_fd); /* only held to check the path before clone */
	child_set_up(a->c.sock, a->c.born_in_cgroup, &mp, false, a->c.addr, a->c.gw);

	char *attach = !p->attach ? "" : p->attach_tty ? "tty" : "pipe";
	exec_init(&(struct exec_args){.sock = a->c.sock,
	                              .filter_fd = a->c.filter_fd,
	                              .env_fd = a->env_fd,
	                              .attach_fd = p->attach ? p->attach_fd : -1,
	                              .init_fd = a->c.init_fd,
	                              .name = p->name,
	                              .uid = p->uid,
	                              .gid = p->gid,
	                              .log_buffer = p->log_buffer,
	                              .sink_name = a->sink_name,
	                              .command = p->command,
	                              .attach = attach});
}

void launch_pool_child_main(struct launch_pool_child_args *a)
{
	struct dy_error *e = NULL;
	int keep[] = {a->c.sock, a->c.init_fd, a->c.filter_fd};
	child_begin(keep, ELEMENTSOF(keep), a->c.sock, a->id);
	/* the pool's thread blocks every signal: dyno-init starts with none
	 * blocked */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* ahead: what needs nothing of the dyno (mounts.h) */
	struct mounts_params mp = {.cg = a->c.cg, .hostname = a->id};
	if (mounts_base(&e) < 0)
		child_fail(a->c.sock, e);
	child_set_up(a->c.sock, a->c.born_in_cgroup, &mp, true, a->c.addr, a->c.gw);
	/* the new root now, writable until the take: nothing is unmounted
	 * then (mounts.h) */
	if (mounts_pool_pivot(&e) < 0)
		child_fail(a->c.sock, e);
	/* dyno-init waits for the take (see dyno-init.c, "pool") */
	int from[2] = {a->c.sock, a->c.filter_fd}, high[2];
	int init_fd = fcntl(a->c.init_fd, F_DUPFD_CLOEXEC, 100);
	for (int i = 0; i < 2; i++) {
		high[i] = fcntl(from[i], F_DUPFD_CLOEXEC, 100);
		if (high[i] < 0 || init_fd < 0) {
			dy_error_errno(&e, errno, "dup");
			child_fail(a->c.sock, e);
		}
	}
	for (int i = 0; i < 2; i++)
		if (dup2(high[i], 3 + i) < 0) {
			dy_error_errno(&e, errno, "dup2");
			child_fail(high[0], e);
		}
	char *argv[] = {"dyno-init", "pool", NULL};
	char *no_env[] = {NULL};
	syscall(SYS_execveat, init_fd, "", argv, no_env, AT_EMPTY_PATH);
	dy_error_errno(&e, errno, "exec dyno-init");
	child_fail(3, e);
}
