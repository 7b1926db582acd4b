/* dynod's log intake: the sinks, filing, tails (log-intake.h). */
#include "runtime/manager/log-intake.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/macro.h"

#define LGI_BUCKETS  256
#define LGI_SINK_DIR "sinks"

struct lgi_app {
	struct lgi *l;
	struct lgi_app *next; /* in its bucket */
	struct lgi_app *dirty_next;
	bool dirty;
	bool failing;         /* its last flush failed (logged once, not each round) */
	uint64_t failed_lost; /* lstore_lost() when it began to fail */
	char name[STATE_APP_NAME_MAX + 1];
	struct lstore *store; /* NULL: its directory could not be opened */
	int sink_fd;
	struct loop_io io;
	char *sink_path;
	struct lgi_tail *tails;
};

struct lgi {
	struct loop *loop;
	const struct config *cfg;
	const struct state *st;
	char *sinks_dir;
	char *router_path;
	int router_fd;
	struct loop_io router_io;
	struct lgi_app *buckets[LGI_BUCKETS];
	struct lgi_app *dirty;
	struct loop_deferred flush;
	bool dying; /* lgi_free() with the flush queued: the flush frees */
	struct lgi_stats stats;
	lgi_exit_fn exit_fn; /* an init's report of its exit */
	void *exit_ctx;
};

/* one loop, one thread: the datagrams of a recvmmsg, shared by all, with
 * their senders' credentials (SO_PASSCRED on the sinks) */
static char dgrams[LGI_BATCH][LGI_DGRAM_MAX];
static char cmsgs[LGI_BATCH][CMSG_SPACE(sizeof(struct ucred))];

#define EXIT_TEXT "Process exited with status "

static unsigned hash(const char *s)
{
	unsigned h = 2166136261u; /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % LGI_BUCKETS;
}

static struct lgi_app *app_find(struct lgi *l, const char *name)
{
	for (struct lgi_app *a = l->buckets[hash(name)]; a; a = a->next)
		if (strcmp(a->name, name) == 0)
			return a;
	return NULL;
}

/* Binds a non-blocking datagram socket at dir/name, mode 0600, replacing a
 * stale file. Through /proc/self/fd so that a long state_dir does not
 * meet sun_path's 108 bytes. Returns the fd or < 0. */
static int bind_dgram(const char *dir, const char *name, struct dy_error **err)
{
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return dy_error_errno(err, errno, "open %s", dir);
	if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
		return dy_error_errno(err, errno, "remove %s/%s", dir, name);
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return dy_error_errno(err, errno, "socket");
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	snprintf(sun.sun_path, sizeof(sun.sun_path), "/proc/self/fd/%d/%s", dfd, name);
	/* created with no access for others: no window before the chmod */
	mode_t old = umask(0177);
	int r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (r < 0)
		return dy_error_errno(err, errno, "bind %s/%s", dir, name);
	if (fchmodat(dfd, name, 0600, 0) < 0)
		return dy_error_errno(err, errno, "chmod %s/%s", dir, name);
	return TAKE_FD(fd);
}

static void file_line(struct lgi_app *a, const char *line, size_t len);

/* A datagram from an app's sink: lines of its init joined by '\n' (one,
 * or a backlog packed), each "TS app[web.1]: ..." or init's own "TS
 * dyno[web.1]: Error L10 ...". A line not in the format is counted and
 * dropped, the others filed. */
static void take_sink(struct lgi_app *a, const char *p, size_t len, pid_t sender)
{
	while (len > 0) {
		const char *nl = memchr(p, '\n', len);
		size_t n = nl ? (size_t)(nl - p) : len;
		struct lstore_parts parts;
		if (!lstore_parse(p, n, &parts) ||
		    !((parts.source_len == 3 && memcmp(parts.source, "app", 3) == 0) ||
		      (parts.source_len == 4 && memcmp(parts.source, "dyno", 4) == 0)))
			a->l->stats.bad++;
		else
			file_line(a, p, n);
		/* the init's own report of how the app ended: the exit status
		 * of a dyno dynod cannot wait for (re-adopted), told by the
		 * process it knows by pid (the kernel's credentials) */
		size_t tl = strlen(EXIT_TEXT);
		if (sender > 0 && a->l->exit_fn && parts.source_len == 4 &&
		    memcmp(parts.source, "dyno", 4) == 0 && parts.msg_len > tl &&
		    memcmp(parts.msg, EXIT_TEXT, tl) == 0) {
			int status = 0;
			size_t k = tl;
			while (k < parts.msg_len && k < tl + 4 && parts.msg[k] >= '0' &&
			       parts.msg[k] <= '9')
				status = status * 10 + (parts.msg[k++] - '0');
			if (k == parts.msg_len && k > tl)
				a->l->exit_fn(a->l->exit_ctx, a->name, sender, status);
		}
		if (!nl)
			return;
		p = nl + 1;
		len -= n + 1;
	}
}

static struct lgi_app *app_get(struct lgi *l, const char *name);

/* A datagram from the router: "APP TS router[router]: ...". */
static void take_router(struct lgi *l, const char *p, size_t len)
{
	const char *sp = memchr(p, ' ', MIN(len, (size_t)STATE_APP_NAME_MAX + 1));
	struct lstore_parts parts;
	if (sp == NULL || sp == p || !lstore_parse(sp + 1, len - (size_t)(sp + 1 - p), &parts) ||
	    parts.source_len != 6 || memcmp(parts.source, "router", 6) != 0) {
		l->stats.bad++;
		return;
	}
	char name[STATE_APP_NAME_MAX + 1];
	memcpy(name, p, (size_t)(sp - p));
	name[sp - p] = '\0';
	struct lgi_app *a = app_get(l, name);
	if (a == NULL) {
		l->stats.unknown++; /* "-": a host of no app */
		return;
	}
	file_line(a, sp + 1, len - (size_t)(sp + 1 - p));
}

/* The sender's pid (as dynod's PID namespace sees it), or 0. */
static pid_t sender_of(struct msghdr *h)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
		    c->cmsg_len == CMSG_LEN(sizeof(struct ucred))) {
			struct ucred u;
			memcpy(&u, CMSG_DATA(c), sizeof(u));
			return u.pid;
		}
	return 0;
}

/* Reads at most LGI_ROUNDS batches from fd: a for an app's sink, NULL for
 * the router's socket. */
static void read_socket(struct lgi *l, int fd, struct lgi_app *a)
{
	struct mmsghdr msgs[LGI_BATCH];
	struct iovec iov[LGI_BATCH];
	for (int round = 0; round < LGI_ROUNDS; round++) {
		memset(msgs, 0, sizeof(msgs));
		for (int i = 0; i < LGI_BATCH; i++) {
			iov[i] = (struct iovec){dgrams[i], LGI_DGRAM_MAX};
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
			if (a) {
				msgs[i].msg_hdr.msg_control = cmsgs[i];
				msgs[i].msg_hdr.msg_controllen = sizeof(cmsgs[i]);
			}
		}
		int n = recvmmsg(fd, msgs, LGI_BATCH, MSG_DONTWAIT, NULL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		for (int i = 0; i < n; i++) {
			size_t len = msgs[i].msg_len;
			if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
				l->stats.bad++;
				continue;
			}
			if (a)
				take_sink(a, dgrams[i], len, sender_of(&msgs[i].msg_hdr));
			else
				take_router(l, dgrams[i], len);
		}
		if (n < LGI_BATCH)
			return;
	}
}

static void on_sink_io(struct loop *loop, struct loop_io *io, uint32_t events)
{
	struct lgi_app *a = loop_container_of(io, struct lgi_app, io);
	read_socket(a->l, a->sink_fd, a);
}

static void on_router_io(struct loop *loop, struct loop_io *io, uint32_t events)
{
	struct lgi *l = loop_container_of(io, struct lgi, router_io);
	read_socket(l, l->router_fd, NULL);
}

static void flush_all(struct loop_deferred *d)
{
	struct lgi *l = loop_container_of(d, struct lgi, flush);
	while (l->dirty) {
		struct lgi_app *a = l->dirty;
		l->dirty = a->dirty_next;
		a->dirty = false;
		uint64_t lost = lstore_lost(a->store);
		struct dy_error *e = NULL;
		if (lstore_flush(a->store, &e) < 0) {
			/* a full disk fails every round: said once, then once
			 * more when lines are written again */
			if (!a->failing) {
				dy_log("logs", "%s: %s (lines are lost until it works again)",
				       a->name, dy_error_msg(e));
				a->failed_lost = lost;
				a->failing = true;
			}
			dy_error_free(&e);
		} else if (a->failing) {
			a->failing = false;
			dy_log("logs", "%s: log written again, %llu lines lost meanwhile", a->name,
			       (unsigned long long)(lstore_lost(a->store) - a->failed_lost));
		}
		l->stats.lost += lstore_lost(a->store) - lost;
	}
	if (l->dying)
		free(l);
}

/* Each line stored (split as the store splits) goes to the tails. */
static void to_tails(void *ctx, const char *line, size_t len)
{
	struct lgi_app *a = ctx;
	a->l->stats.lines++;
	for (struct lgi_tail *t = a->tails; t; t = t->next)
		if (lstore_match(&t->filter, line, len))
			t->fn(t->ctx, line, len);
}

static void file_line(struct lgi_app *a, const char *line, size_t len)
{
	if (a->store == NULL) {
		to_tails(a, line, len);
		return;
	}
	lstore_append(a->store, line, len, to_tails, a);
	if (!a->dirty) {
		a->dirty = true;
		a->dirty_next = a->l->dirty;
		a->l->dirty = a;
	}
	loop_defer(a->l->loop, &a->l->flush);
}

/* The entry of app name, made when the state has such an app. */
static struct lgi_app *app_get(struct lgi *l, const char *name)
{
	struct lgi_app *a = app_find(l, name);
	if (a || state_app_find(l->st, name) == NULL)
		return a;
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return NULL;
	a->l = l;
	snprintf(a->name, sizeof(a->name), "%s", name);
	a->sink_fd = -1;
	loop_io_init(&a->io, -1, on_sink_io);
	_cleanup_free_ char *dir = NULL;
	struct dy_error *e = NULL;
	if (asprintf(&dir, "%s/apps/%s", l->st->dir, name) < 0 ||
	    lstore_open(dir, l->cfg->logs.lines, &a->store, &e) < 0) {
		/* the app's directory is made with the app: lines still reach
		 * the tails */
		dy_log("logs", "%s: %s", name, e ? dy_error_msg(e) : "out of memory");
		dy_error_free(&e);
		a->store = NULL;
	}
	unsigned h = hash(name);
	a->next = l->buckets[h];
	l->buckets[h] = a;
	return a;
}

static int bind_sink(struct lgi *l, struct lgi_app *a, struct dy_error **err)
{
	_cleanup_free_ char *dir = NULL, *path = NULL;
	if (asprintf(&dir, "%s/%s", l->sinks_dir, a->name) < 0 ||
	    asprintf(&path, "%s/" LGI_SINK_NAME, dir) < 0)
		return dy_error_errno(err, ENOMEM, "log sink of %s", a->name);
	/* root's and 0700: the launcher binds it into the app's dynos and
	 * checks it holds nothing but sockets */
	if (dy_dir_mode(dir, 0700, err) < 0)
		return -1;
	int fd = bind_dgram(dir, LGI_SINK_NAME, err);
	if (fd < 0)
		return -1;
	/* each datagram carries its sender's pid: an init's exit report is
	 * believed from that init only */
	int on = 1;
	if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) < 0) {
		int r = dy_error_errno(err, errno, "SO_PASSCRED %s", dir);
		close(fd);
		return r;
	}
	a->sink_fd = fd;
	loop_io_init(&a->io, fd, on_sink_io);
	if (loop_io_set(l->loop, &a->io, LOOP_READ, err) < 0) {
		close(fd);
		a->sink_fd = -1;
		unlink(path);
		return -1;
	}
	a->sink_path = TAKE_PTR(path);
	return 0;
}

const char *lgi_app_sink(struct lgi *l, const char *app)
{
	if (l == NULL)
		return NULL;
	struct lgi_app *a = app_get(l, app);
	if (a == NULL)
		return NULL;
	if (a->sink_fd < 0) {
		struct dy_error *e = NULL;
		if (bind_sink(l, a, &e) < 0) {
			dy_log("logs", "%s: no log sink: %s", app, dy_error_msg(e));
			dy_error_free(&e);
			return NULL;
		}
	}
	return a->sink_path;
}

void lgi_file(struct lgi *l, const char *app, const char *line, size_t len)
{
	struct lgi_app *a = app_get(l, app);
	if (a == NULL) {
		l->stats.unknown++;
		return;
	}
	file_line(a, line, len);
}

static void hook(void *ctx, const char *app, const char *line, size_t len)
{
	lgi_file(ctx, app, line, len);
}

static void app_free(struct lgi_app *a, bool remove_sink)
{
	struct lgi *l = a->l;
	while (a->tails) {
		struct lgi_tail *t = a->tails;
		lgi_tail_stop(t);
		if (t->gone)
			t->gone(t);
	}
	if (a->dirty) {
		struct lgi_app **pp = &l->dirty;
		while (*pp != a)
			pp = &(*pp)->dirty_next;
		*pp = a->dirty_next;
	}
	lstore_free(a->store);
	if (a->sink_fd >= 0) {
		loop_io_stop(l->loop, &a->io);
		close(a->sink_fd);
		if (remove_sink && a->sink_path) {
			unlink(a->sink_path);
			char *slash = strrchr(a->sink_path, '/');
			*slash = '\0';
			rmdir(a->sink_path);
		}
	}
	free(a->sink_path);
	free(a);
}

void lgi_forget(struct lgi *l, const char *app)
{
	if (l == NULL)
		return;
	struct lgi_app **pp = &l->buckets[hash(app)];
	while (*pp && strcmp((*pp)->name, app) != 0)
		pp = &(*pp)->next;
	struct lgi_app *a = *pp;
	if (a == NULL)
		return;
	*pp = a->next;
	app_free(a, true);
}

int lgi_read(struct lgi *l, const char *app, size_t n, const struct lstore_filter *f,
             lstore_line_fn fn, void *ctx, struct dy_error **err)
{
	struct lgi_app *a = app_get(l, app);
	if (a == NULL)
		return dy_error_as(err, DY_E_NOT_FOUND, "no app called %s", app);
	if (a->store == NULL)
		return 0;
	int r = lstore_read(a->store, n, f, fn, ctx, err);
	if (r < 0)
		dy_error_prefix(err, "the log of %s", app);
	return r;
}

int lgi_tail_start(struct lgi *l, const char *app, struct lgi_tail *t, struct dy_error **err)
{
	struct lgi_app *a = app_get(l, app);
	if (a == NULL)
		return dy_error_as(err, DY_E_NOT_FOUND, "no app called %s", app);
	t->app = a;
	t->prev = NULL;
	t->next = a->tails;
	if (a->tails)
		a->tails->prev = t;
	a->tails = t;
	return 0;
}

void lgi_tail_stop(struct lgi_tail *t)
{
	if (t == NULL || t->app == NULL)
		return;
	if (t->prev)
		t->prev->next = t->next;
	else
		t->app->tails = t->next;
	if (t->next)
		t->next->prev = t->prev;
	t->prev = t->next = NULL;
	t->app = NULL;
}

void lgi_set_exit_fn(struct lgi *l, lgi_exit_fn fn, void *ctx)
{
	l->exit_fn = fn;
	l->exit_ctx = ctx;
}

void lgi_drain_app(struct lgi *l, const char *app)
{
	struct lgi_app *a = app_find(l, app);
	if (a && a->sink_fd >= 0)
		read_socket(l, a->sink_fd, a);
}

void lgi_drain(struct lgi *l)
{
	if (l->router_fd >= 0)
		read_socket(l, l->router_fd, NULL);
	for (size_t i = 0; i < LGI_BUCKETS; i++)
		for (struct lgi_app *a = l->buckets[i]; a; a = a->next)
			if (a->sink_fd >= 0)
				read_socket(l, a->sink_fd, a);
	flush_all(&l->flush);
}

struct lgi_stats lgi_stats(const struct lgi *l)
{
	return l->stats;
}

/* The sinks of apps that are no longer in the state (destroyed while no
 * dynod ran, or left by a crash) go. */
static void sweep_sinks(struct lgi *l)
{
	DIR *d = opendir(l->sinks_dir);
	if (d == NULL)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || state_app_find(l->st, de->d_name))
			continue;
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s/" LGI_SINK_NAME, l->sinks_dir, de->d_name);
		unlink(path);
		snprintf(path, sizeof(path), "%s/%s", l->sinks_dir, de->d_name);
		rmdir(path);
	}
	closedir(d);
}

int lgi_new(struct loop *loop, const struct config *cfg, const struct state *st, struct lgi **ret,
            struct dy_error **err)
{
	struct lgi *l = calloc(1, sizeof(*l));
	if (l == NULL)
		return dy_error_errno(err, ENOMEM, "log intake");
	l->loop = loop;
	l->cfg = cfg;
	l->st = st;
	l->router_fd = -1;
	loop_io_init(&l->router_io, -1, on_router_io);
	loop_defer_init(&l->flush, flush_all);
	if (asprintf(&l->sinks_dir, "%s/" LGI_SINK_DIR, cfg->state_dir) < 0 ||
	    asprintf(&l->router_path, "%s/" LGI_SINK_NAME, cfg->state_dir) < 0) {
		lgi_free(l);
		return dy_error_errno(err, ENOMEM, "log intake");
	}
	int fd;
	if (dy_dir_mode(l->sinks_dir, 0700, err) < 0 ||
	    (fd = bind_dgram(cfg->state_dir, LGI_SINK_NAME, err)) < 0) {
		dy_error_prefix(err, "log intake");
		lgi_free(l);
		return -1;
	}
	l->router_fd = fd;
	loop_io_init(&l->router_io, fd, on_router_io);
	if (loop_io_set(loop, &l->router_io, LOOP_READ, err) < 0) {
		lgi_free(l);
		return -1;
	}
	sweep_sinks(l);
	/* every app's sink now: the dynos of a previous dynod find theirs
	 * again (init reconnects by path) */
	for (size_t i = 0; i < st->napps; i++)
		lgi_app_sink(l, st->apps[i]->name);
	dy_log_set_app_sink(hook, l);
	*ret = l;
	return 0;
}

void lgi_free(struct lgi *l)
{
	if (l == NULL)
		return;
	dy_log_set_app_sink(NULL, NULL);
	for (size_t i = 0; i < LGI_BUCKETS; i++) {
		while (l->buckets[i]) {
			struct lgi_app *a = l->buckets[i];
			l->buckets[i] = a->next;
			/* the sink stays (dynos may outlive us); its socket is
			 * bound again by the next dynod */
			app_free(a, false);
		}
	}
	if (l->router_fd >= 0) {
		loop_io_stop(l->loop, &l->router_io);
		close(l->router_fd);
	}
	free(l->sinks_dir);
	free(l->router_path);
	l->sinks_dir = l->router_path = NULL;
	/* the loop still holds the queued flush: it frees l when it runs
	 * (loop_free() runs what is queued) */
	if (loop_defer_pending(&l->flush)) {
		l->dying = true;
		return;
	}
	free(l);
}
