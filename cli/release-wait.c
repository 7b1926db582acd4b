/* The wait after a change (release-wait.h): the release phase through the
 * app's log (`dyno=release.K&tail=1`) and its status, then the web dynos
 * through the dynos list and the web dynos' platform lines (a crash, an
 * R-code). One request per connection, as the whole CLI: the tail stays
 * open while the status is asked for on others. */
#include "cli/release-wait.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "cli/api-client.h"
#include "cli/cli.h"
#include "common/cleanup.h"
#include "common/config.h"

#define CHECK_MS      500              /* between two looks at the status */
#define PHASE_MAX_MS  (3600ULL * 1000) /* a release phase at most an hour */
#define BOOT_MARGIN_S 30
#define LINE_MAX_LEN  8192

/* "2026-11-26T11:00:00.123456" (the log's form), UTC, taken by
 * cli_wait_begin(): lines from before it are not the change's */
static char since_us[32] = "";
/* the pids of the app's web dynos before a restart: a dyno still showing
 * one of them is one the restart replaces (a dyno's created_at has whole
 * seconds, and time(2) may lag the CLI's clock: not a witness) */
static long old_pids[256];
static size_t nold;

static json_t *get_json(const char *app, const char *suffix);

void cli_wait_begin(const char *app)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	struct tm tm;
	gmtime_r(&tv.tv_sec, &tm);
	char day[24];
	strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(since_us, sizeof(since_us), "%s.%06ld", day, (long)tv.tv_usec);
	nold = 0;
	if (app == NULL)
		return;
	_cleanup_(json_decrefp) json_t *ds = get_json(app, "/dynos");
	size_t i;
	json_t *d;
	json_array_foreach(ds, i, d)
	{
		long pid = (long)json_integer_value(json_object_get(d, "pid"));
		if (pid > 0 && nold < ELEMENTSOF(old_pids))
			old_pids[nold++] = pid;
	}
}

static bool was_running(long pid)
{
	for (size_t i = 0; i < nold; i++)
		if (old_pids[i] == pid)
			return true;
	return false;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
	nanosleep(&ts, NULL);
}

/* GET path quietly: the JSON of a 2xx answer, else NULL; the status in
 * *ret_status when not NULL (0: no answer). */
static json_t *get_json_status(const char *app, const char *suffix, int *ret_status)
{
	_cleanup_free_ char *path = cli_app_path(app, suffix);
	struct api_response resp = {0};
	struct dy_error *err = NULL;
	if (ret_status)
		*ret_status = 0;
	if (api_client_request("GET", path, NULL, 0, &resp, &err) < 0) {
		dy_error_free(&err);
		return NULL;
	}
	if (ret_status)
		*ret_status = resp.status;
	json_t *j = NULL;
	if (resp.status >= 200 && resp.status <= 299)
		j = json_loadb(resp.body, resp.body_len, 0, NULL);
	api_response_clear(&resp);
	return j;
}

static json_t *get_json(const char *app, const char *suffix)
{
	return get_json_status(app, suffix, NULL);
}

/* Writes text (len bytes) and a newline; on a terminal control bytes are
 * shown as \xNN, as dyno logs does, so an app's escapes never reach it. */
static void put_text(const char *p, size_t len)
{
	bool tty = isatty(STDOUT_FILENO);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];
		if (tty && ((c < 0x20 && c != '\t') || c == 0x7f))
			printf("\\x%02x", c);
		else
			putchar(c);
	}
	putchar('\n');
	fflush(stdout);
}

/* Splits a log line "<ts> <source>[<dyno>]: <text>": returns false when
 * it has not that form. */
static bool split_line(const char *line, const char **ret_src, size_t *ret_srclen,
                       const char **ret_dyno, size_t *ret_dynolen, const char **ret_text)
{
	const char *sp = strchr(line, ' ');
	const char *open = sp ? strchr(sp, '[') : NULL;
	const char *close = open ? strstr(open, "]: ") : NULL;
	if (!close)
		return false;
	*ret_src = sp + 1;
	*ret_srclen = (size_t)(open - sp - 1);
	*ret_dyno = open + 1;
	*ret_dynolen = (size_t)(close - open - 1);
	*ret_text = close + 3;
	return true;
}

/* Cuts what arrives into lines for line_fn. */
struct lines {
	char buf[LINE_MAX_LEN];
	size_t len;
};

static void feed(struct lines *l, const char *p, size_t n, void (*line_fn)(void *, char *),
                 void *ctx)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n') {
			l->buf[l->len] = '\0';
			line_fn(ctx, l->buf);
			l->len = 0;
		} else if (l->len < sizeof(l->buf) - 1) {
			l->buf[l->len++] = p[i];
		}
	}
}

/* ---- the release phase ---- */

struct phase {
	const char *app;
	int version;
	char dyno[64]; /* release.K */
	struct lines lines;
	uint64_t next_check, deadline;
	bool ended;     /* the release is no more pending */
	bool exited;    /* its dyno's "Process exited" came */
	int quiet;      /* idle rounds since it ended */
	bool timed_out; /* the deadline passed */
	char status[16];
	char *failure; /* owned */
};

/* Asks for the release's status at most every CHECK_MS. */
static void phase_check(struct phase *ph)
{
	uint64_t now = now_ms();
	if (now >= ph->deadline) {
		ph->timed_out = true;
		return;
	}
	if (now < ph->next_check)
		return;
	ph->next_check = now + CHECK_MS;
	char suffix[32];
	snprintf(suffix, sizeof(suffix), "/releases/v%d", ph->version);
	_cleanup_(json_decrefp) json_t *rel = get_json(ph->app, suffix);
	const char *st = json_string_value(json_object_get(rel, "status"));
	if (st == NULL || strcmp(st, "pending") == 0)
		return;
	snprintf(ph->status, sizeof(ph->status), "%s", st);
	const char *why = json_string_value(json_object_get(rel, "failure"));
	free(ph->failure);
	ph->failure = why ? strdup(why) : NULL;
	ph->ended = true;
}

static void phase_line(void *ctx, char *line)
{
	struct phase *ph = ctx;
	const char *src, *dyno, *text;
	size_t srclen, dynolen;
	/* a release.K of before a dynod restart may have had lines */
	if (strlen(line) < 26 || strncmp(line, since_us, 26) < 0 ||
	    !split_line(line, &src, &srclen, &dyno, &dynolen, &text))
		return;
	if (srclen == 3 && strncmp(src, "app", 3) == 0)
		put_text(text, strlen(text));
	else if (strncmp(text, "Process exited", 14) == 0)
		ph->exited = true;
}

static int phase_data(void *ctx, const char *p, size_t n)
{
	struct phase *ph = ctx;
	feed(&ph->lines, p, n, phase_line, ph);
	phase_check(ph);
	return ph->timed_out || ph->exited ? -1 : 0;
}

/* Quiet: once the release has ended its last lines have had a round to
 * come (the output is filed apart from the exit). */
static int phase_idle(void *ctx)
{
	struct phase *ph = ctx;
	phase_check(ph);
	if (ph->timed_out)
		return -1;
	if (ph->ended && (ph->exited || ph->quiet++ >= 1))
		return -1;
	return 0;
}

/* The release dyno of ph's version (release.K: K is not the version)
 * when it is still listed; else "release", every release.K (lines from
 * before the change are skipped): a quick command may have ended already. */
static void phase_find_dyno(struct phase *ph)
{
	snprintf(ph->dyno, sizeof(ph->dyno), "release");
	_cleanup_(json_decrefp) json_t *ds = get_json(ph->app, "/dynos");
	size_t i;
	json_t *d;
	json_array_foreach(ds, i, d)
	{
		const char *type = json_string_value(json_object_get(d, "type"));
		const char *name = json_string_value(json_object_get(d, "name"));
		json_t *v = json_object_get(json_object_get(d, "release"), "version");
		if (type && name && strcmp(type, "release") == 0 &&
		    json_integer_value(v) == ph->version) {
			snprintf(ph->dyno, sizeof(ph->dyno), "%s", name);
			return;
		}
	}
}

/* Waits for release version's phase; *ret_ok true when it succeeded.
 * Returns CLI_OK, or CLI_ERROR after naming what went wrong. */
static int wait_phase(const char *app, int version, bool *ret_ok)
{
	struct phase ph = {.app = app, .version = version};
	ph.deadline = now_ms() + PHASE_MAX_MS;
	printf("Running release command...\n");
	fflush(stdout);
	phase_find_dyno(&ph);
	char suffix[128];
	snprintf(suffix, sizeof(suffix), "/log-stream?dyno=%s&tail=1&lines=1500", ph.dyno);
	_cleanup_free_ char *path = cli_app_path(app, suffix);
	struct api_response resp = {0};
	struct dy_error *err = NULL;
	if (api_client_stream_idle(path, phase_data, phase_idle, CHECK_MS, &ph, &resp, &err) < 0)
		dy_error_free(&err); /* the status still tells */
	api_response_clear(&resp);
	while (!ph.ended && !ph.exited && !ph.timed_out) {
		phase_check(&ph);
		if (!ph.ended)
			sleep_ms(200);
	}
	_cleanup_free_ char *failure = ph.failure;
	if (ph.timed_out && !ph.ended)
		return cli_error("release v%d is still pending after %llu s (see dyno releases)",
		                 version, (unsigned long long)(PHASE_MAX_MS / 1000));
	/* the command exited and the release is still pending: its rollout
	 * follows (a failed command fails the release at once) */
	*ret_ok = !ph.ended || strcmp(ph.status, "succeeded") == 0;
	if (*ret_ok)
		return CLI_OK;
	if (failure)
		return cli_error("release v%d failed: %s", version, failure);
	return cli_error("release v%d failed", version);
}

/* ---- the web dynos ---- */

struct web {
	const char *app;
	int version;      /* 0: any */
	const char *only; /* one web.N, or NULL */
	int want, up, shown;
	struct lines lines;
	uint64_t next_check, deadline;
	bool done, timed_out;
	char rcode[128];     /* the newest "Error Rnn (...)" */
	char rcode_dyno[64]; /* of this dyno */
	char failure[256];   /* "web.1 crashed: Error R10 (Boot timeout)" */
};

static void web_progress(struct web *w, bool last)
{
	bool tty = isatty(STDOUT_FILENO);
	if (w->up == w->shown && !last)
		return;
	if (tty && last && w->up == w->shown)
		printf("\n"); /* the line shows it already */
	else if (tty)
		printf("\r\033[KWaiting for web dynos: %d/%d up%s", w->up, w->want,
		       last ? "\n" : "");
	else if (w->up != w->shown)
		printf("Waiting for web dynos: %d/%d up\n", w->up, w->want);
	w->shown = w->up;
	fflush(stdout);
}

static void web_check(struct web *w)
{
	uint64_t now = now_ms();
	if (now >= w->deadline) {
		w->timed_out = true;
		return;
	}
	if (now < w->next_check)
		return;
	w->next_check = now + CHECK_MS;
	_cleanup_(json_decrefp) json_t *ds = get_json(w->app, "/dynos");
	int up = 0;
	size_t i;
	json_t *d;
	json_array_foreach(ds, i, d)
	{
		const char *type = json_string_value(json_object_get(d, "type"));
		const char *name = json_string_value(json_object_get(d, "name"));
		const char *state = json_string_value(json_object_get(d, "state"));
		long pid = (long)json_integer_value(json_object_get(d, "pid"));
		json_t *v = json_object_get(json_object_get(d, "release"), "version");
		if (!type || !name || !state || strcmp(type, "web") != 0 ||
		    json_is_true(json_object_get(d, "stopping")))
			continue;
		/* a release's dynos are new by their version; a restart's by
		 * their process */
		if (w->version && json_integer_value(v) != w->version)
			continue;
		if (!w->version && was_running(pid))
			continue;
		if (w->only && strcmp(name, w->only) != 0)
			continue;
		if (strcmp(state, "up") == 0)
			up++;
	}
	w->up = up;
	if (up >= w->want)
		w->done = true;
	web_progress(w, false);
}

/* A web dyno's platform line since the change: an R-code is kept for its
 * crash, which fails the wait. */
static void web_line(void *ctx, char *line)
{
	struct web *w = ctx;
	const char *src, *dyno, *text;
	size_t srclen, dynolen;
	if (w->failure[0] || strlen(line) < 26 || strncmp(line, since_us, 26) < 0 ||
	    !split_line(line, &src, &srclen, &dyno, &dynolen, &text))
		return;
	char name[64];
	snprintf(name, sizeof(name), "%.*s", (int)dynolen, dyno);
	if (w->only && strcmp(name, w->only) != 0)
		return;
	if (strncmp(text, "Error R", 7) == 0) {
		const char *end = strstr(text, " -> ");
		snprintf(w->rcode, sizeof(w->rcode), "%.*s",
		         (int)(end ? (size_t)(end - text) : strlen(text)), text);
		snprintf(w->rcode_dyno, sizeof(w->rcode_dyno), "%s", name);
	} else if (strstr(text, "State changed from") && strstr(text, " to crashed")) {
		if (strcmp(w->rcode_dyno, name) == 0)
			snprintf(w->failure, sizeof(w->failure), "%s crashed: %s", name, w->rcode);
		else
			snprintf(w->failure, sizeof(w->failure), "%s crashed", name);
	}
}

static int web_data(void *ctx, const char *p, size_t n)
{
	struct web *w = ctx;
	feed(&w->lines, p, n, web_line, w);
	if (w->failure[0])
		return -1;
	web_check(w);
	return w->done || w->timed_out ? -1 : 0;
}

static int web_idle(void *ctx)
{
	struct web *w = ctx;
	web_check(w);
	return w->done || w->timed_out ? -1 : 0;
}

/* The boot timeout dynod is configured with (as the CLI finds its
 * configuration), in seconds. */
static unsigned long long boot_timeout_s(void)
{
	struct config *cfg = NULL;
	struct dy_error *err = NULL;
	unsigned long long s = 60;
	if (config_load(NULL, &cfg, &err) == 0) {
		s = (unsigned long long)(cfg->dyno.timeouts.boot / 1000000);
		config_free(cfg);
	} else {
		dy_error_free(&err);
	}
	return s;
}

/* Waits for w->want web dynos up (see struct web). */
static int wait_web(struct web *w)
{
	if (w->want <= 0)
		return CLI_OK;
	/* a dynod without a launcher runs no dynos: nothing comes up */
	int status = 0;
	json_decref(get_json_status(w->app, "/dynos", &status));
	if (status == 501)
		return CLI_OK;
	unsigned long long limit = boot_timeout_s() + BOOT_MARGIN_S;
	w->deadline = now_ms() + limit * 1000;
	w->shown = -1;
	web_check(w);
	if (!w->done && !w->timed_out) {
		_cleanup_free_ char *path =
		    cli_app_path(w->app, "/log-stream?source=dyno&dyno=web&tail=1&lines=200");
		struct api_response resp = {0};
		struct dy_error *err = NULL;
		if (api_client_stream_idle(path, web_data, web_idle, CHECK_MS, w, &resp, &err) < 0)
			dy_error_free(&err);
		api_response_clear(&resp);
		/* without the log (an error, dynod ended it): the states alone */
		while (!w->done && !w->timed_out && !w->failure[0]) {
			sleep_ms(200);
			web_check(w);
		}
	}
	web_progress(w, true);
	if (w->failure[0])
		return cli_error("%s", w->failure);
	if (!w->done)
		return cli_error("web dynos not up within %llu s: %d of %d up", limit, w->up,
		                 w->want);
	return CLI_OK;
}

/* The formation's web quantity (0 without a web type). */
static int web_quantity(const char *app)
{
	_cleanup_(json_decrefp) json_t *f = get_json(app, "/formation");
	size_t i;
	json_t *e;
	json_array_foreach(f, i, e)
	{
		const char *type = json_string_value(json_object_get(e, "type"));
		if (type && strcmp(type, "web") == 0)
			return (int)json_integer_value(json_object_get(e, "quantity"));
	}
	return 0;
}

/* The status of release version ("pending", ...; "" when it cannot be
 * read) and its failure (owned, may be NULL). */
static void release_status(const char *app, int version, char status[16], char **ret_failure)
{
	char suffix[32];
	snprintf(suffix, sizeof(suffix), "/releases/v%d", version);
	_cleanup_(json_decrefp) json_t *rel = get_json(app, suffix);
	const char *st = json_string_value(json_object_get(rel, "status"));
	snprintf(status, 16, "%s", st ? st : "");
	const char *why = json_string_value(json_object_get(rel, "failure"));
	*ret_failure = why ? strdup(why) : NULL;
}

/* Waits for the rollout of pending release version: the fresh web dynos
 * up (progress shown), until dynod ends the release. */
static int wait_rollout(const char *app, int version)
{
	struct web w = {.app = app, .version = version, .want = web_quantity(app)};
	unsigned long long limit = boot_timeout_s() + BOOT_MARGIN_S;
	w.deadline = now_ms() + limit * 1000;
	w.shown = -1;
	char status[16] = "pending";
	_cleanup_free_ char *failure = NULL;
	for (;;) {
		if (w.want > 0)
			web_check(&w);
		free(failure);
		release_status(app, version, status, &failure);
		if (strcmp(status, "pending") != 0 && status[0])
			break;
		if (now_ms() >= w.deadline) {
			if (w.want > 0)
				web_progress(&w, true);
			return cli_error("release v%d is still rolling out after %llu s: %d of %d "
			                 "web dynos up (see dyno ps and dyno logs)",
			                 version, limit, w.up, w.want);
		}
		sleep_ms(CHECK_MS / 2);
	}
	if (w.want > 0) {
		if (strcmp(status, "succeeded") == 0)
			w.up = w.want; /* switched: every fresh one is up */
		web_progress(&w, true);
	}
	if (strcmp(status, "succeeded") == 0)
		return CLI_OK;
	if (failure)
		return cli_error("release v%d failed: %s", version, failure);
	return cli_error("release v%d failed", version);
}

int cli_wait_release(const char *app, const json_t *rel)
{
	int version = (int)json_integer_value(json_object_get(rel, "version"));
	const char *status = json_string_value(json_object_get(rel, "status"));
	if (status && strcmp(status, "failed") == 0) {
		const char *why = json_string_value(json_object_get(rel, "failure"));
		return why ? cli_error("release v%d failed: %s", version, why)
		           : cli_error("release v%d failed", version);
	}
	if (status && strcmp(status, "pending") == 0) {
		if (json_is_true(json_object_get(rel, "release_phase"))) {
			bool ok = false;
			int r = wait_phase(app, version, &ok);
			if (r)
				return r;
		}
		int r = wait_rollout(app, version);
		if (r)
			return r;
	}
	printf("done, v%d\n", version);
	return CLI_OK;
}

int cli_wait_restart(const char *app, const char *which)
{
	struct web w = {.app = app};
	if (which == NULL || strcmp(which, "web") == 0) {
		w.want = web_quantity(app);
	} else if (strncmp(which, "web.", 4) == 0) {
		w.only = which;
		w.want = 1;
	}
	int r = wait_web(&w);
	if (r)
		return r;
	printf("done\n");
	return CLI_OK;
}
