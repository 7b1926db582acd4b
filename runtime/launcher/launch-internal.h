/* What launch.c shares with launch-pool.c: the parent's half of a start,
 * in pieces. Internal to the launcher. */
#pragma once

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "runtime/launcher/launch-child.h"
#include "runtime/launcher/launch.h"
#include "runtime/launcher/sync.h"

/* Held for reading by a start that is not pooled and by a pool's
 * preparation of an entry (each has an empty cgroup for a moment; they
 * run side by side, what they share has locks of its own), for writing by
 * launch_sweep(), which must not take such a cgroup for a leftover. A
 * pooled start (a take) does not wait for it. */
extern pthread_rwlock_t launch_start_lock;

uint64_t launch_now_usec(void);

/* dyno-init opened O_PATH (cached per path and process) into *ret. */
int launch_open_init(const char *path, int *ret, struct dy_error **err);

/* The app's environment of p (config vars and the platform's own) in a
 * sealed memfd, as dyno-init reads it. */
int launch_env_fd(const struct launch_params *p, int *ret, struct dy_error **err);

/* The log sink's directory (checked: root's, sockets only) and name. */
int launch_sink_paths(const char *sink, char **ret_dir, char **ret_name, struct dy_error **err);
int launch_check_sink_dir(const char *dir, struct dy_error **err);

/* Waits for the message expect, until deadline (timeout_usec: for the
 * message); the other end's LAUNCH_SYNC_ERROR comes back as *err. */
int launch_wait_msg(int sock, enum launch_sync_type expect, uint64_t deadline,
                    uint64_t timeout_usec, struct dy_error **err);

/* Replaces *err with the child's report waiting on sock, if any. */
int launch_child_error(int sock, struct dy_error **err);

/* SIGKILL to the child of d and a bounded wait (its report, if it sent
 * one, replaces *err and *r). Returns false when it did not die: its
 * pidfd is kept for launch_sweep(), its cgroup, veth and rules are the
 * sweep's. d->exited is set either way. */
bool launch_kill_child(struct launch_dyno *d, int sock, int *r, struct dy_error **err);

void launch_set_exit(struct launch_dyno *d, const siginfo_t *si);

/* The sync socket pair, then clone3 into new PID, mount, UTS, IPC
 * namespaces (unified cgroup2: born in d's cgroup and its cgroup
 * namespace). Returns the child's pid (d->pid, d->pidfd set, the parent's
 * end of the socket in *ret_sock), 0 in the child, or < 0 with *err; the
 * child's
 * end is *ret_child_sock in both (the parent closes it, the child keeps
 * it). */
pid_t launch_clone(struct launch_dyno *d, bool unified, int *ret_sock, int *ret_child_sock,
                   struct dy_error **err);

/* What both children get of d (launch-child.h). */
struct launch_child_common launch_child_common_of(const struct launch_dyno *d, int sock,
                                                  int init_fd, int filter_fd, bool unified);

/* In the parent after clone: the child's end of the sync socket closed
 * (*child_sock = -1); the set-up's timeout (LAUNCH_SETUP_TIMEOUT for 0) in
 * *ret_timeout. Returns its deadline. */
uint64_t launch_child_started(int *child_sock, uint64_t setup_timeout_usec, uint64_t *ret_timeout);

/* On the child's LAUNCH_SYNC_NETNS_MADE (by deadline): d's veth pair
 * with eth0 in the child's network namespace (*net_made set), then
 * LAUNCH_SYNC_VETH_READY. Returns 0 or < 0. */
int launch_veth(struct launch_dyno *d, int sock, uint64_t deadline, uint64_t timeout,
                bool *net_made, struct dy_error **err);

/* v1 and hybrid hosts: creates d's cgroup with lim (*cg_made set), moves
 * d->pid into its memory cgroup, sends LAUNCH_SYNC_CGROUP_JOINED on sock,
 * then into the others. Returns 0 or < 0. */
int launch_join_cgroup(struct launch_dyno *d, const char *cg_parent, const struct cg_limits *lim,
                       int sock, bool *cg_made, struct dy_error **err);

/* The dyno's nftables rules, made on a thread of their own (or inline
 * when no thread can be made). */
struct launch_rules {
	const char *veth;
	struct in_addr addr, gw;
	const uint16_t *ports;
	size_t n_ports;
	bool egress;
	pthread_t tid;
	bool running; /* a thread to join */
	bool done;    /* r and err are set */
	int r;
	struct dy_error *err;
};

void launch_rules_start(struct launch_rules *j);

/* Waits for the rules (idempotent); sets *made when they are in place.
 * Returns 0, or < 0 with their error moved to *err. */
int launch_rules_join(struct launch_rules *j, bool *made, struct dy_error **err);

/* A pooled start (launch-pool.c): 1 with *ret when an entry was taken;
 * 0 when none is ready or p is not a start a pool serves (the caller
 * starts it the usual way); < 0 on a failure of the taken entry. */
int launch_pool_take(struct launch_pool *pool, const struct launch_params *p,
                     struct launch_dyno **ret, struct dy_error **err);
