/* The dyno's seccomp policy (docs/design.md, "A dyno, from inside"), modelled on
 * Docker's default profile: an allowlist; the namespace, mount, ptrace, bpf,
 * keyctl, perf, module, reboot and clock families fail with EPERM; any other
 * call fails with ENOSYS (so libc falls back, as glibc does for clone3); a
 * foreign architecture (i386 int 0x80, x32) kills the process. */
#pragma once

#include <linux/filter.h>
#include <stdbool.h>

#include "common/error.h"

/* The policy compiled to BPF once per process (libseccomp) and kept: later
 * calls return the same program. Call it in the launcher before clone, so
 * that the child only loads it. *ret points to static storage. Returns 0
 * or < 0. */
int seccomp_policy_get(const struct sock_fprog **ret, struct dy_error **err);

/* The same policy compiled afresh, as a binary tree over the syscall
 * numbers (tree: what seccomp_policy_get() uses) or as libseccomp's plain
 * list; ret->filter is malloc'ed, the caller's. For the test that both
 * decide every call alike. Returns 0 or < 0. */
int seccomp_policy_compile(bool tree, struct sock_fprog *ret, struct dy_error **err);

/* A sealed memfd holding the compiled program (struct sock_filter array),
 * for a process that execs before it loads the policy (dyno-init); -1
 * before seccomp_policy_get() succeeded. Owned by this module. */
int seccomp_policy_fd(void);

/* Reads a program written by seccomp_policy_fd()'s memfd from fd into
 * *ret (its filter is malloc'ed, owned by the caller). Returns 0 or < 0. */
int seccomp_policy_read(int fd, struct sock_fprog *ret, struct dy_error **err);

/* Loads prog into the calling thread (no_new_privs must be set). Returns 0
 * or < 0. Async-signal-safe: fit for a child after fork. */
int seccomp_policy_load(const struct sock_fprog *prog, struct dy_error **err);
