/* The dyno's init, PID 1 of its PID namespace (docs/design.md, "What survives
 * what" and "A dyno, from inside").
 *
 * It runs as the small static executable dyno-init (dyno-init.c), which
 * the launcher's child execs through an fd once the dyno's namespaces,
 * cgroup, network and file system are in place: an init holds nothing of
 * the launcher's (dynod's) memory and outlives a dynod upgrade.
 * It forks the app, which drops to the app's uid,
 * loses every capability, sets no_new_privs, loads the seccomp policy and
 * runs `bash -c "<command>"` (sh when bash is absent) from /app after
 * sourcing /app/.profile.d/\*.sh and /app/.profile. Then init:
 *   - forwards SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH,
 *     SIGCONT and SIGALRM to every process of the dyno (kill(-1));
 *   - reaps every zombie (orphans are re-parented to it);
 *   - relays the app's stdout and stderr, line by line (a line over 10000
 *     bytes is split), as datagrams "<RFC 3339 UTC time> app[<dyno>]: <line>"
 *     to the log sink, a Unix datagram socket given by path; lines that
 *     had to wait go out packed, several per datagram joined by '\n'. Sends never
 *     block: while the sink is away (absent, refusing, or its queue full)
 *     lines wait in a bounded buffer (oldest dropped first, the count sent
 *     as "dyno[<dyno>]: Error L10 (Output buffer overflow): N log lines
 *     dropped" when the sink is back), retried every 500 ms;
 *   - attached (attach_fd, a one-off run by `dyno run`), none of that:
 *     the app's stdin, stdout and stderr are a pty made here, in the
 *     dyno's own devpts (attach_tty), or pipes, and init speaks the
 *     attach protocol (common/attach.h) with the client over attach_fd:
 *     its input and terminal size to the app, signals to every process,
 *     the output back, the exit status last; the client gone is SIGHUP;
 *   - exits with the app's main process: its exit code, or 128 + signal.
 *     The kernel then kills whatever is left in the PID namespace. While
 *     stopping (SIGTERM or SIGINT forwarded), it waits for every process
 *     to exit first (the launcher's SIGKILL after the grace bounds it).
 * Init stays uid 0 of the host with CAP_KILL only (to signal the app's
 * uid), no_new_privs and not dumpable. It holds no fd of the host's file
 * system: it reaches the sink through the sink's directory, bound by the
 * launcher under /.init (mode 0700, root's: the app cannot enter), and it
 * runs with an empty environment (the app's comes in a sealed memfd, see
 * dyno-init.c), so nothing of the tenant's reaches a process of uid 0. */
#pragma once

#include <linux/filter.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/error.h"

#define INIT_LINE_MAX 10000
/* a datagram to the sink: a line with its prefix, or queued lines packed
 * (joined by '\n'); the intake reads up to 16 KiB (LGI_DGRAM_MAX) */
#define INIT_DGRAM_MAX 16000

struct init_params {
	const char *name; /* DYNO, e.g. web.1 */
	const char *command;
	char *const *envp; /* the app's whole environment */
	uid_t uid;
	gid_t gid;
	const struct sock_fprog *filter;
	const char *sink_path; /* the sink's path as init sees it, or NULL */
	size_t log_buffer;     /* bytes kept while the sink is away */
	int attach_fd;         /* the attached client (common/attach.h), or -1 */
	bool attach_tty;       /* attached: the app's stdio is a pty */
};

struct init_state;

/* Starts the app and waits until it has exec'd. Returns 0 and the state
 * in *ret, or < 0 with the app's set-up error ("exec bash: ...",
 * "setresuid 10000: ...", its errno in errnum: the app reports it as a
 * LAUNCH_SYNC_ERROR, sync.h). Runs as PID 1, after the mounts. */
int init_start(const struct init_params *p, struct init_state **ret, struct dy_error **err);

/* The loop. Never returns: exits with the app's status. */
__attribute__((noreturn)) void init_run(struct init_state *st);
