/* Builds: a build dyno per build, its output and slug read back on the
 * loop, then stored, released, rolled out (builds.h, docs/builds.md). */
#include "runtime/manager/builds.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/attach.h"
#include "common/cleanup.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/macro.h"
#include "runtime/manager/builds-internal.h"
#include "runtime/manager/host.h"
#include "runtime/manager/state.h"
#include "slugs/slug.h"

/* The built-ins, in the order auto-detection tries them. */
static const char *const builtins[] = {"python", "nodejs", "procfile"};

#define OUTPUT_MAX (16ULL * 1024 * 1024) /* output kept per build */

static const char *status_str(enum build_status s)
{
	return s == BUILD_PENDING ? "pending" : s == BUILD_SUCCEEDED ? "succeeded" : "failed";
}

int builds_path(const struct builds *b, char *buf, size_t n, const char *app, const char *id,
                const char *suffix)
{
	int r = snprintf(buf, n, "%s/builds/%s%s%s%s", mgr_state(b->mgr)->dir, app, id ? "/" : "",
	                 id ? id : "", suffix ? suffix : "");
	return r < 0 || (size_t)r >= n ? -1 : 0;
}

struct build *builds_find(struct builds *b, const char *app, const char *id)
{
	for (struct build *x = b->active; x; x = x->next)
		if (strcmp(x->app, app) == 0 && strcmp(x->id, id) == 0)
			return x;
	return NULL;
}

json_t *build_json(const struct build *x)
{
	char url[256];
	snprintf(url, sizeof(url), "/apps/%s/builds/%s/output", x->app, x->id);
	return json_pack("{s:s, s:s, s:O, s:o, s:o, s:{s:o}, s:s, s:s, s:s, s:o}", "id", x->id,
	                 "status", status_str(x->status), "buildpacks",
	                 x->buildpacks ? x->buildpacks : json_null(), "slug",
	                 x->slug_id[0] ? json_pack("{s:s}", "id", x->slug_id) : json_null(),
	                 "release",
	                 x->version ? json_pack("{s:i}", "version", x->version) : json_null(),
	                 "source_blob", "version",
	                 x->commit[0] ? json_string(x->commit) : json_null(), "created_at",
	                 x->created_at, "updated_at", x->updated_at, "output_stream_url", url,
	                 "failure", x->failure[0] ? json_string(x->failure) : json_null());
}

/* ID.json, atomically; a failure is logged (the build goes on). */
static void save(struct builds *b, struct build *x)
{
	state_now(x->updated_at);
	char path[PATH_MAX];
	_cleanup_json_ json_t *j = build_json(x);
	if (j)
		json_object_set_new(j, "done", json_boolean(x->done));
	_cleanup_free_ char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	struct dy_error *e = NULL;
	if (!text || builds_path(b, path, sizeof(path), x->app, x->id, ".json") < 0 ||
	    dy_write_file_atomic(path, text, strlen(text), 0600, &e) < 0) {
		dy_log("builds", "%s: build %s not saved: %s", x->app, x->id,
		       e ? dy_error_msg(e) : "no memory");
		dy_error_free(&e);
	}
}

/* A line of dynod's own into the build's output. */
static void say(struct build *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct build *x, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (x->log_fd >= 0 && dy_write_all(x->log_fd, line, (size_t)n) == 0)
		x->log_size += (uint64_t)n;
}

/* ENV_DIR goes: flat, its files written by root (mounted read-only in
 * the build dyno: no tenant wrote there). */
static void remove_env(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (d) {
		for (struct dirent *de; (de = readdir(d));)
			if (de->d_name[0] != '.')
				unlinkat(dirfd(d), de->d_name, 0);
		closedir(d);
	} else if (fd >= 0) {
		close(fd);
	}
	rmdir(path);
}

pid_t builds_remove_as(const char *dir, uid_t uid)
{
	/* entered as root (its parents are root's 0700), then as the app */
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	char *argv[] = {"find", ".", "-mindepth", "1", "-delete", NULL};
	char *envp[] = {"PATH=/usr/bin:/bin", NULL};
	pid_t pid = fork();
	if (pid == 0) {
		if (fchdir(fd) < 0 || setresgid(uid, uid, uid) < 0 || setgroups(0, NULL) < 0 ||
		    setresuid(uid, uid, uid) < 0)
			_exit(127);
		execve("/usr/bin/find", argv, envp);
		_exit(127);
	}
	close(fd);
	return pid;
}

static void removed_child(struct loop *loop, struct loop_child *child, const siginfo_t *info)
{
	struct build_rm *rm = loop_container_of(child, struct build_rm, child);
	(void)loop;
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/app", rm->dir);
	if (info->si_code != CLD_EXITED || info->si_status != 0 || rmdir(path) < 0)
		dy_log("builds", "%s: left behind (its files could not all be removed)", rm->dir);
	static const char *const rest[] = {"source.tar", "slug.tgz"};
	for (size_t i = 0; i < ELEMENTSOF(rest); i++) {
		snprintf(path, sizeof(path), "%s/%s", rm->dir, rest[i]);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/env", rm->dir);
	remove_env(path);
	rmdir(rm->dir);
	free(rm->dir);
	free(rm);
}

/* The build's work directory goes: its app/ tree, the tenant's, removed
 * by a child as the app's uid (root never walks it), the rest by root. */
static void remove_work(struct builds *b, struct build *x)
{
	struct build_rm *rm = calloc(1, sizeof(*rm));
	char dir[PATH_MAX], app[PATH_MAX + 8];
	if (!rm || builds_path(b, dir, sizeof(dir), x->app, x->id, NULL) < 0 ||
	    !(rm->dir = strdup(dir))) {
		free(rm);
		return;
	}
	snprintf(app, sizeof(app), "%s/app", dir);
	pid_t pid = builds_remove_as(app, x->uid);
	if (pid < 0 || loop_child_start(b->loop, &rm->child, pid, removed_child, NULL) < 0) {
		dy_log("builds", "%s: not removed (fork: %s)", dir, strerror(errno));
		free(rm->dir);
		free(rm);
	}
}

static void build_free(struct build *x)
{
	if (!x)
		return;
	loop_timer_stop(x->b->loop, &x->deadline);
	mgr_job_detach(x->job);
	if (x->sock >= 0)
		close(x->sock);
	if (x->log_fd >= 0)
		close(x->log_fd);
	if (x->slug_fd >= 0)
		close(x->slug_fd);
	json_decref(x->buildpacks);
	free(x->in);
	free(x);
}

/* The build is over (done: its output ends); it leaves the active list
 * once no output stream reads it. */
static void finish(struct builds *b, struct build *x, const char *failure)
{
	if (failure) {
		x->status = BUILD_FAILED;
		snprintf(x->failure, sizeof(x->failure), "%s", failure);
		say(x, " !     Push rejected: %s", failure);
		dy_log_to_app(x->app, "api", "Build %s failed: %s", x->id, failure);
	}
	x->done = true;
	save(b, x);
	remove_work(b, x);
	builds_output_wake(b, x);
	builds_release(b, x);
}

void builds_release(struct builds *b, struct build *x)
{
	if (!x->done || x->readers > 0 || x->job)
		return;
	for (struct build **p = &b->active; *p; p = &(*p)->next) {
		if (*p == x) {
			*p = x->next;
			break;
		}
	}
	build_free(x);
}

static void on_unpacked(void *arg, const struct slug_info *info, struct dy_error *err)
{
	struct build *x = arg;
	struct builds *b = x->b;
	x->job = NULL;
	if (err) {
		finish(b, x, dy_error_msg(err));
		return;
	}
	char desc[64];
	snprintf(desc, sizeof(desc), "Deploy %.7s", x->commit[0] ? x->commit : x->slug_id);
	struct state_release *rel = NULL;
	struct dy_error *e = NULL;
	if (mgr_deploy_as(b->mgr, x->app, x->slug_id, desc, &rel, &e) < 0) {
		char why[512];
		snprintf(why, sizeof(why), "release: %s", dy_error_msg(e));
		dy_error_free(&e);
		finish(b, x, why);
		return;
	}
	x->version = rel->version;
	say(x, "-----> Released v%d (%s)", rel->version, desc);
	dy_log_to_app(x->app, "api", "Release v%d created: %s (%s)", rel->version,
	              rel->description, state_release_status_str(rel->status));
	finish(b, x, NULL);
}

static void on_stored(void *arg, const struct slug_info *info, struct dy_error *err)
{
	struct build *x = arg;
	struct builds *b = x->b;
	x->job = NULL;
	if (err) {
		char why[512];
		snprintf(why, sizeof(why), "the slug was refused: %s", dy_error_msg(err));
		finish(b, x, why);
		return;
	}
	snprintf(x->slug_id, sizeof(x->slug_id), "%s", info->id);
	x->status = BUILD_SUCCEEDED;
	say(x, "-----> Slug %.7s stored (%llu bytes)", info->id, (unsigned long long)info->size);
	save(b, x);
	struct dy_error *e = NULL;
	if (mgr_unpack_start(b->mgr, x->app, x->slug_id, on_unpacked, x, &x->job, &e) < 0) {
		finish(b, x, dy_error_msg(e));
		dy_error_free(&e);
	}
}

/* The driver's last " !     " line but "Build failed" (what went wrong),
 * from the end of the output, into why. False when there is none. */
static bool last_complaint(struct builds *b, struct build *x, char *why, size_t n)
{
	char path[PATH_MAX], tail[4097];
	if (builds_path(b, path, sizeof(path), x->app, x->id, ".log") < 0)
		return false;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	off_t from = x->log_size > 4096 ? (off_t)x->log_size - 4096 : 0;
	ssize_t len = fd >= 0 ? pread(fd, tail, sizeof(tail) - 1, from) : -1;
	if (len <= 0)
		return false;
	tail[len] = '\0';
	const char *found = NULL;
	for (char *line = tail, *end; line && *line; line = end ? end + 1 : NULL) {
		end = strchr(line, '\n');
		if (end)
			*end = '\0';
		if (strncmp(line, " !     ", 7) == 0 && strcmp(line + 7, "Build failed") != 0)
			found = line + 7;
	}
	if (!found)
		return false;
	snprintf(why, n, "%s", found);
	return true;
}

/* The build dyno is gone (its socket closed): a slug, or a failure. */
static void dyno_ended(struct builds *b, struct build *x)
{
	loop_io_stop(b->loop, &x->io);
	loop_timer_stop(b->loop, &x->deadline);
	close(TAKE_FD(x->sock));
	if (x->timed_out) {
		char why[128];
		snprintf(why, sizeof(why), "the build took longer than dyno.timeouts.build (%llu s)",
		         (unsigned long long)(b->cfg->dyno.timeouts.build / 1000000));
		finish(b, x, why);
		return;
	}
	if (x->start_error[0]) {
		char why[600];
		snprintf(why, sizeof(why), "the build dyno could not start: %s", x->start_error);
		finish(b, x, why);
		return;
	}
	if (!x->exited) {
		finish(b, x, "the build dyno ended without an exit status (stopped?)");
		return;
	}
	if (x->exit_status != 0) {
		char why[600];
		if (!last_complaint(b, x, why, sizeof(why)))
			snprintf(why, sizeof(why), "the build failed (exit status %d)", x->exit_status);
		finish(b, x, why);
		return;
	}
	if (x->slug_error || x->slug_size == 0) {
		finish(b, x, x->slug_error ? x->slug_error : "the build dyno gave no slug");
		return;
	}
	struct dy_error *e = NULL;
	if (lseek(x->slug_fd, 0, SEEK_SET) < 0) {
		finish(b, x, "the slug file cannot be read back");
		return;
	}
	int fd = TAKE_FD(x->slug_fd);
	if (mgr_slug_put_start(b->mgr, x->app, fd, on_stored, x, &x->job, &e) < 0) {
		finish(b, x, dy_error_msg(e));
		dy_error_free(&e);
	}
}

/* dyno.timeouts.build ran out: the build dyno stops (SIGTERM, grace,
 * SIGKILL); its end fails the build. */
static void on_deadline(struct loop *loop, struct loop_timer *t)
{
	struct build *x = loop_container_of(t, struct build, deadline);
	(void)loop;
	struct dy_error *e = NULL;
	x->timed_out = true;
	say(x, " !     Timed out: the build ran longer than dyno.timeouts.build");
	builds_output_wake(x->b, x);
	if (mgr_dyno_stop(x->b->mgr, x->app, x->dyno, &e) < 0) {
		dy_log("builds", "%s: build %s: stop %s: %s", x->app, x->id, x->dyno,
		       dy_error_msg(e));
		dy_error_free(&e);
	}
}

static void take_frame(struct builds *b, struct build *x, const struct attach_frame *f)
{
	switch (f->type) {
	case ATTACH_STDERR:
		if (x->log_size + f->len <= OUTPUT_MAX &&
		    dy_write_all(x->log_fd, f->data, f->len) == 0)
			x->log_size += f->len;
		builds_output_wake(b, x);
		break;
	case ATTACH_STDOUT:
		/* the tenant's bytes: at most a slug's compressed limit */
		if (x->slug_error)
			break;
		if (x->slug_size + f->len > b->cfg->slugs.max_compressed)
			x->slug_error = "the slug is over slugs.max_compressed";
		else if (dy_write_all(x->slug_fd, f->data, f->len) < 0)
			x->slug_error = errno == ENOSPC ? "no space left on device for the slug"
			                                : "the slug could not be written";
		else
			x->slug_size += f->len;
		break;
	case ATTACH_EXIT:
		if (f->len == 4) {
			const unsigned char *p = (const unsigned char *)f->data;
			x->exit_status = (int)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
			                       (uint32_t)p[2] << 8 | p[3]);
			x->exited = true;
		}
		break;
	case ATTACH_ERROR:
		snprintf(x->start_error, sizeof(x->start_error), "%.*s",
		         (int)(f->len > 400 ? 400 : f->len), f->data);
		break;
	default:
		break;
	}
}

static void on_sock(struct loop *loop, struct loop_io *io, uint32_t events)
{
	struct build *x = loop_container_of(io, struct build, io);
	struct builds *b = x->b;
	(void)loop;
	(void)events;
	for (int rounds = 0; rounds < 64; rounds++) {
		ssize_t n = read(x->sock, x->in + x->inlen, BUILD_IN_MAX - x->inlen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			dyno_ended(b, x);
			return;
		}
		x->inlen += (size_t)n;
		size_t off = 0;
		for (;;) {
			struct attach_frame f;
			int r = attach_parse(x->in + off, x->inlen - off, &f);
			if (r < 0) {
				snprintf(x->start_error, sizeof(x->start_error),
				         "a malformed frame from the build dyno's init");
				dyno_ended(b, x);
				return;
			}
			if (r == 0)
				break;
			take_frame(b, x, &f);
			off += (size_t)r;
		}
		memmove(x->in, x->in + off, x->inlen - off);
		x->inlen -= off;
	}
}

static void uuid4(char out[BUILD_ID_LEN + 1])
{
	unsigned char r[16];
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
		for (size_t i = 0; i < sizeof(r); i++)
			r[i] = (unsigned char)rand();
	}
	r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
	r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
	snprintf(out, BUILD_ID_LEN + 1,
	         "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0], r[1],
	         r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14],
	         r[15]);
}

/* A directory of the app's (uid), mode 0700: made when missing; an
 * existing one must be a directory (not a link) of that uid. */
static int app_dir(const char *path, uid_t uid, struct dy_error **err)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return dy_error_errno(err, errno, "mkdir %s", path);
	struct stat st;
	if (lstat(path, &st) < 0)
		return dy_error_errno(err, errno, "%s", path);
	if (!S_ISDIR(st.st_mode))
		return dy_error(err, "%s is not a directory", path);
	if ((st.st_uid != uid || st.st_gid != uid) && chown(path, uid, uid) < 0)
		return dy_error_errno(err, errno, "chown %s", path);
	return 0;
}

/* The posted tar at fd into path: a link of the upload (O_TMPFILE) when
 * it can be, else a copy. */
static int keep_source(int fd, const char *path, struct dy_error **err)
{
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0)
		return chmod(path, 0644) < 0 ? dy_error_errno(err, errno, "chmod %s", path) : 0;
	_cleanup_close_ int out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (out < 0)
		return dy_error_errno(err, errno, "create %s", path);
	char buf[65536];
	for (off_t off = 0;;) {
		ssize_t n = pread(fd, buf, sizeof(buf), off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return dy_error_errno(err, errno, "read the posted source");
		if (n == 0)
			return 0;
		if (dy_write_all(out, buf, (size_t)n) < 0)
			return dy_error_errno(err, errno, "write %s", path);
		off += n;
	}
}

/* ENV_DIR: one file per config var of the newest release, the app's. */
static int write_env(const char *dir, uid_t uid, json_t *config, struct dy_error **err)
{
	if (mkdir(dir, 0700) < 0)
		return dy_error_errno(err, errno, "mkdir %s", dir);
	const char *k;
	json_t *v;
	json_object_foreach(config, k, v)
	{
		char path[PATH_MAX];
		const char *s = json_string_value(v);
		if (!s || strchr(k, '/') || k[0] == '.' ||
		    snprintf(path, sizeof(path), "%s/%s", dir, k) >= (int)sizeof(path))
			continue;
		_cleanup_close_ int fd =
		    open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
		if (fd < 0 || dy_write_all(fd, s, strlen(s)) < 0 || fchown(fd, uid, uid) < 0)
			return dy_error_errno(err, errno, "write %s", path);
	}
	if (chown(dir, uid, uid) < 0)
		return dy_error_errno(err, errno, "chown %s", dir);
	return 0;
}

static char *env_entry(const char *k, const char *v)
{
	char *s = NULL;
	return asprintf(&s, "%s=%s", k, v) < 0 ? NULL : s;
}

/* What the build dyno runs with; the strings owned by the arrays. */
struct plan {
	char *command;
	char *env[512];
	size_t nenv;
	struct mgr_bind binds[BUILD_BINDS_MAX];
	char *bind_src[BUILD_BINDS_MAX];
	char *bind_dst[BUILD_BINDS_MAX];
	size_t nbinds;
};

static void plan_clear(struct plan *p)
{
	free(p->command);
	for (size_t i = 0; i < p->nenv; i++)
		free(p->env[i]);
	for (size_t i = 0; i < p->nbinds; i++) {
		free(p->bind_src[i]);
		free(p->bind_dst[i]);
	}
}

static bool plan_bind(struct plan *p, const char *src, const char *dst, bool rw)
{
	if (p->nbinds >= BUILD_BINDS_MAX)
		return false;
	size_t i = p->nbinds;
	p->bind_src[i] = strdup(src);
	p->bind_dst[i] = strdup(dst);
	p->binds[i] = (struct mgr_bind){.src = p->bind_src[i], .dst = p->bind_dst[i], .rw = rw};
	p->nbinds++;
	return p->bind_src[i] && p->bind_dst[i];
}

static bool plan_env(struct plan *p, char *entry)
{
	if (!entry || p->nenv + 1 >= ELEMENTSOF(p->env)) {
		free(entry);
		return false;
	}
	p->env[p->nenv++] = entry;
	return true;
}

/* The command, binds and environment of x's build dyno. */
static int make_plan(struct builds *b, struct build *x, const struct state_app *app,
                     const char *work, const char *cache, struct plan *p, struct dy_error **err)
{
	bool ok = true;
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/source.tar", work);
	ok = ok && plan_bind(p, path, "/.build/source.tar", false);
	ok = ok && plan_bind(p, b->driver, "/.build/dyno-build", false);
	ok = ok && plan_bind(p, b->packer, "/.build/dyno-build-pack", false);
	ok = ok && plan_bind(p, cache, "/cache", true);
	snprintf(path, sizeof(path), "%s/env", work);
	ok = ok && plan_bind(p, path, "/env", false);
	if (b->builtins)
		ok = ok && plan_bind(p, b->builtins, "/buildpacks", false);
	_cleanup_json_ json_t *mine = builds_app_buildpacks(b, x->app, err);
	if (!mine)
		return -1;
	_cleanup_free_ char *cmd = NULL, *names = NULL;
	size_t clen = 0, nlen = 0;
	FILE *c = open_memstream(&cmd, &clen), *n = open_memstream(&names, &nlen);
	if (!c || !n) {
		if (c)
			fclose(c);
		if (n)
			fclose(n);
		return dy_error_errno(err, ENOMEM, "build");
	}
	fputs("/.build/dyno-build", c);
	size_t i;
	json_t *v;
	x->buildpacks = json_array();
	json_array_foreach(mine, i, v)
	{
		const char *src = json_string_value(v);
		char dst[32];
		snprintf(dst, sizeof(dst), "/buildpack/%zu", i);
		if (src && builds_is_url(src)) { /* cloned by the driver, in the dyno */
			fprintf(c, " @%zu", i);
		} else {
			ok = ok && src && plan_bind(p, src, dst, false);
			fprintf(c, " %s", dst);
		}
		fprintf(n, "%s%s", i ? "\n" : "", src ? src : "");
		const char *base = src ? strrchr(src, '/') : NULL;
		json_array_append_new(x->buildpacks,
		                      json_pack("{s:s, s:s}", "url", src ? src : "", "name",
		                                base && base[1] ? base + 1 : (src ? src : "")));
	}
	if (json_array_size(mine) == 0) {
		if (!b->builtins) {
			fclose(c);
			fclose(n);
			return dy_error_as(err, DY_E_CONFLICT,
			                   "no built-in buildpacks were found beside dynod (build/"
			                   "buildpacks or PREFIX/lib/dyno/buildpacks) and %s has none "
			                   "set (dyno buildpacks:set PATH)",
			                   x->app);
		}
		json_decref(x->buildpacks);
		x->buildpacks = json_null();
		fputs(" --detect", c);
		for (size_t k = 0; k < ELEMENTSOF(builtins); k++)
			fprintf(c, " /buildpacks/%s", builtins[k]);
	}
	fclose(c);
	fclose(n);
	p->command = TAKE_PTR(cmd);
	ok = ok && p->command && x->buildpacks;
	ok = ok && plan_env(p, env_entry("DYNO_BUILDPACK_PATHS", names ? names : ""));
	ok = ok && plan_env(p, env_entry("DYNO_BUILD_EGRESS", b->cfg->network.egress ? "1" : "0"));
	ok = ok && plan_env(p, env_entry("SOURCE_VERSION", x->commit));
	ok = ok && plan_env(p, env_entry("STACK", "dyno"));
	/* the app's config vars, of its newest release (pending included) */
	const struct state_release *rel = app->nreleases ? &app->releases[app->nreleases - 1] : NULL;
	const char *k;
	json_object_foreach(rel && rel->config ? rel->config : NULL, k, v)
	{
		if (json_is_string(v) && strncmp(k, "DYNO_BUILD", 10) != 0)
			ok = ok && plan_env(p, env_entry(k, json_string_value(v)));
	}
	if (!ok)
		return dy_error(err, "build of %s: too many buildpacks or config vars, or no memory",
		                x->app);
	return 0;
}

/* Undoes a start that failed before its dyno ran (its app/ is empty). */
static void abandon(struct builds *b, struct build *x)
{
	char path[PATH_MAX];
	static const char *const suffixes[] = {".json", ".log", "/source.tar", "/slug.tgz", "/app"};
	for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
		if (builds_path(b, path, sizeof(path), x->app, x->id, suffixes[i]) == 0 &&
		    unlink(path) < 0 && errno == EISDIR)
			rmdir(path);
	}
	if (builds_path(b, path, sizeof(path), x->app, x->id, "/app") == 0)
		rmdir(path);
	if (builds_path(b, path, sizeof(path), x->app, x->id, "/env") == 0)
		remove_env(path);
	if (builds_path(b, path, sizeof(path), x->app, x->id, NULL) == 0)
		rmdir(path);
	build_free(x);
}

json_t *builds_start(struct builds *b, const char *name, int fd, const char *commit,
                     struct dy_error **err)
{
	_cleanup_close_ int src = fd;
	struct state_app *app = NULL;
	if (mgr_app_get(b->mgr, name, &app, err) < 0)
		return NULL;
	/* dyno.build_size; its default, performance-m, may be left out of
	 * sizes: then builds run on dyno.default_size */
	const char *size = b->cfg->dyno.build_size;
	if (!config_size_find(b->cfg, size) && strcmp(size, "performance-m") == 0)
		size = b->cfg->dyno.default_size;
	if (!config_size_find(b->cfg, size)) {
		dy_error(err, "dyno.build_size \"%s\" is not one of the configured sizes", size);
		return NULL;
	}
	if (!b->driver || !b->packer) {
		dy_error(err, "dyno-build or dyno-build-pack was not found beside dynod");
		return NULL;
	}
	/* one build dyno per app at a time: they share its cache */
	for (struct build *o = b->active; o; o = o->next) {
		if (strcmp(o->app, app->name) == 0 && o->sock >= 0) {
			dy_error_as(err, DY_E_CONFLICT,
			            "a build of %s is running (%s): wait for it to end (dyno "
			            "builds:output %s)",
			            app->name, o->id, o->id);
			return NULL;
		}
	}
	struct build *x = calloc(1, sizeof(*x));
	if (!x || !(x->in = malloc(BUILD_IN_MAX))) {
		free(x);
		dy_error_errno(err, ENOMEM, "build");
		return NULL;
	}
	x->b = b;
	x->sock = x->log_fd = x->slug_fd = -1;
	loop_timer_init(&x->deadline, on_deadline);
	snprintf(x->app, sizeof(x->app), "%s", app->name);
	snprintf(x->commit, sizeof(x->commit), "%s", commit ? commit : "");
	x->uid = app->uid;
	uuid4(x->id);
	state_now(x->created_at);
	snprintf(x->updated_at, sizeof(x->updated_at), "%s", x->created_at);

	char dir[PATH_MAX], work[PATH_MAX], path[PATH_MAX + 64], cache[PATH_MAX];
	struct plan plan = {0};
	_cleanup_json_ json_t *none = json_object();
	int their = -1, socks[2] = {-1, -1};
	json_t *dyno = NULL;
	snprintf(cache, sizeof(cache), "%s/cache/%s", mgr_state(b->mgr)->dir, x->app);
	if (builds_path(b, dir, sizeof(dir), x->app, NULL, NULL) < 0 ||
	    builds_path(b, work, sizeof(work), x->app, x->id, NULL) < 0) {
		dy_error(err, "build of %s: path too long", x->app);
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/cache", mgr_state(b->mgr)->dir);
	if (dy_mkdir_p(dir, 0700, err) < 0 || dy_mkdir_p(path, 0711, err) < 0 ||
	    app_dir(cache, x->uid, err) < 0)
		goto fail;
	if (mkdir(work, 0711) < 0) {
		dy_error_errno(err, errno, "mkdir %s", work);
		goto fail;
	}
	snprintf(path, sizeof(path), "%s/app", work);
	if (app_dir(path, x->uid, err) < 0)
		goto fail;
	snprintf(path, sizeof(path), "%s/source.tar", work);
	if (keep_source(src, path, err) < 0)
		goto fail;
	snprintf(path, sizeof(path), "%s/env", work);
	const struct state_release *newest =
	    app->nreleases ? &app->releases[app->nreleases - 1] : NULL;
	if (write_env(path, x->uid, newest && newest->config ? newest->config : none, err) < 0)
		goto fail;
	snprintf(path, sizeof(path), "%s/slug.tgz", work);
	x->slug_fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	snprintf(path, sizeof(path), "%s/%s.log", dir, x->id);
	x->log_fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
	if (x->slug_fd < 0 || x->log_fd < 0) {
		dy_error_errno(err, errno, "create the files of build %s", x->id);
		goto fail;
	}
	if (make_plan(b, x, app, work, cache, &plan, err) < 0)
		goto fail;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, socks) < 0) {
		dy_error_errno(err, errno, "socketpair");
		goto fail;
	}
	x->sock = socks[0];
	their = socks[1];
	snprintf(path, sizeof(path), "%s/app", work);
	struct mgr_run run = {
	    .command = plan.command,
	    .size = size,
	    .attach_fd = their,
	    .app_dir = path,
	    .binds = plan.binds,
	    .nbinds = plan.nbinds,
	    .env = plan.env,
	};
	dyno = mgr_dyno_run(b->mgr, x->app, &run, err);
	if (!dyno)
		goto fail;
	their = -1; /* the dyno's now */
	/* no input: the end of stdin at once */
	if (attach_write(x->sock, ATTACH_STDIN, "", 0) < 0)
		dy_log("builds", "%s: build %s: stdin: %s", x->app, x->id, strerror(errno));
	fcntl(x->sock, F_SETFL, fcntl(x->sock, F_GETFL) | O_NONBLOCK);
	snprintf(x->dyno, sizeof(x->dyno), "%s",
	         json_string_value(json_object_get(dyno, "name")) ?: "");
	loop_timer_start(b->loop, &x->deadline, b->cfg->dyno.timeouts.build, NULL);
	loop_io_init(&x->io, x->sock, on_sock);
	if (loop_io_set(b->loop, &x->io, LOOP_READ, err) < 0) {
		/* the dyno runs on; its output has no reader: it ends (EPIPE) */
		close(TAKE_FD(x->sock));
		finish(b, x, "the build's output cannot be read");
		plan_clear(&plan);
		json_decref(dyno);
		return NULL;
	}
	dy_log("builds", "%s: build %s on %s (%s)", x->app, x->id,
	       json_string_value(json_object_get(dyno, "name")), plan.command);
	dy_log_to_app(x->app, "api", "Build %s started on %s", x->id,
	              json_string_value(json_object_get(dyno, "name")));
	json_decref(dyno);
	plan_clear(&plan);
	x->next = b->active;
	b->active = x;
	save(b, x);
	return build_json(x);
fail:
	if (their >= 0)
		close(their);
	plan_clear(&plan);
	abandon(b, x);
	return NULL;
}

/* The built-ins: <exe dir>/../buildpacks (the build tree: a link to the
 * source tree's), else <exe dir>/../lib/dyno/buildpacks (installed). */
static char *find_builtins(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	char *slash = strrchr(exe, '/');
	if (!slash)
		return NULL;
	*slash = '\0';
	static const char *const rel[] = {"../buildpacks", "../lib/dyno/buildpacks"};
	for (size_t i = 0; i < ELEMENTSOF(rel); i++) {
		char path[PATH_MAX + 64];
		snprintf(path, sizeof(path), "%s/%s/procfile/bin/detect", exe, rel[i]);
		if (access(path, X_OK) == 0) {
			snprintf(path, sizeof(path), "%s/%s", exe, rel[i]);
			return realpath(path, NULL);
		}
	}
	return NULL;
}

static char *real_helper(const char *name)
{
	_cleanup_free_ char *p = host_find_helper(name);
	return p ? realpath(p, NULL) : NULL;
}

int builds_new(struct loop *loop, struct mgr *m, const struct config *cfg, struct builds **ret,
               struct dy_error **err)
{
	struct builds *b = calloc(1, sizeof(*b));
	if (!b)
		return dy_error_errno(err, ENOMEM, "builds");
	b->loop = loop;
	b->mgr = m;
	b->cfg = cfg;
	b->driver = real_helper("dyno-build");
	b->packer = real_helper("dyno-build-pack");
	b->builtins = find_builtins();
	if (!b->driver || !b->packer || !b->builtins)
		dy_log("builds", "builds lack %s%s%s", b->driver ? "" : "dyno-build ",
		       b->packer ? "" : "dyno-build-pack ",
		       b->builtins ? "" : "the built-in buildpacks");
	*ret = b;
	return 0;
}

void builds_free(struct builds *b)
{
	if (!b)
		return;
	builds_streams_free(b);
	while (b->active) {
		struct build *x = b->active;
		b->active = x->next;
		loop_io_stop(b->loop, &x->io);
		build_free(x);
	}
	free(b->driver);
	free(b->packer);
	free(b->builtins);
	free(b);
}

static void purged_child(struct loop *loop, struct loop_child *child, const siginfo_t *info)
{
	struct build_rm *rm = loop_container_of(child, struct build_rm, child);
	(void)loop;
	if (info->si_code != CLD_EXITED || info->si_status != 0 || rmdir(rm->dir) < 0)
		dy_log("builds", "%s: left behind (its files could not all be removed)", rm->dir);
	free(rm->dir);
	free(rm);
}

void builds_reap_later(struct builds *b, pid_t pid, const char *dir)
{
	struct build_rm *rm = calloc(1, sizeof(*rm));
	if (rm && (rm->dir = strdup(dir)) &&
	    loop_child_start(b->loop, &rm->child, pid, purged_child, NULL) == 0)
		return;
	dy_log("builds", "%s: not watched while it is removed", dir);
	if (rm)
		free(rm->dir);
	free(rm);
}
