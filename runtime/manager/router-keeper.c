/* The router keeper: dyno-router started, watched, restarted and re-adopted
 * by dynod, over sockets dynod holds. */
#include "runtime/manager/router-keeper.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/loop.h"
#include "common/macro.h"
#include "runtime/manager/host.h"

#define ROUTER_COMM "dyno-router"

extern char **environ;

struct rkeep {
	struct loop *loop;
	const struct config *cfg;
	char *exe;
	char *config_path;
	char *pidfile;
	int fds[RKEEP_MAX_FDS]; /* dynod's: router.listen's, then admin */
	size_t nfds;
	struct loop_child child; /* io.fd is the router's pidfd while it runs */
	pid_t pid;
	bool adopted;
	uint64_t started; /* loop_now() at the start */
	uint64_t backoff;
	struct loop_timer restart;
	struct loop_timer grace;
	bool stopping;
};

int rkeep_pidfile_format(char *buf, size_t cap, const struct rkeep_pidfile *p)
{
	int n = snprintf(buf, cap, "%d %llu", (int)p->pid, p->start_time);
	for (size_t i = 0; i < p->nfds && n >= 0 && (size_t)n < cap; i++)
		n += snprintf(buf + n, cap - (size_t)n, " %d", p->fds[i]);
	if (n < 0 || (size_t)n + 1 >= cap)
		return -ENOSPC;
	buf[n++] = '\n';
	buf[n] = '\0';
	return n;
}

int rkeep_pidfile_parse(const char *text, struct rkeep_pidfile *ret)
{
	struct rkeep_pidfile p = {0};
	const char *s = text;
	char *end;
	errno = 0;
	long pid = strtol(s, &end, 10);
	if (errno || end == s || *end != ' ' || pid <= 1 || pid > INT32_MAX)
		return -EINVAL;
	p.pid = (pid_t)pid;
	s = end + 1;
	if (*s < '0' || *s > '9')
		return -EINVAL;
	p.start_time = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	s = end;
	while (*s == ' ') {
		s++;
		long fd = strtol(s, &end, 10);
		if (errno || end == s || fd < 3 || fd > 65535 || p.nfds == RKEEP_MAX_FDS)
			return -EINVAL;
		p.fds[p.nfds++] = (int)fd;
		s = end;
	}
	if (strcmp(s, "\n") != 0 || p.nfds == 0)
		return -EINVAL;
	*ret = p;
	return 0;
}

int rkeep_proc_stat(pid_t pid, char comm[16], unsigned long long *ret_start)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return n < 0 ? -errno : -EINVAL;
	buf[n] = '\0';
	/* "PID (COMM) STATE ...": comm may hold spaces and ')', so it ends
	 * at the last ')' (proc(5)) */
	char *open_paren = strchr(buf, '(');
	char *close_paren = strrchr(buf, ')');
	if (!open_paren || !close_paren || close_paren < open_paren)
		return -EINVAL;
	size_t clen = MIN((size_t)(close_paren - open_paren - 1), (size_t)15);
	memcpy(comm, open_paren + 1, clen);
	comm[clen] = '\0';
	/* fields 3.. follow; starttime is field 22 */
	char *s = close_paren + 1;
	for (int field = 3; field <= 22; field++) {
		while (*s == ' ')
			s++;
		if (*s == '\0')
			return -EINVAL;
		if (field == 22) {
			*ret_start = strtoull(s, NULL, 10);
			return 0;
		}
		while (*s && *s != ' ')
			s++;
	}
	return -EINVAL;
}

uint64_t rkeep_next_delay(uint64_t ran_usec, uint64_t *backoff)
{
	if (*backoff < RKEEP_BACKOFF_FIRST)
		*backoff = RKEEP_BACKOFF_FIRST;
	if (ran_usec >= RKEEP_CRASH_USEC) {
		*backoff = RKEEP_BACKOFF_FIRST;
		return 0;
	}
	uint64_t d = *backoff;
	*backoff = MIN(2 * *backoff, RKEEP_BACKOFF_MAX);
	return d;
}

/* The listening socket of a (SO_REUSEADDR, backlog 4096, close-on-exec in
 * dynod: the router gets its copy through dup2 in the child). */
static int bind_addr(const struct config_addr *a, const char *what, struct dy_error **err)
{
	_cleanup_close_ int fd = socket(a->sa.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return dy_error_errno(err, errno, "%s %s: socket", what, a->text);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, &a->sa.sa, a->sa_len) < 0)
		return dy_error_errno(err, errno, "%s %s: bind", what, a->text);
	if (listen(fd, 4096) < 0)
		return dy_error_errno(err, errno, "%s %s: listen", what, a->text);
	return TAKE_FD(fd);
}

/* The configured address of the i-th socket: router.listen's, then
 * router.admin_listen. */
static const struct config_addr *addr_of(const struct rkeep *k, size_t i)
{
	return i < k->cfg->router.listen.n ? &k->cfg->router.listen.addr[i]
	                                   : &k->cfg->router.admin_listen;
}

/* True when fd listens on a (port 0 in the configuration matches any). */
static bool listens_on(int fd, const struct config_addr *a)
{
	int acc = 0;
	socklen_t al = sizeof(acc);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) < 0 || !acc)
		return false;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 || ss.ss_family != a->sa.sa.sa_family)
		return false;
	if (ss.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
		return in->sin_addr.s_addr == a->sa.in.sin_addr.s_addr &&
		       (a->sa.in.sin_port == 0 || in->sin_port == a->sa.in.sin_port);
	}
	if (ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
		return memcmp(&in6->sin6_addr, &a->sa.in6.sin6_addr, sizeof(in6->sin6_addr)) == 0 &&
		       (a->sa.in6.sin6_port == 0 || in6->sin6_port == a->sa.in6.sin6_port);
	}
	return false;
}

static void close_fds(struct rkeep *k)
{
	for (size_t i = 0; i < k->nfds; i++)
		close(k->fds[i]);
	k->nfds = 0;
}

static void on_exit_router(struct loop *loop, struct loop_child *child, const siginfo_t *info);
static void on_grace(struct loop *loop, struct loop_timer *t);

/* Writes router.pid for the router k runs (pid, start time, its fds). */
static int write_pidfile(struct rkeep *k, unsigned long long start, const int *router_fds,
                         struct dy_error **err)
{
	struct rkeep_pidfile p = {.pid = k->pid, .start_time = start, .nfds = k->nfds};
	memcpy(p.fds, router_fds, sizeof(int) * k->nfds);
	char buf[256];
	int n = rkeep_pidfile_format(buf, sizeof(buf), &p);
	if (n < 0)
		return dy_error_errno(err, -n, "%s", k->pidfile);
	return dy_write_file_atomic(k->pidfile, buf, (size_t)n, 0600, err);
}

/* In the child between fork and execve: only async-signal-safe calls (a
 * thread of dynod may hold malloc's lock). Moves the sockets to 3.., closes
 * every other fd, resets the signal mask and dispositions dynod changed
 * (SIGPIPE ignored would survive execve), leaves dynod's session and
 * process group (a terminal's ^C or a kill of dynod's group must not reach
 * the router) and never asks for PDEATHSIG: the router outlives dynod.
 * Reports a failure's errno on report_fd. */
static _Noreturn void child_exec(struct rkeep *k, char **argv, char **envp, char *pid_digits,
                                 int report_fd)
{
	int e = 0;
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	struct sigaction dfl = {.sa_handler = SIG_DFL};
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &dfl, NULL); /* EINVAL for SIGKILL, SIGSTOP: fine */
	if (setsid() < 0)
		goto fail;
	int n = (int)k->nfds;
	/* first above 3+n (a source may sit on a target), then into place;
	 * dup2 clears close-on-exec */
	int tmp[RKEEP_MAX_FDS];
	int report = fcntl(report_fd, F_DUPFD_CLOEXEC, 3 + n);
	if (report < 0)
		goto fail;
	report_fd = report;
	for (int i = 0; i < n; i++)
		if ((tmp[i] = fcntl(k->fds[i], F_DUPFD_CLOEXEC, 3 + n)) < 0)
			goto fail;
	for (int i = 0; i < n; i++)
		if (dup2(tmp[i], 3 + i) < 0)
			goto fail;
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null < 0 || dup2(null, 0) < 0)
		goto fail;
	/* every fd above the sockets but the report (close-on-exec) */
	if (report_fd > 3 + n)
		syscall(SYS_close_range, 3 + n, report_fd - 1, 0);
	syscall(SYS_close_range, report_fd + 1, ~0U, 0);
	/* LISTEN_PID: ours, written without snprintf */
	char digits[16];
	int nd = 0;
	for (unsigned v = (unsigned)getpid(); v > 0 || nd == 0; v /= 10)
		digits[nd++] = (char)('0' + v % 10);
	for (int i = 0; i < nd; i++)
		pid_digits[i] = digits[nd - 1 - i];
	pid_digits[nd] = '\0';
	execve(argv[0], argv, envp);
fail:
	e = errno;
	(void)!write(report_fd, &e, sizeof(e));
	_exit(127);
}

/* Forks and execs the router on k's sockets; returns 0 with k->pid
 * watched and router.pid written, or < 0 (nothing left running). */
static int spawn(struct rkeep *k, struct dy_error **err)
{
	/* argv and envp are made before fork: the child may not allocate */
	char *argv[4] = {k->exe, NULL, NULL, NULL};
	if (k->config_path) {
		argv[1] = "--config";
		argv[2] = k->config_path;
	}
	size_t nenv = 0;
	while (environ[nenv])
		nenv++;
	_cleanup_free_ char **envp = calloc(nenv + 4, sizeof(char *));
	char fds_var[32], pid_var[32], names_var[32 + 5 * RKEEP_MAX_FDS];
	if (!envp)
		return dy_error_errno(err, ENOMEM, "router environment");
	size_t e = 0;
	for (size_t i = 0; i < nenv; i++)
		if (strncmp(environ[i], "LISTEN_", 7) != 0)
			envp[e++] = environ[i];
	snprintf(fds_var, sizeof(fds_var), "LISTEN_FDS=%zu", k->nfds);
	size_t off = (size_t)snprintf(names_var, sizeof(names_var), "LISTEN_FDNAMES=");
	for (size_t i = 0; i < k->nfds; i++)
		off += (size_t)snprintf(names_var + off, sizeof(names_var) - off, "%s%s",
		                        i ? ":" : "", i + 1 < k->nfds ? "http" : "admin");
	strcpy(pid_var, "LISTEN_PID=");
	envp[e++] = fds_var;
	envp[e++] = names_var;
	envp[e++] = pid_var;
	envp[e] = NULL;

	int report[2];
	if (pipe2(report, O_CLOEXEC) < 0)
		return dy_error_errno(err, errno, "router: pipe");
	pid_t pid = fork();
	if (pid < 0) {
		int fe = errno;
		close(report[0]);
		close(report[1]);
		return dy_error_errno(err, fe, "router: fork");
	}
	if (pid == 0)
		child_exec(k, argv, envp, pid_var + strlen("LISTEN_PID="), report[1]);
	close(report[1]);
	/* EOF once execve has closed the pipe; an errno when it failed */
	int child_errno = 0;
	ssize_t n;
	while ((n = read(report[0], &child_errno, sizeof(child_errno))) < 0 && errno == EINTR)
		;
	close(report[0]);
	if (n > 0) {
		waitpid(pid, NULL, 0);
		return dy_error_errno(err, child_errno, "router: exec %s", k->exe);
	}
	k->pid = pid;
	k->adopted = false;
	k->started = loop_now(k->loop);
	int r = loop_child_start(k->loop, &k->child, pid, on_exit_router, err);
	if (r < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		k->pid = 0;
		return r;
	}
	char comm[16];
	unsigned long long start = 0;
	int router_fds[RKEEP_MAX_FDS];
	for (size_t i = 0; i < k->nfds; i++)
		router_fds[i] = 3 + (int)i;
	_cleanup_error_ struct dy_error *werr = NULL;
	if (rkeep_proc_stat(pid, comm, &start) < 0 ||
	    write_pidfile(k, start, router_fds, &werr) < 0)
		/* it runs; only a dynod started again could not adopt it */
		dy_log("router", "%s not written: %s", k->pidfile,
		       werr ? dy_error_msg(werr) : "no start time");
	dy_log("router", "started pid %d (%s%s%s), %zu sockets", (int)pid, k->exe,
	       k->config_path ? " --config " : "", k->config_path ? k->config_path : "", k->nfds);
	return 0;
}

static void start_or_retry(struct rkeep *k)
{
	_cleanup_error_ struct dy_error *err = NULL;
	if (spawn(k, &err) == 0)
		return;
	uint64_t delay = rkeep_next_delay(0, &k->backoff);
	dy_log("router", "not started: %s; retrying in %llu ms", dy_error_msg(err),
	       (unsigned long long)(delay / 1000));
	loop_timer_start(k->loop, &k->restart, delay, NULL);
}

static void on_restart(struct loop *loop, struct loop_timer *t)
{
	start_or_retry(loop_container_of(t, struct rkeep, restart));
}

static void gone(struct rkeep *k)
{
	loop_timer_stop(k->loop, &k->grace);
	unlink(k->pidfile);
	close_fds(k);
	loop_stop(k->loop);
}

static void on_exit_router(struct loop *loop, struct loop_child *child, const siginfo_t *info)
{
	struct rkeep *k = loop_container_of(child, struct rkeep, child);
	pid_t pid = k->pid;
	k->pid = 0;
	char how[64];
	if (info->si_code == CLD_EXITED)
		snprintf(how, sizeof(how), "exited with status %d", info->si_status);
	else if (info->si_code == CLD_KILLED || info->si_code == CLD_DUMPED)
		snprintf(how, sizeof(how), "killed by %s",
		         sigabbrev_np(info->si_status) ? sigabbrev_np(info->si_status)
		                                       : "a signal");
	else
		snprintf(how, sizeof(how), "is gone"); /* adopted: no status */
	if (k->stopping) {
		dy_log("router", "pid %d %s: stopped", (int)pid, how);
		gone(k);
		return;
	}
	/* the listening sockets stay open here: clients wait in the backlog */
	uint64_t ran = loop_now(loop) - k->started;
	uint64_t delay = k->adopted ? 0 : rkeep_next_delay(ran, &k->backoff);
	if (k->adopted)
		k->backoff = RKEEP_BACKOFF_FIRST;
	if (delay == 0) {
		dy_log("router", "pid %d %s: restarting", (int)pid, how);
		start_or_retry(k);
	} else {
		dy_log("router", "pid %d %s %llu ms after its start: restarting in %llu ms",
		       (int)pid, how, (unsigned long long)(ran / 1000),
		       (unsigned long long)(delay / 1000));
		loop_timer_start(loop, &k->restart, delay, NULL);
	}
}

/* Re-adopts the router router.pid names, when it is still that router:
 * pid, start time and comm checked after the pidfd is open (the pidfd pins
 * the process; a pid reused since would show another start time). Its
 * sockets come back with pidfd_getfd(2) and must listen where the
 * configuration says; a router that does not is killed and a new one
 * started. Returns true when adopted. */
static bool adopt(struct rkeep *k)
{
	size_t len = 0;
	FILE *f = fopen(k->pidfile, "re");
	if (!f)
		return false;
	char buf[256];
	len = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[len] = '\0';
	struct rkeep_pidfile p;
	if (rkeep_pidfile_parse(buf, &p) < 0) {
		dy_log("router", "%s unreadable: not adopting", k->pidfile);
		return false;
	}
	if (loop_child_start(k->loop, &k->child, p.pid, on_exit_router, NULL) < 0)
		return false; /* gone */
	char comm[16];
	unsigned long long start;
	if (rkeep_proc_stat(p.pid, comm, &start) < 0 || start != p.start_time ||
	    strcmp(comm, ROUTER_COMM) != 0) {
		loop_child_stop(k->loop, &k->child);
		return false; /* the pid is another process's now */
	}
	bool ok = p.nfds == k->cfg->router.listen.n + 1;
	for (size_t i = 0; ok && i < p.nfds; i++) {
		int fd = (int)syscall(SYS_pidfd_getfd, k->child.io.fd, p.fds[i], 0);
		if (fd < 0) {
			dy_log("router", "pid %d: fd %d: %s", (int)p.pid, p.fds[i],
			       strerror(errno));
			ok = false;
			break;
		}
		k->fds[k->nfds++] = fd; /* close-on-exec, as pidfd_getfd makes it */
		ok = listens_on(fd, addr_of(k, i));
	}
	if (!ok) {
		dy_log("router",
		       "pid %d not adopted (its sockets are gone, or not where the configuration "
		       "says): replacing it",
		       (int)p.pid);
		syscall(SYS_pidfd_send_signal, k->child.io.fd, SIGKILL, NULL, 0);
		/* its sockets close once it is dead: wait (bounded) to bind */
		struct pollfd pfd = {.fd = k->child.io.fd, .events = POLLIN};
		poll(&pfd, 1, 2000);
		loop_child_stop(k->loop, &k->child);
		close_fds(k);
		return false;
	}
	k->pid = p.pid;
	k->adopted = true;
	k->started = loop_now(k->loop);
	dy_log("router", "adopted pid %d (from %s), %zu sockets", (int)p.pid, k->pidfile, k->nfds);
	return true;
}

int rkeep_new(struct loop *loop, const struct config *cfg, const char *config_path,
              struct rkeep **ret, struct dy_error **err)
{
	struct rkeep *k = calloc(1, sizeof(*k));
	if (!k)
		return dy_error_errno(err, ENOMEM, "router keeper");
	k->loop = loop;
	k->cfg = cfg;
	k->backoff = RKEEP_BACKOFF_FIRST;
	k->child.io.fd = -1;
	loop_timer_init(&k->restart, on_restart);
	loop_timer_init(&k->grace, on_grace);
	int r;
	if (asprintf(&k->pidfile, "%s/" RKEEP_PIDFILE, cfg->state_dir) < 0) {
		k->pidfile = NULL;
		r = dy_error_errno(err, ENOMEM, "router keeper");
		goto fail;
	}
	k->exe = host_find_helper("dyno-router");
	if (!k->exe) {
		r = dy_error(err, "dyno-router: not beside dynod, in ../bin nor on PATH (or set "
		                  "router.external)");
		goto fail;
	}
	if (config_path) {
		/* absolute: the router is restarted from wherever */
		k->config_path = realpath(config_path, NULL);
		if (!k->config_path) {
			r = dy_error_errno(err, errno, "%s", config_path);
			goto fail;
		}
	}
	if (adopt(k)) {
		*ret = k;
		return 0;
	}
	for (size_t i = 0; i <= cfg->router.listen.n; i++) {
		bool admin = i == cfg->router.listen.n;
		int fd =
		    bind_addr(addr_of(k, i), admin ? "router.admin_listen" : "router.listen", err);
		if (fd < 0) {
			r = fd;
			goto fail;
		}
		k->fds[k->nfds++] = fd;
	}
	r = spawn(k, err);
	if (r < 0)
		goto fail;
	*ret = k;
	return 0;
fail:
	rkeep_free(k);
	return r;
}

pid_t rkeep_pid(const struct rkeep *k)
{
	return k ? k->pid : 0;
}

static void on_grace(struct loop *loop, struct loop_timer *t)
{
	struct rkeep *k = loop_container_of(t, struct rkeep, grace);
	if (k->pid == 0)
		return;
	dy_log("router", "pid %d still runs after %llu s: SIGKILL", (int)k->pid,
	       (unsigned long long)(RKEEP_STOP_GRACE / 1000000));
	syscall(SYS_pidfd_send_signal, k->child.io.fd, SIGKILL, NULL, 0);
}

void rkeep_stop(struct rkeep *k)
{
	k->stopping = true;
	loop_timer_stop(k->loop, &k->restart);
	if (k->pid == 0) {
		gone(k);
		return;
	}
	dy_log("router", "stopping pid %d: SIGTERM", (int)k->pid);
	/* through the pidfd: the pid cannot have been reused under us */
	syscall(SYS_pidfd_send_signal, k->child.io.fd, SIGTERM, NULL, 0);
	loop_timer_start(k->loop, &k->grace, RKEEP_STOP_GRACE, NULL);
}

void rkeep_free(struct rkeep *k)
{
	if (!k)
		return;
	loop_child_stop(k->loop, &k->child);
	loop_timer_stop(k->loop, &k->restart);
	loop_timer_stop(k->loop, &k->grace);
	close_fds(k);
	free(k->exe);
	free(k->config_path);
	free(k->pidfile);
	free(k);
}
