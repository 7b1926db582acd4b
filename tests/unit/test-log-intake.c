/* dynod's log intake (runtime/manager/log-intake.c) and its readers
 * (log-stream.c): lines filed under the app of the sink they came on, the
 * router's under the app they name, bad ones counted; a flood on one
 * app's sink does not starve another's (the per-socket bound of a round);
 * tails get what matches; a stalled tail reader is capped and told; a full
 * disk is said once, not every round. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/config.h"
#include "common/log.h"
#include "common/loop.h"
#include "runtime/manager/log-intake.h"
#include "runtime/manager/log-stream.h"
#include "runtime/manager/state.h"

#define TS "2026-11-26T11:00:00.123456+00:00 "

struct env {
	char dir[64];
	struct config *cfg;
	struct state *st;
	struct loop *loop;
	struct lgi *lgi;
};

static void env_setup(struct env *e, unsigned lines)
{
	snprintf(e->dir, sizeof(e->dir), "/tmp/test-log-intake-XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	char json[256];
	int n = snprintf(json, sizeof(json), "{\"state_dir\": \"%s\", \"logs\": {\"lines\": %u}}",
	                 e->dir, lines);
	assert_int_equal(config_load_string(json, (size_t)n, "test.json", &e->cfg, NULL), 0);
	assert_int_equal(state_open(e->dir, &e->st, NULL), 0);
	const char *apps[] = {"alpha", "beta"};
	for (int i = 0; i < 2; i++) {
		struct state_app *a;
		assert_int_equal(
		    state_app_add(e->st, apps[i], 300000 + i, "2026-11-26T11:00:00Z", &a, NULL), 0);
		assert_int_equal(state_app_save(e->st, a, NULL), 0);
	}
	assert_int_equal(loop_new(&e->loop, NULL), 0);
	assert_int_equal(lgi_new(e->loop, e->cfg, e->st, &e->lgi, NULL), 0);
}

static void env_teardown(struct env *e)
{
	lgi_free(e->lgi);
	loop_free(e->loop);
	state_free(e->st);
	config_free(e->cfg);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
	assert_int_equal(system(cmd), 0);
}

static int sender(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	return fd;
}

static void send_str(int fd, const char *s)
{
	assert_int_equal(send(fd, s, strlen(s), 0), (ssize_t)strlen(s));
}

struct got {
	char lines[64][256];
	size_t n;
};

static void collect(void *ctx, const char *line, size_t len)
{
	struct got *g = ctx;
	if (g->n < 64)
		snprintf(g->lines[g->n], sizeof(g->lines[0]), "%.*s", (int)len, line);
	g->n++;
}

/* Re-armed when it fires: a tick started from the loop's time of its
 * last round (stale after a long stretch of the test's own work) is due at
 * once, and without another timer the round's epoll_wait would wait
 * forever (1 run in 30 hung so). */
static void on_tick(struct loop *loop, struct loop_timer *t)
{
	loop_timer_start(loop, t, 1000, NULL);
}

/* n loop rounds, none waiting more than a millisecond for an event */
static void run_rounds(struct loop *loop, int n)
{
	struct loop_timer tick;
	loop_timer_init(&tick, on_tick);
	for (int i = 0; i < n; i++) {
		assert_int_equal(loop_timer_start(loop, &tick, 1000, NULL), 0);
		assert_int_equal(loop_run_once(loop, NULL), 0);
	}
	loop_timer_stop(loop, &tick);
}

static void test_filing(void **state)
{
	struct env e;
	env_setup(&e, 100);
	/* the sinks: one per app, in a 0700 directory of its own */
	const char *alpha = lgi_app_sink(e.lgi, "alpha");
	assert_non_null(alpha);
	struct stat st;
	char dir[128];
	snprintf(dir, sizeof(dir), "%s/sinks/alpha", e.dir);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(stat(alpha, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_null(lgi_app_sink(e.lgi, "ghost"));

	int a = sender(alpha);
	send_str(a, TS "app[web.1]: hello from alpha");
	send_str(a, TS "dyno[web.1]: Error L10 (Output buffer overflow): 3 log lines dropped");
	/* a line claiming another source, or not a line: dropped */
	send_str(a, TS "router[router]: at=info host=beta.localhost");
	send_str(a, "garbage");
	char rpath[128];
	snprintf(rpath, sizeof(rpath), "%s/log.sock", e.dir);
	int r = sender(rpath);
	send_str(r, "beta " TS "router[router]: at=info method=GET path=\"/\"");
	send_str(r, "- " TS "router[router]: at=error code=H14");
	send_str(r, "ghost " TS "router[router]: at=info");
	send_str(r, "beta " TS "app[web.1]: not the router's to say");
	run_rounds(e.loop, 2);
	/* a platform line, as dy_log_app() files it */
	dy_log_to_app("beta", "web.1", "State changed from starting to up");

	struct got g = {0};
	assert_int_equal(lgi_read(e.lgi, "alpha", 10, NULL, collect, &g, NULL), 2);
	assert_string_equal(g.lines[0], TS "app[web.1]: hello from alpha");
	assert_non_null(strstr(g.lines[1], "dyno[web.1]: Error L10"));
	memset(&g, 0, sizeof(g));
	assert_int_equal(lgi_read(e.lgi, "beta", 10, NULL, collect, &g, NULL), 2);
	assert_string_equal(g.lines[0], TS "router[router]: at=info method=GET path=\"/\"");
	assert_non_null(strstr(g.lines[1], " dyno[web.1]: State changed from starting to up"));
	struct lgi_stats s = lgi_stats(e.lgi);
	assert_int_equal(s.lines, 4);
	assert_int_equal(s.bad, 3);
	assert_int_equal(s.unknown, 2);
	assert_int_equal(lgi_read(e.lgi, "ghost", 10, NULL, collect, &g, NULL), -1);

	/* destroyed: its sink goes */
	lgi_forget(e.lgi, "alpha");
	assert_int_equal(stat(alpha, &st), -1);
	assert_int_equal(stat(dir, &st), -1);
	close(a);
	close(r);
	env_teardown(&e);
}

/* init packs a backlog: lines joined by '\n' in one datagram, each filed
 * on its own; one not in the format among them is dropped alone. */
static void test_packed_datagram(void **state)
{
	struct env e;
	env_setup(&e, 100);
	const char *alpha = lgi_app_sink(e.lgi, "alpha");
	assert_non_null(alpha);
	int a = sender(alpha);
	send_str(a, TS "app[web.1]: one\n" TS "app[web.2]: two\nnot a line\n" TS
	            "dyno[web.1]: Error L10 (Output buffer overflow): 1 log lines dropped\n" TS
	            "app[web.1]: four");
	run_rounds(e.loop, 2);
	struct got g = {0};
	assert_int_equal(lgi_read(e.lgi, "alpha", 10, NULL, collect, &g, NULL), 4);
	assert_string_equal(g.lines[0], TS "app[web.1]: one");
	assert_string_equal(g.lines[1], TS "app[web.2]: two");
	assert_non_null(strstr(g.lines[2], "dyno[web.1]: Error L10"));
	assert_string_equal(g.lines[3], TS "app[web.1]: four");
	struct lgi_stats s = lgi_stats(e.lgi);
	assert_int_equal(s.lines, 4);
	assert_int_equal(s.bad, 1);
	close(a);
	env_teardown(&e);
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;
	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

/* The disk is full (RLIMIT_FSIZE stands for it) for three rounds of
 * lines: dynod's stderr says so once, then once that the log is written
 * again and how many lines were lost. */
static void test_full_disk_said_once(void **state)
{
	struct env e;
	env_setup(&e, 100);
	int a = sender(lgi_app_sink(e.lgi, "alpha"));
	int pipefd[2];
	assert_int_equal(pipe2(pipefd, O_NONBLOCK | O_CLOEXEC), 0);
	int saved = dup(STDERR_FILENO);
	assert_true(saved >= 0);
	assert_int_equal(dup2(pipefd[1], STDERR_FILENO), STDERR_FILENO);

	struct rlimit old, full;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	full = old;
	full.rlim_cur = 0;
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &full), 0);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 3; i++)
			send_str(a, TS "app[web.1]: lost");
		run_rounds(e.loop, 2);
	}
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	send_str(a, TS "app[web.1]: written");
	run_rounds(e.loop, 2);

	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	close(pipefd[1]);
	char err[8192];
	ssize_t n = read(pipefd[0], err, sizeof(err) - 1);
	close(pipefd[0]);
	assert_true(n > 0);
	err[n] = '\0';
	assert_int_equal(count(err, "lines are lost until it works again"), 1);
	assert_int_equal(count(err, "alpha: log written again, 9 lines lost meanwhile"), 1);
	struct got g = {0};
	assert_int_equal(lgi_read(e.lgi, "alpha", 10, NULL, collect, &g, NULL), 1);
	assert_string_equal(g.lines[0], TS "app[web.1]: written");
	close(a);
	env_teardown(&e);
}

/* In a network namespace of our own, whose max_dgram_qlen is ours to
 * raise: with the default 10, the kernel's queue is smaller than the bound
 * and no flood could show it. */
static bool private_qlen(int qlen)
{
	if (geteuid() != 0 || unshare(CLONE_NEWNET) < 0)
		return false;
	FILE *f = fopen("/proc/sys/net/unix/max_dgram_qlen", "w");
	if (!f)
		return false;
	fprintf(f, "%d\n", qlen);
	return fclose(f) == 0;
}

static void test_flood_does_not_starve_another_app(void **state)
{
	if (!private_qlen(2000)) {
		skip();
		return;
	}
	struct env e;
	env_setup(&e, 5000);
	int a = sender(lgi_app_sink(e.lgi, "alpha"));
	int b = sender(lgi_app_sink(e.lgi, "beta"));
	int big = 8 << 20;
	setsockopt(a, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big));
	const int flood = 1000;
	for (int i = 0; i < flood; i++)
		send_str(a, TS "app[web.1]: flood");
	send_str(b, TS "app[web.1]: one quiet line");
	/* one round: alpha gets its bound, beta its line */
	run_rounds(e.loop, 1);
	struct got g = {0};
	assert_int_equal(lgi_read(e.lgi, "beta", 10, NULL, collect, &g, NULL), 1);
	memset(&g, 0, sizeof(g));
	int n = lgi_read(e.lgi, "alpha", 5000, NULL, collect, &g, NULL);
	assert_int_equal(n, LGI_ROUNDS * LGI_BATCH);
	/* the rest comes in the next rounds, nothing lost */
	run_rounds(e.loop, 5);
	memset(&g, 0, sizeof(g));
	assert_int_equal(lgi_read(e.lgi, "alpha", 5000, NULL, collect, &g, NULL), flood);
	close(a);
	close(b);
	env_teardown(&e);
}

struct tail_seen {
	struct got g;
	bool gone;
};

static void on_gone(struct lgi_tail *t)
{
	((struct tail_seen *)t->ctx)->gone = true;
}

static void on_line(void *ctx, const char *line, size_t len)
{
	collect(&((struct tail_seen *)ctx)->g, line, len);
}

static void test_tail_filter_and_gone(void **state)
{
	struct env e;
	env_setup(&e, 100);
	struct tail_seen seen = {0};
	struct lgi_tail t = {
	    .filter = {.dyno = "worker"}, .fn = on_line, .gone = on_gone, .ctx = &seen};
	assert_int_equal(lgi_tail_start(e.lgi, "alpha", &t, NULL), 0);
	lgi_file(e.lgi, "alpha", TS "app[web.1]: no", strlen(TS "app[web.1]: no"));
	lgi_file(e.lgi, "alpha", TS "app[worker.2]: yes", strlen(TS "app[worker.2]: yes"));
	lgi_file(e.lgi, "beta", TS "app[worker.2]: other app", strlen(TS "app[worker.2]: x"));
	assert_int_equal(seen.g.n, 1);
	assert_string_equal(seen.g.lines[0], TS "app[worker.2]: yes");
	lgi_forget(e.lgi, "alpha");
	assert_true(seen.gone);
	lgi_tail_stop(&t); /* stopped already: fine */
	env_teardown(&e);
}

/* A tail reader that reads nothing: its buffer stops at LSTREAM_BUF_MAX,
 * the intake goes on, and once it reads it is told how many it missed. */
static void test_stalled_tail_reader_is_capped(void **state)
{
	struct env e;
	env_setup(&e, 100);
	struct lstreams *ls = NULL;
	assert_int_equal(lstreams_new(e.loop, e.lgi, &ls, NULL), 0);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	struct lstream_params p;
	assert_int_equal(lstream_parse_query("tail=1&lines=1", &p, NULL), 0);
	assert_int_equal(lstream_start(ls, sv[0], "alpha", &p, false, NULL), 0);
	char line[300];
	memset(line, 'x', sizeof(line));
	memcpy(line, TS "app[web.1]: ", strlen(TS "app[web.1]: "));
	const int n = 40000; /* 12 MB: far over the cap and the socket's buffer */
	for (int i = 0; i < n; i++) {
		lgi_file(e.lgi, "alpha", line, sizeof(line));
		if (i % 1000 == 0)
			run_rounds(e.loop, 1);
	}
	run_rounds(e.loop, 2);
	/* now the reader reads: what it gets is bounded, and says so */
	size_t total = 0;
	bool told = false;
	char *buf = malloc(1 << 20);
	int fl = fcntl(sv[1], F_GETFL);
	fcntl(sv[1], F_SETFL, fl | O_NONBLOCK);
	for (int rounds = 0; rounds < 2000; rounds++) {
		ssize_t r = read(sv[1], buf, 1 << 20);
		if (r > 0) {
			total += (size_t)r;
			if (memmem(buf, (size_t)r, "Error L11 (Tail buffer overflow)", 32))
				told = true;
		} else if (told) {
			break;
		}
		run_rounds(e.loop, 1);
	}
	free(buf);
	assert_true(told);
	assert_true(total < (size_t)n * sizeof(line) / 2);
	assert_true(total >= LSTREAM_BUF_MAX);
	assert_int_equal(lstreams_count(ls), 1);
	close(sv[1]);
	run_rounds(e.loop, 2); /* the reader's end closes the stream */
	assert_int_equal(lstreams_count(ls), 0);
	lstreams_free(ls);
	env_teardown(&e);
}

static void test_query(void **state)
{
	struct lstream_params p;
	assert_int_equal(lstream_parse_query(NULL, &p, NULL), 0);
	assert_int_equal(p.lines, 100);
	assert_false(p.tail);
	assert_int_equal(
	    lstream_parse_query("lines=1500&tail=1&dyno=web.1&source=router&x=y", &p, NULL), 0);
	assert_int_equal(p.lines, 1500);
	assert_true(p.tail);
	assert_string_equal(p.dyno, "web.1");
	assert_string_equal(p.source, "router");
	struct dy_error *err = NULL;
	assert_true(lstream_parse_query("lines=1501", &p, &err) < 0);
	assert_int_equal(dy_error_kind_of(err), DY_E_INVALID);
	dy_error_free(&err);
	assert_true(lstream_parse_query("lines=0", &p, NULL) < 0);
	assert_true(lstream_parse_query("lines=-1", &p, NULL) < 0);
	assert_true(lstream_parse_query("source=kernel", &p, NULL) < 0);
	assert_true(lstream_parse_query("dyno=web%201", &p, NULL) < 0);
	assert_true(lstream_parse_query("tail=maybe", &p, NULL) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_filing),
	    cmocka_unit_test(test_packed_datagram),
	    cmocka_unit_test(test_full_disk_said_once),
	    cmocka_unit_test(test_tail_filter_and_gone),
	    cmocka_unit_test(test_stalled_tail_reader_is_capped),
	    cmocka_unit_test(test_query),
	    /* last: it moves the test into a network namespace of its own */
	    cmocka_unit_test(test_flood_does_not_starve_another_app),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
