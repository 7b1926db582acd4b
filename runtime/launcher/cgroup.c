/* A dyno's cgroup through libcgroup; see cgroup.h for the rules. */
#include "runtime/launcher/cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libcgroup.h>
#include <pthread.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/lock.h"

static const char *const ctrl_names[CG_N_CTRL] = {"memory", "pids", "cpu"};

static int read_procs(const char *dir, pid_t *pids, int max);

const char *cg_ctrl_str(enum cg_ctrl c)
{
	return c < CG_N_CTRL ? ctrl_names[c] : "?";
}

const char *cg_version_str(enum cg_version v)
{
	switch (v) {
	case CG_V1:
		return "v1";
	case CG_V2:
		return "v2";
	default:
		return "none";
	}
}

/* libcgroup reads the mount table into its globals: once, also when the
 * loop's thread and the start thread (launch.h, "Threads") come at once. */
static int lcg_init(struct dy_error **err)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static int done;
	pthread_mutex_lock(&lock);
	int r = done ? 0 : cgroup_init();
	if (r == 0)
		done = 1;
	pthread_mutex_unlock(&lock);
	if (r != 0)
		return dy_error(err, "libcgroup: %s", cgroup_strerror(r));
	return 0;
}

int cg_detect(enum cg_ctrl c, enum cg_version *ret_ver, char **ret_mount, struct dy_error **err)
{
	if (lcg_init(err) < 0)
		return -1;
	char *mp = NULL;
	int r = cgroup_get_subsys_mount_point(ctrl_names[c], &mp);
	if (r != 0 || !mp)
		return dy_error(err, "cgroup controller %s: not mounted", ctrl_names[c]);
	struct statfs sf;
	if (statfs(mp, &sf) < 0) {
		int e = errno;
		free(mp);
		return dy_error_errno(err, e, "statfs %s", mp);
	}
	*ret_ver = sf.f_type == CGROUP2_SUPER_MAGIC ? CG_V2 : CG_V1;
	*ret_mount = mp;
	return 0;
}

static int write_file(const char *dir, const char *file, const char *value, struct dy_error **err)
{
	_cleanup_free_ char *path = NULL;
	if (asprintf(&path, "%s/%s", dir, file) < 0)
		return dy_error_errno(err, ENOMEM, "asprintf");
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return dy_error_errno(err, errno, "open %s", path);
	size_t n = strlen(value);
	if (write(fd, value, n) != (ssize_t)n)
		return dy_error_errno(err, errno, "write %s to %s", value, path);
	return 0;
}

static int read_file(const char *dir, const char *file, char *buf, size_t size)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, size - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return (int)n;
}

static bool file_exists(const char *dir, const char *file)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	return access(path, F_OK) == 0;
}

size_t cg_values(const enum cg_version ver[CG_N_CTRL], bool memsw, const struct cg_limits *lim,
                 struct cg_value v[CG_MAX_VALUES])
{
	size_t n = 0;
	uint64_t limit = lim->memory * 2;
	if (ver[CG_MEMORY] == CG_V1) {
		v[n] = (struct cg_value){CG_MEMORY, "memory.limit_in_bytes", "", false};
		snprintf(v[n++].value, sizeof(v->value), "%" PRIu64, limit);
		if (memsw) {
			/* memsw can only be set at or above the memory limit, so
			 * after it */
			v[n] =
			    (struct cg_value){CG_MEMORY, "memory.memsw.limit_in_bytes", "", false};
			snprintf(v[n++].value, sizeof(v->value), "%" PRIu64, limit);
		} else {
			/* no swap accounting: swapped memory is not charged, so
			 * the limit would not bound memory + swap. Swappiness 0
			 * stops swapping at the dyno's own limit (it OOMs there
			 * instead; cgroup-v1/memory.rst 5.3); global reclaim may
			 * still swap it (docs/isolation.md) */
			v[n++] = (struct cg_value){CG_MEMORY, "memory.swappiness", "0", false};
		}
	} else {
		v[n] = (struct cg_value){CG_MEMORY, "memory.max", "", false};
		snprintf(v[n++].value, sizeof(v->value), "%" PRIu64, limit);
		/* absent where swap is not accounted (cgroup.memory=noswap) */
		v[n++] = (struct cg_value){CG_MEMORY, "memory.swap.max", "0", true};
		v[n++] = (struct cg_value){CG_MEMORY, "memory.oom.group", "1", false};
	}
	v[n] = (struct cg_value){CG_PIDS, "pids.max", "", false};
	snprintf(v[n++].value, sizeof(v->value), "%" PRIu32, lim->pids);
	if (ver[CG_CPU] == CG_V1) {
		v[n] = (struct cg_value){CG_CPU, "cpu.shares", "", false};
		snprintf(v[n++].value, sizeof(v->value), "%" PRIu32, 1024 * lim->cpu);
	} else if (ver[CG_CPU] == CG_V2) {
		/* cpu.weight is 1..10000, 100 the default */
		uint32_t w = 100 * lim->cpu;
		v[n] = (struct cg_value){CG_CPU, "cpu.weight", "", false};
		snprintf(v[n++].value, sizeof(v->value), "%" PRIu32, CLAMP(w, 1u, 10000u));
	}
	return n;
}

static int arm_oom(struct cg *cg, struct dy_error **err)
{
	const char *dir = cg->dir[CG_MEMORY];
	if (cg->ver[CG_MEMORY] == CG_V1) {
		/* v1: an eventfd registered in cgroup.event_control fires on every
		 * OOM of the memcg (Documentation/admin-guide/cgroup-v1/memory.rst
		 * section 9) */
		char path[4096];
		snprintf(path, sizeof(path), "%s/memory.oom_control", dir);
		cg->oom_ctl_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (cg->oom_ctl_fd < 0)
			return dy_error_errno(err, errno, "open %s", path);
		cg->oom_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (cg->oom_fd < 0)
			return dy_error_errno(err, errno, "eventfd");
		char line[64];
		snprintf(line, sizeof(line), "%d %d", cg->oom_fd, cg->oom_ctl_fd);
		return write_file(dir, "cgroup.event_control", line, err);
	}
	/* v2: memory.events is modified (inotify IN_MODIFY) on every event */
	cg->oom_fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (cg->oom_fd < 0)
		return dy_error_errno(err, errno, "inotify_init1");
	char path[4096];
	snprintf(path, sizeof(path), "%s/memory.events", dir);
	if (inotify_add_watch(cg->oom_fd, path, IN_MODIFY) < 0)
		return dy_error_errno(err, errno, "inotify %s", path);
	return 0;
}

/* Whether the space-separated list text names word. */
static bool listed(const char *text, const char *word)
{
	size_t wl = strlen(word);
	for (const char *p = text; *p;) {
		p += strspn(p, " \n");
		size_t l = strcspn(p, " \n");
		if (l == wl && strncmp(p, word, wl) == 0)
			return true;
		p += l;
	}
	return false;
}

/* "+ctrl" into dir/cgroup.subtree_control unless it is listed already: a
 * write even of an enabled controller is refused where the cgroup is not
 * writable to us (a delegated or namespaced root), and costs a lock. */
static int subtree_enable(const char *dir, const char *ctrl, struct dy_error **err)
{
	char buf[512], value[32];
	int n = read_file(dir, "cgroup.subtree_control", buf, sizeof(buf));
	if (n < 0)
		return dy_error_errno(err, -n, "%s/cgroup.subtree_control", dir);
	if (listed(buf, ctrl))
		return 0;
	snprintf(value, sizeof(value), "+%s", ctrl);
	return write_file(dir, "cgroup.subtree_control", value, err);
}

/* v2: a child cgroup gets a controller only when every ancestor lists it
 * in cgroup.subtree_control (Documentation/admin-guide/cgroup-v2.rst,
 * "Enabling and Disabling"): at the mount's root and at every component of
 * parent (created here, empty of processes: the "no internal processes"
 * rule). */
int cg_enable_v2(const char *mount, const char *parent, const char *ctrl, struct dy_error **err)
{
	char dir[4096];
	if (snprintf(dir, sizeof(dir), "%s/%s", mount, parent) >= (int)sizeof(dir))
		return dy_error(err, "cgroup %s: path too long", parent);
	/* every prefix of dir that ends a component, the mount's root first */
	size_t root_len = strlen(mount), len = strlen(dir);
	for (size_t i = root_len; i <= len; i++) {
		if (i < len && dir[i] != '/')
			continue;
		bool root = i == root_len;
		if (!root && dir[i - 1] == '/')
			continue; /* an empty component ("a//b", "a/") */
		char save = dir[i];
		dir[i] = '\0';
		int r = 0;
		if (!root && mkdir(dir, 0755) < 0 && errno != EEXIST)
			r = dy_error_errno(err, errno, "mkdir %s", dir);
		if (r == 0)
			r = subtree_enable(dir, ctrl, err);
		dir[i] = save;
		if (r < 0)
			return r;
	}
	return 0;
}

static int enable_v2(const struct cg *cg, const char *parent, struct dy_error **err)
{
	for (int c = 0; c < CG_N_CTRL; c++) {
		if (cg->ver[c] != CG_V2)
			continue;
		char mount_dir[4096];
		size_t l = strlen(cg->dir[c]) - strlen(cg->rel) - 1;
		snprintf(mount_dir, sizeof(mount_dir), "%.*s", (int)l, cg->dir[c]);
		if (cg_enable_v2(mount_dir, parent, ctrl_names[c], err) < 0)
			return -1;
	}
	return 0;
}

/* The handle of <parent>/<id>: controllers detected, directories named,
 * libcgroup's cgroup with its controllers. Creates nothing. */
int cg_new(const char *parent, const char *id, struct cg **ret, struct dy_error **err)
{
	struct cg *cg = calloc(1, sizeof(*cg));
	if (!cg)
		return dy_error_errno(err, ENOMEM, "calloc");
	cg->oom_fd = cg->oom_ctl_fd = cg->unified_fd = -1;
	int r = -1;
	if (asprintf(&cg->rel, "%s/%s", parent, id) < 0) {
		cg->rel = NULL;
		r = dy_error_errno(err, ENOMEM, "asprintf");
		goto fail;
	}
	for (int c = 0; c < CG_N_CTRL; c++) {
		_cleanup_free_ char *mp = NULL;
		struct dy_error *e = NULL;
		if (cg_detect(c, &cg->ver[c], &mp, &e) < 0) {
			if (c == CG_CPU) { /* optional: no weight on this host */
				dy_error_free(&e);
				cg->ver[c] = CG_NONE;
				continue;
			}
			if (err && !*err)
				*err = e;
			else
				dy_error_free(&e);
			goto fail;
		}
		if (asprintf(&cg->dir[c], "%s/%s", mp, cg->rel) < 0) {
			cg->dir[c] = NULL;
			r = dy_error_errno(err, ENOMEM, "asprintf");
			goto fail;
		}
	}

	*ret = cg;
	return 0;
fail:
	cg_free(cg);
	return MIN(r, -1); /* r, or -1 when no step set it */
}

bool cg_is_unified(const struct cg *cg)
{
	for (int c = 0; c < CG_N_CTRL; c++) {
		if (cg->ver[c] == CG_NONE)
			continue;
		if (cg->ver[c] != CG_V2 || strcmp(cg->dir[c], cg->dir[CG_MEMORY]) != 0)
			return false;
	}
	return true;
}

int cg_create(const char *parent, const char *id, const struct cg_limits *lim, struct cg **ret,
              struct dy_error **err)
{
	struct cg *cg = NULL;
	int r = cg_new(parent, id, &cg, err);
	if (r < 0)
		return r;
	r = cg_make(cg, parent, lim, err);
	if (r < 0) {
		cg_free(cg);
		return r;
	}
	*ret = cg;
	return 0;
}

int cg_set_limits(struct cg *cg, const struct cg_limits *lim, struct dy_error **err)
{
	struct cg_value vals[CG_MAX_VALUES];
	bool memsw = cg->ver[CG_MEMORY] == CG_V1 &&
	             file_exists(cg->dir[CG_MEMORY], "memory.memsw.limit_in_bytes");
	size_t n = cg_values(cg->ver, memsw, lim, vals);
	if (memsw) {
		/* memsw can be no lower than the memory limit: raising a
		 * limit (a pooled cgroup), memsw goes first */
		char cur[64];
		if (read_file(cg->dir[CG_MEMORY], "memory.limit_in_bytes", cur, sizeof(cur)) > 0 &&
		    strtoull(cur, NULL, 10) < strtoull(vals[0].value, NULL, 10)) {
			struct cg_value t = vals[0];
			vals[0] = vals[1];
			vals[1] = t;
		}
	}
	for (size_t i = 0; i < n; i++) {
		const char *dir = cg->dir[vals[i].ctrl];
		if (vals[i].optional && !file_exists(dir, vals[i].file))
			continue;
		int r = write_file(dir, vals[i].file, vals[i].value, err);
		if (r < 0)
			return r;
		char back[64];
		if (read_file(dir, vals[i].file, back, sizeof(back)) < 0 ||
		    strtoull(back, NULL, 10) != strtoull(vals[i].value, NULL, 10)) {
			back[strcspn(back, "\n")] = '\0';
			return dy_error(err, "cgroup %s: %s reads back %s, not %s", cg->rel,
			                vals[i].file, back, vals[i].value);
		}
	}
	return 0;
}

int cg_make(struct cg *cg, const char *parent, const struct cg_limits *lim, struct dy_error **err)
{
	int r = enable_v2(cg, parent, err);
	if (r < 0)
		return r;

	/* the directories only: the values are written below, one by one, so
	 * that a failure names the file and optional ones can be skipped */
	/* ignore_ownership: no chown of every file to the owner it already
	 * has (root: the launcher made it), ~60 calls per dyno */
	/* libcgroup's handle only for the creation: it takes ~20 KiB (a name
	 * buffer of PATH_MAX and a table of 100 values per controller), which
	 * dynod would keep for every dyno it runs */
	cg->lcg = cgroup_new_cgroup(cg->rel);
	if (!cg->lcg)
		return dy_error(err, "cgroup %s: libcgroup: cannot allocate", cg->rel);
	for (int c = 0; c < CG_N_CTRL; c++) {
		if (cg->dir[c] && !cgroup_add_controller(cg->lcg, ctrl_names[c])) {
			cgroup_free(&cg->lcg);
			return dy_error(err, "cgroup %s: libcgroup: cannot add %s", cg->rel,
			                ctrl_names[c]);
		}
	}
	r = cgroup_create_cgroup(cg->lcg, 1);
	cgroup_free(&cg->lcg);
	if (r != 0) {
		/* libcgroup does not undo the controllers it did create */
		r = dy_error(err, "cgroup %s: create: %s", cg->rel, cgroup_strerror(r));
		cg_destroy(cg, NULL);
		return r;
	}

	r = cg_set_limits(cg, lim, err);
	if (r < 0)
		goto fail_rm;
	r = arm_oom(cg, err);
	if (r < 0)
		goto fail_rm;
	return 0;

fail_rm:
	cg_destroy(cg, NULL);
	return MIN(r, -1); /* r, or -1 when no step set it */
}

int cg_open(const char *parent, const char *id, struct cg **ret, struct dy_error **err)
{
	struct cg *cg = NULL;
	int r = cg_new(parent, id, &cg, err);
	if (r < 0)
		return r;
	for (int c = 0; c < CG_N_CTRL; c++) {
		struct stat st;
		if (cg->dir[c] && stat(cg->dir[c], &st) < 0) {
			r = dy_error_errno(err, errno, "cgroup %s", cg->dir[c]);
			cg_free(cg);
			return r;
		}
	}
	r = arm_oom(cg, err);
	if (r < 0) {
		cg_free(cg);
		return r;
	}
	*ret = cg;
	return 0;
}

static const char *procs_dir(const struct cg *cg)
{
	return cg->dir[CG_PIDS] ? cg->dir[CG_PIDS] : cg->dir[CG_MEMORY];
}

static int cmp_pid(const void *a, const void *b)
{
	pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;
	return x < y ? -1 : x > y;
}

/* Every pid of dir/cgroup.procs, sorted, without duplicates (a v1 list may
 * repeat one). Sets *ret (free()) and returns the count, or -errno. */
static int read_procs_all(const char *dir, pid_t **ret)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	size_t n = 0, cap = 64;
	pid_t *pids = malloc(cap * sizeof(*pids));
	if (!pids)
		return -ENOMEM;
	long p;
	while (fscanf(f, "%ld", &p) == 1) {
		if (n == cap) {
			pid_t *np =
			    cap < (1u << 24) ? realloc(pids, 2 * cap * sizeof(*pids)) : NULL;
			if (!np) {
				free(pids);
				return -ENOMEM;
			}
			pids = np;
			cap *= 2;
		}
		pids[n++] = (pid_t)p;
	}
	qsort(pids, n, sizeof(*pids), cmp_pid);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (k == 0 || pids[k - 1] != pids[i])
			pids[k++] = pids[i];
	*ret = pids;
	return (int)k;
}

static bool pid_in(const pid_t *pids, int n, pid_t pid)
{
	return n > 0 && bsearch(&pid, pids, (size_t)n, sizeof(pid), cmp_pid) != NULL;
}

bool cg_has(const struct cg *cg, pid_t pid)
{
	_cleanup_free_ pid_t *pids = NULL;
	int n = read_procs_all(procs_dir(cg), &pids);
	return pid_in(pids, n, pid);
}

static int pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int pidfd_kill(int pidfd, int sig)
{
	return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

int cg_signal(const struct cg *cg, pid_t pid, int sig)
{
	/* the pidfd first: it names one process for good. Should that process
	 * exit and its number be reused before the check below, the check
	 * reads the newcomer, but the signal still goes through the pidfd
	 * and fails with ESRCH: only a process that held the number from the
	 * pidfd_open to the send, and so was the one checked, is reached */
	_cleanup_close_ int fd = pidfd_open_(pid);
	if (fd < 0)
		return errno == ESRCH ? 0 : -errno;
	if (!cg_has(cg, pid))
		return 0;
	if (pidfd_kill(fd, sig) < 0)
		return errno == ESRCH ? 0 : -errno;
	return 1;
}

int cg_unified_fd(struct cg *cg)
{
	if (cg->unified_fd >= 0)
		return cg->unified_fd;
	if (!cg_is_unified(cg))
		return -1;
	cg->unified_fd = open(cg->dir[CG_MEMORY], O_PATH | O_DIRECTORY | O_CLOEXEC);
	return cg->unified_fd;
}

int cg_attach_ctrl(struct cg *cg, pid_t pid, enum cg_ctrl c, struct dy_error **err)
{
	if (!cg->dir[c])
		return 0;
	char val[16];
	snprintf(val, sizeof(val), "%d", (int)pid);
	return write_file(cg->dir[c], "cgroup.procs", val, err);
}

int cg_attach(struct cg *cg, pid_t pid, struct dy_error **err)
{
	/* cgroup.procs moves the whole process (libcgroup's attach writes a
	 * v1 "tasks" file: one thread) */
	for (int c = 0; c < CG_N_CTRL; c++)
		if (cg_attach_ctrl(cg, pid, (enum cg_ctrl)c, err) < 0)
			return -1;
	return 0;
}

static uint64_t keyed(const char *text, const char *key)
{
	size_t kl = strlen(key);
	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (strncmp(p, key, kl) == 0 && p[kl] == ' ')
			return strtoull(p + kl + 1, NULL, 10);
	}
	return 0;
}

uint64_t cg_oom_kills(const struct cg *cg)
{
	char buf[1024];
	const char *dir = cg->dir[CG_MEMORY];
	if (!dir)
		return 0;
	if (cg->ver[CG_MEMORY] == CG_V1)
		return read_file(dir, "memory.oom_control", buf, sizeof(buf)) < 0
		           ? 0
		           : keyed(buf, "oom_kill");
	return read_file(dir, "memory.events", buf, sizeof(buf)) < 0 ? 0 : keyed(buf, "oom_kill");
}

/* memory.stat's quota figure's upper bound, or UINT64_MAX. */
static uint64_t quota_bound(const struct cg *cg)
{
	const char *dir = cg->dir[CG_MEMORY];
	char v[64];
	if (cg->ver[CG_MEMORY] == CG_V1) {
		if (read_file(dir, "memory.memsw.usage_in_bytes", v, sizeof(v)) > 0 ||
		    read_file(dir, "memory.usage_in_bytes", v, sizeof(v)) > 0)
			return strtoull(v, NULL, 10);
		return UINT64_MAX;
	}
	if (read_file(dir, "memory.current", v, sizeof(v)) <= 0)
		return UINT64_MAX;
	uint64_t b = strtoull(v, NULL, 10);
	if (read_file(dir, "memory.swap.current", v, sizeof(v)) > 0)
		b += strtoull(v, NULL, 10);
	return b;
}

int cg_quota_usage(const struct cg *cg, uint64_t below, uint64_t *ret_bytes,
                   struct dy_error **err)
{
	char buf[8192];
	const char *dir = cg->dir[CG_MEMORY];
	uint64_t bound = below ? quota_bound(cg) : UINT64_MAX;
	if (bound <= below) {
		*ret_bytes = bound;
		return 0;
	}
	int n = read_file(dir, "memory.stat", buf, sizeof(buf));
	if (n < 0)
		return dy_error_errno(err, -n, "%s/memory.stat", dir);
	if (cg->ver[CG_MEMORY] == CG_V1) {
		*ret_bytes = keyed(buf, "total_rss") + keyed(buf, "total_swap");
		return 0;
	}
	uint64_t anon = keyed(buf, "anon");
	char sw[64];
	if (read_file(dir, "memory.swap.current", sw, sizeof(sw)) > 0)
		anon += strtoull(sw, NULL, 10);
	*ret_bytes = anon;
	return 0;
}

void cg_oom_ack(struct cg *cg)
{
	char buf[4096];
	while (cg->oom_fd >= 0 && read(cg->oom_fd, buf, sizeof(buf)) > 0)
		;
}

static int read_procs(const char *dir, pid_t *pids, int max)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	int n = 0;
	long p;
	while (n < max && fscanf(f, "%ld", &p) == 1)
		pids[n++] = (pid_t)p;
	return n;
}

int cg_count(const struct cg *cg)
{
	const char *dir = procs_dir(cg);
	if (!dir)
		return -ENOENT;
	_cleanup_free_ pid_t *pids = NULL;
	return read_procs_all(dir, &pids);
}

/* pidfds opened per membership check (each batch re-reads cgroup.procs
 * once): bounds the fds held at a time */
#define KILL_BATCH 128

/* One round of cg_kill(): SIGKILL to each of pids[0..n) that is still in
 * the cgroup once its pidfd is open. Returns 0 or -errno. */
static int kill_round(const char *dir, const pid_t *pids, int n)
{
	for (int i = 0; i < n;) {
		int fds[KILL_BATCH], m = 0, r = 0;
		for (; m < KILL_BATCH && i + m < n; m++) {
			fds[m] = pidfd_open_(pids[i + m]);
			if (fds[m] < 0 && errno != ESRCH) {
				r = -errno; /* EMFILE: signal what is open, go on */
				break;
			}
		}
		if (m == 0)
			return r;
		/* membership after the pidfds are open (see cg_signal()) */
		_cleanup_free_ pid_t *now = NULL;
		int k = read_procs_all(dir, &now);
		for (int j = 0; j < m; j++) {
			if (fds[j] < 0)
				continue;
			if (pid_in(now, k, pids[i + j]))
				pidfd_kill(fds[j], SIGKILL);
			close(fds[j]);
		}
		if (k < 0 && k != -ENOENT)
			return k;
		i += m;
	}
	return 0;
}

int cg_kill(struct cg *cg, struct dy_error **err)
{
	for (int c = 0; c < CG_N_CTRL; c++) {
		/* the kernel kills every process, forks racing with it too */
		if (cg->ver[c] == CG_V2 && file_exists(cg->dir[c], "cgroup.kill"))
			return write_file(cg->dir[c], "cgroup.kill", "1", err);
	}
	/* v1 has no cgroup.kill: kill what is listed until nothing is left. A
	 * process forking meanwhile is caught by the next round (the pids
	 * limit bounds how many there can be; one with SIGKILL pending forks
	 * no more); a pid is only signalled through a pidfd, after checking
	 * it is still in the cgroup: a number read from cgroup.procs may
	 * belong to a host process by the time it is used */
	const char *dir = procs_dir(cg);
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	long pause_ns = 1000 * 1000;
	for (;;) {
		_cleanup_free_ pid_t *pids = NULL;
		int n = read_procs_all(dir, &pids);
		if (n < 0)
			return n == -ENOENT ? 0 : dy_error_errno(err, -n, "%s/cgroup.procs", dir);
		if (n == 0)
			return 0;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >= 3000) {
			char list[128] = "";
			for (int i = 0, o = 0; i < n && i < 8 && o < (int)sizeof(list); i++)
				o += snprintf(list + o, sizeof(list) - (size_t)o, " %d",
				              (int)pids[i]);
			return dy_error(err, "cgroup %s: %d processes survive SIGKILL:%s%s",
			                cg->rel, n, list, n > 8 ? " ..." : "");
		}
		int r = kill_round(dir, pids, n);
		if (r < 0)
			return dy_error_errno(err, -r, "cgroup %s: kill", cg->rel);
		/* the killed ones take a moment to leave the list */
		nanosleep(&(struct timespec){0, pause_ns}, NULL);
		if (pause_ns < 32 * 1000 * 1000)
			pause_ns *= 2;
	}
}

/* rmdir, retried for about a second (wait) on EBUSY. Returns 0 (removed,
 * or already gone) or -errno. */
static int rmdir_retry(const char *dir, bool wait)
{
	for (int i = 0; i < 200; i++) {
		if (rmdir(dir) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY || !wait)
			return -errno;
		/* the last task is leaving: the css goes offline shortly */
		nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
	}
	return -EBUSY;
}

/* Why rmdir of a cgroup directory is refused with EBUSY, for the error. */
static void busy_reason(const char *dir, char *buf, size_t size)
{
	_cleanup_free_ pid_t *pids = NULL;
	int n = read_procs_all(dir, &pids);
	if (n > 0) {
		int o = snprintf(buf, size, "%d process%s still inside:", n, n == 1 ? "" : "es");
		for (int i = 0; i < n && i < 8 && o > 0 && (size_t)o < size; i++)
			o += snprintf(buf + o, size - (size_t)o, " %d", (int)pids[i]);
		if (n > 8 && o > 0 && (size_t)o < size)
			snprintf(buf + o, size - (size_t)o, " ...");
		return;
	}
	DIR *d = opendir(dir);
	struct dirent *de;
	while (d && (de = readdir(d))) {
		if (de->d_type == DT_DIR && de->d_name[0] != '.') {
			snprintf(buf, size, "child cgroup %.64s inside", de->d_name);
			closedir(d);
			return;
		}
	}
	if (d)
		closedir(d);
	snprintf(buf, size, "no process listed: the last ones still exiting");
}

int cg_destroy(struct cg *cg, struct dy_error **err)
{
	if (cg->oom_fd >= 0) {
		close(cg->oom_fd);
		cg->oom_fd = -1;
	}
	if (cg->oom_ctl_fd >= 0) {
		close(cg->oom_ctl_fd);
		cg->oom_ctl_fd = -1;
	}
	if (cg->unified_fd >= 0) {
		close(cg->unified_fd);
		cg->unified_fd = -1;
	}
	/* libcgroup's cgroup_delete_cgroup_ext() would migrate stragglers to the
	 * parent; a dyno's cgroup is only ever removed empty, so rmdir it. Every
	 * controller is tried; after one stayed busy the others get no wait. */
	int first = -1, e_first = 0;
	char others[64] = "";
	bool wait = true;
	for (int c = 0; c < CG_N_CTRL; c++) {
		if (!cg->dir[c])
			continue;
		if (c > 0 && cg->dir[c - 1] && strcmp(cg->dir[c], cg->dir[c - 1]) == 0)
			continue; /* one v2 hierarchy: the same directory */
		int e = rmdir_retry(cg->dir[c], wait);
		if (e == 0)
			continue;
		if (e == -EBUSY)
			wait = false;
		if (first < 0) {
			first = c;
			e_first = -e;
		} else {
			size_t o = strlen(others);
			snprintf(others + o, sizeof(others) - o, "%s%s",
			         o ? ", " : "; also left: ", ctrl_names[c]);
		}
	}
	if (first < 0)
		return 0;
	char why[256] = "";
	if (e_first == EBUSY)
		busy_reason(cg->dir[first], why, sizeof(why));
	/* "cgroup dyno/t1: cannot remove /sys/fs/cgroup/memory/dyno/t1: Device
	 * or resource busy (2 processes still inside: 812 813); also left: pids" */
	bool fresh = err && !*err;
	dy_error(err, "cgroup %s: cannot remove %s: %s%s%s%s%s", cg->rel, cg->dir[first],
	         strerror(e_first), why[0] ? " (" : "", why, why[0] ? ")" : "", others);
	if (fresh && *err)
		(*err)->errnum = e_first;
	return -e_first;
}

void cg_free(struct cg *cg)
{
	if (!cg)
		return;
	if (cg->oom_fd >= 0)
		close(cg->oom_fd);
	if (cg->oom_ctl_fd >= 0)
		close(cg->oom_ctl_fd);
	if (cg->unified_fd >= 0)
		close(cg->unified_fd);
	if (cg->lcg)
		cgroup_free(&cg->lcg);
	for (int c = 0; c < CG_N_CTRL; c++)
		free(cg->dir[c]);
	free(cg->rel);
	free(cg);
}

int cg_parent_caps_for_host(uint64_t reserve_memory, uint32_t reserve_pids,
                            struct cg_parent_caps *ret, struct dy_error **err)
{
	long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
	if (pages <= 0 || page <= 0)
		return dy_error_errno(err, errno, "sysconf: the host's memory");
	uint64_t total = (uint64_t)pages * (uint64_t)page;
	char buf[32];
	int n = read_file("/proc/sys/kernel", "pid_max", buf, sizeof(buf));
	if (n < 0)
		return dy_error_errno(err, -n, "read /proc/sys/kernel/pid_max");
	uint64_t pid_max = strtoull(buf, NULL, 10);
	if (reserve_memory >= total)
		return dy_error(
		    err,
		    "host_reserve.memory: %llu MiB is not below the host's memory (%llu "
		    "MiB)",
		    (unsigned long long)(reserve_memory >> 20), (unsigned long long)(total >> 20));
	if (reserve_pids >= pid_max)
		return dy_error(
		    err, "host_reserve.pids: %u is not below the host's kernel.pid_max (%llu)",
		    reserve_pids, (unsigned long long)pid_max);
	ret->memory = total - reserve_memory;
	ret->pids = (uint32_t)MIN(pid_max - reserve_pids, (uint64_t)UINT32_MAX);
	return 0;
}

/* Writes value to dir/file and reads it back: a limit the kernel rounded
 * (v1 memory to pages) or refused is an error naming the file. */
static int write_checked(const char *dir, const char *file, uint64_t value, uint64_t round,
                         struct dy_error **err)
{
	char text[32], back[64];
	snprintf(text, sizeof(text), "%llu", (unsigned long long)value);
	if (write_file(dir, file, text, err) < 0)
		return -1;
	int n = read_file(dir, file, back, sizeof(back));
	if (n < 0)
		return dy_error_errno(err, -n, "read %s/%s", dir, file);
	uint64_t got = strtoull(back, NULL, 10);
	if (got != value && !(round && got == value / round * round)) {
		back[strcspn(back, "\n")] = '\0';
		return dy_error(err, "%s/%s reads back %s, not %s", dir, file, back, text);
	}
	return 0;
}

int cg_parent_setup(const char *parent, const struct cg_parent_caps *caps, int *ret_lock_fd,
                    pid_t *ret_holder, struct dy_error **err)
{
	if (!parent[0] || strchr(parent, '/') || parent[0] == '.')
		return dy_error(err, "cgroup parent \"%s\": expected a name", parent);
	_cleanup_close_ int lock = -1;
	/* pids first: the lock is taken before anything is written */
	static const enum cg_ctrl order[CG_N_CTRL] = {CG_PIDS, CG_MEMORY, CG_CPU};
	for (int i = 0; i < CG_N_CTRL; i++) {
		enum cg_ctrl c = order[i];
		enum cg_version ver;
		_cleanup_free_ char *mp = NULL;
		struct dy_error *e = NULL;
		if (cg_detect(c, &ver, &mp, &e) < 0) {
			if (c == CG_CPU) { /* optional, as for a dyno */
				dy_error_free(&e);
				continue;
			}
			if (err && !*err)
				*err = e;
			else
				dy_error_free(&e);
			return -1;
		}
		char dir[4096];
		snprintf(dir, sizeof(dir), "%s/%s", mp, parent);
		if (ver == CG_V2) {
			if (cg_enable_v2(mp, parent, ctrl_names[c], err) < 0)
				return -1;
		} else if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
			return dy_error_errno(err, errno, "mkdir %s", dir);
		}
		if (c == CG_PIDS && lock < 0) {
			pid_t holder = 0;
			int r = dy_lock_dir(dir, &lock, &holder, err);
			if (r == -EWOULDBLOCK && ret_holder)
				*ret_holder = holder;
			if (r < 0)
				return r;
		}
		int r = 0;
		if (c == CG_MEMORY && caps->memory)
			r = write_checked(
			    dir, ver == CG_V2 ? "memory.max" : "memory.limit_in_bytes",
			    caps->memory, ver == CG_V1 ? (uint64_t)sysconf(_SC_PAGESIZE) : 0, err);
		else if (c == CG_PIDS && caps->pids)
			r = write_checked(dir, "pids.max", caps->pids, 0, err);
		if (r < 0)
			return r;
	}
	if (lock < 0)
		return dy_error(err, "cgroup parent %s: no pids controller to lock it by", parent);
	*ret_lock_fd = TAKE_FD(lock);
	return 0;
}

int cg_sweep(const char *parent, const char *prefix, int (*fn)(const char *id, void *data),
             void *data)
{
	size_t plen = prefix ? strlen(prefix) : 0;
	int removed = 0;
	/* the ids are collected from the pids hierarchy, which every dyno has:
	 * it goes first (fn is called there); a hierarchy already visited (all
	 * controllers on one cgroup2 mount) is not visited again */
	static const enum cg_ctrl order[CG_N_CTRL] = {CG_PIDS, CG_MEMORY, CG_CPU};
	enum cg_version ver;
	char *mp[CG_N_CTRL] = {NULL};
	for (int c = 0; c < CG_N_CTRL; c++)
		if (cg_detect(c, &ver, &mp[c], NULL) < 0)
			mp[c] = NULL;
	for (int i = 0; i < CG_N_CTRL; i++) {
		enum cg_ctrl c = order[i];
		bool seen = false;
		for (int j = 0; j < i; j++)
			seen |= mp[order[j]] && mp[c] && strcmp(mp[order[j]], mp[c]) == 0;
		if (!mp[c] || seen)
			continue;
		char top[512];
		snprintf(top, sizeof(top), "%s/%s", mp[c], parent);
		DIR *d = opendir(top);
		if (!d)
			continue;
		struct dirent *de;
		while ((de = readdir(d))) {
			if (de->d_type != DT_DIR || de->d_name[0] == '.')
				continue;
			if (plen && strncmp(de->d_name, prefix, plen) != 0)
				continue; /* another launcher's */
			char dir[1024];
			snprintf(dir, sizeof(dir), "%s/%s", top, de->d_name);
			pid_t pids[1];
			if (read_procs(dir, pids, 1) != 0)
				continue; /* alive, or unreadable: leave it */
			/* what fn could not remove keeps its pids directory:
			 * the marker by which the next sweep finds it */
			if (c == CG_PIDS && fn && fn(de->d_name, data) < 0)
				continue;
			if (rmdir_retry(dir, true) == 0 && c == CG_PIDS)
				removed++;
		}
		closedir(d);
	}
	for (int c = 0; c < CG_N_CTRL; c++)
		free(mp[c]);
	return removed;
}
