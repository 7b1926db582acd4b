/* builds, builds:info, builds:output, builds:create, builds:cache:purge,
 * buildpacks, buildpacks:set, buildpacks:add, buildpacks:clear
 * (docs/builds.md); cli_build_source() is also a git push's build. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/api-client.h"
#include "cli/cli.h"
#include "cli/release-wait.h"
#include "common/cleanup.h"

#define END_OPT                                                                                    \
	{                                                                                          \
		NULL, 0, false, NULL, NULL                                                         \
	}

static int to_stdout(void *ctx, const char *p, size_t n)
{
	(void)ctx;
	if (fwrite(p, 1, n, stdout) != n)
		return -1;
	fflush(stdout);
	return 0;
}

/* Streams build id's output to stdout until the build is over. */
static int stream_output(const char *app, const char *id)
{
	_cleanup_free_ char *suffix = NULL;
	if (asprintf(&suffix, "/builds/%s/output", id) < 0)
		return cli_error("out of memory");
	_cleanup_free_ char *path = cli_app_path(app, suffix);
	struct api_response resp = {0};
	struct dy_error *err = NULL;
	if (api_client_stream(path, to_stdout, NULL, &resp, &err) < 0) {
		cli_error("build output: %s", dy_error_msg(err));
		dy_error_free(&err);
		api_response_clear(&resp);
		return CLI_ERROR;
	}
	int r = CLI_OK;
	if (resp.status) /* not streamed: an error answer */
		r = cli_api_result(&resp, NULL);
	api_response_clear(&resp);
	return r;
}

int cli_build_source(const char *app, int fd, uint64_t size, const char *commit)
{
	_cleanup_free_ char *suffix = NULL;
	if (commit ? asprintf(&suffix, "/builds?commit=%s", commit) < 0
	           : !(suffix = strdup("/builds")))
		return cli_error("out of memory");
	_cleanup_free_ char *path = cli_app_path(app, suffix);
	cli_wait_begin(NULL);
	struct api_response resp = {0};
	struct dy_error *err = NULL;
	if (api_client_request_fd("POST", path, fd, size, NULL, NULL, &resp, &err) < 0) {
		cli_error("%s", dy_error_msg(err));
		dy_error_free(&err);
		return CLI_ERROR;
	}
	_cleanup_json_ json_t *build = NULL;
	int r = cli_api_result(&resp, &build);
	api_response_clear(&resp);
	if (r)
		return r;
	const char *id = json_string_value(json_object_get(build, "id"));
	if (!id)
		return cli_error("the build has no id");
	if ((r = stream_output(app, id)))
		return r;
	_cleanup_free_ char *one = NULL;
	if (asprintf(&one, "/builds/%s", id) < 0)
		return cli_error("out of memory");
	_cleanup_free_ char *bpath = cli_app_path(app, one);
	_cleanup_json_ json_t *done = NULL;
	if ((r = cli_api("GET", bpath, NULL, &done)))
		return r;
	const char *status = json_string_value(json_object_get(done, "status"));
	json_t *rel = json_object_get(done, "release");
	if (!status || strcmp(status, "succeeded") != 0 || !json_is_object(rel)) {
		const char *why = json_string_value(json_object_get(done, "failure"));
		return cli_error("build %.8s failed: %s", id, why ? why : "(no reason given)");
	}
	char rpath[64];
	snprintf(rpath, sizeof(rpath), "/releases/%lld",
	         (long long)json_integer_value(json_object_get(rel, "version")));
	_cleanup_free_ char *relpath = cli_app_path(app, rpath);
	_cleanup_json_ json_t *release = NULL;
	if ((r = cli_api("GET", relpath, NULL, &release)))
		return r;
	return cli_wait_release(app, release);
}

/* Tars dir with the app/ prefix into an unlinked temporary file (GNU tar,
 * .git left out), as git archive would. Returns the fd or -1. */
static int tar_dir(const char *dir, uint64_t *size)
{
	const char *tdir = getenv("TMPDIR");
	_cleanup_free_ char *tmp = NULL;
	if (asprintf(&tmp, "%s/dyno-build-XXXXXX", tdir && *tdir ? tdir : "/tmp") < 0)
		return -1;
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return cli_error("create %s: %s", tmp, strerror(errno)), -1;
	unlink(tmp);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(fd, 1);
		execlp("tar", "tar", "-C", dir, "--exclude=./.git", "--owner=0", "--group=0",
		       "--transform=s,^\\.,app,", "-cf", "-", ".", (char *)NULL);
		_exit(127);
	}
	int st = 0;
	struct stat sb;
	if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0 ||
	    fstat(fd, &sb) < 0 || lseek(fd, 0, SEEK_SET) < 0) {
		close(fd);
		return cli_error("tar %s failed", dir), -1;
	}
	*size = (uint64_t)sb.st_size;
	return fd;
}

static const char *need_app(const struct cli_verb *v, const char *opt)
{
	const char *app = cli_app(opt);
	if (!app)
		cli_usage_error(v, "missing -a APP (or $DYNO_APP)");
	return app;
}

static int run_create(int argc, char **argv)
{
	const char *app_opt = NULL, *pos[1];
	const struct cli_opt opts[] = {{"--app", 'a', true, &app_opt, NULL}, END_OPT};
	size_t npos;
	int r = cli_parse(&cli_verb_builds_create, argc, argv, opts, pos, 1, &npos);
	if (r)
		return r;
	const char *app = need_app(&cli_verb_builds_create, app_opt);
	if (!app)
		return CLI_USAGE;
	uint64_t size = 0;
	_cleanup_close_ int fd = tar_dir(npos ? pos[0] : ".", &size);
	if (fd < 0)
		return CLI_ERROR;
	r = cli_build_source(app, fd, size, NULL);
	if (r)
		fprintf(stderr, "dyno: build refused: the current release keeps serving\n");
	return r;
}

static int run_builds(int argc, char **argv)
{
	const char *app_opt = NULL;
	bool json = false;
	const struct cli_opt opts[] = {
	    {"--app", 'a', true, &app_opt, NULL}, {"--json", 0, false, NULL, &json}, END_OPT};
	size_t npos;
	int r = cli_parse(&cli_verb_builds, argc, argv, opts, NULL, 0, &npos);
	if (r)
		return r;
	const char *app = need_app(&cli_verb_builds, app_opt);
	if (!app)
		return CLI_USAGE;
	_cleanup_free_ char *path = cli_app_path(app, "/builds");
	_cleanup_json_ json_t *list = NULL;
	if ((r = cli_api("GET", path, NULL, &list)))
		return r;
	if (json) {
		cli_print_json(list);
		return CLI_OK;
	}
	printf("=== %s Builds\n", app);
	for (size_t i = json_array_size(list); i-- > 0;) {
		json_t *b = json_array_get(list, i), *rel = json_object_get(b, "release");
		char v[16] = "";
		if (json_is_object(rel))
			snprintf(v, sizeof(v), "v%lld",
			         (long long)json_integer_value(json_object_get(rel, "version")));
		const char *commit =
		    json_string_value(json_object_get(json_object_get(b, "source_blob"), "version"));
		printf("%s  %-9s %-5s %.7s  %s\n", json_string_value(json_object_get(b, "id")),
		       json_string_value(json_object_get(b, "status")), v, commit ? commit : "-",
		       json_string_value(json_object_get(b, "created_at")));
	}
	return CLI_OK;
}

static int run_output(int argc, char **argv)
{
	const char *app_opt = NULL, *pos[1];
	const struct cli_opt opts[] = {{"--app", 'a', true, &app_opt, NULL}, END_OPT};
	size_t npos;
	int r = cli_parse(&cli_verb_builds_output, argc, argv, opts, pos, 1, &npos);
	if (r)
		return r;
	const char *app = need_app(&cli_verb_builds_output, app_opt);
	if (!app)
		return CLI_USAGE;
	if (npos != 1)
		return cli_usage_error(&cli_verb_builds_output, "expected a build ID");
	return stream_output(app, pos[0]);
}

static int run_purge(int argc, char **argv)
{
	const char *app_opt = NULL;
	const struct cli_opt opts[] = {{"--app", 'a', true, &app_opt, NULL}, END_OPT};
	size_t npos;
	int r = cli_parse(&cli_verb_builds_cache_purge, argc, argv, opts, NULL, 0, &npos);
	if (r)
		return r;
	const char *app = need_app(&cli_verb_builds_cache_purge, app_opt);
	if (!app)
		return CLI_USAGE;
	_cleanup_free_ char *path = cli_app_path(app, "/build-cache");
	if ((r = cli_api("DELETE", path, NULL, NULL)))
		return r;
	printf("Purged the build cache of %s\n", app);
	return CLI_OK;
}

static int print_buildpacks(const char *app, const json_t *list)
{
	if (json_array_size(list) == 0) {
		printf("%s has no buildpacks set: the first built-in that detects the app builds "
		       "it\n",
		       app);
		return CLI_OK;
	}
	printf("=== %s Buildpack%s\n", app, json_array_size(list) > 1 ? "s" : "");
	for (size_t i = 0; i < json_array_size(list); i++) {
		json_t *bp = json_object_get(json_array_get(list, i), "buildpack");
		printf("%zu. %s\n", i + 1, json_string_value(json_object_get(bp, "url")));
	}
	return CLI_OK;
}

/* buildpacks (none), buildpacks:set PATH, :add PATH, :clear */
static int buildpacks_verb(const struct cli_verb *v, int argc, char **argv, int words)
{
	const char *app_opt = NULL, *pos[1];
	bool json = false;
	const struct cli_opt opts[] = {
	    {"--app", 'a', true, &app_opt, NULL}, {"--json", 0, false, NULL, &json}, END_OPT};
	size_t npos;
	int r = cli_parse(v, argc, argv, opts, pos, (size_t)words, &npos);
	if (r)
		return r;
	const char *app = need_app(v, app_opt);
	if (!app)
		return CLI_USAGE;
	if ((size_t)words != npos)
		return cli_usage_error(v, "expected a buildpack's path or git URL");
	_cleanup_free_ char *path = cli_app_path(app, "/buildpack-installations");
	_cleanup_json_ json_t *list = NULL;
	if ((r = cli_api("GET", path, NULL, &list)))
		return r;
	if (v == &cli_verb_buildpacks) {
		if (json)
			cli_print_json(list);
		return json ? CLI_OK : print_buildpacks(app, list);
	}
	_cleanup_json_ json_t *ups = json_array();
	if (v == &cli_verb_buildpacks_add) {
		for (size_t i = 0; i < json_array_size(list); i++)
			json_array_append(ups, json_object_get(json_array_get(list, i), "buildpack"));
	}
	if (words) {
		_cleanup_free_ char *real = realpath(pos[0], NULL);
		json_array_append_new(ups, json_pack("{s:s}", "url", real ? real : pos[0]));
	}
	_cleanup_json_ json_t *body = json_pack("{s:O}", "updates", ups);
	_cleanup_json_ json_t *now = NULL;
	for (size_t i = 0; i < json_array_size(ups); i++) {
		json_t *u = json_array_get(ups, i);
		json_array_set_new(json_object_get(body, "updates"), i,
		                   json_pack("{s:O}", "buildpack", u));
	}
	if ((r = cli_api("PUT", path, body, &now)))
		return r;
	return print_buildpacks(app, now);
}

static int run_bp(int argc, char **argv)
{
	return buildpacks_verb(&cli_verb_buildpacks, argc, argv, 0);
}
static int run_bp_set(int argc, char **argv)
{
	return buildpacks_verb(&cli_verb_buildpacks_set, argc, argv, 1);
}
static int run_bp_add(int argc, char **argv)
{
	return buildpacks_verb(&cli_verb_buildpacks_add, argc, argv, 1);
}
static int run_bp_clear(int argc, char **argv)
{
	return buildpacks_verb(&cli_verb_buildpacks_clear, argc, argv, 0);
}

const struct cli_verb cli_verb_builds = {
    .name = "builds",
    .run = run_builds,
    .usage = "builds -a APP [--json]",
    .summary = "an app's builds, newest first",
};
const struct cli_verb cli_verb_builds_output = {
    .name = "builds:output",
    .run = run_output,
    .usage = "builds:output ID -a APP",
    .summary = "a build's output (followed while it runs)",
};
const struct cli_verb cli_verb_builds_create = {
    .name = "builds:create",
    .run = run_create,
    .usage = "builds:create [DIR] -a APP",
    .summary = "builds a directory as a git push would, releases and rolls it out",
};
const struct cli_verb cli_verb_builds_cache_purge = {
    .name = "builds:cache:purge",
    .run = run_purge,
    .usage = "builds:cache:purge -a APP",
    .summary = "empties the app's build cache",
};
const struct cli_verb cli_verb_buildpacks = {
    .name = "buildpacks",
    .run = run_bp,
    .usage = "buildpacks -a APP [--json]",
    .summary = "the app's buildpacks (none: the built-ins detect)",
};
const struct cli_verb cli_verb_buildpacks_set = {
    .name = "buildpacks:set",
    .run = run_bp_set,
    .usage = "buildpacks:set PATH|GIT-URL -a APP",
    .summary = "builds the app with this buildpack alone (a host directory or a git URL)",
};
const struct cli_verb cli_verb_buildpacks_add = {
    .name = "buildpacks:add",
    .run = run_bp_add,
    .usage = "buildpacks:add PATH|GIT-URL -a APP",
    .summary = "adds a buildpack (a host directory or a git URL) after the app's others",
};
const struct cli_verb cli_verb_buildpacks_clear = {
    .name = "buildpacks:clear",
    .run = run_bp_clear,
    .usage = "buildpacks:clear -a APP",
    .summary = "no buildpacks of the app's own: the built-ins detect again",
};
