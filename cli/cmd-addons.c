/* addons, addons:create, addons:info, addons:destroy, pg:info, pg:psql: the
 * PostgreSQL add-on (GET|POST /apps/{app}/addons, GET|DELETE
 * /apps/{app}/addons/{name}, GET .../{name}/info; docs/addons.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/api-client.h"
#include "cli/cli.h"
#include "cli/release-wait.h"
#include "common/cleanup.h"
#include "common/macro.h"

#define END_OPT                                                                                    \
	{                                                                                          \
		NULL, 0, false, NULL, NULL                                                         \
	}

#define PSQL "/usr/lib/postgresql/15/bin/psql"

static const char *str(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

/* The first config var of add-on a ("DATABASE_URL"). */
static const char *var_of(const json_t *a)
{
	const char *v = json_string_value(json_array_get(json_object_get(a, "config_vars"), 0));
	return v ? v : "";
}

static bool name_ok(const char *s)
{
	return s[0] && !strpbrk(s, "/?%#");
}

/* The add-on called name (NULL: the one attached as DATABASE, else the
 * first) of app, or NULL after naming the problem. New reference. */
static json_t *addon_of(const char *app, const char *name)
{
	_cleanup_free_ char *path = cli_app_path(app, "/addons");
	json_t *list = NULL;
	if (cli_api("GET", path, NULL, &list))
		return NULL;
	json_t *found = NULL, *a;
	size_t i;
	json_array_foreach(list, i, a)
	{
		if (name ? strcmp(str(a, "name"), name) == 0 ||
		               strncmp(var_of(a), name, strlen(name)) == 0
		         : strcmp(var_of(a), "DATABASE_URL") == 0 || found == NULL) {
			found = a;
			if (name || strcmp(var_of(a), "DATABASE_URL") == 0)
				break;
		}
	}
	if (found)
		json_incref(found);
	json_decref(list);
	if (!found)
		cli_error(name ? "app %s has no add-on %s" : "app %s has no add-on%s", app,
		          name ? name : "");
	return found;
}

static int parse(const struct cli_verb *verb, int argc, char **argv, bool *json, const char **pos,
                 size_t max_pos, size_t *npos, const char **ret_app)
{
	const char *app_opt = NULL;
	const struct cli_opt opts[] = {
	    {"--app", 'a', true, &app_opt, NULL}, {"--json", 0, false, NULL, json}, END_OPT};
	int r = cli_parse(verb, argc, argv, opts, pos, max_pos, npos);
	if (r)
		return r;
	*ret_app = cli_app(app_opt);
	if (*ret_app == NULL)
		return cli_usage_error(verb, "missing -a APP (or $DYNO_APP)");
	for (size_t i = 0; i < *npos; i++)
		if (!name_ok(pos[i]))
			return cli_usage_error(verb, "bad name \"%s\"", pos[i]);
	return CLI_OK;
}

/* parse(), then the app's add-ons into *list. */
static int parse_list(const struct cli_verb *verb, int argc, char **argv, bool *json,
                      const char **pos, size_t max_pos, size_t *npos, const char **app,
                      json_t **list)
{
	int r = parse(verb, argc, argv, json, pos, max_pos, npos, app);
	if (r)
		return r;
	_cleanup_free_ char *path = cli_app_path(*app, "/addons");
	return cli_api("GET", path, NULL, list);
}

static int run_addons(int argc, char **argv)
{
	bool json = false;
	const char *app;
	size_t npos;
	json_t *list = NULL;
	int r = parse_list(&cli_verb_addons, argc, argv, &json, NULL, 0, &npos, &app, &list);
	if (r)
		return r;
	if (json) {
		cli_print_json(list);
	} else if (json_array_size(list) == 0) {
		printf("No add-ons for app %s.\n", app);
	} else {
		printf("%-32s %-10s %-12s %s\n", "Add-on", "Plan", "State", "Config vars");
		size_t i;
		json_t *a;
		json_array_foreach(list, i, a)
		{
			printf("%-32s %-10s %-12s %s\n", str(a, "name"), str(a, "plan"),
			       str(a, "state"), var_of(a));
		}
	}
	json_decref(list);
	return CLI_OK;
}

const struct cli_verb cli_verb_addons = {
    .name = "addons",
    .run = run_addons,
    .usage = "addons -a APP [--json]",
    .summary = "list the app's add-ons",
};

/* addons:create and addons:destroy: [-a APP] [--no-wait], one word, and
 * the verb's own option (--as or --confirm) into *extra. */
static int change_parse(const struct cli_verb *verb, int argc, char **argv, const char *opt,
                        const char **extra, bool *no_wait, const char **word, const char **ret_app)
{
	const char *app_opt = NULL;
	const struct cli_opt opts[] = {{"--app", 'a', true, &app_opt, NULL},
	                               {opt, 0, true, extra, NULL},
	                               {"--no-wait", 0, false, NULL, no_wait},
	                               END_OPT};
	size_t npos;
	int r = cli_parse(verb, argc, argv, opts, word, 1, &npos);
	if (r)
		return r;
	*ret_app = cli_app(app_opt);
	if (*ret_app == NULL)
		return cli_usage_error(verb, "missing -a APP (or $DYNO_APP)");
	if (npos != 1 || !name_ok(word[0]))
		return cli_usage_error(verb, "expected %s",
		                       verb == &cli_verb_addons_create ? "the service: postgresql"
		                                                       : "the add-on's NAME");
	return CLI_OK;
}

/* The request that attaches or detaches (doing: "Creating", "Destroying"),
 * then the release it made, waited for. */
static int change(const char *app, const char *method, const char *path, json_t *body,
                  const char *doing, const char *what, bool no_wait)
{
	printf("%s %s on %s... ", doing, what, app);
	fflush(stdout);
	int before = cli_newest_version(app);
	cli_wait_begin(NULL);
	json_t *a = NULL;
	int r = cli_api(method, path, body, &a);
	json_decref(body);
	if (r) {
		printf("failed\n");
		return r;
	}
	if (strcmp(method, "POST") == 0)
		printf("%s, attached as %s\n", str(a, "name"), var_of(a));
	else
		printf("dropped, %s removed\n", var_of(a));
	json_decref(a);
	return cli_finish_release(app, before, no_wait);
}

static int run_create(int argc, char **argv)
{
	const char *app, *as = NULL, *pos[1];
	bool no_wait = false;
	int r = change_parse(&cli_verb_addons_create, argc, argv, "--as", &as, &no_wait, pos, &app);
	if (r)
		return r;
	_cleanup_free_ char *path = cli_app_path(app, "/addons");
	json_t *body = as ? json_pack("{s:s, s:s}", "service", pos[0], "as", as)
	                  : json_pack("{s:s}", "service", pos[0]);
	return change(app, "POST", path, body, "Creating", pos[0], no_wait);
}

const struct cli_verb cli_verb_addons_create = {
    .name = "addons:create",
    .run = run_create,
    .usage = "addons:create postgresql -a APP [--as NAME] [--no-wait]",
    .summary = "create a PostgreSQL database for the app",
    .help = "The first add-on sets DATABASE_URL, later ones HEROKU_POSTGRESQL_<COLOR>_URL,\n"
            "or NAME_URL with --as NAME: a new release, waited for as config:set does.\n",
};

static int run_info(int argc, char **argv)
{
	bool json = false;
	const char *app, *pos[1];
	size_t npos;
	int r = parse(&cli_verb_addons_info, argc, argv, &json, pos, 1, &npos, &app);
	if (r)
		return r;
	if (npos != 1)
		return cli_usage_error(&cli_verb_addons_info, "expected the add-on's NAME");
	json_t *a = addon_of(app, pos[0]);
	if (!a)
		return CLI_ERROR;
	if (json) {
		cli_print_json(a);
	} else {
		printf("=== %s\nApp:         %s\nService:     %s\nPlan:        %s\nState:       "
		       "%s\nConfig vars: %s\nCreated at:  %s\n",
		       str(a, "name"), app, str(a, "service"), str(a, "plan"), str(a, "state"),
		       var_of(a), str(a, "created_at"));
	}
	json_decref(a);
	return CLI_OK;
}

const struct cli_verb cli_verb_addons_info = {
    .name = "addons:info",
    .run = run_info,
    .usage = "addons:info NAME -a APP [--json]",
    .summary = "show an add-on",
};

static int run_destroy(int argc, char **argv)
{
	const char *app, *confirm = NULL, *pos[1];
	bool no_wait = false;
	int r = change_parse(&cli_verb_addons_destroy, argc, argv, "--confirm", &confirm, &no_wait,
	                     pos, &app);
	if (r)
		return r;
	if (confirm == NULL || strcmp(confirm, app) != 0)
		return cli_error("this drops %s and its data for good: confirm with --confirm %s",
		                 pos[0], app);
	_cleanup_free_ char *suffix = NULL;
	if (asprintf(&suffix, "/addons/%s", pos[0]) < 0)
		return cli_error("no memory");
	_cleanup_free_ char *path = cli_app_path(app, suffix);
	return change(app, "DELETE", path, NULL, "Destroying", pos[0], no_wait);
}

const struct cli_verb cli_verb_addons_destroy = {
    .name = "addons:destroy",
    .run = run_destroy,
    .usage = "addons:destroy NAME --confirm APP -a APP [--no-wait]",
    .summary = "drop an add-on's database and role, unset its var",
};

static void human_size(long long n, char *buf, size_t size)
{
	static const char *const units[] = {"bytes", "kB", "MB", "GB", "TB"};
	double v = (double)n;
	size_t u = 0;
	while (v >= 1024 && u + 1 < ELEMENTSOF(units)) {
		v /= 1024;
		u++;
	}
	snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static int run_pg_info(int argc, char **argv)
{
	bool json = false;
	const char *app, *pos[1];
	size_t npos;
	json_t *list = NULL;
	int r = parse_list(&cli_verb_pg_info, argc, argv, &json, pos, 1, &npos, &app, &list);
	if (r)
		return r;
	json_t *out = json_array(), *a;
	size_t i;
	json_array_foreach(list, i, a)
	{
		if (npos && strcmp(str(a, "name"), pos[0]) != 0 &&
		    strncmp(var_of(a), pos[0], strlen(pos[0])) != 0)
			continue;
		_cleanup_free_ char *ipath = NULL;
		if (asprintf(&ipath, "/addons/%s/info", str(a, "name")) < 0)
			break;
		_cleanup_free_ char *full = cli_app_path(app, ipath);
		json_t *info = NULL;
		if ((r = cli_api("GET", full, NULL, &info)))
			break;
		json_object_set_new(info, "config_var", json_string(var_of(a)));
		json_object_set_new(info, "created_at", json_string(str(a, "created_at")));
		json_object_set_new(info, "plan", json_string(str(a, "plan")));
		json_array_append_new(out, info);
	}
	json_decref(list);
	if (r) {
		json_decref(out);
		return r;
	}
	if (json_array_size(out) == 0 && npos) {
		json_decref(out);
		return cli_error("app %s has no add-on %s", app, pos[0]);
	}
	if (json) {
		cli_print_json(out);
	} else if (json_array_size(out) == 0) {
		printf("%s has no heroku-postgresql databases.\n", app);
	}
	json_array_foreach(out, i, a)
	{
		if (json)
			break;
		char size[32];
		human_size((long long)json_integer_value(json_object_get(a, "data_size")), size,
		           sizeof(size));
		printf("%s=== %s\nPlan:        %s\nStatus:      %s\nConnections: %lld/%lld\n"
		       "PG Version:  %s\nCreated:     %s\nData Size:   %s\nTables:      %lld\n"
		       "Add-on:      %s\n",
		       i ? "\n" : "", str(a, "config_var"), str(a, "plan"),
		       strcmp(str(a, "state"), "available") == 0 ? "Available" : str(a, "state"),
		       (long long)json_integer_value(json_object_get(a, "connections")),
		       (long long)json_integer_value(json_object_get(a, "connection_limit")),
		       str(a, "version"), str(a, "created_at"), size,
		       (long long)json_integer_value(json_object_get(a, "tables")), str(a, "name"));
	}
	json_decref(out);
	return CLI_OK;
}

const struct cli_verb cli_verb_pg_info = {
    .name = "pg:info",
    .run = run_pg_info,
    .usage = "pg:info [NAME] -a APP [--json]",
    .summary = "show the app's databases: version, state, size, tables, connections",
};

static int run_psql(int argc, char **argv)
{
	const char *app_opt = NULL, *command = NULL, *pos[1];
	const struct cli_opt opts[] = {{"--app", 'a', true, &app_opt, NULL},
	                               {"--command", 'c', true, &command, NULL},
	                               END_OPT};
	size_t npos;
	int r = cli_parse(&cli_verb_pg_psql, argc, argv, opts, pos, 1, &npos);
	if (r)
		return r;
	const char *app = cli_app(app_opt);
	if (app == NULL)
		return cli_usage_error(&cli_verb_pg_psql, "missing -a APP (or $DYNO_APP)");
	if (npos && !name_ok(pos[0]))
		return cli_usage_error(&cli_verb_pg_psql, "bad name \"%s\"", pos[0]);
	_cleanup_json_ json_t *a = addon_of(app, npos ? pos[0] : NULL);
	if (!a)
		return CLI_ERROR;
	_cleanup_free_ char *path = cli_app_path(app, "/config-vars");
	_cleanup_json_ json_t *vars = NULL;
	if ((r = cli_api("GET", path, NULL, &vars)))
		return r;
	const char *url = json_string_value(json_object_get(vars, var_of(a)));
	if (!url)
		return cli_error("app %s has no config var %s", app, var_of(a));
	/* the password goes in psql's environment, which only its user
	 * reads, not in its argv, which every host user sees in ps */
	_cleanup_free_ char *bare = strdup(url);
	char *creds = bare ? strstr(bare, "://") : NULL;
	char *at = creds ? strchr(creds + 3, '@') : NULL;
	char *colon = creds ? strchr(creds + 3, ':') : NULL;
	if (at && colon && colon < at) {
		*at = '\0';
		setenv("PGPASSWORD", colon + 1, 1);
		*at = '@';
		memmove(colon, at, strlen(at) + 1); /* postgres://ROLE@HOST... */
		url = bare;
	}
	const char *psql = access(PSQL, X_OK) == 0 ? PSQL : "psql";
	fflush(stdout);
	if (command)
		execlp(psql, psql, url, "-c", command, (char *)NULL);
	else
		execlp(psql, psql, url, (char *)NULL);
	return cli_error("cannot run %s (install postgresql-client-15): %m", psql);
}

const struct cli_verb cli_verb_pg_psql = {
    .name = "pg:psql",
    .run = run_psql,
    .usage = "pg:psql [NAME] -a APP [-c SQL]",
    .summary = "run psql on the app's database, from the host",
    .help = "Connects as the add-on's own role, over TLS, to the gateway address (a\n"
            "host address of dyno's: only the host itself and the app's dynos reach it).\n",
};

/* ---- pg:backups ---- */

/* The add-on (NULL: the app's DATABASE) and, with id, "/backups/ID..."
 * (suffix appended) as an API path into *ret. */
static int backups_path(const char *app, const char *addon, const char *id, const char *suffix,
                        char **ret, json_t **ret_addon)
{
	json_t *a = addon_of(app, addon);
	if (!a)
		return CLI_ERROR;
	_cleanup_free_ char *tail = NULL;
	if (asprintf(&tail, "/addons/%s/backups%s%s%s", str(a, "name"), id ? "/" : "", id ? id : "",
	             suffix) < 0) {
		json_decref(a);
		return cli_error("no memory");
	}
	*ret = cli_app_path(app, tail);
	if (ret_addon)
		*ret_addon = a;
	else
		json_decref(a);
	return CLI_OK;
}

/* POST path (a capture, a restore): "<doing> APP... done, bNNN<done>". */
static int post_backup(const char *path, const char *doing, const char *app, const char *done)
{
	printf("%s %s... ", doing, app);
	fflush(stdout);
	json_t *b = NULL;
	int r = cli_api("POST", path, NULL, &b);
	if (r) {
		printf("failed\n");
		return r;
	}
	printf("done, %s%s\n", str(b, "id"), done);
	json_decref(b);
	return CLI_OK;
}

static int run_backups(int argc, char **argv)
{
	bool json = false;
	const char *app, *pos[1];
	size_t npos;
	int r = parse(&cli_verb_pg_backups, argc, argv, &json, pos, 1, &npos, &app);
	if (r)
		return r;
	_cleanup_free_ char *path = NULL;
	json_t *a = NULL, *list = NULL;
	if ((r = backups_path(app, npos ? pos[0] : NULL, NULL, "", &path, &a)) ||
	    (r = cli_api("GET", path, NULL, &list))) {
		json_decref(a);
		return r;
	}
	if (json) {
		cli_print_json(list);
	} else {
		printf("=== Backups\n");
		if (json_array_size(list) == 0)
			printf("No backups. Capture one with `dyno pg:backups:capture -a %s`.\n",
			       app);
		else
			printf("%-6s %-22s %-10s %s\n", "ID", "Created at", "Size", "Database");
		size_t i;
		json_t *b;
		json_array_foreach(list, i, b)
		{
			char size[32];
			human_size((long long)json_integer_value(json_object_get(b, "size")), size,
			           sizeof(size));
			printf("%-6s %-22s %-10s %.*s\n", str(b, "id"), str(b, "created_at"), size,
			       (int)(strlen(var_of(a)) - 4), var_of(a));
		}
	}
	json_decref(list);
	json_decref(a);
	return CLI_OK;
}

const struct cli_verb cli_verb_pg_backups = {
    .name = "pg:backups",
    .run = run_backups,
    .usage = "pg:backups [NAME] -a APP [--json]",
    .summary = "list the database's backups (bNNN)",
};

static int run_capture(int argc, char **argv)
{
	bool json = false;
	const char *app, *pos[1];
	size_t npos;
	int r = parse(&cli_verb_pg_backups_capture, argc, argv, &json, pos, 1, &npos, &app);
	if (r)
		return r;
	_cleanup_free_ char *path = NULL;
	if ((r = backups_path(app, npos ? pos[0] : NULL, NULL, "", &path, NULL)))
		return r;
	return post_backup(path, "Capturing a backup of", app, "");
}

const struct cli_verb cli_verb_pg_backups_capture = {
    .name = "pg:backups:capture",
    .run = run_capture,
    .usage = "pg:backups:capture [NAME] -a APP",
    .summary = "capture a backup now (pg_dump's custom format, kept under the state dir)",
};

/* [bNNN] -a APP [--addon NAME] and the verb's option opt into *val. */
static int backup_parse(const struct cli_verb *verb, int argc, char **argv, const char *opt,
                        char short_opt, const char **val, const char **addon, const char **pos,
                        size_t *npos, const char **ret_app)
{
	const char *app_opt = NULL;
	const struct cli_opt opts[] = {{"--app", 'a', true, &app_opt, NULL},
	                               {opt, short_opt, true, val, NULL},
	                               {"--addon", 0, true, addon, NULL},
	                               END_OPT};
	int r = cli_parse(verb, argc, argv, opts, pos, 1, npos);
	if (r)
		return r;
	*ret_app = cli_app(app_opt);
	if (*ret_app == NULL)
		return cli_usage_error(verb, "missing -a APP (or $DYNO_APP)");
	if ((*npos && !name_ok(pos[0])) || (*addon && !name_ok(*addon)))
		return cli_usage_error(verb, "bad backup or add-on name");
	return CLI_OK;
}

static int run_restore(int argc, char **argv)
{
	const char *app, *confirm = NULL, *addon = NULL, *pos[1];
	size_t npos;
	int r = backup_parse(&cli_verb_pg_backups_restore, argc, argv, "--confirm", 0, &confirm,
	                     &addon, pos, &npos, &app);
	if (r)
		return r;
	if (confirm == NULL || strcmp(confirm, app) != 0)
		return cli_error(
		    "this replaces the data of %s's database: confirm with --confirm %s", app, app);
	_cleanup_free_ char *path = NULL;
	const char *id = npos ? pos[0] : NULL;
	if ((r = backups_path(app, addon, id ? id : "", id ? "/actions/restore" : "", &path, NULL)))
		return r;
	if (!id) { /* the newest: the API's list names it */
		json_t *list = NULL;
		if ((r = cli_api("GET", path, NULL, &list)))
			return r;
		const char *newest = str(json_array_get(list, json_array_size(list) - 1), "id");
		if (!newest[0]) {
			json_decref(list);
			return cli_error("%s has no backups to restore", app);
		}
		free(path);
		path = NULL;
		r = backups_path(app, addon, newest, "/actions/restore", &path, NULL);
		json_decref(list);
		if (r)
			return r;
	}
	return post_backup(path, "Restoring", app, " restored");
}

const struct cli_verb cli_verb_pg_backups_restore = {
    .name = "pg:backups:restore",
    .run = run_restore,
    .usage = "pg:backups:restore [bNNN] --confirm APP -a APP [--addon NAME]",
    .summary = "replace the database's data with a backup's (default: the newest)",
    .help = "All or nothing (one transaction); the objects stay the role's.\n",
};

static int write_out(void *ctx, const char *p, size_t n)
{
	return fwrite(p, 1, n, ctx) == n ? 0 : -1;
}

static int run_download(int argc, char **argv)
{
	const char *app, *out = NULL, *addon = NULL, *pos[1];
	size_t npos;
	int r = backup_parse(&cli_verb_pg_backups_download, argc, argv, "--output", 'o', &out,
	                     &addon, pos, &npos, &app);
	if (r)
		return r;
	if (out == NULL)
		return cli_usage_error(&cli_verb_pg_backups_download, "missing -o FILE");
	_cleanup_free_ char *path = NULL;
	/* no id: the newest ("latest" is no id the API knows: it picks) */
	if ((r = backups_path(app, addon, npos ? pos[0] : "latest", "", &path, NULL)))
		return r;
	_cleanup_free_ char *tmp = NULL;
	if (asprintf(&tmp, "%s.part", out) < 0)
		return cli_error("no memory");
	FILE *f = fopen(tmp, "we");
	if (!f)
		return cli_error("%s: %m", tmp);
	struct api_response resp = {0};
	struct dy_error *err = NULL;
	r = api_client_stream(path, write_out, f, &resp, &err);
	bool ok = fclose(f) == 0 && r == 0 && resp.status >= 200 && resp.status <= 299;
	if (!ok) {
		unlink(tmp);
		if (r < 0) {
			cli_error("%s", dy_error_msg(err));
			dy_error_free(&err);
			api_response_clear(&resp);
			return CLI_ERROR;
		}
		r = cli_api_result(&resp, NULL);
		return r ? r : cli_error("writing %s failed", tmp);
	}
	api_response_clear(&resp);
	if (rename(tmp, out) < 0) {
		unlink(tmp);
		return cli_error("%s: %m", out);
	}
	printf("Downloaded to %s\n", out);
	return CLI_OK;
}

const struct cli_verb cli_verb_pg_backups_download = {
    .name = "pg:backups:download",
    .run = run_download,
    .usage = "pg:backups:download [bNNN] -o FILE -a APP [--addon NAME]",
    .summary = "save a backup (default: the newest) to FILE: pg_restore reads it",
};
