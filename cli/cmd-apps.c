/* apps, apps:create, apps:info, apps:destroy, open */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/api-client.h"
#include "cli/cli.h"
#include "common/cleanup.h"

#define APP_OPT(v)                                                                                 \
	{                                                                                          \
		"--app", 'a', true, &(v), NULL                                                     \
	}
#define END_OPT                                                                                    \
	{                                                                                          \
		NULL, 0, false, NULL, NULL                                                         \
	}

static const char *str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "-";
}

static int run_apps(int argc, char **argv)
{
	bool json = false;
	const struct cli_opt opts[] = {{"--json", 0, false, NULL, &json}, END_OPT};
	size_t npos;
	int r = cli_parse(&cli_verb_apps, argc, argv, opts, NULL, 0, &npos);
	if (r)
		return r;
	json_t *list = NULL;
	if ((r = cli_api("GET", "/apps", NULL, &list)))
		return r;
	if (json) {
		cli_print_json(list);
	} else {
		size_t i;
		json_t *a;
		printf("=== Apps\n");
		json_array_foreach(list, i, a) puts(str(a, "name"));
	}
	json_decref(list);
	return CLI_OK;
}

const struct cli_verb cli_verb_apps = {
    .name = "apps",
    .run = run_apps,
    .usage = "apps [--json]",
    .summary = "list the apps",
};

static int run_create(int argc, char **argv)
{
	const char *pos[1];
	size_t npos;
	const struct cli_opt opts[] = {END_OPT};
	int r = cli_parse(&cli_verb_apps_create, argc, argv, opts, pos, 1, &npos);
	if (r)
		return r;
	if (npos != 1)
		return cli_usage_error(&cli_verb_apps_create, "missing NAME");
	json_t *body = json_pack("{s:s}", "name", pos[0]);
	json_t *app = NULL;
	printf("Creating %s... ", pos[0]);
	fflush(stdout);
	r = cli_api("POST", "/apps", body, &app);
	json_decref(body);
	if (r) {
		printf("failed\n");
		return r;
	}
	printf("done\n%s\n", str(app, "web_url"));
	json_decref(app);
	return CLI_OK;
}

const struct cli_verb cli_verb_apps_create = {
    .name = "apps:create",
    .run = run_create,
    .usage = "apps:create NAME",
    .summary = "create an app",
    .help = "NAME matches ^[a-z][a-z0-9-]{1,28}[a-z0-9]$. The app gets its own uid from the\n"
            "configured range and the URL http://NAME.<domain>:<router port>/.\n",
};

static int run_info(int argc, char **argv)
{
	bool json = false;
	const char *app_opt = NULL;
	const struct cli_opt opts[] = {
	    APP_OPT(app_opt), {"--json", 0, false, NULL, &json}, END_OPT};
	size_t npos;
	int r = cli_parse(&cli_verb_apps_info, argc, argv, opts, NULL, 0, &npos);
	if (r)
		return r;
	const char *app = cli_app(app_opt);
	if (app == NULL)
		return cli_usage_error(&cli_verb_apps_info, "missing -a APP (or $DYNO_APP)");
	_cleanup_free_ char *path = cli_app_path(app, "");
	json_t *o = NULL;
	if ((r = cli_api("GET", path, NULL, &o)))
		return r;
	if (json) {
		cli_print_json(o);
	} else {
		printf("=== %s\n", str(o, "name"));
		printf("Created at:  %s\n", str(o, "created_at"));
		printf("Released at: %s\n", str(o, "released_at"));
		printf("Web URL:     %s\n", str(o, "web_url"));
	}
	json_decref(o);
	return CLI_OK;
}

const struct cli_verb cli_verb_apps_info = {
    .name = "apps:info",
    .run = run_info,
    .usage = "apps:info -a APP [--json]",
    .summary = "show an app: created, released, web URL",
};

static int run_destroy(int argc, char **argv)
{
	const char *app_opt = NULL, *confirm = NULL;
	const char *pos[1];
	const struct cli_opt opts[] = {
	    APP_OPT(app_opt), {"--confirm", 0, true, &confirm, NULL}, END_OPT};
	size_t npos;
	int r = cli_parse(&cli_verb_apps_destroy, argc, argv, opts, pos, 1, &npos);
	if (r)
		return r;
	const char *app = npos ? pos[0] : cli_app(app_opt);
	if (app == NULL)
		app = confirm;
	if (app == NULL)
		return cli_usage_error(&cli_verb_apps_destroy, "missing --confirm NAME");
	if (confirm == NULL || strcmp(confirm, app) != 0)
		return cli_usage_error(&cli_verb_apps_destroy,
		                       "destroying %s removes its releases, config vars and slugs: "
		                       "confirm with --confirm %s",
		                       app, app);
	_cleanup_free_ char *path = cli_app_path(app, "");
	printf("Destroying %s... ", app);
	fflush(stdout);
	if ((r = cli_api("DELETE", path, NULL, NULL))) {
		printf("failed\n");
		return r;
	}
	printf("done\n");
	return CLI_OK;
}

const struct cli_verb cli_verb_apps_destroy = {
    .name = "apps:destroy",
    .run = run_destroy,
    .usage = "apps:destroy --confirm NAME [-a APP]",
    .summary = "destroy an app with its releases, config vars and unpacked slugs",
    .help = "The app is NAME, or -a APP / $DYNO_APP, which must then equal NAME. It is gone\n"
            "at once; its dynos stop (SIGTERM, grace, SIGKILL) and its unpacked slugs are\n"
            "removed when the last has exited.\n",
};

/* A graphical session to open a browser in: $DISPLAY or $WAYLAND_DISPLAY. */
static bool have_display(void)
{
	const char *x = getenv("DISPLAY"), *w = getenv("WAYLAND_DISPLAY");
	return (x && *x) || (w && *w);
}

/* xdg-open somewhere on $PATH? */
static bool have_xdg_open(void)
{
	const char *path = getenv("PATH");
	if (path == NULL || *path == '\0')
		return false;
	_cleanup_free_ char *dirs = strdup(path);
	if (dirs == NULL)
		return false;
	char *save = NULL;
	for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		char buf[4096];
		int n = snprintf(buf, sizeof(buf), "%s/xdg-open", *d ? d : ".");
		if (n > 0 && (size_t)n < sizeof(buf) && access(buf, X_OK) == 0)
			return true;
	}
	return false;
}

static int run_open(int argc, char **argv)
{
	const char *app_opt = NULL;
	const struct cli_opt opts[] = {APP_OPT(app_opt), END_OPT};
	size_t npos;
	int r = cli_parse(&cli_verb_open, argc, argv, opts, NULL, 0, &npos);
	if (r)
		return r;
	const char *app = cli_app(app_opt);
	if (app == NULL)
		return cli_usage_error(&cli_verb_open, "missing -a APP (or $DYNO_APP)");
	_cleanup_free_ char *path = cli_app_path(app, "");
	json_t *o = NULL;
	if ((r = cli_api("GET", path, NULL, &o)))
		return r;
	const char *url = json_string_value(json_object_get(o, "web_url"));
	if (url == NULL) {
		json_decref(o);
		return cli_error("the API gave no web_url for %s", app);
	}
	printf("%s\n", url);
	fflush(stdout);
	if (isatty(STDOUT_FILENO) && have_display() && have_xdg_open()) {
		pid_t pid = fork();
		if (pid == 0) {
			execlp("xdg-open", "xdg-open", url, (char *)NULL);
			_exit(127);
		}
		if (pid < 0) {
			json_decref(o);
			return cli_error("cannot run xdg-open: %m");
		}
		int st;
		while (waitpid(pid, &st, 0) < 0)
			;
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			json_decref(o);
			return cli_error("xdg-open %s failed", url);
		}
	}
	json_decref(o);
	return CLI_OK;
}

const struct cli_verb cli_verb_open = {
    .name = "open",
    .run = run_open,
    .usage = "open -a APP",
    .summary = "print the app's web URL (and open it with xdg-open on a desktop)",
    .help = "Prints the app's web_url (http://APP.<domain>:<port>/, the port of the\n"
            "router's first listen address). Only when stdout is a terminal, $DISPLAY or\n"
            "$WAYLAND_DISPLAY is set and xdg-open is on $PATH, it also runs `xdg-open URL`.\n",
};
