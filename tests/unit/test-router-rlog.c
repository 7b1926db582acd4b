/* The router's log sink to stdout when stdout is full (a pipe nobody
 * reads): never blocks, drops and counts whole lines, never cuts one; and
 * the routes watch waiting for a state dir that is not there yet. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/loop.h"
#include "router/rlog.h"
#include "router/route-watch.h"

/* Reads whatever the pipe holds (non-blocking) into buf, returns the
 * length. */
static size_t drain(int fd, char *buf, size_t cap)
{
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	size_t len = 0;
	for (;;) {
		ssize_t n = read(fd, buf + len, cap - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	fcntl(fd, F_SETFL, fl);
	return len;
}

static void test_full_stdout_drops_whole_lines(void **state)
{
	struct loop *loop = NULL;
	assert_int_equal(loop_new(&loop, NULL), 0);
	int p[2];
	/* a blocking pipe, as a journald or a shell's pipe would be */
	assert_int_equal(pipe(p), 0);
	struct rlog *l = NULL;
	assert_int_equal(rlog_new(loop, p[1], NULL, &l, NULL), 0);
	/* the sink has a description of its own: ours stays blocking */
	assert_false(fcntl(p[1], F_GETFL) & O_NONBLOCK);
	char msg[200];
	memset(msg, 'x', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	const int rounds = 20, per = 200; /* ~1.2 MB: far over a pipe's 64 KiB */
	for (int r = 0; r < rounds; r++) {
		for (int i = 0; i < per; i++)
			rlog_emit(l, "app", msg);
		rlog_flush(l); /* would block here without the rule */
	}
	assert_true(rlog_out_dropped(l) > 0);
	size_t cap = 4 << 20;
	char *buf = malloc(cap);
	assert_non_null(buf);
	size_t len = drain(p[0], buf, cap);
	/* one more line: the tail of a cut line goes first, then it */
	rlog_emit(l, "app", msg);
	rlog_flush(l);
	len += drain(p[0], buf + len, cap - len);
	size_t lines = 0;
	for (char *s = buf; s < buf + len;) {
		char *nl = memchr(s, '\n', (size_t)(buf + len - s));
		assert_non_null(nl);
		static const char tag[] = " router[router]: ";
		assert_non_null(memmem(s, (size_t)(nl - s), tag, sizeof(tag) - 1));
		assert_int_equal((size_t)(nl - s), strlen(msg) + 32 + 17);
		lines++;
		s = nl + 1;
	}
	assert_int_equal(lines + rlog_out_dropped(l), (size_t)(rounds * per + 1));
	free(buf);
	loop_free(loop); /* runs the queued flush: before rlog_free() */
	rlog_free(l);
	close(p[0]);
	close(p[1]);
}

static int reloads;

static void on_change(void *data)
{
	reloads++;
}

/* A tick every 20 ms: an iteration whose timers did the work would
 * otherwise wait in epoll_wait with nothing left to wake it. */
static void on_tick(struct loop *loop, struct loop_timer *t)
{
	loop_timer_start(loop, t, 20000, NULL);
}

static void test_watch_waits_for_missing_dir(void **state)
{
	char tmpl[] = "/tmp/test-route-watch-XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	char dir[128], path[160], file[200];
	snprintf(dir, sizeof(dir), "%s/state", tmpl);
	snprintf(path, sizeof(path), "%s/routes.json", dir);
	struct loop *loop = NULL;
	assert_int_equal(loop_new(&loop, NULL), 0);
	struct route_watch *w = NULL;
	reloads = 0;
	assert_int_equal(route_watch_start(loop, path, on_change, NULL, &w, NULL), 0);
	struct loop_timer tick;
	loop_timer_init(&tick, on_tick);
	assert_int_equal(loop_timer_start(loop, &tick, 20000, NULL), 0);
	uint64_t end = loop_now(loop) + 2 * ROUTE_WATCH_RETRY_MS * 1000ull;
	while (loop_now(loop) < end)
		assert_int_equal(loop_run_once(loop, NULL), 0);
	assert_int_equal(reloads, 0);
	assert_int_equal(mkdir(dir, 0755), 0);
	/* watched once the retry finds it: a reload then */
	end = loop_now(loop) + 5000000;
	while (reloads == 0 && loop_now(loop) < end)
		assert_int_equal(loop_run_once(loop, NULL), 0);
	assert_int_equal(reloads, 1);
	/* and the file arriving is seen */
	snprintf(file, sizeof(file), "%s/routes.json", dir);
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	fputs("{}", f);
	fclose(f);
	end = loop_now(loop) + 5000000;
	while (reloads == 1 && loop_now(loop) < end)
		assert_int_equal(loop_run_once(loop, NULL), 0);
	assert_true(reloads >= 2);
	route_watch_free(w);
	loop_timer_stop(loop, &tick);
	loop_free(loop);
	unlink(file);
	rmdir(dir);
	rmdir(tmpl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_full_stdout_drops_whole_lines),
	    cmocka_unit_test(test_watch_waits_for_missing_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
