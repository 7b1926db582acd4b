/* deploy PATH: upload a slug (packing a directory first) and release it */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/api-client.h"
#include "cli/cli.h"
#include "cli/release-wait.h"
#include "common/cleanup.h"
#include "slugs/slug.h"

#define END_OPT                                                                                    \
	{                                                                                          \
		NULL, 0, false, NULL, NULL                                                         \
	}

/* "12.3 MiB" */
static void human(uint64_t n, char *buf, size_t size)
{
	if (n < 1024)
		snprintf(buf, size, "%llu B", (unsigned long long)n);
	else if (n < 1024 * 1024)
		snprintf(buf, size, "%.1f KiB", (double)n / 1024);
	else
		snprintf(buf, size, "%.1f MiB", (double)n / (1024 * 1024));
}

/* On a terminal: the bytes sent, on one line redrawn at most every 1%. */
struct upload_progress {
	uint64_t shown;
	bool drawn;
};

static void upload_progress(uint64_t sent, uint64_t total, void *ctx)
{
	struct upload_progress *p = ctx;
	if (sent != total && sent - p->shown < total / 100)
		return;
	p->shown = sent;
	char a[32], b[32];
	human(sent, a, sizeof(a));
	human(total, b, sizeof(b));
	printf("\r\033[KUploading slug... %s of %s (%llu%%)", a, b,
	       (unsigned long long)(total ? sent * 100 / total : 100));
	fflush(stdout);
	p->drawn = true;
}

/* Uploads the slug open on fd; returns its id in *ret_id (owned). */
static int upload(const char *app, int fd, char **ret_id)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return cli_error("stat slug: %s", strerror(errno));
	/* a terminal sees the bytes go; a pipe one line */
	bool tty = isatty(STDOUT_FILENO);
	struct upload_progress prog = {0};
	if (!tty)
		printf("Uploading slug (%lld bytes)... ", (long long)st.st_size);
	fflush(stdout);
	_cleanup_free_ char *path = cli_app_path(app, "/slugs");
	struct api_response resp = {0};
	struct dy_error *err = NULL;
	int sent = api_client_request_fd("POST", path, fd, (uint64_t)st.st_size,
	                                 tty ? upload_progress : NULL, &prog, &resp, &err);
	if (tty) {
		char b[32];
		human((uint64_t)st.st_size, b, sizeof(b));
		/* the check (and unpack) runs on dynod's side now */
		printf("\r\033[KUploading slug (%s)... ", b);
		fflush(stdout);
	}
	if (sent < 0) {
		printf("failed\n");
		cli_error("%s", dy_error_msg(err));
		dy_error_free(&err);
		return CLI_ERROR;
	}
	json_t *slug = NULL;
	int r = cli_api_result(&resp, &slug);
	api_response_clear(&resp);
	if (r) {
		printf("failed\n");
		return r;
	}
	const char *id = json_string_value(json_object_get(slug, "id"));
	if (id == NULL) {
		json_decref(slug);
		printf("failed\n");
		return cli_error("dynod's answer has no slug id");
	}
	printf("done, slug %.7s\n", id);
	*ret_id = strdup(id);
	json_decref(slug);
	return *ret_id ? CLI_OK : cli_error("out of memory");
}

static int run_deploy(int argc, char **argv)
{
	const char *app_opt = NULL;
	bool no_wait = false;
	const struct cli_opt opts[] = {
	    {"--app", 'a', true, &app_opt, NULL}, {"--no-wait", 0, false, NULL, &no_wait}, END_OPT};
	const char *pos[1];
	size_t npos;
	int r = cli_parse(&cli_verb_deploy, argc, argv, opts, pos, 1, &npos);
	if (r)
		return r;
	const char *app = cli_app(app_opt);
	if (app == NULL)
		return cli_usage_error(&cli_verb_deploy, "missing -a APP (or $DYNO_APP)");
	if (npos != 1)
		return cli_usage_error(&cli_verb_deploy,
		                       "missing PATH (a slug file or a directory)");
	struct stat st;
	if (stat(pos[0], &st) < 0)
		return cli_error("%s: %s", pos[0], strerror(errno));
	_cleanup_free_ char *tmp = NULL;
	const char *file = pos[0];
	if (S_ISDIR(st.st_mode)) {
		const char *tdir = getenv("TMPDIR");
		if (asprintf(&tmp, "%s/dyno-slug-XXXXXX", tdir && *tdir ? tdir : "/tmp") < 0)
			return cli_error("out of memory");
		int tfd = mkstemp(tmp);
		if (tfd < 0)
			return cli_error("create %s: %s", tmp, strerror(errno));
		close(tfd);
		/* slug_pack writes a sibling and renames it over tmp; zstd
		 * (docs/slugs.md): it unpacks fastest */
		printf("Packing %s (zstd)... ", pos[0]);
		fflush(stdout);
		struct dy_error *err = NULL;
		if (slug_pack(pos[0], tmp, SLUG_COMPRESSION_ZSTD, &err) < 0) {
			printf("failed\n");
			unlink(tmp);
			cli_error("%s", dy_error_msg(err));
			dy_error_free(&err);
			return CLI_ERROR;
		}
		printf("done\n");
		file = tmp;
	}
	_cleanup_close_ int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (tmp)
		unlink(tmp);
	if (fd < 0)
		return cli_error("open %s: %s", file, strerror(errno));
	_cleanup_free_ char *id = NULL;
	if ((r = upload(app, fd, &id)))
		return r;
	_cleanup_free_ char *path = cli_app_path(app, "/releases");
	json_t *body = json_pack("{s:s}", "slug", id);
	json_t *rel = NULL;
	printf("Releasing %.7s to %s... ", id, app);
	fflush(stdout);
	cli_wait_begin(NULL);
	r = cli_api("POST", path, body, &rel);
	json_decref(body);
	if (r) {
		printf("failed\n");
		return r;
	}
	const char *status = json_string_value(json_object_get(rel, "status"));
	int version = (int)json_integer_value(json_object_get(rel, "version"));
	if (status && strcmp(status, "failed") == 0) {
		printf("failed\n");
		r = cli_wait_release(app, rel); /* names the failure */
	} else if (no_wait) {
		printf("done, v%d%s\n", version,
		       status && strcmp(status, "pending") == 0 ? " (pending)" : "");
	} else {
		printf("created v%d\n", version);
		r = cli_wait_release(app, rel);
	}
	json_decref(rel);
	return r;
}

const struct cli_verb cli_verb_deploy = {
    .name = "deploy",
    .run = run_deploy,
    .usage = "deploy PATH -a APP [--no-wait]",
    .summary = "upload a slug (or pack a directory into one) and release it",
    .help = "PATH is a slug file (as slugs:create makes) or an app directory with a\n"
            "Procfile, packed first (zstd). The release gets the current config vars; the\n"
            "first deploy of an app with a web process type scales web to 1.\n"
            "Then waits: the release command (its output shown) and the new web dynos up;\n"
            "status 1 naming what failed (the release command, a web dyno's crash).\n"
            "--no-wait returns once the release exists.\n",
};
