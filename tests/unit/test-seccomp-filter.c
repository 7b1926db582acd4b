/* The seccomp policy, loaded into a forked child (no root needed: the
 * child sets no_new_privs first). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <linux/sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "runtime/seccomp-filter.h"

static void test_compiled_once(void **state)
{
	const struct sock_fprog *a = NULL, *b = NULL;
	assert_int_equal(seccomp_policy_get(&a, NULL), 0);
	assert_int_equal(seccomp_policy_get(&b, NULL), 0);
	assert_non_null(a);
	assert_ptr_equal(a, b);
	assert_ptr_equal(a->filter, b->filter);
	assert_true(a->len > 100);
}

/* Runs fn in a child under the policy; returns its wait status. */
static int under_policy(int (*fn)(void))
{
	const struct sock_fprog *prog;
	assert_int_equal(seccomp_policy_get(&prog, NULL), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
		    seccomp_policy_load(prog, NULL) < 0)
			_exit(100);
		_exit(fn());
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return st;
}

static int errno_of(long r)
{
	return r < 0 ? errno : 0;
}

static int denied_calls(void)
{
	if (errno_of(syscall(SYS_unshare, CLONE_NEWNS)) != EPERM)
		return 1;
	if (errno_of(syscall(SYS_mount, "none", "/", "tmpfs", 0, NULL)) != EPERM)
		return 2;
	if (errno_of(syscall(SYS_ptrace, 0, 0, 0, 0)) != EPERM)
		return 3;
	if (errno_of(syscall(SYS_bpf, 0, NULL, 0)) != EPERM)
		return 4;
	if (errno_of(syscall(SYS_keyctl, 0, 0, 0, 0, 0)) != EPERM)
		return 5;
	if (errno_of(syscall(SYS_setns, 0, 0)) != EPERM)
		return 6;
	if (errno_of(syscall(SYS_clock_settime, 0, NULL)) != EPERM)
		return 7;
	/* clone with a namespace flag: EPERM; a plain one works */
	if (errno_of(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, 0)) != EPERM)
		return 8;
	return 0;
}

static int fallback_calls(void)
{
	struct clone_args ca = {.exit_signal = SIGCHLD};
	if (errno_of(syscall(SYS_clone3, &ca, sizeof(ca))) != ENOSYS)
		return 1;
	/* not in the allowlist at all */
	if (errno_of(syscall(SYS_kcmp + 1000, 0)) != ENOSYS)
		return 2;
	pid_t p = fork(); /* glibc: clone */
	if (p == 0)
		_exit(7);
	int st;
	if (p < 0 || waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st) != 7)
		return 3;
	if (getpid() <= 0)
		return 4;
	return 0;
}

#ifdef __x86_64__
static int int80_call(void)
{
	long r;
	__asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory");
	return r > 0 ? 0 : 1;
}
#endif

static void test_denied(void **state)
{
	int st = under_policy(denied_calls);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_enosys_fallback(void **state)
{
	int st = under_policy(fallback_calls);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_foreign_arch_killed(void **state)
{
#ifdef __x86_64__
	pid_t p = fork();
	if (p == 0)
		_exit(int80_call());
	int st;
	waitpid(p, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		skip(); /* no i386 emulation in this kernel */
	st = under_policy(int80_call);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGSYS);
#else
	skip();
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_compiled_once),
	    cmocka_unit_test(test_denied),
	    cmocka_unit_test(test_enosys_fallback),
	    cmocka_unit_test(test_foreign_arch_killed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
