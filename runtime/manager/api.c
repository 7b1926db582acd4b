/* The Platform API server's connections: accept, read and parse requests
 * and their bodies, queue and write responses (the endpoints are in
 * api-routes.c). */
#include "runtime/manager/api.h"

#include <assert.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/http-response.h"
#include "common/http1.h"
#include "common/macro.h"
#include "common/log.h"
#include "runtime/manager/addon-pg.h"
#include "runtime/manager/api-internal.h"
#include "runtime/manager/builds.h"
#include "slugs/slug-disk.h"

/* the input bound: a whole head (64 KiB) and reads of body behind it */
#define API_IN_MAX ((size_t)h1_limits_default.head + 2 * 64 * 1024)

/* ---- connection lifetime ---- */

static void conn_free(struct loop_deferred *d)
{
	struct conn *c = loop_container_of(d, struct conn, conn.reap);
	buf_free(&c->in);
	buf_free(&c->out);
	free(c->path);
	buf_free(&c->body);
	if (c->body_fd >= 0)
		close(c->body_fd);
	/* conn_close() let go of the job and the state writer */
	assert(c->job == NULL && !c->saving_active);
	assert(!loop_defer_pending(&c->resume));
	if (c->saved_body)
		json_decref(c->saved_body);
	free(c);
}

/* Stops c's watchers, closes its socket and queues its free after the
 * dispatch round (never free inside its own callback). A closed
 * connection hears from nothing again: its job finishes without it, and
 * the state writer forgets its wait (the change is made and written all
 * the same). */
static void conn_close(struct conn *c)
{
	mgr_job_detach(c->job);
	c->job = NULL;
	pg_op_detach(c->pg_op);
	c->pg_op = NULL;
	if (c->saving_active) {
		state_wait_cancel(&c->saving);
		c->saving_active = false;
	}
	dy_conn_close(c->api->loop, &c->api->conns, &c->conn);
}

static void request_reset(struct conn *c)
{
	free(c->path);
	c->path = NULL;
	buf_free(&c->body);
	if (c->body_fd >= 0)
		close(c->body_fd);
	c->body_fd = -1;
	c->body_total = 0;
	c->remaining = 0;
	c->chunked = false;
	h1_parser_init(&c->parser, NULL, c->headers, API_HEADERS_MAX);
	c->state = CONN_HEAD;
}

static void conn_update_interest(struct conn *c)
{
	if (c->conn.closed)
		return;
	uint32_t ev = 0;
	if (buf_len(&c->out) > 0)
		ev |= LOOP_WRITE;
	/* back-pressure: a client that does not read its answers is not read,
	 * nor one whose answer waits on a job */
	if (c->state != CONN_CLOSING && c->state != CONN_WAITING &&
	    buf_len(&c->out) < API_OUT_HIGH_WATER)
		ev |= LOOP_READ;
	if (loop_io_set(c->api->loop, &c->conn.io, ev, NULL) < 0)
		conn_close(c);
}

static void process(struct conn *c);

/* Writes what it can of the output buffer. Closes c when a CLOSING
 * connection has nothing left to write, or on a write error. Requests
 * left in the input while answers were held back (API_OUT_HIGH_WATER) are
 * taken up again once the output drains. */
static void conn_flush(struct conn *c)
{
	for (;;) {
		bool blocked = false;
		while (buf_len(&c->out) > 0 && !blocked) {
			if (buf_flush(&c->out, c->conn.io.fd, &blocked) < 0) {
				conn_close(c);
				return;
			}
		}
		if (buf_len(&c->out) > 0)
			break;
		if (c->state == CONN_CLOSING) {
			conn_close(c);
			return;
		}
		if (c->state != CONN_HEAD || buf_len(&c->in) == 0)
			break;
		size_t before = buf_len(&c->in);
		process(c);
		if (c->conn.closed)
			return;
		if (buf_len(&c->in) == before && buf_len(&c->out) == 0)
			break; /* an incomplete head: wait for more bytes */
	}
	conn_update_interest(c);
}

/* ---- responses ---- */

/* Queues a response with body j (stolen; NULL gives an empty object). */
void api_respond_json(struct conn *c, int status, json_t *j)
{
	_cleanup_json_ json_t *body = j ? j : json_object();
	_cleanup_free_ char *text =
	    body ? json_dumps(body, JSON_PRESERVE_ORDER | JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	if (text == NULL) {
		conn_close(c);
		return;
	}
	size_t blen = strlen(text);
	text[blen] = '\n'; /* the NUL's place: the body ends with a newline */
	struct http_head h = {
	    .status = status,
	    .type = "application/json",
	    .length = blen + 1,
	    .close = !c->keep_alive || c->state == CONN_CLOSING,
	};
	if (!c->keep_alive)
		c->state = CONN_CLOSING;
	if (http_response_append(&c->out, &h, text, c->head_only) < 0)
		conn_close(c);
}

/* The one map from an error's kind to the API's status and error id
 * (docs/api.md, "Errors"). */
static const struct {
	int status;
	const char *id;
} api_errors[_DY_E_MAX] = {
    [DY_E_INTERNAL] = {500, "internal_error"}, [DY_E_BAD_REQUEST] = {400, "bad_request"},
    [DY_E_FORBIDDEN] = {403, "forbidden"},     [DY_E_NOT_FOUND] = {404, "not_found"},
    [DY_E_NOT_ALLOWED] = {405, "bad_request"}, [DY_E_CONFLICT] = {409, "conflict"},
    [DY_E_TOO_LARGE] = {413, "bad_request"},   [DY_E_INVALID] = {422, "invalid_params"},
    [DY_E_UNSUPPORTED] = {501, "bad_request"}, [DY_E_NO_SPACE] = {507, "insufficient_storage"},
};

static void respond_status(struct conn *c, int status, const char *id, const char *msg)
{
	api_respond_json(c, status, json_pack("{s:s, s:s}", "id", id, "message", msg));
}

void api_respond_error(struct conn *c, enum dy_error_kind kind, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if ((unsigned)kind >= _DY_E_MAX)
		kind = DY_E_INTERNAL;
	respond_status(c, api_errors[kind].status, api_errors[kind].id, msg);
}

/* The kind of a failed system call's errno: a full disk is not a bug. */
static enum dy_error_kind errno_kind(int errnum)
{
	return errnum == ENOSPC || errnum == EDQUOT ? DY_E_NO_SPACE : DY_E_INTERNAL;
}

bool api_refuse_on_full_disk(struct conn *c)
{
	if (c->method != H1_METHOD_POST && c->method != H1_METHOD_PATCH &&
	    c->method != H1_METHOD_PUT)
		return false; /* reads, and deletes (which free space), go on */
	struct statvfs sv;
	if (statvfs(c->api->cfg->state_dir, &sv) < 0)
		return false; /* the change itself will say what is wrong */
	uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	if (avail >= API_STATE_FREE_MIN)
		return false;
	char have[32], need[32];
	api_respond_error(c, DY_E_NO_SPACE,
	                  "no space left on device: dynod's state directory has %s free, a change "
	                  "needs %s; nothing was changed",
	                  slug_disk_fmt(avail, have, sizeof(have)),
	                  slug_disk_fmt(API_STATE_FREE_MIN, need, sizeof(need)));
	return true;
}

/* An error that ends the connection: the request's bytes cannot be
 * skipped reliably (bad framing, a body we refuse to read). */
static void respond_fatal(struct conn *c, enum dy_error_kind kind, const char *msg)
{
	c->keep_alive = false;
	c->state = CONN_CLOSING;
	api_respond_error(c, kind, "%s", msg);
}

/* ---- request reading ---- */

static bool is_slug_upload(const char *path, enum h1_method m)
{
	/* POST /apps/{app}/slugs and /builds (a source tar, checked as a
	 * slug), the only bodies that go to a file */
	if (m != H1_METHOD_POST || strncmp(path, "/apps/", 6) != 0)
		return false;
	const char *s = strchr(path + 6, '/');
	if (s == NULL)
		return false;
	size_t n = strcspn(s, "?");
	return (n == 6 && strncmp(s, "/slugs", 6) == 0) ||
	       (n == 7 && strncmp(s, "/slugs/", 7) == 0) ||
	       (n == 7 && strncmp(s, "/builds", 7) == 0) ||
	       (n == 8 && strncmp(s, "/builds/", 8) == 0);
}

static int open_upload(struct api *a)
{
	_cleanup_free_ char *dir = NULL;
	if (asprintf(&dir, "%s/slugs", a->cfg->state_dir) < 0)
		return -ENOMEM;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	/* unnamed: nothing is left behind when dynod dies mid-upload */
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR))
		return fd >= 0 ? fd : -errno;
	_cleanup_free_ char *tmp = NULL;
	if (asprintf(&tmp, "%s/upload.tmp-XXXXXX", dir) < 0)
		return -ENOMEM;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	unlink(tmp);
	return fd;
}

/* The body is complete: answer, then get ready for the next request
 * (unless the answer waits on a job: then api_request_done does). */
static void finish_request(struct conn *c)
{
	c->dispatching = true;
	api_dispatch(c);
	c->dispatching = false;
	if (c->conn.closed)
		return;
	if (c->state == CONN_WAITING) {
		/* no idle timeout while the platform is the one working */
		loop_timer_stop(c->api->loop, &c->conn.timer);
		return;
	}
	enum conn_state s = c->state;
	request_reset(c);
	if (s == CONN_CLOSING)
		c->state = CONN_CLOSING;
}

/* After the round that answered a waiting request: reads the requests
 * kept while it waited, and watches the socket again. */
static void conn_resume(struct loop_deferred *d)
{
	struct conn *c = loop_container_of(d, struct conn, resume);
	if (c->conn.closed)
		return; /* its free is queued behind this */
	conn_flush(c);
}

/* The waiting request's answer is queued: get ready for the next. Called
 * from a job's or the state writer's report, so nothing is parsed here
 * (a request taken up now could free the reporter under it: a DELETE of
 * the app frees the writer's entry); the answer is sent at once, so that
 * a client hears it even when dynod stops before the next round. */
static void request_answered(struct conn *c)
{
	if (c->conn.closed)
		return;
	enum conn_state s = c->state;
	request_reset(c);
	if (s == CONN_CLOSING)
		c->state = CONN_CLOSING;
	loop_timer_start(c->api->loop, &c->conn.timer, API_IDLE_USEC, NULL);
	bool blocked = false;
	while (buf_len(&c->out) > 0 && !blocked) {
		if (buf_flush(&c->out, c->conn.io.fd, &blocked) < 0) {
			conn_close(c);
			return;
		}
	}
	/* queued while open, so before the free conn_close() would queue */
	loop_defer(c->api->loop, &c->resume);
}

void api_request_done(struct conn *c)
{
	c->job = NULL;
	if (c->saving_active)
		return; /* its answer waits for the disk now: saved_done() goes on */
	request_answered(c);
}

/* The state writer's report on the change c's answer waits for: r < 0
 * when the write failed (msg, with the host path, is in dynod's log
 * already; the client gets the app and the errno text). */
static void saved_done(struct state_wait *w, int r, const char *msg)
{
	(void)msg;
	struct conn *c = loop_container_of(w, struct conn, saving);
	json_t *body = TAKE_PTR(c->saved_body);
	c->saving_active = false;
	/* a job's answer is queued once it is done: no job waits behind */
	assert(c->job == NULL && c->state == CONN_WAITING);
	c->state = CONN_HEAD; /* the request is answered now */
	if (r < 0) {
		json_decref(body);
		char app[STATE_APP_NAME_MAX + 1];
		api_path_app(c, app);
		api_respond_error(c, errno_kind(-r),
		                  "the change to app %s is made but not yet on disk (writing its "
		                  "state failed: %s): dynod retries the write",
		                  app, strerror(-r));
	} else {
		api_respond_json(c, c->saved_status, body);
	}
	if (!c->dispatching)
		request_answered(c);
}

void api_respond_json_saved(struct conn *c, const struct state_app *app, int status, json_t *j)
{
	if (c->conn.closed) {
		json_decref(j); /* no answer, and no wait left behind */
		return;
	}
	assert(!c->saving_active && c->saved_body == NULL);
	if (!mgr_wait_saved(c->api->mgr, app, &c->saving, saved_done)) {
		api_respond_json(c, status, j);
		return;
	}
	c->saving_active = true;
	c->saved_status = status;
	c->saved_body = j;
	c->state = CONN_WAITING;
}

/* Takes the head of a complete request (hlen bytes) and sets up its body. */
static void start_request(struct conn *c, const struct h1_request *req, size_t hlen)
{
	c->method = req->method_id;
	c->head_only = c->method == H1_METHOD_HEAD;
	if (c->head_only)
		c->method = H1_METHOD_GET;
	c->keep_alive = req->keep_alive;
	c->upgrade_attach = req->upgrade && h1_slice_eq_ci(req->upgrade_proto, "dyno-attach");
	c->path = strndup(req->target.p, req->target.len);
	bool expect = req->expect_continue;
	enum h1_body body = req->body;
	int64_t cl = req->content_length;
	/* the head's bytes go; req's slices are dead from here */
	buf_consume(&c->in, hlen);
	if (c->path == NULL) {
		respond_fatal(c, DY_E_INTERNAL, "no memory");
		return;
	}
	if (req->target_form != H1_TARGET_ORIGIN) {
		respond_fatal(c, DY_E_BAD_REQUEST, "expected an origin-form target (/apps...)");
		return;
	}
	bool upload = is_slug_upload(c->path, c->method);
	c->sink = upload ? SINK_FILE : SINK_MEMORY;
	c->body_limit = upload ? c->api->cfg->slugs.max_compressed : API_JSON_MAX;
	if (body == H1_BODY_NONE || (body == H1_BODY_LENGTH && cl == 0)) {
		if (upload && (c->body_fd = open_upload(c->api)) < 0) {
			respond_fatal(c, DY_E_INTERNAL, "cannot create the upload file");
			return;
		}
		finish_request(c);
		return;
	}
	if (body == H1_BODY_LENGTH && (uint64_t)cl > c->body_limit) {
		char msg[160];
		snprintf(msg, sizeof(msg), "request body of %lld bytes is over the limit of %llu",
		         (long long)cl, (unsigned long long)c->body_limit);
		respond_fatal(c, DY_E_TOO_LARGE, msg);
		return;
	}
	if (upload) {
		c->body_fd = open_upload(c->api);
		if (c->body_fd < 0) {
			dy_log("api", "upload file: %s", strerror(-c->body_fd));
			respond_fatal(c, errno_kind(-c->body_fd), "cannot create the upload file");
			return;
		}
	}
	c->chunked = body == H1_BODY_CHUNKED;
	if (c->chunked)
		h1_chunked_init(&c->chunk, NULL);
	c->remaining = body == H1_BODY_LENGTH ? (uint64_t)cl : 0;
	c->state = CONN_BODY;
	if (expect) {
		/* RFC 9110 10.1.1: the client waits for this before the body */
		if (buf_append(&c->out, HTTP_100_CONTINUE, sizeof(HTTP_100_CONTINUE) - 1,
		               SIZE_MAX) < 0)
			conn_close(c);
	}
}

/* Stores n body bytes. Returns 0, or < 0 after answering (limit, I/O). */
static int body_sink(struct conn *c, const char *p, size_t n)
{
	c->body_total += n;
	if (c->body_total > c->body_limit) {
		char msg[160];
		snprintf(msg, sizeof(msg), "request body is over the limit of %llu bytes",
		         (unsigned long long)c->body_limit);
		respond_fatal(c, DY_E_TOO_LARGE, msg);
		return -1;
	}
	if (c->sink == SINK_MEMORY) {
		if (buf_append(&c->body, p, n, SIZE_MAX) < 0) {
			respond_fatal(c, DY_E_INTERNAL, "no memory");
			return -1;
		}
		return 0;
	}
	while (n > 0) {
		ssize_t w = write(c->body_fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			char msg[160];
			int e = errno;
			snprintf(msg, sizeof(msg), "writing the upload: %s", strerror(e));
			respond_fatal(c, errno_kind(e), msg);
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Feeds buffered input to the body; dispatches when it is complete. */
static void read_body(struct conn *c)
{
	size_t off = 0;
	bool done = false;
	if (c->chunked) {
		while (off < buf_len(&c->in) && !h1_chunked_done(&c->chunk)) {
			struct h1_slice data;
			int n = h1_chunked_decode(&c->chunk, buf_data(&c->in) + off,
			                          buf_len(&c->in) - off, &data);
			if (n < 0) {
				respond_fatal(c, DY_E_BAD_REQUEST, h1_strerror(n));
				return;
			}
			if (n == 0)
				break;
			off += (size_t)n;
			if (data.len && body_sink(c, data.p, data.len) < 0)
				return;
		}
		done = h1_chunked_done(&c->chunk);
	} else {
		size_t n = (size_t)MIN((uint64_t)buf_len(&c->in), c->remaining);
		if (n && body_sink(c, buf_data(&c->in), n) < 0)
			return;
		off = n;
		c->remaining -= n;
		done = c->remaining == 0;
	}
	buf_consume(&c->in, off);
	if (done)
		finish_request(c);
}

/* Parses and answers as many requests as the input holds (while the
 * answers waiting stay under API_OUT_HIGH_WATER). */
static void process(struct conn *c)
{
	while (!c->conn.closed && c->state != CONN_CLOSING && c->state != CONN_WAITING) {
		if (c->state == CONN_BODY) {
			read_body(c);
			if (c->state == CONN_BODY)
				break; /* needs more bytes */
			continue;
		}
		if (buf_len(&c->in) == 0 || buf_len(&c->out) >= API_OUT_HIGH_WATER)
			break;
		struct h1_request req;
		int r = h1_parse_request(&c->parser, buf_data(&c->in), buf_len(&c->in), &req);
		if (r == 0)
			break;
		if (r < 0) {
			int status = h1_error_status(r);
			c->method = H1_METHOD_OTHER;
			c->head_only = false;
			if (status == 0) {
				conn_close(c);
				return;
			}
			c->keep_alive = false;
			c->state = CONN_CLOSING;
			respond_status(c, status, "bad_request", h1_strerror(r));
			break;
		}
		start_request(c, &req, (size_t)r);
	}
}

static void on_conn_io(struct loop *loop, struct loop_io *io, uint32_t events)
{
	struct conn *c = loop_container_of(io, struct conn, conn.io);
	if (events & LOOP_READ) {
		loop_timer_start(loop, &c->conn.timer, API_IDLE_USEC, NULL);
		/* bounded per event so one fast uploader cannot starve others */
		for (int rounds = 0; rounds < 16 && !c->conn.closed && c->state != CONN_CLOSING &&
		                     c->state != CONN_WAITING;
		     rounds++) {
			/* a head is at most 64 KiB and bodies are drained as they
			 * come, so the buffer stays bounded; it only fills while
			 * answers wait (then READ interest is off) */
			ssize_t n = buf_recv(&c->in, c->conn.io.fd, API_IN_MAX);
			if (n == -EAGAIN || n == -ENOBUFS)
				break;
			if (n < 0) {
				conn_close(c);
				return;
			}
			if (n == 0) {
				/* the peer is done sending: answer what is queued, then close */
				c->state = CONN_CLOSING;
				break;
			}
			process(c);
		}
	}
	if (c->conn.closed)
		return;
	conn_flush(c);
}

static void on_idle(struct loop *loop, struct loop_timer *t)
{
	struct conn *c = loop_container_of(t, struct conn, conn.timer);
	conn_close(c);
}

static void on_accept(struct loop *loop, struct loop_io *io, uint32_t events)
{
	struct api *a = loop_container_of(io, struct api, io);
	for (;;) {
		int fd = accept4(a->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				dy_log("api", "accept: %s", strerror(errno));
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			return;
		}
		if (a->conns.n >= API_MAX_CONNS) {
			close(fd);
			continue;
		}
		struct conn *c = calloc(1, sizeof(*c));
		if (c == NULL) {
			close(fd);
			continue;
		}
		c->api = a;
		c->body_fd = -1;
		loop_defer_init(&c->resume, conn_resume);
		request_reset(c);
		dy_conn_init(&c->conn, fd, on_conn_io, on_idle, conn_free);
		dy_conn_start(loop, &a->conns, &c->conn, API_IDLE_USEC);
	}
}

/* ---- listening ---- */

static int make_parent(const char *path, struct dy_error **err)
{
	_cleanup_free_ char *p = strdup(path);
	if (p == NULL)
		return dy_error_errno(err, ENOMEM, "api_socket");
	char *slash = strrchr(p, '/');
	if (slash == NULL || slash == p)
		return 0;
	*slash = '\0';
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char ch = *s;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return dy_error_errno(err, errno, "api_socket: mkdir %s", p);
		*s = ch;
		if (ch == '\0')
			break;
	}
	return 0;
}

int api_new(struct loop *loop, struct mgr *m, const struct config *cfg, struct api **ret,
            struct dy_error **err)
{
	const char *path = cfg->api_socket;
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sun.sun_path))
		return dy_error(err, "api_socket %s: path longer than %zu bytes", path,
		                sizeof(sun.sun_path) - 1);
	memcpy(sun.sun_path, path, strlen(path) + 1);
	gid_t gid;
	if (config_api_gid(cfg, &gid, err) < 0)
		return -1;
	if (make_parent(path, err) < 0)
		return -1;

	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return dy_error_errno(err, errno, "api_socket: socket");
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return dy_error(err, "api_socket %s exists and is not a socket", path);
		_cleanup_close_ int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sun, sizeof(sun)) == 0)
			return dy_error(err, "api_socket %s: another dynod is listening on it",
			                path);
		if (unlink(path) < 0)
			return dy_error_errno(err, errno, "api_socket: remove stale %s", path);
	}
	/* created with no access for others: no window before the chmod */
	mode_t old = umask(0177);
	int r = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (r < 0)
		return dy_error_errno(err, errno, "api_socket: bind %s", path);
	if (chown(path, (uid_t)-1, gid) < 0 || chmod(path, 0660) < 0) {
		int e = errno;
		unlink(path);
		return dy_error_errno(err, e, "api_socket %s: set group %s and mode 0660", path,
		                      cfg->api_group);
	}
	if (listen(fd, 128) < 0) {
		int e = errno;
		unlink(path);
		return dy_error_errno(err, e, "api_socket: listen %s", path);
	}
	struct api *a = calloc(1, sizeof(*a));
	if (a == NULL || (a->path = strdup(path)) == NULL) {
		free(a);
		unlink(path);
		return dy_error_errno(err, ENOMEM, "api");
	}
	a->loop = loop;
	a->mgr = m;
	a->cfg = cfg;
	a->fd = TAKE_FD(fd);
	if (builds_new(loop, m, cfg, &a->builds, err) < 0) {
		api_free(a);
		return -1;
	}
	loop_io_init(&a->io, a->fd, on_accept);
	if (loop_io_set(loop, &a->io, LOOP_READ, err) < 0) {
		api_free(a);
		return -1;
	}
	*ret = a;
	return 0;
}

void api_set_logs(struct api *a, struct lgi *logs, struct lstreams *streams)
{
	a->logs = logs;
	a->streams = streams;
}

void api_set_pg(struct api *a, struct pg *pg)
{
	a->pg = pg;
}

void api_conn_handed_off(struct conn *c)
{
	conn_close(c);
}

void api_free(struct api *a)
{
	if (a == NULL)
		return;
	while (a->conns.head)
		conn_close(loop_container_of(a->conns.head, struct conn, conn));
	loop_io_stop(a->loop, &a->io);
	if (a->fd >= 0)
		close(a->fd);
	builds_free(a->builds);
	unlink(a->path);
	free(a->path);
	free(a);
}
