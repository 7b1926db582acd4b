/* dyno-init: the dyno's PID 1 (see init.h), a small static executable
 * installed beside dynod. The launcher's child execs it through an fd
 * opened before pivot_root (execveat(AT_EMPTY_PATH)), once the dyno's
 * namespaces, cgroup, network and file system are in place, so that a
 * dyno's init holds nothing of the launcher's memory (dynod's) and keeps
 * running across a dynod upgrade.
 *
 *   dyno-init NAME UID GID LOG_BUFFER SINK_PATH COMMAND ATTACH   (environment: empty)
 *   fd 3: the launcher's sync socket (sync.h): init waits for
 *         LAUNCH_SYNC_RULES_READY (the dyno's network rules are in place;
 *         the launcher makes them while init starts) before it starts the
 *         app, then sends LAUNCH_SYNC_APP_EXECED once the command has
 *         exec'd, or LAUNCH_SYNC_ERROR (errno and message)
 *   fd 4: the compiled seccomp program (seccomp_policy_fd())
 *   fd 5: a sealed memfd with the app's environment, "K=V" strings each
 *         ending in a NUL
 *   fd 6: with ATTACH "tty" or "pipe", the attached client's connection
 *         (docs/api.md, "Attach"): the app's stdio goes there, through a
 *         pty made inside the dyno or through pipes; ATTACH empty: none
 * SINK_PATH is the sink's path as init sees it (empty: no sink).
 *
 *   dyno-init pool                                  (a pooled dyno)
 *   fd 3, fd 4 as above; exec'd by a pool's child (launch-pool.c) before
 *   the dyno is known, in its new root: sends LAUNCH_SYNC_POOL_READY, waits for
 *   LAUNCH_SYNC_TAKE (name, uid, gid, sizes, the sink's name, command;
 *   the env memfd, the slug's and the sink's directories as detached
 *   read-only mounts with it), builds /app, scratch, /tmp, /dev/shm, the
 *   sink and /etc/passwd in its new root (mounts_pool_take()), then goes
 *   on as above. The exec and the pivot are then off the start path, and
 *   a waiting entry holds nothing of the launcher's memory.
 * init runs as uid 0 (with CAP_KILL only once the app runs): it is exec'd
 * with an empty environment, so that nothing of the tenant's (LD_*,
 * GLIBC_TUNABLES, ...) reaches a process of uid 0; the app's environment
 * is only data to it, handed to the app's execve().
 * Not meant to be run by hand. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "runtime/launcher/init.h"
#include "runtime/launcher/mounts.h"
#include "runtime/launcher/privs.h"
#include "runtime/launcher/seccomp-filter.h"
#include "runtime/launcher/sync.h"

#define SYNC_FD   3
#define FILTER_FD 4
#define ENV_FD    5
#define ATTACH_FD 6
#define ENV_MAX   (16u << 20)

/* Reports e to the launcher (its errno with it) and exits. */
static __attribute__((noreturn)) void fail(struct dy_error *e)
{
	launch_sync_send_error(SYNC_FD, e);
	_exit(1);
}

/* The app's environment from the memfd: NUL-terminated strings, the
 * array and the strings in one allocation (kept for the app's exec). */
static int read_env(int fd, char ***ret, struct dy_error **err)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return dy_error_errno(err, errno, "environment");
	if (st.st_size < 0 || (uint64_t)st.st_size > ENV_MAX)
		return dy_error(err, "environment: %lld bytes, over %u", (long long)st.st_size,
		                ENV_MAX);
	size_t size = (size_t)st.st_size;
	char *data = malloc(size + 1);
	if (!data)
		return dy_error_errno(err, ENOMEM, "environment");
	size_t got = 0;
	while (got < size) {
		ssize_t n = pread(fd, data + got, size - got, (off_t)got);
		if (n <= 0) {
			free(data);
			return n < 0 ? dy_error_errno(err, errno, "environment")
			             : dy_error(err, "environment: short read");
		}
		got += (size_t)n;
	}
	data[size] = '\0';
	size_t count = 0;
	for (size_t i = 0; i < size; i++)
		count += data[i] == '\0';
	char **env = calloc(count + 1, sizeof(*env));
	if (!env) {
		free(data);
		return dy_error_errno(err, ENOMEM, "environment");
	}
	size_t k = 0;
	for (size_t i = 0; i < size && k < count; i += strlen(data + i) + 1)
		env[k++] = data + i;
	*ret = env;
	return 0;
}

static union {
	struct launch_take t;
	char bytes[LAUNCH_TAKE_MAX];
} tk;

/* A pooled dyno's take: waits for it, builds what needs the dyno, pivots;
 * argv[0..7] as the launcher would have exec'd init with, the env memfd
 * at ENV_FD. */
static int take(char **argv, struct dy_error **err)
{
	if (launch_sync_send(SYNC_FD, LAUNCH_SYNC_POOL_READY, NULL) < 0)
		_exit(1);
	const char *str[_LAUNCH_TAKE_N];
	int fds[_LAUNCH_TAKE_FD_N];
	int r = launch_sync_recv_take(SYNC_FD, &tk.t, sizeof(tk), str, fds, err);
	if (r == 0)
		_exit(1); /* the pool ended */
	if (r < 0)
		return r;
	int env_fd = fds[LAUNCH_TAKE_FD_ENV];
	if (env_fd < 0 || fds[LAUNCH_TAKE_FD_SLUG] < 0 || !str[LAUNCH_TAKE_NAME] ||
	    !str[LAUNCH_TAKE_COMMAND] ||
	    (str[LAUNCH_TAKE_SINK_NAME] && fds[LAUNCH_TAKE_FD_SINK] < 0))
		return dy_error_errno(err, EPROTO,
		                      "sync: a take without its slug, name, command, env or sink");
	if (env_fd != ENV_FD) {
		if (dup2(env_fd, ENV_FD) < 0)
			return dy_error_errno(err, errno, "dup2");
		close(env_fd);
	}
	struct mounts_params mp = {
	    .uid = tk.t.uid,
	    .gid = tk.t.gid,
	    .tmpfs_size = tk.t.tmpfs_size,
	};
	r = mounts_pool_take(&mp, fds[LAUNCH_TAKE_FD_SLUG], fds[LAUNCH_TAKE_FD_SINK], err);
	close(fds[LAUNCH_TAKE_FD_SLUG]);
	if (fds[LAUNCH_TAKE_FD_SINK] >= 0)
		close(fds[LAUNCH_TAKE_FD_SINK]);
	if (r < 0)
		return r;
	static char uid[16], gid[16], buffer[32], sink[256];
	snprintf(uid, sizeof(uid), "%u", (unsigned)tk.t.uid);
	snprintf(gid, sizeof(gid), "%u", (unsigned)tk.t.gid);
	snprintf(buffer, sizeof(buffer), "%llu",
	         (unsigned long long)(tk.t.log_buffer ? tk.t.log_buffer : 1u << 20));
	if (str[LAUNCH_TAKE_SINK_NAME])
		snprintf(sink, sizeof(sink), MOUNTS_SINK_DIR "/%s", str[LAUNCH_TAKE_SINK_NAME]);
	char *v[] = {"dyno-init", (char *)str[LAUNCH_TAKE_NAME],    uid, gid, buffer,
	             sink,        (char *)str[LAUNCH_TAKE_COMMAND], "",  NULL};
	memcpy(argv, v, sizeof(v));
	return 0;
}

int main(int argc, char **argv)
{
	struct dy_error *e = NULL;
	/* its name from the start: an exec through an fd names a process
	 * after the fd's number on older kernels ("100"), and launch_adopt()
	 * checks the name */
	prctl(PR_SET_NAME, "dyno-init", 0, 0, 0);
	char *pool_argv[9];
	if (argc == 2 && strcmp(argv[1], "pool") == 0 && getpid() == 1) {
		argv = pool_argv;
		argc = 8;
		if (take(argv, &e) < 0)
			fail(e);
	}
	if (argc != 8 || getpid() != 1) {
		fprintf(stderr, "dyno-init: started by the dyno launcher only\n");
		return 127;
	}
	/* none of these may reach the app */
	for (int fd = SYNC_FD; fd <= ENV_FD; fd++)
		fcntl(fd, F_SETFD, FD_CLOEXEC);
	struct sock_fprog filter;
	if (seccomp_policy_read(FILTER_FD, &filter, &e) < 0)
		fail(e);
	close(FILTER_FD);
	char **envp = NULL;
	if (read_env(ENV_FD, &envp, &e) < 0)
		fail(e);
	close(ENV_FD);
	int r = launch_sync_recv(SYNC_FD, 0, LAUNCH_SYNC_RULES_READY, &e);
	if (r < 0)
		fail(e); /* a message out of order: said so, to the launcher */
	if (r == 0)
		_exit(1); /* the launcher gave up: it kills the dyno */
	struct init_params ip = {
	    .name = argv[1],
	    .uid = (uid_t)strtoul(argv[2], NULL, 10),
	    .gid = (gid_t)strtoul(argv[3], NULL, 10),
	    .log_buffer = (size_t)strtoull(argv[4], NULL, 10),
	    .sink_path = argv[5][0] ? argv[5] : NULL,
	    .command = argv[6],
	    .envp = envp,
	    .filter = &filter,
	    .attach_fd = argv[7][0] ? ATTACH_FD : -1,
	    .attach_tty = strcmp(argv[7], "tty") == 0,
	};
	if (ip.attach_fd >= 0)
		fcntl(ATTACH_FD, F_SETFD, FD_CLOEXEC);
	struct init_state *st = NULL;
	if (init_start(&ip, &st, &e) < 0)
		fail(e);
	if (privs_restrict_init(&e) < 0) {
		dy_error_prefix(&e, "init");
		fail(e);
	}
	/* init's own stdio leads nowhere: the launcher may go away */
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		close(null);
	}
	if (launch_sync_send(SYNC_FD, LAUNCH_SYNC_APP_EXECED, NULL) < 0)
		_exit(1); /* the launcher is gone: it kills the dyno */
	close(SYNC_FD);
	init_run(st);
}
