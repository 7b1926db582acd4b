#include "runtime/manager/api.h"

#include <fcntl.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/http1.h"
#include "common/log.h"

#define API_HEADERS_MAX 100
#define API_READ_CHUNK  (64 * 1024)

enum conn_state {
	CONN_HEAD = 0, /* reading a request head */
	CONN_BODY,     /* reading its body */
	CONN_CLOSING,  /* answer queued: flush, then close */
};

enum body_sink {
	SINK_MEMORY = 0, /* JSON: in c->body */
	SINK_FILE,       /* slug upload: to c->body_fd */
};

struct conn {
	struct api *api;
	struct conn *prev, *next;
	struct loop_io io;
	struct loop_timer idle;
	struct loop_deferred reap;
	bool closed;

	char *in;
	size_t in_len, in_cap;
	char *out;
	size_t out_len, out_off, out_cap;

	enum conn_state state;
	struct h1_parser parser;
	struct h1_header headers[API_HEADERS_MAX];

	/* the request being read (copied out of the input buffer) */
	enum h1_method method; /* HEAD is served as GET ... */
	bool head_only;        /* ... without the body (RFC 9110 9.3.2) */
	char *path;
	bool keep_alive;
	enum body_sink sink;
	bool chunked;
	struct h1_chunked chunk;
	uint64_t remaining; /* Content-Length bytes still to come */
	uint64_t body_limit;
	uint64_t body_total;
	char *body;
	size_t body_len, body_cap;
	int body_fd;
};

struct api {
	struct loop *loop;
	struct mgr *mgr;
	const struct config *cfg;
	char *path;
	int fd;
	struct loop_io io;
	struct conn *conns;
	size_t nconns;
};

/* ---- connection lifetime ---- */

static void conn_free(struct loop_deferred *d)
{
	struct conn *c = loop_container_of(d, struct conn, reap);
	free(c->in);
	free(c->out);
	free(c->path);
	free(c->body);
	if (c->body_fd >= 0)
		close(c->body_fd);
	free(c);
}

/* Stops c's watchers, closes its socket and queues its free after the
 * dispatch round (never free inside its own callback). */
static void conn_close(struct conn *c)
{
	if (c->closed)
		return;
	c->closed = true;
	struct api *a = c->api;
	loop_io_stop(a->loop, &c->io);
	loop_timer_stop(a->loop, &c->idle);
	close(c->io.fd);
	c->io.fd = -1;
	if (c->prev)
		c->prev->next = c->next;
	else
		a->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	a->nconns--;
	loop_defer(a->loop, &c->reap);
}

static void request_reset(struct conn *c)
{
	free(c->path);
	c->path = NULL;
	free(c->body);
	c->body = NULL;
	c->body_len = c->body_cap = 0;
	if (c->body_fd >= 0)
		close(c->body_fd);
	c->body_fd = -1;
	c->body_total = 0;
	c->remaining = 0;
	c->chunked = false;
	h1_parser_init(&c->parser, NULL, c->headers, API_HEADERS_MAX);
	c->state = CONN_HEAD;
}

static int buf_append(char **buf, size_t *len, size_t *cap, const void *p, size_t n)
{
	if (*len + n > *cap) {
		size_t ncap = *cap ? *cap : 4096;
		while (ncap < *len + n)
			ncap *= 2;
		char *nb = realloc(*buf, ncap);
		if (nb == NULL)
			return -ENOMEM;
		*buf = nb;
		*cap = ncap;
	}
	memcpy(*buf + *len, p, n);
	*len += n;
	return 0;
}

static void conn_update_interest(struct conn *c)
{
	if (c->closed)
		return;
	uint32_t ev = 0;
	bool pending = c->out_len > c->out_off;
	if (pending)
		ev |= LOOP_WRITE;
	/* back-pressure: a client that does not read its answers is not read */
	if (c->state != CONN_CLOSING && c->out_len - c->out_off < API_OUT_HIGH_WATER)
		ev |= LOOP_READ;
	if (loop_io_set(c->api->loop, &c->io, ev, NULL) < 0)
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
		while (c->out_off < c->out_len) {
			ssize_t n = send(c->io.fd, c->out + c->out_off, c->out_len - c->out_off,
			                 MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
				break;
			if (n < 0) {
				conn_close(c);
				return;
			}
			c->out_off += (size_t)n;
		}
		if (c->out_off < c->out_len)
			break;
		c->out_off = c->out_len = 0;
		if (c->state == CONN_CLOSING) {
			conn_close(c);
			return;
		}
		if (c->state != CONN_HEAD || c->in_len == 0)
			break;
		size_t before = c->in_len;
		process(c);
		if (c->closed)
			return;
		if (c->in_len == before && c->out_len == 0)
			break; /* an incomplete head: wait for more bytes */
	}
	conn_update_interest(c);
}

/* ---- responses ---- */

static const char *reason(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 202:
		return "Accepted";
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 409:
		return "Conflict";
	case 413:
		return "Content Too Large";
	case 414:
		return "URI Too Long";
	case 422:
		return "Unprocessable Content";
	case 431:
		return "Request Header Fields Too Large";
	case 501:
		return "Not Implemented";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return status >= 500 ? "Internal Server Error" : "Error";
	}
}

/* Queues a response with body j (stolen; NULL gives an empty object). */
static void respond_json(struct conn *c, int status, json_t *j)
{
	_cleanup_json_ json_t *body = j ? j : json_object();
	_cleanup_free_ char *text =
	    body ? json_dumps(body, JSON_PRESERVE_ORDER | JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	if (text == NULL) {
		conn_close(c);
		return;
	}
	size_t blen = strlen(text);
	char head[256];
	int n = snprintf(head, sizeof(head),
	                 "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
	                 "Content-Length: %zu\r\n%s\r\n",
	                 status, reason(status), blen + 1,
	                 c->keep_alive && c->state != CONN_CLOSING ? "" : "Connection: close\r\n");
	if (!c->keep_alive)
		c->state = CONN_CLOSING;
	if (buf_append(&c->out, &c->out_len, &c->out_cap, head, (size_t)n) < 0 ||
	    (!c->head_only && (buf_append(&c->out, &c->out_len, &c->out_cap, text, blen) < 0 ||
	                       buf_append(&c->out, &c->out_len, &c->out_cap, "\n", 1) < 0)))
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
    [DY_E_UNSUPPORTED] = {501, "bad_request"},
};

static void respond_status(struct conn *c, int status, const char *id, const char *msg)
{
	respond_json(c, status, json_pack("{s:s, s:s}", "id", id, "message", msg));
}

static void respond_error(struct conn *c, enum dy_error_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void respond_error(struct conn *c, enum dy_error_kind kind, const char *fmt, ...)
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

/* An error that ends the connection: the request's bytes cannot be
 * skipped reliably (bad framing, a body we refuse to read). */
static void respond_fatal(struct conn *c, enum dy_error_kind kind, const char *msg)
{
	c->keep_alive = false;
	c->state = CONN_CLOSING;
	respond_error(c, kind, "%s", msg);
}

static void respond_mgr_error(struct conn *c, struct dy_error **err)
{
	enum dy_error_kind kind = dy_error_kind_of(*err);
	if (kind == DY_E_INTERNAL)
		dy_log("api", "%s %s: %s", h1_method_str(c->method), c->path, dy_error_msg(*err));
	respond_error(c, kind, "%s", dy_error_msg(*err));
	dy_error_free(err);
}

/* ---- routes ---- */

#define MAX_SEGS 6

struct route {
	const char *seg[MAX_SEGS];
	size_t nseg;
};

/* Splits path (modified in place) on '/'; false when it has too many or
 * empty segments. */
static bool split_path(char *path, struct route *r)
{
	r->nseg = 0;
	char *q = strchr(path, '?');
	if (q)
		*q = '\0';
	if (path[0] != '/')
		return false;
	char *p = path + 1;
	if (*p == '\0')
		return true;
	for (;;) {
		if (r->nseg == MAX_SEGS)
			return false;
		char *slash = strchr(p, '/');
		if (slash)
			*slash = '\0';
		if (*p == '\0')
			return slash == NULL && r->nseg > 0; /* a trailing '/' is fine */
		r->seg[r->nseg++] = p;
		if (slash == NULL)
			return true;
		p = slash + 1;
	}
}

/* Parses the JSON body; answers 400 and returns NULL when it is not an
 * object. */
static json_t *body_object(struct conn *c)
{
	json_error_t jerr;
	json_t *j = json_loadb(c->body ? c->body : "", c->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL) {
		respond_error(c, DY_E_BAD_REQUEST, "request body is not JSON: %s", jerr.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		respond_error(c, DY_E_BAD_REQUEST, "request body must be a JSON object");
		return NULL;
	}
	return j;
}

static void method_not_allowed(struct conn *c, const char *allowed)
{
	respond_error(c, DY_E_NOT_ALLOWED, "method %s is not allowed on %s (allowed: %s)",
	              h1_method_str(c->method), c->path, allowed);
}

static void route_apps(struct conn *c)
{
	struct api *a = c->api;
	const struct state *st = mgr_state(a->mgr);
	if (c->method == H1_METHOD_GET) {
		json_t *list = json_array();
		for (size_t i = 0; list && i < st->napps; i++)
			json_array_append_new(list, mgr_app_json(a->mgr, st->apps[i]));
		respond_json(c, 200, list);
		return;
	}
	if (c->method != H1_METHOD_POST) {
		method_not_allowed(c, "GET, POST");
		return;
	}
	_cleanup_json_ json_t *b = body_object(c);
	if (b == NULL)
		return;
	const char *name = json_string_value(json_object_get(b, "name"));
	if (name == NULL) {
		respond_error(c, DY_E_INVALID, "name: expected a string");
		return;
	}
	struct dy_error *err = NULL;
	struct state_app *app;
	if (mgr_app_create(a->mgr, name, &app, &err) < 0) {
		respond_mgr_error(c, &err);
		return;
	}
	dy_log("api", "created app %s (uid %u)", app->name, app->uid);
	respond_json(c, 201, mgr_app_json(a->mgr, app));
}

static void route_app(struct conn *c, struct state_app *app)
{
	struct api *a = c->api;
	if (c->method == H1_METHOD_GET) {
		respond_json(c, 200, mgr_app_json(a->mgr, app));
		return;
	}
	if (c->method != H1_METHOD_DELETE) {
		method_not_allowed(c, "GET, DELETE");
		return;
	}
	json_t *j = mgr_app_json(a->mgr, app);
	char name[STATE_APP_NAME_MAX + 1];
	snprintf(name, sizeof(name), "%s", app->name);
	struct dy_error *err = NULL;
	if (mgr_app_destroy(a->mgr, name, &err) < 0) {
		if (j)
			json_decref(j);
		respond_mgr_error(c, &err);
		return;
	}
	dy_log("api", "destroyed app %s", name);
	respond_json(c, 200, j);
}

static void route_slugs(struct conn *c, struct state_app *app)
{
	if (c->method != H1_METHOD_POST) {
		method_not_allowed(c, "POST");
		return;
	}
	if (lseek(c->body_fd, 0, SEEK_SET) < 0) {
		respond_error(c, DY_E_INTERNAL, "upload: %s", strerror(errno));
		return;
	}
	struct dy_error *err = NULL;
	struct slug_info info = {0};
	if (mgr_slug_put(c->api->mgr, app->name, c->body_fd, &info, &err) < 0) {
		respond_mgr_error(c, &err);
		return;
	}
	json_t *pt = json_object();
	for (size_t i = 0; pt && info.procfile && i < info.procfile->n; i++)
		json_object_set_new(pt, info.procfile->entries[i].name,
		                    json_string(info.procfile->entries[i].command));
	json_t *j = json_pack("{s:s, s:I, s:o*}", "id", info.id, "size", (json_int_t)info.size,
	                      "process_types", pt);
	dy_log("api", "stored slug %.7s (%llu bytes) for %s", info.id,
	       (unsigned long long)info.size, app->name);
	slug_info_clear(&info);
	respond_json(c, 201, j);
}

/* "v3", "3" or 3 -> 3; 0 when it is none of those. */
static int parse_version(json_t *j, const char *s)
{
	if (j && json_is_integer(j))
		return json_integer_value(j) > 0 && json_integer_value(j) < INT32_MAX
		           ? (int)json_integer_value(j)
		           : 0;
	if (j)
		s = json_string_value(j);
	if (s == NULL)
		return 0;
	if (s[0] == 'v')
		s++;
	if (*s < '1' || *s > '9')
		return 0;
	long v = 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > 100000000)
			return 0;
		v = v * 10 + (*s - '0');
	}
	return (int)v;
}

static void route_releases(struct conn *c, struct state_app *app, const char *which)
{
	struct api *a = c->api;
	if (which) {
		if (c->method != H1_METHOD_GET) {
			method_not_allowed(c, "GET");
			return;
		}
		int v = parse_version(NULL, which);
		const struct state_release *rel = v ? state_release_find(app, v) : NULL;
		if (rel == NULL) {
			respond_error(c, DY_E_NOT_FOUND, "release \"%.32s\" of %s not found", which,
			              app->name);
			return;
		}
		respond_json(c, 200, state_release_json(rel));
		return;
	}
	if (c->method == H1_METHOD_GET) {
		json_t *list = json_array();
		for (size_t i = 0; list && i < app->nreleases; i++)
			json_array_append_new(list, state_release_json(&app->releases[i]));
		respond_json(c, 200, list);
		return;
	}
	if (c->method != H1_METHOD_POST) {
		method_not_allowed(c, "GET, POST");
		return;
	}
	_cleanup_json_ json_t *b = body_object(c);
	if (b == NULL)
		return;
	json_t *slug = json_object_get(b, "slug"), *rel = json_object_get(b, "release");
	if ((slug == NULL) == (rel == NULL)) {
		respond_error(c, DY_E_INVALID,
		              "expected either {\"slug\": ID} (deploy) or {\"release\": \"vN\"} "
		              "(rollback)");
		return;
	}
	struct dy_error *err = NULL;
	struct state_release *out = NULL;
	int r;
	if (slug) {
		if (json_is_object(slug))
			slug = json_object_get(slug, "id");
		if (!json_is_string(slug)) {
			respond_error(c, DY_E_INVALID, "slug: expected a slug id string");
			return;
		}
		r = mgr_deploy(a->mgr, app->name, json_string_value(slug), &out, &err);
	} else {
		int v = parse_version(rel, NULL);
		if (v == 0) {
			respond_error(c, DY_E_INVALID,
			              "release: expected a version such as \"v3\" or 3");
			return;
		}
		r = mgr_rollback(a->mgr, app->name, v, &out, &err);
	}
	if (r < 0) {
		respond_mgr_error(c, &err);
		return;
	}
	dy_log("api", "%s: v%d %s (%s)", app->name, out->version, out->description,
	       state_release_status_str(out->status));
	respond_json(c, 201, state_release_json(out));
}

static int parse_update(json_t *o, const char *type, struct mgr_formation_update *u, char *msg,
                        size_t size)
{
	u->type = type ? type : json_string_value(json_object_get(o, "type"));
	u->quantity = -1;
	u->size = NULL;
	if (!json_is_object(o)) {
		snprintf(msg, size, "each update must be an object");
		return -1;
	}
	if (u->type == NULL) {
		snprintf(msg, size, "type: expected a process type name");
		return -1;
	}
	json_t *q = json_object_get(o, "quantity"), *s = json_object_get(o, "size");
	if (q) {
		if (!json_is_integer(q) || json_integer_value(q) < 0 ||
		    json_integer_value(q) > MGR_QUANTITY_MAX) {
			snprintf(msg, size, "%s: quantity must be an integer in 0..%d", u->type,
			         MGR_QUANTITY_MAX);
			return -1;
		}
		u->quantity = (int)json_integer_value(q);
	}
	if (s) {
		if (!json_is_string(s)) {
			snprintf(msg, size, "%s: size must be a string", u->type);
			return -1;
		}
		u->size = json_string_value(s);
	}
	return 0;
}

static void route_formation(struct conn *c, struct state_app *app, const char *type)
{
	struct api *a = c->api;
	struct dy_error *err = NULL;
	if (c->method == H1_METHOD_PATCH) {
		_cleanup_json_ json_t *b = body_object(c);
		if (b == NULL)
			return;
		char msg[256];
		_cleanup_free_ struct mgr_formation_update *u = NULL;
		size_t n = 0;
		if (type) {
			u = calloc(1, sizeof(*u));
			if (u == NULL || parse_update(b, type, u, msg, sizeof(msg)) < 0) {
				respond_error(c, DY_E_INVALID, "%s", u ? msg : "no memory");
				return;
			}
			n = 1;
		} else {
			json_t *ups = json_object_get(b, "updates");
			if (!json_is_array(ups)) {
				respond_error(c, DY_E_INVALID,
				              "updates: expected a list of {type, quantity, size}");
				return;
			}
			n = json_array_size(ups);
			u = calloc(n ? n : 1, sizeof(*u));
			for (size_t i = 0; u && i < n; i++)
				if (parse_update(json_array_get(ups, i), NULL, &u[i], msg,
				                 sizeof(msg)) < 0) {
					respond_error(c, DY_E_INVALID, "updates[%zu]: %s", i, msg);
					return;
				}
			if (u == NULL) {
				respond_error(c, DY_E_INTERNAL, "no memory");
				return;
			}
		}
		if (mgr_formation_update(a->mgr, app->name, u, n, &err) < 0) {
			respond_mgr_error(c, &err);
			return;
		}
		for (size_t i = 0; i < n; i++) {
			const struct state_formation *f = state_formation_find(app, u[i].type);
			dy_log("api", "%s: scaled %s to %d:%s", app->name, u[i].type,
			       f ? f->quantity : 0, f ? f->size : "?");
		}
	} else if (c->method != H1_METHOD_GET) {
		method_not_allowed(c, "GET, PATCH");
		return;
	}
	json_t *j = mgr_formation_json(a->mgr, app, type, &err);
	if (j == NULL && err) {
		respond_mgr_error(c, &err);
		return;
	}
	respond_json(c, 200, j);
}

static void route_config(struct conn *c, struct state_app *app)
{
	struct api *a = c->api;
	if (c->method == H1_METHOD_PATCH) {
		_cleanup_json_ json_t *b = body_object(c);
		if (b == NULL)
			return;
		struct dy_error *err = NULL;
		struct state_release *rel = NULL;
		if (mgr_config_update(a->mgr, app->name, b, &rel, &err) < 0) {
			respond_mgr_error(c, &err);
			return;
		}
		if (rel)
			dy_log("api", "%s: v%d %s", app->name, rel->version, rel->description);
	} else if (c->method != H1_METHOD_GET) {
		method_not_allowed(c, "GET, PATCH");
		return;
	}
	json_t *cfg = mgr_config_vars(app);
	respond_json(c, 200, cfg ? json_deep_copy(cfg) : json_object());
}

/* GET /apps/{app}/dynos[/{dyno}], DELETE /apps/{app}/dynos[/{dyno|type}]
 * (restart), POST /apps/{app}/dynos/{dyno}/actions/stop */
static void route_dynos(struct conn *c, struct state_app *app, const struct route *r)
{
	struct api *a = c->api;
	struct dy_error *err = NULL;
	const char *which = r->nseg >= 4 ? r->seg[3] : NULL;
	if (!mgr_has_dynos(a->mgr)) {
		respond_error(c, DY_E_UNSUPPORTED,
		              "%s needs the dyno launcher, which this dynod runs without", c->path);
		return;
	}
	if (r->nseg == 6) {
		if (strcmp(r->seg[4], "actions") != 0 || strcmp(r->seg[5], "stop") != 0) {
			respond_error(c, DY_E_NOT_FOUND, "no such endpoint: %s", c->path);
			return;
		}
		if (c->method != H1_METHOD_POST) {
			method_not_allowed(c, "POST");
			return;
		}
		if (mgr_dyno_stop(a->mgr, app->name, which, &err) < 0) {
			respond_mgr_error(c, &err);
			return;
		}
		dy_log("api", "%s: stopped %s", app->name, which);
		respond_json(c, 202, json_object());
		return;
	}
	if (r->nseg == 5) {
		respond_error(c, DY_E_NOT_FOUND, "no such endpoint: %s", c->path);
		return;
	}
	if (c->method == H1_METHOD_DELETE) {
		if (mgr_dynos_restart(a->mgr, app->name, which, &err) < 0) {
			respond_mgr_error(c, &err);
			return;
		}
		dy_log("api", "%s: restarted %s", app->name, which ? which : "all dynos");
		respond_json(c, 202, json_object());
		return;
	}
	if (c->method != H1_METHOD_GET) {
		method_not_allowed(c, "GET, DELETE");
		return;
	}
	json_t *j = mgr_dynos_json(a->mgr, app->name, which, &err);
	if (j == NULL) {
		respond_mgr_error(c, &err);
		return;
	}
	respond_json(c, 200, j);
}

static void dispatch(struct conn *c)
{
	struct api *a = c->api;
	_cleanup_free_ char *path = strdup(c->path);
	struct route r;
	if (path == NULL) {
		respond_error(c, DY_E_INTERNAL, "no memory");
		return;
	}
	if (!split_path(path, &r) || r.nseg == 0 || strcmp(r.seg[0], "apps") != 0) {
		respond_error(c, DY_E_NOT_FOUND, "no such endpoint: %s", c->path);
		return;
	}
	if (r.nseg == 1) {
		route_apps(c);
		return;
	}
	struct state_app *app;
	struct dy_error *err = NULL;
	if (mgr_app_get(a->mgr, r.seg[1], &app, &err) < 0) {
		respond_mgr_error(c, &err);
		return;
	}
	if (r.nseg == 2) {
		route_app(c, app);
		return;
	}
	const char *sub = r.seg[2];
	if (strcmp(sub, "slugs") == 0 && r.nseg == 3)
		route_slugs(c, app);
	else if (strcmp(sub, "releases") == 0 && r.nseg <= 4)
		route_releases(c, app, r.nseg == 4 ? r.seg[3] : NULL);
	else if (strcmp(sub, "formation") == 0 && r.nseg <= 4)
		route_formation(c, app, r.nseg == 4 ? r.seg[3] : NULL);
	else if (strcmp(sub, "config-vars") == 0 && r.nseg == 3)
		route_config(c, app);
	else if (strcmp(sub, "dynos") == 0 && r.nseg <= 6)
		route_dynos(c, app, &r);
	else if (strcmp(sub, "dynos") == 0 || strcmp(sub, "log-stream") == 0 ||
	         strcmp(sub, "addons") == 0)
		respond_error(c, DY_E_UNSUPPORTED,
		              "%s needs the dyno launcher, which this dynod does not have yet",
		              c->path);
	else
		respond_error(c, DY_E_NOT_FOUND, "no such endpoint: %s", c->path);
}

/* ---- request reading ---- */

static bool is_slug_upload(const char *path, enum h1_method m)
{
	/* POST /apps/{app}/slugs, the only body that goes to a file */
	if (m != H1_METHOD_POST || strncmp(path, "/apps/", 6) != 0)
		return false;
	const char *s = strchr(path + 6, '/');
	if (s == NULL)
		return false;
	size_t n = strcspn(s, "?");
	return (n == 6 && strncmp(s, "/slugs", 6) == 0) ||
	       (n == 7 && strncmp(s, "/slugs/", 7) == 0);
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

/* The body is complete: answer, then get ready for the next request. */
static void finish_request(struct conn *c)
{
	dispatch(c);
	if (c->closed)
		return;
	enum conn_state s = c->state;
	request_reset(c);
	if (s == CONN_CLOSING)
		c->state = CONN_CLOSING;
}

/* Takes the head of a complete request (hlen bytes) and sets up its body. */
static void start_request(struct conn *c, const struct h1_request *req, size_t hlen)
{
	c->method = req->method_id;
	c->head_only = c->method == H1_METHOD_HEAD;
	if (c->head_only)
		c->method = H1_METHOD_GET;
	c->keep_alive = req->keep_alive;
	c->path = strndup(req->target.p, req->target.len);
	bool expect = req->expect_continue;
	enum h1_body body = req->body;
	int64_t cl = req->content_length;
	/* the head's bytes go; req's slices are dead from here */
	memmove(c->in, c->in + hlen, c->in_len - hlen);
	c->in_len -= hlen;
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
			respond_fatal(c, DY_E_INTERNAL, "cannot create the upload file");
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
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		if (buf_append(&c->out, &c->out_len, &c->out_cap, cont, sizeof(cont) - 1) < 0)
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
		if (buf_append(&c->body, &c->body_len, &c->body_cap, p, n) < 0) {
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
			snprintf(msg, sizeof(msg), "writing the upload: %s", strerror(errno));
			respond_fatal(c, DY_E_INTERNAL, msg);
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
		while (off < c->in_len && !h1_chunked_done(&c->chunk)) {
			struct h1_slice data;
			int n = h1_chunked_decode(&c->chunk, c->in + off, c->in_len - off, &data);
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
		size_t n = c->in_len < c->remaining ? c->in_len : (size_t)c->remaining;
		if (n && body_sink(c, c->in, n) < 0)
			return;
		off = n;
		c->remaining -= n;
		done = c->remaining == 0;
	}
	memmove(c->in, c->in + off, c->in_len - off);
	c->in_len -= off;
	if (done)
		finish_request(c);
}

/* Parses and answers as many requests as the input holds (while the
 * answers waiting stay under API_OUT_HIGH_WATER). */
static void process(struct conn *c)
{
	while (!c->closed && c->state != CONN_CLOSING) {
		if (c->state == CONN_BODY) {
			read_body(c);
			if (c->state == CONN_BODY)
				break; /* needs more bytes */
			continue;
		}
		if (c->in_len == 0 || c->out_len - c->out_off >= API_OUT_HIGH_WATER)
			break;
		struct h1_request req;
		int r = h1_parse_request(&c->parser, c->in, c->in_len, &req);
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
	struct conn *c = loop_container_of(io, struct conn, io);
	if (events & LOOP_READ) {
		loop_timer_start(loop, &c->idle, API_IDLE_USEC, NULL);
		/* bounded per event so one fast uploader cannot starve others */
		for (int rounds = 0; rounds < 16 && !c->closed && c->state != CONN_CLOSING;
		     rounds++) {
			if (c->in_cap - c->in_len < API_READ_CHUNK / 4) {
				/* a head is at most 64 KiB and bodies are drained as they
				 * come, so the buffer stays bounded; it only fills while
				 * answers wait (then READ interest is off) */
				size_t max = (size_t)h1_limits_default.head + 2 * API_READ_CHUNK;
				size_t ncap = c->in_cap ? c->in_cap * 2 : API_READ_CHUNK;
				if (ncap > max)
					ncap = max;
				if (ncap <= c->in_cap)
					break;
				char *nb = realloc(c->in, ncap);
				if (nb == NULL) {
					conn_close(c);
					return;
				}
				c->in = nb;
				c->in_cap = ncap;
			}
			ssize_t n = recv(c->io.fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
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
			c->in_len += (size_t)n;
			process(c);
		}
	}
	if (c->closed)
		return;
	conn_flush(c);
}

static void on_idle(struct loop *loop, struct loop_timer *t)
{
	struct conn *c = loop_container_of(t, struct conn, idle);
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
		if (a->nconns >= API_MAX_CONNS) {
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
		request_reset(c);
		loop_io_init(&c->io, fd, on_conn_io);
		loop_timer_init(&c->idle, on_idle);
		loop_defer_init(&c->reap, conn_free);
		c->next = a->conns;
		if (a->conns)
			a->conns->prev = c;
		a->conns = c;
		a->nconns++;
		if (loop_io_set(loop, &c->io, LOOP_READ, NULL) < 0 ||
		    loop_timer_start(loop, &c->idle, API_IDLE_USEC, NULL) < 0)
			conn_close(c);
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
	errno = 0;
	struct group *gr = getgrnam(cfg->api_group);
	if (gr == NULL)
		return dy_error(err,
		                "api_group \"%s\": no such group (create it with `groupadd %s`, or "
		                "set api_group in the configuration)",
		                cfg->api_group, cfg->api_group);
	gid_t gid = gr->gr_gid;
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
	loop_io_init(&a->io, a->fd, on_accept);
	if (loop_io_set(loop, &a->io, LOOP_READ, err) < 0) {
		api_free(a);
		return -1;
	}
	*ret = a;
	return 0;
}

void api_free(struct api *a)
{
	if (a == NULL)
		return;
	while (a->conns)
		conn_close(a->conns);
	loop_io_stop(a->loop, &a->io);
	if (a->fd >= 0)
		close(a->fd);
	unlink(a->path);
	free(a->path);
	free(a);
}
