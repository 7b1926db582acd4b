/* logs: an app's log, as `heroku logs` (GET /apps/{app}/log-stream;
 * docs/cli.md). On a terminal, control bytes of the lines (an app's ESC
 * sequences, NUL, CR, DEL) are shown as \xNN (dy_log_escape()), so that no
 * app can drive the reader's terminal; with --raw, or when stdout is not a
 * terminal (a pipe, a file), the bytes go out as they are. Ctrl-C ends
 * --tail with status 0. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/api-client.h"
#include "cli/cli.h"
#include "common/cleanup.h"
#include "common/fs.h"
#include "common/log.h"

#define LINE_MAX_CLI 65536 /* a longer line goes out in pieces */

struct out {
	bool escape;
	bool failed; /* stdout is gone (a closed pipe): stop */
	char line[LINE_MAX_CLI];
	size_t len;
};

/* The line held (its newline included when it has one), escaped or not. */
static int put_line(struct out *o)
{
	if (!o->escape)
		return dy_write_all(STDOUT_FILENO, o->line, o->len);
	bool nl = o->len > 0 && o->line[o->len - 1] == '\n';
	size_t n = o->len - (nl ? 1 : 0);
	_cleanup_free_ char *esc = malloc(4 * n + 2);
	if (esc == NULL)
		return -1;
	size_t e = dy_log_escape(esc, o->line, n);
	if (nl)
		esc[e++] = '\n';
	return dy_write_all(STDOUT_FILENO, esc, e);
}

static int on_body(void *ctx, const char *p, size_t n)
{
	struct out *o = ctx;
	/* whole lines, so that a UTF-8 sequence is never escaped in halves */
	while (n > 0) {
		const char *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) + 1 : n;
		if (take > sizeof(o->line) - o->len)
			take = sizeof(o->line) - o->len;
		memcpy(o->line + o->len, p, take);
		o->len += take;
		p += take;
		n -= take;
		if (o->line[o->len - 1] == '\n' || o->len == sizeof(o->line)) {
			if (put_line(o) < 0) {
				o->failed = true;
				return -1;
			}
			o->len = 0;
		}
	}
	return 0;
}

static void on_sigint(int sig)
{
	(void)sig;
	_exit(CLI_OK); /* --tail ends with Ctrl-C: that is success */
}

static int run_logs(int argc, char **argv)
{
	const char *app_opt = NULL, *num = NULL, *dyno = NULL, *source = NULL;
	bool tail = false, raw = false;
	const struct cli_opt opts[] = {{"--app", 'a', true, &app_opt, NULL},
	                               {"--num", 'n', true, &num, NULL},
	                               {"--tail", 't', false, NULL, &tail},
	                               {"--dyno", 'd', true, &dyno, NULL},
	                               {"--source", 's', true, &source, NULL},
	                               {"--raw", 0, false, NULL, &raw},
	                               {NULL, 0, false, NULL, NULL}};
	size_t npos;
	int r = cli_parse(&cli_verb_logs, argc, argv, opts, NULL, 0, &npos);
	if (r)
		return r;
	const char *app = cli_app(app_opt);
	if (app == NULL)
		return cli_usage_error(&cli_verb_logs, "missing -a APP (or $DYNO_APP)");
	long lines = 100;
	if (num) {
		char *end;
		errno = 0;
		lines = strtol(num, &end, 10);
		if (*num == '\0' || *end || errno || lines < 1 || lines > 1500)
			return cli_usage_error(&cli_verb_logs,
			                       "-n: expected a number of lines from 1 to 1500, "
			                       "got \"%s\"",
			                       num);
	}
	if (source && strcmp(source, "app") != 0 && strcmp(source, "dyno") != 0 &&
	    strcmp(source, "router") != 0)
		return cli_usage_error(
		    &cli_verb_logs, "--source: expected app, dyno or router, got \"%s\"", source);
	if (dyno && (strlen(dyno) == 0 || strlen(dyno) > 40 ||
	             strspn(dyno, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                          "0123456789._-") != strlen(dyno)))
		return cli_usage_error(&cli_verb_logs,
		                       "--dyno: expected a process type or a dyno name "
		                       "(web, web.1), got \"%s\"",
		                       dyno);
	char query[160];
	snprintf(query, sizeof(query), "/log-stream?lines=%ld%s%s%s%s%s", lines,
	         tail ? "&tail=1" : "", dyno ? "&dyno=" : "", dyno ? dyno : "",
	         source ? "&source=" : "", source ? source : "");
	_cleanup_free_ char *path = cli_app_path(app, query);

	_cleanup_free_ struct out *o = calloc(1, sizeof(*o));
	if (o == NULL)
		return cli_error("out of memory");
	o->escape = !raw && isatty(STDOUT_FILENO);
	signal(SIGPIPE, SIG_IGN); /* a reader gone (| head) ends us quietly */
	signal(SIGINT, on_sigint);
	struct api_response resp = {0};
	struct dy_error *err = NULL;
	if (api_client_stream(path, on_body, o, &resp, &err) < 0) {
		cli_error("%s", dy_error_msg(err));
		dy_error_free(&err);
		return CLI_ERROR;
	}
	if (resp.status < 200 || resp.status > 299) {
		r = cli_api_result(&resp, NULL);
		api_response_clear(&resp);
		return r;
	}
	api_response_clear(&resp);
	if (o->len > 0 && !o->failed)
		put_line(o);
	return CLI_OK;
}

const struct cli_verb cli_verb_logs = {
    "logs",
    run_logs,
    "logs [-n N] [--tail] [--dyno D] [--source S] [--raw] -a APP",
    "show an app's log: its output, dynod's lines about it, its router lines",
    "  -n, --num N      the last N lines (default 100, at most 1500)\n"
    "  -t, --tail       keep following: new lines as they come (Ctrl-C ends it)\n"
    "  -d, --dyno D     only the lines of a process type (web) or a dyno (web.1)\n"
    "  -s, --source S   only app (the app's output), dyno (dynod's) or router lines\n"
    "  --raw            control bytes as they are; on a terminal they are shown as\n"
    "                   \\xNN (escape sequences of an app never reach the terminal)\n",
};
