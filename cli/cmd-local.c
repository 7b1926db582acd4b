/* dyno local: run the Procfile's processes on this machine, as `heroku
 * local` does: PORT = base + 100 x type index + instance index, the .env's
 * variables, every line prefixed with the time and the process name. When
 * one process exits, the others are stopped (SIGTERM, then SIGKILL after
 * 5 s), and dyno local exits with that process's status. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/cleanup.h"
#include "common/loop.h"
#include "slugs/dotenv.h"
#include "slugs/procfile.h"

#define LOCAL_MAX_PROCS       64
#define LOCAL_LINE_MAX        8192
#define LOCAL_STOP_GRACE_USEC (5 * 1000000ULL)

struct local_proc {
	char name[PROCFILE_NAME_MAX + 8];
	pid_t pid;
	int out_fd;
	struct loop_io io;
	struct loop_child child;
	char buf[LOCAL_LINE_MAX];
	size_t len;
	bool running;
	struct local_run *run;
};

struct local_run {
	struct loop *loop;
	struct local_proc procs[LOCAL_MAX_PROCS];
	size_t n, running;
	int width;
	int status; /* exit status of dyno local */
	bool stopping;
	struct loop_timer kill_timer;
	struct loop_signal sig;
};

extern char **environ;

static void print_line(struct local_run *run, const char *name, const char *text, size_t len)
{
	time_t now = time(NULL);
	struct tm tm;
	localtime_r(&now, &tm);
	printf("%02d:%02d:%02d %-*s | %.*s\n", tm.tm_hour, tm.tm_min, tm.tm_sec, run->width, name,
	       (int)len, text);
	fflush(stdout);
}

static void stop_all(struct local_run *run, int sig)
{
	for (size_t i = 0; i < run->n; i++)
		if (run->procs[i].running)
			kill(-run->procs[i].pid, sig); /* its whole process group */
}

static void on_kill_timer(struct loop *loop, struct loop_timer *t)
{
	struct local_run *run = loop_container_of(t, struct local_run, kill_timer);
	stop_all(run, SIGKILL);
}

static void begin_stop(struct local_run *run)
{
	if (run->stopping)
		return;
	run->stopping = true;
	stop_all(run, SIGTERM);
	loop_timer_start(run->loop, &run->kill_timer, LOCAL_STOP_GRACE_USEC, NULL);
}

static void flush_lines(struct local_proc *p, bool all)
{
	size_t start = 0;
	for (size_t i = 0; i < p->len; i++) {
		if (p->buf[i] != '\n')
			continue;
		size_t end = i > start && p->buf[i - 1] == '\r' ? i - 1 : i;
		print_line(p->run, p->name, p->buf + start, end - start);
		start = i + 1;
	}
	if (start == 0 && p->len == sizeof(p->buf)) {
		/* a line longer than the buffer: print it in pieces */
		print_line(p->run, p->name, p->buf, p->len);
		start = p->len;
	}
	if (all && start < p->len) {
		print_line(p->run, p->name, p->buf + start, p->len - start);
		start = p->len;
	}
	memmove(p->buf, p->buf + start, p->len - start);
	p->len -= start;
}

static void on_output(struct loop *loop, struct loop_io *io, uint32_t events)
{
	struct local_proc *p = loop_container_of(io, struct local_proc, io);
	ssize_t n = read(p->out_fd, p->buf + p->len, sizeof(p->buf) - p->len);
	if (n > 0) {
		p->len += (size_t)n;
		flush_lines(p, false);
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	flush_lines(p, true);
	loop_io_stop(loop, io);
	close(p->out_fd);
	p->out_fd = -1;
}

static void on_exit_child(struct loop *loop, struct loop_child *c, const siginfo_t *info)
{
	struct local_proc *p = loop_container_of(c, struct local_proc, child);
	struct local_run *run = p->run;
	p->running = false;
	run->running--;
	char msg[128];
	int code;
	if (info->si_code == CLD_EXITED) {
		code = info->si_status;
		snprintf(msg, sizeof(msg), "Exited with exit code %d", code);
	} else {
		code = 128 + info->si_status;
		snprintf(msg, sizeof(msg), "Exited with signal %s", strsignal(info->si_status));
	}
	print_line(run, p->name, msg, strlen(msg));
	if (!run->stopping) {
		run->status = code;
		begin_stop(run);
	}
	if (run->running == 0)
		loop_stop(loop);
}

static void on_signal(struct loop *loop, struct loop_signal *sig, int signo,
                      const struct signalfd_siginfo *info)
{
	struct local_run *run = loop_container_of(sig, struct local_run, sig);
	if (!run->stopping) {
		char msg[64];
		snprintf(msg, sizeof(msg), "%s received, stopping all processes", strsignal(signo));
		print_line(run, "system", msg, strlen(msg));
		run->status = 0;
		begin_stop(run);
	} else {
		stop_all(run, SIGKILL);
	}
}

static int read_file(const char *path, char **ret, size_t *ret_len, size_t max)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	if ((size_t)st.st_size > max)
		return -EFBIG;
	char *buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL)
		return -ENOMEM;
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	*ret = buf;
	*ret_len = got;
	return 0;
}

/* Starts one process: a new process group (so a stop reaches its
 * children), stdout and stderr on one pipe, stdin from /dev/null. */
static int spawn(struct local_run *run, struct local_proc *p, const char *command,
                 const struct dotenv *env, unsigned port)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) < 0)
		return cli_error("pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return cli_error("fork: %s", strerror(errno));
	}
	if (pid == 0) {
		setpgid(0, 0);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		int devnull = open("/dev/null", O_RDONLY);
		if (devnull >= 0)
			dup2(devnull, STDIN_FILENO);
		dup2(fds[1], STDOUT_FILENO);
		dup2(fds[1], STDERR_FILENO);
		for (size_t i = 0; env && i < env->n; i++)
			setenv(env->vars[i].key, env->vars[i].value, 1);
		char portbuf[16];
		snprintf(portbuf, sizeof(portbuf), "%u", port);
		setenv("PORT", portbuf, 1);
		setenv("DYNO", p->name, 1);
		const char *shell = access("/bin/bash", X_OK) == 0 ? "/bin/bash" : "/bin/sh";
		execl(shell, shell, "-c", command, (char *)NULL);
		dprintf(STDERR_FILENO, "exec %s: %s\n", shell, strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid);
	close(fds[1]);
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	p->pid = pid;
	p->out_fd = fds[0];
	p->running = true;
	p->run = run;
	run->running++;
	struct dy_error *err = NULL;
	loop_io_init(&p->io, fds[0], on_output);
	if (loop_io_set(run->loop, &p->io, LOOP_READ, &err) < 0 ||
	    loop_child_start(run->loop, &p->child, pid, on_exit_child, &err) < 0) {
		int r = cli_error("%s", dy_error_msg(err));
		dy_error_free(&err);
		return r;
	}
	return 0;
}

static bool wanted(const char *list, const char *name)
{
	if (list == NULL)
		return true;
	size_t n = strlen(name);
	for (const char *p = list; *p;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		if (len == n && strncmp(p, name, n) == 0)
			return true;
		p += len + (comma ? 1 : 0);
	}
	return false;
}

static int run_local(int argc, char **argv)
{
	const char *procfile = "Procfile", *envfile = NULL, *base_s = "5006";
	const struct cli_opt opts[] = {
	    {"--procfile", 'f', true, &procfile, NULL},
	    {"--env", 'e', true, &envfile, NULL},
	    {"--port", 'p', true, &base_s, NULL},
	    {NULL, 0, false, NULL, NULL},
	};
	const char *pos[1];
	size_t npos;
	int r = cli_parse(&cli_verb_local, argc, argv, opts, pos, 1, &npos);
	if (r)
		return r;
	char *end;
	errno = 0;
	unsigned long base = strtoul(base_s, &end, 10);
	if (errno || *end || end == base_s || base == 0 || base > 65535)
		return cli_usage_error(&cli_verb_local, "-p: expected a port number, got \"%s\"",
		                       base_s);

	_cleanup_free_ char *pdata = NULL;
	size_t plen = 0;
	r = read_file(procfile, &pdata, &plen, PROCFILE_MAX_BYTES);
	if (r < 0)
		return cli_error("%s: %s", procfile, strerror(-r));
	struct dy_error *err = NULL;
	struct procfile *pf = NULL;
	if (procfile_parse(pdata, plen, &pf, &err) < 0) {
		cli_error("%s: %s", procfile, dy_error_msg(err));
		dy_error_free(&err);
		return CLI_ERROR;
	}
	struct dotenv *env = NULL;
	const char *envpath = envfile ? envfile : ".env";
	_cleanup_free_ char *edata = NULL;
	size_t elen = 0;
	r = read_file(envpath, &edata, &elen, DOTENV_MAX_BYTES);
	if (r == 0) {
		if (dotenv_parse(edata, elen, &env, &err) < 0) {
			cli_error("%s: %s", envpath, dy_error_msg(err));
			dy_error_free(&err);
			procfile_free(pf);
			return CLI_ERROR;
		}
	} else if (envfile != NULL) {
		procfile_free(pf);
		return cli_error("%s: %s", envfile, strerror(-r));
	}
	if (npos == 1) {
		/* every name asked for must exist */
		for (const char *p = pos[0]; *p;) {
			const char *comma = strchr(p, ',');
			size_t len = comma ? (size_t)(comma - p) : strlen(p);
			bool found = false;
			for (size_t i = 0; i < pf->n; i++)
				if (strlen(pf->entries[i].name) == len &&
				    strncmp(pf->entries[i].name, p, len) == 0)
					found = true;
			if (!found) {
				procfile_free(pf);
				dotenv_free(env);
				return cli_error("no process type \"%.*s\" in %s", (int)len, p,
				                 procfile);
			}
			p += len + (comma ? 1 : 0);
		}
	}

	struct local_run *run = calloc(1, sizeof(*run));
	if (run == NULL || loop_new(&run->loop, &err) < 0) {
		free(run);
		procfile_free(pf);
		dotenv_free(env);
		return cli_error("%s", err ? dy_error_msg(err) : "out of memory");
	}
	run->width = 6;
	loop_timer_init(&run->kill_timer, on_kill_timer);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	r = loop_signal_start(run->loop, &run->sig, &mask, on_signal, &err);
	for (size_t i = 0; r == 0 && i < pf->n; i++) {
		if (!wanted(npos ? pos[0] : NULL, pf->entries[i].name))
			continue;
		/* heroku local runs the release type only when named */
		if (npos == 0 && strcmp(pf->entries[i].name, "release") == 0)
			continue;
		if (run->n == LOCAL_MAX_PROCS)
			break;
		struct local_proc *p = &run->procs[run->n++];
		p->out_fd = -1;
		snprintf(p->name, sizeof(p->name), "%s.1", pf->entries[i].name);
		if ((int)strlen(p->name) > run->width)
			run->width = (int)strlen(p->name);
		/* heroku local: base + 100 x the type's index in the Procfile */
		r = spawn(run, p, pf->entries[i].command, env, (unsigned)(base + 100 * i));
	}
	if (r < 0 || err) {
		if (err) {
			cli_error("%s", dy_error_msg(err));
			dy_error_free(&err);
		}
		run->status = CLI_ERROR;
		begin_stop(run);
	}
	if (run->running > 0 && loop_run(run->loop, &err) < 0) {
		cli_error("%s", dy_error_msg(err));
		dy_error_free(&err);
	}
	for (size_t i = 0; i < run->n; i++) {
		if (run->procs[i].out_fd >= 0) {
			loop_io_stop(run->loop, &run->procs[i].io);
			close(run->procs[i].out_fd);
		}
		loop_child_stop(run->loop, &run->procs[i].child);
	}
	loop_signal_stop(run->loop, &run->sig);
	int status = run->status;
	loop_free(run->loop);
	free(run);
	procfile_free(pf);
	dotenv_free(env);
	return status;
}

const struct cli_verb cli_verb_local = {
    .name = "local",
    .run = run_local,
    .usage = "local [PROCESS[,PROCESS...]] [-f Procfile] [-e .env] [-p BASE]",
    .summary = "run the Procfile's processes here, as heroku local does",
    .help = "Runs one of each process type (or those named; release only when named, as\n"
            "heroku local) with the variables of .env (or -e FILE) and\n"
            "PORT = BASE (5006) + 100 x the type's index in the Procfile.\n"
            "Output lines are prefixed with the time and the process name. When one\n"
            "process exits the others get SIGTERM (SIGKILL after 5 s) and dyno local\n"
            "exits with its status; after SIGINT or SIGTERM it exits 0.\n",
};
