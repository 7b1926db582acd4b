/* ps, ps:scale, ps:restart, ps:stop: the dynos and the formation of an app
 * (GET /apps/{app}/dynos and formation, PATCH formation, DELETE dynos, the
 * stop action; docs/cli.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/api-client.h"
#include "cli/cli.h"
#include "cli/release-wait.h"
#include "common/cleanup.h"

#define END_OPT                                                                                    \
	{                                                                                          \
		NULL, 0, false, NULL, NULL                                                         \
	}

/* The app's dynos, or NULL (*ret_none set) when dynod runs none (501). */
static int get_dynos(const char *app, json_t **ret, bool *ret_none)
{
	_cleanup_free_ char *path = cli_app_path(app, "/dynos");
	struct api_response resp = {0};
	struct dy_error *err = NULL;
	*ret = NULL;
	*ret_none = false;
	if (api_client_request("GET", path, NULL, 0, &resp, &err) < 0) {
		fprintf(stderr, "dyno: error: %s\n", dy_error_msg(err));
		dy_error_free(&err);
		return CLI_ERROR;
	}
	if (resp.status == 501) {
		api_response_clear(&resp);
		*ret_none = true;
		return CLI_OK;
	}
	int r = cli_api_result(&resp, ret);
	api_response_clear(&resp);
	return r;
}

/* "2026/12/06 05:00:00 +0000 (~ 3m ago)" of an RFC 3339 UTC time, as
 * heroku ps shows it; the text as it is when it does not parse. */
static void ps_when(const char *iso, char *buf, size_t size)
{
	struct tm tm = {0};
	const char *end = iso ? strptime(iso, "%Y-%m-%dT%H:%M:%SZ", &tm) : NULL;
	if (!end || *end) {
		snprintf(buf, size, "%s", iso ? iso : "?");
		return;
	}
	time_t t = timegm(&tm), now = time(NULL);
	long long ago = now > t ? (long long)(now - t) : 0;
	char day[40], rel[24];
	strftime(day, sizeof(day), "%Y/%m/%d %H:%M:%S +0000", &tm);
	if (ago < 60)
		snprintf(rel, sizeof(rel), "%llds", ago);
	else if (ago < 3600)
		snprintf(rel, sizeof(rel), "%lldm", ago / 60);
	else if (ago < 86400)
		snprintf(rel, sizeof(rel), "%lldh", ago / 3600);
	else
		snprintf(rel, sizeof(rel), "%lldd", ago / 86400);
	snprintf(buf, size, "%s (~ %s ago)", day, rel);
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
	json_t *dynos = NULL;
	bool none = false;
	if ((r = get_dynos(app, &dynos, &none)))
		return r;
	if (json) {
		cli_print_json(dynos ? dynos : json_array());
		json_decref(dynos);
		return CLI_OK;
	}
	_cleanup_free_ char *path = cli_app_path(app, "/formation");
	json_t *list = NULL;
	if ((r = cli_api("GET", path, NULL, &list))) {
		json_decref(dynos);
		return r;
	}
	size_t i, j;
	json_t *f, *d;
	if (json_array_size(list) == 0)
		printf("No process types: %s has no release with a slug yet.\n", app);
	bool first = true;
	json_array_foreach(list, i, f)
	{
		const char *type = json_string_value(json_object_get(f, "type"));
		printf("%s=== %s (%s): `%s` (%lld)\n", first ? "" : "\n", type,
		       json_string_value(json_object_get(f, "size")),
		       json_string_value(json_object_get(f, "command")),
		       (long long)json_integer_value(json_object_get(f, "quantity")));
		first = false;
		json_array_foreach(dynos, j, d)
		{
			if (strcmp(json_string_value(json_object_get(d, "type")), type) != 0)
				continue;
			char when[96];
			ps_when(json_string_value(json_object_get(d, "updated_at")), when,
			        sizeof(when));
			printf("%s: %s %s", json_string_value(json_object_get(d, "name")),
			       json_string_value(json_object_get(d, "state")), when);
			/* during a rollout: the old one beside its successor */
			if (json_is_true(json_object_get(d, "stopping")))
				printf(" (v%lld, stopping)",
				       (long long)json_integer_value(
				           json_object_get(json_object_get(d, "release"), "version")));
			printf("\n");
		}
	}
	/* one-offs: the release phase, `dyno run` */
	size_t noneoff = 0;
	json_array_foreach(dynos, j, d)
	{
		const char *type = json_string_value(json_object_get(d, "type"));
		noneoff += strcmp(type, "release") == 0 || strcmp(type, "run") == 0;
	}
	if (noneoff)
		printf("%s=== run: one-off processes (%zu)\n", first ? "" : "\n", noneoff);
	json_array_foreach(dynos, j, d)
	{
		const char *type = json_string_value(json_object_get(d, "type"));
		if (strcmp(type, "release") != 0 && strcmp(type, "run") != 0)
			continue;
		char when[96];
		ps_when(json_string_value(json_object_get(d, "updated_at")), when, sizeof(when));
		printf("%s (%s): %s %s: %s\n", json_string_value(json_object_get(d, "name")),
		       json_string_value(json_object_get(d, "size")),
		       json_string_value(json_object_get(d, "state")), when,
		       json_string_value(json_object_get(d, "command")));
	}
	if (none)
		printf("(this dynod runs no dynos: it has no launcher)\n");
	json_decref(list);
	json_decref(dynos);
	return CLI_OK;
}

const struct cli_verb cli_verb_ps = {
    .name = "ps",
    .run = run_ps,
    .usage = "ps -a APP [--json]",
    .summary = "show the dynos, under their process types",
    .help = "--json prints the API's dyno objects (name, type, state, command, size,\n"
            "release, addr, created_at, updated_at).\n",
};

/* DELETE /apps/APP/dynos[/WHICH] or POST .../dynos/DYNO/actions/stop */
static int dyno_action(const struct cli_verb *verb, int argc, char **argv, bool stop)
{
	const char *app_opt = NULL;
	bool no_wait = false;
	const struct cli_opt opts[] = {
	    {"--app", 'a', true, &app_opt, NULL}, {"--no-wait", 0, false, NULL, &no_wait}, END_OPT};
	const struct cli_opt stop_opts[] = {{"--app", 'a', true, &app_opt, NULL}, END_OPT};
	const char *pos[2];
	size_t npos;
	int r = cli_parse(verb, argc, argv, stop ? stop_opts : opts, pos, ELEMENTSOF(pos), &npos);
	if (r)
		return r;
	const char *app = cli_app(app_opt);
	if (app == NULL)
		return cli_usage_error(verb, "missing -a APP (or $DYNO_APP)");
	if (npos > 1 || (stop && npos != 1))
		return cli_usage_error(verb, stop ? "expected one DYNO" : "expected [TYPE|DYNO]");
	const char *which = npos ? pos[0] : NULL;
	if (which && (strchr(which, '/') || strchr(which, '?') || strchr(which, '%')))
		return cli_usage_error(verb, "bad dyno or type \"%s\"", which);
	_cleanup_free_ char *suffix = NULL;
	if (asprintf(&suffix, "/dynos%s%s%s", which ? "/" : "", which ? which : "",
	             stop ? "/actions/stop" : "") < 0)
		return CLI_ERROR;
	_cleanup_free_ char *path = cli_app_path(app, suffix);
	printf("%s %s... ", stop ? "Stopping" : "Restarting", which ? which : "all dynos");
	fflush(stdout);
	json_t *res = NULL;
	cli_wait_begin(stop || no_wait ? NULL : app);
	r = cli_api(stop ? "POST" : "DELETE", path, NULL, &res);
	json_decref(res);
	if (r || stop || no_wait) {
		printf(r ? "failed\n" : "done\n");
		return r;
	}
	printf("ok\n");
	return cli_wait_restart(app, which);
}

static int run_restart(int argc, char **argv)
{
	return dyno_action(&cli_verb_ps_restart, argc, argv, false);
}

const struct cli_verb cli_verb_ps_restart = {
    .name = "ps:restart",
    .run = run_restart,
    .usage = "ps:restart [TYPE|DYNO] -a APP [--no-wait]",
    .summary = "restart every dyno, those of a process type, or one",
    .help = "Then waits for the restarted web dynos to be up (status 1 naming a crash);\n"
            "--no-wait returns once the restart is asked.\n",
};

static int run_stop(int argc, char **argv)
{
	return dyno_action(&cli_verb_ps_stop, argc, argv, true);
}

const struct cli_verb cli_verb_ps_stop = {
    .name = "ps:stop",
    .run = run_stop,
    .usage = "ps:stop DYNO -a APP",
    .summary = "stop a dyno (a formation dyno is started again)",
};

static int run_scale(int argc, char **argv)
{
	const char *app_opt = NULL;
	const struct cli_opt opts[] = {{"--app", 'a', true, &app_opt, NULL}, END_OPT};
	const char *pos[64];
	size_t npos;
	int r = cli_parse(&cli_verb_ps_scale, argc, argv, opts, pos, ELEMENTSOF(pos), &npos);
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
