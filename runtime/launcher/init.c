/* The dyno's init; see init.h. */
#include "runtime/launcher/init.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/attach.h"
#include "common/cleanup.h"
#include "common/heroku-codes.h"
#include "runtime/launcher/privs.h"
#include "runtime/launcher/seccomp-filter.h"
#include "runtime/launcher/sync.h"

static const int forwarded[] = {SIGTERM, SIGINT,   SIGHUP,  SIGQUIT, SIGUSR1,
                                SIGUSR2, SIGWINCH, SIGCONT, SIGALRM};

struct msg {
	struct msg *next;
	size_t len;
	char data[];
};

struct stream {
	int fd;
	size_t len;
	char buf[INIT_LINE_MAX];
};

struct init_state {
	const struct init_params *p;
	pid_t app;
	int sigfd;
	int sock;              /* connected to the sink, or -1 */
	uint64_t next_connect; /* CLOCK_MONOTONIC us: no connect attempt before */
	bool has_sink;
	bool blocked; /* the sink's queue is full: wait for POLLOUT */
	struct sockaddr_un addr;
	socklen_t addr_len;
	struct stream out, err;
	bool stopping; /* SIGTERM forwarded: wait for every process */
	bool app_done;
	int app_status;
	struct msg *head, *tail;
	size_t queued;
	unsigned long long dropped;
	/* attached (p->attach_fd >= 0): the client's connection, -1 once
	 * gone; the app's stdin (a pipe's end, or the pty's master) */
	int attach;
	int in_fd;
	int master; /* the pty's master, or -1 */
	size_t alen;
	char abuf[ATTACH_HEADER + ATTACH_MAX_LEN];
};

static const char profile_script[] =
    "for f in /app/.profile.d/*.sh; do [ -r \"$f\" ] && . \"$f\"; done; unset f; "
    "[ -r /app/.profile ] && . /app/.profile; ";

/* In the app's child: report (LAUNCH_SYNC_ERROR, its errno with it) and
 * leave. */
static __attribute__((noreturn)) void app_fail(int errfd, struct dy_error *e)
{
	launch_sync_send_error(errfd, e);
	_exit(127);
}

static __attribute__((noreturn)) void app_child(const struct init_params *p, int in, int out,
                                                int errp, const char *tty, int errfd)
{
	struct dy_error *e = NULL;
	sigset_t all;
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	/* every disposition back to the default: an ignored signal inherited
	 * from dynod (or from init) must not reach the app */
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	/* nothing of dynod's own settings either: no core dumps (a pipe
	 * core_pattern would run them on the host), the OOM killer free to
	 * pick the app (dynod runs at -900) */
	struct rlimit no_core = {0, 0};
	setrlimit(RLIMIT_CORE, &no_core);
	int adj = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (adj >= 0) {
		if (write(adj, "0", 1) < 0) {
			/* raising it back needs no privilege; lowering it would */
		}
		close(adj);
	}
	setsid();
	if (tty) {
		/* opened by a session leader without O_NOCTTY: the pty becomes
		 * the controlling terminal (Ctrl-C is the line discipline's);
		 * the app's own, so that it may open /dev/pts/N again */
		int t = open(tty, O_RDWR | O_CLOEXEC);
		if (t < 0 || fchown(t, p->uid, p->gid) < 0 || dup2(t, 0) < 0 || dup2(t, 1) < 0 ||
		    dup2(t, 2) < 0) {
			dy_error_errno(&e, errno, "open %s", tty);
			app_fail(errfd, e);
		}
	} else {
		int null = in >= 0 ? in : open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (null < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(errp, 2) < 0) {
			dy_error_errno(&e, errno, "stdio");
			app_fail(errfd, e);
		}
	}
	if (chdir("/app") < 0) {
		dy_error_errno(&e, errno, "chdir /app");
		app_fail(errfd, e);
	}
	if (privs_drop(p->uid, p->gid, &e) < 0 || seccomp_policy_load(p->filter, &e) < 0)
		app_fail(errfd, e);
	size_t n = strlen(profile_script) + strlen(p->command) + 1;
	char *script = malloc(n);
	if (!script) {
		dy_error_errno(&e, ENOMEM, "malloc");
		app_fail(errfd, e);
	}
	snprintf(script, n, "%s%s", profile_script, p->command);
	char *argv[] = {"bash", "-c", script, NULL};
	execve("/bin/bash", argv, p->envp);
	if (errno == ENOENT) {
		argv[0] = "sh";
		execve("/bin/sh", argv, p->envp);
	}
	dy_error_errno(&e, errno, "exec %s", argv[0]);
	app_fail(errfd, e);
}

int init_start(const struct init_params *p, struct init_state **ret, struct dy_error **err)
{
	int out[2] = {-1, -1}, errp[2] = {-1, -1}, rep[2] = {-1, -1}, in[2] = {-1, -1};
	struct init_state *st = calloc(1, sizeof(*st));
	if (!st)
		return dy_error_errno(err, ENOMEM, "calloc");
	st->p = p;
	st->sock = st->sigfd = -1;
	st->attach = p->attach_fd;
	st->in_fd = st->master = -1;
	char tty[64] = "";

	/* checked before the app exists */
	if (p->sink_path) {
		st->has_sink = true;
		st->addr.sun_family = AF_UNIX;
		size_t l = strlen(p->sink_path);
		if (l >= sizeof(st->addr.sun_path)) {
			free(st);
			return dy_error(err, "log sink %s: name too long", p->sink_path);
		}
		memcpy(st->addr.sun_path, p->sink_path, l + 1);
		st->addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + l + 1);
	}

	/* the signals are taken by a signalfd before the app exists, so that
	 * none reaching PID 1 is lost (PID 1 gets no signal it has no handler
	 * for; blocked signals are queued, kernel/signal.c sig_ignored()) */
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	for (size_t i = 0; i < ELEMENTSOF(forwarded); i++)
		sigaddset(&mask, forwarded[i]);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	st->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (st->sigfd < 0)
		goto fail_errno;
	/* the app's report: a socket pair, so that a failure before its exec
	 * comes as a sync message (sync.h) with its errno */
	if (pipe2(out, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 ||
	    socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, rep) < 0)
		goto fail_errno;
	if (p->attach_fd >= 0 && p->attach_tty) {
		/* in the dyno's own devpts (mounts.c, newinstance): the app's
		 * tty names /dev/pts/N of its own file system */
		st->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
		if (st->master < 0 || unlockpt(st->master) < 0 ||
		    ptsname_r(st->master, tty, sizeof(tty)) != 0)
			goto fail_errno;
	} else if (p->attach_fd >= 0 && pipe2(in, O_CLOEXEC) < 0) {
		goto fail_errno;
	}

	st->app = fork();
	if (st->app < 0)
		goto fail_errno;
	if (st->app == 0)
		app_child(p, in[0], out[1], errp[1], tty[0] ? tty : NULL, rep[1]);
	close(out[1]);
	close(errp[1]);
	close(rep[1]);
	st->out.fd = out[0];
	st->err.fd = errp[0];
	if (in[0] >= 0) {
		close(in[0]);
		st->in_fd = in[1];
	}
	if (st->master >= 0) {
		/* the pty carries both streams: the pipes stay unused */
		close(out[0]);
		close(errp[0]);
		out[0] = errp[0] = -1;
		st->out.fd = st->in_fd = st->master;
		st->err.fd = -1;
	}
	fcntl(st->out.fd, F_SETFL, O_NONBLOCK);
	if (st->err.fd >= 0)
		fcntl(st->err.fd, F_SETFL, O_NONBLOCK);
	if (st->in_fd >= 0)
		fcntl(st->in_fd, F_SETFL, O_NONBLOCK);

	/* end of stream on the report socket: exec closed the app's end
	 * (SOCK_CLOEXEC), the command runs; else its LAUNCH_SYNC_ERROR */
	struct launch_sync_msg m;
	int r = launch_sync_read(rep[0], 0, &m, err);
	close(rep[0]);
	if (r > 0)
		r = m.type == LAUNCH_SYNC_ERROR
		        ? launch_sync_error(&m, err)
		        : dy_error_errno(err, EPROTO, "sync: got %s from the app before its exec",
		                         launch_sync_type_str((enum launch_sync_type)m.type));
	if (r < 0) {
		waitpid(st->app, NULL, 0);
		if (st->out.fd >= 0)
			close(st->out.fd);
		if (st->err.fd >= 0)
			close(st->err.fd);
		if (in[1] >= 0)
			close(in[1]);
		close(st->sigfd);
		free(st);
		return r;
	}

	*ret = st;
	return 0;

fail_errno:;
	int e = errno;
	for (int i = 0; i < 2; i++) {
		if (out[i] >= 0)
			close(out[i]);
		if (errp[i] >= 0)
			close(errp[i]);
		if (rep[i] >= 0)
			close(rep[i]);
		if (in[i] >= 0)
			close(in[i]);
	}
	if (st->master >= 0)
		close(st->master);
	if (st->sigfd >= 0)
		close(st->sigfd);
	free(st);
	return dy_error_errno(err, e, "start the app");
}

/* A connected datagram socket, so that poll() tells when the sink's queue
 * has room again (unix_dgram_poll() checks the peer's queue; for an
 * unconnected socket it cannot). A sink that went away (ECONNREFUSED) is
 * connected again by path: its successor is another socket. */
static uint64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static bool sink_connect(struct init_state *st)
{
	if (st->sock >= 0)
		return true;
	/* while the sink is away, one attempt per 500 ms: an app that floods
	 * its output must not turn init into a connect() loop on a core */
	uint64_t now = mono_us();
	if (now < st->next_connect)
		return false;
	st->sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (st->sock < 0)
		return false;
	if (connect(st->sock, (struct sockaddr *)&st->addr, st->addr_len) < 0) {
		close(st->sock);
		st->sock = -1;
		st->next_connect = now + 500000;
		return false;
	}
	return true;
}

/* Sends one datagram; returns 1 sent, 0 the sink cannot take it now. */
static int send_one(struct init_state *st, const char *data, size_t len)
{
	if (!st->has_sink)
		return 1; /* no sink: lines are discarded, never block */
	if (!sink_connect(st))
		return 0;
	ssize_t r = send(st->sock, data, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (r >= 0 || errno == EMSGSIZE) {
		st->blocked = false;
		return 1;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
		st->blocked = true;
	} else {
		close(st->sock); /* the sink went away */
		st->sock = -1;
		st->blocked = false;
	}
	return 0;
}

/* "2026-11-26T11:00:00.123456+00:00 SOURCE[<dyno>]: " into buf (at least
 * 128 bytes); returns its length, 0 when it does not fit. */
static size_t line_head(const struct init_state *st, const char *source, char *buf, size_t size)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	int n = snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%06ld+00:00 %s[%s]: ",
	                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	                 tm.tm_sec, ts.tv_nsec / 1000, source, st->p->name);
	return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

static void flush(struct init_state *st)
{
	if (st->dropped) {
		char note[256];
		size_t h = line_head(st, "dyno", note, sizeof(note));
		int n = snprintf(note + h, sizeof(note) - h, HK_ERROR_FMT ": %llu log lines dropped",
		                 HK_ERROR_ARGS(HK_L10), st->dropped);
		if (n < 0 || !send_one(st, note, h + (size_t)n))
			return;
		st->dropped = 0;
	}
	/* a backlog goes out packed, lines joined by '\n' in datagrams of at
	 * most INIT_DGRAM_MAX bytes: a flood costs the sink's queue a slot
	 * per datagram, not per line */
	static char pack[INIT_DGRAM_MAX];
	while (st->head) {
		size_t len = 0, n = 0;
		for (struct msg *m = st->head; m && len + (n > 0) + m->len <= sizeof(pack);
		     m = m->next, n++) {
			if (n > 0)
				pack[len++] = '\n';
			memcpy(pack + len, m->data, m->len);
			len += m->len;
		}
		if (n == 0 || !send_one(st, pack, len))
			return;
		while (n-- > 0) {
			struct msg *m = st->head;
			st->head = m->next;
			if (!st->head)
				st->tail = NULL;
			st->queued -= m->len;
			free(m);
		}
	}
}

static void emit(struct init_state *st, const char *line, size_t len)
{
	char head[128];
	size_t hl = line_head(st, "app", head, sizeof(head));
	if (hl == 0)
		return;
	size_t total = (size_t)hl + len;
	struct msg *m = malloc(sizeof(*m) + total);
	if (!m) {
		st->dropped++;
		return;
	}
	memcpy(m->data, head, (size_t)hl);
	memcpy(m->data + hl, line, len);
	m->len = total;
	m->next = NULL;
	if (!st->head && send_one(st, m->data, m->len)) {
		free(m);
		return;
	}
	/* queue, bounded: the oldest lines go first */
	while (st->head && st->queued + total > st->p->log_buffer) {
		struct msg *old = st->head;
		st->head = old->next;
		if (!st->head)
			st->tail = NULL;
		st->queued -= old->len;
		free(old);
		st->dropped++;
	}
	if (total > st->p->log_buffer) {
		free(m);
		st->dropped++;
		return;
	}
	if (st->tail)
		st->tail->next = m;
	else
		st->head = m;
	st->tail = m;
	st->queued += total;
}

/* The client went away (or spoke nonsense): as a terminal hanging up,
 * SIGHUP to every process; the dyno ends with its app. */
static void attach_gone(struct init_state *st)
{
	if (st->attach < 0)
		return;
	close(st->attach);
	st->attach = -1;
	kill(-1, SIGHUP);
}

/* Writes all of data to the app's stdin (non-blocking: waits for room,
 * but no longer than the app lives). False when the app's end is gone. */
static bool stdin_write(struct init_state *st, const char *data, size_t len)
{
	while (len > 0) {
		ssize_t w = write(st->in_fd, data, len);
		if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd pf = {st->in_fd, POLLOUT, 0};
			poll(&pf, 1, 100);
			continue;
		}
		if (w < 0)
			return false;
		data += w;
		len -= (size_t)w;
	}
	return true;
}

/* One frame from the client. */
static void attach_frame(struct init_state *st, const struct attach_frame *f)
{
	switch (f->type) {
	case ATTACH_STDIN:
		if (st->in_fd < 0)
			break;
		if (f->len == 0 && st->master >= 0) {
			stdin_write(st, "\x04", 1); /* VEOF: a read() of 0 */
		} else if (f->len == 0) {
			close(st->in_fd);
			st->in_fd = -1;
		} else if (!stdin_write(st, f->data, f->len) && st->master < 0) {
			close(st->in_fd);
			st->in_fd = -1;
		}
		break;
	case ATTACH_RESIZE:
		if (st->master >= 0 && f->len == 4) {
			const unsigned char *u = (const unsigned char *)f->data;
			struct winsize ws = {.ws_row = (unsigned short)(u[0] << 8 | u[1]),
			                     .ws_col = (unsigned short)(u[2] << 8 | u[3])};
			/* the kernel sends SIGWINCH to the foreground group */
			ioctl(st->master, TIOCSWINSZ, &ws);
		}
		break;
	case ATTACH_SIGNAL:
		if (f->len == 1) {
			int sig = (unsigned char)f->data[0];
			for (size_t i = 0; i < ELEMENTSOF(forwarded); i++)
				if (forwarded[i] == sig)
					kill(-1, sig);
		}
		break;
	default:
		break; /* the dyno's own frames from the client: ignored */
	}
}

/* Reads what the client sent and acts on each whole frame. */
static void attach_read(struct init_state *st)
{
	ssize_t n = read(st->attach, st->abuf + st->alen, sizeof(st->abuf) - st->alen);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		attach_gone(st);
		return;
	}
	st->alen += (size_t)n;
	size_t off = 0;
	for (;;) {
		struct attach_frame f;
		int r = attach_parse(st->abuf + off, st->alen - off, &f);
		if (r < 0) {
			attach_gone(st);
			return;
		}
		if (r == 0)
			break;
		attach_frame(st, &f);
		off += (size_t)r;
	}
	memmove(st->abuf, st->abuf + off, st->alen - off);
	st->alen -= off;
}

/* Attached: what the stream has goes to the client as it comes, in frames
 * (the client's pace: init waits while its socket is full). Returns false
 * at EOF (EIO from a pty's master once no process holds its end). */
static bool attach_drain(struct init_state *st, struct stream *s, int max_reads)
{
	enum attach_type t = s == &st->err ? ATTACH_STDERR : ATTACH_STDOUT;
	for (int reads = 0; reads < max_reads; reads++) {
		ssize_t n = read(s->fd, s->buf, sizeof(s->buf));
		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		if (n == 0)
			return false;
		if (st->attach >= 0 && attach_write(st->attach, t, s->buf, (size_t)n) < 0)
			attach_gone(st);
	}
	return true;
}

/* Reads what the stream has; emits whole lines. Returns false at EOF. */
/* Reads at most max_reads buffers: an app that writes without pause (`yes`)
 * must not keep init from its signals and its children. Returns false at
 * EOF. */
static bool drain(struct init_state *st, struct stream *s, int max_reads)
{
	if (st->p->attach_fd >= 0)
		return attach_drain(st, s, max_reads);
	for (int reads = 0; reads < max_reads; reads++) {
		ssize_t n = read(s->fd, s->buf + s->len, sizeof(s->buf) - s->len);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		if (n == 0) {
			if (s->len)
				emit(st, s->buf, s->len);
			s->len = 0;
			return false;
		}
		s->len += (size_t)n;
		size_t start = 0;
		for (size_t i = 0; i < s->len; i++) {
			if (s->buf[i] == '\n') {
				emit(st, s->buf + start, i - start);
				start = i + 1;
			}
		}
		if (start == 0 && s->len == sizeof(s->buf)) {
			emit(st, s->buf, s->len); /* a line over the limit is split */
			start = s->len;
		}
		memmove(s->buf, s->buf + start, s->len - start);
		s->len -= start;
	}
	return true;
}

/* The last line: how the app ended, after what it wrote. dynod files it
 * and takes the status from it for a dyno it cannot wait for (re-adopted
 * after its restart: not its child). Waits for room at most 200 ms. */
static void report_exit(struct init_state *st, int code)
{
	if (!st->has_sink)
		return;
	char line[192];
	size_t h = line_head(st, "dyno", line, sizeof(line));
	int n = snprintf(line + h, sizeof(line) - h, "Process exited with status %d", code);
	if (h == 0 || n < 0)
		return;
	for (int i = 0; i < 20; i++) {
		flush(st);
		if (!st->head && send_one(st, line, h + (size_t)n))
			return;
		struct pollfd p = {st->sock, POLLOUT, 0};
		poll(st->sock >= 0 ? &p : NULL, st->sock >= 0 ? 1 : 0, 10);
	}
}

static __attribute__((noreturn)) void finish(struct init_state *st, int status)
{
	/* what is already in the pipes, bounded: a background process of the
	 * app may go on writing after the main process exited */
	if (st->out.fd >= 0)
		drain(st, &st->out, 64);
	if (st->err.fd >= 0)
		drain(st, &st->err, 64);
	flush(st);
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	report_exit(st, code);
	if (st->attach >= 0) {
		unsigned char b[4] = {(unsigned char)(code >> 24), (unsigned char)(code >> 16),
		                      (unsigned char)(code >> 8), (unsigned char)code};
		attach_write(st->attach, ATTACH_EXIT, b, sizeof(b));
	}
	_exit(code);
}

void init_run(struct init_state *st)
{
	for (;;) {
		bool pending = st->head || st->dropped;
		/* while the sink's queue is full, wait for room; while it is
		 * away, try again every 500 ms */
		struct pollfd pf[5] = {{st->sigfd, POLLIN, 0},
		                       {st->out.fd, POLLIN, 0},
		                       {st->err.fd, POLLIN, 0},
		                       {pending && st->blocked ? st->sock : -1, POLLOUT, 0},
		                       {st->attach, POLLIN, 0}};
		int r = poll(pf, 5, pending ? 500 : -1);
		if (r < 0 && errno != EINTR)
			_exit(125);
		if (pf[4].revents)
			attach_read(st);
		if (pending)
			flush(st);
		if (pf[1].revents && !drain(st, &st->out, 8)) {
			close(st->out.fd);
			st->out.fd = -1;
		}
		if (pf[2].revents && !drain(st, &st->err, 8)) {
			close(st->err.fd);
			st->err.fd = -1;
		}
		if (!pf[0].revents)
			continue;
		struct signalfd_siginfo si;
		while (read(st->sigfd, &si, sizeof(si)) == sizeof(si)) {
			if (si.ssi_signo != SIGCHLD) {
				/* kill(-1) from PID 1: every process of the
				 * namespace but init itself */
				kill(-1, (int)si.ssi_signo);
				if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
					st->stopping = true;
				continue;
			}
			int status;
			pid_t pid;
			while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
				if (pid != st->app)
					continue;
				st->app_done = true;
				st->app_status = status;
				/* the app ended by itself: the dyno ends with it, and
				 * the kernel kills the rest. Stopping: every process
				 * got SIGTERM and may finish within the grace (the
				 * launcher's SIGKILL bounds it) */
				if (!st->stopping)
					finish(st, status);
			}
			if (pid < 0 && errno == ECHILD && st->app_done)
				finish(st, st->app_status);
		}
	}
}
