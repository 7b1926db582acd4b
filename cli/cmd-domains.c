/* domains, domains:add, domains:remove, maintenance, maintenance:on,
 * maintenance:off: the hostnames the router answers an app on, and its
 * maintenance mode (GET|POST /apps/{app}/domains, DELETE
 * /apps/{app}/domains/{hostname}, PATCH /apps/{app}; docs/cli.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/api-client.h"
#include "cli/cli.h"
#include "common/cleanup.h"

#define END_OPT                                                                                    \
	{                                                                                          \
		NULL, 0, false, NULL, NULL                                                         \
	}

/* Parses [-a APP] [--json] and npos_want words; *ret_app the app. */
static int parse(const struct cli_verb *verb, int argc, char **argv, bool *json,
                 const char **pos, size_t npos_want, const char **ret_app)
{
	const char *app_opt = NULL;
	const struct cli_opt with_json[] = {
	    {"--app", 'a', true, &app_opt, NULL}, {"--json", 0, false, NULL, json}, END_OPT};
	const struct cli_opt plain[] = {{"--app", 'a', true, &app_opt, NULL}, END_OPT};
	size_t npos;
	int r = cli_parse(verb, argc, argv, json ? with_json : plain, pos, npos_want, &npos);
	if (r)
		return r;
	*ret_app = cli_app(app_opt);
	if (*ret_app == NULL)
		return cli_usage_error(verb, "missing -a APP (or $DYNO_APP)");
	if (npos != npos_want)
		return cli_usage_error(verb, npos_want ? "expected one HOSTNAME" : "unexpected word");
	/* a hostname goes into the path */
	for (size_t i = 0; i < npos; i++)
		if (strpbrk(pos[i], "/?%#") || pos[i][0] == '\0')
			return cli_usage_error(verb, "bad hostname \"%s\"", pos[i]);
	return CLI_OK;
}

static int run_domains(int argc, char **argv)
{
	bool json = false;
	const char *app;
	int r = parse(&cli_verb_domains, argc, argv, &json, NULL, 0, &app);
	if (r)
		return r;
	_cleanup_free_ char *path = cli_app_path(app, "/domains");
	json_t *list = NULL;
	if ((r = cli_api("GET", path, NULL, &list)))
		return r;
	if (json) {
		cli_print_json(list);
		json_decref(list);
		return CLI_OK;
	}
	size_t i;
	json_t *d;
	printf("=== %s Default Domain\n", app);
	json_array_foreach(list, i, d)
	{
		if (strcmp(json_string_value(json_object_get(d, "kind")), "default") == 0)
			printf("%s\n", json_string_value(json_object_get(d, "hostname")));
	}
	size_t ncustom = json_array_size(list) ? json_array_size(list) - 1 : 0;
	if (ncustom) {
		printf("\n=== %s Custom Domains\n", app);
		json_array_foreach(list, i, d)
		{
			if (strcmp(json_string_value(json_object_get(d, "kind")), "custom") == 0)
				printf("%s\n", json_string_value(json_object_get(d, "hostname")));
		}
	}
	json_decref(list);
	return CLI_OK;
}

const struct cli_verb cli_verb_domains = {
    .name = "domains",
    .run = run_domains,
    .usage = "domains -a APP [--json]",
    .summary = "list the hostnames the router answers the app on",
};

static int run_domains_add(int argc, char **argv)
{
	const char *app, *pos[1];
	int r = parse(&cli_verb_domains_add, argc, argv, NULL, pos, 1, &app);
	if (r)
		return r;
	_cleanup_free_ char *path = cli_app_path(app, "/domains");
	json_t *body = json_pack("{s:s}", "hostname", pos[0]);
	json_t *d = NULL;
	printf("Adding %s to %s... ", pos[0], app);
	fflush(stdout);
	r = cli_api("POST", path, body, &d);
	json_decref(body);
	if (r) {
		printf("failed\n");
		return r;
	}
	printf("done\n");
	json_decref(d);
	return CLI_OK;
}

const struct cli_verb cli_verb_domains_add = {
    .name = "domains:add",
    .run = run_domains_add,
    .usage = "domains:add HOSTNAME -a APP",
    .summary = "route HOSTNAME to the app too",
    .help = "Point the name's DNS at the host running dyno-router. A hostname is used by one\n"
            "app at most, and never one under the platform's domain.\n",
};

static int run_domains_remove(int argc, char **argv)
{
	const char *app, *pos[1];
	int r = parse(&cli_verb_domains_remove, argc, argv, NULL, pos, 1, &app);
	if (r)
		return r;
	_cleanup_free_ char *suffix = NULL;
	if (asprintf(&suffix, "/domains/%s", pos[0]) < 0)
		return cli_error("out of memory");
	_cleanup_free_ char *path = cli_app_path(app, suffix);
	json_t *d = NULL;
	printf("Removing %s from %s... ", pos[0], app);
	fflush(stdout);
	if ((r = cli_api("DELETE", path, NULL, &d))) {
		printf("failed\n");
		return r;
	}
	printf("done\n");
	json_decref(d);
	return CLI_OK;
}

const struct cli_verb cli_verb_domains_remove = {
    .name = "domains:remove",
    .run = run_domains_remove,
    .usage = "domains:remove HOSTNAME -a APP",
    .summary = "stop routing HOSTNAME to the app",
};

static int run_maintenance(int argc, char **argv)
{
	const char *app;
	int r = parse(&cli_verb_maintenance, argc, argv, NULL, NULL, 0, &app);
	if (r)
		return r;
	_cleanup_free_ char *path = cli_app_path(app, "");
	json_t *o = NULL;
	if ((r = cli_api("GET", path, NULL, &o)))
		return r;
	printf("%s\n", json_is_true(json_object_get(o, "maintenance")) ? "on" : "off");
	json_decref(o);
	return CLI_OK;
}

const struct cli_verb cli_verb_maintenance = {
    .name = "maintenance",
    .run = run_maintenance,
    .usage = "maintenance -a APP",
    .summary = "show whether the app is in maintenance mode (on or off)",
};

static int set_maintenance(const struct cli_verb *verb, int argc, char **argv, bool on)
{
	const char *app;
	int r = parse(verb, argc, argv, NULL, NULL, 0, &app);
	if (r)
		return r;
	_cleanup_free_ char *path = cli_app_path(app, "");
	json_t *body = json_pack("{s:b}", "maintenance", on);
	json_t *o = NULL;
	printf("%s maintenance mode for %s... ", on ? "Enabling" : "Disabling", app);
	fflush(stdout);
	r = cli_api("PATCH", path, body, &o);
	json_decref(body);
	if (r) {
		printf("failed\n");
		return r;
	}
	printf("done\n");
	json_decref(o);
	return CLI_OK;
}

static int run_maintenance_on(int argc, char **argv)
{
	return set_maintenance(&cli_verb_maintenance_on, argc, argv, true);
}

static int run_maintenance_off(int argc, char **argv)
{
	return set_maintenance(&cli_verb_maintenance_off, argc, argv, false);
}

const struct cli_verb cli_verb_maintenance_on = {
    .name = "maintenance:on",
    .run = run_maintenance_on,
    .usage = "maintenance:on -a APP",
    .summary = "answer every request with 503 and the maintenance page (H80)",
    .help = "The dynos keep running; `dyno run` and the logs work as before.\n",
};

const struct cli_verb cli_verb_maintenance_off = {
    .name = "maintenance:off",
    .run = run_maintenance_off,
    .usage = "maintenance:off -a APP",
    .summary = "route requests to the app's web dynos again",
};
