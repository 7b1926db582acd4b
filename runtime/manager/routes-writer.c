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

/* A JSON string: quotes, backslashes and control characters escaped (the
 * names are checked ASCII; anything else passes as it is). */
static void put_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static void app_text(FILE *f, const char *domain, const struct rw_app *app)
{
	fputs("{\"name\":", f);
	put_str(f, app->name);
	fputs(",\"hosts\":[\"", f);
	/* <app>.<domain>: both checked names, nothing to escape */
	fprintf(f, "%s.%s\"", app->name, domain);
	for (size_t i = 0; i < app->nhosts; i++) {
		fputc(',', f);
		put_str(f, app->hosts[i]);
	}
	bool crashed = false, up = false;
	for (size_t i = 0; i < app->ndynos; i++) {
		const struct rw_dyno *d = &app->dynos[i];
		if (d->state == LC_CRASHED && !d->stopping)
			crashed = true;
		/* a draining dyno is still a backend for the requests it has,
		 * but does not make the app up */
		if (d->state == LC_UP && d->running && !d->stopping)
			up = true;
	}
	const char *state = app->maintenance ? "maintenance"
	                    : !app->web      ? "no-web"
	                    : (!up && crashed) ? "crashed"
	                                       : "up";
	fprintf(f, "],\"state\":\"%s\",\"keepalive\":true,\"health_path\":null,\"backends\":[",
	        state);
	bool first = true;
	for (size_t i = 0; i < app->ndynos; i++) {
		const struct rw_dyno *d = &app->dynos[i];
		if (d->state != LC_UP || !d->running)
			continue;
		char addr[RW_ADDR_MAX];
		rw_addr_text(d->addr, d->port, addr);
		fputs(first ? "{\"id\":" : ",{\"id\":", f);
		first = false;
		put_str(f, d->id ? d->id : d->name);
		fputs(",\"dyno\":", f);
		put_str(f, d->name);
		fprintf(f, ",\"addr\":\"%s\",\"draining\":%s}", addr, d->stopping ? "true" : "false");
	}
	fputs("]}", f);
}

/* The document as text, one line ended by a newline, written straight
 * (jansson's objects cost ~7 ms a write at 1000 backends, on the loop);
 * NULL when out of memory. */
static char *render_text(uint64_t version, const char *domain, const struct rw_app *apps,
                         size_t napps, size_t *ret_len)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return NULL;
	fprintf(f, "{\"version\":%llu,\"apps\":[", (unsigned long long)version);
	for (size_t i = 0; i < napps; i++) {
		if (i)
			fputc(',', f);
		app_text(f, domain, &apps[i]);
	}
	fputs("]}\n", f);
	if (ferror(f) | fclose(f)) {
		free(buf);
		return NULL;
	}
	*ret_len = len;
	return buf;
}

json_t *rw_render(uint64_t version, const char *domain, const struct rw_app *apps, size_t napps)
{
	size_t len = 0;
	_cleanup_free_ char *text = render_text(version, domain, apps, napps, &len);
	return text ? json_loadb(text, len, 0, NULL) : NULL;
}

int rw_write(struct rw_writer *w, const struct rw_app *apps, size_t napps, struct dy_error **err)
{
	w->version++;
	size_t len = 0;
	_cleanup_free_ char *text = render_text(w->version, w->domain, apps, napps, &len);
	if (!text)
		return dy_error_errno(err, ENOMEM, "%s", w->path);
	/* not fsynced: dynod writes it anew from its state at start-up */
	return dy_write_file_replace_as(w->path, text, len, RW_FILE_MODE, w->gid, err);
}
