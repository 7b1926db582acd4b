/* A dyno's cgroup (DESIGN.md, Lifecycle: memory rules), through libcgroup.
 *
 * Each controller (memory, pids, cpu) is detected on its own: a host may
 * hold some on cgroup v1 hierarchies and others on the cgroup2 mount (this
 * is the "hybrid" layout). Per controller the v1 or v2 files are written:
 *
 *   memory v1: memory.limit_in_bytes = 2x quota, memory.memsw.limit_in_bytes
 *              = 2x where swap accounting exists; OOM from memory.oom_control
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
	struct cgroup *lcg;             /* libcgroup's handle */
};

/* How controller c is mounted on this host (libcgroup's mount table and the
 * mount's file system magic). Sets *ret_mount (owned by the caller) to the
 * mount point. Returns 0, or < 0 when the controller is not mounted. */
int cg_detect(enum cg_ctrl c, enum cg_version *ret_ver, char **ret_mount, struct dy_error **err);

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

/* Whether process pid is in the cgroup. */
bool cg_has(const struct cg *cg, pid_t pid);

/* When every controller sits on one cgroup2 hierarchy: an O_PATH fd of
 * the dyno's cgroup directory for clone3's CLONE_INTO_CGROUP (the child is
 * born in its cgroup: no migration); opened on first use, owned by cg.
 * Else -1: attach with cg_attach(). */
int cg_unified_fd(struct cg *cg);

/* Moves pid into the cgroup in every controller. Returns 0 or < 0. */
int cg_attach(struct cg *cg, pid_t pid, struct dy_error **err);

/* How many processes of the cgroup the kernel's OOM killer killed. */
uint64_t cg_oom_kills(const struct cg *cg);

/* The memory counted against the quota (DESIGN.md, R14): anonymous memory
 * plus swap, not page cache (v1: total_rss + total_swap of memory.stat; v2:
 * anon of memory.stat + memory.swap.current). Returns 0 or < 0. */
int cg_quota_usage(const struct cg *cg, uint64_t *ret_bytes, struct dy_error **err);

/* Drains the OOM notification fd after it became readable. */
void cg_oom_ack(struct cg *cg);

/* Number of processes in the cgroup (memory or pids controller), or < 0. */
int cg_count(const struct cg *cg);

/* SIGKILL to every process of the cgroup: cgroup.kill on v2, on v1 a kill
 * of each pid in cgroup.procs until the list stays empty (bounded rounds).
 * Returns 0 or < 0. */
int cg_kill(struct cg *cg, struct dy_error **err);

/* Removes the cgroup directories (they must be empty; retries briefly while
 * exiting processes leave). Returns 0 or < 0. */
int cg_destroy(struct cg *cg, struct dy_error **err);

/* Frees cg (does not remove the cgroup). Accepts NULL. */
void cg_free(struct cg *cg);

/* Leftovers: calls fn(id, data) for every <parent>/<id> that holds no
 * process in any controller, then removes it. Returns the number removed. */
int cg_sweep(const char *parent, void (*fn)(const char *id, void *data), void *data);
