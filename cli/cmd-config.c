/* config, config:set, config:get, config:unset */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/api-client.h"
#include "cli/cli.h"
#include "cli/release-wait.h"
#include "common/cleanup.h"

#define END_OPT                                                                                    \
	{                                                                                          \
		NULL, 0, false, NULL, NULL                                                         \
	}

static void print_vars(const char *app, json_t *vars)
{
	printf("=== %s Config Vars\n", app);
	size_t w = 0;
	const char *k;
	json_t *v;
	json_object_foreach(vars, k, v) if (strlen(k) > w) w = strlen(k);
	json_object_foreach(vars, k, v)
	{
		printf("%s:%*s %s\n", k, (int)(w - strlen(k)), "", json_string_value(v));
	}
}

static int run_config(int argc, char **argv)
{
	bool json = false;
	const char *app_opt = NULL;
	const struct cli_opt opts[] = {
	    {"--app", 'a', true, &app_opt, NULL}, {"--json", 0, false, NULL, &json}, END_OPT};
	size_t npos;
	int r = cli_parse(&cli_verb_config, argc, argv, opts, NULL, 0, &npos);
	if (r)
		return r;
	const char *app = cli_app(app_opt);
	if (app == NULL)
		return cli_usage_error(&cli_verb_config, "missing -a APP (or $DYNO_APP)");
	_cleanup_free_ char *path = cli_app_path(app, "/config-vars");
	json_t *vars = NULL;
	if ((r = cli_api("GET", path, NULL, &vars)))
		return r;
	if (json)
		cli_print_json(vars);
	else
		print_vars(app, vars);
	json_decref(vars);
	return CLI_OK;
}

const struct cli_verb cli_verb_config = {
    .name = "config",
    .run = run_config,
    .usage = "config -a APP [--json]",
    .summary = "show the config vars",
};

/* The version of the app's newest release, 0 when none (or unknown). */
int cli_newest_version(const char *app)
{
	_cleanup_free_ char *path = cli_app_path(app, "/releases");
	json_t *list = NULL;
	int v = 0;
	if (cli_api("GET", path, NULL, &list) == CLI_OK && json_array_size(list))
		v = (int)json_integer_value(
		    json_object_get(json_array_get(list, json_array_size(list) - 1), "version"));
	if (list)
		json_decref(list);
	return v;
}

/* Prints "done, vN" from the app's newest release, or waits for it
 * (release-wait.h) unless no_wait or the change made no release (its
 * version is still before). */
int cli_finish_release(const char *app, int before, bool no_wait)
{
	_cleanup_free_ char *path = cli_app_path(app, "/releases");
	json_t *list = NULL;
	int r = CLI_OK;
	if (cli_api("GET", path, NULL, &list) == CLI_OK && json_array_size(list)) {
		json_t *last = json_array_get(list, json_array_size(list) - 1);
		int version = (int)json_integer_value(json_object_get(last, "version"));
		const char *st = json_string_value(json_object_get(last, "status"));
		if (version == before) {
			printf("done, v%d (no change)\n", version);
		} else if (st && strcmp(st, "failed") == 0) {
			printf("failed\n");
			r = cli_wait_release(app, last); /* names the failure */
		} else if (no_wait) {
			printf("done, v%d%s\n", version,
			       st && strcmp(st, "pending") == 0 ? " (pending)" : "");
		} else {
			printf("created v%d\n", version);
			r = cli_wait_release(app, last);
		}
	} else {
		printf("done\n");
	}
	if (list)
		json_decref(list);
	return r;
}

/* Sends the changes in body as one PATCH, printing what it did. */
static int patch(const char *app, json_t *body, const char *what, bool no_wait)
{
	_cleanup_free_ char *path = cli_app_path(app, "/config-vars");
	printf("%s and restarting %s... ", what, app);
	fflush(stdout);
	json_t *vars = NULL;
	int before = cli_newest_version(app);
	cli_wait_begin(NULL);
	int r = cli_api("PATCH", path, body, &vars);
	if (r) {
		printf("failed\n");
		return r;
	}
	json_decref(vars);
	return cli_finish_release(app, before, no_wait);
}

static int run_set(int argc, char **argv)
{
	const char *app_opt = NULL;
	bool no_wait = false;
	const struct cli_opt opts[] = {
	    {"--app", 'a', true, &app_opt, NULL}, {"--no-wait", 0, false, NULL, &no_wait}, END_OPT};
	const char *pos[256];
	size_t npos;
	int r = cli_parse(&cli_verb_config_set, argc, argv, opts, pos, ELEMENTSOF(pos), &npos);
	if (r)
		return r;
	const char *app = cli_app(app_opt);
	if (app == NULL)
		return cli_usage_error(&cli_verb_config_set, "missing -a APP (or $DYNO_APP)");
	if (npos == 0)
		return cli_usage_error(&cli_verb_config_set, "missing KEY=VALUE");
	json_t *body = json_object();
	char what[512] = "Setting ";
	for (size_t i = 0; i < npos; i++) {
		const char *eq = strchr(pos[i], '=');
		if (eq == NULL || eq == pos[i]) {
			json_decref(body);
			return cli_usage_error(&cli_verb_config_set,
			                       "expected KEY=VALUE, got \"%s\"", pos[i]);
		}
		_cleanup_free_ char *key = strndup(pos[i], (size_t)(eq - pos[i]));
		json_object_set_new(body, key, json_string(eq + 1));
		size_t len = strlen(what);
		snprintf(what + len, sizeof(what) - len, "%s%s", i ? ", " : "", key);
	}
	r = patch(app, body, what, no_wait);
	json_decref(body);
	return r;
}

const struct cli_verb cli_verb_config_set = {
    .name = "config:set",
    .run = run_set,
    .usage = "config:set KEY=VALUE... -a APP [--no-wait]",
    .summary = "set config vars (one new release)",
    .help = "KEY matches [A-Za-z_][A-Za-z0-9_]*; VALUE is everything after the first '='.\n"
            "Waits for the release as deploy does; --no-wait returns once it exists.\n",
};

static int run_unset(int argc, char **argv)
{
	const char *app_opt = NULL;
	bool no_wait = false;
	const struct cli_opt opts[] = {
	    {"--app", 'a', true, &app_opt, NULL}, {"--no-wait", 0, false, NULL, &no_wait}, END_OPT};
	const char *pos[256];
	size_t npos;
	int r = cli_parse(&cli_verb_config_unset, argc, argv, opts, pos, ELEMENTSOF(pos), &npos);
	if (r)
		return r;
	const char *app = cli_app(app_opt);
	if (app == NULL)
		return cli_usage_error(&cli_verb_config_unset, "missing -a APP (or $DYNO_APP)");
	if (npos == 0)
		return cli_usage_error(&cli_verb_config_unset, "missing KEY");
	json_t *body = json_object();
	char what[512] = "Unsetting ";
	for (size_t i = 0; i < npos; i++) {
		json_object_set_new(body, pos[i], json_null());
		size_t len = strlen(what);
		snprintf(what + len, sizeof(what) - len, "%s%s", i ? ", " : "", pos[i]);
	}
	r = patch(app, body, what, no_wait);
	json_decref(body);
	return r;
}

const struct cli_verb cli_verb_config_unset = {
    .name = "config:unset",
    .run = run_unset,
    .usage = "config:unset KEY... -a APP [--no-wait]",
    .summary = "remove config vars (one new release)",
    .help = "Waits for the release as deploy does; --no-wait returns once it exists.\n",
};

static int run_get(int argc, char **argv)
{
	const char *app_opt = NULL;
	const struct cli_opt opts[] = {{"--app", 'a', true, &app_opt, NULL}, END_OPT};
	const char *pos[1];
	size_t npos;
	int r = cli_parse(&cli_verb_config_get, argc, argv, opts, pos, 1, &npos);
	if (r)
		return r;
	const char *app = cli_app(app_opt);
	if (app == NULL)
		return cli_usage_error(&cli_verb_config_get, "missing -a APP (or $DYNO_APP)");
	if (npos != 1)
		return cli_usage_error(&cli_verb_config_get, "missing KEY");
	_cleanup_free_ char *path = cli_app_path(app, "/config-vars");
	json_t *vars = NULL;
	if ((r = cli_api("GET", path, NULL, &vars)))
		return r;
	const char *v = json_string_value(json_object_get(vars, pos[0]));
	/* as heroku config:get: the bare value, an empty line when unset */
	printf("%s\n", v ? v : "");
	json_decref(vars);
	return CLI_OK;
}

const struct cli_verb cli_verb_config_get = {
    .name = "config:get",
    .run = run_get,
    .usage = "config:get KEY -a APP",
    .summary = "print one config var's bare value",
    .help = "Prints an empty line when KEY is not set (as heroku config:get).\n",
};
