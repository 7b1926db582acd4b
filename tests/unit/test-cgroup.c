/* runtime/cgroup.c against the host's real hierarchies. Creating cgroups
 * needs root: those tests skip otherwise. Names carry the test's pid. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "runtime/launcher/cgroup.h"

static char parent[64];

static void test_detect(void **state)
{
	enum cg_version v;
	char *mp = NULL;
	if (cg_detect(CG_MEMORY, &v, &mp, NULL) < 0)
		skip(); /* no memory controller mounted at all */
	assert_true(v == CG_V1 || v == CG_V2);
	struct stat st;
	assert_int_equal(stat(mp, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	free(mp);
	assert_string_equal(cg_version_str(CG_V1), "v1");
	assert_string_equal(cg_ctrl_str(CG_PIDS), "pids");
}

/* cg_values(): what is written, per version (no I/O: the v2 rules are
 * checked here even on a v1 host) */
static const struct cg_value *find_value(const struct cg_value *v, size_t n, const char *file)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].file, file) == 0)
			return &v[i];
	return NULL;
}

static void assert_value(const struct cg_value *v, size_t n, enum cg_ctrl c, const char *file,
                         const char *value, bool optional)
{
	const struct cg_value *x = find_value(v, n, file);
	if (!x)
		fail_msg("%s is not written", file);
	assert_int_equal(x->ctrl, c);
	assert_string_equal(x->value, value);
	assert_int_equal(x->optional, optional);
}

static void test_values_v1(void **state)
{
	struct cg_limits lim = {.memory = 512ULL << 20, .pids = 256, .cpu = 2};
	struct cg_value v[CG_MAX_VALUES];
	enum cg_version ver[CG_N_CTRL] = {CG_V1, CG_V1, CG_V1};
	size_t n = cg_values(ver, true, &lim, v);
	assert_int_equal(n, 4);
	assert_value(v, n, CG_MEMORY, "memory.limit_in_bytes", "1073741824", false);
	assert_value(v, n, CG_MEMORY, "memory.memsw.limit_in_bytes", "1073741824", false);
	/* memsw is only accepted at or above the memory limit: after it */
	assert_true(find_value(v, n, "memory.limit_in_bytes") <
	            find_value(v, n, "memory.memsw.limit_in_bytes"));
	assert_null(find_value(v, n, "memory.swappiness"));
	assert_value(v, n, CG_PIDS, "pids.max", "256", false);
	assert_value(v, n, CG_CPU, "cpu.shares", "2048", false);

	/* no swap accounting: swappiness 0 instead of memsw */
	n = cg_values(ver, false, &lim, v);
	assert_int_equal(n, 4);
	assert_value(v, n, CG_MEMORY, "memory.swappiness", "0", false);
	assert_null(find_value(v, n, "memory.memsw.limit_in_bytes"));

	/* no cpu controller: no weight */
	ver[CG_CPU] = CG_NONE;
	n = cg_values(ver, true, &lim, v);
	assert_int_equal(n, 3);
	assert_null(find_value(v, n, "cpu.shares"));
}

static void test_values_v2(void **state)
{
	/* performance-l: 14 GiB, 32768 pids, 16x */
	struct cg_limits lim = {.memory = 14ULL << 30, .pids = 32768, .cpu = 16};
	struct cg_value v[CG_MAX_VALUES];
	enum cg_version ver[CG_N_CTRL] = {CG_V2, CG_V2, CG_V2};
	size_t n = cg_values(ver, false, &lim, v);
	assert_int_equal(n, 5);
	assert_value(v, n, CG_MEMORY, "memory.max", "30064771072", false);
	assert_value(v, n, CG_MEMORY, "memory.swap.max", "0", true);
	assert_value(v, n, CG_MEMORY, "memory.oom.group", "1", false);
	assert_value(v, n, CG_PIDS, "pids.max", "32768", false);
	assert_value(v, n, CG_CPU, "cpu.weight", "1600", false);
	/* never memory.high (throttling is not Heroku's behaviour), no v1 file */
	for (size_t i = 0; i < n; i++) {
		assert_null(strstr(v[i].file, "high"));
		assert_null(strstr(v[i].file, "_in_bytes"));
		assert_null(strstr(v[i].file, "swappiness"));
	}
	/* memsw is a v1 notion: the same list either way */
	assert_int_equal(cg_values(ver, true, &lim, v), 5);

	/* the weight stays in 1..10000 */
	lim.cpu = 200;
	n = cg_values(ver, false, &lim, v);
	assert_value(v, n, CG_CPU, "cpu.weight", "10000", false);

	/* hybrid: memory on v1, pids and cpu on v2 */
	enum cg_version hy[CG_N_CTRL] = {CG_V1, CG_V2, CG_V2};
	lim = (struct cg_limits){.memory = 1ULL << 30, .pids = 512, .cpu = 2};
	n = cg_values(hy, false, &lim, v);
	assert_value(v, n, CG_MEMORY, "memory.limit_in_bytes", "2147483648", false);
	assert_value(v, n, CG_MEMORY, "memory.swappiness", "0", false);
	assert_null(find_value(v, n, "memory.oom.group"));
	assert_value(v, n, CG_CPU, "cpu.weight", "200", false);
}

/* cg_enable_v2() on a fake tree: regular files stand for the kernel's */
static void put(const char *dir, const char *file, const char *text)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	FILE *f = fopen(path, "we");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void get(const char *dir, const char *file, char *buf, size_t size)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	FILE *f = fopen(path, "re");
	assert_non_null(f);
	size_t n = fread(buf, 1, size - 1, f);
	buf[n] = '\0';
	fclose(f);
}

static void test_enable_v2(void **state)
{
	char root[] = "/tmp/dyno-cg-enable-XXXXXX";
	assert_non_null(mkdtemp(root));
	char a[4096], ab[4096], buf[256];
	snprintf(a, sizeof(a), "%s/a", root);
	snprintf(ab, sizeof(ab), "%s/a/b", root);
	assert_int_equal(mkdir(a, 0755), 0);
	assert_int_equal(mkdir(ab, 0755), 0);
	put(root, "cgroup.subtree_control", "cpu memory pids\n");
	put(a, "cgroup.subtree_control", "");
	put(ab, "cgroup.subtree_control", "pids\n");

	/* enabled where missing only: the root already lists memory */
	assert_int_equal(cg_enable_v2(root, "a/b", "memory", NULL), 0);
	get(root, "cgroup.subtree_control", buf, sizeof(buf));
	assert_string_equal(buf, "cpu memory pids\n");
	get(a, "cgroup.subtree_control", buf, sizeof(buf));
	assert_string_equal(buf, "+memory");
	get(ab, "cgroup.subtree_control", buf, sizeof(buf));
	assert_string_equal(buf, "+memory"); /* written over "pids\n" */

	/* "pids" is not "pids-ish": whole words only; a//b is a/b */
	put(a, "cgroup.subtree_control", "memory pidsx\n");
	put(ab, "cgroup.subtree_control", "pids\n");
	assert_int_equal(cg_enable_v2(root, "a//b/", "pids", NULL), 0);
	get(a, "cgroup.subtree_control", buf, sizeof(buf));
	assert_string_equal(buf, "+pidsy pidsx\n");
	get(ab, "cgroup.subtree_control", buf, sizeof(buf));
	assert_string_equal(buf, "pids\n");

	/* a component that is no cgroup: the error names the file */
	struct dy_error *e = NULL;
	put(root, "c", "");
	assert_true(cg_enable_v2(root, "c/d", "cpu", &e) < 0);
	assert_non_null(strstr(dy_error_msg(e), "/c/cgroup.subtree_control"));
	dy_error_free(&e);

	char cmd[4200];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	assert_int_equal(system(cmd), 0);
}

static uint64_t read_u64(const char *dir, const char *file)
{
	char path[4096], buf[64] = "";
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	return strtoull(buf, NULL, 10);
}

static void test_create_limits_kill_destroy(void **state)
{
	if (geteuid() != 0)
		skip();
	struct cg_limits lim = {.memory = 32ULL << 20, .pids = 16, .cpu = 2};
	struct cg *cg = NULL;
	struct dy_error *e = NULL;
	assert_int_equal(cg_create(parent, "a", &lim, &cg, &e), 0);
	assert_non_null(cg);
	assert_true(cg->oom_fd >= 0);
	if (cg->ver[CG_MEMORY] == CG_V1)
		assert_int_equal(read_u64(cg->dir[CG_MEMORY], "memory.limit_in_bytes"),
		                 64ULL << 20);
	else
		assert_int_equal(read_u64(cg->dir[CG_MEMORY], "memory.max"), 64ULL << 20);
	assert_int_equal(read_u64(cg->dir[CG_PIDS], "pids.max"), 16);
	if (cg->dir[CG_CPU] && cg->ver[CG_CPU] == CG_V1)
		assert_int_equal(read_u64(cg->dir[CG_CPU], "cpu.shares"), 2048);
	if (cg->ver[CG_MEMORY] == CG_V1) {
		/* swap bounded by memsw where it exists, else no swapping at the
		 * dyno's limit */
		char path[4096];
		snprintf(path, sizeof(path), "%s/memory.memsw.limit_in_bytes", cg->dir[CG_MEMORY]);
		if (access(path, F_OK) == 0) {
			assert_int_equal(
			    read_u64(cg->dir[CG_MEMORY], "memory.memsw.limit_in_bytes"),
			    64ULL << 20);
			/* the fallback of hosts without memsw: this kernel takes it
			 * for a child cgroup (old ones refused it under a hierarchy) */
			snprintf(path, sizeof(path), "%s/memory.swappiness", cg->dir[CG_MEMORY]);
			FILE *f = fopen(path, "we");
			assert_non_null(f);
			assert_true(fputs("0", f) >= 0);
			assert_int_equal(fclose(f), 0);
		}
		assert_int_equal(read_u64(cg->dir[CG_MEMORY], "memory.swappiness"), 0);
	}

	/* a child that forks more once attached: cg_kill gets them all */
	int go[2];
	assert_int_equal(pipe(go), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char c;
		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(1);
		for (;;) {
			if (fork() == 0)
				pause();
			sleep(1);
		}
	}
	close(go[0]);
	assert_int_equal(cg_attach(cg, pid, &e), 0);
	assert_int_equal(write(go[1], "g", 1), 1);
	close(go[1]);
	nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
	assert_true(cg_count(cg) >= 1);
	/* exact (memory.stat), and the cheap bound when it is below a quota:
	 * never less than the exact figure */
	uint64_t used = 0, bound = 0;
	assert_int_equal(cg_quota_usage(cg, 0, &used, &e), 0);
	assert_int_equal(cg_quota_usage(cg, UINT64_MAX - 1, &bound, &e), 0);
	assert_true(bound >= used);
	assert_true(bound > 0);
	assert_int_equal(cg_kill(cg, &e), 0);
	waitpid(pid, NULL, 0);
	assert_int_equal(cg_oom_kills(cg), 0);
	assert_int_equal(cg_destroy(cg, &e), 0);
	struct stat st;
	assert_int_not_equal(stat(cg->dir[CG_PIDS], &st), 0);
	cg_free(cg);
}

/* A child attached to cg that forks as fast as it can (the pids limit
 * stops it; it keeps trying). Returns its pid. */
static pid_t fork_loop(struct cg *cg)
{
	int go[2];
	assert_int_equal(pipe(go), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char c;
		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(1);
		for (;;) {
			pid_t p = fork();
			if (p == 0)
				continue; /* the child forks on too */
			if (p < 0)
				nanosleep(&(struct timespec){0, 1000 * 1000}, NULL);
		}
	}
	close(go[0]);
	struct dy_error *e = NULL;
	assert_int_equal(cg_attach(cg, pid, &e), 0);
	assert_int_equal(write(go[1], "g", 1), 1);
	close(go[1]);
	return pid;
}

static void test_kill_fork_loop(void **state)
{
	if (geteuid() != 0)
		skip();
	struct cg_limits lim = {.memory = 64ULL << 20, .pids = 64, .cpu = 1};
	struct cg *cg = NULL;
	struct dy_error *e = NULL;
	assert_int_equal(cg_create(parent, "forks", &lim, &cg, &e), 0);
	pid_t pid = fork_loop(cg);
	/* until the pids limit is reached */
	for (int i = 0; i < 200 && cg_count(cg) < 60; i++)
		nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
	assert_true(cg_count(cg) >= 32);
	if (cg_kill(cg, &e) < 0)
		fail_msg("%s", dy_error_msg(e));
	/* cg_kill returns once cgroup.procs is empty */
	assert_int_equal(cg_count(cg), 0);
	waitpid(pid, NULL, 0);
	assert_int_equal(cg_destroy(cg, &e), 0);
	cg_free(cg);
}

/* A child that waits for a signal. */
static pid_t fork_pause(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		pause();
		_exit(0);
	}
	return pid;
}

static void test_signal_only_members(void **state)
{
	if (geteuid() != 0)
		skip();
	struct cg_limits lim = {.memory = 64ULL << 20, .pids = 16, .cpu = 1};
	struct cg *cg = NULL;
	struct dy_error *e = NULL;
	assert_int_equal(cg_create(parent, "members", &lim, &cg, &e), 0);
	pid_t outside = fork_pause();
	pid_t inside = fork_pause();
	assert_true(outside > 0 && inside > 0);
	assert_int_equal(cg_attach(cg, inside, &e), 0);
	assert_true(cg_has(cg, inside));
	assert_false(cg_has(cg, getpid()));

	/* this test process and a child of the host: refused, both alive */
	assert_int_equal(cg_signal(cg, getpid(), SIGKILL), 0);
	assert_int_equal(cg_signal(cg, outside, SIGKILL), 0);
	int st;
	assert_int_equal(waitpid(outside, &st, WNOHANG), 0);
	/* a process of the cgroup: signalled */
	assert_int_equal(cg_signal(cg, inside, SIGKILL), 1);
	assert_int_equal(waitpid(inside, &st, 0), inside);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	/* gone: nothing to signal */
	assert_int_equal(cg_signal(cg, inside, SIGKILL), 0);

	/* cg_kill of the cgroup leaves the outsider alone */
	assert_int_equal(cg_kill(cg, &e), 0);
	assert_int_equal(waitpid(outside, &st, WNOHANG), 0);
	kill(outside, SIGKILL);
	waitpid(outside, NULL, 0);
	assert_int_equal(cg_destroy(cg, &e), 0);
	cg_free(cg);
}

static void test_destroy_busy_then_retry(void **state)
{
	if (geteuid() != 0)
		skip();
	struct cg_limits lim = {.memory = 64ULL << 20, .pids = 16, .cpu = 1};
	struct cg *cg = NULL;
	struct dy_error *e = NULL;
	assert_int_equal(cg_create(parent, "busy", &lim, &cg, &e), 0);
	pid_t pid = fork_pause();
	assert_true(pid > 0);
	assert_int_equal(cg_attach(cg, pid, &e), 0);

	/* a process inside: EBUSY, and the error says which directory and why */
	assert_int_equal(cg_destroy(cg, &e), -EBUSY);
	const char *msg = dy_error_msg(e);
	char want[4096];
	snprintf(want, sizeof(want), "cannot remove %s: %s (1 process still inside: %d)",
	         cg->dir[CG_MEMORY], strerror(EBUSY), (int)pid);
	if (!strstr(msg, want))
		fail_msg("%s\nnot in: %s", want, msg);
	assert_non_null(strstr(msg, "also left: pids"));
	assert_int_equal(e->errnum, EBUSY);
	dy_error_free(&e);
	struct stat st;
	assert_int_equal(stat(cg->dir[CG_PIDS], &st), 0);

	/* once it is gone, a second call removes what is left; a third finds
	 * nothing to do */
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	assert_int_equal(cg_destroy(cg, &e), 0);
	assert_int_not_equal(stat(cg->dir[CG_PIDS], &st), 0);
	assert_int_not_equal(stat(cg->dir[CG_MEMORY], &st), 0);
	assert_int_equal(cg_destroy(cg, &e), 0);
	cg_free(cg);
}

static void test_bad_limit_fails_cleanly(void **state)
{
	if (geteuid() != 0)
		skip();
	/* the kernel rounds a memory limit down to whole pages: 2 x 1000
	 * bytes reads back as 0, and the start must fail, leaving nothing */
	struct cg_limits lim = {.memory = 1000, .pids = 16, .cpu = 1};
	struct cg *cg = NULL;
	struct dy_error *e = NULL;
	int r = cg_create(parent, "b", &lim, &cg, &e);
	if (r == 0) {
		cg_destroy(cg, NULL);
		cg_free(cg);
		skip();
	}
	assert_non_null(strstr(dy_error_msg(e), "reads back"));
	dy_error_free(&e);
	enum cg_version v;
	char *mp = NULL;
	assert_int_equal(cg_detect(CG_PIDS, &v, &mp, NULL), 0);
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s/b", mp, parent);
	struct stat st;
	assert_int_not_equal(stat(path, &st), 0);
	free(mp);
}

static void test_sweep(void **state)
{
	if (geteuid() != 0)
		skip();
	struct cg_limits lim = {.memory = 32ULL << 20, .pids = 16, .cpu = 1};
	struct cg *cg = NULL;
	assert_int_equal(cg_create(parent, "left", &lim, &cg, NULL), 0);
	cg_free(cg); /* the launcher "crashed": the directories stay */
	assert_int_equal(cg_create(parent, "other-1", &lim, &cg, NULL), 0);
	cg_free(cg); /* and another launcher's, with another prefix */
	/* a prefix sweeps its own only */
	assert_int_equal(cg_sweep(parent, "le", NULL, NULL), 1);
	assert_int_equal(cg_sweep(parent, "le", NULL, NULL), 0);
	assert_int_equal(cg_sweep(parent, NULL, NULL, NULL), 1);
	assert_int_equal(cg_sweep(parent, NULL, NULL, NULL), 0);
}

/* The parent of every dyno: capped, read back, locked by one owner. */
static void test_parent_setup(void **state)
{
	if (geteuid() != 0)
		skip();
	struct cg_parent_caps caps = {.memory = 3ULL << 30, .pids = 1000};
	int lock = -1;
	pid_t holder = 0;
	struct dy_error *err = NULL;
	char top[128];
	snprintf(top, sizeof(top), "%s-top", parent);
	if (cg_parent_setup(top, &caps, &lock, &holder, &err) < 0)
		fail_msg("%s", dy_error_msg(err));
	assert_true(lock >= 0);
	enum cg_version v;
	char *mp = NULL;
	char path[4096], buf[64];
	assert_int_equal(cg_detect(CG_PIDS, &v, &mp, NULL), 0);
	snprintf(path, sizeof(path), "%s/%s/pids.max", mp, top);
	free(mp);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	assert_string_equal(buf, "1000\n");
	assert_int_equal(cg_detect(CG_MEMORY, &v, &mp, NULL), 0);
	snprintf(path, sizeof(path), "%s/%s/%s", mp, top,
	         v == CG_V2 ? "memory.max" : "memory.limit_in_bytes");
	free(mp);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	assert_int_equal(strtoull(buf, NULL, 10), 3ULL << 30);

	/* a second owner is refused, and told who holds it */
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		int l2 = -1;
		pid_t h = 0;
		int r = cg_parent_setup(top, &caps, &l2, &h, NULL);
		_exit(r == -EWOULDBLOCK && h == getppid() ? 0 : 1);
	}
	int status;
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(lock);

	/* a name, not a path */
	assert_true(cg_parent_setup("a/b", &caps, &lock, &holder, &err) < 0);
	assert_string_equal(dy_error_msg(err), "cgroup parent \"a/b\": expected a name");
	dy_error_free(&err);
	/* caps from the host: a reserve must leave something */
	struct cg_parent_caps hc;
	assert_int_equal(cg_parent_caps_for_host(1ULL << 30, 4096, &hc, NULL), 0);
	assert_true(hc.memory > 0 && hc.pids > 0);
	assert_true(cg_parent_caps_for_host(UINT64_MAX, 0, &hc, &err) < 0);
	assert_non_null(strstr(dy_error_msg(err), "is not below the host's memory"));
	dy_error_free(&err);
	for (int c = 0; c < CG_N_CTRL; c++) {
		if (cg_detect(c, &v, &mp, NULL) < 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", mp, top);
		rmdir(path);
		free(mp);
	}
}

static int teardown(void **state)
{
	for (int c = 0; c < CG_N_CTRL; c++) {
		enum cg_version v;
		char *mp = NULL;
		if (cg_detect(c, &v, &mp, NULL) == 0) {
			char path[4096];
			snprintf(path, sizeof(path), "%s/%s", mp, parent);
			rmdir(path);
			free(mp);
		}
	}
	return 0;
}

int main(void)
{
	snprintf(parent, sizeof(parent), "dyno-unit-%d", (int)getpid());
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_detect),
	    cmocka_unit_test(test_values_v1),
	    cmocka_unit_test(test_values_v2),
	    cmocka_unit_test(test_enable_v2),
	    cmocka_unit_test(test_create_limits_kill_destroy),
	    cmocka_unit_test(test_bad_limit_fails_cleanly),
	    cmocka_unit_test(test_sweep),
	    cmocka_unit_test(test_parent_setup),
	    cmocka_unit_test(test_kill_fork_loop),
	    cmocka_unit_test(test_signal_only_members),
	    cmocka_unit_test(test_destroy_busy_then_retry),
	};
	return cmocka_run_group_tests(tests, NULL, teardown);
}
