/* git:remote, git-receive and git-hook: deploy by git push (docs/deploy.md).
 *
 * Each app has a bare repository, the app's `git_url`
 * (<state_dir>/repos/APP.git), made on first use by git:remote or
 * git-receive with a pre-receive hook that runs `dyno git-hook`. The hook
 * builds a push to main or master: it archives the pushed commit itself
 * (the pushed objects are quarantined until it accepts), posts the tar to
 * POST /apps/{app}/builds and waits for the release and its rollout as
 * deploy does; its output reaches the pusher as `remote:` lines, and a
 * failure refuses the push. Pushes to one app are serialized by a lock on
 * its repository. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/api-client.h"
#include "cli/cli.h"
#include "cli/release-wait.h"
#include "common/cleanup.h"
#include "common/fs.h"

#define END_OPT                                                                                    \
	{                                                                                          \
		NULL, 0, false, NULL, NULL                                                         \
	}
#define ZERO_SHA "0000000000000000000000000000000000000000"

/* Runs argv (searched on PATH), its stdout to out_fd when >= 0 (else
 * ours); quiet: its stderr discarded. Returns its exit status, or -1 when
 * it could not run. */
static int run_cmd(char *const argv[], int out_fd, bool quiet)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (out_fd >= 0)
			dup2(out_fd, STDOUT_FILENO);
		if (quiet) {
			int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
			if (null >= 0)
				dup2(null, STDERR_FILENO);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The app's git_url (owned), from the API. */
static int git_url(const char *app, char **ret)
{
	_cleanup_free_ char *path = cli_app_path(app, "");
	json_t *o = NULL;
	int r = cli_api("GET", path, NULL, &o);
	if (r)
		return r;
	const char *url = json_string_value(json_object_get(o, "git_url"));
	*ret = url ? strdup(url) : NULL;
	json_decref(o);
	return *ret ? CLI_OK : cli_error("dynod's answer has no git_url");
}

/* Makes the bare repository at path when missing (group-shared: every
 * member of api_group pushes), and (re)writes its pre-receive hook, which
 * runs this dyno with the API socket in use. */
static int ensure_repo(const char *path, const char *app)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		if (errno != ENOENT)
			return cli_error("%s: %s", path, strerror(errno));
		char *argv[] = {"git", "init", "--quiet", "--bare", "--shared=group",
		                "--initial-branch=main", (char *)path, NULL};
		int r = run_cmd(argv, -1, false);
		if (r != 0)
			return cli_error("git init --bare %s failed%s", path,
			                 r < 0 ? " (is git installed?)" : "");
	}
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		return cli_error("/proc/self/exe: %s", strerror(errno));
	self[n] = '\0';
	const char *sock = api_client_socket();
	if (strchr(self, '\'') || strchr(sock, '\''))
		return cli_error("a quote in %s or %s: cannot write the hook", self, sock);
	_cleanup_free_ char *hook = NULL, *text = NULL;
	if (asprintf(&hook, "%s/hooks/pre-receive", path) < 0 ||
	    asprintf(&text,
	             "#!/bin/sh\n"
	             "# written by dyno git:remote: a push to main or master builds and\n"
	             "# releases the pushed commit (docs/deploy.md)\n"
	             "DYNO_API='%s' exec '%s' git-hook pre-receive '%s'\n",
	             sock, self, app) < 0)
		return cli_error("out of memory");
	struct dy_error *err = NULL;
	if (dy_write_file_atomic(hook, text, strlen(text), 0775, &err) < 0) {
		cli_error("%s", dy_error_msg(err));
		dy_error_free(&err);
		return CLI_ERROR;
	}
	return CLI_OK;
}

static int run_git_remote(int argc, char **argv)
{
	const char *app_opt = NULL, *name = NULL;
	const struct cli_opt opts[] = {
	    {"--app", 'a', true, &app_opt, NULL}, {"--remote", 'r', true, &name, NULL}, END_OPT};
	size_t npos;
	int r = cli_parse(&cli_verb_git_remote, argc, argv, opts, NULL, 0, &npos);
	if (r)
		return r;
	const char *app = cli_app(app_opt);
	if (app == NULL)
		return cli_usage_error(&cli_verb_git_remote, "missing -a APP (or $DYNO_APP)");
	_cleanup_free_ char *url = NULL;
	if ((r = git_url(app, &url)))
		return r;
	if (url[0] == '/' && (r = ensure_repo(url, app)))
		return r;
	char *inside[] = {"git", "rev-parse", "--is-inside-work-tree", NULL};
	_cleanup_close_ int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (run_cmd(inside, null, true) == 0) {
		const char *remote = name ? name : "dyno";
		char *add[] = {"git", "remote", "add", (char *)remote, url, NULL};
		char *set[] = {"git", "remote", "set-url", (char *)remote, url, NULL};
		if (run_cmd(add, -1, true) != 0 && run_cmd(set, -1, false) != 0)
			return cli_error("git remote add %s %s failed", remote, url);
	} else if (name) {
		return cli_error("-r %s: not inside a git work tree", name);
	}
	printf("%s\n", url);
	return CLI_OK;
}

const struct cli_verb cli_verb_git_remote = {
    .name = "git:remote",
    .run = run_git_remote,
    .usage = "git:remote -a APP [-r NAME]",
    .summary = "print the app's git remote; inside a work tree, add it (as dyno)",
    .help = "`git push dyno main` then builds and releases the pushed commit (docs/deploy.md).\n"
            "The repository is made on first use.\n",
};

/* ---- the pre-receive hook ---- */

/* Builds commit sha of app: `git archive` into a temporary file, posted to
 * /builds, then the release's wait. */
static int build_commit(const char *app, const char *ref, const char *sha)
{
	printf("-----> Building %s (%.7s)\n", ref, sha);
	fflush(stdout);
	const char *tdir = getenv("TMPDIR");
	_cleanup_free_ char *tmp = NULL;
	if (asprintf(&tmp, "%s/dyno-push-XXXXXX", tdir && *tdir ? tdir : "/tmp") < 0)
		return cli_error("out of memory");
	_cleanup_close_ int fd = mkstemp(tmp);
	if (fd < 0)
		return cli_error("create %s: %s", tmp, strerror(errno));
	unlink(tmp);
	char *archive[] = {"git", "archive", "--format=tar", "--prefix=app/", (char *)sha, NULL};
	if (run_cmd(archive, fd, false) != 0)
		return cli_error("git archive %.7s failed", sha);
	struct stat st;
	if (fstat(fd, &st) < 0 || lseek(fd, 0, SEEK_SET) < 0)
		return cli_error("%s: %s", tmp, strerror(errno));
	return cli_build_source(app, fd, (uint64_t)st.st_size, sha);
}

/* git updates the refs after this hook has exited: the next push of the
 * app must not look at them before. A child keeps the lock (its copy of
 * the descriptor) until git receive-pack, our parent, has exited (at most
 * a minute), away from git's pipes so that git never waits for it. */
static void keep_lock(int lock)
{
	int pidfd = (int)syscall(SYS_pidfd_open, getppid(), 0);
	if (pidfd < 0)
		return; /* no pidfd: the lock goes with this hook */
	pid_t pid = fork();
	if (pid == 0) {
		setsid();
		int null = open("/dev/null", O_RDWR);
		for (int fd = 0; fd <= 2 && null >= 0; fd++)
			dup2(null, fd);
		struct pollfd p = {.fd = pidfd, .events = POLLIN};
		while (poll(&p, 1, 60 * 1000) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	(void)lock; /* the child holds it; ours closes on return */
	close(pidfd);
}

/* True when ref is at sha now (ZERO_SHA: when it does not exist). */
static bool ref_is(const char *ref, const char *sha)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) < 0)
		return false;
	char *argv[] = {"git", "rev-parse", "--verify", "-q", (char *)ref, NULL};
	int r = run_cmd(argv, fds[1], true);
	close(fds[1]);
	char now[64] = "";
	ssize_t n = read(fds[0], now, sizeof(now) - 1);
	close(fds[0]);
	now[n > 0 ? n : 0] = '\0';
	now[strcspn(now, "\n")] = '\0';
	if (r != 0)
		return strcmp(sha, ZERO_SHA) == 0;
	return strcmp(now, sha) == 0;
}

static int run_git_hook(int argc, char **argv)
{
	const char *pos[2];
	size_t npos;
	const struct cli_opt opts[] = {END_OPT};
	int r = cli_parse(&cli_verb_git_hook, argc, argv, opts, pos, 2, &npos);
	if (r)
		return r;
	if (npos != 2 || strcmp(pos[0], "pre-receive") != 0)
		return cli_usage_error(&cli_verb_git_hook, "expected pre-receive APP");
	const char *app = pos[1];
	/* one push of an app at a time; git refuses the next one when it
	 * does not build on what this one leaves */
	_cleanup_close_ int lock = open("dyno-push.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0660);
	if (lock < 0)
		return cli_error("dyno-push.lock: %s", strerror(errno));
	if (flock(lock, LOCK_EX | LOCK_NB) < 0) {
		printf("-----> Waiting for another push to %s\n", app);
		fflush(stdout);
		if (flock(lock, LOCK_EX) < 0)
			return cli_error("dyno-push.lock: %s", strerror(errno));
	}
	char line[512];
	int status = CLI_OK;
	while (status == CLI_OK && fgets(line, sizeof(line), stdin)) {
		char old[41], new[41], ref[400];
		if (sscanf(line, "%40s %40s %399s", old, new, ref) != 3)
			continue;
		bool deploys = strcmp(ref, "refs/heads/main") == 0 ||
		               strcmp(ref, "refs/heads/master") == 0;
		if (!deploys) {
			printf("-----> %s stored, not built (push to main or master to deploy)\n",
			       ref);
			continue;
		}
		if (strcmp(new, ZERO_SHA) == 0) {
			status = cli_error("deleting %s is refused: it is what %s runs", ref, app);
			continue;
		}
		/* git checks the old value only after this hook: a push that
		 * waited while another moved the branch would build and then
		 * be refused */
		if (!ref_is(ref, old)) {
			status = cli_error("%s moved while this push waited for the one before: "
			                   "fetch, then push again",
			                   ref + strlen("refs/heads/"));
			continue;
		}
		status = build_commit(app, ref + strlen("refs/heads/"), new);
	}
	fflush(stdout);
	if (status != CLI_OK) {
		fprintf(stderr, "dyno: push refused: the current release keeps serving\n");
		return status;
	}
	keep_lock(lock);
	return status;
}

const struct cli_verb cli_verb_git_hook = {
    .name = "git-hook",
    .run = run_git_hook,
    .usage = "git-hook pre-receive APP",
    .summary = "the pre-receive hook of an app's repository (written by git:remote)",
};

/* ---- ssh ---- */

/* The app of an ssh command's path argument ('app.git', '/app.git'),
 * copied to app; false when it names none. */
static bool app_of_path(const char *arg, char *app, size_t size)
{
	size_t n = strlen(arg);
	if (n >= 2 && arg[0] == '\'' && arg[n - 1] == '\'') {
		arg++;
		n -= 2;
	}
	while (n && *arg == '/') {
		arg++;
		n--;
	}
	if (n && arg[n - 1] == '/')
		n--;
	if (n > 4 && strncmp(arg + n - 4, ".git", 4) == 0)
		n -= 4;
	if (n == 0 || n >= size)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((arg[i] >= 'a' && arg[i] <= 'z') || (arg[i] >= '0' && arg[i] <= '9') ||
		      arg[i] == '-'))
			return false;
	snprintf(app, size, "%.*s", (int)n, arg);
	return true;
}

/* True when app is one of the comma-separated list. */
static bool listed(const char *list, const char *app)
{
	size_t n = strlen(app);
	for (const char *p = list; *p;) {
		size_t len = strcspn(p, ",");
		if (len == n && strncmp(p, app, n) == 0)
			return true;
		p += len;
		if (*p == ',')
			p++;
	}
	return false;
}

static int run_git_receive(int argc, char **argv)
{
	const char *apps = NULL;
	const struct cli_opt opts[] = {{"--apps", 0, true, &apps, NULL}, END_OPT};
	size_t npos;
	int r = cli_parse(&cli_verb_git_receive, argc, argv, opts, NULL, 0, &npos);
	if (r)
		return r;
	const char *cmd = getenv("SSH_ORIGINAL_COMMAND");
	if (cmd == NULL || *cmd == '\0')
		return cli_error("no SSH_ORIGINAL_COMMAND: this key only pushes (git push)");
	char verb[32], arg[256];
	if (sscanf(cmd, "%31s %255s", verb, arg) != 2)
		return cli_error("unexpected command \"%.64s\": only git push and fetch", cmd);
	const char *git_sub = strcmp(verb, "git-receive-pack") == 0  ? "receive-pack"
	                      : strcmp(verb, "git-upload-pack") == 0 ? "upload-pack"
	                                                             : NULL;
	if (git_sub == NULL)
		return cli_error("unexpected command \"%.64s\": only git push and fetch", verb);
	char app[64];
	if (!app_of_path(arg, app, sizeof(app)))
		return cli_error("%.64s: not an app's repository (APP.git)", arg);
	if (apps && !listed(apps, app))
		return cli_error("this key may not push to %s", app);
	_cleanup_free_ char *url = NULL;
	if ((r = git_url(app, &url)))
		return r;
	if (url[0] != '/')
		return cli_error("%s: git_url %s is not a path on this host", app, url);
	if ((r = ensure_repo(url, app)))
		return r;
	fflush(stdout);
	execlp("git", "git", git_sub, url, (char *)NULL);
	return cli_error("git %s: %s", git_sub, strerror(errno));
}

const struct cli_verb cli_verb_git_receive = {
    .name = "git-receive",
    .run = run_git_receive,
    .usage = "git-receive [--apps A,B]",
    .summary = "an sshd forced command: git push and fetch of the apps' repositories",
    .help = "In ~dyno/.ssh/authorized_keys: command=\"dyno git-receive --apps A,B\",restrict KEY\n"
            "limits that key to those apps (every app without --apps). The ssh user must be\n"
            "in api_group. See docs/deploy.md.\n",
};
