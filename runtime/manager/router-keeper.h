/* The router keeper: dynod runs dyno-router unless router.external
 * (docs/design.md, "What survives what"; docs/operating.md, "Router under
 * dynod").
 *
 * dynod opens and holds the listening sockets (every router.listen address,
 * then router.admin_listen) and hands them to the router as fds 3.. with
 * LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES ("http"..., "admin"). Because
 * dynod keeps them open, a router that dies refuses no connection: clients
 * wait in the backlog until the next router, started at once (a router that
 * dies within RKEEP_CRASH_USEC of its start waits RKEEP_BACKOFF_FIRST,
 * doubling to RKEEP_BACKOFF_MAX).
 *
 * The router lives in a session of its own and does not die with dynod. Its
 * pid, its start time (field 22 of /proc/PID/stat) and its listening fds are
 * in <state_dir>/router.pid; a dynod started again checks them (pid, start
 * time, comm), opens a pidfd, takes the sockets back with pidfd_getfd(2) and
 * watches the router as if it had started it. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/config.h"
#include "common/error.h"

struct loop;
struct rkeep;

#define RKEEP_PIDFILE       "router.pid"
#define RKEEP_CRASH_USEC    (1000ull * 1000)
#define RKEEP_BACKOFF_FIRST (1000ull * 1000)
#define RKEEP_BACKOFF_MAX   (30ull * 1000 * 1000)
#define RKEEP_STOP_GRACE    (12ull * 1000 * 1000) /* the router finishes requests for 10 s */
#define RKEEP_MAX_FDS       (CONFIG_MAX_LISTEN + 1)

/* What router.pid says. */
struct rkeep_pidfile {
	pid_t pid;
	unsigned long long start_time; /* clock ticks after boot */
	int fds[RKEEP_MAX_FDS];        /* in the router: router.listen's, then admin */
	size_t nfds;
};

/* Formats p as router.pid's one line ("PID START FD...\n") into buf.
 * Returns the length, or < 0 when it does not fit. */
int rkeep_pidfile_format(char *buf, size_t cap, const struct rkeep_pidfile *p);

/* Parses router.pid's text. Returns 0 and *ret, or < 0 (-EINVAL) for
 * anything else than a line rkeep_pidfile_format() writes. */
int rkeep_pidfile_parse(const char *text, struct rkeep_pidfile *ret);

/* Reads the command name (comm) and start time of pid from
 * /proc/PID/stat. Returns 0, or < 0 (-ENOENT: no such process). */
int rkeep_proc_stat(pid_t pid, char comm[16], unsigned long long *ret_start);

/* The wait before the next start of a router which ran for ran_usec: none
 * after a run of RKEEP_CRASH_USEC or more (and *backoff goes back to
 * RKEEP_BACKOFF_FIRST), else *backoff, which then doubles up to
 * RKEEP_BACKOFF_MAX. */
uint64_t rkeep_next_delay(uint64_t ran_usec, uint64_t *backoff);

/* Keeps a router for cfg (borrowed; config_path is passed on as --config,
 * NULL: none) on loop: re-adopts the one named by <state_dir>/router.pid
 * when it still runs, else binds the sockets and starts one (the
 * executable found with host_find_helper("dyno-router")). Returns 0 and
 * *ret (rkeep_free()), or < 0 (no executable, a socket that cannot be
 * bound, a router that cannot be started). */
int rkeep_new(struct loop *loop, const struct config *cfg, const char *config_path,
              struct rkeep **ret, struct dy_error **err);

/* The router's pid, 0 while none runs. */
pid_t rkeep_pid(const struct rkeep *k);

/* Stops the router for good: SIGTERM, SIGKILL after RKEEP_STOP_GRACE;
 * then removes router.pid, closes the sockets and calls loop_stop(). */
void rkeep_stop(struct rkeep *k);

/* Forgets the router, which keeps running (the next dynod adopts it),
 * closes dynod's copies of the sockets and frees k. Accepts NULL. */
void rkeep_free(struct rkeep *k);
