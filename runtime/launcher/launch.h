/* The dyno launcher: starts one isolated dyno (docs/design.md, "A dyno, from
 * inside", "Network", "Lifecycle") and stops and cleans it.
 *
 * launch_start(), in two halves that run side by side:
 *   parent: compile the seccomp policy (once), the cgroup's paths (on a
 *           unified cgroup2 host also the cgroup), pick the dyno's
 *           address, clone3 into new PID, mount, UTS and IPC namespaces;
 *           the nftables rules on a thread of their own; v1: create the
 *           cgroup with its limits (read back), move the child into its
 *           memory cgroup, send LAUNCH_SYNC_CGROUP_JOINED, then into the
 *           others; on the child's LAUNCH_SYNC_NETNS_MADE create the veth
 *           pair, send LAUNCH_SYNC_VETH_READY; with the rules in place,
 *           LAUNCH_SYNC_RULES_READY;
 *   child:  (launch-child.c) at once: hostname, mounts (all but
 *           /sys/fs/cgroup); once in its memory cgroup
 *           (LAUNCH_SYNC_CGROUP_JOINED, or born in its cgroup) its own
 *           network namespace, LAUNCH_SYNC_NETNS_MADE, /etc's copies, lo
 *           up, IPv6 off, /sys/fs/cgroup + pivot_root;
 *           on LAUNCH_SYNC_VETH_READY: unshare the cgroup namespace (now
 *           rooted at its own cgroup), eth0, exec dyno-init, which on
 *           LAUNCH_SYNC_RULES_READY starts the app (see init.h) and sends
 *           LAUNCH_SYNC_APP_EXECED;
 *   every set-up error of the child travels back over a SOCK_SEQPACKET
 *   socket as LAUNCH_SYNC_ERROR (sync.h), with its errno: the caller reads
 *   "mount /app: Invalid argument" (and errnum EINVAL), never "exit 1".
 * The call returns once the command has exec'd.
 *
 * Threads: launch_start() may run on several threads at once while the
 * caller's loop calls the rest (dynod: dyno.start_threads start threads,
 * common/work.h): a start mostly waits for its child (the cgroup move, the
 * network namespace, the exec), so two overlap well on two cores. What
 * they share is locked: the nftables context (net.c), libcgroup's init
 * (cgroup.c), the orphans of failed starts, the seccomp program compiled
 * once, the cached dyno-init fd, the choice of a free address (round-robin
 * under a lock: two starts never pick the same one). A child of clone3
 * allocates nothing (net-dyno.c): another thread may hold the allocator's
 * lock at the clone. A sweep (launch_sweep()) must not run during a start:
 * the new dyno's cgroup is empty until its child joins. Starts, and a warm
 * pool's preparations, hold launch_start_lock for reading, a sweep for
 * writing (launch-internal.h).
 *
 * With launch_params.pool (a warm pool, below) a start takes a prepared
 * dyno instead: all of the above but the app's part was done ahead, off
 * the start path; the take writes the limits, adds the rules a dyno with
 * gateway ports or egress needs, and sends the rest (docs/isolation.md,
 * "The pool"). A take does not wait for the lock. */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"
#include "runtime/launcher/cgroup.h"
#include "runtime/launcher/net.h"

struct launch_pool;

/* A host path bound into a dyno (a build dyno's /cache, /buildpacks). */
struct launch_bind {
	const char *src; /* host path: a directory or a regular file */
	const char *dst; /* absolute path in the dyno */
	bool rw;         /* else read-only */
};

#define LAUNCH_BINDS_MAX 16

struct launch_params {
	const char *slug_dir; /* the unpacked slug: /app's lower layer */
	/* a build dyno (docs/builds.md): /app is slug_dir itself, bound
	 * read-write (nosuid, nodev), not an overlay on it; and binds */
	bool app_rw;
	const struct launch_bind *binds;
	size_t nbinds; /* at most LAUNCH_BINDS_MAX */
	uid_t uid;
	gid_t gid;
	const char *name;    /* DYNO: web.1, run.4821 */
	const char *id;      /* unique instance id: hostname, cgroup, veth, rules */
	const char *command; /* run as bash -c */
	char *const *env;    /* the app's config vars, "K=V", NULL-terminated, or NULL */
	struct cg_limits limits;
	uint16_t port;             /* PORT, 0 for none */
	const char *log_sink;      /* Unix datagram socket path, or NULL: its directory
	                            * is bound into the dyno for init (keep the
	                            * sink alone in a directory of root's) */
	size_t log_buffer;         /* bytes init keeps while the sink is away; 0: 1 MiB */
	const char *cgroup_parent; /* NULL: "dyno" */
	struct in_addr subnet;     /* network byte order */
	uint8_t subnet_prefix;
	struct in_addr addr;           /* 0: the next free (round-robin, net.h) */
	const uint16_t *gateway_ports; /* ports open to this dyno at the gateway */
	size_t n_gateway_ports;
	const char *init_path; /* dyno-init; NULL: beside the running executable */
	bool egress;           /* reach the outside (NAT); dynod: network.egress or the app's */
	uint64_t setup_timeout_usec; /* clone to exec'd; 0: LAUNCH_SETUP_TIMEOUT */
	/* an attached one-off (docs/api.md, "Attach"): attach_fd, a blocking
	 * stream socket to the client, becomes init's, which gives the app
	 * its stdio through it (a pty made inside the dyno with attach_tty,
	 * pipes otherwise) instead of the log sink; the caller keeps its copy */
	bool attach;
	bool attach_tty;
	int attach_fd;
	/* a warm pool (launch_pool_new()) to take the dyno from: then its
	 * id is the entry's (struct launch_dyno's id), not id. A start the
	 * pool does not serve (a build dyno's app_rw or binds, an attached
	 * one-off, another cgroup parent or subnet), or one that finds no
	 * entry ready, is made the usual way, with id */
	struct launch_pool *pool;
};

/* How long a dyno's set-up (namespaces, mounts, exec) may take before
 * launch_start() kills it and fails: a stuck file system must not hang
 * the caller's loop. */
#define LAUNCH_SETUP_TIMEOUT (10 * 1000000ULL)

struct launch_dyno {
	pid_t pid; /* init, in the caller's PID namespace */
	int pidfd; /* readable when the dyno has exited */
	struct cg *cg;
	int oom_fd; /* readable on an OOM kill (cg->oom_fd) */
	char veth[NET_IFNAME_LEN];
	struct in_addr addr;
	struct in_addr gateway;
	char *id;
	bool exited;
	bool adopted;       /* not our child: no exit status */
	int status;         /* once exited: the exit code, or 128 + the signal */
	bool status_known;  /* false: an adopted dyno exited on its own */
	bool stopped;       /* cleaned: cgroup, veth, rules gone */
	bool egress;        /* started with egress (unknown when adopted) */
	uint64_t oom_kills; /* OOM kills seen by launch_check_oom() */
};

/* Starts a dyno. Returns 0 and the handle in *ret (release with
 * launch_free() after launch_cleanup()), or < 0 with nothing left behind. */
int launch_start(const struct launch_params *p, struct launch_dyno **ret, struct dy_error **err);

/* Re-adopts a running dyno after the launcher's restart (docs/design.md, "What
 * survives what"): pid must be its init (dyno-init) and sit in the cgroup
 * <cgroup_parent>/<id>. Opens a pidfd, the cgroup (OOM notification armed)
 * and finds the veth and address from the id. The exit status of a dyno
 * that is not the caller's child cannot be collected: it reads as 0 (the
 * caller learns of the exit from the pidfd). Returns 0 and *ret, or < 0. */
int launch_adopt(const char *cgroup_parent, const char *id, pid_t pid, struct launch_dyno **ret,
                 struct dy_error **err);

/* Collects the exit status when the pidfd is readable. Returns 1 exited, 0
 * still running, < 0 error. */
int launch_poll(struct launch_dyno *d, struct dy_error **err);

/* Stops the dyno: SIGTERM to init (which forwards it to every process),
 * then after grace_usec SIGKILL to the whole cgroup; waits for the exit.
 * Sets *ret_killed when the grace ran out (R12). Returns 0 or < 0. */
int launch_stop(struct launch_dyno *d, uint64_t grace_usec, bool *ret_killed,
                struct dy_error **err);

/* Call when oom_fd is readable, periodically (v1 signals the OOM condition,
 * which may come before the kill is counted), and once the dyno has exited. When the
 * kernel's OOM killer has killed a process of the dyno since the last call,
 * the whole dyno is stopped (SIGKILL to its cgroup; docs/design.md: R15 and a
 * crash; on v2 memory.oom.group has done it already) and 1 is returned;
 * else 0; < 0 on error. */
int launch_check_oom(struct launch_dyno *d, struct dy_error **err);

/* SIGKILL to the whole cgroup (OOM on v1: the whole dyno stops) and wait. */
int launch_kill(struct launch_dyno *d, struct dy_error **err);

/* Removes the cgroup, veth and rules of an exited dyno (the mounts and
 * tmpfs went with its mount namespace). Returns 0 or < 0. */
int launch_cleanup(struct launch_dyno *d, struct dy_error **err);

/* Frees the handle. Accepts NULL. */
void launch_free(struct launch_dyno *d);

/* Removes the leftovers of dynos whose launcher died: every cgroup under
 * cgroup_parent whose id starts with prefix (NULL or "": every one)
 * without a process, with its veth and rules (by name, from the id).
 * Returns the number of dynos swept; 0 also when a start or a pool's
 * preparation held the launcher for over 100 ms (then nothing is done:
 * sweep again later). */
int launch_sweep(const char *cgroup_parent, const char *prefix);

/* SIGKILL to every dyno still running under cgroup_parent whose id starts
 * with prefix (NULL or "": every one) but the nkeep ids of keep (those
 * re-adopted): what a dead launcher left; launch_sweep() then removes
 * them. Returns the number of cgroups killed. */
int launch_kill_leftovers(const char *cgroup_parent, const char *prefix, const char *const *keep,
                          size_t nkeep);

/* A warm pool of prepared dynos (docs/isolation.md, "The pool"): each entry
 * is a child already cloned into its own PID, mount, UTS, IPC, network and
 * cgroup namespaces, in its own cgroup <cgroup_parent>/<id> (limits:
 * limits until taken), its veth made and addressed, its tree built up to
 * what needs the app (the slug at /app, scratch, /etc/passwd, the sink),
 * waiting on its sync socket. launch_start() with p->pool takes one: the
 * dyno's limits written, its rules added, the rest sent over the socket;
 * the child finishes and execs dyno-init. A thread of the pool refills it
 * to size, off the start path; an entry that died while waiting is
 * discarded. Ids are <id_prefix>pool-<pid>-<n>: the sweep of that prefix
 * (launch_kill_leftovers(), launch_sweep()) removes what a dead launcher's
 * pool left. */
struct launch_pool_params {
	size_t size;               /* entries kept ready, > 0 */
	const char *cgroup_parent; /* NULL: "dyno" */
	const char *id_prefix;     /* NULL: "" */
	struct in_addr subnet;
	uint8_t subnet_prefix;
	const char *init_path;       /* as launch_params' */
	struct cg_limits limits;     /* an entry's until taken */
	uint64_t setup_timeout_usec; /* an entry's preparation; 0: LAUNCH_SETUP_TIMEOUT */
};

/* Starts the pool's refill thread. Returns 0 and *ret (release with
 * launch_pool_free()), or < 0. */
int launch_pool_new(const struct launch_pool_params *pp, struct launch_pool **ret,
                    struct dy_error **err);

/* Waits until n entries are ready (n is capped at the size), at most
 * timeout_usec, or until a preparation fails (launch_pool_error() says
 * why). Returns the number ready. */
size_t launch_pool_wait(struct launch_pool *pool, size_t n, uint64_t timeout_usec);

/* The last error of a failed preparation since the previous call, or NULL
 * (the caller's to free): refills that keep failing say why. */
struct dy_error *launch_pool_error(struct launch_pool *pool);

/* Stops the thread, ends every entry (its child, veth, cgroup). Accepts
 * NULL. */
void launch_pool_free(struct launch_pool *pool);
