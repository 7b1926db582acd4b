/* Builds' reads (builds.h): the list, one build, the output stream, the
 * app's buildpacks and its cache. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/macro.h"
#include "runtime/manager/builds-internal.h"

#define STREAM_CHUNK 65536

/* An output stream: ID.log from the start, then as it grows, until the
 * build is done (chunked, then the connection closes). */
struct bstream {
	struct bstream *next;
	struct builds *b;
	struct build *x; /* NULL: the build was over already */
	int fd;
	int log_fd;
	off_t off;
	char buf[STREAM_CHUNK + 32];
	size_t len, sent;
	bool ending;
	struct loop_timer timer;
};

static void stream_close(struct bstream *s)
{
	struct builds *b = s->b;
	for (struct bstream **p = &b->streams; *p; p = &(*p)->next) {
		if (*p == s) {
			*p = s->next;
			break;
		}
	}
	loop_timer_stop(b->loop, &s->timer);
	close(s->fd);
	close(s->log_fd);
	if (s->x) {
		s->x->readers--;
		builds_release(b, s->x);
	}
	free(s);
}

/* Sends what it can; false once s is closed. */
static bool pump(struct bstream *s)
{
	for (;;) {
		if (s->sent == s->len) {
			if (s->ending) {
				stream_close(s);
				return false;
			}
			s->len = s->sent = 0;
			char data[STREAM_CHUNK];
			ssize_t n = pread(s->log_fd, data, sizeof(data), s->off);
			if (n > 0) {
				s->off += n;
				int h = snprintf(s->buf, 16, "%zx\r\n", (size_t)n);
				memcpy(s->buf + h, data, (size_t)n);
				memcpy(s->buf + h + n, "\r\n", 2);
				s->len = (size_t)h + (size_t)n + 2;
			} else if (!s->x || s->x->done) {
				memcpy(s->buf, "0\r\n\r\n", 5);
				s->len = 5;
				s->ending = true;
			} else {
				return true; /* woken when more comes */
			}
		}
		ssize_t w = send(s->fd, s->buf + s->sent, s->len - s->sent, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			loop_timer_start(s->b->loop, &s->timer, 50 * 1000, NULL);
			return true;
		}
		if (w <= 0) {
			stream_close(s);
			return false;
		}
		s->sent += (size_t)w;
	}
}

static void on_timer(struct loop *loop, struct loop_timer *t)
{
	(void)loop;
	struct bstream *s = loop_container_of(t, struct bstream, timer);
	if (pump(s) && s->x && !s->x->done && !loop_timer_active(&s->timer))
		loop_timer_start(s->b->loop, &s->timer, 1000 * 1000, NULL); /* a safety net */
}

void builds_output_wake(struct builds *b, struct build *x)
{
	for (struct bstream *s = b->streams; s; s = s->next)
		if (s->x == x && !loop_timer_active(&s->timer))
			loop_timer_start(b->loop, &s->timer, 0, NULL);
}

void builds_streams_free(struct builds *b)
{
	while (b->streams)
		stream_close(b->streams);
}

static bool valid_id(const char *id)
{
	return strlen(id) == BUILD_ID_LEN && strspn(id, "0123456789abcdef-") == BUILD_ID_LEN;
}

int builds_output(struct builds *b, const char *app, const char *id, int fd, bool head_only,
                  struct dy_error **err)
{
	char path[PATH_MAX];
	if (!valid_id(id) || builds_path(b, path, sizeof(path), app, id, ".log") < 0)
		return dy_error_as(err, DY_E_NOT_FOUND, "build \"%.40s\" of %s not found", id, app);
	int log_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (log_fd < 0)
		return dy_error_as(err, DY_E_NOT_FOUND, "build %s of %s not found", id, app);
	struct bstream *s = calloc(1, sizeof(*s));
	if (!s) {
		close(log_fd);
		return dy_error_errno(err, ENOMEM, "output stream");
	}
	static const char head[] = "HTTP/1.1 200 OK\r\n"
	                           "Content-Type: text/plain; charset=utf-8\r\n"
	                           "Transfer-Encoding: chunked\r\n"
	                           "Cache-Control: no-cache\r\n"
	                           "Connection: close\r\n\r\n";
	s->b = b;
	s->fd = fd;
	s->log_fd = log_fd;
	s->x = builds_find(b, app, id);
	if (s->x)
		s->x->readers++;
	memcpy(s->buf, head, sizeof(head) - 1);
	s->len = sizeof(head) - 1;
	s->ending = head_only;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	loop_timer_init(&s->timer, on_timer);
	s->next = b->streams;
	b->streams = s;
	loop_timer_start(b->loop, &s->timer, 0, NULL);
	return 0;
}

/* A build of the file ID.json: what it says, a build cut short by a
 * stop of dynod as failed. */
static json_t *load(struct builds *b, const char *app, const char *id)
{
	struct build *x = builds_find(b, app, id);
	if (x)
		return build_json(x);
	char path[PATH_MAX];
	if (builds_path(b, path, sizeof(path), app, id, ".json") < 0)
		return NULL;
	json_t *j = json_load_file(path, 0, NULL);
	if (!json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	if (!json_is_true(json_object_get(j, "done")) &&
	    strcmp(json_string_value(json_object_get(j, "status")) ?: "", "succeeded") != 0) {
		json_object_set_new(j, "status", json_string("failed"));
		json_object_set_new(j, "failure", json_string("dynod stopped during the build"));
	}
	json_object_del(j, "done");
	return j;
}

json_t *builds_get(struct builds *b, const char *app, const char *id, struct dy_error **err)
{
	json_t *j = valid_id(id) ? load(b, app, id) : NULL;
	if (!j)
		dy_error_as(err, DY_E_NOT_FOUND, "build \"%.40s\" of %s not found", id, app);
	return j;
}

static int by_created(const void *a, const void *c)
{
	json_t *const *x = a, *const *y = c;
	return strcmp(json_string_value(json_object_get(*x, "created_at")) ?: "",
	              json_string_value(json_object_get(*y, "created_at")) ?: "");
}

json_t *builds_list(struct builds *b, const char *app, struct dy_error **err)
{
	char dir[PATH_MAX];
	json_t *list = json_array();
	if (!list || builds_path(b, dir, sizeof(dir), app, NULL, NULL) < 0) {
		json_decref(list);
		dy_error_errno(err, ENOMEM, "builds");
		return NULL;
	}
	DIR *d = opendir(dir);
	if (!d)
		return list; /* none yet */
	json_t **items = NULL;
	size_t n = 0;
	for (struct dirent *de; (de = readdir(d));) {
		size_t len = strlen(de->d_name);
		if (len != BUILD_ID_LEN + 5 || strcmp(de->d_name + BUILD_ID_LEN, ".json") != 0)
			continue;
		char id[BUILD_ID_LEN + 1];
		memcpy(id, de->d_name, BUILD_ID_LEN);
		id[BUILD_ID_LEN] = '\0';
		json_t *j = valid_id(id) ? load(b, app, id) : NULL;
		json_t **more = j ? realloc(items, (n + 1) * sizeof(*items)) : NULL;
		if (!more) {
			json_decref(j);
			continue;
		}
		items = more;
		items[n++] = j;
	}
	closedir(d);
	if (n)
		qsort(items, n, sizeof(*items), by_created);
	for (size_t i = 0; i < n; i++)
		json_array_append_new(list, items[i]);
	free(items);
	return list;
}

json_t *builds_app_buildpacks(struct builds *b, const char *app, struct dy_error **err)
{
	char path[PATH_MAX];
	if (builds_path(b, path, sizeof(path), app, NULL, "/buildpacks.json") < 0) {
		dy_error(err, "%s: path too long", app);
		return NULL;
	}
	json_error_t je;
	json_t *j = json_load_file(path, 0, &je);
	if (!j && access(path, F_OK) < 0 && errno == ENOENT)
		return json_array();
	if (!json_is_array(j)) {
		json_decref(j);
		dy_error(err, "%s: not a JSON array of paths", path);
		return NULL;
	}
	return j;
}

static json_t *installations(json_t *paths)
{
	json_t *out = json_array();
	size_t i;
	json_t *v;
	json_array_foreach(paths, i, v)
	{
		const char *p = json_string_value(v);
		const char *base = p ? strrchr(p, '/') : NULL;
		json_array_append_new(out, json_pack("{s:I, s:{s:s, s:s}}", "ordinal", (json_int_t)i,
		                                     "buildpack", "url", p ? p : "", "name",
		                                     base && base[1] ? base + 1 : (p ? p : "")));
	}
	return out;
}

json_t *builds_buildpacks_get(struct builds *b, const char *app, struct dy_error **err)
{
	_cleanup_json_ json_t *paths = builds_app_buildpacks(b, app, err);
	return paths ? installations(paths) : NULL;
}

bool builds_is_url(const char *p)
{
	return strncmp(p, "https://", 8) == 0 || strncmp(p, "http://", 7) == 0 ||
	       strncmp(p, "git://", 6) == 0;
}

/* A buildpack given by the API: an absolute path of a directory on this
 * host, or a git URL (cloned inside the build dyno, never by dynod; an
 * optional #REF names a branch or tag). */
static int check_buildpack(const char *p, struct dy_error **err)
{
	if (strlen(p) > 1024)
		return dy_error_as(err, DY_E_INVALID, "buildpack \"%.64s...\": too long", p);
	if (builds_is_url(p)) {
		for (const unsigned char *c = (const unsigned char *)p; *c; c++)
			if (*c <= ' ' || *c == 0x7f || *c == '\'' || *c == '"' || *c == '\\')
				return dy_error_as(err, DY_E_INVALID,
				                   "buildpack %.200s: a URL without spaces, quotes or "
				                   "control characters expected",
				                   p);
		return 0;
	}
	if (p[0] != '/')
		return dy_error_as(err, DY_E_INVALID,
		                   "buildpack \"%.200s\": expected an absolute path on this host or "
		                   "a git URL (https://, http://, git://)",
		                   p);
	struct stat st;
	if (stat(p, &st) < 0 || !S_ISDIR(st.st_mode))
		return dy_error_as(err, DY_E_INVALID, "buildpack %.200s: not a directory", p);
	return 0;
}

json_t *builds_buildpacks_put(struct builds *b, const char *app, json_t *body,
                              struct dy_error **err)
{
	json_t *ups = json_object_get(body, "updates");
	if (!json_is_array(ups) || json_array_size(ups) > BUILDPACKS_MAX) {
		dy_error_as(err, DY_E_INVALID,
		            "expected {\"updates\": [{\"buildpack\": PATH}, ...]} (at most %d)",
		            BUILDPACKS_MAX);
		return NULL;
	}
	_cleanup_json_ json_t *paths = json_array();
	size_t i;
	json_t *v;
	json_array_foreach(ups, i, v)
	{
		json_t *bp = json_is_object(v) ? json_object_get(v, "buildpack") : v;
		if (json_is_object(bp))
			bp = json_object_get(bp, "url");
		const char *p = json_string_value(bp);
		if (!p) {
			dy_error_as(err, DY_E_INVALID, "updates[%zu].buildpack: expected a path", i);
			return NULL;
		}
		_cleanup_free_ char *real = NULL;
		if (check_buildpack(p, err) < 0) {
			return NULL;
		} else if (builds_is_url(p)) {
			json_array_append_new(paths, json_string(p));
			continue;
		}
		if (!(real = realpath(p, NULL))) {
			if (!*err)
				dy_error_errno(err, errno, "buildpack %.200s", p);
			return NULL;
		}
		json_array_append_new(paths, json_string(real));
	}
	char dir[PATH_MAX], path[PATH_MAX];
	_cleanup_free_ char *text = json_dumps(paths, JSON_COMPACT);
	if (!text || builds_path(b, dir, sizeof(dir), app, NULL, NULL) < 0 ||
	    builds_path(b, path, sizeof(path), app, NULL, "/buildpacks.json") < 0) {
		dy_error_errno(err, ENOMEM, "buildpacks");
		return NULL;
	}
	if (dy_mkdir_p(dir, 0700, err) < 0 ||
	    dy_write_file_atomic(path, text, strlen(text), 0600, err) < 0)
		return NULL;
	dy_log_to_app(app, "api", "Buildpacks set: %s", text);
	return installations(paths);
}

int builds_cache_purge(struct builds *b, const char *app, struct dy_error **err)
{
	/* moved aside, then removed as the app's uid (root never walks a
	 * tenant's tree): a child of dynod, not waited for */
	struct state_app *a = NULL;
	if (mgr_app_get(b->mgr, app, &a, err) < 0)
		return -1;
	char cache[PATH_MAX], gone[PATH_MAX + 64];
	snprintf(cache, sizeof(cache), "%s/cache/%s", mgr_state(b->mgr)->dir, app);
	snprintf(gone, sizeof(gone), "%s/cache/.%s.purged-%ld", mgr_state(b->mgr)->dir, app,
	         (long)getpid() ^ (long)rand());
	if (rename(cache, gone) < 0)
		return errno == ENOENT ? 0 : dy_error_errno(err, errno, "purge %s", cache);
	pid_t pid = builds_remove_as(gone, a->uid);
	if (pid < 0)
		return dy_error_errno(err, errno, "fork");
	builds_reap_later(b, pid, gone);
	dy_log_to_app(app, "api", "Build cache purged");
	return 0;
}
