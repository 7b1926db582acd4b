/* Why work leaves the loop (docs/architecture.md, "Work off the loop"):
 * a loop with a 1 ms ticker (standing in for dynod's API and supervision)
 * unpacks a slug either in a callback of its own ("inline") or on the
 * worker pool ("pool"), and reports how late the ticks came while it ran.
 *
 * usage: offloop SLUG DIR inline|pool
 * prints: mode, unpack wall time, ticks, the worst and the median lateness */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/loop.h"
#include "common/work.h"
#include "slugs/slug.h"

#define TICK_USEC 1000

static uint64_t late[200000];
static size_t nlate;
static uint64_t expected;
static bool busy = true;

static uint64_t now_usec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void tick(struct loop *loop, struct loop_timer *t)
{
	uint64_t n = now_usec();
	if (nlate < sizeof(late) / sizeof(late[0]))
		late[nlate++] = n > expected ? n - expected : 0;
	expected = n + TICK_USEC;
	if (busy)
		loop_timer_start(loop, t, TICK_USEC, NULL);
	else
		loop_stop(loop);
}

struct unpack {
	struct work work;
	const char *slug, *dir;
	uint64_t t0, t1;
	int r;
	struct loop *loop;
};

static void unpack_run(struct work *w)
{
	struct unpack *u = loop_container_of(w, struct unpack, work);
	struct slug_unpack_opts o = {.limits = {1ULL << 40, 1ULL << 40, 10000000}};
	struct dy_error *err = NULL;
	u->r = slug_unpack(u->slug, u->dir, &o, NULL, &err);
	if (u->r < 0)
		fprintf(stderr, "offloop: %s\n", dy_error_msg(err));
	dy_error_free(&err);
	u->t1 = now_usec();
}

static void unpack_done(struct work *w)
{
	busy = false;
}

static struct unpack job;

static void start_inline(struct loop *loop, struct loop_timer *t)
{
	unpack_run(&job.work);
	unpack_done(&job.work);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
	if (argc != 4 || (strcmp(argv[3], "inline") && strcmp(argv[3], "pool"))) {
		fprintf(stderr, "usage: offloop SLUG DIR inline|pool\n");
		return 2;
	}
	struct loop *loop = NULL;
	struct work_pool *pool = NULL;
	if (loop_new(&loop, NULL) < 0 || work_pool_new(loop, 1, &pool, NULL) < 0)
		return 1;
	job = (struct unpack){.slug = argv[1], .dir = argv[2], .loop = loop};
	struct loop_timer ticker, starter;
	loop_timer_init(&ticker, tick);
	loop_timer_init(&starter, start_inline);
	expected = now_usec() + TICK_USEC;
	loop_timer_start(loop, &ticker, TICK_USEC, NULL);
	job.t0 = now_usec();
	if (strcmp(argv[3], "pool") == 0)
		work_submit(pool, &job.work, unpack_run, unpack_done);
	else
		loop_timer_start(loop, &starter, 0, NULL);
	loop_run(loop, NULL);
	work_pool_free(pool);
	loop_free(loop);
	if (job.r < 0)
		return 1;
	qsort(late, nlate, sizeof(late[0]), cmp_u64);
	printf("%s: unpack %.3f s, %zu ticks, tick lateness max %.1f ms, median %.3f ms\n", argv[3],
	       (double)(job.t1 - job.t0) / 1e6, nlate, (double)late[nlate - 1] / 1000,
	       (double)late[nlate / 2] / 1000);
	return 0;
}
