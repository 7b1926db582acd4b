#include "runtime/manager/state.h"

#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "common/sha256.h"
#include "slugs/slug-fs.h"

static const char *const status_names[] = {
    [STATE_RELEASE_PENDING] = "pending",
    [STATE_RELEASE_SUCCEEDED] = "succeeded",
    [STATE_RELEASE_FAILED] = "failed",
};

const char *state_release_status_str(enum state_release_status s)
{
	if ((size_t)s < ELEMENTSOF(status_names))
		return status_names[s];
	return "unknown";
}

int state_release_status_from_str(const char *s, enum state_release_status *ret)
{
	for (size_t i = 0; i < ELEMENTSOF(status_names); i++)
		if (strcmp(s, status_names[i]) == 0) {
			*ret = (enum state_release_status)i;
			return 0;
		}
	return -1;
}

bool state_app_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n < 3 || n > STATE_APP_NAME_MAX)
		return false;
	if (!(name[0] >= 'a' && name[0] <= 'z'))
		return false;
	for (size_t i = 1; i < n; i++) {
		char c = name[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		if (!alnum && !(c == '-' && i + 1 < n))
			return false;
	}
	return true;
}

void state_now(char buf[STATE_TIME_LEN + 1])
{
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, STATE_TIME_LEN + 1, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void release_clear(struct state_release *r)
{
	free(r->description);
	r->description = NULL;
	free(r->failure);
	r->failure = NULL;
	if (r->config)
		json_decref(r->config);
	if (r->process_types)
		json_decref(r->process_types);
	r->config = NULL;
	r->process_types = NULL;
}

static void app_free(struct state_app *app)
{
	if (app == NULL)
		return;
	for (size_t i = 0; i < app->nreleases; i++)
		release_clear(&app->releases[i]);
	free(app->releases);
	free(app->formation);
	for (size_t i = 0; i < app->ndomains; i++)
		free(app->domains[i]);
	free(app->domains);
	free(app);
}

int state_domain_find(const struct state_app *app, const char *host)
{
	for (size_t i = 0; i < app->ndomains; i++)
		if (strcasecmp(app->domains[i], host) == 0)
			return (int)i;
	return -1;
}

int state_domain_add(struct state_app *app, const char *host, struct dy_error **err)
{
	if (app->ndomains >= STATE_DOMAINS_MAX)
		return dy_error_as(err, DY_E_TOO_LARGE, "app %s has %d domains, the most it may have",
		                   app->name, STATE_DOMAINS_MAX);
	char **v = realloc(app->domains, (app->ndomains + 1) * sizeof(*v));
	if (v == NULL)
		return dy_error_errno(err, ENOMEM, "domain");
	app->domains = v;
	char *h = strdup(host);
	if (h == NULL)
		return dy_error_errno(err, ENOMEM, "domain");
	for (char *p = h; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	app->domains[app->ndomains++] = h;
	return 0;
}

bool state_domain_remove(struct state_app *app, const char *host)
{
	int i = state_domain_find(app, host);
	if (i < 0)
		return false;
	free(app->domains[i]);
	memmove(&app->domains[i], &app->domains[i + 1],
	        (app->ndomains - (size_t)i - 1) * sizeof(*app->domains));
	app->ndomains--;
	return true;
}

void state_free(struct state *st)
{
	if (st == NULL)
		return;
	for (size_t i = 0; i < st->napps; i++)
		app_free(st->apps[i]);
	free(st->apps);
	free(st->dir);
	free(st);
}

struct state_app *state_app_find(const struct state *st, const char *name)
{
	for (size_t i = 0; i < st->napps; i++)
		if (strcmp(st->apps[i]->name, name) == 0)
			return st->apps[i];
	return NULL;
}

static int app_name_cmp(const void *a, const void *b)
{
	const struct state_app *const *x = a, *const *y = b;
	return strcmp((*x)->name, (*y)->name);
}

static int apps_push(struct state *st, struct state_app *app, struct dy_error **err)
{
	struct state_app **a = reallocarray(st->apps, st->napps + 1, sizeof(*a));
	if (a == NULL)
		return dy_error_errno(err, ENOMEM, "app %s", app->name);
	st->apps = a;
	st->apps[st->napps++] = app;
	return 0;
}

int state_app_add(struct state *st, const char *name, uint32_t uid, const char *created_at,
                  struct state_app **ret, struct dy_error **err)
{
	if (!state_app_name_valid(name))
		return dy_error(err, "invalid app name \"%s\"", name);
	if (state_app_find(st, name))
		return dy_error_errno(err, EEXIST, "app %s", name);
	struct state_app *app = calloc(1, sizeof(*app));
	if (app == NULL)
		return dy_error_errno(err, ENOMEM, "app %s", name);
	snprintf(app->name, sizeof(app->name), "%s", name);
	snprintf(app->created_at, sizeof(app->created_at), "%s", created_at);
	app->uid = uid;
	if (apps_push(st, app, err) < 0) {
		app_free(app);
		return -1;
	}
	/* kept sorted by name: listings come out in a stable order */
	qsort(st->apps, st->napps, sizeof(*st->apps), app_name_cmp);
	*ret = app;
	return 0;
}

struct state_release *state_release_find(const struct state_app *app, int version)
{
	for (size_t i = 0; i < app->nreleases; i++)
		if (app->releases[i].version == version)
			return &app->releases[i];
	return NULL;
}

struct state_release *state_app_current(const struct state_app *app)
{
	for (size_t i = app->nreleases; i-- > 0;)
		if (app->releases[i].status == STATE_RELEASE_SUCCEEDED)
			return &app->releases[i];
	return NULL;
}

struct state_release *state_app_newest(const struct state_app *app)
{
	for (size_t i = app->nreleases; i-- > 0;)
		if (app->releases[i].status != STATE_RELEASE_FAILED)
			return &app->releases[i];
	return NULL;
}

static int sha256_sink(const char *buf, size_t len, void *data)
{
	dy_sha256_update(data, buf, len);
	return 0;
}

int state_config_id(const json_t *config, char id[STATE_CONFIG_ID_LEN + 1])
{
	/* streamed into the hash: the text is never held whole */
	struct dy_sha256 s;
	dy_sha256_init(&s);
	if (json_dump_callback(config, sha256_sink, &s, JSON_COMPACT | JSON_SORT_KEYS) < 0)
		return -ENOMEM;
	uint8_t digest[DY_SHA256_LEN];
	dy_sha256_final(&s, digest);
	dy_sha256_hex(digest, id);
	return 0;
}

/* The snapshot of app whose key is id, or NULL. */
static json_t *config_find(const struct state_app *app, const char *id)
{
	for (size_t i = 0; i < app->nreleases; i++)
		if (strcmp(app->releases[i].config_id, id) == 0)
			return app->releases[i].config;
	return NULL;
}

int state_release_append(struct state_app *app, const char *description,
                         enum state_release_status status, const char *slug_id, json_t *config,
                         json_t *process_types, const char *created_at, struct state_release **ret,
                         struct dy_error **err)
{
	_cleanup_json_ json_t *cfg = config;
	_cleanup_json_ json_t *pt = process_types;
	if (cfg == NULL && (cfg = json_object()) == NULL)
		return dy_error_errno(err, ENOMEM, "release");
	if (slug_id && strlen(slug_id) != STATE_SLUG_ID_LEN)
		return dy_error(err, "invalid slug id \"%s\"", slug_id);
	char id[STATE_CONFIG_ID_LEN + 1];
	if (state_config_id(cfg, id) < 0)
		return dy_error_errno(err, ENOMEM, "release");
	json_t *shared = config_find(app, id);
	if (shared && shared != cfg) {
		/* equal config vars: one snapshot for both releases */
		json_decref(cfg);
		cfg = json_incref(shared);
	}
	_cleanup_free_ char *desc = strdup(description);
	if (desc == NULL)
		return dy_error_errno(err, ENOMEM, "release");
	struct state_release *r =
	    reallocarray(app->releases, app->nreleases + 1, sizeof(*app->releases));
	if (r == NULL)
		return dy_error_errno(err, ENOMEM, "release");
	app->releases = r;
	struct state_release *rel = &app->releases[app->nreleases];
	memset(rel, 0, sizeof(*rel));
	rel->version = app->nreleases ? app->releases[app->nreleases - 1].version + 1 : 1;
	rel->description = TAKE_PTR(desc);
	rel->status = status;
	snprintf(rel->slug_id, sizeof(rel->slug_id), "%s", slug_id ? slug_id : "");
	snprintf(rel->created_at, sizeof(rel->created_at), "%s", created_at);
	memcpy(rel->config_id, id, sizeof(rel->config_id));
	rel->config = TAKE_PTR(cfg);
	rel->process_types = TAKE_PTR(pt);
	app->nreleases++;
	if (ret)
		*ret = rel;
	return 0;
}

void state_release_pop(struct state_app *app)
{
	if (app->nreleases == 0)
		return;
	release_clear(&app->releases[--app->nreleases]);
}

struct state_formation *state_formation_find(const struct state_app *app, const char *type)
{
	for (size_t i = 0; i < app->nformation; i++)
		if (strcmp(app->formation[i].type, type) == 0)
			return &app->formation[i];
	return NULL;
}

int state_formation_get(struct state_app *app, const char *type, const char *default_size,
                        struct state_formation **ret, struct dy_error **err)
{
	struct state_formation *f = state_formation_find(app, type);
	if (f) {
		*ret = f;
		return 0;
	}
	if (strlen(type) >= sizeof(f->type) || strlen(default_size) > STATE_SIZE_NAME_MAX)
		return dy_error(err, "process type \"%s\" is too long", type);
	f = reallocarray(app->formation, app->nformation + 1, sizeof(*f));
	if (f == NULL)
		return dy_error_errno(err, ENOMEM, "formation");
	app->formation = f;
	f = &app->formation[app->nformation++];
	memset(f, 0, sizeof(*f));
	snprintf(f->type, sizeof(f->type), "%s", type);
	snprintf(f->size, sizeof(f->size), "%s", default_size);
	*ret = f;
	return 0;
}

/* ---- JSON objects ---- */

json_t *state_app_json(const struct state_app *app, const char *domain, unsigned port)
{
	_cleanup_free_ char *url = NULL;
	/* http://APP.DOMAIN:PORT/, without :80 */
	int n = port == 80 ? asprintf(&url, "http://%s.%s/", app->name, domain)
	                   : asprintf(&url, "http://%s.%s:%u/", app->name, domain, port);
	if (n < 0)
		return NULL;
	const struct state_release *cur = state_app_current(app);
	return json_pack("{s:s, s:s, s:s, s:o, s:b}", "name", app->name, "created_at",
	                 app->created_at, "web_url", url, "released_at",
	                 cur ? json_string(cur->created_at) : json_null(), "maintenance",
	                 app->maintenance);
}

json_t *state_release_json(const struct state_release *rel)
{
	json_t *slug = rel->slug_id[0] ? json_pack("{s:s}", "id", rel->slug_id) : json_null();
	json_t *failure = rel->failure ? json_string(rel->failure) : json_null();
	return json_pack("{s:i, s:s, s:s, s:o, s:o, s:s}", "version", rel->version, "description",
	                 rel->description, "status", state_release_status_str(rel->status),
	                 "failure", failure, "slug", slug, "created_at", rel->created_at);
}

json_t *state_formation_json(const struct state_formation *f, const char *command)
{
	return json_pack("{s:s, s:i, s:s, s:o}", "type", f->type, "quantity", f->quantity, "size",
	                 f->size, "command", command ? json_string(command) : json_null());
}

/* ---- persistence ---- */

/* The file's form (docs/api.md, "The state on disk"): each release names
 * its config snapshot by key; "configs" holds every snapshot a release
 * names, once, in the order of first use. */
json_t *state_app_file_json(const struct state_app *app)
{
	json_t *rels = json_array();
	json_t *form = json_array();
	json_t *configs = json_object();
	for (size_t i = 0; rels && configs && i < app->nreleases; i++) {
		const struct state_release *r = &app->releases[i];
		json_t *o = state_release_json(r);
		if (o == NULL)
			continue;
		json_object_set_new(o, "config_id", json_string(r->config_id));
		json_object_set_new(o, "process_types",
		                    r->process_types ? json_incref(r->process_types) : json_null());
		json_array_append_new(rels, o);
		if (json_object_get(configs, r->config_id) == NULL)
			json_object_set(configs, r->config_id, r->config);
	}
	for (size_t i = 0; form && i < app->nformation; i++) {
		const struct state_formation *f = &app->formation[i];
		json_array_append_new(form, json_pack("{s:s, s:i, s:s}", "type", f->type,
		                                      "quantity", f->quantity, "size", f->size));
	}
	json_t *domains = json_array();
	for (size_t i = 0; domains && i < app->ndomains; i++)
		json_array_append_new(domains, json_string(app->domains[i]));
	return json_pack("{s:i, s:s, s:s, s:I, s:o*, s:o*, s:o*, s:o*, s:b}", "schema_version",
	                 STATE_SCHEMA_VERSION, "name", app->name, "created_at", app->created_at,
	                 "uid", (json_int_t)app->uid, "releases", rels, "formation", form,
	                 "configs", configs, "domains", domains, "maintenance",
	                 app->maintenance);
}

int state_app_dir_open(const struct state *st, const struct state_app *app, struct dy_error **err)
{
	_cleanup_free_ char *dir = NULL;
	if (asprintf(&dir, "%s/apps/%s", st->dir, app->name) < 0)
		return dy_error_errno(err, ENOMEM, "save app %s", app->name);
	if (mkdir(dir, STATE_APP_DIR_MODE) < 0 && errno != EEXIST)
		return dy_error_errno(err, errno, "mkdir %s", dir);
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return dy_error_errno(err, errno, "open %s", dir);
	return fd;
}

int state_file_render(const json_t *file, char **ret_text, size_t *ret_len)
{
	char *text = json_dumps(file, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
	if (text == NULL)
		return -ENOMEM;
	size_t len = strlen(text);
	char *nl = realloc(text, len + 2);
	if (nl == NULL) {
		free(text);
		return -ENOMEM;
	}
	memcpy(nl + len, "\n", 2);
	*ret_text = nl;
	*ret_len = len + 1;
	return 0;
}

int state_file_write_at(int dirfd, const char *text, size_t len, const bool *cancelled)
{
	static unsigned long long seq;
	char tmp[64];
	/* unique among writers of this process (one dynod per state dir):
	 * the loop's thread and the state writer's */
	snprintf(tmp, sizeof(tmp), ".app.json.tmp-%d-%llu", (int)getpid(),
	         __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
	/* 0600: the file holds the app's config vars */
	_cleanup_close_ int fd =
	    openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	int r = 0;
	while (r == 0 && len > 0) {
		ssize_t n = write(fd, text, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		text += n;
		len -= (size_t)n;
	}
	if (r == 0 && fchmod(fd, 0600) < 0)
		r = -errno;
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	/* an app destroyed meanwhile keeps its file gone */
	if (r == 0 && cancelled && __atomic_load_n(cancelled, __ATOMIC_ACQUIRE))
		r = -ECANCELED;
	if (r == 0 && renameat(dirfd, tmp, dirfd, "app.json") < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(dirfd, tmp, 0);
		return r;
	}
	if (fsync(dirfd) < 0)
		return -errno;
	return 0;
}

int state_app_save(const struct state *st, const struct state_app *app, struct dy_error **err)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	{
		_cleanup_json_ json_t *j = state_app_file_json(app);
		if (j == NULL || state_file_render(j, &text, &len) < 0)
			return dy_error_errno(err, ENOMEM, "save app %s", app->name);
	}
	_cleanup_close_ int dfd = state_app_dir_open(st, app, err);
	if (dfd < 0)
		return -1;
	int r = state_file_write_at(dfd, text, len, NULL);
	if (r < 0)
		return dy_error_errno(err, -r, "write %s/apps/%s/app.json", st->dir, app->name);
	return 0;
}

int state_app_remove(struct state *st, struct state_app *app, struct dy_error **err)
{
	size_t i = 0;
	while (i < st->napps && st->apps[i] != app)
		i++;
	if (i == st->napps)
		return dy_error(err, "app %s is not in the state", app->name);
	_cleanup_free_ char *apps = NULL;
	if (asprintf(&apps, "%s/apps", st->dir) < 0)
		return dy_error_errno(err, ENOMEM, "remove app %s", app->name);
	_cleanup_close_ int dfd = open(apps, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return dy_error_errno(err, errno, "open %s", apps);
	/* The state file goes first, so an interrupted removal never leaves an
	 * app that reloads with half its slugs; a directory without app.json
	 * is swept at the next start. */
	_cleanup_free_ char *file = NULL;
	if (asprintf(&file, "%s/app.json", app->name) < 0)
		return dy_error_errno(err, ENOMEM, "remove app %s", app->name);
	if (unlinkat(dfd, file, 0) < 0 && errno != ENOENT)
		return dy_error_errno(err, errno, "remove %s/%s", apps, file);
	fsync(dfd);
	int r = slug_fs_remove_tree(dfd, app->name);
	if (r < 0)
		return dy_error_errno(err, -r, "remove %s/%s", apps, app->name);
	fsync(dfd);
	memmove(&st->apps[i], &st->apps[i + 1], (st->napps - i - 1) * sizeof(*st->apps));
	st->napps--;
	app_free(app);
	return 0;
}

int state_app_detach(struct state *st, struct state_app *app, char **ret_grave,
                     struct dy_error **err)
{
	static unsigned long long seq;
	size_t i = 0;
	while (i < st->napps && st->apps[i] != app)
		i++;
	if (i == st->napps)
		return dy_error(err, "app %s is not in the state", app->name);
	_cleanup_free_ char *apps = NULL, *file = NULL, *gone = NULL;
	if (asprintf(&apps, "%s/apps", st->dir) < 0 ||
	    asprintf(&file, "%s/app.json", app->name) < 0 ||
	    asprintf(&gone, "%s.gone-%d-%llu", app->name, (int)getpid(), ++seq) < 0)
		return dy_error_errno(err, ENOMEM, "remove app %s", app->name);
	_cleanup_close_ int dfd = open(apps, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return dy_error_errno(err, errno, "open %s", apps);
	char *grave = NULL;
	if (asprintf(&grave, "%s/%s", apps, gone) < 0)
		return dy_error_errno(err, ENOMEM, "remove app %s", app->name);
	/* the state file first, as state_app_remove() */
	if (unlinkat(dfd, file, 0) < 0 && errno != ENOENT) {
		int r = dy_error_errno(err, errno, "remove %s/%s", apps, file);
		free(grave);
		return r;
	}
	fsync(dfd);
	if (renameat(dfd, app->name, dfd, gone) < 0) {
		/* nothing to rename is fine; otherwise remove it at once */
		if (errno != ENOENT)
			slug_fs_remove_tree(dfd, app->name);
	}
	fsync(dfd);
	memmove(&st->apps[i], &st->apps[i + 1], (st->napps - i - 1) * sizeof(*st->apps));
	st->napps--;
	app_free(app);
	*ret_grave = grave;
	return 0;
}

int state_grave_remove(const char *grave)
{
	return slug_fs_remove_tree(AT_FDCWD, grave);
}

/* True when config is an object of strings (config vars). */
static bool config_valid(const json_t *config)
{
	const char *k;
	json_t *v;
	if (!json_is_object(config))
		return false;
	json_object_foreach((json_t *)config, k, v)
	{
		if (!json_is_string(v))
			return false;
	}
	return true;
}

/* Reads releases[idx] of a file of schema_version 1 (configs NULL: each
 * release holds a copy of its config vars in "config") or of the current
 * one (its snapshot named by "config_id" in configs). */
static int load_release(json_t *o, json_t *configs, struct state_app *app, const char *path,
                        size_t idx, struct dy_error **err)
{
	int version = 0;
	const char *desc = NULL, *status = NULL, *created = NULL, *config_id = NULL;
	json_t *slug = NULL, *config = NULL, *pt = NULL, *failure = NULL;
	json_error_t jerr;
	int r =
	    configs
	        ? json_unpack_ex(o, &jerr, JSON_STRICT, "{s:i, s:s, s:s, s?o, s:o, s:s, s:s, s:o}",
	                         "version", &version, "description", &desc, "status", &status,
	                         "failure", &failure, "slug", &slug, "created_at", &created,
	                         "config_id", &config_id, "process_types", &pt)
	        : json_unpack_ex(o, &jerr, JSON_STRICT, "{s:i, s:s, s:s, s:o, s:s, s:o, s:o}",
	                         "version", &version, "description", &desc, "status", &status,
	                         "slug", &slug, "created_at", &created, "config", &config,
	                         "process_types", &pt);
	if (r < 0)
		return dy_error(err, "%s: releases[%zu]: %s", path, idx, jerr.text);
	enum state_release_status s;
	if (state_release_status_from_str(status, &s) < 0)
		return dy_error(err, "%s: releases[%zu]: unknown status \"%s\"", path, idx, status);
	if (failure && !json_is_null(failure) && !json_is_string(failure))
		return dy_error(err, "%s: releases[%zu]: failure is not a string", path, idx);
	const char *slug_id = NULL;
	if (!json_is_null(slug) && json_unpack(slug, "{s:s}", "id", &slug_id) < 0)
		return dy_error(err, "%s: releases[%zu]: slug is not {\"id\": ...}", path, idx);
	if (configs) {
		config = json_object_get(configs, config_id);
		if (config == NULL)
			return dy_error(err, "%s: releases[%zu]: config_id %.64s is not in configs",
			                path, idx, config_id);
	}
	if (!config_valid(config) || (!json_is_null(pt) && !json_is_object(pt)))
		return dy_error(err,
		                "%s: releases[%zu]: config is not an object of strings or "
		                "process_types not an object",
		                path, idx);
	int expected = app->nreleases ? app->releases[app->nreleases - 1].version + 1 : 1;
	if (version != expected)
		return dy_error(err, "%s: releases[%zu]: version %d, expected %d", path, idx,
		                version, expected);
	/* The key is computed again from the content, not taken from the
	 * file: a snapshot whose key does not match (a hand edit, another
	 * encoder) is re-keyed at the next write rather than trusted. */
	struct state_release *rel;
	if (state_release_append(app, desc, s, slug_id, json_incref(config),
	                         json_is_null(pt) ? NULL : json_incref(pt), created, &rel, err) < 0)
		return dy_error_prefix(err, "%s: releases[%zu]", path, idx);
	if (json_is_string(failure) && !(rel->failure = strdup(json_string_value(failure))))
		return dy_error_errno(err, ENOMEM, "%s: releases[%zu]", path, idx);
	return 0;
}

/* Reads the app file path of app name into st. *ret_version is the file's
 * schema_version (1 or STATE_SCHEMA_VERSION). */
static int load_app(struct state *st, const char *name, const char *path, int *ret_version,
                    struct dy_error **err)
{
	json_error_t jerr;
	_cleanup_json_ json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL)
		return dy_error(err, "%s: line %d: %s", path, jerr.line, jerr.text);
	json_t *sv = json_object_get(j, "schema_version");
	if (!json_is_integer(sv))
		return dy_error(err, "%s: no schema_version", path);
	json_int_t version = json_integer_value(sv);
	if (version > STATE_SCHEMA_VERSION)
		return dy_error(err,
		                "%s: schema_version %lld is newer than this dynod reads (1 to %d): "
		                "the file was written by a newer dynod; run that one",
		                path, (long long)version, STATE_SCHEMA_VERSION);
	if (version < 1)
		return dy_error(
		    err, "%s: schema_version %lld is not supported (this dynod reads 1 to %d)",
		    path, (long long)version, STATE_SCHEMA_VERSION);
	const char *jname = NULL, *created = NULL;
	json_int_t uid = 0;
	json_t *rels = NULL, *form = NULL, *configs = NULL, *domains = NULL;
	int maintenance = 0;
	int r = version == 1
	            ? json_unpack_ex(j, &jerr, JSON_STRICT, "{s:i, s:s, s:s, s:I, s:o, s:o}",
	                             "schema_version", &(int){0}, "name", &jname, "created_at",
	                             &created, "uid", &uid, "releases", &rels, "formation", &form)
	            : version == 2
	            ? json_unpack_ex(j, &jerr, JSON_STRICT, "{s:i, s:s, s:s, s:I, s:o, s:o, s:o}",
	                             "schema_version", &(int){0}, "name", &jname, "created_at",
	                             &created, "uid", &uid, "releases", &rels, "formation", &form,
	                             "configs", &configs)
	            : json_unpack_ex(j, &jerr, JSON_STRICT,
	                             "{s:i, s:s, s:s, s:I, s:o, s:o, s:o, s:o, s:b}",
	                             "schema_version", &(int){0}, "name", &jname, "created_at",
	                             &created, "uid", &uid, "releases", &rels, "formation", &form,
	                             "configs", &configs, "domains", &domains, "maintenance",
	                             &maintenance);
	if (r < 0)
		return dy_error(err, "%s: %s", path, jerr.text);
	if (strcmp(jname, name) != 0)
		return dy_error(err, "%s: name \"%s\" differs from its directory", path, jname);
	if (!json_is_array(rels) || !json_is_array(form) || uid < 0 || uid > UINT32_MAX ||
	    (configs && !json_is_object(configs)))
		return dy_error(err, "%s: releases, formation, configs or uid malformed", path);
	struct state_app *app;
	if (state_app_add(st, name, (uint32_t)uid, created, &app, err) < 0)
		return dy_error_prefix(err, "%s", path);
	size_t i;
	json_t *v;
	json_array_foreach(rels, i, v)
	{
		if (load_release(v, configs, app, path, i, err) < 0)
			return -1;
	}
	json_array_foreach(form, i, v)
	{
		const char *type = NULL, *size = NULL;
		int q = 0;
		if (json_unpack_ex(v, &jerr, JSON_STRICT, "{s:s, s:i, s:s}", "type", &type,
		                   "quantity", &q, "size", &size) < 0)
			return dy_error(err, "%s: formation[%zu]: %s", path, i, jerr.text);
		struct state_formation *f;
		if (state_formation_get(app, type, size, &f, err) < 0)
			return dy_error_prefix(err, "%s: formation[%zu]", path, i);
		f->quantity = q;
	}
	if (domains && !json_is_array(domains))
		return dy_error(err, "%s: domains: not an array", path);
	json_array_foreach(domains, i, v)
	{
		const char *h = json_string_value(v);
		if (h == NULL || h[0] == '\0' || strlen(h) > STATE_HOST_MAX ||
		    state_domain_find(app, h) >= 0)
			return dy_error(err, "%s: domains[%zu]: not a hostname, or twice", path, i);
		if (state_domain_add(app, h, err) < 0)
			return dy_error_prefix(err, "%s", path);
	}
	app->maintenance = maintenance != 0;
	*ret_version = (int)version;
	return 0;
}

int state_open(const char *dir, struct state **ret, struct dy_error **err)
{
	struct state *st = calloc(1, sizeof(*st));
	if (st == NULL || (st->dir = strdup(dir)) == NULL) {
		state_free(st);
		return dy_error_errno(err, ENOMEM, "state %s", dir);
	}
	_cleanup_free_ char *apps = NULL, *slugs = NULL;
	if (asprintf(&apps, "%s/apps", dir) < 0 || asprintf(&slugs, "%s/slugs", dir) < 0) {
		state_free(st);
		return dy_error_errno(err, ENOMEM, "state %s", dir);
	}
	/* Modes (docs/operating.md): the state dir and apps/ only traversable
	 * by others (an app's files are reached through its own 0700
	 * directory), the stored slugs root's alone. */
	if (dy_dir_mode(dir, STATE_DIR_MODE, err) < 0 || dy_dir_mode(apps, 0711, err) < 0 ||
	    dy_dir_mode(slugs, 0700, err) < 0) {
		state_free(st);
		return -1;
	}
	DIR *d = opendir(apps);
	if (d == NULL) {
		state_free(st);
		return dy_error_errno(err, errno, "open %s", apps);
	}
	struct dirent *de;
	int r = 0;
	while (r == 0 && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		_cleanup_free_ char *path = NULL;
		if (asprintf(&path, "%s/%s/app.json", apps, de->d_name) < 0) {
			r = dy_error_errno(err, ENOMEM, "state %s", dir);
			break;
		}
		struct stat stb;
		if (stat(path, &stb) < 0 && errno == ENOENT) {
			/* a destroy interrupted after its state file went: finish it */
			slug_fs_remove_tree(dirfd(d), de->d_name);
			continue;
		}
		if (!state_app_name_valid(de->d_name)) {
			r = dy_error(err, "%s: \"%s\" is not a valid app name", apps, de->d_name);
			break;
		}
		/* an app's directory is root's alone (its config vars are in
		 * app.json, its code under slugs/), also one made by an older
		 * dynod */
		if (fchmodat(dirfd(d), de->d_name, STATE_APP_DIR_MODE, 0) < 0) {
			r = dy_error_errno(err, errno, "chmod %s/%s", apps, de->d_name);
			break;
		}
		int version = 0;
		r = load_app(st, de->d_name, path, &version, err);
		if (r == 0 && version != STATE_SCHEMA_VERSION) {
			/* migrate at once: the file shrinks to one copy per
			 * distinct config, and the next write need not wait */
			r = state_app_save(st, state_app_find(st, de->d_name), err);
			if (r < 0) {
				dy_error_prefix(err, "rewrite %s (schema_version %d)", path,
				                version);
				break;
			}
			st->migrated++;
		}
	}
	closedir(d);
	if (r < 0) {
		state_free(st);
		return r;
	}
	*ret = st;
	return 0;
}
