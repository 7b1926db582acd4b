/* The dyno launcher; see launch.h. */
#include "runtime/launcher/launch.h"

#include <dirent.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/sched.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/macro.h"
#include "runtime/launcher/launch-child.h"
#include "runtime/launcher/launch-internal.h"
#include "runtime/launcher/mounts.h"
#include "runtime/launcher/seccomp-filter.h"
#include "runtime/launcher/sync.h"

static int build_env(const struct launch_params *p, char ***ret, struct dy_error **err)
{
	size_t n = 0;
	for (char *const *e = p->env; e && *e; e++)
		n++;
	char **env = calloc(n + 6, sizeof(*env));
	if (!env)
		return dy_error_errno(err, ENOMEM, "calloc");
	size_t k = 0;
	bool has_path = false;
	char *app_path = NULL; /* owned by env: freed with the platform's own */
	for (char *const *e = p->env; e && *e; e++) {
		/* the platform's own names win over config vars */
		if (!strncmp(*e, "DYNO=", 5) || !strncmp(*e, "PORT=", 5) ||
		    !strncmp(*e, "HOME=", 5))
			continue;
		if (!strncmp(*e, "PATH=", 5)) {
			/* docs/design.md: /app/bin first, also when a config var sets PATH */
			has_path = true;
			if (strncmp(*e + 5, "/app/bin:", 9) != 0 &&
			    strcmp(*e + 5, "/app/bin") != 0) {
				if (asprintf(&app_path, "PATH=/app/bin:%s", *e + 5) < 0) {
					free(env);
					return dy_error_errno(err, ENOMEM, "asprintf");
				}
				env[k++] = app_path;
				continue;
			}
		}
		env[k++] = *e;
	}
	char *own[4] = {NULL};
	int r = asprintf(&own[0], "DYNO=%s", p->name);
	if (r >= 0)
		r = asprintf(&own[1], "HOME=/app");
	if (r >= 0 && p->port)
		r = asprintf(&own[2], "PORT=%u", p->port);
	if (r >= 0 && !has_path)
		r = asprintf(&own[3], "PATH=/app/bin:/usr/local/bin:/usr/bin:/bin");
	if (r < 0) {
		for (int i = 0; i < 4; i++)
			free(own[i]);
		free(env);
		return dy_error_errno(err, ENOMEM, "asprintf");
	}
	for (int i = 0; i < 4; i++)
		if (own[i])
			env[k++] = own[i];
	env[k] = NULL;
	*ret = env;
	return 0;
}

static void free_env(const struct launch_params *p, char **env)
{
	if (!env)
		return;
	size_t n = 0;
	for (char *const *e = p->env; e && *e; e++)
		n++;
	/* the strings after the config vars are ours */
	for (char **e = env; *e; e++) {
		bool theirs = false;
		for (size_t i = 0; i < n && !theirs; i++)
			theirs = *e == p->env[i];
		if (!theirs)
			free(*e);
	}
	free(env);
}

/* dyno-init: the path given, else the one beside the running executable
 * (dynod and dyno-launch are installed with it). Opened O_PATH before
 * clone: the child execs it after pivot_root, where no host path is left. */
int launch_open_init(const char *path, int *ret, struct dy_error **err)
{
	char buf[4096];
	if (!path) {
		ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
		if (n < 0)
			return dy_error_errno(err, errno, "readlink /proc/self/exe");
		buf[n] = '\0';
		char *slash = strrchr(buf, '/');
		if (!slash || (size_t)(slash - buf) + sizeof("/dyno-init") > sizeof(buf))
			return dy_error(err, "cannot place dyno-init beside %s", buf);
		strcpy(slash, "/dyno-init");
		path = buf;
	}
	/* opened once per process and path: init and launcher speak one
	 * protocol (fds, sync.h), so a dyno-init replaced on disk by an upgrade
	 * is only taken by the next launcher process */
	static char *cached_path;
	static int cached_fd = -1;
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* starts on several threads */
	pthread_mutex_lock(&lock);
	int r = 0, fd = -1;
	if (cached_fd < 0 || strcmp(cached_path, path) != 0) {
		fd = open(path, O_PATH | O_CLOEXEC);
		char *copy = fd < 0 ? NULL : strdup(path);
		if (fd < 0) {
			r = dy_error_errno(err, errno, "dyno-init %s", path);
		} else if (!copy) {
			close(fd);
			r = dy_error_errno(err, ENOMEM, "strdup");
		} else {
			if (cached_fd >= 0)
				close(cached_fd);
			free(cached_path);
			cached_fd = fd;
			cached_path = copy;
		}
	}
	if (r == 0 && (fd = fcntl(cached_fd, F_DUPFD_CLOEXEC, 0)) < 0)
		r = dy_error_errno(err, errno, "dup");
	pthread_mutex_unlock(&lock);
	if (r < 0)
		return r;
	*ret = fd;
	return 0;
}

static void *rules_thread(void *arg)
{
	struct launch_rules *j = arg;
	j->r = net_rules_add(j->veth, j->addr, j->gw, j->ports, j->n_ports, j->egress, &j->err);
	j->done = true;
	return NULL;
}

void launch_rules_start(struct launch_rules *j)
{
	j->running = pthread_create(&j->tid, NULL, rules_thread, j) == 0;
	if (!j->running)
		rules_thread(j);
}

/* Waits for the rules (idempotent); sets *made when they are in place.
 * Returns 0, or < 0 with their error moved to *err. */
int launch_rules_join(struct launch_rules *j, bool *made, struct dy_error **err)
{
	if (j->running) {
		pthread_join(j->tid, NULL);
		j->running = false;
	}
	if (!j->done)
		return 0; /* never started, or joined already */
	j->done = false;
	*made = *made || j->r == 0;
	if (j->r < 0 && err && !*err) {
		*err = j->err;
		j->err = NULL;
	}
	dy_error_free(&j->err);
	return MIN(j->r, 0);
}

/* pidfds of children that did not die when a start failed (stuck in the
 * kernel): not reaped yet */
static int orphans[64];
static size_t n_orphans;
/* added by a failed start (the start thread), reaped by launch_sweep()
 * (the loop's) */
static pthread_mutex_t orphans_lock = PTHREAD_MUTEX_INITIALIZER;

uint64_t launch_now_usec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* The sink's directory is bound into the dyno for its init (uid 0): it
 * must hold nothing but sockets (the sink, other dynos' sinks), so that no
 * file or mount of the host's comes with it. */
int launch_check_sink_dir(const char *dir, struct dy_error **err)
{
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return dy_error_errno(err, errno, "log sink directory %s", dir);
	/* root's, and nobody else may add to it after this check */
	struct stat ds;
	if (fstat(fd, &ds) < 0)
		return dy_error_errno(err, errno, "log sink directory %s", dir);
	if (ds.st_uid != 0 || (ds.st_mode & 022))
		return dy_error(err,
		                "log sink directory %s: owned by uid %u, mode %04o: it must be "
		                "root's and writable by root only",
		                dir, (unsigned)ds.st_uid, (unsigned)(ds.st_mode & 07777));
	DIR *d = fdopendir(fd);
	if (!d)
		return dy_error_errno(err, errno, "log sink directory %s", dir);
	fd = -1; /* closedir() closes it */
	int r = 0;
	struct dirent *de;
	while (r == 0 && (de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue; /* gone meanwhile */
			r = dy_error_errno(err, errno, "log sink directory %s: %s", dir,
			                   de->d_name);
		} else if (!S_ISSOCK(st.st_mode)) {
			r = dy_error(err,
			             "log sink directory %s holds %s, which is not a socket: the "
			             "directory is bound into the dyno, keep the sink alone in it",
			             dir, de->d_name);
		}
	}
	closedir(d);
	return r;
}

/* The app's environment as init reads it (dyno-init.c): "K=V\0" strings
 * in a memfd sealed against every change. */
static int env_memfd(char *const *envp, int *ret, struct dy_error **err)
{
	int fd = memfd_create("dyno-env", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return dy_error_errno(err, errno, "memfd_create");
	for (char *const *e = envp; *e; e++) {
		size_t len = strlen(*e) + 1, off = 0;
		while (off < len) {
			ssize_t n = write(fd, *e + off, len - off);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				int er = n < 0 ? errno : EIO;
				close(fd);
				return dy_error_errno(err, er, "write the environment");
			}
			off += (size_t)n;
		}
	}
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
		int er = errno;
		close(fd);
		return dy_error_errno(err, er, "seal the environment");
	}
	*ret = fd;
	return 0;
}

int launch_env_fd(const struct launch_params *p, int *ret, struct dy_error **err)
{
	char **envp = NULL;
	if (build_env(p, &envp, err) < 0)
		return -1;
	int r = env_memfd(envp, ret, err);
	free_env(p, envp);
	return r;
}

int launch_sink_paths(const char *sink, char **ret_dir, char **ret_name, struct dy_error **err)
{
	_cleanup_free_ char *copy = strdup(sink), *dir = strdup(sink);
	if (!copy || !dir)
		return dy_error_errno(err, ENOMEM, "strdup");
	/* dirname() and basename() work in place */
	const char *d = dirname(dir), *name = basename(copy);
	if (launch_check_sink_dir(d, err) < 0)
		return -1;
	if (strlen(name) + sizeof(MOUNTS_SINK_DIR "/") > 108)
		return dy_error(err, "log sink %s: name too long", sink);
	char *rd = strdup(d), *rn = strdup(name);
	if (!rd || !rn) {
		free(rd);
		free(rn);
		return dy_error_errno(err, ENOMEM, "strdup");
	}
	*ret_dir = rd;
	*ret_name = rn;
	return 0;
}

/* Waits for the message expect from the child (LAUNCH_SYNC_NETNS_MADE)
 * or from dyno-init (LAUNCH_SYNC_APP_EXECED); their LAUNCH_SYNC_ERROR
 * comes back as *err, with the errno. A child that hangs in its set-up (a
 * stuck file system under the slug) must not hang the caller: the whole
 * set-up gets timeout_usec, until deadline. */
int launch_wait_msg(int sock, enum launch_sync_type expect, uint64_t deadline,
                    uint64_t timeout_usec, struct dy_error **err)
{
	struct pollfd pf = {sock, POLLIN, 0};
	for (;;) {
		uint64_t now = launch_now_usec();
		uint64_t ms = now >= deadline ? 0 : (deadline - now + 999) / 1000;
		int r = poll(&pf, 1, (int)MIN(ms, (uint64_t)1 << 30));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return dy_error_errno(err, errno, "wait for the dyno's report");
		if (r == 0)
			return dy_error(err, "set-up did not finish within %.1f s",
			                (double)timeout_usec / 1e6);
		break;
	}
	int r = launch_sync_recv(sock, MSG_DONTWAIT, expect, err);
	if (r == 0)
		return dy_error(err, "the dyno's init exited during set-up");
	return MIN(r, 0);
}

/* Replaces *err with the child's own report when one is waiting (after
 * its LAUNCH_SYNC_NETNS_MADE, if that was not read yet). Returns the
 * report's value (-errno, or -1), or 0 when none was waiting. */
int launch_child_error(int sock, struct dy_error **err)
{
	struct launch_sync_msg m;
	while (launch_sync_read(sock, MSG_DONTWAIT, &m, NULL) == 1) {
		if (m.type != LAUNCH_SYNC_ERROR)
			continue;
		if (err)
			dy_error_free(err);
		return launch_sync_error(&m, err);
	}
	return 0;
}

void launch_set_exit(struct launch_dyno *d, const siginfo_t *si)
{
	d->exited = true;
	d->status = si->si_code == CLD_EXITED ? si->si_status : 128 + si->si_status;
	d->status_known = true;
}

bool launch_kill_child(struct launch_dyno *d, int sock, int *r, struct dy_error **err)
{
	int ce;
	syscall(SYS_pidfd_send_signal, d->pidfd, SIGKILL, NULL, 0);
	{
		/* bounded: a child stuck in the kernel (a hung file system
		 * under the slug) cannot die yet; it is left to the sweep,
		 * with its cgroup, veth and rules (their names come from the
		 * id) */
		struct pollfd pf = {d->pidfd, POLLIN, 0};
		int pr;
		do
			pr = poll(&pf, 1, 2000);
		while (pr < 0 && errno == EINTR);
		siginfo_t si;
		if (pr == 1) {
			waitid(P_PIDFD, (id_t)d->pidfd, &si, WEXITED);
			ce = launch_child_error(sock, err); /* sent while we were failing */
			if (ce < 0)
				*r = ce;
		} else {
			dy_error_prefix(err, "the child did not die within 2 s of SIGKILL, "
			                     "left for the sweep");
			/* reaped by launch_sweep() once it is gone */
			pthread_mutex_lock(&orphans_lock);
			if (n_orphans < ELEMENTSOF(orphans)) {
				orphans[n_orphans++] = d->pidfd;
				d->pidfd = -1;
			}
			pthread_mutex_unlock(&orphans_lock);
			d->exited = true;
			return false;
		}
	}
	d->exited = true;
	return true;
}

pid_t launch_clone(struct launch_dyno *d, bool unified, int *ret_sock, int *ret_child_sock,
                   struct dy_error **err)
{
	struct cg *cg = d->cg;
	int pidfd = -1;
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return dy_error_errno(err, errno, "socketpair");
	/* clone3 with no stack behaves as fork: the child runs on a copy of
	 * this stack. On a unified cgroup2 host the child is born in its
	 * cgroup and cgroup namespace (CLONE_INTO_CGROUP); elsewhere (v1 has
	 * no such flag) it is moved there before it goes on, and unshares the
	 * cgroup namespace itself. Moving a task on v1 waits for an RCU grace
	 * period (cgroup_threadgroup_rwsem) unless another move happened in
	 * the last ~20 ms. The network namespace is the child's to make (see
	 * launch_child_main()). */
	int cg_fd = unified ? cg_unified_fd(cg) : -1;
	if (unified && cg_fd < 0) {
		int e = errno;
		close(sv[0]);
		close(sv[1]);
		return dy_error_errno(err, e, "cgroup %s", cg->rel);
	}
	struct clone_args ca = {
	    .flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_PIDFD,
	    .pidfd = (uint64_t)(uintptr_t)&pidfd,
	    .exit_signal = SIGCHLD,
	};
	if (cg_fd >= 0) {
		ca.flags |= CLONE_INTO_CGROUP | CLONE_NEWCGROUP;
		ca.cgroup = (uint64_t)cg_fd;
	}
	pid_t pid = (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
	if (pid < 0) {
		int e = errno;
		close(sv[0]);
		close(sv[1]);
		return dy_error_errno(err, e, "clone3");
	}
	if (pid == 0) {
		close(sv[0]);
	} else {
		*ret_sock = sv[0];
		d->pid = pid;
		d->pidfd = pidfd;
	}
	*ret_child_sock = sv[1];
	return pid;
}

struct launch_child_common launch_child_common_of(const struct launch_dyno *d, int sock,
                                                  int init_fd, int filter_fd, bool unified)
{
	return (struct launch_child_common){
	    .sock = sock,
	    .cg = d->cg,
	    .addr = d->addr,
	    .gw = d->gateway,
	    .init_fd = init_fd,
	    .filter_fd = filter_fd,
	    .born_in_cgroup = unified,
	};
}

uint64_t launch_child_started(int *child_sock, uint64_t setup_timeout_usec, uint64_t *ret_timeout)
{
	close(*child_sock);
	*child_sock = -1;
	*ret_timeout = setup_timeout_usec ? setup_timeout_usec : LAUNCH_SETUP_TIMEOUT;
	return launch_now_usec() + *ret_timeout;
}

int launch_veth(struct launch_dyno *d, int sock, uint64_t deadline, uint64_t timeout,
                bool *net_made, struct dy_error **err)
{
	int r = launch_wait_msg(sock, LAUNCH_SYNC_NETNS_MADE, deadline, timeout, err);
	if (r < 0)
		return r;
	r = net_host_setup(d->veth, d->pid, d->addr, d->gateway, err);
	if (r < 0)
		return r;
	*net_made = true;
	return launch_sync_send(sock, LAUNCH_SYNC_VETH_READY, err);
}

int launch_join_cgroup(struct launch_dyno *d, const char *cg_parent, const struct cg_limits *lim,
                       int sock, bool *cg_made, struct dy_error **err)
{
	int r = cg_make(d->cg, cg_parent, lim, err);
	if (r < 0)
		return r;
	*cg_made = true;
	d->oom_fd = d->cg->oom_fd;
	/* memory first: from LAUNCH_SYNC_CGROUP_JOINED on, what the child
	 * allocates (its network namespace) is the dyno's; pids and cpu
	 * before LAUNCH_SYNC_VETH_READY */
	r = cg_attach_ctrl(d->cg, d->pid, CG_MEMORY, err);
	if (r < 0)
		return r;
	r = launch_sync_send(sock, LAUNCH_SYNC_CGROUP_JOINED, err);
	for (int c = 0; c < CG_N_CTRL && r == 0; c++)
		if (c != CG_MEMORY)
			r = cg_attach_ctrl(d->cg, d->pid, (enum cg_ctrl)c, err);
	return r;
}

static int start_unpooled(const struct launch_params *p, struct launch_dyno **ret,
                          struct dy_error **err)
{
	if (!p->slug_dir || !p->name || !p->id || !p->command || !*p->id ||
	    p->nbinds > LAUNCH_BINDS_MAX)
		return dy_error(err, "launch: slug directory, name, id and command are required");
	if (p->uid == 0 || p->gid == 0)
		return dy_error(err, "launch %s: refusing uid or gid 0", p->id);
	if (strlen(p->id) > 64 || strchr(p->id, '/') || p->id[0] == '.')
		return dy_error(err, "launch: bad dyno id %s", p->id);

	const struct sock_fprog *filter;
	if (seccomp_policy_get(&filter, err) < 0)
		return -1;
	int filter_fd = seccomp_policy_fd();

	struct launch_dyno *d = calloc(1, sizeof(*d));
	if (!d)
		return dy_error_errno(err, ENOMEM, "calloc");
	d->pidfd = d->oom_fd = -1;
	d->pid = -1;
	d->id = strdup(p->id);
	_cleanup_close_ int slug_fd = -1, sv0 = -1, sv1 = -1, init_fd = -1, env_fd = -1;
	_cleanup_free_ char *sink_dir = NULL, *sink_name = NULL;
	bool net_made = false, rules_made = false, cg_made = false;
	bool started = false; /* LAUNCH_SYNC_RULES_READY sent: the app may run */
	struct launch_rules rules = {0};
	int r = -1;
	if (!d->id) {
		r = dy_error_errno(err, ENOMEM, "strdup");
		goto fail;
	}

	slug_fd = open(p->slug_dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (slug_fd < 0) {
		r = dy_error_errno(err, errno, "slug directory %s", p->slug_dir);
		goto fail;
	}
	r = launch_open_init(p->init_path, &init_fd, err);
	if (r < 0)
		goto fail;
	if (p->log_sink) {
		/* checked here, bound by the child */
		r = launch_sink_paths(p->log_sink, &sink_dir, &sink_name, err);
		if (r < 0)
			goto fail;
	}
	r = launch_env_fd(p, &env_fd, err);
	if (r < 0)
		goto fail;

	/* the cgroup's paths now (the child binds them); the cgroup itself
	 * before clone only where the child can be born in it (unified
	 * cgroup2), else beside the child's set-up */
	const char *cg_parent = p->cgroup_parent ? p->cgroup_parent : "dyno";
	r = cg_new(cg_parent, p->id, &d->cg, err);
	if (r < 0)
		goto fail;
	bool unified = cg_is_unified(d->cg);
	if (unified) {
		r = cg_make(d->cg, cg_parent, &p->limits, err);
		if (r < 0)
			goto fail;
		cg_made = true;
	}
	d->oom_fd = d->cg->oom_fd;

	d->gateway = net_gateway(p->subnet);
	d->egress = p->egress;
	net_veth_name(p->id, d->veth);
	r = net_rules_init(p->subnet, p->subnet_prefix, err);
	if (r < 0)
		goto fail;
	d->addr = p->addr;
	if (!d->addr.s_addr) {
		r = net_alloc_address(p->subnet, p->subnet_prefix, &d->addr, err);
		if (r < 0)
			goto fail;
	}

	pid_t pid = launch_clone(d, unified, &sv0, &sv1, err);
	if (pid < 0)
		goto fail;
	if (pid == 0) {
		struct launch_child_args a = {
		    .c = launch_child_common_of(d, sv1, init_fd, filter_fd, unified),
		    .p = p,
		    .slug_fd = slug_fd,
		    .sink_dir = p->log_sink ? sink_dir : NULL,
		    .sink_name = sink_name,
		    .env_fd = env_fd,
		};
		launch_child_main(&a);
	}
	uint64_t timeout;
	uint64_t deadline = launch_child_started(&sv1, p->setup_timeout_usec, &timeout);
	/* the rules need no veth (they go by its name) and nothing of the
	 * rest: made on a thread of their own beside the cgroup's move (which
	 * can wait for an RCU grace period on v1) and the veth, joined before
	 * LAUNCH_SYNC_RULES_READY (a commit can take milliseconds; the parent
	 * must answer LAUNCH_SYNC_NETNS_MADE meanwhile) */
	rules = (struct launch_rules){.veth = d->veth,
	                              .addr = d->addr,
	                              .gw = d->gateway,
	                              .ports = p->gateway_ports,
	                              .n_ports = p->n_gateway_ports,
	                              .egress = p->egress};
	launch_rules_start(&rules);

	if (!unified) {
		r = launch_join_cgroup(d, cg_parent, &p->limits, sv0, &cg_made, err);
		if (r < 0)
			goto fail_child;
	}
	/* LAUNCH_SYNC_VETH_READY: eth0 is there, the child goes on to exec
	 * dyno-init; LAUNCH_SYNC_RULES_READY (read by dyno-init): the rules
	 * are in place, start the app */
	r = launch_veth(d, sv0, deadline, timeout, &net_made, err);
	if (r < 0)
		goto fail_child;
	r = launch_rules_join(&rules, &rules_made, err);
	if (r < 0)
		goto fail_child;
	r = launch_sync_send(sv0, LAUNCH_SYNC_RULES_READY, err);
	if (r < 0)
		goto fail_child;
	started = true;
	r = launch_wait_msg(sv0, LAUNCH_SYNC_APP_EXECED, deadline, timeout, err);
	if (r < 0)
		goto fail_child;
	*ret = d;
	return 0;

fail_child:
	launch_rules_join(&rules, &rules_made, NULL);
	/* the child may have failed first (its set-up runs beside ours):
	 * then its error is the one that tells what went wrong */
	int ce = launch_child_error(sv0, err);
	if (ce < 0)
		r = ce;
	if (!launch_kill_child(d, sv0, &r, err))
		rules_made = net_made = cg_made = false; /* left for the sweep */
	d->exited = true;
fail:
	dy_error_prefix(err, "dyno %s", p->id);
	if (rules_made)
		net_rules_del(d->veth, p->egress, NULL);
	if (net_made)
		net_link_delete(d->veth, NULL);
	if (started) /* the app may have run when the timeout hit */
		net_conntrack_flush(d->addr, NULL, NULL);
	if (cg_made)
		cg_destroy(d->cg, NULL); /* busy: the sweep removes it */
	d->oom_fd = -1;
	launch_free(d);
	return MIN(r, -1); /* r, or -1 when no step set it */
}

pthread_rwlock_t launch_start_lock = PTHREAD_RWLOCK_INITIALIZER;

int launch_start(const struct launch_params *p, struct launch_dyno **ret, struct dy_error **err)
{
	if (p->pool) {
		int r = launch_pool_take(p->pool, p, ret, err);
		if (r != 0)
			return MIN(r, 0);
		/* no entry ready, or this start is not one a pool serves */
	}
	pthread_rwlock_rdlock(&launch_start_lock);
	int r = start_unpooled(p, ret, err);
	pthread_rwlock_unlock(&launch_start_lock);
	return r;
}

/* PID 1 of a child PID namespace: /proc/PID/status's NSpid names the pid
 * in every namespace from ours down; a dyno's init has two, the last 1. */
static bool is_dyno_init(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return false;
	bool ok = false, comm = false;
	while (fgets(line, sizeof(line), f)) {
		if (!strcmp(line, "Name:\tdyno-init\n"))
			comm = true;
		if (strncmp(line, "NSpid:", 6) != 0)
			continue;
		long ids[4];
		int n = sscanf(line + 6, "%ld %ld %ld", &ids[0], &ids[1], &ids[2]);
		ok = n == 2 && ids[0] == pid && ids[1] == 1;
	}
	fclose(f);
	return ok && comm;
}

int launch_adopt(const char *cgroup_parent, const char *id, pid_t pid, struct launch_dyno **ret,
                 struct dy_error **err)
{
	struct launch_dyno *d = calloc(1, sizeof(*d));
	if (!d)
		return dy_error_errno(err, ENOMEM, "calloc");
	d->pidfd = d->oom_fd = -1;
	d->pid = pid;
	d->adopted = true;
	d->id = strdup(id);
	int r = -1;
	if (!d->id) {
		r = dy_error_errno(err, ENOMEM, "strdup");
		goto fail;
	}
	/* the pidfd first: from here on pid cannot be reused under us */
	d->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (d->pidfd < 0) {
		r = dy_error_errno(err, errno, "pid %d", (int)pid);
		goto fail;
	}
	/* its name can be anybody's (prctl): what counts is that it is PID 1
	 * of a PID namespace below ours, and in the dyno's cgroup (below) */
	if (!is_dyno_init(pid)) {
		r = dy_error(err, "pid %d is not a dyno's init", (int)pid);
		goto fail;
	}
	r = cg_open(cgroup_parent ? cgroup_parent : "dyno", id, &d->cg, err);
	if (r < 0)
		goto fail;
	if (!cg_has(d->cg, pid)) {
		r = dy_error(err, "pid %d is not in cgroup %s", (int)pid, d->cg->rel);
		goto fail;
	}
	d->oom_fd = d->cg->oom_fd;
	d->oom_kills = cg_oom_kills(d->cg);
	net_veth_name(id, d->veth);
	r = net_route_of(d->veth, &d->addr, err);
	if (r < 0)
		goto fail;
	*ret = d;
	return 0;
fail:
	dy_error_prefix(err, "adopt dyno %s", id);
	launch_free(d);
	return MIN(r, -1); /* r, or -1 when no step set it */
}

int launch_poll(struct launch_dyno *d, struct dy_error **err)
{
	if (d->exited)
		return 1;
	if (d->adopted) {
		/* not our child: readable pidfd = exited, no status */
		struct pollfd pf = {d->pidfd, POLLIN, 0};
		if (poll(&pf, 1, 0) <= 0)
			return 0;
		d->exited = true;
		d->status = 0;
		d->status_known = false;
		return 1;
	}
	siginfo_t si = {0};
	if (waitid(P_PIDFD, (id_t)d->pidfd, &si, WEXITED | WNOHANG) < 0)
		return dy_error_errno(err, errno, "wait for dyno %s", d->id);
	if (si.si_pid == 0)
		return 0;
	launch_set_exit(d, &si);
	return 1;
}

static int wait_exit(struct launch_dyno *d, int timeout_ms, struct dy_error **err)
{
	struct pollfd pf = {d->pidfd, POLLIN, 0};
	int r;
	do
		r = poll(&pf, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return dy_error_errno(err, errno, "poll");
	return launch_poll(d, err);
}

int launch_kill(struct launch_dyno *d, struct dy_error **err)
{
	if (d->exited)
		return 0;
	int r = cg_kill(d->cg, err);
	/* init is PID 1 of the dyno: its death takes the namespace with it */
	syscall(SYS_pidfd_send_signal, d->pidfd, SIGKILL, NULL, 0);
	if (d->adopted) {
		struct pollfd pf = {d->pidfd, POLLIN, 0};
		while (poll(&pf, 1, -1) < 0 && errno == EINTR)
			;
		d->exited = true;
		d->status = 128 + SIGKILL;
		d->status_known = true; /* ours */
		return r;
	}
	siginfo_t si = {0};
	if (waitid(P_PIDFD, (id_t)d->pidfd, &si, WEXITED) < 0)
		return dy_error_errno(err, errno, "wait for dyno %s", d->id);
	launch_set_exit(d, &si);
	return r;
}

int launch_check_oom(struct launch_dyno *d, struct dy_error **err)
{
	cg_oom_ack(d->cg);
	uint64_t kills = cg_oom_kills(d->cg);
	if (kills <= d->oom_kills)
		return 0; /* under OOM, but the kernel reclaimed enough */
	d->oom_kills = kills;
	if (launch_kill(d, err) < 0)
		return -1;
	return 1;
}

int launch_stop(struct launch_dyno *d, uint64_t grace_usec, bool *ret_killed, struct dy_error **err)
{
	if (ret_killed)
		*ret_killed = false;
	if (d->exited)
		return 0;
	if (syscall(SYS_pidfd_send_signal, d->pidfd, SIGTERM, NULL, 0) < 0 && errno != ESRCH)
		return dy_error_errno(err, errno, "SIGTERM dyno %s", d->id);
	int r = wait_exit(d, (int)(grace_usec / 1000), err);
	if (r != 0)
		return MIN(r, 0);
	if (ret_killed)
		*ret_killed = true;
	return launch_kill(d, err);
}

int launch_cleanup(struct launch_dyno *d, struct dy_error **err)
{
	if (!d->exited)
		return dy_error(err, "dyno %s: still running", d->id);
	if (d->stopped)
		return 0;
	int r = 0;
	/* the veth went with the dyno's network namespace; the host side is
	 * deleted by name in case something still holds that namespace */
	if (net_rules_del(d->veth, d->adopted ? -1 : d->egress, err) < 0)
		r = -1;
	if (net_link_delete(d->veth, r < 0 ? NULL : err) < 0)
		r = -1;
	/* with the veth gone no new entry of the address is made: the next
	 * dyno that gets it finds no state of this one's connections. Best
	 * effort: a kernel without ctnetlink keeps them until they time out */
	net_conntrack_flush(d->addr, NULL, NULL);
	if (r < 0) {
		/* the cgroup is what the sweep goes by: it stays until the
		 * rules and the veth are gone, so that they are never left
		 * without it */
		d->oom_fd = d->cg->oom_fd;
		return r;
	}
	struct dy_error *cg_err = NULL;
	int c = cg_destroy(d->cg, &cg_err);
	if (c == -EBUSY) {
		/* a process left the PID namespace's end behind (v1: it may
		 * still be leaving): kill what is there and try once more */
		dy_error_free(&cg_err);
		cg_kill(d->cg, NULL);
		c = cg_destroy(d->cg, &cg_err);
	}
	if (c < 0) {
		if (err && !*err)
			*err = cg_err;
		else
			dy_error_free(&cg_err);
		r = -1;
	}
	d->oom_fd = d->cg->oom_fd; /* closed by cg_destroy() */
	/* what failed is tried again by the next call (each step is
	 * idempotent) or by launch_sweep() at the next start */
	if (r == 0)
		d->stopped = true;
	return r;
}

void launch_free(struct launch_dyno *d)
{
	if (!d)
		return;
	if (d->pidfd >= 0)
		close(d->pidfd);
	cg_free(d->cg);
	free(d->id);
	free(d);
}

static int sweep_one(const char *id, void *data)
{
	char veth[NET_IFNAME_LEN];
	net_veth_name(id, veth);
	if (net_rules_del(veth, -1, NULL) < 0 || net_link_delete(veth, NULL) < 0)
		return -1; /* the cgroup stays: tried again by the next sweep */
	(*(int *)data)++;
	return 0;
}

int launch_sweep(const char *cgroup_parent, const char *prefix)
{
	/* not during a start or a pool's preparation: their cgroup is empty
	 * for a moment. The caller's loop does not wait for a preparation
	 * that hangs (up to its set-up timeout): past 100 ms this sweep is
	 * skipped, the next one does it */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += 100 * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	if (pthread_rwlock_timedwrlock(&launch_start_lock, &ts) != 0)
		return 0;
	/* children of failed starts that could not die then */
	pthread_mutex_lock(&orphans_lock);
	for (size_t i = 0; i < n_orphans;) {
		siginfo_t si = {0};
		if (waitid(P_PIDFD, (id_t)orphans[i], &si, WEXITED | WNOHANG) == 0 &&
		    si.si_pid == 0) {
			i++;
			continue;
		}
		close(orphans[i]);
		orphans[i] = orphans[--n_orphans];
	}
	pthread_mutex_unlock(&orphans_lock);
	int n = 0;
	cg_sweep(cgroup_parent ? cgroup_parent : "dyno", prefix, sweep_one, &n);
	pthread_rwlock_unlock(&launch_start_lock);
	return n;
}

static bool kept(const char *id, const char *const *keep, size_t nkeep)
{
	for (size_t i = 0; i < nkeep; i++)
		if (strcmp(keep[i], id) == 0)
			return true;
	return false;
}

int launch_kill_leftovers(const char *cgroup_parent, const char *prefix, const char *const *keep,
                          size_t nkeep)
{
	size_t plen = prefix ? strlen(prefix) : 0;
	const char *parent = cgroup_parent ? cgroup_parent : "dyno";
	enum cg_version ver;
	_cleanup_free_ char *mount = NULL;
	if (cg_detect(CG_PIDS, &ver, &mount, NULL) < 0)
		return 0;
	char top[512];
	snprintf(top, sizeof(top), "%s/%s", mount, parent);
	DIR *dir = opendir(top);
	if (!dir)
		return 0;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(dir))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		if (plen && strncmp(de->d_name, prefix, plen) != 0)
			continue; /* another launcher's */
		if (kept(de->d_name, keep, nkeep))
			continue; /* re-adopted */
		struct cg *cg = NULL;
		if (cg_open(parent, de->d_name, &cg, NULL) < 0)
			continue;
		/* SIGKILL to the whole cgroup: init (PID 1 of the dyno) with it */
		if (cg_kill(cg, NULL) == 0)
			n++;
		cg_free(cg);
	}
	closedir(dir);
	return n;
}
