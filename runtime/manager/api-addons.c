/* /apps/{app}/addons[/{name}[/info]] (docs/api.md, "Add-ons"): the
 * PostgreSQL add-on's endpoints, answered once its operation (on the work
 * pool: addon-pg.h) is done. */
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "runtime/manager/addon-pg.h"
#include "runtime/manager/api-internal.h"
#include "runtime/manager/manager.h"

/* The operation's report: the answer, then the next request. */
static void answered(struct conn *c, int status, bool release, json_t *j, struct dy_error *err)
{
	c->pg_op = NULL;
	if (err) {
		if (dy_error_kind_of(err) == DY_E_INTERNAL)
			api_respond_error(c, DY_E_INTERNAL, "%s %s failed: %s",
			                  h1_method_str(c->method), c->path, dy_error_msg(err));
		else
			api_respond_error(c, dy_error_kind_of(err), "%s", dy_error_msg(err));
		dy_error_free(&err);
		api_request_done(c);
		return;
	}
	char name[STATE_APP_NAME_MAX + 1];
	api_path_app(c, name);
	struct state_app *app = NULL;
	struct dy_error *e = NULL;
	if (release && mgr_app_get(c->api->mgr, name, &app, &e) == 0) {
		/* a release was made: answered once it is on disk */
		api_respond_json_saved(c, app, status, j);
	} else {
		dy_error_free(&e);
		api_respond_json(c, status, j);
	}
	api_request_done(c);
}

static void on_created(void *arg, json_t *j, struct dy_error *err)
{
	answered(arg, 201, true, j, err);
}

static void on_done(void *arg, json_t *j, struct dy_error *err)
{
	struct conn *c = arg;
	/* a DELETE made a release too */
	answered(c, 200, c->method == H1_METHOD_DELETE, j, err);
}

static void started(struct conn *c, int r, struct pg_op *op, struct dy_error **err)
{
	if (r < 0) {
		c->state = CONN_HEAD;
		api_respond_error(c, dy_error_kind_of(*err), "%s", dy_error_msg(*err));
		dy_error_free(err);
		return;
	}
	c->pg_op = op;
}

/* /apps/{app}/addons/{name}/backups[/{id}[/actions/restore]] */
static void route_backups(struct conn *c, struct state_app *app, const char *name,
                          const char *const *seg, size_t n)
{
	struct api *a = c->api;
	struct dy_error *err = NULL;
	struct pg_op *op = NULL;
	if (n == 0 && c->method == H1_METHOD_GET) {
		json_t *j = pg_backups_json(a->pg, app->name, name, &err);
		if (!j) {
			api_respond_error(c, dy_error_kind_of(err), "%s", dy_error_msg(err));
			dy_error_free(&err);
			return;
		}
		api_respond_json(c, 200, j);
	} else if (n == 0 && c->method == H1_METHOD_POST) {
		c->state = CONN_WAITING;
		int r = pg_capture(a->pg, app->name, name, on_created, c, &op, &err);
		started(c, r, op, &err);
	} else if (n == 0) {
		api_method_not_allowed(c, "GET, POST");
	} else if (n == 1 && c->method == H1_METHOD_GET && !c->head_only) {
		/* the dump's bytes, written off the loop on a copy of the
		 * socket, which the API lets go of */
		int fd = fcntl(c->conn.io.fd, F_DUPFD_CLOEXEC, 3);
		if (fd < 0) {
			api_respond_error(c, DY_E_INTERNAL, "no file descriptor for the download");
			return;
		}
		if (pg_download(a->pg, app->name, name, seg[0], fd, &err) < 0) {
			close(fd);
			api_respond_error(c, dy_error_kind_of(err), "%s", dy_error_msg(err));
			dy_error_free(&err);
			return;
		}
		api_conn_handed_off(c);
	} else if (n == 1) {
		api_method_not_allowed(c, "GET");
	} else if (n == 3 && strcmp(seg[1], "actions") == 0 && strcmp(seg[2], "restore") == 0) {
		if (c->method != H1_METHOD_POST) {
			api_method_not_allowed(c, "POST");
			return;
		}
		c->state = CONN_WAITING;
		int r = pg_restore(a->pg, app->name, name, seg[0], on_done, c, &op, &err);
		started(c, r, op, &err);
	} else {
		api_respond_error(c, DY_E_NOT_FOUND, "no such endpoint: %s", c->path);
	}
}

void api_route_addons(struct conn *c, struct state_app *app, const char *const *seg, size_t n)
{
	struct api *a = c->api;
	struct dy_error *err = NULL;
	const char *name = n >= 1 ? seg[0] : NULL, *action = n >= 2 ? seg[1] : NULL;
	if (a->pg == NULL) {
		api_respond_error(c, DY_E_UNSUPPORTED,
		                  "%s needs the dyno launcher, which this dynod runs without",
		                  c->path);
		return;
	}
	struct pg_op *op = NULL;
	if (action && strcmp(action, "backups") == 0) {
		route_backups(c, app, name, seg + 2, n - 2);
		return;
	}
	if (action) {
		if (strcmp(action, "info") != 0 || n != 2) {
			api_respond_error(c, DY_E_NOT_FOUND, "no such endpoint: %s", c->path);
			return;
		}
		if (c->method != H1_METHOD_GET) {
			api_method_not_allowed(c, "GET");
			return;
		}
		c->state = CONN_WAITING;
		int r = pg_info(a->pg, app->name, name, on_done, c, &op, &err);
		started(c, r, op, &err);
		return;
	}
	if (c->method == H1_METHOD_GET) {
		json_t *j = pg_addons_json(a->pg, app->name, name, &err);
		if (!j) {
			api_respond_error(c, dy_error_kind_of(err), "%s", dy_error_msg(err));
			dy_error_free(&err);
			return;
		}
		api_respond_json(c, 200, j);
		return;
	}
	if (name == NULL && c->method == H1_METHOD_POST) {
		_cleanup_json_ json_t *b = api_body_object(c);
		if (b == NULL)
			return;
		json_t *service = json_object_get(b, "service"), *as = json_object_get(b, "as");
		if (!json_is_string(service) || (as && !json_is_null(as) && !json_is_string(as))) {
			api_respond_error(c, DY_E_INVALID,
			                  "expected {\"service\": \"postgresql\"[, \"as\": NAME]}");
			return;
		}
		c->state = CONN_WAITING;
		int r = pg_create(a->pg, app->name, json_string_value(service),
		                  json_is_string(as) ? json_string_value(as) : NULL, on_created, c,
		                  &op, &err);
		started(c, r, op, &err);
		return;
	}
	if (name && c->method == H1_METHOD_DELETE) {
		c->state = CONN_WAITING;
		int r = pg_destroy(a->pg, app->name, name, on_done, c, &op, &err);
		started(c, r, op, &err);
		return;
	}
	api_method_not_allowed(c, name ? "GET, DELETE" : "GET, POST");
}
