/* common/lock: one holder per directory, named to the second. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/lock.h"

static void test_second_holder_refused_and_named(void **state)
{
	char dir[] = "/tmp/test-lock-XXXXXX";
	assert_non_null(mkdtemp(dir));
	int ready[2], done[2];
	assert_int_equal(pipe(ready), 0);
	assert_int_equal(pipe(done), 0);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		int fd;
		if (dy_lock_dir(dir, &fd, NULL, NULL) < 0)
			_exit(1);
		char c = 1;
		if (write(ready[1], &c, 1) != 1 || read(done[0], &c, 1) < 0)
			_exit(2);
		_exit(0);
	}
	char c;
	assert_int_equal(read(ready[0], &c, 1), 1);

	int fd = -1;
	pid_t holder = 0;
	assert_int_equal(dy_lock_dir(dir, &fd, &holder, NULL), -EWOULDBLOCK);
	assert_int_equal(fd, -1);
	assert_int_equal(holder, child);

	/* the lock goes with its process */
	assert_int_equal(write(done[1], &c, 1), 1);
	int status;
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(dy_lock_dir(dir, &fd, &holder, NULL), 0);
	assert_true(fd >= 0);
	assert_int_equal(dy_lock_holder(fd), 0); /* ourselves only */
	close(fd);
	rmdir(dir);
	close(ready[0]);
	close(ready[1]);
	close(done[0]);
	close(done[1]);
}

static void test_missing_or_not_a_directory(void **state)
{
	int fd = -1;
	struct dy_error *err = NULL;
	assert_true(dy_lock_dir("/nonexistent-dyno-lock", &fd, NULL, &err) < 0);
	assert_string_equal(dy_error_msg(err),
	                    "open /nonexistent-dyno-lock: No such file or directory");
	dy_error_free(&err);
	assert_true(dy_lock_dir("/etc/hostname", &fd, NULL, &err) < 0);
	assert_string_equal(dy_error_msg(err), "open /etc/hostname: Not a directory");
	dy_error_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_second_holder_refused_and_named),
	    cmocka_unit_test(test_missing_or_not_a_directory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
