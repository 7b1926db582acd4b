/* releases, rollback */
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

static int version_of(const json_t *rel)
{
	return (int)json_integer_value(json_object_get(rel, "version"));
}

static bool succeeded(const json_t *rel)
{
	const char *s = json_string_value(json_object_get(rel, "status"));
	return s && strcmp(s, "succeeded") == 0;
}

/* The current release: the newest succeeded one (docs/design.md). */
static const json_t *current(const json_t *list)
{
	for (size_t i = json_array_size(list); i-- > 0;)
		if (succeeded(json_array_get(list, i)))
			return json_array_get(list, i);
	return NULL;
}

static int run_releases(int argc, char **argv)
{
	bool json = false;
	const char *app_opt = NULL;
	const struct cli_opt opts[] = {
	    {"--app", 'a', true, &app_opt, NULL}, {"--json", 0, false, NULL, &json}, END_OPT};
	size_t npos;
	int r = cli_parse(&cli_verb_releases, argc, argv, opts, NULL, 0, &npos);
	if (r)
		return r;
	const char *app = cli_app(app_opt);
	if (app == NULL)
		return cli_usage_error(&cli_verb_releases, "missing -a APP (or $DYNO_APP)");
	_cleanup_free_ char *path = cli_app_path(app, "/releases");
	json_t *list = NULL;
	if ((r = cli_api("GET", path, NULL, &list)))
		return r;
	if (json) {
		cli_print_json(list);
		json_decref(list);
		return CLI_OK;
	}
	const json_t *cur = current(list);
	if (cur)
		printf("=== %s Releases - Current: v%d\n", app, version_of(cur));
	else
		printf("=== %s Releases\n", app);
	/* newest first, as heroku releases */
	for (size_t i = json_array_size(list); i-- > 0;) {
		json_t *rel = json_array_get(list, i);
		char v[16];
		snprintf(v, sizeof(v), "v%d", version_of(rel));
		const char *st = json_string_value(json_object_get(rel, "status"));
		printf("%-5s %-40s %-9s %s\n", v,
		       json_string_value(json_object_get(rel, "description")), st ? st : "",
		       json_string_value(json_object_get(rel, "created_at")));
	}
	json_decref(list);
	return CLI_OK;
}

const struct cli_verb cli_verb_releases = {
    .name = "releases",
    .run = run_releases,
    .usage = "releases -a APP [--json]",
    .summary = "list the releases, newest first",
};

static int run_rollback(int argc, char **argv)
{
	const char *app_opt = NULL;
	bool no_wait = false;
	const struct cli_opt opts[] = {
	    {"--app", 'a', true, &app_opt, NULL}, {"--no-wait", 0, false, NULL, &no_wait}, END_OPT};
	const char *pos[1];
	size_t npos;
	int r = cli_parse(&cli_verb_rollback, argc, argv, opts, pos, 1, &npos);
	if (r)
		return r;
	const char *app = cli_app(app_opt);
	if (app == NULL)
		return cli_usage_error(&cli_verb_rollback, "missing -a APP (or $DYNO_APP)");
	_cleanup_free_ char *path = cli_app_path(app, "/releases");
	int target = 0;
	if (npos == 1) {
		const char *s = pos[0][0] == 'v' ? pos[0] + 1 : pos[0];
		char *end;
		long v = strtol(s, &end, 10);
		if (*s < '1' || *s > '9' || *end || v > 100000000)
			return cli_usage_error(&cli_verb_rollback,
			                       "expected a release such as v3, got \"%s\"", pos[0]);
		target = (int)v;
	} else {
		/* the one before the current: the newest succeeded release older
		 * than the current one */
		json_t *list = NULL;
		if ((r = cli_api("GET", path, NULL, &list)))
			return r;
		const json_t *cur = current(list);
		for (size_t i = json_array_size(list); cur && i-- > 0;) {
			json_t *rel = json_array_get(list, i);
			if (version_of(rel) < version_of(cur) && succeeded(rel) &&
			    json_is_object(json_object_get(rel, "slug"))) {
				target = version_of(rel);
				break;
			}
		}
		json_decref(list);
		if (target == 0)
			return cli_error("%s has no earlier release with a slug to roll back to",
			                 app);
	}
	char vbuf[16];
	snprintf(vbuf, sizeof(vbuf), "v%d", target);
	json_t *body = json_pack("{s:s}", "release", vbuf);
	json_t *rel = NULL;
	printf("Rolling back %s to %s... ", app, vbuf);
	fflush(stdout);
	cli_wait_begin(NULL);
	r = cli_api("POST", path, body, &rel);
	json_decref(body);
	if (r) {
		printf("failed\n");
		return r;
	}
	const char *st = json_string_value(json_object_get(rel, "status"));
	if (st && strcmp(st, "failed") == 0) {
		printf("failed\n");
		r = cli_wait_release(app, rel); /* names the failure */
	} else if (no_wait) {
		printf("done, v%d%s\n", version_of(rel),
		       st && strcmp(st, "pending") == 0 ? " (pending)" : "");
	} else {
		printf("created v%d\n", version_of(rel));
		r = cli_wait_release(app, rel);
	}
	json_decref(rel);
	return r;
}

const struct cli_verb cli_verb_rollback = {
    .name = "rollback",
    .run = run_rollback,
    .usage = "rollback [vN] -a APP [--no-wait]",
    .summary = "restore a release's slug and config vars as a new release",
    .help = "Without vN: the newest succeeded release before the current one.\n"
            "Waits for the release as deploy does; --no-wait returns once it exists.\n",
};
