/* dyno-init: the dyno's PID 1 (see init.h), a small static executable
 * installed beside dynod. The launcher's child execs it through an fd
 * opened before pivot_root (execveat(AT_EMPTY_PATH)), once the dyno's
 * namespaces, cgroup, network and file system are in place, so that a
 * dyno's init holds nothing of the launcher's memory (dynod's) and keeps
 * running across a dynod upgrade.
 *
 *   dyno-init NAME UID GID LOG_BUFFER SINK_NAME COMMAND   (environment: the app's)
 *   fd 3: the launcher's sync socket: "O" once the command has exec'd, or
 *         "E<message>"
 *   fd 4: O_PATH directory of the log sink (when SINK_NAME is not empty)
 *   fd 5: the compiled seccomp program (seccomp_policy_fd())
 * Not meant to be run by hand. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runtime/init.h"
#include "runtime/privs.h"
#include "runtime/seccomp-filter.h"

#define SYNC_FD   3
#define SINK_FD   4
#define FILTER_FD 5

static __attribute__((noreturn)) void fail(struct dy_error *e)
{
	char buf[4096];
	int n = snprintf(buf, sizeof(buf), "E%s", dy_error_msg(e));
	if (n >= (int)sizeof(buf))
		n = sizeof(buf) - 1;
	ssize_t w = send(SYNC_FD, buf, (size_t)n, MSG_NOSIGNAL);
	(void)w;
	_exit(1);
}

int main(int argc, char **argv, char **envp)
{
	struct dy_error *e = NULL;
	if (argc != 7 || getpid() != 1) {
		fprintf(stderr, "dyno-init: started by the dyno launcher only\n");
		return 127;
	}
	/* none of these may reach the app */
	for (int fd = SYNC_FD; fd <= FILTER_FD; fd++)
		fcntl(fd, F_SETFD, FD_CLOEXEC);
	struct sock_fprog filter;
	if (seccomp_policy_read(FILTER_FD, &filter, &e) < 0)
		fail(e);
	close(FILTER_FD);
	struct init_params ip = {
	    .name = argv[1],
	    .uid = (uid_t)strtoul(argv[2], NULL, 10),
	    .gid = (gid_t)strtoul(argv[3], NULL, 10),
	    .log_buffer = (size_t)strtoull(argv[4], NULL, 10),
	    .sink_dirfd = argv[5][0] ? SINK_FD : -1,
	    .sink_name = argv[5],
	    .command = argv[6],
	    .envp = envp,
	    .filter = &filter,
	};
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
	if (send(SYNC_FD, "O", 1, MSG_NOSIGNAL) != 1)
		_exit(1);
	close(SYNC_FD);
	init_run(st);
}
