/* The Platform API's endpoints (docs/api.md): each takes a complete
 * request on a connection of runtime/manager/api.c, calls the manager and
 * queues the JSON response. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "runtime/manager/addon-pg.h"
#include "runtime/manager/api-internal.h"
#include "runtime/manager/log-intake.h"
#include "runtime/manager/log-stream.h"

/* An internal failure is logged with its details (paths included) and
 * answered with what failed and its errno text only: no host path
 * reaches a client. */
static void respond_mgr_error(struct conn *c, struct dy_error **err)
{
	enum dy_error_kind kind = dy_error_kind_of(*err);
	if (kind == DY_E_INTERNAL) {
		dy_log("api", "%s %s: %s", h1_method_str(c->method), c->path, dy_error_msg(*err));
		int errnum = *err ? (*err)->errnum : 0;
		if (errnum)
			api_respond_error(c, kind, "%s %s failed: %s", h1_method_str(c->method),
			                  c->path, strerror(errnum));
		else
			api_respond_error(c, kind, "%s %s failed (dynod's log says why)",
			                  h1_method_str(c->method), c->path);
	} else {
		api_respond_error(c, kind, "%s", dy_error_msg(*err));
	}
	dy_error_free(err);
}

/* An error of a manager's job: its message is made for the client
 * already (manager.h). */
static void respond_job_error(struct conn *c, struct dy_error *err)
{
	api_respond_error(c, dy_error_kind_of(err), "%s", dy_error_msg(err));
	dy_error_free(&err);
}

/* The connection a job's cb reports to: the job is done with it. */
static struct conn *job_conn(void *arg)
{
	struct conn *c = arg;
	c->job = NULL;
	return c;
}

/* The answer of a waiting request is queued: carry on with the next. A
 * job done at once (no pool) is answered inside api_dispatch, which ends
 * the request itself. */
static void job_answered(struct conn *c)
{
	if (c->dispatching) {
		c->job = NULL;
		if (c->state == CONN_WAITING && !c->saving_active)
			c->state = CONN_HEAD;
		return;
	}
	api_request_done(c);
}

/* Waits for job (the manager's, started with c as its arg). */
static void wait_for(struct conn *c, int r, struct mgr_job *job, struct dy_error **err)
{
	if (r < 0) {
		if (c->state == CONN_WAITING)
			c->state = CONN_HEAD;
		respond_mgr_error(c, err);
		return;
	}
	if (job == NULL)
		return; /* done already, and answered */
	if (c->conn.closed)
		mgr_job_detach(job); /* closed on the way: nobody to answer */
	else
		c->job = job;
}

void api_path_app(const struct conn *c, char name[STATE_APP_NAME_MAX + 1])
{
	const char *p = c->path + strlen("/apps/");
	snprintf(name, STATE_APP_NAME_MAX + 1, "%.*s", (int)strcspn(p, "/?"), p);
}

/* ---- routes ---- */

#define MAX_SEGS 8

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
	json_t *j = json_loadb(c->body.p ? buf_data(&c->body) : "", buf_len(&c->body),
	                       JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL) {
		api_respond_error(c, DY_E_BAD_REQUEST, "request body is not JSON: %s", jerr.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		api_respond_error(c, DY_E_BAD_REQUEST, "request body must be a JSON object");
		return NULL;
	}
	return j;
}

static void method_not_allowed(struct conn *c, const char *allowed)
{
	api_respond_error(c, DY_E_NOT_ALLOWED, "method %s is not allowed on %s (allowed: %s)",
	                  h1_method_str(c->method), c->path, allowed);
}

json_t *api_body_object(struct conn *c)
{
	return body_object(c);
}

void api_method_not_allowed(struct conn *c, const char *allowed)
{
	method_not_allowed(c, allowed);
}

static void route_apps(struct conn *c)
{
	struct api *a = c->api;
	const struct state *st = mgr_state(a->mgr);
	if (c->method == H1_METHOD_GET) {
		json_t *list = json_array();
		for (size_t i = 0; list && i < st->napps; i++)
			json_array_append_new(list, mgr_app_json(a->mgr, st->apps[i]));
		api_respond_json(c, 200, list);
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
		api_respond_error(c, DY_E_INVALID, "name: expected a string");
		return;
	}
	struct dy_error *err = NULL;
	struct state_app *app;
	if (mgr_app_create(a->mgr, name, &app, &err) < 0) {
		respond_mgr_error(c, &err);
		return;
	}
	dy_log("api", "created app %s (uid %u)", app->name, app->uid);
	api_respond_json(c, 201, mgr_app_json(a->mgr, app));
}

static void route_app(struct conn *c, struct state_app *app)
{
	struct api *a = c->api;
	if (c->method == H1_METHOD_GET) {
		api_respond_json(c, 200, mgr_app_json(a->mgr, app));
		return;
	}
	if (c->method == H1_METHOD_PATCH) {
		/* {"maintenance": true|false} */
		_cleanup_json_ json_t *b = body_object(c);
		if (b == NULL)
			return;
		json_t *mj = json_object_get(b, "maintenance");
		if (!json_is_boolean(mj) || json_object_size(b) != 1) {
			api_respond_error(c, DY_E_INVALID,
			                  "expected {\"maintenance\": true|false}, nothing else");
			return;
		}
		struct dy_error *err = NULL;
		if (mgr_set_maintenance(a->mgr, app->name, json_is_true(mj), &err) < 0) {
			respond_mgr_error(c, &err);
			return;
		}
		api_respond_json_saved(c, app, 200, mgr_app_json(a->mgr, app));
		return;
	}
	if (c->method != H1_METHOD_DELETE) {
		method_not_allowed(c, "GET, PATCH, DELETE");
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
	pg_app_destroyed(a->pg, name); /* its databases and roles go */
	lgi_forget(a->logs, name);     /* its sink; its log went with its directory */
	api_respond_json(c, 200, j);
}

/* {hostname, kind}: kind "default" (NAME.<domain>) or "custom". */
static json_t *domain_json(const char *host, bool custom)
{
	return json_pack("{s:s, s:s}", "hostname", host, "kind", custom ? "custom" : "default");
}

/* GET|POST /apps/{app}/domains, DELETE /apps/{app}/domains/{hostname} */
static void route_domains(struct conn *c, struct state_app *app, const char *host)
{
	struct api *a = c->api;
	struct dy_error *err = NULL;
	if (host) {
		if (c->method != H1_METHOD_DELETE) {
			method_not_allowed(c, "DELETE");
			return;
		}
		json_t *j = domain_json(host, true);
		if (mgr_domain_remove(a->mgr, app->name, host, &err) < 0) {
			json_decref(j);
			respond_mgr_error(c, &err);
			return;
		}
		api_respond_json_saved(c, app, 200, j);
		return;
	}
	if (c->method == H1_METHOD_GET) {
		json_t *list = json_array();
		char own[STATE_APP_NAME_MAX + STATE_HOST_MAX + 2];
		snprintf(own, sizeof(own), "%s.%s", app->name, a->cfg->domain);
		json_array_append_new(list, domain_json(own, false));
		for (size_t i = 0; list && i < app->ndomains; i++)
			json_array_append_new(list, domain_json(app->domains[i], true));
		api_respond_json(c, 200, list);
		return;
	}
	if (c->method != H1_METHOD_POST) {
		method_not_allowed(c, "GET, POST");
		return;
	}
	_cleanup_json_ json_t *b = body_object(c);
	if (b == NULL)
		return;
	const char *h = json_string_value(json_object_get(b, "hostname"));
	if (h == NULL) {
		api_respond_error(c, DY_E_INVALID, "hostname: expected a string");
		return;
	}
	if (mgr_domain_add(a->mgr, app->name, h, &err) < 0) {
		respond_mgr_error(c, &err);
		return;
	}
	int i = state_domain_find(app, h);
	api_respond_json_saved(c, app, 201, domain_json(app->domains[i], true));
}

static void on_slug_stored(void *arg, const struct slug_info *info, struct dy_error *err)
{
	struct conn *c = job_conn(arg);
	if (err) {
		respond_job_error(c, err);
		job_answered(c);
		return;
	}
	json_t *pt = json_object();
	for (size_t i = 0; pt && info->procfile && i < info->procfile->n; i++)
		json_object_set_new(pt, info->procfile->entries[i].name,
		                    json_string(info->procfile->entries[i].command));
	json_t *j = json_pack("{s:s, s:I, s:o*}", "id", info->id, "size", (json_int_t)info->size,
	                      "process_types", pt);
	dy_log("api", "stored slug %.7s (%llu bytes, %llu unpacked) for %s", info->id,
	       (unsigned long long)info->size, (unsigned long long)info->unpacked_size, c->path);
	api_respond_json(c, 201, j);
	job_answered(c);
}

static void route_slugs(struct conn *c, struct state_app *app)
{
	if (c->method != H1_METHOD_POST) {
		method_not_allowed(c, "POST");
		return;
	}
	/* the check reads the whole slug: off the loop */
	struct dy_error *err = NULL;
	struct mgr_job *job = NULL;
	int fd = c->body_fd;
	c->body_fd = -1;
	c->state = CONN_WAITING;
	int r = mgr_slug_put_start(c->api->mgr, app->name, fd, on_slug_stored, c, &job, &err);
	wait_for(c, r, job, &err);
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

/* A release as the API shows it: the state's object and whether it has a
 * release phase (docs/api.md), which the CLI's wait follows. */
static json_t *release_json(const struct state_release *rel)
{
	json_t *j = state_release_json(rel);
	bool phase = rel->process_types && json_object_get(rel->process_types, "release");
	if (j && json_object_set_new(j, "release_phase", json_boolean(phase)) < 0) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* Makes the release of a POST /releases (a deploy of c->slug_id, or a
 * rollback to c->rollback_to) and answers. */
static void release_now(struct conn *c)
{
	struct api *a = c->api;
	struct dy_error *err = NULL;
	struct state_release *out = NULL;
	/* the app from the path again: it may be gone while the slug unpacked */
	char name[STATE_APP_NAME_MAX + 1];
	api_path_app(c, name);
	int r = c->rollback_to ? mgr_rollback(a->mgr, name, c->rollback_to, &out, &err)
	                       : mgr_deploy(a->mgr, name, c->slug_id, &out, &err);
	if (r < 0) {
		respond_mgr_error(c, &err);
		return;
	}
	dy_log("api", "%s: v%d %s (%s)", name, out->version, out->description,
	       state_release_status_str(out->status));
	dy_log_to_app(name, "api", "Release v%d created: %s (%s)", out->version, out->description,
	              state_release_status_str(out->status));
	json_t *j = release_json(out);
	struct state_app *app = NULL;
	if (mgr_app_get(a->mgr, name, &app, NULL) < 0) {
		api_respond_json(c, 201, j);
		return;
	}
	api_respond_json_saved(c, app, 201, j);
}

static void on_release_unpacked(void *arg, const struct slug_info *info, struct dy_error *err)
{
	struct conn *c = job_conn(arg);
	if (err)
		respond_job_error(c, err);
	else
		release_now(c);
	job_answered(c);
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
			api_respond_error(c, DY_E_NOT_FOUND, "release \"%.32s\" of %s not found",
			                  which, app->name);
			return;
		}
		api_respond_json(c, 200, release_json(rel));
		return;
	}
	if (c->method == H1_METHOD_GET) {
		json_t *list = json_array();
		for (size_t i = 0; list && i < app->nreleases; i++)
			json_array_append_new(list, release_json(&app->releases[i]));
		api_respond_json(c, 200, list);
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
		api_respond_error(
		    c, DY_E_INVALID,
		    "expected either {\"slug\": ID} (deploy) or {\"release\": \"vN\"} "
		    "(rollback)");
		return;
	}
	if (slug) {
		if (json_is_object(slug))
			slug = json_object_get(slug, "id");
		if (!json_is_string(slug)) {
			api_respond_error(c, DY_E_INVALID, "slug: expected a slug id string");
			return;
		}
		const char *id = json_string_value(slug);
		if (strlen(id) > STATE_SLUG_ID_LEN) {
			api_respond_error(c, DY_E_INVALID,
			                  "invalid slug id \"%.80s\": expected 64 hex digits", id);
			return;
		}
		snprintf(c->slug_id, sizeof(c->slug_id), "%s", id);
		c->rollback_to = 0;
	} else {
		int v = parse_version(rel, NULL);
		if (v == 0) {
			api_respond_error(c, DY_E_INVALID,
			                  "release: expected a version such as \"v3\" or 3");
			return;
		}
		c->rollback_to = v;
		const struct state_release *to = state_release_find(app, v);
		if (to == NULL || to->slug_id[0] == '\0') {
			release_now(c); /* mgr_rollback's errors */
			return;
		}
		snprintf(c->slug_id, sizeof(c->slug_id), "%s", to->slug_id);
	}
	/* the slug is unpacked off the loop (unless its tree is kept), then
	 * the release is made */
	struct dy_error *err = NULL;
	struct mgr_job *job = NULL;
	c->state = CONN_WAITING;
	int r = mgr_unpack_start(a->mgr, app->name, c->slug_id, on_release_unpacked, c, &job, &err);
	wait_for(c, r, job, &err);
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
				api_respond_error(c, DY_E_INVALID, "%s", u ? msg : "no memory");
				return;
			}
			n = 1;
		} else {
			json_t *ups = json_object_get(b, "updates");
			if (!json_is_array(ups)) {
				api_respond_error(
				    c, DY_E_INVALID,
				    "updates: expected a list of {type, quantity, size}");
				return;
			}
			n = json_array_size(ups);
			u = calloc(n ? n : 1, sizeof(*u));
			for (size_t i = 0; u && i < n; i++)
				if (parse_update(json_array_get(ups, i), NULL, &u[i], msg,
				                 sizeof(msg)) < 0) {
					api_respond_error(c, DY_E_INVALID, "updates[%zu]: %s", i,
					                  msg);
					return;
				}
			if (u == NULL) {
				api_respond_error(c, DY_E_INTERNAL, "no memory");
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
			dy_log_to_app(app->name, "api", "Scaled to %s@%d:%s", u[i].type,
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
	if (c->method == H1_METHOD_PATCH)
		api_respond_json_saved(c, app, 200, j);
	else
		api_respond_json(c, 200, j);
}

/* PATCH /config-vars once the current slug's tree is there. */
static void config_now(struct conn *c)
{
	struct api *a = c->api;
	char name[STATE_APP_NAME_MAX + 1];
	api_path_app(c, name);
	_cleanup_json_ json_t *b = body_object(c);
	if (b == NULL)
		return;
	struct dy_error *err = NULL;
	struct state_release *rel = NULL;
	struct state_app *app;
	if (mgr_config_update(a->mgr, name, b, &rel, &err) < 0 ||
	    mgr_app_get(a->mgr, name, &app, &err) < 0) {
		respond_mgr_error(c, &err);
		return;
	}
	if (rel) {
		dy_log("api", "%s: v%d %s", name, rel->version, rel->description);
		dy_log_to_app(name, "api", "Release v%d created: %s", rel->version,
		              rel->description);
	}
	json_t *cfg = mgr_config_vars(app);
	api_respond_json_saved(c, app, 200, cfg ? json_deep_copy(cfg) : json_object());
}

static void on_config_unpacked(void *arg, const struct slug_info *info, struct dy_error *err)
{
	struct conn *c = job_conn(arg);
	if (err)
		respond_job_error(c, err);
	else
		config_now(c);
	job_answered(c);
}

static void route_config(struct conn *c, struct state_app *app)
{
	struct api *a = c->api;
	if (c->method == H1_METHOD_PATCH) {
		/* a config release needs its slug's tree (kept, as the current
		 * release's, but for one removed by hand): made off the loop */
		const struct state_release *cur = state_app_current(app);
		if (cur == NULL || cur->slug_id[0] == '\0') {
			config_now(c);
			return;
		}
		struct dy_error *err = NULL;
		struct mgr_job *job = NULL;
		c->state = CONN_WAITING;
		int r = mgr_unpack_start(a->mgr, app->name, cur->slug_id, on_config_unpacked, c,
		                         &job, &err);
		wait_for(c, r, job, &err);
		return;
	}
	if (c->method != H1_METHOD_GET) {
		method_not_allowed(c, "GET, PATCH");
		return;
	}
	json_t *cfg = mgr_config_vars(app);
	api_respond_json(c, 200, cfg ? json_deep_copy(cfg) : json_object());
}

/* GET /apps/{app}/dynos[/{dyno}], DELETE /apps/{app}/dynos[/{dyno|type}]
 * (restart), POST /apps/{app}/dynos/{dyno}/actions/stop */
static void route_dynos(struct conn *c, struct state_app *app, const struct route *r)
{
	struct api *a = c->api;
	struct dy_error *err = NULL;
	const char *which = r->nseg >= 4 ? r->seg[3] : NULL;
	if (!mgr_has_dynos(a->mgr)) {
		api_respond_error(c, DY_E_UNSUPPORTED,
		                  "%s needs the dyno launcher, which this dynod runs without",
		                  c->path);
		return;
	}
	if (r->nseg == 6) {
		if (strcmp(r->seg[4], "actions") != 0 || strcmp(r->seg[5], "stop") != 0) {
			api_respond_error(c, DY_E_NOT_FOUND, "no such endpoint: %s", c->path);
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
		dy_log_to_app(app->name, "api", "Stopped %s", which);
		api_respond_json(c, 202, json_object());
		return;
	}
	if (r->nseg == 5) {
		api_respond_error(c, DY_E_NOT_FOUND, "no such endpoint: %s", c->path);
		return;
	}
	if (c->method == H1_METHOD_POST && which == NULL) {
		api_route_run(c, app);
		return;
	}
	if (c->method == H1_METHOD_DELETE) {
		if (mgr_dynos_restart(a->mgr, app->name, which, &err) < 0) {
			respond_mgr_error(c, &err);
			return;
		}
		dy_log("api", "%s: restarted %s", app->name, which ? which : "all dynos");
		dy_log_to_app(app->name, "api", "Restarted %s", which ? which : "all dynos");
		api_respond_json(c, 202, json_object());
		return;
	}
	if (c->method != H1_METHOD_GET) {
		method_not_allowed(c, which ? "GET, DELETE" : "GET, POST, DELETE");
		return;
	}
	json_t *j = mgr_dynos_json(a->mgr, app->name, which, &err);
	if (j == NULL) {
		respond_mgr_error(c, &err);
		return;
	}
	api_respond_json(c, 200, j);
}

/* GET /apps/{app}/log-stream: the socket goes to log-stream.c. */
static void route_log_stream(struct conn *c, struct state_app *app)
{
	struct api *a = c->api;
	if (a->logs == NULL || a->streams == NULL) {
		api_respond_error(c, DY_E_UNSUPPORTED, "%s is not implemented by this dynod",
		                  c->path);
		return;
	}
	if (c->method != H1_METHOD_GET) {
		method_not_allowed(c, "GET");
		return;
	}
	const char *q = strchr(c->path, '?');
	struct lstream_params p;
	struct dy_error *err = NULL;
	if (lstream_parse_query(q ? q + 1 : NULL, &p, &err) < 0) {
		respond_mgr_error(c, &err);
		return;
	}
	/* the socket is copied first: a failure after it still answers here */
	int fd = fcntl(c->conn.io.fd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0) {
		api_respond_error(c, DY_E_INTERNAL, "no file descriptor for the log stream");
		return;
	}
	if (lstream_start(a->streams, fd, app->name, &p, c->head_only, &err) < 0) {
		close(fd);
		respond_mgr_error(c, &err);
		return;
	}
	/* the stream owns the copy now; the API forgets the connection */
	api_conn_handed_off(c);
}

/* GET /status: what this dynod holds and what its log intake dropped
 * (docs/api.md, "Status of this dynod"). */
static void route_status(struct conn *c)
{
	struct api *a = c->api;
	if (c->method != H1_METHOD_GET) {
		method_not_allowed(c, "GET");
		return;
	}
	json_t *logs = json_null();
	if (a->logs) {
		struct lgi_stats st = lgi_stats(a->logs);
		logs = json_pack("{s:I, s:I, s:I, s:I}", "lines", (json_int_t)st.lines, "bad",
		                 (json_int_t)st.bad, "unknown_app", (json_int_t)st.unknown, "lost",
		                 (json_int_t)st.lost);
	}
	api_respond_json(c, 200,
	                 json_pack("{s:s, s:I, s:o}", "version", DYNO_VERSION, "apps",
	                           (json_int_t)mgr_state(a->mgr)->napps, "logs", logs));
}

void api_dispatch(struct conn *c)
{
	struct api *a = c->api;
	_cleanup_free_ char *path = strdup(c->path);
	struct route r;
	if (path == NULL) {
		api_respond_error(c, DY_E_INTERNAL, "no memory");
		return;
	}
	if (api_refuse_on_full_disk(c))
		return;
	bool split = split_path(path, &r);
	if (split && r.nseg == 1 && strcmp(r.seg[0], "status") == 0) {
		route_status(c);
		return;
	}
	if (!split || r.nseg == 0 || strcmp(r.seg[0], "apps") != 0) {
		api_respond_error(c, DY_E_NOT_FOUND, "no such endpoint: %s", c->path);
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
	else if (strcmp(sub, "log-stream") == 0 && r.nseg == 3)
		route_log_stream(c, app);
	else if ((strcmp(sub, "builds") == 0 && r.nseg <= 5) ||
	         (strcmp(sub, "buildpack-installations") == 0 && r.nseg == 3) ||
	         (strcmp(sub, "build-cache") == 0 && r.nseg == 3))
		api_route_builds(c, app, r.nseg > 3 ? r.seg[3] : NULL, r.nseg > 4 ? r.seg[4] : NULL);
	else if (strcmp(sub, "domains") == 0 && r.nseg <= 4)
		route_domains(c, app, r.nseg == 4 ? r.seg[3] : NULL);
	else if (strcmp(sub, "addons") == 0)
		api_route_addons(c, app, r.seg + 3, r.nseg - 3);
	else if (strcmp(sub, "dynos") == 0 || strcmp(sub, "log-stream") == 0)
		api_respond_error(c, DY_E_UNSUPPORTED, "%s is not implemented by this dynod",
		                  c->path);
	else
		api_respond_error(c, DY_E_NOT_FOUND, "no such endpoint: %s", c->path);
}

void api_respond_dy_error(struct conn *c, struct dy_error **err)
{
	respond_mgr_error(c, err);
}
