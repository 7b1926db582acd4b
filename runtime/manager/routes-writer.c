/* The writer of routes.json (routes-writer.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "common/macro.h"
#include "runtime/manager/routes-writer.h"

struct rw_writer {
	char *path; /* <dir>/routes.json */
	char *domain;
	uint64_t version;
	gid_t gid;
};

int rw_new(const char *dir, const char *domain, gid_t gid, struct rw_writer **ret,
           struct dy_error **err)
{
	struct rw_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return dy_error_errno(err, ENOMEM, "routes.json");
	w->gid = gid;
	w->domain = strdup(domain);
	if (!w->domain || asprintf(&w->path, "%s/routes.json", dir) < 0) {
		w->path = NULL;
		rw_free(w);
		return dy_error_errno(err, ENOMEM, "routes.json");
	}
	/* versions keep increasing across restarts: the router ignores a
	 * table whose version is not above the one it has */
	json_t *old = json_load_file(w->path, 0, NULL);
	json_int_t v = json_integer_value(json_object_get(old, "version"));
	w->version = (uint64_t)MAX(v, (json_int_t)0);
	json_decref(old);
	*ret = w;
	return 0;
}

void rw_free(struct rw_writer *w)
{
	if (!w)
		return;
	free(w->path);
	free(w->domain);
	free(w);
}

uint64_t rw_version(const struct rw_writer *w)
{
	return w->version;
}

void rw_addr_text(struct in_addr addr, uint16_t port, char buf[RW_ADDR_MAX])
{
	char ip[INET_ADDRSTRLEN] = "";
	inet_ntop(AF_INET, &addr, ip, sizeof(ip));
	snprintf(buf, RW_ADDR_MAX, "%s:%u", ip, (unsigned)port);
}

static json_t *app_json(const char *domain, const struct rw_app *app)
{
	json_t *backends = json_array();
	if (!backends)
		return NULL;
	bool crashed = false, up = false;
	for (size_t i = 0; i < app->ndynos; i++) {
		const struct rw_dyno *d = &app->dynos[i];
		if (d->state == LC_CRASHED && !d->stopping)
			crashed = true;
		if (d->state != LC_UP || !d->running)
			continue;
		/* a draining dyno is still a backend for the requests it has,
		 * but does not make the app up */
		if (!d->stopping)
			up = true;
		char addr[RW_ADDR_MAX];
		rw_addr_text(d->addr, d->port, addr);
		json_array_append_new(backends,
		                      json_pack("{s:s, s:s, s:s, s:b}", "id", d->id ? d->id : d->name, "dyno", d->name,
		                                "addr", addr, "draining", d->stopping));
	}
	const char *state = app->maintenance ? "maintenance"
	                    : !app->web      ? "no-web"
	                    : (!up && crashed) ? "crashed"
	                                       : "up";
	_cleanup_free_ char *host = NULL;
	json_t *hosts = json_array();
	if (!hosts || asprintf(&host, "%s.%s", app->name, domain) < 0) {
		host = NULL;
		json_decref(hosts);
		json_decref(backends);
		return NULL;
	}
	json_array_append_new(hosts, json_string(host));
	for (size_t i = 0; i < app->nhosts; i++)
		json_array_append_new(hosts, json_string(app->hosts[i]));
	return json_pack("{s:s, s:o, s:s, s:b, s:n, s:o}", "name", app->name, "hosts", hosts,
	                 "state", state, "keepalive", true, "health_path", "backends", backends);
}

json_t *rw_render(uint64_t version, const char *domain, const struct rw_app *apps, size_t napps)
{
	json_t *list = json_array();
	if (!list)
		return NULL;
	for (size_t i = 0; i < napps; i++) {
		json_t *a = app_json(domain, &apps[i]);
		if (!a || json_array_append_new(list, a) < 0) {
			json_decref(list);
			return NULL;
		}
	}
	return json_pack("{s:I, s:o}", "version", (json_int_t)version, "apps", list);
}

int rw_write(struct rw_writer *w, const struct rw_app *apps, size_t napps, struct dy_error **err)
{
	w->version++;
	json_t *j = rw_render(w->version, w->domain, apps, napps);
	if (!j)
		return dy_error_errno(err, ENOMEM, "%s", w->path);
	_cleanup_free_ char *text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!text)
		return dy_error_errno(err, ENOMEM, "%s", w->path);
	/* one line, as a text file ends */
	size_t len = strlen(text);
	char *nl = realloc(text, len + 2);
	if (!nl)
		return dy_error_errno(err, ENOMEM, "%s", w->path);
	text = nl;
	memcpy(text + len, "\n", 2);
	/* not fsynced: dynod writes it anew from its state at start-up */
	return dy_write_file_replace_as(w->path, text, len + 1, RW_FILE_MODE, w->gid, err);
}
