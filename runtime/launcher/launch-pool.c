/* The warm pool of prepared dynos; see launch.h ("A warm pool") and
 * docs/isolation.md ("The pool").
 *
 * An entry's preparation (the pool's thread, under launch_start_lock) is
 * the first half of launch_start(): cgroup (made with the pool's limits;
 * v2: born in it), clone3 into new PID, mount, UTS, IPC namespaces, the
 * child's mounts but /app's part, its network namespace, the veth with an
 * address, eth0 up, the cgroup namespace, the dyno's base rules (its
 * address; no gateway port, no egress), the pivot; then the child execs
 * `dyno-init pool`, which reports LAUNCH_SYNC_POOL_READY and waits. The
 * slow steps are all here: the v1 cgroup move (an RCU grace period), the
 * network namespace, the veth, the detach of the host's tree (another
 * grace period), the exec.
 *
 * A take (launch_pool_take(), on the caller's thread, not under the lock):
 * the dyno's limits written over the pool's and read back, its rules
 * again when it has gateway ports or egress, LAUNCH_SYNC_TAKE with uid,
 * sizes, name, command, the env memfd and the slug's and sink's
 * directories as detached read-only mounts (open_tree(OPEN_TREE_CLONE):
 * made here, where the paths are; the entry pivoted long ago); dyno-init
 * moves them into its tree, mounts /app, scratch, /tmp, /dev/shm, writes
 * /etc/passwd (mounts_pool_take()) and starts the app once the rules are
 * in place (LAUNCH_SYNC_RULES_READY), as for any dyno. Nothing is
 * unmounted at take.
 *
 * An entry is taken once: it leaves the list under the pool's lock before
 * its socket is written. One found dead (its pidfd readable) is discarded
 * (rules, veth, cgroup) and the thread makes another. */
#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <linux/sched.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/macro.h"
#include "runtime/launcher/launch-child.h"
#include "runtime/launcher/launch-internal.h"
#include "runtime/launcher/seccomp-filter.h"
#include "runtime/launcher/sync.h"

struct pool_entry {
	struct pool_entry *next;
	struct launch_dyno *d; /* id, pid, pidfd, cg, veth, addr, gateway */
	int sock;
};

struct launch_pool {
	struct launch_pool_params pp; /* its strings are ours */
	pthread_mutex_t lock;
	pthread_cond_t cond; /* an entry taken, made, or quit */
	struct pool_entry *ready;
	size_t n_ready;
	bool quit;
	bool thread_made;
	pthread_t thread;
	unsigned seq;
	struct dy_error *err; /* the last preparation's failure */
	uint64_t last_take;   /* launch_now_usec() of the last take's end */
};

/* The refill waits this long after a take: the takes of a burst do not
 * compete with the preparation of the next entries (clone, cgroup move,
 * veth: CPU and the kernel's locks). */
#define POOL_REFILL_QUIET_USEC 20000

/* Ends an entry that was never taken: closing its socket ends a waiting
 * child (end of stream), SIGKILL the others; then its veth and cgroup. */
static void entry_end(struct pool_entry *en)
{
	struct launch_dyno *d = en->d;
	if (en->sock >= 0)
		close(en->sock);
	if (d->pidfd >= 0) {
		syscall(SYS_pidfd_send_signal, d->pidfd, SIGKILL, NULL, 0);
		struct pollfd pf = {d->pidfd, POLLIN, 0};
		while (poll(&pf, 1, 2000) < 0 && errno == EINTR)
			;
		siginfo_t si;
		waitid(P_PIDFD, (id_t)d->pidfd, &si, WEXITED | WNOHANG);
	}
	/* what fails here (a child stuck in the kernel) is the sweep's */
	net_rules_del(d->veth, 0, NULL);
	net_link_delete(d->veth, NULL);
	cg_destroy(d->cg, NULL);
	launch_free(d);
	free(en);
}

static bool entry_dead(const struct pool_entry *en)
{
	struct pollfd pf = {en->d->pidfd, POLLIN, 0};
	return poll(&pf, 1, 0) != 0;
}

/* Prepares one entry (launch_start_lock held). */
static int prepare(struct launch_pool *pool, struct pool_entry **ret, struct dy_error **err)
{
	const struct launch_pool_params *pp = &pool->pp;
	char id[80];
	snprintf(id, sizeof(id), "%spool-%u-%u", pp->id_prefix, (unsigned)getpid() % 100000,
	         ++pool->seq);
	const struct sock_fprog *filter;
	if (seccomp_policy_get(&filter, err) < 0)
		return -1;
	int filter_fd = seccomp_policy_fd();
	struct pool_entry *en = calloc(1, sizeof(*en));
	struct launch_dyno *d = calloc(1, sizeof(*d));
	if (!en || !d) {
		free(en);
		free(d);
		return dy_error_errno(err, ENOMEM, "calloc");
	}
	en->d = d;
	en->sock = -1;
	d->pidfd = d->oom_fd = -1;
	d->pid = -1;
	d->id = strdup(id);
	_cleanup_close_ int sv1 = -1, init_fd = -1;
	bool cg_made = false, net_made = false, rules_made = false;
	int r = -1;
	if (!d->id) {
		r = dy_error_errno(err, ENOMEM, "strdup");
		goto fail;
	}
	r = launch_open_init(pp->init_path, &init_fd, err);
	if (r < 0)
		goto fail;
	r = cg_new(pp->cgroup_parent, id, &d->cg, err);
	if (r < 0)
		goto fail;
	bool unified = cg_is_unified(d->cg);
	if (unified) {
		r = cg_make(d->cg, pp->cgroup_parent, &pp->limits, err);
		if (r < 0)
			goto fail;
		cg_made = true;
	}
	d->gateway = net_gateway(pp->subnet);
	net_veth_name(id, d->veth);
	/* the tables, once per process: off the take's path */
	r = net_rules_init(pp->subnet, pp->subnet_prefix, err);
	if (r < 0)
		goto fail;
	r = net_alloc_address(pp->subnet, pp->subnet_prefix, &d->addr, err);
	if (r < 0)
		goto fail;
	pid_t pid = launch_clone(d, unified, &en->sock, &sv1, err);
	if (pid < 0)
		goto fail;
	if (pid == 0) {
		struct launch_pool_child_args a = {
		    .id = d->id,
		    .c = launch_child_common_of(d, sv1, init_fd, filter_fd, unified),
		};
		launch_pool_child_main(&a);
	}
	uint64_t timeout;
	uint64_t deadline = launch_child_started(&sv1, pp->setup_timeout_usec, &timeout);
	if (!unified) {
		/* the move that may wait for an RCU grace period is here, not
		 * at take */
		r = launch_join_cgroup(d, pp->cgroup_parent, &pp->limits, en->sock, &cg_made, err);
		if (r < 0)
			goto fail_child;
	}
	d->oom_fd = d->cg->oom_fd;
	r = launch_veth(d, en->sock, deadline, timeout, &net_made, err);
	if (r < 0)
		goto fail_child;
	/* its rules as for a dyno with no gateway port and no egress (its
	 * address only, IPv4 and ARP): a take that adds neither has no
	 * nftables transaction to wait for */
	r = net_rules_add(d->veth, d->addr, d->gateway, NULL, 0, false, err);
	if (r < 0)
		goto fail_child;
	rules_made = true;
	r = launch_wait_msg(en->sock, LAUNCH_SYNC_POOL_READY, deadline, timeout, err);
	if (r < 0)
		goto fail_child;
	*ret = en;
	return 0;

fail_child : {
	int ce = launch_child_error(en->sock, err);
	if (ce < 0)
		r = ce;
	if (!launch_kill_child(d, en->sock, &r, err))
		rules_made = net_made = cg_made = false; /* left for the sweep */
}
fail:
	dy_error_prefix(err, "pool entry %s", id);
	if (rules_made)
		net_rules_del(d->veth, 0, NULL);
	if (net_made)
		net_link_delete(d->veth, NULL);
	if (cg_made)
		cg_destroy(d->cg, NULL);
	if (en->sock >= 0)
		close(en->sock);
	d->oom_fd = -1;
	launch_free(d);
	free(en);
	return MIN(r, -1);
}

static void *refill(void *arg)
{
	struct launch_pool *pool = arg;
	unsigned failures = 0;
	pthread_mutex_lock(&pool->lock);
	for (;;) {
		while (!pool->quit && pool->n_ready >= pool->pp.size)
			pthread_cond_wait(&pool->cond, &pool->lock);
		if (pool->quit)
			break;
		uint64_t now = launch_now_usec();
		if (now < pool->last_take + POOL_REFILL_QUIET_USEC) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			uint64_t ns = (uint64_t)ts.tv_nsec +
			              (pool->last_take + POOL_REFILL_QUIET_USEC - now) * 1000;
			ts.tv_sec += (time_t)(ns / 1000000000);
			ts.tv_nsec = (long)(ns % 1000000000);
			pthread_cond_timedwait(&pool->cond, &pool->lock, &ts);
			continue; /* quit, or still taking: look again */
		}
		pthread_mutex_unlock(&pool->lock);
		struct pool_entry *en = NULL;
		struct dy_error *e = NULL;
		pthread_rwlock_rdlock(&launch_start_lock);
		int r = prepare(pool, &en, &e);
		pthread_rwlock_unlock(&launch_start_lock);
		pthread_mutex_lock(&pool->lock);
		if (r == 0) {
			failures = 0;
			en->next = pool->ready;
			pool->ready = en;
			pool->n_ready++;
			pthread_cond_broadcast(&pool->cond);
			continue;
		}
		dy_error_free(&pool->err);
		pool->err = e;
		pthread_cond_broadcast(&pool->cond); /* launch_pool_wait() */
		/* a host that refuses (no memory, a full subnet) is not
		 * asked again at once: 50 ms doubling up to 5 s */
		failures++;
		unsigned shift = MIN(failures, 7u);
		uint64_t wait_us = MIN((uint64_t)50000 << shift, (uint64_t)5000000);
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		uint64_t ns = (uint64_t)ts.tv_nsec + wait_us * 1000;
		ts.tv_sec += (time_t)(ns / 1000000000);
		ts.tv_nsec = (long)(ns % 1000000000);
		while (!pool->quit && pthread_cond_timedwait(&pool->cond, &pool->lock, &ts) == 0)
			;
	}
	pthread_mutex_unlock(&pool->lock);
	return NULL;
}

int launch_pool_new(const struct launch_pool_params *pp, struct launch_pool **ret,
                    struct dy_error **err)
{
	if (pp->size == 0)
		return dy_error(err, "launch pool: size 0");
	struct launch_pool *pool = calloc(1, sizeof(*pool));
	if (!pool)
		return dy_error_errno(err, ENOMEM, "calloc");
	pool->pp = *pp;
	pool->pp.cgroup_parent = strdup(pp->cgroup_parent ? pp->cgroup_parent : "dyno");
	pool->pp.id_prefix = strdup(pp->id_prefix ? pp->id_prefix : "");
	pool->pp.init_path = pp->init_path ? strdup(pp->init_path) : NULL;
	if (!pool->pp.cgroup_parent || !pool->pp.id_prefix ||
	    (pp->init_path && !pool->pp.init_path)) {
		launch_pool_free(pool);
		return dy_error_errno(err, ENOMEM, "strdup");
	}
	if (strlen(pool->pp.id_prefix) > 32) {
		launch_pool_free(pool);
		return dy_error(err, "launch pool: id prefix %s too long", pp->id_prefix);
	}
	pthread_mutex_init(&pool->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&pool->cond, &ca);
	pthread_condattr_destroy(&ca);
	/* no signal of the caller's (a signalfd's SIGTERM) may land on the
	 * pool's thread: it starts with all blocked (its children unblock
	 * theirs, launch_pool_child_main()) */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int e = pthread_create(&pool->thread, NULL, refill, pool);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0) {
		launch_pool_free(pool);
		return dy_error_errno(err, e, "launch pool: thread");
	}
	pool->thread_made = true;
	*ret = pool;
	return 0;
}

size_t launch_pool_wait(struct launch_pool *pool, size_t n, uint64_t timeout_usec)
{
	n = MIN(n, pool->pp.size);
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t ns = (uint64_t)ts.tv_nsec + timeout_usec * 1000;
	ts.tv_sec += (time_t)(ns / 1000000000);
	ts.tv_nsec = (long)(ns % 1000000000);
	pthread_mutex_lock(&pool->lock);
	while (pool->n_ready < n && !pool->err &&
	       pthread_cond_timedwait(&pool->cond, &pool->lock, &ts) != ETIMEDOUT)
		;
	size_t have = pool->n_ready;
	pthread_mutex_unlock(&pool->lock);
	return have;
}

struct dy_error *launch_pool_error(struct launch_pool *pool)
{
	pthread_mutex_lock(&pool->lock);
	struct dy_error *e = TAKE_PTR(pool->err);
	pthread_mutex_unlock(&pool->lock);
	return e;
}

void launch_pool_free(struct launch_pool *pool)
{
	if (!pool)
		return;
	if (pool->thread_made) {
		pthread_mutex_lock(&pool->lock);
		pool->quit = true;
		pthread_cond_broadcast(&pool->cond);
		pthread_mutex_unlock(&pool->lock);
		pthread_join(pool->thread, NULL);
		pthread_cond_destroy(&pool->cond);
		pthread_mutex_destroy(&pool->lock);
	}
	while (pool->ready) {
		struct pool_entry *en = pool->ready;
		pool->ready = en->next;
		entry_end(en);
	}
	dy_error_free(&pool->err);
	free((char *)pool->pp.cgroup_parent);
	free((char *)pool->pp.id_prefix);
	free((char *)pool->pp.init_path);
	free(pool);
}

/* Whether the pool serves p: a dyno as the pool's entries are made. */
static bool serves(const struct launch_pool *pool, const struct launch_params *p)
{
	const char *parent = p->cgroup_parent ? p->cgroup_parent : "dyno";
	return !p->app_rw && p->nbinds == 0 && !p->attach && !p->addr.s_addr &&
	       strcmp(parent, pool->pp.cgroup_parent) == 0 &&
	       p->subnet.s_addr == pool->pp.subnet.s_addr &&
	       p->subnet_prefix == pool->pp.subnet_prefix &&
	       ((!p->init_path && !pool->pp.init_path) ||
	        (p->init_path && pool->pp.init_path && !strcmp(p->init_path, pool->pp.init_path)));
}

/* Wakes the refill: after a take, not during it (its clone, cgroup and
 * veth would compete with the take for the CPU and the kernel's locks). */
static void refill_soon(struct launch_pool *pool)
{
	pthread_mutex_lock(&pool->lock);
	pool->last_take = launch_now_usec();
	pthread_cond_broadcast(&pool->cond);
	pthread_mutex_unlock(&pool->lock);
}

/* The first live entry, out of the list (the dead ones ended). */
static struct pool_entry *pop(struct launch_pool *pool)
{
	for (;;) {
		pthread_mutex_lock(&pool->lock);
		struct pool_entry *en = pool->ready;
		if (en) {
			pool->ready = en->next;
			pool->n_ready--;
			en->next = NULL;
		}
		pthread_mutex_unlock(&pool->lock);
		if (!en || !entry_dead(en))
			return en;
		entry_end(en); /* died while waiting: discarded, replaced */
		refill_soon(pool);
	}
}

/* A detached read-only copy of the mount at path (open_tree()'s
 * OPEN_TREE_CLONE, not recursive), for a pooled dyno to move into its
 * tree: it pivoted long ago and reaches no host path. */
static int tree_of(const char *what, const char *path, unsigned int flags, uint64_t attrs, int *ret,
                   struct dy_error **err)
{
	int fd = (int)syscall(SYS_open_tree, AT_FDCWD, path,
	                      OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | flags);
	if (fd < 0)
		return dy_error_errno(err, errno, "%s %s", what, path);
	struct mount_attr attr = {.attr_set = attrs};
	if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) < 0) {
		int e = errno;
		close(fd);
		return dy_error_errno(err, e, "%s %s: mount_setattr", what, path);
	}
	*ret = fd;
	return 0;
}

/* The take's message: p's part of the dyno, in buf. Returns its size, or
 * 0 when it does not fit (then the start is not pooled). */
static size_t take_msg(const struct launch_params *p, const char *sink_dir, const char *sink_name,
                       struct launch_take *t, size_t size)
{
	const char *str[_LAUNCH_TAKE_N] = {
	    [LAUNCH_TAKE_SLUG_DIR] = p->slug_dir, [LAUNCH_TAKE_SINK_DIR] = sink_dir,
	    [LAUNCH_TAKE_SINK_NAME] = sink_name,  [LAUNCH_TAKE_NAME] = p->name,
	    [LAUNCH_TAKE_COMMAND] = p->command,
	};
	memset(t, 0, sizeof(*t));
	t->type = LAUNCH_SYNC_TAKE;
	t->uid = p->uid;
	t->gid = p->gid;
	t->tmpfs_size = p->limits.memory;
	t->log_buffer = p->log_buffer;
	size_t off = 0, room = size - sizeof(*t);
	for (int i = 0; i < _LAUNCH_TAKE_N; i++) {
		if (!str[i])
			continue;
		size_t l = strlen(str[i]) + 1;
		if (l > room - off)
			return 0;
		memcpy(t->data + off, str[i], l);
		t->len[i] = (uint32_t)l;
		off += l;
	}
	return sizeof(*t) + off;
}

int launch_pool_take(struct launch_pool *pool, const struct launch_params *p,
                     struct launch_dyno **ret, struct dy_error **err)
{
	if (!serves(pool, p))
		return 0;
	if (!p->slug_dir || !p->name || !p->command)
		return dy_error(err, "launch: slug directory, name and command are required");
	if (p->uid == 0 || p->gid == 0)
		return dy_error(err, "launch %s: refusing uid or gid 0", p->name);
	/* what can fail before an entry is taken, first */
	_cleanup_free_ char *sink_dir = NULL, *sink_name = NULL;
	_cleanup_free_ struct launch_take *t = malloc(LAUNCH_TAKE_MAX);
	_cleanup_close_ int env_fd = -1;
	if (!t)
		return dy_error_errno(err, ENOMEM, "malloc");
	if (p->log_sink && launch_sink_paths(p->log_sink, &sink_dir, &sink_name, err) < 0)
		return -1;
	size_t tlen = take_msg(p, sink_dir, sink_name, t, LAUNCH_TAKE_MAX);
	if (tlen == 0)
		return 0; /* too long a command for a take */
	_cleanup_close_ int slug_fd = -1, sink_fd = -1;
	if (tree_of("slug directory", p->slug_dir, AT_SYMLINK_NOFOLLOW,
	            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, &slug_fd, err) < 0)
		return -1;
	if (sink_dir &&
	    tree_of("log sink directory", sink_dir, 0,
	            MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
	            &sink_fd, err) < 0)
		return -1;
	if (launch_env_fd(p, &env_fd, err) < 0)
		return -1;
	int fds[_LAUNCH_TAKE_FD_N] = {[LAUNCH_TAKE_FD_ENV] = env_fd,
	                              [LAUNCH_TAKE_FD_SLUG] = slug_fd,
	                              [LAUNCH_TAKE_FD_SINK] = sink_fd};
	int r = net_rules_init(p->subnet, p->subnet_prefix, err);
	if (r < 0)
		return r;

	struct pool_entry *en = pop(pool);
	if (!en)
		return 0;
	struct launch_dyno *d = en->d;
	uint64_t timeout = p->setup_timeout_usec ? p->setup_timeout_usec : LAUNCH_SETUP_TIMEOUT;
	uint64_t deadline = launch_now_usec() + timeout;
	bool rules_made = true, started = false; /* the entry's */
	struct launch_rules rules = {.veth = d->veth,
	                             .addr = d->addr,
	                             .gw = d->gateway,
	                             .ports = p->gateway_ports,
	                             .n_ports = p->n_gateway_ports,
	                             .egress = p->egress};
	/* the entry's rules are a dyno's without gateway ports or egress:
	 * only a dyno with either has a transaction to make (the chains
	 * flushed and made again with them) */
	bool more_rules = p->n_gateway_ports > 0 || p->egress;
	d->egress = p->egress;
	if (more_rules)
		launch_rules_start(&rules);
	/* the dyno's limits over the pool's; the tmpfs sizes come with the
	 * take (the child mounts them sized) */
	if (memcmp(&p->limits, &pool->pp.limits, sizeof(p->limits)) != 0) {
		r = cg_set_limits(d->cg, &p->limits, err);
		if (r < 0)
			goto fail;
	} /* else written and read back when the entry was made */
	r = launch_sync_send_take(en->sock, t, tlen, fds, sink_fd >= 0 ? 3 : 2, err);
	if (r < 0)
		goto fail;
	r = launch_rules_join(&rules, &rules_made, err);
	if (r < 0)
		goto fail;
	r = launch_sync_send(en->sock, LAUNCH_SYNC_RULES_READY, err);
	if (r < 0)
		goto fail;
	started = true;
	r = launch_wait_msg(en->sock, LAUNCH_SYNC_APP_EXECED, deadline, timeout, err);
	if (r < 0)
		goto fail;
	close(en->sock);
	free(en);
	refill_soon(pool);
	*ret = d;
	return 1;

fail:
	launch_rules_join(&rules, &rules_made, NULL);
	{
		int ce = launch_child_error(en->sock, err);
		if (ce < 0)
			r = ce;
	}
	bool dead = launch_kill_child(d, en->sock, &r, err);
	dy_error_prefix(err, "dyno %s", d->id);
	if (dead)
		net_rules_del(d->veth, p->egress, NULL);
	if (started && dead)
		net_conntrack_flush(d->addr, NULL, NULL);
	if (dead) {
		net_link_delete(d->veth, NULL);
		cg_destroy(d->cg, NULL); /* busy: the sweep removes it */
	}
	d->oom_fd = -1;
	close(en->sock);
	launch_free(d);
	free(en);
	refill_soon(pool);
	return MIN(r, -1);
}
