/* An app's log on disk (runtime/manager/log-store.c): bounded, in order,
 * kept across a reopen, a cut last line dropped, a line cut by a full disk
 * not glued to the next, long lines and newlines split; the filters of a
 * reader. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "runtime/manager/log-store.h"

#define TS "2026-11-26T11:00:00.123456+00:00 "

struct got {
	char **lines;
	size_t n;
};

static void collect(void *ctx, const char *line, size_t len)
{
	struct got *g = ctx;
	g->lines = realloc(g->lines, (g->n + 1) * sizeof(*g->lines));
	g->lines[g->n] = malloc(len + 1);
	memcpy(g->lines[g->n], line, len);
	g->lines[g->n][len] = '\0';
	g->n++;
}

static void got_free(struct got *g)
{
	for (size_t i = 0; i < g->n; i++)
		free(g->lines[i]);
	free(g->lines);
	*g = (struct got){0};
}

static char *tmpdir(void)
{
	char *d = strdup("/tmp/test-log-store-XXXXXX");
	assert_non_null(mkdtemp(d));
	return d;
}

static void rmrf(const char *d)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
	assert_int_equal(system(cmd), 0);
}

static void add(struct lstore *s, const char *proc, int i)
{
	char line[128];
	int n = snprintf(line, sizeof(line), TS "app[%s]: line %d", proc, i);
	lstore_append(s, line, (size_t)n, NULL, NULL);
}

static size_t file_lines(const char *dir, const char *name)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = 0;
	int c;
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

static void test_bound_order_and_reopen(void **state)
{
	char *dir = tmpdir();
	struct lstore *s = NULL;
	assert_int_equal(lstore_open(dir, 100, &s, NULL), 0);
	for (int i = 0; i < 1000; i++) {
		add(s, "web.1", i);
		if (i % 7 == 0)
			assert_int_equal(lstore_flush(s, NULL), 0);
	}
	assert_int_equal(lstore_flush(s, NULL), 0);
	/* bounded: at most two segments of about max_lines each */
	size_t on_disk = file_lines(dir, "log") + file_lines(dir, "log.1");
	assert_true(on_disk >= 100 && on_disk <= 2 * 100 + 8);
	struct stat st;
	char path[256];
	snprintf(path, sizeof(path), "%s/log", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* the last 100, oldest first */
	struct got g = {0};
	assert_int_equal(lstore_read(s, 100, NULL, collect, &g, NULL), 100);
	for (size_t i = 0; i < 100; i++) {
		char want[64];
		snprintf(want, sizeof(want), TS "app[web.1]: line %zu", 900 + i);
		assert_string_equal(g.lines[i], want);
	}
	got_free(&g);
	/* more than kept: what there is (at least max_lines) */
	int n = lstore_read(s, 1500, NULL, collect, &g, NULL);
	assert_true(n >= 100 && (size_t)n == on_disk);
	assert_string_equal(g.lines[n - 1], TS "app[web.1]: line 999");
	got_free(&g);
	/* buffered lines are read too */
	add(s, "web.1", 1000);
	assert_int_equal(lstore_read(s, 1, NULL, collect, &g, NULL), 1);
	assert_string_equal(g.lines[0], TS "app[web.1]: line 1000");
	got_free(&g);
	lstore_free(s);

	/* reopened (a dynod restart): the same lines, and it goes on */
	assert_int_equal(lstore_open(dir, 100, &s, NULL), 0);
	assert_int_equal(lstore_read(s, 3, NULL, collect, &g, NULL), 3);
	assert_string_equal(g.lines[0], TS "app[web.1]: line 998");
	assert_string_equal(g.lines[2], TS "app[web.1]: line 1000");
	got_free(&g);
	add(s, "web.1", 1001);
	assert_int_equal(lstore_read(s, 2, NULL, collect, &g, NULL), 2);
	assert_string_equal(g.lines[1], TS "app[web.1]: line 1001");
	got_free(&g);
	lstore_free(s);
	rmrf(dir);
	free(dir);
}

/* The log holds exactly web.1's lines first and second; then s and dir go. */
static void two_lines_and_free(struct lstore *s, char *dir, const char *first, const char *second)
{
	char a[128], b[128];
	snprintf(a, sizeof(a), TS "app[web.1]: %s", first);
	snprintf(b, sizeof(b), TS "app[web.1]: %s", second);
	struct got g = {0};
	assert_int_equal(lstore_read(s, 10, NULL, collect, &g, NULL), 2);
	assert_string_equal(g.lines[0], a);
	assert_string_equal(g.lines[1], b);
	got_free(&g);
	lstore_free(s);
	rmrf(dir);
	free(dir);
}

static void test_cut_last_line_dropped(void **state)
{
	char *dir = tmpdir();
	char path[256];
	snprintf(path, sizeof(path), "%s/log", dir);
	FILE *f = fopen(path, "w");
	fputs(TS "app[web.1]: whole\n" TS "app[web.1]: cut sho", f);
	fclose(f);
	struct lstore *s = NULL;
	assert_int_equal(lstore_open(dir, 10, &s, NULL), 0);
	add(s, "web.1", 1);
	two_lines_and_free(s, dir, "whole", "line 1");
}

/* The disk fills in the middle of a flush (RLIMIT_FSIZE stands for it:
 * a short write, then EFBIG): the part of a line written goes, the lines
 * not written are counted lost, and once there is room again the next
 * lines are whole. */
static void test_full_disk_mid_line(void **state)
{
	char *dir = tmpdir();
	struct lstore *s = NULL;
	assert_int_equal(lstore_open(dir, 100, &s, NULL), 0);
	add(s, "web.1", 1);
	assert_int_equal(lstore_flush(s, NULL), 0);
	char path[256];
	snprintf(path, sizeof(path), "%s/log", dir);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	off_t one = st.st_size;

	struct rlimit old, lim;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = (rlim_t)(one + one / 2); /* room for half a line */
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	add(s, "web.1", 2);
	add(s, "web.1", 3);
	struct dy_error *err = NULL;
	int r = lstore_flush(s, &err);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	assert_true(r < 0);
	dy_error_free(&err);
	assert_int_equal(lstore_lost(s), 2);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, one); /* the half line is gone */

	add(s, "web.1", 4);
	two_lines_and_free(s, dir, "line 1", "line 4");
}

static void test_long_line_and_newline_split(void **state)
{
	char *dir = tmpdir();
	struct lstore *s = NULL;
	assert_int_equal(lstore_open(dir, 100, &s, NULL), 0);
	size_t mlen = 25000;
	size_t plen = strlen(TS "app[web.1]: ");
	char *line = malloc(plen + mlen);
	memcpy(line, TS "app[web.1]: ", plen);
	for (size_t i = 0; i < mlen; i++)
		line[plen + i] = (char)('a' + i % 26);
	struct got seen = {0};
	lstore_append(s, line, plen + mlen, collect, &seen);
	assert_int_equal(seen.n, 3); /* 10000 + 10000 + 5000 */
	got_free(&seen);
	struct got g = {0};
	assert_int_equal(lstore_read(s, 10, NULL, collect, &g, NULL), 3);
	size_t total = 0;
	for (size_t i = 0; i < 3; i++) {
		assert_memory_equal(g.lines[i], TS "app[web.1]: ", plen);
		size_t body = strlen(g.lines[i]) - plen;
		assert_true(body <= LSTORE_MSG_MAX);
		/* the pieces are the message in order */
		assert_memory_equal(g.lines[i] + plen, line + plen + total, body);
		total += body;
	}
	assert_int_equal(total, mlen);
	got_free(&g);
	/* a newline inside a line: two lines, one prefix each */
	const char two[] = TS "dyno[web.1]: first\nsecond";
	lstore_append(s, two, sizeof(two) - 1, NULL, NULL);
	assert_int_equal(lstore_read(s, 2, NULL, collect, &g, NULL), 2);
	assert_string_equal(g.lines[0], TS "dyno[web.1]: first");
	assert_string_equal(g.lines[1], TS "dyno[web.1]: second");
	got_free(&g);
	free(line);
	lstore_free(s);
	rmrf(dir);
	free(dir);
}

static void test_filters(void **state)
{
	const char *web1 = TS "app[web.1]: x", *web12 = TS "app[web.12]: x",
	           *webby = TS "app[webby.1]: x", *dyno = TS "dyno[web.2]: State changed",
	           *router = TS "router[router]: at=info";
	struct lstore_filter web = {.dyno = "web"};
	assert_true(lstore_match(&web, web1, strlen(web1)));
	assert_true(lstore_match(&web, web12, strlen(web12)));
	assert_true(lstore_match(&web, dyno, strlen(dyno)));
	assert_false(lstore_match(&web, webby, strlen(webby)));
	assert_false(lstore_match(&web, router, strlen(router)));
	struct lstore_filter one = {.dyno = "web.1"};
	assert_true(lstore_match(&one, web1, strlen(web1)));
	assert_false(lstore_match(&one, web12, strlen(web12)));
	struct lstore_filter src = {.source = "dyno"};
	assert_true(lstore_match(&src, dyno, strlen(dyno)));
	assert_false(lstore_match(&src, web1, strlen(web1)));
	struct lstore_filter rt = {.source = "router", .dyno = "router"};
	assert_true(lstore_match(&rt, router, strlen(router)));
	assert_true(lstore_match(NULL, "anything", 8));
	assert_false(lstore_match(&src, "not a line", 10));

	/* the last n that match, read through both segments */
	char *dir = tmpdir();
	struct lstore *s = NULL;
	assert_int_equal(lstore_open(dir, 10, &s, NULL), 0);
	for (int i = 0; i < 30; i++)
		add(s, i % 3 == 0 ? "worker.1" : "web.1", i);
	assert_int_equal(lstore_flush(s, NULL), 0);
	struct got g = {0};
	struct lstore_filter w = {.dyno = "worker"};
	int n = lstore_read(s, 3, &w, collect, &g, NULL);
	assert_int_equal(n, 3);
	assert_string_equal(g.lines[0], TS "app[worker.1]: line 21");
	assert_string_equal(g.lines[2], TS "app[worker.1]: line 27");
	got_free(&g);
	lstore_free(s);
	rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bound_order_and_reopen),
	    cmocka_unit_test(test_cut_last_line_dropped),
	    cmocka_unit_test(test_full_disk_mid_line),
	    cmocka_unit_test(test_long_line_and_newline_split),
	    cmocka_unit_test(test_filters),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
