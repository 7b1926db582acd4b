/* A dyno's cgroup through libcgroup; see cgroup.h for the rules. */
#include "runtime/cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libcgroup.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"

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

static int lcg_init(struct dy_error **err)
{
	static int done;
	if (done)
		return 0;
	int r = cgroup_init();
	if (r != 0)
		return dy_error(err, "libcgroup: %s", cgroup_strerror(r));
	done = 1;
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

/* One limit to write and read back. */
struct cg_value {
	enum cg_ctrl ctrl;
	const char *file;
	char value[32];
	bool optional; /* skipped when the file does not exist (memsw, swap) */
};

static size_t cg_values(const struct cg *cg, const struct cg_limits *lim, struct cg_value *v)
{
	size_t n = 0;
	uint64_t limit = lim->memory * 2;
	if (cg->ver[CG_MEMORY] == CG_V1) {
		v[n] = (struct cg_value){CG_MEMORY, "memory.limit_in_bytes", "", false};
		snprintf(v[n++].value, sizeof(v->value), "%" PRIu64, limit);
		/* memsw can only be set at or above the memory limit, so after it */
		v[n] = (struct cg_value){CG_MEMORY, "memory.memsw.limit_in_bytes", "", true};
		snprintf(v[n++].value, sizeof(v->value), "%" PRIu64, limit);
	} else {
		v[n] = (struct cg_value){CG_MEMORY, "memory.max", "", false};
		snprintf(v[n++].value, sizeof(v->value), "%" PRIu64, limit);
		v[n++] = (struct cg_value){CG_MEMORY, "memory.swap.max", "0", true};
		v[n++] = (struct cg_value){CG_MEMORY, "memory.oom.group", "1", false};
	}
	v[n] = (struct cg_value){CG_PIDS, "pids.max", "", false};
	snprintf(v[n++].value, sizeof(v->value), "%" PRIu32, lim->pids);
	if (cg->dir[CG_CPU]) {
		if (cg->ver[CG_CPU] == CG_V1) {
			v[n] = (struct cg_value){CG_CPU, "cpu.shares", "", false};
			snprintf(v[n++].value, sizeof(v->value), "%" PRIu32, 1024 * lim->cpu);
		} else {
			uint32_t w = 100 * lim->cpu;
			v[n] = (struct cg_value){CG_CPU, "cpu.weight", "", false};
			snprintf(v[n++].value, sizeof(v->value), "%" PRIu32, w > 10000 ? 10000 : w);
		}
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

/* v2: a child cgroup gets a controller only when every ancestor lists it
 * in cgroup.subtree_control (Documentation/admin-guide/cgroup-v2.rst,
 * "Enabling and Disabling"): enable it at the mount's root and in parent
 * (created here, empty of processes: the "no internal processes" rule). */
static int enable_v2(const struct cg *cg, const char *parent, struct dy_error **err)
{
	for (int c = 0; c < CG_N_CTRL; c++) {
		if (cg->ver[c] != CG_V2)
			continue;
		char mount_dir[4096], parent_dir[4096], value[32];
		size_t l = strlen(cg->dir[c]) - strlen(cg->rel) - 1;
		snprintf(mount_dir, sizeof(mount_dir), "%.*s", (int)l, cg->dir[c]);
		if (snprintf(parent_dir, sizeof(parent_dir), "%s/%s", mount_dir, parent) >=
		    (int)sizeof(parent_dir))
			return dy_error(err, "cgroup %s: path too long", parent);
		if (mkdir(parent_dir, 0755) < 0 && errno != EEXIST)
			return dy_error_errno(err, errno, "mkdir %s", parent_dir);
		snprintf(value, sizeof(value), "+%s", ctrl_names[c]);
		if (write_file(mount_dir, "cgroup.subtree_control", value, err) < 0 ||
		    write_file(parent_dir, "cgroup.subtree_control", value, err) < 0)
			return -1;
	}
	return 0;
}

/* The handle of <parent>/<id>: controllers detected, directories named,
 * libcgroup's cgroup with its controllers. Creates nothing. */
static int cg_alloc(const char *parent, const char *id, struct cg **ret, struct dy_error **err)
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

	cg->lcg = cgroup_new_cgroup(cg->rel);
	if (!cg->lcg) {
		r = dy_error(err, "cgroup %s: libcgroup: cannot allocate", cg->rel);
		goto fail;
	}
	for (int c = 0; c < CG_N_CTRL; c++) {
		if (cg->dir[c] && !cgroup_add_controller(cg->lcg, ctrl_names[c])) {
			r = dy_error(err, "cgroup %s: libcgroup: cannot add %s", cg->rel,
			             ctrl_names[c]);
			goto fail;
		}
	}
	*ret = cg;
	return 0;
fail:
	cg_free(cg);
	return r < 0 ? r : -1;
}

int cg_create(const char *parent, const char *id, const struct cg_limits *lim, struct cg **ret,
              struct dy_error **err)
{
	struct cg *cg = NULL;
	int r = cg_alloc(parent, id, &cg, err);
	if (r < 0)
		return r;
	r = enable_v2(cg, parent, err);
	if (r < 0)
		goto fail;

	/* the directories only: the values are written below, one by one, so
	 * that a failure names the file and optional ones can be skipped */
	r = cgroup_create_cgroup(cg->lcg, 0);
	if (r != 0) {
		r = dy_error(err, "cgroup %s: create: %s", cg->rel, cgroup_strerror(r));
		goto fail;
	}

	struct cg_value vals[8];
	size_t n = cg_values(cg, lim, vals);
	for (size_t i = 0; i < n; i++) {
		const char *dir = cg->dir[vals[i].ctrl];
		if (vals[i].optional && !file_exists(dir, vals[i].file))
			continue;
		r = write_file(dir, vals[i].file, vals[i].value, err);
		if (r < 0)
			goto fail_rm;
		char back[64];
		if (read_file(dir, vals[i].file, back, sizeof(back)) < 0 ||
		    strtoull(back, NULL, 10) != strtoull(vals[i].value, NULL, 10)) {
			back[strcspn(back, "\n")] = '\0';
			r = dy_error(err, "cgroup %s: %s reads back %s, not %s", cg->rel,
			             vals[i].file, back, vals[i].value);
			goto fail_rm;
		}
	}
	r = arm_oom(cg, err);
	if (r < 0)
		goto fail_rm;
	*ret = cg;
	return 0;

fail_rm:
	cg_destroy(cg, NULL);
fail:
	cg_free(cg);
	return r < 0 ? r : -1;
}

int cg_open(const char *parent, const char *id, struct cg **ret, struct dy_error **err)
{
	struct cg *cg = NULL;
	int r = cg_alloc(parent, id, &cg, err);
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

bool cg_has(const struct cg *cg, pid_t pid)
{
	pid_t pids[4096];
	const char *dir = cg->dir[CG_PIDS] ? cg->dir[CG_PIDS] : cg->dir[CG_MEMORY];
	int n = read_procs(dir, pids, 4096);
	for (int i = 0; i < n; i++)
		if (pids[i] == pid)
			return true;
	return false;
}

int cg_unified_fd(struct cg *cg)
{
	if (cg->unified_fd >= 0)
		return cg->unified_fd;
	for (int c = 0; c < CG_N_CTRL; c++) {
		if (cg->ver[c] == CG_NONE)
			continue;
		if (cg->ver[c] != CG_V2 || strcmp(cg->dir[c], cg->dir[CG_MEMORY]) != 0)
			return -1;
	}
	cg->unified_fd = open(cg->dir[CG_MEMORY], O_PATH | O_DIRECTORY | O_CLOEXEC);
	return cg->unified_fd;
}

int cg_attach(struct cg *cg, pid_t pid, struct dy_error **err)
{
	int r = cgroup_attach_task_pid(cg->lcg, pid);
	if (r != 0)
		return dy_error(err, "cgroup %s: attach %d: %s", cg->rel, (int)pid,
		                cgroup_strerror(r));
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

int cg_quota_usage(const struct cg *cg, uint64_t *ret_bytes, struct dy_error **err)
{
	char buf[8192];
	const char *dir = cg->dir[CG_MEMORY];
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
	pid_t pids[64];
	const char *dir = cg->dir[CG_PIDS] ? cg->dir[CG_PIDS] : cg->dir[CG_MEMORY];
	return dir ? read_procs(dir, pids, 64) : -ENOENT;
}

int cg_kill(struct cg *cg, struct dy_error **err)
{
	const char *dir = cg->dir[CG_PIDS];
	if (cg->ver[CG_PIDS] == CG_V2 && file_exists(dir, "cgroup.kill"))
		return write_file(dir, "cgroup.kill", "1", err);
	/* v1 has no cgroup.kill: kill what is listed until nothing is left; a
	 * process forking meanwhile is caught by the next round (and the pids
	 * limit bounds how many there can be). */
	for (int round = 0; round < 100; round++) {
		pid_t pids[512];
		int n = read_procs(dir, pids, 512);
		if (n < 0)
			return n == -ENOENT ? 0 : dy_error_errno(err, -n, "%s/cgroup.procs", dir);
		if (n == 0)
			return 0;
		for (int i = 0; i < n; i++)
			kill(pids[i], SIGKILL);
		nanosleep(&(struct timespec){0, 2 * 1000 * 1000}, NULL);
	}
	return dy_error(err, "cgroup %s: processes survive SIGKILL", cg->rel);
}

static int rmdir_retry(const char *dir)
{
	for (int i = 0; i < 200; i++) {
		if (rmdir(dir) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY)
			return -errno;
		/* the last task is leaving: the css goes offline shortly */
		nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
	}
	return -EBUSY;
}

int cg_destroy(struct cg *cg, struct dy_error **err)
{
	int r = 0;
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
	 * parent; a dyno's cgroup is only ever removed empty, so rmdir it */
	for (int c = 0; c < CG_N_CTRL; c++) {
		if (!cg->dir[c])
			continue;
		int e = rmdir_retry(cg->dir[c]);
		if (e < 0 && r == 0)
			r = dy_error_errno(err, -e, "rmdir %s", cg->dir[c]);
	}
	return r;
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

int cg_sweep(const char *parent, void (*fn)(const char *id, void *data), void *data)
{
	int removed = 0;
	/* the ids are collected from the pids hierarchy, which every dyno has */
	enum cg_version ver;
	char *mp[CG_N_CTRL] = {NULL};
	for (int c = 0; c < CG_N_CTRL; c++)
		if (cg_detect(c, &ver, &mp[c], NULL) < 0)
			mp[c] = NULL;
	for (int c = 0; c < CG_N_CTRL; c++) {
		if (!mp[c])
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
			char dir[1024];
			snprintf(dir, sizeof(dir), "%s/%s", top, de->d_name);
			pid_t pids[1];
			if (read_procs(dir, pids, 1) != 0)
				continue; /* alive, or unreadable: leave it */
			if (c == CG_PIDS && fn)
				fn(de->d_name, data);
			if (rmdir_retry(dir) == 0 && c == CG_PIDS)
				removed++;
		}
		closedir(d);
	}
	for (int c = 0; c < CG_N_CTRL; c++)
		free(mp[c]);
	return removed;
}
