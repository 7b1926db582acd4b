/* The manager's durable state: apps, their releases, config vars and
 * formation (docs/design.md, "Platform API" objects).
 *
 * Layout: one file per app, <state_dir>/apps/<app>/app.json, replaced
 * atomically (temp file, fsync, rename, fsync of the directory) on every
 * change, beside the app's unpacked slugs (<state_dir>/apps/<app>/slugs/).
 * Each file carries "schema_version" (STATE_SCHEMA_VERSION); a file of a
 * newer (or unknown) version stops start-up with a message naming it, and
 * one of version 1 is read and rewritten in the current form. One file per
 * app keeps a write proportional to one app and makes destroy one tree
 * removal. docs/api.md describes the file.
 *
 * Config vars are snapshots shared by content: every release names its
 * snapshot by the sha256 of the snapshot's canonical JSON (config_id), the
 * file holds each distinct snapshot once ("configs"), and in memory the
 * releases of one snapshot share one json_t (refcounted, never changed once
 * a release holds it). A snapshot no release names is not written: it
 * goes with the last reference. So a history of many releases costs one
 * copy of the config vars per distinct set, not one per release.
 *
 * This module holds data and its JSON forms only; the rules (who may
 * deploy what) live in manager.c. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

/* Modes of the state directory's parts (docs/operating.md, "Modes"). */
#define STATE_DIR_MODE     0711 /* traversable, not listable, by others */
#define STATE_APP_DIR_MODE 0700 /* apps/<name>: root's alone */

#define STATE_SCHEMA_VERSION 3  /* 3: domains, maintenance; 2: config snapshots by content; \
                                  1: a copy per release */
#define STATE_DOMAINS_MAX    100 /* custom domains of an app */
#define STATE_HOST_MAX       253
#define STATE_CONFIG_ID_LEN  64 /* hex sha256 */
#define STATE_APP_NAME_MAX   30
#define STATE_SLUG_ID_LEN    64
#define STATE_TIME_LEN       20 /* "2026-11-26T11:00:00Z" */
#define STATE_SIZE_NAME_MAX  30

enum state_release_status {
	STATE_RELEASE_PENDING = 0,
	STATE_RELEASE_SUCCEEDED,
	STATE_RELEASE_FAILED,
};

/* "pending", "succeeded", "failed". */
const char *state_release_status_str(enum state_release_status s);

/* Parses the strings above. Returns 0 or < 0. */
int state_release_status_from_str(const char *s, enum state_release_status *ret);

/* An immutable release: what the app runs (slug + config vars). */
struct state_release {
	int version; /* 1, 2, ...: shown as vN */
	char *description;
	enum state_release_status status;
	char *failure; /* why a failed release failed ("release command exited with status
	                  3"), owned; NULL when none is known */
	char slug_id[STATE_SLUG_ID_LEN + 1]; /* "" when the release has no slug */
	char created_at[STATE_TIME_LEN + 1];
	char config_id[STATE_CONFIG_ID_LEN + 1]; /* state_config_id() of config */
	json_t *config;        /* object of string values: a reference to the app's snapshot, shared
	                          with every release of equal config vars; never changed */
	json_t *process_types; /* object name -> command of the slug's Procfile, owned; NULL without
	                          a slug */
};

/* How many dynos of one process type run, and of which size. */
struct state_formation {
	char type[32];
	int quantity;
	char size[STATE_SIZE_NAME_MAX + 1];
};

struct state_app {
	char name[STATE_APP_NAME_MAX + 1];
	char created_at[STATE_TIME_LEN + 1];
	uint32_t uid;                   /* the app's uid and gid, from the configured range */
	struct state_release *releases; /* oldest first; versions increase */
	size_t nreleases;
	struct state_formation *formation;
	size_t nformation;
	char **domains; /* custom hostnames, lower case, each owned */
	size_t ndomains;
	bool maintenance; /* the router answers H80 */
	unsigned addons;  /* add-ons attached (addon-pg.c; not in app.json): its
	                   * dynos reach the database port on the gateway */
};

struct state {
	char *dir; /* state_dir */
	struct state_app **apps;
	size_t napps;
	size_t migrated; /* files state_open() rewrote from an older schema_version */
};

/* Opens the state under dir: creates dir and dir/apps when missing, then
 * reads every dir/apps/<name>/app.json. A file that is not valid JSON, of
 * a newer or unknown schema_version or inconsistent stops with an error
 * naming the file; a file of schema_version 1 is rewritten in the current
 * form once read (st->migrated counts them). Returns 0 and *ret (owned,
 * state_free), or < 0. */
int state_open(const char *dir, struct state **ret, struct dy_error **err);

/* Frees st and every app. Accepts NULL. */
void state_free(struct state *st);

/* The app called name, or NULL. */
struct state_app *state_app_find(const struct state *st, const char *name);

/* True when name follows docs/design.md's rule ^[a-z][a-z0-9-]{1,28}[a-z0-9]$. */
bool state_app_name_valid(const char *name);

/* Adds a new app (not yet saved) with no release and an empty formation.
 * Returns 0 and the app in *ret (owned by st), or < 0 (EEXIST, ENOMEM). */
int state_app_add(struct state *st, const char *name, uint32_t uid, const char *created_at,
                  struct state_app **ret, struct dy_error **err);

/* Writes app's file atomically (temp file, fsync, rename, fsync dir), on
 * the calling thread. Returns 0 or < 0. (dynod writes through
 * state-writer.h, off its loop.) */
int state_app_save(const struct state *st, const struct state_app *app, struct dy_error **err);

/* The parts of state_app_save(), for a writer on another thread: */

/* The content of app's file (new reference, NULL on ENOMEM). It shares
 * the app's config snapshots and process types: a thread may dump it while
 * the loop goes on, but only the loop's thread may release it. */
json_t *state_app_file_json(const struct state_app *app);

/* The text of a file made by state_app_file_json(), newline-terminated:
 * *ret_text (malloc'd) and *ret_len. Reads file only. Returns 0 or -ENOMEM. */
int state_file_render(const json_t *file, char **ret_text, size_t *ret_len);

/* Opens app's directory (made when missing) as O_DIRECTORY. Returns the fd
 * or < 0. */
int state_app_dir_open(const struct state *st, const struct state_app *app, struct dy_error **err);

/* Replaces app.json in the directory dirfd with len bytes of text: a
 * temporary sibling (0600), fsync, rename, fsync of the directory; a
 * failure leaves app.json as it was and no temporary file. When
 * *cancelled (read atomically, may be NULL) is true before the rename, the
 * file is left alone (-ECANCELED). Thread-safe. Returns 0 or -errno. */
int state_file_write_at(int dirfd, const char *text, size_t len, const bool *cancelled);

/* Removes app from st and its whole directory (state file, unpacked slugs)
 * from disk; app is freed. Returns 0 or < 0 (the app is then still in st). */
int state_app_remove(struct state *st, struct state_app *app, struct dy_error **err);

/* Removes app from st and its state file, and renames its directory
 * (unpacked slugs) to "<name>.gone-<n>" under the apps directory, for the
 * caller to remove with state_grave_remove() once no dyno uses it (an
 * interrupted removal is swept at the next start: no app.json). app is
 * freed. Returns 0 and the directory's absolute path in *ret_grave
 * (owned), or < 0 (the app is then still in st). */
int state_app_detach(struct state *st, struct state_app *app, char **ret_grave,
                     struct dy_error **err);

/* Removes grave (a path of state_app_detach) and everything below it.
 * Returns 0 or -errno. */
int state_grave_remove(const char *grave);

/* Writes into id the snapshot key of config (an object of strings): the
 * lower-case hex sha256 of its canonical JSON (compact, keys sorted,
 * UTF-8). Returns 0 or < 0 (ENOMEM). */
int state_config_id(const json_t *config, char id[STATE_CONFIG_ID_LEN + 1]);

/* Appends release version (last + 1) to app and returns it in *ret (owned
 * by app, valid until the next append). description is copied; config and
 * process_types are taken over (their reference is stolen, even on
 * failure); slug_id may be NULL. A config equal to one an earlier release
 * holds is dropped for that release's snapshot, which the new release
 * shares: the caller must not change config after the call. Returns 0 or
 * < 0. */
int state_release_append(struct state_app *app, const char *description,
                         enum state_release_status status, const char *slug_id, json_t *config,
                         json_t *process_types, const char *created_at, struct state_release **ret,
                         struct dy_error **err);

/* Removes the newest release (undoing state_release_append when saving
 * failed). */
void state_release_pop(struct state_app *app);

/* The release called version, or NULL. */
struct state_release *state_release_find(const struct state_app *app, int version);

/* The current release: the newest succeeded one, or NULL. */
struct state_release *state_app_current(const struct state_app *app);

/* The newest release that has not failed (a pending one included: what a
 * new release builds on), or NULL. */
struct state_release *state_app_newest(const struct state_app *app);

/* The formation entry of type, or NULL. */
struct state_formation *state_formation_find(const struct state_app *app, const char *type);

/* The formation entry of type, added (quantity 0, size default_size) when
 * missing. Returns 0 or < 0 (ENOMEM). */
int state_formation_get(struct state_app *app, const char *type, const char *default_size,
                        struct state_formation **ret, struct dy_error **err);

/* Writes the current UTC time as RFC 3339 ("2026-11-26T11:00:00Z") into
 * buf (STATE_TIME_LEN + 1 bytes). */
void state_now(char buf[STATE_TIME_LEN + 1]);

/* The Platform API objects (new references, NULL on ENOMEM):
 * app {name, created_at, web_url, released_at}: web_url is
 * "http://NAME.<domain>:<port>/"; released_at the current release's
 * created_at or null. */
json_t *state_app_json(const struct state_app *app, const char *domain, unsigned port);

/* Adds custom hostname host (lower-cased) to app. Returns 0 or < 0
 * (ENOMEM; DY_E_TOO_LARGE past STATE_DOMAINS_MAX). The caller checks it. */
int state_domain_add(struct state_app *app, const char *host, struct dy_error **err);

/* Removes hostname host of app; false when app has none such. */
bool state_domain_remove(struct state_app *app, const char *host);

/* The index of hostname host in app's domains, or -1. */
int state_domain_find(const struct state_app *app, const char *host);

/* release {version, description, status, failure: string or null, slug: {id} or null,
 * created_at} */
json_t *state_release_json(const struct state_release *rel);

/* formation {type, quantity, size, command}; command may be NULL (null). */
json_t *state_formation_json(const struct state_formation *f, const char *command);
