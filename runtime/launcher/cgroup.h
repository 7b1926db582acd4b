/* A dyno's cgroup (docs/design.md, Lifecycle: memory rules), through libcgroup.
 *
 * Each controller (memory, pids, cpu) is detected on its own: a host may
 * hold some on cgroup v1 hierarchies and others on the cgroup2 mount (this
 * is the "hybrid" layout). Per controller the v1 or v2 files are written:
 *
 *   memory v1: memory.limit_in_bytes = 2x quota, memory.memsw.limit_in_bytes
 *              = 2x where swap accounting exists, else memory.swappiness = 0
 *              (no swapping at the dyno's own limit); OOM from
 *              memory.oom_control
 *   memory v2: memory.max = 2x, memory.swap.max = 0, memory.oom.group = 1;
 *              OOM from memory.events; never memory.high
 *   pids:      pids.max
 *   cpu v1:    cpu.shares = 1024 x factor;  cpu v2: cpu.weight = 100 x factor
 *
 * Every limit is read back after it is written. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

enum cg_version {
	CG_NONE = 0,
	CG_V1 = 1,
	CG_V2 = 2,
};

const char *cg_version_str(enum cg_version v);

enum cg_ctrl {
	CG_MEMORY,
	CG_PIDS,
	CG_CPU,
	CG_N_CTRL,
};

const char *cg_ctrl_str(enum cg_ctrl c);

struct cg_limits {
	uint64_t memory; /* the quota in bytes; the kernel limit is twice it */
	uint32_t pids;
	uint32_t cpu; /* weight factor, 1 = standard-1x */
};

struct cg {
	char *rel;                      /* "<parent>/<id>", relative to each mount */
	enum cg_version ver[CG_N_CTRL]; /* how each controller is mounted */
	char *dir[CG_N_CTRL];           /* absolute directory per controller, NULL if absent */
	int oom_fd;                     /* readable on an OOM event (eventfd or inotify), -1 */
	int oom_ctl_fd;                 /* v1: the open memory.oom_control, -1 */
	int unified_fd;                 /* see cg_unified_fd(), -1 */
	struct cgroup *lcg;             /* libcgroup's handle, while cg_make() creates */
};

/* One cgroup file cg_create() writes, and reads back. */
struct cg_value {
	enum cg_ctrl ctrl;
	const char *file;
	char value[32];
	bool optional; /* skipped when the file does not exist (v2 memory.swap.max) */
};

#define CG_MAX_VALUES 8

/* What cg_create() writes for lim, in order (no I/O): ver[c] is how
 * controller c is mounted (CG_NONE: absent, cpu only), memsw whether the
 * v1 memory controller has swap accounting (memory.memsw.limit_in_bytes).
 * Returns the number of entries of out. */
size_t cg_values(const enum cg_version ver[CG_N_CTRL], bool memsw, const struct cg_limits *lim,
                 struct cg_value out[CG_MAX_VALUES]);

/* v2: makes controller ctrl available to <mount>/<parent>/<child>: mkdir of
 * every component of parent, and "+ctrl" written to cgroup.subtree_control
 * of the mount's root and of each component, where it is not listed yet.
 * Returns 0 or < 0. */
int cg_enable_v2(const char *mount, const char *parent, const char *ctrl, struct dy_error **err);

/* How controller c is mounted on this host (libcgroup's mount table and the
 * mount's file system magic). Sets *ret_mount (owned by the caller) to the
 * mount point. Returns 0, or < 0 when the controller is not mounted. */
int cg_detect(enum cg_ctrl c, enum cg_version *ret_ver, char **ret_mount, struct dy_error **err);

/* The two halves of cg_create(), for a launcher that creates the cgroup
 * while its child already runs (v1): cg_new() finds the controllers and
 * the directories' paths (nothing is created; release with cg_free());
 * cg_make() creates them as cg_create() does (on failure nothing is left
 * on the host, cg stays the caller's). */
int cg_new(const char *parent, const char *id, struct cg **ret, struct dy_error **err);
int cg_make(struct cg *cg, const char *parent, const struct cg_limits *lim, struct dy_error **err);

/* Writes lim to the existing cgroup as cg_make() does, each value read
 * back (a pooled cgroup made with other limits takes the dyno's: v1 and v2
 * lower a limit in place while usage is below it). Returns 0 or < 0. */
int cg_set_limits(struct cg *cg, const struct cg_limits *lim, struct dy_error **err);

/* Every controller in one cgroup2 hierarchy: a child can be born in the
 * cgroup (CLONE_INTO_CGROUP, see cg_unified_fd()). */
bool cg_is_unified(const struct cg *cg);

/* Creates the cgroup <parent>/<id> in every controller, writes the limits
 * and reads each one back. Memory and pids are required; cpu is skipped
 * when absent. Arms the OOM notification (cg->oom_fd). Returns 0 and the
 * cgroup in *ret (release with cg_free()), or < 0 with nothing left. */
int cg_create(const char *parent, const char *id, const struct cg_limits *lim, struct cg **ret,
              struct dy_error **err);

/* The existing cgroup <parent>/<id> of a running dyno (re-adoption after
 * the launcher's restart), with its OOM notification armed. Returns 0 and
 * *ret (release with cg_free()), or < 0. */
int cg_open(const char *parent, const char *id, struct cg **ret, struct dy_error **err);

/* Whether process pid is in the cgroup (its cgroup.procs lists it). */
bool cg_has(const struct cg *cg, pid_t pid);

/* Sends sig to process pid only if it is a process of the cgroup, without
 * a pid reuse race: a pidfd first, then the membership check, then
 * pidfd_send_signal (which can only reach the process the pidfd was opened
 * on: were it gone and its number reused, the signal fails with ESRCH).
 * Returns 1 when sent, 0 when pid is gone or not in the cgroup, < 0
 * (-errno) on another error. */
int cg_signal(const struct cg *cg, pid_t pid, int sig);

/* When every controller sits on one cgroup2 hierarchy: an O_PATH fd of
 * the dyno's cgroup directory for clone3's CLONE_INTO_CGROUP (the child is
 * born in its cgroup: no migration); opened on first use, owned by cg.
 * Else -1: attach with cg_attach(). */
int cg_unified_fd(struct cg *cg);

/* Moves pid into the cgroup in every controller. Returns 0 or < 0. */
int cg_attach(struct cg *cg, pid_t pid, struct dy_error **err);

/* Moves pid into the cgroup of one controller only (its cgroup.procs):
 * a launcher that wants the memory cgroup first (what the child allocates
 * from then on is the dyno's), the others after. Returns 0 or < 0. */
int cg_attach_ctrl(struct cg *cg, pid_t pid, enum cg_ctrl c, struct dy_error **err);

/* How many processes of the cgroup the kernel's OOM killer killed. */
uint64_t cg_oom_kills(const struct cg *cg);

/* The memory counted against the quota (docs/design.md, R14): anonymous memory
 * plus swap, not page cache (v1: total_rss + total_swap of memory.stat; v2:
 * anon of memory.stat + memory.swap.current). memory.stat is costly to
 * read (the kernel sums per-CPU counters), and dynod reads every dyno's
 * each second: when a cheap upper bound (v1: memory.memsw.usage_in_bytes,
 * else memory.usage_in_bytes; v2: memory.current + memory.swap.current)
 * is at most below, *ret_bytes is that bound. Returns 0 or < 0. */
int cg_quota_usage(const struct cg *cg, uint64_t below, uint64_t *ret_bytes,
                   struct dy_error **err);

/* Drains the OOM notification fd after it became readable. */
void cg_oom_ack(struct cg *cg);

/* Number of processes in the cgroup (memory or pids controller), or < 0. */
int cg_count(const struct cg *cg);

/* SIGKILL to every process of the cgroup: cgroup.kill on v2 where the
 * kernel has it (returns at once); else (v1) rounds over cgroup.procs, each
 * pid signalled as cg_signal() does (pidfd, membership re-checked, then
 * pidfd_send_signal: never a process outside the cgroup), until the list
 * is empty (bounded: about 3 s). Returns 0, or < 0 naming what survives. */
int cg_kill(struct cg *cg, struct dy_error **err);

/* Removes the cgroup directories (they must be empty; retries for about a
 * second while exiting processes leave). Tries every controller; on
 * failure the error names the first directory left, why (EBUSY: how many
 * processes are still inside, or a child cgroup), and the other
 * controllers left. Idempotent: a directory already gone counts as
 * removed, so a later call retries what is left. Returns 0 or < 0. */
int cg_destroy(struct cg *cg, struct dy_error **err);

/* Frees cg (does not remove the cgroup). Accepts NULL. */
void cg_free(struct cg *cg);

/* What the cgroup parent of every dyno is capped at: dynos together never
 * get more. 0: no cap. */
struct cg_parent_caps {
	uint64_t memory; /* bytes */
	uint32_t pids;
};

/* The caps that leave reserve_memory bytes and reserve_pids pids of the
 * host (its physical memory, kernel.pid_max) to everything but dynos.
 * Returns 0, or < 0 when a reserve is not below the host's total. */
int cg_parent_caps_for_host(uint64_t reserve_memory, uint32_t reserve_pids,
                            struct cg_parent_caps *ret, struct dy_error **err);

/* Makes the cgroup parent of the dynos ready before the first: created in
 * every controller's hierarchy (v2: its controllers enabled), its memory
 * (v1 memory.limit_in_bytes, v2 memory.max) and pids (pids.max) capped at
 * caps and read back, and locked: a flock on its directory in the pids
 * hierarchy (which every dyno has), so that one launcher owns the parent.
 * Returns 0 with the lock's fd in *ret_lock_fd (the caller keeps it open
 * while it owns the parent), -EWOULDBLOCK when another process holds it
 * (its pid in *ret_holder, 0 when unknown), or < 0 with err. */
int cg_parent_setup(const char *parent, const struct cg_parent_caps *caps, int *ret_lock_fd,
                    pid_t *ret_holder, struct dy_error **err);

/* Leftovers: calls fn(id, data) for every <parent>/<id> whose id starts
 * with prefix (NULL or "": every id) that holds no process in any
 * controller, then removes it; when fn returns < 0 (it could not remove
 * what goes with the id) the pids directory stays, for the next sweep.
 * Returns the number removed. */
int cg_sweep(const char *parent, const char *prefix, int (*fn)(const char *id, void *data),
             void *data);
