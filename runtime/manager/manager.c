#include "runtime/manager/manager.h"
#include "runtime/manager/manager-internal.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <assert.h>
#include <ctype.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "slugs/slug-disk.h"
#include "slugs/slug-store.h"

int mgr_new(const struct config *cfg, struct state *st, const struct manager_ops *ops,
            struct mgr **ret, struct dy_error **err)
{
	struct mgr *m = calloc(1, sizeof(*m));
	if (m == NULL)
		return dy_error_errno(err, ENOMEM, "manager");
	m->cfg = cfg;
	m->st = st;
	m->ops = ops;
	*ret = m;
	return 0;
}

void mgr_free(struct mgr *m)
{
	if (m == NULL)
		return;
	/* the pool is freed first: every job has run its done */
	assert(m->jobs == NULL);
	free(m);
}

void mgr_set_writer(struct mgr *m, struct state_writer *w)
{
	m->writer = w;
}

/* Saves app after a change: queued for the writer's thread, or written
 * at once without one. */
static int save(struct mgr *m, const struct state_app *app, struct dy_error **err)
{
	if (m->writer)
		return state_writer_save(m->writer, app, err);
	return state_app_save(m->st, app, err);
}

bool mgr_wait_saved(struct mgr *m, const struct state_app *app, struct state_wait *wait,
                    state_wait_fn fn)
{
	return m->writer && state_writer_wait(m->writer, app, wait, fn);
}

const struct state *mgr_state(const struct mgr *m)
{
	return m->st;
}

bool mgr_has_dynos(const struct mgr *m)
{
	return m->ops && m->ops->dynos_json;
}

static int no_dynos(struct dy_error **err)
{
	return dy_error_as(err, DY_E_CONFLICT, "this dynod runs no dynos (no launcher)");
}

json_t *mgr_dynos_json(struct mgr *m, const char *name, const char *dyno, struct dy_error **err)
{
	struct state_app *app;
	if (mgr_app_get(m, name, &app, err) < 0)
		return NULL;
	if (!mgr_has_dynos(m)) {
		no_dynos(err);
		return NULL;
	}
	json_t *j = m->ops->dynos_json(m->ops->data, app, dyno, err);
	if (!j && err && !*err)
		dy_error_errno(err, ENOMEM, "dynos of %s", name);
	return j;
}

int mgr_dynos_restart(struct mgr *m, const char *name, const char *which, struct dy_error **err)
{
	struct state_app *app;
	if (mgr_app_get(m, name, &app, err) < 0)
		return -1;
	if (!m->ops || !m->ops->restart)
		return no_dynos(err);
	return m->ops->restart(m->ops->data, app, which, err);
}

json_t *mgr_dyno_run(struct mgr *m, const char *name, const struct mgr_run *run,
                     struct dy_error **err)
{
	struct state_app *app = NULL;
	if (mgr_app_get(m, name, &app, err) < 0)
		return NULL;
	if (!m->ops || !m->ops->run) {
		no_dynos(err);
		return NULL;
	}
	return m->ops->run(m->ops->data, app, run, err);
}

int mgr_dyno_stop(struct mgr *m, const char *name, const char *dyno, struct dy_error **err)
{
	struct state_app *app;
	if (mgr_app_get(m, name, &app, err) < 0)
		return -1;
	if (!m->ops || !m->ops->stop_dyno)
		return no_dynos(err);
	return m->ops->stop_dyno(m->ops->data, app, dyno, err);
}

unsigned mgr_router_port(const struct mgr *m)
{
	const struct config_listen *l = &m->cfg->router.listen;
	if (l->n == 0)
		return 8080;
	const struct sockaddr *sa = &l->addr[0].sa.sa;
	if (sa->sa_family == AF_INET6)
		return ntohs(l->addr[0].sa.in6.sin6_port);
	return ntohs(l->addr[0].sa.in.sin_port);
}

json_t *mgr_app_json(const struct mgr *m, const struct state_app *app)
{
	json_t *j = state_app_json(app, m->cfg->domain, mgr_router_port(m));
	/* its git remote (docs/deploy.md): over ssh when git.ssh_host is
	 * set, else the bare repository's path on this host */
	_cleanup_free_ char *url = NULL;
	int n = m->cfg->git.ssh_host
	            ? asprintf(&url, "ssh://dyno@%s/%s.git", m->cfg->git.ssh_host, app->name)
	            : asprintf(&url, "%s/" MGR_REPOS_DIR "/%s.git", m->st->dir, app->name);
	if (n < 0 || !j || json_object_set_new(j, "git_url", json_string(url)) < 0) {
		json_decref(j);
		return NULL;
	}
	return j;
}

int mgr_app_get(struct mgr *m, const char *name, struct state_app **ret, struct dy_error **err)
{
	struct state_app *app = state_app_find(m->st, name);
	if (app == NULL)
		return dy_error_as(err, DY_E_NOT_FOUND, "app \"%.64s\" not found", name);
	*ret = app;
	return 0;
}

int mgr_app_create(struct mgr *m, const char *name, struct state_app **ret, struct dy_error **err)
{
	if (!state_app_name_valid(name))
		return dy_error_as(
		    err, DY_E_INVALID,
		    "invalid app name \"%.64s\": it must match ^[a-z][a-z0-9-]{1,28}[a-z0-9]$",
		    name);
	if (state_app_find(m->st, name))
		return dy_error_as(err, DY_E_CONFLICT, "app \"%s\" already exists", name);
	/* the lowest uid of the range no app holds */
	uint32_t uid = 0;
	bool found = false;
	for (uint64_t u = m->cfg->uids.first;
	     !found && u < (uint64_t)m->cfg->uids.first + m->cfg->uids.count; u++) {
		found = true;
		for (size_t i = 0; i < m->st->napps; i++)
			if (m->st->apps[i]->uid == u) {
				found = false;
				break;
			}
		if (found)
			uid = (uint32_t)u;
	}
	if (!found)
		return dy_error_as(err, DY_E_CONFLICT, "no free uid left in uids (%u from %u)",
		                   m->cfg->uids.count, m->cfg->uids.first);
	char now[STATE_TIME_LEN + 1];
	state_now(now);
	struct state_app *app;
	if (state_app_add(m->st, name, uid, now, &app, err) < 0)
		return -1;
	if (state_app_save(m->st, app, err) < 0) {
		struct dy_error *e2 = NULL;
		state_app_remove(m->st, app, &e2);
		dy_error_free(&e2);
		return dy_error_prefix(err, "create app %s", name);
	}
	*ret = app;
	return 0;
}

/* The unpacked slugs of a destroyed app, once none of its dynos runs. */
static void remove_grave(void *arg)
{
	char *grave = arg;
	int r = state_grave_remove(grave);
	if (r < 0)
		dy_log("api", "remove %s: %s", grave, strerror(-r));
	free(grave);
}

int mgr_app_destroy(struct mgr *m, const char *name, struct dy_error **err)
{
	struct state_app *app;
	if (mgr_app_get(m, name, &app, err) < 0)
		return -1;
	char copy[STATE_APP_NAME_MAX + 1];
	snprintf(copy, sizeof(copy), "%s", app->name);
	char *grave = NULL;
	/* no queued or late write may bring its file back */
	if (m->writer)
		state_writer_forget(m->writer, app);
	if (state_app_detach(m->st, app, &grave, err) < 0)
		return dy_error_prefix(err, "destroy app %s", name);
	/* its git repository goes with it, in its grave */
	_cleanup_free_ char *repo = NULL, *buried = NULL;
	if (asprintf(&repo, "%s/" MGR_REPOS_DIR "/%s.git", m->st->dir, copy) >= 0 &&
	    asprintf(&buried, "%s/repo.git", grave) >= 0 && rename(repo, buried) < 0 &&
	    errno != ENOENT)
		dy_log("api", "%s: its repository stays: %s", copy, strerror(errno));
	/* so do its builds and its build cache (docs/builds.md) */
	static const char *const more[][2] = {{"builds", "builds"}, {"cache", "build-cache"}};
	for (size_t i = 0; i < 2; i++) {
		_cleanup_free_ char *from = NULL, *to = NULL;
		if (asprintf(&from, "%s/%s/%s", m->st->dir, more[i][0], copy) >= 0 &&
		    asprintf(&to, "%s/%s", grave, more[i][1]) >= 0 && rename(from, to) < 0 &&
		    errno != ENOENT)
			dy_log("api", "%s: its %s stay: %s", copy, more[i][1], strerror(errno));
	}
	if (m->ops && m->ops->stop_app)
		m->ops->stop_app(m->ops->data, copy, remove_grave, grave);
	else
		remove_grave(grave);
	return 0;
}

/* Hands pending release rel to the launcher's rollout; one that cannot
 * start fails the release (saved). */
static void roll_out(struct mgr *m, struct state_app *app, struct state_release *rel)
{
	struct dy_error *e = NULL;
	if (m->ops->roll_out(m->ops->data, app, rel, &e) == 0)
		return;
	dy_log("api", "%s: rollout of v%d: %s", app->name, rel->version, dy_error_msg(e));
	rel->status = STATE_RELEASE_FAILED;
	if (asprintf(&rel->failure, "rollout could not start: %s", dy_error_msg(e)) < 0)
		rel->failure = NULL;
	dy_error_free(&e);
	if (save(m, app, &e) < 0) {
		dy_log("api", "%s: v%d: %s", app->name, rel->version, dy_error_msg(e));
		dy_error_free(&e);
	}
}

/* The newest release after version that has not failed, or NULL. */
static const struct state_release *newer_live(const struct state_app *app, int version)
{
	const struct state_release *n = state_app_newest(app);
	return n && n->version > version ? n : NULL;
}

/* Appends a release for app and hands it to the launcher: a release phase
 * first when it has one, then the rollout (docs/design.md, "Releases
 * without downtime"); pending until the launcher reports its end. Without
 * a launcher it succeeds at once. Saves the app. */
static int release(struct mgr *m, struct state_app *app, const char *desc, const char *slug_id,
                   json_t *config, json_t *process_types, struct state_release **ret,
                   struct dy_error **err)
{
	char now[STATE_TIME_LEN + 1];
	state_now(now);
	bool phase = process_types && json_object_get(process_types, "release");
	bool rolls = !phase && m->ops && m->ops->roll_out;
	struct state_release *rel;
	if (state_release_append(app, desc,
	                         phase || rolls ? STATE_RELEASE_PENDING : STATE_RELEASE_SUCCEEDED,
	                         slug_id, config, process_types, now, &rel, err) < 0)
		return -1;
	if (phase) {
		/* prepare_slug refused this without ops->run_release */
		/* a phase that cannot start fails its release, which is still
		 * recorded: the caller gets the release, not an error */
		struct dy_error *e = NULL;
		if (m->ops->run_release(m->ops->data, app, rel, &e) < 0) {
			rel->status = STATE_RELEASE_FAILED;
			/* best effort: without memory the release fails unexplained */
			if (asprintf(&rel->failure, "release command could not start: %s",
			             dy_error_msg(e)) < 0)
				rel->failure = NULL;
			dy_log("api", "%s: release phase of v%d: %s", app->name, rel->version,
			       dy_error_msg(e));
			dy_error_free(&e);
		}
	}
	int r = save(m, app, err);
	if (r < 0) {
		/* memory stays what the disk holds */
		state_release_pop(app);
		return r;
	}
	if (rolls)
		roll_out(m, app, rel);
	else if (rel->status == STATE_RELEASE_SUCCEEDED && m->ops && m->ops->apply_formation)
		m->ops->apply_formation(m->ops->data, app, rel, NULL);
	*ret = rel;
	mgr_collect_slugs(m, app);
	return 0;
}

/* A new object holding the current config vars (never NULL unless
 * ENOMEM), for a new release to change. Shallow: the values (immutable
 * strings) stay shared with the current snapshot, so a change of one var
 * does not copy the others. */
static json_t *config_copy(const struct state_app *app)
{
	json_t *cur = mgr_config_vars(app);
	return cur ? json_copy(cur) : json_object();
}

json_t *mgr_config_vars(const struct state_app *app)
{
	const struct state_release *cur = state_app_newest(app);
	return cur ? cur->config : NULL;
}

int mgr_deploy(struct mgr *m, const char *name, const char *slug_id, struct state_release **ret,
               struct dy_error **err)
{
	return mgr_deploy_as(m, name, slug_id, NULL, ret, err);
}

int mgr_deploy_as(struct mgr *m, const char *name, const char *slug_id, const char *desc_in,
                  struct state_release **ret, struct dy_error **err)
{
	struct state_app *app;
	if (mgr_app_get(m, name, &app, err) < 0)
		return -1;
	if (mgr_check_slug_id(m, slug_id, err) < 0)
		return -1;
	struct slug_limits l;
	mgr_slug_limits(m, &l);
	struct slug_info info = {0};
	/* the upload's check, kept beside the slug: the slug is not read
	 * again (but for one stored before meta files, without a pool) */
	if (slug_store_meta(m->st->dir, slug_id, &l, &info, err) < 0)
		return -1;
	_cleanup_json_ json_t *pt = json_object();
	for (size_t i = 0; pt && i < info.procfile->n; i++)
		json_object_set_new(pt, info.procfile->entries[i].name,
		                    json_string(info.procfile->entries[i].command));
	slug_info_clear(&info);
	if (pt == NULL)
		return dy_error_errno(err, ENOMEM, "deploy");
	if (mgr_prepare_slug(m, app, slug_id, pt, err) < 0)
		return -1;
	bool first = true;
	for (size_t i = 0; i < app->nreleases; i++)
		if (app->releases[i].slug_id[0])
			first = false;
	bool scale_web = false;
	if (first && json_object_get(pt, "web") && state_formation_find(app, "web") == NULL) {
		struct state_formation *f;
		if (state_formation_get(app, "web", m->cfg->dyno.default_size, &f, err) < 0)
			return -1;
		f->quantity = 1;
		scale_web = true;
	}
	char desc[64];
	snprintf(desc, sizeof(desc), "%s", desc_in ? desc_in : "");
	if (!desc_in)
		snprintf(desc, sizeof(desc), "Deploy %.7s", slug_id);
	json_t *cfg = config_copy(app);
	int r = cfg ? release(m, app, desc, slug_id, cfg, TAKE_PTR(pt), ret, err)
	            : dy_error_errno(err, ENOMEM, "deploy");
	if (r < 0 && scale_web)
		app->nformation--; /* the web entry added above is the last */
	return r;
}

/* Pending rel ends: succeeded, or failed for failure (may be NULL);
 * saved, or as it was on an error. */
static int end_release(struct mgr *m, struct state_app *app, struct state_release *rel,
                       bool succeeded, const char *failure, struct dy_error **err)
{
	if (!succeeded && failure && !(rel->failure = strdup(failure)))
		return dy_error_errno(err, ENOMEM, "release v%d of %s", rel->version, app->name);
	rel->status = succeeded ? STATE_RELEASE_SUCCEEDED : STATE_RELEASE_FAILED;
	if (save(m, app, err) < 0) {
		rel->status = STATE_RELEASE_PENDING;
		free(rel->failure);
		rel->failure = NULL;
		return -1;
	}
	dy_log_app(app->name, "api", "Release v%d %s%s%s", rel->version,
	           succeeded ? "succeeded" : "failed", failure ? ": " : "", failure ? failure : "");
	return 0;
}

/* Pending release version of app name, in *ret_app and *ret_rel. */
static int find_pending(struct mgr *m, const char *name, int version, struct state_app **ret_app,
                        struct state_release **ret_rel, struct dy_error **err)
{
	if (mgr_app_get(m, name, ret_app, err) < 0)
		return -1;
	struct state_release *rel = state_release_find(*ret_app, version);
	if (rel == NULL)
		return dy_error_as(err, DY_E_NOT_FOUND, "release v%d of %s not found", version,
		                   name);
	if (rel->status != STATE_RELEASE_PENDING)
		return dy_error_as(err, DY_E_CONFLICT, "release v%d of %s is %s, not pending",
		                   version, name, state_release_status_str(rel->status));
	*ret_rel = rel;
	return 0;
}

int mgr_release_finished(struct mgr *m, const char *name, int version, bool succeeded,
                         const char *failure, struct dy_error **err)
{
	struct state_app *app;
	struct state_release *rel;
	if (find_pending(m, name, version, &app, &rel, err) < 0)
		return -1;
	char superseded[64];
	const struct state_release *newer = newer_live(app, version);
	if (succeeded && newer && m->ops && m->ops->roll_out) {
		/* a newer release holds its changes and rolls out itself */
		snprintf(superseded, sizeof(superseded), "superseded by v%d", newer->version);
		succeeded = false;
		failure = superseded;
	}
	if (succeeded && m->ops && m->ops->roll_out) {
		roll_out(m, app, rel); /* still pending: the rollout ends it */
		return 0;
	}
	if (end_release(m, app, rel, succeeded, failure, err) < 0)
		return -1;
	if (succeeded && m->ops && m->ops->apply_formation)
		m->ops->apply_formation(m->ops->data, app, rel, NULL);
	return 0;
}

int mgr_rollout_finished(struct mgr *m, const char *name, int version, bool succeeded,
                         const char *failure, struct dy_error **err)
{
	struct state_app *app;
	struct state_release *rel;
	if (find_pending(m, name, version, &app, &rel, err) < 0)
		return -1;
	return end_release(m, app, rel, succeeded, failure, err);
}

/* A hostname as a custom domain takes it: labels of [A-Za-z0-9-] not
 * starting or ending with '-', at least two, at most 253 bytes. */
static bool valid_hostname(const char *h)
{
	size_t n = strlen(h), label = 0, labels = 1;
	if (n == 0 || n > STATE_HOST_MAX || h[0] == '.' || h[n - 1] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = h[i];
		if (c == '.') {
			if (label == 0 || h[i - 1] == '-')
				return false;
			label = 0;
			labels++;
			continue;
		}
		if (!isalnum((unsigned char)c) && !(c == '-' && label > 0))
			return false;
		if (++label > 63)
			return false;
	}
	return labels >= 2 && h[n - 1] != '-';
}

static void routing_changed(struct mgr *m)
{
	if (m->ops && m->ops->routing_changed)
		m->ops->routing_changed(m->ops->data);
}

int mgr_domain_add(struct mgr *m, const char *name, const char *host, struct dy_error **err)
{
	struct state_app *app;
	if (mgr_app_get(m, name, &app, err) < 0)
		return -1;
	if (!valid_hostname(host))
		return dy_error_as(err, DY_E_INVALID,
		                   "hostname \"%.253s\" is not a DNS name (labels of letters, digits "
		                   "and '-', at least two)",
		                   host);
	const char *dom = m->cfg->domain;
	size_t hl = strlen(host), dl = strlen(dom);
	if (strcasecmp(host, dom) == 0 ||
	    (hl > dl && host[hl - dl - 1] == '.' && strcasecmp(host + hl - dl, dom) == 0))
		return dy_error_as(err, DY_E_INVALID,
		                   "hostname %s is under the platform's domain %s: every app has "
		                   "NAME.%s already",
		                   host, dom, dom);
	for (size_t i = 0; i < m->st->napps; i++) {
		if (state_domain_find(m->st->apps[i], host) < 0)
			continue;
		if (m->st->apps[i] == app)
			return dy_error_as(err, DY_E_CONFLICT, "%s already has domain %s", name, host);
		return dy_error_as(err, DY_E_CONFLICT, "domain %s is in use by another app", host);
	}
	if (state_domain_add(app, host, err) < 0)
		return -1;
	if (save(m, app, err) < 0) {
		state_domain_remove(app, host);
		return -1;
	}
	routing_changed(m);
	return 0;
}

int mgr_domain_remove(struct mgr *m, const char *name, const char *host, struct dy_error **err)
{
	struct state_app *app;
	if (mgr_app_get(m, name, &app, err) < 0)
		return -1;
	int i = state_domain_find(app, host);
	if (i < 0)
		return dy_error_as(err, DY_E_NOT_FOUND, "%s has no domain %.253s", name, host);
	_cleanup_free_ char *copy = strdup(app->domains[i]);
	if (copy == NULL)
		return dy_error_errno(err, ENOMEM, "domain");
	state_domain_remove(app, host);
	if (save(m, app, err) < 0) {
		/* memory stays what the disk holds (it had room for it) */
		if (state_domain_add(app, copy, NULL) < 0)
			dy_log("api", "%s: domain %s lost from memory", name, copy);
		return -1;
	}
	routing_changed(m);
	return 0;
}

int mgr_set_maintenance(struct mgr *m, const char *name, bool on, struct dy_error **err)
{
	struct state_app *app;
	if (mgr_app_get(m, name, &app, err) < 0)
		return -1;
	if (app->maintenance == on)
		return 0;
	app->maintenance = on;
	if (save(m, app, err) < 0) {
		app->maintenance = !on;
		return -1;
	}
	dy_log_to_app(name, "api", "Maintenance mode %s", on ? "on" : "off");
	routing_changed(m);
	return 0;
}

int mgr_fail_pending(struct mgr *m, const char *why)
{
	int n = 0;
	for (size_t i = 0; i < m->st->napps; i++) {
		struct state_app *app = m->st->apps[i];
		bool changed = false;
		for (size_t k = 0; k < app->nreleases; k++) {
			struct state_release *rel = &app->releases[k];
			if (rel->status != STATE_RELEASE_PENDING)
				continue;
			rel->status = STATE_RELEASE_FAILED;
			free(rel->failure);
			rel->failure = strdup(why); /* NULL: failed unexplained */
			changed = true;
			n++;
		}
		struct dy_error *e = NULL;
		if (changed && save(m, app, &e) < 0) {
			dy_log("dynod", "%s: %s", app->name, dy_error_msg(e));
			dy_error_free(&e);
		}
	}
	return n;
}

int mgr_rollback(struct mgr *m, const char *name, int version, struct state_release **ret,
                 struct dy_error **err)
{
	struct state_app *app;
	if (mgr_app_get(m, name, &app, err) < 0)
		return -1;
	const struct state_release *to = state_release_find(app, version);
	if (to == NULL)
		return dy_error_as(err, DY_E_NOT_FOUND, "release v%d of %s not found", version,
		                   name);
	if (to->slug_id[0] == '\0')
		return dy_error_as(err, DY_E_INVALID,
		                   "release v%d has no slug: nothing to roll back to", version);
	/* copies first: appending may move the releases array */
	char slug_id[STATE_SLUG_ID_LEN + 1];
	snprintf(slug_id, sizeof(slug_id), "%s", to->slug_id);
	/* the snapshot itself: releases share it, none changes it */
	json_t *cfg = json_incref(to->config);
	json_t *pt = to->process_types ? json_deep_copy(to->process_types) : json_object();
	if (cfg == NULL || pt == NULL) {
		if (cfg)
			json_decref(cfg);
		if (pt)
			json_decref(pt);
		return dy_error_errno(err, ENOMEM, "rollback");
	}
	if (mgr_prepare_slug(m, app, slug_id, pt, err) < 0) {
		json_decref(cfg);
		json_decref(pt);
		return -1;
	}
	char desc[64];
	snprintf(desc, sizeof(desc), "Rollback to v%d", version);
	return release(m, app, desc, slug_id, cfg, pt, ret, err);
}

static bool valid_key(const char *k)
{
	size_t n = strlen(k);
	if (n == 0 || n > MGR_CONFIG_KEY_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = k[i];
		bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
		          (i > 0 && c >= '0' && c <= '9');
		if (!ok)
			return false;
	}
	return true;
}

/* Appends "K1, K2" of the keys in changes that are (or are not) null. */
static void describe_keys(char *buf, size_t size, json_t *changes, bool removed)
{
	const char *k;
	json_t *v;
	size_t len = strlen(buf);
	bool first = true;
	json_object_foreach(changes, k, v)
	{
		if (json_is_null(v) != removed)
			continue;
		int n = snprintf(buf + len, size - len, "%s%s", first ? "" : ", ", k);
		if (n < 0 || (size_t)n >= size - len) {
			/* too long for one line: end with an ellipsis */
			if (size > 4)
				snprintf(buf + size - 4, 4, "...");
			return;
		}
		len += (size_t)n;
		first = false;
	}
}

/* Bytes of an object of config vars: keys and values, as Heroku counts
 * them against its 32 KiB per app. */
static uint64_t config_size(json_t *cfg)
{
	uint64_t n = 0;
	const char *k;
	json_t *v;
	json_object_foreach(cfg, k, v) n += strlen(k) + json_string_length(v);
	return n;
}

int mgr_config_update(struct mgr *m, const char *name, json_t *changes, struct state_release **ret,
                      struct dy_error **err)
{
	return mgr_config_update_as(m, name, changes, NULL, ret, err);
}

int mgr_config_update_as(struct mgr *m, const char *name, json_t *changes, const char *as,
                         struct state_release **ret, struct dy_error **err)
{
	struct state_app *app;
	if (mgr_app_get(m, name, &app, err) < 0)
		return -1;
	if (!json_is_object(changes))
		return dy_error_as(err, DY_E_INVALID,
		                   "config vars: expected an object of names to strings or null");
	const char *k;
	json_t *v;
	json_object_foreach(changes, k, v)
	{
		if (!valid_key(k))
			return dy_error_as(err, DY_E_INVALID,
			                   "invalid config var name \"%.80s\": it must match "
			                   "[A-Za-z_][A-Za-z0-9_]* (at most %d bytes)",
			                   k, MGR_CONFIG_KEY_MAX);
		if (!json_is_string(v) && !json_is_null(v))
			return dy_error_as(
			    err, DY_E_INVALID,
			    "config var %s: the value must be a string (or null to remove it)", k);
	}
	_cleanup_json_ json_t *cfg = config_copy(app);
	if (cfg == NULL)
		return dy_error_errno(err, ENOMEM, "config");
	_cleanup_json_ json_t *set = json_object(), *removed = json_object();
	if (set == NULL || removed == NULL)
		return dy_error_errno(err, ENOMEM, "config");
	json_object_foreach(changes, k, v)
	{
		json_t *old = json_object_get(cfg, k);
		if (json_is_null(v)) {
			if (old) {
				json_object_del(cfg, k);
				json_object_set(removed, k, v);
			}
		} else if (old == NULL || !json_equal(old, v)) {
			json_object_set(cfg, k, v);
			json_object_set(set, k, v);
		}
	}
	if (json_object_size(set) == 0 && json_object_size(removed) == 0) {
		*ret = NULL; /* nothing changed: no release */
		return 0;
	}
	/* a change that shrinks the vars is always taken, so an app over a
	 * lowered bound can get back under it */
	uint64_t size = config_size(cfg), max = m->cfg->config_vars.max_size;
	json_t *before = mgr_config_vars(app);
	if (size > max && size > (before ? config_size(before) : 0))
		return dy_error_as(
		    err, DY_E_INVALID,
		    "config vars of %s would take %llu bytes (names and values), over "
		    "the limit of %llu bytes (config_vars.max_size)",
		    app->name, (unsigned long long)size, (unsigned long long)max);
	char desc[256] = "";
	if (json_object_size(set)) {
		snprintf(desc, sizeof(desc), "Set ");
		describe_keys(desc, sizeof(desc) - 16, set, false);
	}
	if (json_object_size(removed)) {
		size_t len = strlen(desc);
		snprintf(desc + len, sizeof(desc) - len, "%s", len ? "; remove " : "Remove ");
		describe_keys(desc, sizeof(desc) - 16, removed, true);
	}
	size_t len = strlen(desc);
	snprintf(desc + len, sizeof(desc) - len, " config vars");
	if (as)
		snprintf(desc, sizeof(desc), "%s", as);

	/* on the newest release, a pending one included: a change made
	 * during a rollout is never lost */
	const struct state_release *cur = state_app_newest(app);
	char slug_id[STATE_SLUG_ID_LEN + 1] = "";
	json_t *pt = NULL;
	if (cur && cur->slug_id[0]) {
		snprintf(slug_id, sizeof(slug_id), "%s", cur->slug_id);
		pt = cur->process_types ? json_deep_copy(cur->process_types) : json_object();
		if (pt == NULL)
			return dy_error_errno(err, ENOMEM, "config");
		if (mgr_prepare_slug(m, app, slug_id, pt, err) < 0) {
			json_decref(pt);
			return -1;
		}
	}
	return release(m, app, desc, slug_id[0] ? slug_id : NULL, TAKE_PTR(cfg), pt, ret, err);
}

/* The newest release's process types, or an error saying to deploy. */
static int current_types(const struct state_app *app, json_t **ret, struct dy_error **err)
{
	const struct state_release *cur = state_app_newest(app);
	if (cur == NULL || cur->process_types == NULL)
		return dy_error_as(err, DY_E_INVALID,
		                   "app %s has no release with a slug yet: deploy one", app->name);
	*ret = cur->process_types;
	return 0;
}

static void type_list(char *buf, size_t size, json_t *pt)
{
	const char *k;
	json_t *v;
	size_t len = 0;
	buf[0] = '\0';
	json_object_foreach(pt, k, v)
	{
		if (strcmp(k, "release") == 0)
			continue;
		int n = snprintf(buf + len, size - len, "%s%s", len ? ", " : "", k);
		if (n < 0 || (size_t)n >= size - len)
			return;
		len += (size_t)n;
	}
}

int mgr_formation_update(struct mgr *m, const char *name, const struct mgr_formation_update *u,
                         size_t n, struct dy_error **err)
{
	struct state_app *app;
	if (mgr_app_get(m, name, &app, err) < 0)
		return -1;
	json_t *pt;
	if (current_types(app, &pt, err) < 0)
		return -1;
	if (n == 0)
		return dy_error_as(err, DY_E_INVALID, "updates: empty list");
	for (size_t i = 0; i < n; i++) {
		if (u[i].type == NULL || strcmp(u[i].type, "release") == 0 ||
		    json_object_get(pt, u[i].type) == NULL) {
			char types[512];
			type_list(types, sizeof(types), pt);
			return dy_error_as(
			    err, DY_E_INVALID,
			    "no process type \"%.64s\" in the current release's Procfile "
			    "(types: %s)",
			    u[i].type ? u[i].type : "", types);
		}
		if (u[i].quantity != -1 && (u[i].quantity < 0 || u[i].quantity > MGR_QUANTITY_MAX))
			return dy_error_as(err, DY_E_INVALID,
			                   "%s: quantity %d is out of range 0..%d", u[i].type,
			                   u[i].quantity, MGR_QUANTITY_MAX);
		if (u[i].size && config_size_find(m->cfg, u[i].size) == NULL) {
			char sizes[512] = "";
			size_t len = 0;
			for (size_t s = 0; s < m->cfg->sizes.n; s++) {
				int w = snprintf(sizes + len, sizeof(sizes) - len, "%s%s",
				                 s ? ", " : "", m->cfg->sizes.size[s].name);
				if (w < 0 || (size_t)w >= sizeof(sizes) - len)
					break;
				len += (size_t)w;
			}
			return dy_error_as(err, DY_E_INVALID,
			                   "%s: unknown size \"%.64s\" (sizes: %s)", u[i].type,
			                   u[i].size, sizes);
		}
	}
	/* a copy to restore when the state cannot be saved */
	size_t saved_n = app->nformation;
	_cleanup_free_ struct state_formation *saved =
	    saved_n ? malloc(saved_n * sizeof(*saved)) : NULL;
	if (saved_n && saved == NULL)
		return dy_error_errno(err, ENOMEM, "formation");
	if (saved_n)
		memcpy(saved, app->formation, saved_n * sizeof(*saved));
	for (size_t i = 0; i < n; i++) {
		struct state_formation *f;
		if (state_formation_get(app, u[i].type, m->cfg->dyno.default_size, &f, err) < 0) {
			app->nformation = saved_n;
			if (saved_n)
				memcpy(app->formation, saved, saved_n * sizeof(*saved));
			return -1;
		}
		if (u[i].quantity != -1)
			f->quantity = u[i].quantity;
		if (u[i].size)
			snprintf(f->size, sizeof(f->size), "%s", u[i].size);
	}
	if (save(m, app, err) < 0) {
		/* entries added are past saved_n; the array only grew */
		app->nformation = saved_n;
		if (saved_n)
			memcpy(app->formation, saved, saved_n * sizeof(*saved));
		return -1;
	}
	if (m->ops && m->ops->apply_formation)
		m->ops->apply_formation(m->ops->data, app, state_app_current(app), NULL);
	return 0;
}

json_t *mgr_formation_json(const struct mgr *m, const struct state_app *app, const char *type,
                           struct dy_error **err)
{
	const struct state_release *cur = state_app_newest(app);
	json_t *pt = cur ? cur->process_types : NULL;
	json_t *list = type ? NULL : json_array();
	if (type == NULL && list == NULL)
		return NULL;
	const char *k;
	json_t *v;
	if (pt)
		json_object_foreach(pt, k, v)
		{
			if (strcmp(k, "release") == 0)
				continue;
			if (type && strcmp(k, type) != 0)
				continue;
			struct state_formation dflt = {.quantity = 0};
			const struct state_formation *f = state_formation_find(app, k);
			if (f == NULL) {
				snprintf(dflt.type, sizeof(dflt.type), "%s", k);
				snprintf(dflt.size, sizeof(dflt.size), "%s",
				         m->cfg->dyno.default_size);
				f = &dflt;
			}
			json_t *o = state_formation_json(f, json_string_value(v));
			if (type)
				return o;
			json_array_append_new(list, o);
		}
	if (type) {
		dy_error_as(err, DY_E_NOT_FOUND, "no process type \"%.64s\" in the formation of %s",
		            type, app->name);
		return NULL;
	}
	return list;
}
