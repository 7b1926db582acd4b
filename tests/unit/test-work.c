/* common/work: work leaves the loop and comes back to it. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/loop.h"
#include "common/work.h"

static pthread_t loop_thread;

struct job {
	struct work work;
	int in;
	int out;           /* written by fn */
	bool fn_off_loop;  /* fn ran on another thread than the loop's */
	bool done_on_loop; /* done ran on the loop's thread */
	int *done_count;
	int sleep_ms;
	struct loop *loop;
	size_t stop_at; /* stop the loop once done_count reaches it */
};

static void job_run(struct work *w)
{
	struct job *j = loop_container_of(w, struct job, work);
	j->fn_off_loop = !pthread_equal(pthread_self(), loop_thread);
	if (j->sleep_ms)
		usleep((useconds_t)j->sleep_ms * 1000);
	j->out = j->in * j->in;
}

static void job_done(struct work *w)
{
	struct job *j = loop_container_of(w, struct job, work);
	j->done_on_loop = pthread_equal(pthread_self(), loop_thread);
	(*j->done_count)++;
	if (j->loop && (size_t)*j->done_count == j->stop_at)
		loop_stop(j->loop);
}

static void watchdog_fired(struct loop *loop, struct loop_timer *t)
{
	fail_msg("watchdog: the work did not come back in time");
}

static void test_round_trip(void **state)
{
	loop_thread = pthread_self();
	struct loop *loop = NULL;
	assert_int_equal(loop_new(&loop, NULL), 0);
	struct loop_timer watchdog;
	loop_timer_init(&watchdog, watchdog_fired);
	assert_int_equal(loop_timer_start(loop, &watchdog, 10 * 1000000, NULL), 0);
	struct work_pool *p = NULL;
	assert_int_equal(work_pool_new(loop, 3, &p, NULL), 0);

	enum { N = 200 };
	struct job *jobs = calloc(N, sizeof(*jobs));
	int done = 0;
	for (int i = 0; i < N; i++) {
		jobs[i] = (struct job){.in = i, .done_count = &done, .loop = loop, .stop_at = N};
		work_submit(p, &jobs[i].work, job_run, job_done);
	}
	assert_int_equal(work_pool_pending(p), N);
	assert_int_equal(loop_run(loop, NULL), 0);
	assert_int_equal(done, N);
	assert_int_equal(work_pool_pending(p), 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(jobs[i].out, i * i);
		assert_true(jobs[i].fn_off_loop);
		assert_true(jobs[i].done_on_loop);
	}
	free(jobs);
	work_pool_free(p);
	loop_timer_stop(loop, &watchdog);
	loop_free(loop);
}

/* A slow work does not hold the loop: a timer due long before the work
 * ends fires first. */
struct tick {
	struct loop_timer timer;
	int *done_count;
	bool fired_before_done;
};

static void tick_fired(struct loop *loop, struct loop_timer *t)
{
	struct tick *k = loop_container_of(t, struct tick, timer);
	k->fired_before_done = *k->done_count == 0;
}

static void test_slow_work_leaves_the_loop_free(void **state)
{
	loop_thread = pthread_self();
	struct loop *loop = NULL;
	assert_int_equal(loop_new(&loop, NULL), 0);
	struct loop_timer watchdog;
	loop_timer_init(&watchdog, watchdog_fired);
	assert_int_equal(loop_timer_start(loop, &watchdog, 10 * 1000000, NULL), 0);
	struct work_pool *p = NULL;
	assert_int_equal(work_pool_new(loop, 1, &p, NULL), 0);

	int done = 0;
	struct job slow = {
	    .in = 3, .sleep_ms = 300, .done_count = &done, .loop = loop, .stop_at = 1};
	work_submit(p, &slow.work, job_run, job_done);
	struct tick tick = {.done_count = &done};
	loop_timer_init(&tick.timer, tick_fired);
	assert_int_equal(loop_timer_start(loop, &tick.timer, 20 * 1000, NULL), 0);
	assert_int_equal(loop_run(loop, NULL), 0);
	assert_true(tick.fired_before_done);
	assert_int_equal(slow.out, 9);
	work_pool_free(p);
	loop_timer_stop(loop, &watchdog);
	loop_free(loop);
}

/* Freeing the pool lets the queued work finish and runs every done. */
static void test_free_drains(void **state)
{
	loop_thread = pthread_self();
	struct loop *loop = NULL;
	assert_int_equal(loop_new(&loop, NULL), 0);
	struct work_pool *p = NULL;
	assert_int_equal(work_pool_new(loop, 2, &p, NULL), 0);
	enum { N = 20 };
	struct job jobs[N];
	int done = 0;
	for (int i = 0; i < N; i++) {
		jobs[i] = (struct job){.in = i, .sleep_ms = 5, .done_count = &done};
		work_submit(p, &jobs[i].work, job_run, job_done);
	}
	work_pool_free(p); /* never ran the loop */
	assert_int_equal(done, N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(jobs[i].out, i * i);
		assert_true(jobs[i].done_on_loop);
	}
	loop_free(loop);
	work_pool_free(NULL);
}

/* With one thread, works run in the order queued. */
static int order[8], norder;

static void ordered_run(struct work *w)
{
	struct job *j = loop_container_of(w, struct job, work);
	order[norder++] = j->in; /* one thread: no race */
}

static void test_one_thread_keeps_order(void **state)
{
	loop_thread = pthread_self();
	struct loop *loop = NULL;
	assert_int_equal(loop_new(&loop, NULL), 0);
	struct work_pool *p = NULL;
	assert_int_equal(work_pool_new(loop, 1, &p, NULL), 0);
	struct job jobs[8];
	int done = 0;
	norder = 0;
	for (int i = 0; i < 8; i++) {
		jobs[i] = (struct job){.in = i, .done_count = &done};
		work_submit(p, &jobs[i].work, ordered_run, job_done);
	}
	work_pool_free(p);
	for (int i = 0; i < 8; i++)
		assert_int_equal(order[i], i);
	loop_free(loop);
}

/* Worker threads block every signal, whatever the caller's mask. */
static sigset_t seen_mask;

static void mask_run(struct work *w)
{
	pthread_sigmask(SIG_SETMASK, NULL, &seen_mask);
}

static void test_workers_block_signals(void **state)
{
	loop_thread = pthread_self();
	struct loop *loop = NULL;
	assert_int_equal(loop_new(&loop, NULL), 0);
	struct work_pool *p = NULL;
	sigset_t none;
	sigemptyset(&none);
	pthread_sigmask(SIG_SETMASK, &none, NULL);
	assert_int_equal(work_pool_new(loop, 1, &p, NULL), 0);
	struct job j = {.done_count = &(int){0}};
	work_submit(p, &j.work, mask_run, job_done);
	work_pool_free(p);
	assert_true(sigismember(&seen_mask, SIGTERM));
	assert_true(sigismember(&seen_mask, SIGCHLD));
	assert_true(sigismember(&seen_mask, SIGINT));
	loop_free(loop);
}

static void test_bad_thread_count(void **state)
{
	struct loop *loop = NULL;
	assert_int_equal(loop_new(&loop, NULL), 0);
	struct work_pool *p = NULL;
	struct dy_error *err = NULL;
	assert_true(work_pool_new(loop, 0, &p, &err) < 0);
	assert_int_equal(dy_error_kind_of(err), DY_E_INVALID);
	assert_non_null(strstr(dy_error_msg(err), "out of range 1..64"));
	dy_error_free(&err);
	assert_true(work_pool_new(loop, 65, &p, NULL) < 0);
	loop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_slow_work_leaves_the_loop_free),
	    cmocka_unit_test(test_free_drains),
	    cmocka_unit_test(test_one_thread_keeps_order),
	    cmocka_unit_test(test_workers_block_signals),
	    cmocka_unit_test(test_bad_thread_count),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
