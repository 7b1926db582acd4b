/* The builds' endpoints (docs/api.md, "Builds"): the work is builds.c's. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "runtime/manager/api-internal.h"
#include "runtime/manager/builds.h"

static void answer(struct conn *c, int status, json_t *j, struct dy_error **err)
{
	if (j)
		api_respond_json(c, status, j);
	else
		api_respond_dy_error(c, err);
}

/* POST /apps/{app}/builds[?commit=SHA], the body a tar of the source
 * under app/: 201 and the build, pending; its output streams from
 * .../builds/ID/output. */
static void create(struct conn *c, struct state_app *app)
{
	const char *q = strchr(c->path, '?');
	char commit[41] = "";
	if (q && strncmp(q + 1, "commit=", 7) == 0) {
		const char *sha = q + 8;
		size_t n = strspn(sha, "0123456789abcdef");
		if (n < 7 || n > 40 || sha[n] != '\0') {
			api_respond_error(c, DY_E_INVALID, "commit: expected 7 to 40 hex digits");
			return;
		}
		snprintf(commit, sizeof(commit), "%.*s", (int)n, sha);
	} else if (q && q[1]) {
		api_respond_error(c, DY_E_INVALID, "unknown query \"%.64s\" (commit=SHA)", q + 1);
		return;
	}
	if (c->body_fd < 0) {
		api_respond_error(c, DY_E_INVALID, "expected the source as the body (a tar of app/)");
		return;
	}
	struct dy_error *err = NULL;
	int fd = c->body_fd;
	c->body_fd = -1;
	json_t *j = builds_start(c->api->builds, app->name, fd, commit, &err);
	answer(c, 201, j, &err);
}

static void output(struct conn *c, struct state_app *app, const char *id)
{
	struct dy_error *err = NULL;
	int fd = fcntl(c->conn.io.fd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0) {
		api_respond_error(c, DY_E_INTERNAL, "no file descriptor for the output stream");
		return;
	}
	if (builds_output(c->api->builds, app->name, id, fd, c->head_only, &err) < 0) {
		close(fd);
		api_respond_dy_error(c, &err);
		return;
	}
	api_conn_handed_off(c);
}

void api_route_builds(struct conn *c, struct state_app *app, const char *id, const char *sub)
{
	struct builds *b = c->api->builds;
	struct dy_error *err = NULL;
	const char *rest = c->path + strlen("/apps/") + strlen(app->name);
	if (strncmp(rest, "/buildpack-installations", 24) == 0) {
		if (c->method == H1_METHOD_GET) {
			json_t *j = builds_buildpacks_get(b, app->name, &err);
			answer(c, 200, j, &err);
		} else if (c->method == H1_METHOD_PUT) {
			_cleanup_json_ json_t *body = api_body_object(c);
			if (!body)
				return;
			json_t *j = builds_buildpacks_put(b, app->name, body, &err);
			answer(c, 200, j, &err);
		} else {
			api_method_not_allowed(c, "GET, PUT");
		}
		return;
	}
	if (strncmp(rest, "/build-cache", 12) == 0) {
		if (c->method != H1_METHOD_DELETE) {
			api_method_not_allowed(c, "DELETE");
			return;
		}
		if (builds_cache_purge(b, app->name, &err) < 0)
			api_respond_dy_error(c, &err);
		else
			api_respond_json(c, 200, json_object());
		return;
	}
	if (!id) {
		if (c->method == H1_METHOD_POST) {
			create(c, app);
		} else if (c->method == H1_METHOD_GET) {
			json_t *j = builds_list(b, app->name, &err);
			answer(c, 200, j, &err);
		} else {
			api_method_not_allowed(c, "GET, POST");
		}
		return;
	}
	if (c->method != H1_METHOD_GET) {
		api_method_not_allowed(c, "GET");
		return;
	}
	if (!sub) {
		json_t *j = builds_get(b, app->name, id, &err);
		answer(c, 200, j, &err);
	} else if (strcmp(sub, "output") == 0) {
		output(c, app, id);
	} else {
		api_respond_error(c, DY_E_NOT_FOUND, "no such endpoint: %s", c->path);
	}
}
