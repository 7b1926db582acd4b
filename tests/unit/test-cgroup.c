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
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "runtime/cgroup.h"

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
	uint64_t used = 0;
	assert_int_equal(cg_quota_usage(cg, &used, &e), 0);
	assert_int_equal(cg_kill(cg, &e), 0);
	waitpid(pid, NULL, 0);
	assert_int_equal(cg_oom_kills(cg), 0);
	assert_int_equal(cg_destroy(cg, &e), 0);
	struct stat st;
	assert_int_not_equal(stat(cg->dir[CG_PIDS], &st), 0);
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
	assert_int_equal(cg_sweep(parent, NULL, NULL), 1);
	assert_int_equal(cg_sweep(parent, NULL, NULL), 0);
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
	    cmocka_unit_test(test_create_limits_kill_destroy),
	    cmocka_unit_test(test_bad_limit_fails_cleanly),
	    cmocka_unit_test(test_sweep),
	};
	return cmocka_run_group_tests(tests, NULL, teardown);
}
