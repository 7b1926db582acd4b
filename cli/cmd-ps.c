/* ps, ps:scale */
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

static int run_ps(int argc, char **argv)
{
	bool json = false;
	const char *app_opt = NULL;
	const struct cli_opt opts[] = {
	    {"--app", 'a', true, &app_opt, NULL}, {"--json", 0, false, NULL, &json}, END_OPT};
	size_t npos;
	int r = cli_parse(&cli_verb_ps, argc, argv, opts, NULL, 0, &npos);
	if (r)
		return r;
	const char *app = cli_app(app_opt);
	if (app == NULL)
		return cli_usage_error(&cli_verb_ps, "missing -a APP (or $DYNO_APP)");
	/* dynos are not run yet (no launcher): ps shows the formation */
	_cleanup_free_ char *path = cli_app_path(app, "/formation");
	json_t *list = NULL;
	if ((r = cli_api("GET", path, NULL, &list)))
		return r;
	if (json) {
		cli_print_json(list);
	} else {
		size_t i;
		json_t *f;
		if (json_array_size(list) == 0)
			printf("No process types: %s has no release with a slug yet.\n", app);
		json_array_foreach(list, i, f)
		{
			printf("=== %s (%s): %s (%lld)\n",
			       json_string_value(json_object_get(f, "type")),
			       json_string_value(json_object_get(f, "size")),
			       json_string_value(json_object_get(f, "command")),
			       (long long)json_integer_value(json_object_get(f, "quantity")));
		}
	}
	json_decref(list);
	return CLI_OK;
}

const struct cli_verb cli_verb_ps = {
    .name = "ps",
    .run = run_ps,
    .usage = "ps -a APP [--json]",
    .summary = "show the formation: process types, quantity, size, command",
};

static int run_scale(int argc, char **argv)
{
	const char *app_opt = NULL;
	const struct cli_opt opts[] = {{"--app", 'a', true, &app_opt, NULL}, END_OPT};
	const char *pos[64];
	size_t npos;
	int r = cli_parse(&cli_verb_ps_scale, argc, argv, opts, pos, DY_ELEMENTSOF(pos), &npos);
	if (r)
		return r;
	const char *app = cli_app(app_opt);
	if (app == NULL)
		return cli_usage_error(&cli_verb_ps_scale, "missing -a APP (or $DYNO_APP)");
	if (npos == 0)
		return cli_usage_error(&cli_verb_ps_scale, "missing TYPE=N[:SIZE]");
	json_t *updates = json_array();
	for (size_t i = 0; i < npos; i++) {
		const char *eq = strchr(pos[i], '=');
		char *end = NULL;
		long q = eq ? strtol(eq + 1, &end, 10) : -1;
		if (eq == NULL || eq == pos[i] || end == eq + 1 || q < 0 ||
		    (*end != '\0' && (*end != ':' || end[1] == '\0')) || eq[1] == '-' ||
		    eq[1] == '+') {
			json_decref(updates);
			return cli_usage_error(&cli_verb_ps_scale,
			                       "expected TYPE=N[:SIZE], got \"%s\"", pos[i]);
		}
		_cleanup_free_ char *type = strndup(pos[i], (size_t)(eq - pos[i]));
		json_t *u = json_pack("{s:s, s:I}", "type", type, "quantity",
		                      (json_int_t)(q > 1000000 ? 1000000 : q));
		if (*end == ':')
			json_object_set_new(u, "size", json_string(end + 1));
		json_array_append_new(updates, u);
	}
	json_t *body = json_pack("{s:o}", "updates", updates);
	_cleanup_free_ char *path = cli_app_path(app, "/formation");
	json_t *list = NULL;
	printf("Scaling dynos... ");
	fflush(stdout);
	r = cli_api("PATCH", path, body, &list);
	json_decref(body);
	if (r) {
		printf("failed\n");
		return r;
	}
	printf("done, now running");
	size_t i;
	json_t *f;
	json_array_foreach(list, i, f)
	{
		printf("%s %s at %lld:%s", i ? "," : "",
		       json_string_value(json_object_get(f, "type")),
		       (long long)json_integer_value(json_object_get(f, "quantity")),
		       json_string_value(json_object_get(f, "size")));
	}
	printf("\n");
	json_decref(list);
	return CLI_OK;
}

const struct cli_verb cli_verb_ps_scale = {
    .name = "ps:scale",
    .run = run_scale,
    .usage = "ps:scale TYPE=N[:SIZE]... -a APP",
    .summary = "set how many dynos of each type run, and their size",
    .help = "TYPE must be a process type of the current release's Procfile (not release),\n"
            "N in 0..100, SIZE one of the configured sizes (standard-1x, standard-2x,\n"
            "performance-m, performance-l by default). All updates apply, or none.\n",
};
