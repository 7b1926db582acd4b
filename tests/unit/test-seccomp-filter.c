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
#include <sys/socket.h>
#include <string.h>
#include <stdlib.h>
#include <stdbool.h>
#include <linux/seccomp.h>
#include <linux/audit.h>

#include <cmocka.h>

#include "runtime/launcher/seccomp-filter.h"

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

/* A classic BPF interpreter for what libseccomp emits (loads from
 * struct seccomp_data and scratch memory, ALU with constants, jumps,
 * returns): enough to run both programs on the same inputs. Any other
 * instruction fails the test. */
static uint32_t run_bpf(const struct sock_fprog *prog, const struct seccomp_data *d)
{
	uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = {0};
	const uint8_t *data = (const uint8_t *)d;
	for (unsigned pc = 0; pc < prog->len; pc++) {
		const struct sock_filter *f = &prog->filter[pc];
		uint32_t src = BPF_SRC(f->code) == BPF_X ? x : f->k;
		switch (BPF_CLASS(f->code)) {
		case BPF_LD:
			if (f->code == (BPF_LD | BPF_W | BPF_ABS)) {
				assert_true(f->k % 4 == 0 && f->k + 4 <= sizeof(*d));
				memcpy(&a, data + f->k, 4);
			} else if (f->code == (BPF_LD | BPF_MEM)) {
				assert_true(f->k < BPF_MEMWORDS);
				a = mem[f->k];
			} else if (f->code == (BPF_LD | BPF_IMM)) {
				a = f->k;
			} else {
				fail_msg("ld code %#x", f->code);
			}
			break;
		case BPF_LDX:
			if (f->code == (BPF_LDX | BPF_MEM) && f->k < BPF_MEMWORDS)
				x = mem[f->k];
			else if (f->code == (BPF_LDX | BPF_IMM))
				x = f->k;
			else
				fail_msg("ldx code %#x", f->code);
			break;
		case BPF_ST:
			assert_true(f->k < BPF_MEMWORDS);
			mem[f->k] = a;
			break;
		case BPF_STX:
			assert_true(f->k < BPF_MEMWORDS);
			mem[f->k] = x;
			break;
		case BPF_ALU:
			switch (BPF_OP(f->code)) {
			case BPF_AND:
				a &= src;
				break;
			case BPF_OR:
				a |= src;
				break;
			case BPF_ADD:
				a += src;
				break;
			case BPF_SUB:
				a -= src;
				break;
			case BPF_RSH:
				a >>= src;
				break;
			case BPF_LSH:
				a <<= src;
				break;
			default:
				fail_msg("alu code %#x", f->code);
			}
			break;
		case BPF_JMP: {
			bool t;
			switch (BPF_OP(f->code)) {
			case BPF_JA:
				pc += f->k;
				continue;
			case BPF_JEQ:
				t = a == src;
				break;
			case BPF_JGT:
				t = a > src;
				break;
			case BPF_JGE:
				t = a >= src;
				break;
			case BPF_JSET:
				t = (a & src) != 0;
				break;
			default:
				fail_msg("jmp code %#x", f->code);
				return 0;
			}
			pc += t ? f->jt : f->jf;
			break;
		}
		case BPF_RET:
			if (BPF_RVAL(f->code) == BPF_X)
				return x;
			return BPF_RVAL(f->code) == BPF_A ? a : f->k;
		case BPF_MISC:
			if (BPF_MISCOP(f->code) == BPF_TAX)
				x = a;
			else
				a = x;
			break;
		}
	}
	fail_msg("ran off the end of the program");
	return 0;
}

/* The binary tree (what dynos get) decides every call as libseccomp's
 * plain list does: every syscall number of both x86 ABIs and x32, each
 * with first arguments that the argument rules (clone, socket,
 * personality) tell apart, high words set and not. */
static void test_tree_decides_as_list(void **state)
{
#ifndef __x86_64__
	skip(); /* the inputs are x86's ABIs */
#endif
	struct sock_fprog tree, list;
	struct dy_error *e = NULL;
	if (seccomp_policy_compile(true, &tree, &e) < 0 ||
	    seccomp_policy_compile(false, &list, &e) < 0)
		fail_msg("%s", dy_error_msg(e));
	assert_true(tree.len != list.len || memcmp(tree.filter, list.filter, tree.len * 8) != 0);
	static const uint32_t arches[] = {AUDIT_ARCH_X86_64, AUDIT_ARCH_I386, 0xdeadbeef};
	static const uint64_t args[] = {0,
	                                1,
	                                8,
	                                0x20000,
	                                0x20008,
	                                0xffffffff,
	                                0x1ffffffffULL,
	                                AF_UNIX,
	                                AF_INET,
	                                AF_INET6,
	                                AF_NETLINK,
	                                AF_PACKET,
	                                AF_VSOCK,
	                                (uint64_t)AF_VSOCK << 32,
	                                (1ULL << 32) | AF_VSOCK,
	                                15,
	                                (1ULL << 32) | AF_NETLINK,
	                                SIGCHLD,
	                                CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_THREAD,
	                                CLONE_NEWNS,
	                                CLONE_NEWUSER | SIGCHLD,
	                                CLONE_NEWNET | CLONE_VM,
	                                CLONE_NEWCGROUP,
	                                CLONE_NEWPID,
	                                CLONE_NEWUTS,
	                                CLONE_NEWIPC,
	                                CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC};
	/* every number of the tables and beyond, and the edges: -1 (a
	 * ptrace'd call skipped), the x32 bit alone, the top */
	static const uint32_t edges[] = {0xffffffffu, 0x40000000u, 0x3fffffffu,
	                                 0x7fffffffu, 0x80000000u, 0xbfffffffu};
	unsigned long checked = 0, allowed = 0;
	for (size_t ai = 0; ai < sizeof(arches) / sizeof(arches[0]); ai++) {
		for (uint32_t i = 0; i < 2048 + sizeof(edges) / sizeof(edges[0]); i++) {
			uint32_t nr = i < 2048 ? i : edges[i - 2048];
			/* x32 numbers: the same range with bit 30 set */
			for (int x32 = 0; x32 < 2; x32++) {
				for (size_t gi = 0; gi < sizeof(args) / sizeof(args[0]); gi++) {
					struct seccomp_data d = {
					    .nr = (int)(nr | (x32 ? 0x40000000u : 0)),
					    .arch = arches[ai],
					    .args = {args[gi], args[gi], args[gi], 0, 0, 0},
					};
					uint32_t t = run_bpf(&tree, &d), l = run_bpf(&list, &d);
					if (t != l)
						fail_msg(
						    "arch %#x nr %#x arg %#llx: tree %#x, list %#x",
						    d.arch, (unsigned)d.nr,
						    (unsigned long long)args[gi], t, l);
					checked++;
					allowed += t == SECCOMP_RET_ALLOW;
				}
			}
		}
	}
	/* the programs did decide something: a few hundred calls allowed */
	assert_true(allowed > 300 * 5);
	assert_true(checked > 100000);
	free(tree.filter);
	free(list.filter);
}

/* socket(): every family but AF_VSOCK, netlink but its uevent protocol;
 * the kernel reads them as ints, and so must the filter. */
static void test_socket_families(void **state)
{
#ifndef __x86_64__
	skip();
#endif
	struct sock_fprog prog;
	struct dy_error *e = NULL;
	if (seccomp_policy_compile(true, &prog, &e) < 0)
		fail_msg("%s", dy_error_msg(e));
	const uint64_t hi = 1ULL << 32;
	const uint32_t allow = SECCOMP_RET_ALLOW, no_af = SECCOMP_RET_ERRNO | EAFNOSUPPORT,
	               no_proto = SECCOMP_RET_ERRNO | EPROTONOSUPPORT;
	static const int calls[] = {__NR_socket, __NR_socketpair};
	for (size_t c = 0; c < 2; c++) {
		struct {
			uint64_t family, protocol;
			uint32_t want;
		} cases[] = {
		    {AF_UNIX, 0, allow},
		    {AF_INET, 6, allow},
		    {AF_INET6, 17, allow},
		    {AF_PACKET, 0, allow},
		    {AF_VSOCK, 0, no_af},
		    {hi | AF_VSOCK, 0, no_af},
		    {AF_NETLINK, 0 /* route */, allow},
		    {AF_NETLINK, 14, allow},
		    {AF_NETLINK, 16, allow},
		    {AF_NETLINK, 31, allow},
		    {AF_NETLINK, 15 /* NETLINK_KOBJECT_UEVENT */, no_proto},
		    {hi | AF_NETLINK, 15, no_proto},
		    {AF_NETLINK, hi | 15, no_proto},
		    {hi | AF_NETLINK, 0, allow},
		};
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			struct seccomp_data d = {
			    .nr = calls[c],
			    .arch = AUDIT_ARCH_X86_64,
			    .args = {cases[i].family, SOCK_DGRAM, cases[i].protocol, 0, 0, 0},
			};
			uint32_t got = run_bpf(&prog, &d);
			if (got != cases[i].want)
				fail_msg("nr %d family %#llx protocol %#llx: %#x, want %#x",
				         calls[c], (unsigned long long)cases[i].family,
				         (unsigned long long)cases[i].protocol, got, cases[i].want);
		}
		/* every family of 0..63 but 16 and 40 is allowed outright */
		for (uint64_t f = 0; f < 64; f++) {
			if (f == AF_NETLINK || f == AF_VSOCK)
				continue;
			struct seccomp_data d = {.nr = calls[c],
			                         .arch = AUDIT_ARCH_X86_64,
			                         .args = {f, SOCK_STREAM, 15, 0, 0, 0}};
			assert_int_equal(run_bpf(&prog, &d), allow);
		}
	}
	free(prog.filter);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_compiled_once),        cmocka_unit_test(test_denied),
	    cmocka_unit_test(test_enosys_fallback),      cmocka_unit_test(test_foreign_arch_killed),
	    cmocka_unit_test(test_tree_decides_as_list), cmocka_unit_test(test_socket_families),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
