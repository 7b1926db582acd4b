#include <dirent.h>
#include <signal.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/fs.h"

static char base[64];

static int setup(void **state)
{
	snprintf(base, sizeof(base), "/tmp/dyno-test-fs-XXXXXX");
	return mkdtemp(base) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", base);
	return system(cmd) == 0 ? 0 : -1;
}

static size_t count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	size_t n = 0;
	struct dirent *de;
	while (d && (de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	if (d)
		closedir(d);
	return n;
}

static void test_mkdir_p(void **state)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/a/b/c", base);
	assert_int_equal(dy_mkdir_p(path, 0755, NULL), 0);
	assert_int_equal(dy_mkdir_p(path, 0755, NULL), 0); /* existing is fine */
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));

	char file[128], under[160];
	snprintf(file, sizeof(file), "%s/file", base);
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	fclose(f);
	snprintf(under, sizeof(under), "%s/x", file);
	struct dy_error *err = NULL;
	assert_true(dy_mkdir_p(under, 0755, &err) < 0);
	assert_non_null(strstr(dy_error_msg(err), "mkdir"));
	dy_error_free(&err);
}

static void test_write_atomic_replaces(void **state)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/routes.json", base);
	assert_int_equal(dy_write_file_atomic(path, "one\n", 4, 0640, NULL), 0);
	assert_int_equal(dy_write_file_atomic(path, "two!\n", 5, 0600, NULL), 0);
	char buf[16] = {0};
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	assert_int_equal(fread(buf, 1, sizeof(buf) - 1, f), 5);
	fclose(f);
	assert_string_equal(buf, "two!\n");
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(count_entries(base), 1); /* no temporary file left */
}

/* What a killed writer left: its temporary files go, nothing else. */
static void test_remove_stale_tmp(void **state)
{
	static const char *const files[] = {".dynos.json.tmp-a1B2c3", ".app.json.tmp-zzzzzz",
	                                    "dynos.json", ".hidden", "x.tmp-abcdef"};
	char path[256];
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", base, files[i]);
		FILE *f = fopen(path, "w");
		assert_non_null(f);
		fclose(f);
	}
	snprintf(path, sizeof(path), "%s/.dir.tmp-qwerty", base);
	assert_int_equal(mkdir(path, 0700), 0); /* not a file of ours */
	assert_int_equal(dy_remove_stale_tmp(base), 2);
	assert_int_equal(count_entries(base), 4);
	snprintf(path, sizeof(path), "%s/dynos.json", base);
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(dy_remove_stale_tmp("/nonexistent-dyno-dir"), 0);
}

static void test_write_atomic_error_names_path(void **state)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/missing/dir/app.json", base);
	struct dy_error *err = NULL;
	assert_true(dy_write_file_atomic(path, "x", 1, 0600, &err) < 0);
	assert_non_null(strstr(dy_error_msg(err), path));
	dy_error_free(&err);
	assert_int_equal(count_entries(base), 0);
}

static void test_write_all(void **state)
{
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	char big[20000];
	memset(big, 'x', sizeof(big));
	assert_int_equal(dy_write_all(fds[1], big, sizeof(big)), 0);
	close(fds[1]);
	size_t got = 0;
	char buf[4096];
	ssize_t n;
	while ((n = read(fds[0], buf, sizeof(buf))) > 0)
		got += (size_t)n;
	assert_int_equal(got, sizeof(big));
	/* a closed reader: an error, not a hang or a signal */
	assert_int_equal(pipe(fds), 0);
	close(fds[0]);
	signal(SIGPIPE, SIG_IGN);
	assert_int_equal(dy_write_all(fds[1], "x", 1), -1);
	assert_int_equal(errno, EPIPE);
	close(fds[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_write_all),
	    cmocka_unit_test_setup_teardown(test_mkdir_p, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_write_atomic_replaces, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_remove_stale_tmp, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_write_atomic_error_names_path, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
