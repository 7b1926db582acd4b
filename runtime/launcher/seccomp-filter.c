/* The seccomp policy; see seccomp-filter.h. */
#include "runtime/launcher/seccomp-filter.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/cleanup.h"

/* Allowed, after Docker's default profile (moby profiles/seccomp/default.json),
 * without the calls that need a capability a dyno never has. Names this
 * libseccomp or architecture does not know are skipped. */
/* clang-format off */
static const char *const allowed[] = {
    "accept", "accept4", "access", "alarm", "arch_prctl", "bind", "brk", "capget", "capset",
    "chdir", "chmod", "chown", "clock_getres", "clock_gettime", "clock_nanosleep", "close",
    "close_range", "connect", "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create",
    "epoll_create1", "epoll_ctl", "epoll_pwait", "epoll_pwait2", "epoll_wait", "eventfd",
    "eventfd2", "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2",
    "fadvise64", "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchown",
    "fchownat", "fcntl", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr",
    "fsetxattr", "fstat", "fstatfs", "fsync", "ftruncate", "futex", "futex_waitv", "futimesat",
    "get_robust_list", "get_thread_area", "getcpu", "getcwd", "getdents", "getdents64",
    "getegid", "geteuid", "getgid", "getgroups", "getitimer", "getpeername", "getpgid",
    "getpgrp", "getpid", "getppid", "getpriority", "getrandom", "getresgid", "getresuid",
    "getrlimit", "getrusage", "getsid", "getsockname", "getsockopt", "gettid", "gettimeofday",
    "getuid", "getxattr", "inotify_add_watch", "inotify_init", "inotify_init1",
    "inotify_rm_watch", "io_cancel", "io_destroy", "io_getevents", "io_pgetevents", "io_setup",
    "io_submit", "ioctl", "ioprio_get", "ioprio_set", "kill", "lchown", "lgetxattr", "link",
    "linkat", "listen", "listxattr", "llistxattr", "lremovexattr", "lseek", "lsetxattr", "lstat",
    "madvise", "membarrier", "memfd_create", "mincore", "mkdir", "mkdirat", "mknod", "mknodat",
    "mlock", "mlock2", "mlockall", "mmap", "mprotect", "mq_getsetattr", "mq_notify", "mq_open",
    "mq_timedreceive", "mq_timedsend", "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv",
    "msgsnd", "msync", "munlock", "munlockall", "munmap", "name_to_handle_at", "nanosleep",
    "newfstatat", "open", "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal",
    "pipe", "pipe2", "poll", "ppoll", "prctl", "pread64", "preadv", "preadv2", "prlimit64",
    "pselect6", "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat",
    "readv", "recvfrom", "recvmmsg", "recvmsg", "remap_file_pages", "removexattr", "rename",
    "renameat", "renameat2", "restart_syscall", "rmdir", "rseq", "rt_sigaction",
    "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
    "rt_sigtimedwait", "rt_tgsigqueueinfo", "sched_get_priority_max", "sched_get_priority_min",
    "sched_getaffinity", "sched_getattr", "sched_getparam", "sched_getscheduler",
    "sched_rr_get_interval", "sched_setaffinity", "sched_setattr", "sched_setparam",
    "sched_setscheduler", "sched_yield", "select", "semctl", "semget", "semop", "semtimedop",
    "sendfile", "sendmmsg", "sendmsg", "sendto", "set_robust_list", "set_thread_area",
    "set_tid_address", "setfsgid", "setfsuid", "setgid", "setgroups", "setitimer", "setpgid",
    "setpriority", "setregid", "setresgid", "setresuid", "setreuid", "setrlimit", "setsid",
    "setsockopt", "setuid", "setxattr", "shmat", "shmctl", "shmdt", "shmget", "shutdown",
    "sigaltstack", "signalfd", "signalfd4", "splice", "stat", "statfs",
    "statx", "symlink", "symlinkat", "sync", "sync_file_range", "syncfs", "sysinfo", "tee",
    "tgkill", "time", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime",
    "timer_settime", "timerfd_create", "timerfd_gettime", "timerfd_settime", "times", "tkill",
    "truncate", "umask", "uname", "unlink", "unlinkat", "utime", "utimensat", "utimes", "vfork",
    "vmsplice", "wait4", "waitid", "write", "writev",
};

/* EPERM: the families a dyno must not use, answered as "not permitted" so
 * that programs report a clear error instead of "not implemented". */
static const char *const denied[] = {
    /* namespaces and mounts */
    "unshare", "setns", "mount", "umount", "umount2", "pivot_root", "chroot", "fsopen",
    "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
    "open_by_handle_at", "swapon", "swapoff", "quotactl", "quotactl_fd",
    /* ptrace */
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    /* bpf, perf, keys */
    "bpf", "perf_event_open", "keyctl", "add_key", "request_key", "userfaultfd",
    "fanotify_init", "lookup_dcookie",
    /* modules, reboot, kexec */
    "init_module", "finit_module", "delete_module", "create_module", "kexec_load",
    "kexec_file_load", "reboot", "acct", "iopl", "ioperm",
    /* clocks */
    "clock_settime", "clock_adjtime", "settimeofday", "adjtimex", "stime",
    /* misc privileged */
    "sethostname", "setdomainname", "vhangup", "nfsservctl", "syslog", "uselib", "ustat",
    "sysfs", "_sysctl", "get_mempolicy", "set_mempolicy", "mbind", "move_pages",
    "migrate_pages",
};

/* clang-format on */

#define NS_FLAGS                                                                                   \
	(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | \
	 CLONE_NEWCGROUP)

static struct sock_fprog policy;
static int compiled;
static int policy_fd = -1;

int seccomp_policy_fd(void)
{
	return policy_fd;
}

int seccomp_policy_read(int fd, struct sock_fprog *ret, struct dy_error **err)
{
	off_t size = lseek(fd, 0, SEEK_END);
	if (size <= 0 || size % sizeof(struct sock_filter) != 0 || size > 65536 * 8)
		return dy_error(err, "seccomp: program of %lld bytes", (long long)size);
	struct sock_filter *prog = malloc((size_t)size);
	if (!prog)
		return dy_error_errno(err, ENOMEM, "malloc");
	if (pread(fd, prog, (size_t)size, 0) != size) {
		int e = errno;
		free(prog);
		return dy_error_errno(err, e, "seccomp: read the program");
	}
	ret->len = (unsigned short)(size / sizeof(struct sock_filter));
	ret->filter = prog;
	return 0;
}

static int build(scmp_filter_ctx ctx, bool tree, struct dy_error **err)
{
	int r;
	/* i386 and x32 calls on x86_64 are a foreign ABI: kill (libseccomp adds
	 * the x32 check for a native x86_64 filter). */
	r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (r < 0)
		return dy_error_errno(err, -r, "seccomp: bad-arch action");
	/* a binary tree over the syscall numbers instead of a list: the
	 * kernel runs the filter once per syscall number when it is loaded
	 * (its cache of always-allowed calls), so a list of ~350 costs half
	 * a millisecond per dyno start, and a call near its end a long walk */
	r = tree ? seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2) : 0;
	if (r < 0)
		return dy_error_errno(err, -r, "seccomp: binary tree");
	for (size_t i = 0; i < ELEMENTSOF(allowed); i++) {
		int nr = seccomp_syscall_resolve_name(allowed[i]);
		if (nr == __NR_SCMP_ERROR || nr < 0)
			continue;
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
		if (r < 0)
			return dy_error_errno(err, -r, "seccomp: allow %s", allowed[i]);
	}
	for (size_t i = 0; i < ELEMENTSOF(denied); i++) {
		int nr = seccomp_syscall_resolve_name(denied[i]);
		if (nr == __NR_SCMP_ERROR || nr < 0)
			continue;
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
		if (r < 0)
			return dy_error_errno(err, -r, "seccomp: deny %s", denied[i]);
	}
	/* clone without a namespace flag is allowed; with one, EPERM. clone3
	 * passes its flags in memory the filter cannot read: it is left out of
	 * the allowlist (ENOSYS) and glibc falls back to clone. */
	r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
	                     SCMP_A0(SCMP_CMP_MASKED_EQ, NS_FLAGS, 0));
	if (r < 0)
		return dy_error_errno(err, -r, "seccomp: clone");
	static const unsigned long ns[] = {CLONE_NEWNS,    CLONE_NEWUTS, CLONE_NEWIPC,
	                                   CLONE_NEWUSER,  CLONE_NEWPID, CLONE_NEWNET,
	                                   CLONE_NEWCGROUP};
	for (size_t i = 0; i < ELEMENTSOF(ns); i++) {
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
		                     SCMP_A0(SCMP_CMP_MASKED_EQ, ns[i], ns[i]));
		if (r < 0)
			return dy_error_errno(err, -r, "seccomp: clone flags");
	}
	/* socket and socketpair: every family but
	 * - AF_VSOCK, which no network namespace or nftables rule confines (it
	 *   reaches the hypervisor, and other guests' dynos with
	 *   vsock_loopback): EAFNOSUPPORT, as a kernel without vsock answers;
	 * - AF_NETLINK with NETLINK_KOBJECT_UEVENT: the host's device events
	 *   (every disk, USB and network device the host adds) reach any
	 *   network namespace's uevent socket; EPROTONOSUPPORT, as a kernel
	 *   without it answers. Other netlink protocols (route: `ip addr`)
	 *   stay, confined to the dyno's own network namespace.
	 * The kernel reads family and protocol as ints: every comparison is a
	 * MASKED_EQ whose mask leaves out the high 32 bits, so a family with
	 * high bits set is the same family (a plain EQ would compare all 64
	 * and let 1 << 32 | AF_VSOCK through). libseccomp leaves the order of
	 * overlapping rules open: the allowed values are disjoint ranges of
	 * the form (x & mask) == value. Values past the ranges (no such family
	 * or protocol) get the policy's default, ENOSYS. */
	_Static_assert(AF_NETLINK == 16 && AF_VSOCK == 40 && NETLINK_KOBJECT_UEVENT == 15,
	               "the ranges below");
	static const struct range {
		uint32_t mask, value;
	} families[] =
	    {
	        {~15u, 0}, {~0u, 17}, {~1u, 18}, {~3u, 20}, {~7u, 24},
	        {~7u, 32}, {~0u, 41}, {~1u, 42}, {~3u, 44}, {~15u, 48},
	    }, /* 0..63 but 16 and 40 */
	    protocols[] = {
	        {~7u, 0}, {~3u, 8}, {~1u, 12}, {~0u, 14}, {~15u, 16},
	    }; /* 0..31 but 15 */
	static const int sock_calls[] = {SCMP_SYS(socket), SCMP_SYS(socketpair)};
	for (size_t i = 0; i < ELEMENTSOF(sock_calls); i++) {
		int sc = sock_calls[i];
		r = 0;
		for (size_t f = 0; r == 0 && f < ELEMENTSOF(families); f++)
			r = seccomp_rule_add(
			    ctx, SCMP_ACT_ALLOW, sc, 1,
			    SCMP_A0_64(SCMP_CMP_MASKED_EQ, families[f].mask, families[f].value));
		for (size_t p = 0; r == 0 && p < ELEMENTSOF(protocols); p++)
			r = seccomp_rule_add(
			    ctx, SCMP_ACT_ALLOW, sc, 2,
			    SCMP_A0_64(SCMP_CMP_MASKED_EQ, ~0u, AF_NETLINK),
			    SCMP_A2_64(SCMP_CMP_MASKED_EQ, protocols[p].mask, protocols[p].value));
		if (r == 0)
			r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), sc, 1,
			                     SCMP_A0_64(SCMP_CMP_MASKED_EQ, ~0u, AF_VSOCK));
		if (r == 0)
			r = seccomp_rule_add(
			    ctx, SCMP_ACT_ERRNO(EPROTONOSUPPORT), sc, 2,
			    SCMP_A0_64(SCMP_CMP_MASKED_EQ, ~0u, AF_NETLINK),
			    SCMP_A2_64(SCMP_CMP_MASKED_EQ, ~0u, NETLINK_KOBJECT_UEVENT));
		if (r < 0)
			return dy_error_errno(err, -r, "seccomp: socket families");
	}
	/* personality: only the values Docker's profile allows (PER_LINUX,
	 * UNAME26, PER_LINUX32, PER_LINUX32|UNAME26, and the query 0xffffffff):
	 * READ_IMPLIES_EXEC and ADDR_NO_RANDOMIZE stay off. */
	static const unsigned long personas[] = {0x0, 0x8, 0x20000, 0x20008, 0xffffffff};
	for (size_t i = 0; i < ELEMENTSOF(personas); i++) {
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(personality), 1,
		                     SCMP_A0(SCMP_CMP_EQ, personas[i]));
		if (r < 0)
			return dy_error_errno(err, -r, "seccomp: personality");
	}
	return 0;
}

/* The policy compiled into a sealed memfd; returns the fd or < 0. */
static int compile(bool tree, struct dy_error **err)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(ENOSYS));
	if (!ctx)
		return dy_error(err, "seccomp: cannot initialise libseccomp");
	int r = build(ctx, tree, err);
	if (r < 0) {
		seccomp_release(ctx);
		return r;
	}
	/* libseccomp 2.5 exports BPF to an fd only: a memfd, read back and
	 * kept (sealed) for dyno-init, which loads it after its exec */
	int fd = memfd_create("dyno-seccomp", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0) {
		seccomp_release(ctx);
		return dy_error_errno(err, errno, "seccomp: memfd_create");
	}
	r = seccomp_export_bpf(ctx, fd);
	seccomp_release(ctx);
	if (r < 0) {
		close(fd);
		return dy_error_errno(err, -r, "seccomp: export");
	}
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
		int e = errno;
		close(fd);
		return dy_error_errno(err, e, "seccomp: seal the program");
	}
	return fd;
}

int seccomp_policy_compile(bool tree, struct sock_fprog *ret, struct dy_error **err)
{
	int fd = compile(tree, err);
	if (fd < 0)
		return fd;
	int r = seccomp_policy_read(fd, ret, err);
	close(fd);
	return r;
}

/* starts run on several threads at once (launch.h, "Threads") */
static pthread_mutex_t policy_lock = PTHREAD_MUTEX_INITIALIZER;

int seccomp_policy_get(const struct sock_fprog **ret, struct dy_error **err)
{
	pthread_mutex_lock(&policy_lock);
	int r = 0;
	if (!compiled) {
		int fd = r = compile(true, err);
		if (fd >= 0 && (r = seccomp_policy_read(fd, &policy, err)) < 0)
			close(fd);
		if (r >= 0) {
			policy_fd = fd; /* both kept for the life of the process */
			compiled = 1;
		}
	}
	pthread_mutex_unlock(&policy_lock);
	if (r < 0)
		return r;
	*ret = &policy;
	return 0;
}

int seccomp_policy_load(const struct sock_fprog *prog, struct dy_error **err)
{
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, prog) < 0)
		return dy_error_errno(err, errno, "seccomp");
	return 0;
}
