#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/loop.h"

/* Every test runs its loop under a watchdog: a hang fails, not blocks. */
static void watchdog_fired(struct loop *loop, struct loop_timer *t)
{
	fail_msg("watchdog: the loop did not stop in time");
}

static struct loop *new_loop(struct loop_timer *watchdog)
{
	struct loop *loop = NULL;
	assert_int_equal(loop_new(&loop, NULL), 0);
	loop_timer_init(watchdog, watchdog_fired);
	assert_int_equal(loop_timer_start(loop, watchdog, 5000000, NULL), 0);
	return loop;
}

static void make_pair(int fds[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds),
	                 0);
}

/* fd readiness */

struct reader {
	struct loop_io io;
	uint32_t events;
	char buf[16];
	ssize_t got;
};

static void reader_ready(struct loop *loop, struct loop_io *io, uint32_t events)
{
	struct reader *r = loop_container_of(io, struct reader, io);
	r->events = events;
	if (events & LOOP_READ)
		r->got = read(io->fd, r->buf, sizeof(r->buf));
	loop_io_stop(loop, io);
	loop_stop(loop);
}

static void test_io_read_write(void **state)
{
	struct loop_timer watchdog;
	_cleanup_loop_ struct loop *loop = new_loop(&watchdog);
	int fds[2];
	make_pair(fds);

	struct reader r = {0};
	loop_io_init(&r.io, fds[0], reader_ready);
	assert_int_equal(loop_io_set(loop, &r.io, LOOP_READ, NULL), 0);
	assert_true(loop_io_active(&r.io));
	/* Same interest again: no epoll_ctl, still fine. */
	assert_int_equal(loop_io_set(loop, &r.io, LOOP_READ, NULL), 0);
	assert_int_equal(write(fds[1], "ping", 4), 4);
	assert_int_equal(loop_run(loop, NULL), 0);
	assert_int_equal(r.events, LOOP_READ);
	assert_int_equal(r.got, 4);
	assert_memory_equal(r.buf, "ping", 4);
	assert_false(loop_io_active(&r.io));

	/* An empty socket buffer is writable at once. */
	memset(&r, 0, sizeof(r));
	loop_io_init(&r.io, fds[1], reader_ready);
	assert_int_equal(loop_io_set(loop, &r.io, LOOP_WRITE, NULL), 0);
	assert_int_equal(loop_run(loop, NULL), 0);
	assert_int_equal(r.events, LOOP_WRITE);

	close(fds[0]);
	close(fds[1]);
}

static void test_io_hangup_is_readable(void **state)
{
	struct loop_timer watchdog;
	_cleanup_loop_ struct loop *loop = new_loop(&watchdog);
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
	struct reader r = {0};
	loop_io_init(&r.io, p[0], reader_ready);
	assert_int_equal(loop_io_set(loop, &r.io, LOOP_READ, NULL), 0);
	close(p[1]); /* EPOLLHUP on the read end */
	assert_int_equal(loop_run(loop, NULL), 0);
	/* HUP is READ | WRITE, restricted to the interest: the read sees EOF. */
	assert_int_equal(r.events, LOOP_READ);
	assert_int_equal(r.got, 0);
	close(p[0]);
}

static void test_io_bad_fd(void **state)
{
	struct loop_timer watchdog;
	_cleanup_loop_ struct loop *loop = new_loop(&watchdog);
	struct loop_io io;
	struct dy_error *err = NULL;
	loop_io_init(&io, 12345, reader_ready);
	assert_int_equal(loop_io_set(loop, &io, LOOP_READ, &err), -EBADF);
	assert_non_null(strstr(dy_error_msg(err), "epoll_ctl fd 12345"));
	assert_false(loop_io_active(&io));
	dy_error_free(&err);
}

/* The stale-event guard: two watchers readable in the same batch; whichever
 * runs first stops the other and defers its free. The other must not be
 * called (ASan would also catch a use after the deferred free). */

struct conn {
	struct loop_io io;
	struct loop_deferred reap;
	struct conn *peer;
	int *calls;
	bool closed;
};

static void conn_free(struct loop_deferred *d)
{
	struct conn *c = loop_container_of(d, struct conn, reap);
	close(c->io.fd);
	free(c);
}

static void conn_ready(struct loop *loop, struct loop_io *io, uint32_t events)
{
	struct conn *c = loop_container_of(io, struct conn, io);
	assert_false(c->closed);
	(*c->calls)++;
	struct conn *victim = c->peer;
	if (victim != NULL) {
		victim->closed = true;
		victim->peer = NULL;
		c->peer = NULL;
		loop_io_stop(loop, &victim->io);
		loop_defer(loop, &victim->reap);
	}
	/* And close ourselves too, the h2o way. */
	c->closed = true;
	loop_io_stop(loop, io);
	loop_defer(loop, &c->reap);
	/* twice is once: the node is queued already */
	loop_defer(loop, &c->reap);
	assert_true(loop_defer_pending(&c->reap));
	loop_stop(loop);
}

static void test_stale_event_guard(void **state)
{
	struct loop_timer watchdog;
	_cleanup_loop_ struct loop *loop = new_loop(&watchdog);
	int a[2], b[2], calls = 0;
	make_pair(a);
	make_pair(b);
	struct conn *ca = calloc(1, sizeof(*ca)), *cb = calloc(1, sizeof(*cb));
	assert_non_null(ca);
	assert_non_null(cb);
	ca->peer = cb;
	cb->peer = ca;
	ca->calls = cb->calls = &calls;
	loop_io_init(&ca->io, a[0], conn_ready);
	loop_io_init(&cb->io, b[0], conn_ready);
	loop_defer_init(&ca->reap, conn_free);
	loop_defer_init(&cb->reap, conn_free);
	assert_int_equal(loop_io_set(loop, &ca->io, LOOP_READ, NULL), 0);
	assert_int_equal(loop_io_set(loop, &cb->io, LOOP_READ, NULL), 0);
	/* Both readable before the loop waits: one batch holds both. */
	assert_int_equal(write(a[1], "x", 1), 1);
	assert_int_equal(write(b[1], "y", 1), 1);
	assert_int_equal(loop_run_once(loop, NULL), 0);
	assert_int_equal(calls, 1);
	close(a[1]);
	close(b[1]);
}

/* The same, but the victim is freed at once, and a third watcher is
 * re-registered on a new fd in its place: the batch's queued event for the
 * old registration must go nowhere (without the guard: a use after free, or
 * a call on the wrong fd). */
struct slot {
	struct loop_io io;
	struct slot *peer;
	int *calls;
	struct slot **survivor;
	struct slot **fresh;
	int fresh_peer_fd;
};

static void slot_ready(struct loop *loop, struct loop_io *io, uint32_t events)
{
	struct slot *s = loop_container_of(io, struct slot, io);
	char buf[4];
	(*s->calls)++;
	assert_int_equal(read(io->fd, buf, sizeof(buf)), 1);
	loop_io_stop(loop, io);
	if (s->peer == NULL)
		return;
	struct slot *victim = s->peer;
	s->peer = NULL;
	loop_io_stop(loop, &victim->io);
	close(victim->io.fd);
	free(victim);
	/* Likely the same memory, now on a quiet fd. */
	struct slot *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	int fds[2];
	make_pair(fds);
	f->calls = s->calls;
	loop_io_init(&f->io, fds[0], slot_ready);
	assert_int_equal(loop_io_set(loop, &f->io, LOOP_READ, NULL), 0);
	*s->survivor = s;
	*s->fresh = f;
	f->fresh_peer_fd = fds[1];
}

static void test_stale_event_guard_free_now(void **state)
{
	struct loop_timer watchdog;
	_cleanup_loop_ struct loop *loop = new_loop(&watchdog);
	int calls = 0;
	struct slot *s[2], *survivor = NULL, *fresh = NULL;
	int w[2];
	for (int i = 0; i < 2; i++) {
		int fds[2];
		make_pair(fds);
		s[i] = calloc(1, sizeof(*s[i]));
		assert_non_null(s[i]);
		s[i]->calls = &calls;
		s[i]->survivor = &survivor;
		s[i]->fresh = &fresh;
		loop_io_init(&s[i]->io, fds[0], slot_ready);
		assert_int_equal(loop_io_set(loop, &s[i]->io, LOOP_READ, NULL), 0);
		assert_int_equal(write(fds[1], "x", 1), 1);
		w[i] = fds[1];
	}
	s[0]->peer = s[1];
	s[1]->peer = s[0];
	loop_stop(loop);
	assert_int_equal(loop_run_once(loop, NULL), 0);
	assert_int_equal(calls, 1);
	assert_non_null(survivor);
	assert_non_null(fresh);
	close(survivor->io.fd);
	free(survivor);
	loop_io_stop(loop, &fresh->io);
	close(fresh->io.fd);
	close(fresh->fresh_peer_fd);
	free(fresh);
	close(w[0]);
	close(w[1]);
}

/* Deferred functions run after the whole batch is dispatched. */

struct counted {
	struct loop_io io;
	struct loop_deferred check;
	int *dispatched;
	int *seen_by_deferred;
};

static void deferred_check(struct loop_deferred *d)
{
	struct counted *c = loop_container_of(d, struct counted, check);
	*c->seen_by_deferred = *c->dispatched;
}

static void counted_ready(struct loop *loop, struct loop_io *io, uint32_t events)
{
	struct counted *c = loop_container_of(io, struct counted, io);
	char buf[4];
	assert_int_equal(read(io->fd, buf, sizeof(buf)), 1);
	if ((*c->dispatched)++ == 0)
		loop_defer(loop, &c->check);
}

static void test_defer_after_dispatch(void **state)
{
	struct loop_timer watchdog;
	_cleanup_loop_ struct loop *loop = new_loop(&watchdog);
	int a[2], b[2], dispatched = 0, seen = -1;
	make_pair(a);
	make_pair(b);
	struct counted ca = {.dispatched = &dispatched, .seen_by_deferred = &seen};
	struct counted cb = ca;
	loop_io_init(&ca.io, a[0], counted_ready);
	loop_io_init(&cb.io, b[0], counted_ready);
	loop_defer_init(&ca.check, deferred_check);
	loop_defer_init(&cb.check, deferred_check);
	assert_int_equal(loop_io_set(loop, &ca.io, LOOP_READ, NULL), 0);
	assert_int_equal(loop_io_set(loop, &cb.io, LOOP_READ, NULL), 0);
	assert_int_equal(write(a[1], "x", 1), 1);
	assert_int_equal(write(b[1], "y", 1), 1);
	assert_int_equal(loop_run_once(loop, NULL), 0);
	assert_int_equal(dispatched, 2);
	assert_int_equal(seen, 2);
	loop_io_stop(loop, &ca.io);
	loop_io_stop(loop, &cb.io);
	for (int i = 0; i < 2; i++) {
		close(a[i]);
		close(b[i]);
	}
}

struct counter {
	struct loop_deferred node;
	int runs;
	int requeue; /* times the function queues itself again */
	struct loop *loop;
};

static void count_run(struct loop_deferred *d)
{
	struct counter *k = loop_container_of(d, struct counter, node);
	assert_false(loop_defer_pending(d));
	k->runs++;
	if (k->requeue > 0) {
		k->requeue--;
		loop_defer(k->loop, d);
	}
}

static void test_defer_runs_on_free(void **state)
{
	struct loop *loop = NULL;
	struct counter a = {0}, b = {0};
	assert_int_equal(loop_new(&loop, NULL), 0);
	loop_defer_init(&a.node, count_run);
	loop_defer_init(&b.node, count_run);
	loop_defer(loop, &a.node);
	loop_defer(loop, &b.node);
	loop_defer(loop, &a.node);
	/* a queues itself once more: loop_free runs the queue until empty */
	a.requeue = 1;
	a.loop = loop;
	loop_free(loop);
	assert_int_equal(a.runs, 2);
	assert_int_equal(b.runs, 1);
	loop_free(NULL);
}

/* A function that queues itself runs once a round, in queue order, and
 * does not hold the loop in one round. */
static void test_defer_requeue_next_round(void **state)
{
	struct loop_timer watchdog;
	_cleanup_loop_ struct loop *loop = new_loop(&watchdog);
	struct counter a = {.requeue = 2, .loop = loop}, b = {.loop = loop};
	loop_defer_init(&a.node, count_run);
	loop_defer_init(&b.node, count_run);
	loop_defer(loop, &a.node);
	loop_defer(loop, &b.node);
	assert_int_equal(loop_run_once(loop, NULL), 0);
	assert_int_equal(a.runs, 1);
	assert_int_equal(b.runs, 1);
	assert_true(loop_defer_pending(&a.node));
	assert_false(loop_defer_pending(&b.node));
	/* pending work: the next iteration does not block in epoll_wait */
	assert_int_equal(loop_run_once(loop, NULL), 0);
	assert_int_equal(loop_run_once(loop, NULL), 0);
	assert_int_equal(a.runs, 3);
	assert_false(loop_defer_pending(&a.node));
	assert_int_equal(b.runs, 1);
}

/* timers */

struct tick {
	struct loop_timer timer;
	int id;
	int *order;
	int *n;
};

static void tick_fired(struct loop *loop, struct loop_timer *t)
{
	struct tick *k = loop_container_of(t, struct tick, timer);
	k->order[(*k->n)++] = k->id;
	assert_false(loop_timer_active(t));
}

static void stop_loop_timer(struct loop *loop, struct loop_timer *t)
{
	loop_stop(loop);
}

static void test_timers_fire_in_order(void **state)
{
	struct loop_timer watchdog, end;
	_cleanup_loop_ struct loop *loop = new_loop(&watchdog);
	int order[8], n = 0;
	struct tick ticks[5];
	/* ids by expected firing order; ticks 2 and 3 share a deadline and
	 * fire in start order. */
	const uint64_t after[5] = {10000, 20000, 30000, 30000, 45000};
	const int start_order[5] = {4, 2, 0, 3, 1};
	uint64_t t0 = loop_now(loop);
	for (int i = 0; i < 5; i++) {
		int id = start_order[i];
		ticks[id] = (struct tick){.id = id, .order = order, .n = &n};
		loop_timer_init(&ticks[id].timer, tick_fired);
		assert_int_equal(loop_timer_start(loop, &ticks[id].timer, after[id], NULL), 0);
	}
	/* Ticks 2 and 3: same deadline, 2 must fire first; restart 3 so it is
	 * the later-started one regardless of the order above. */
	assert_int_equal(loop_timer_start(loop, &ticks[3].timer, after[3], NULL), 0);
	loop_timer_init(&end, stop_loop_timer);
	assert_int_equal(loop_timer_start(loop, &end, 60000, NULL), 0);
	assert_int_equal(loop_run(loop, NULL), 0);
	assert_int_equal(n, 5);
	for (int i = 0; i < 5; i++)
		assert_int_equal(order[i], i);
	/* Never early. */
	assert_true(loop_now(loop) - t0 >= 60000);
}

static void test_timer_heap_many(void **state)
{
	struct loop_timer watchdog;
	_cleanup_loop_ struct loop *loop = new_loop(&watchdog);
	enum { N = 500 };
	static struct tick ticks[N];
	static int order[N];
	int n = 0;
	uint64_t now = loop_now(loop);
	srandom(7);
	for (int i = 0; i < N; i++) {
		ticks[i] = (struct tick){.id = i, .order = order, .n = &n};
		loop_timer_init(&ticks[i].timer, tick_fired);
		/* Deadlines in the past: all expire on the next iteration. */
		uint64_t deadline = now - 1000000 + (uint64_t)(random() % 100000);
		assert_int_equal(loop_timer_start_at(loop, &ticks[i].timer, deadline, NULL), 0);
	}
	/* Stop every third and move some of the others. */
	for (int i = 0; i < N; i += 3)
		loop_timer_stop(loop, &ticks[i].timer);
	for (int i = 1; i < N; i += 7)
		if (i % 3 != 0)
			assert_int_equal(loop_timer_start_at(
			                     loop, &ticks[i].timer,
			                     now - 1000000 + (uint64_t)(random() % 100000), NULL),
			                 0);
	loop_stop(loop); /* no fd to wait for: do not block until the watchdog */
	assert_int_equal(loop_run_once(loop, NULL), 0);
	assert_int_equal(n, N - (N + 2) / 3);
	for (int i = 1; i < n; i++) {
		const struct loop_timer *a = &ticks[order[i - 1]].timer;
		const struct loop_timer *b = &ticks[order[i]].timer;
		assert_true(a->deadline < b->deadline ||
		            (a->deadline == b->deadline && a->seq < b->seq));
		assert_true(order[i] % 3 != 0);
	}
}

struct canceller {
	struct loop_timer timer;
	struct loop_timer *victim;
};

static void cancel_victim(struct loop *loop, struct loop_timer *t)
{
	struct canceller *c = loop_container_of(t, struct canceller, timer);
	loop_timer_stop(loop, c->victim);
}

static void must_not_fire(struct loop *loop, struct loop_timer *t)
{
	fail_msg("a stopped timer fired");
}

static void test_timer_cancel(void **state)
{
	struct loop_timer watchdog, end, stopped, victim;
	_cleanup_loop_ struct loop *loop = new_loop(&watchdog);
	loop_timer_init(&stopped, must_not_fire);
	assert_int_equal(loop_timer_start(loop, &stopped, 1000, NULL), 0);
	assert_true(loop_timer_active(&stopped));
	loop_timer_stop(loop, &stopped);
	assert_false(loop_timer_active(&stopped));
	loop_timer_stop(loop, &stopped); /* stopping twice is harmless */

	/* Cancelled by another timer expiring in the same round. */
	uint64_t now = loop_now(loop);
	struct canceller c = {.victim = &victim};
	loop_timer_init(&c.timer, cancel_victim);
	loop_timer_init(&victim, must_not_fire);
	assert_int_equal(loop_timer_start_at(loop, &c.timer, now - 2, NULL), 0);
	assert_int_equal(loop_timer_start_at(loop, &victim, now - 1, NULL), 0);

	loop_timer_init(&end, stop_loop_timer);
	assert_int_equal(loop_timer_start(loop, &end, 20000, NULL), 0);
	assert_int_equal(loop_run(loop, NULL), 0);
	assert_false(loop_timer_active(&victim));
}

/* A timer restarting itself with 0 must not starve fd events. */
struct spinner {
	struct loop_timer timer;
	int fires;
};

static void spin(struct loop *loop, struct loop_timer *t)
{
	struct spinner *s = loop_container_of(t, struct spinner, timer);
	s->fires++;
	assert_int_equal(loop_timer_start(loop, t, 0, NULL), 0);
}

static void test_zero_timer_does_not_starve(void **state)
{
	struct loop_timer watchdog;
	_cleanup_loop_ struct loop *loop = new_loop(&watchdog);
	struct spinner s = {0};
	loop_timer_init(&s.timer, spin);
	assert_int_equal(loop_timer_start(loop, &s.timer, 0, NULL), 0);
	int fds[2];
	make_pair(fds);
	struct reader r = {0};
	loop_io_init(&r.io, fds[0], reader_ready);
	assert_int_equal(loop_io_set(loop, &r.io, LOOP_READ, NULL), 0);
	assert_int_equal(write(fds[1], "z", 1), 1);
	assert_int_equal(loop_run(loop, NULL), 0);
	assert_int_equal(r.got, 1);
	assert_int_equal(s.fires, 1);
	loop_timer_stop(loop, &s.timer);
	close(fds[0]);
	close(fds[1]);
}

/* signals */

struct sigwatch {
	struct loop_signal sig;
	int signo;
	uint32_t pid;
};

static void got_signal(struct loop *loop, struct loop_signal *sig, int signo,
                       const struct signalfd_siginfo *info)
{
	struct sigwatch *w = loop_container_of(sig, struct sigwatch, sig);
	w->signo = signo;
	w->pid = info->ssi_pid;
	loop_stop(loop);
}

static void test_signalfd(void **state)
{
	struct loop_timer watchdog;
	_cleanup_loop_ struct loop *loop = new_loop(&watchdog);
	sigset_t mask, cur;
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	struct sigwatch w = {0};
	assert_int_equal(loop_signal_start(loop, &w.sig, &mask, got_signal, NULL), 0);
	assert_int_equal(fcntl(w.sig.io.fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	sigprocmask(SIG_BLOCK, NULL, &cur);
	assert_int_equal(sigismember(&cur, SIGUSR1), 1);
	assert_int_equal(raise(SIGUSR1), 0);
	assert_int_equal(loop_run(loop, NULL), 0);
	assert_int_equal(w.signo, SIGUSR1);
	assert_int_equal(w.pid, (uint32_t)getpid());

	/* A signal pending at stop is consumed, not delivered (SIGUSR1's
	 * default action would end this test), and the mask is restored. */
	assert_int_equal(raise(SIGUSR1), 0);
	loop_signal_stop(loop, &w.sig);
	loop_signal_stop(loop, &w.sig);
	sigprocmask(SIG_BLOCK, NULL, &cur);
	assert_int_equal(sigismember(&cur, SIGUSR1), 0);
}

/* children */

struct childwatch {
	struct loop_child child;
	siginfo_t info;
	int calls;
};

static void child_done(struct loop *loop, struct loop_child *child, const siginfo_t *info)
{
	struct childwatch *w = loop_container_of(child, struct childwatch, child);
	w->info = *info;
	w->calls++;
	assert_false(loop_io_active(&child->io));
	loop_stop(loop);
}

static pid_t spawn(int code, bool wait_for_kill)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (wait_for_kill)
			pause();
		_exit(code);
	}
	return pid;
}

static void test_pidfd_exit_status(void **state)
{
	struct loop_timer watchdog;
	_cleanup_loop_ struct loop *loop = new_loop(&watchdog);
	struct childwatch w = {0};
	pid_t pid = spawn(42, false);
	assert_int_equal(loop_child_start(loop, &w.child, pid, child_done, NULL), 0);
	assert_int_equal(fcntl(w.child.io.fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	assert_int_equal(loop_run(loop, NULL), 0);
	assert_int_equal(w.calls, 1);
	assert_int_equal(w.info.si_pid, pid);
	assert_int_equal(w.info.si_code, CLD_EXITED);
	assert_int_equal(w.info.si_status, 42);
	/* Reaped: nothing left to wait for. */
	assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);

	memset(&w, 0, sizeof(w));
	pid = spawn(0, true);
	assert_int_equal(loop_child_start(loop, &w.child, pid, child_done, NULL), 0);
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(loop_run(loop, NULL), 0);
	assert_int_equal(w.info.si_code, CLD_KILLED);
	assert_int_equal(w.info.si_status, SIGKILL);
}

static void test_pidfd_errors(void **state)
{
	struct loop_timer watchdog;
	_cleanup_loop_ struct loop *loop = new_loop(&watchdog);
	struct childwatch w = {0};
	struct dy_error *err = NULL;
	/* A pid that cannot exist (above PID_MAX_LIMIT). */
	assert_int_equal(loop_child_start(loop, &w.child, 4194305 + 1000, child_done, &err),
	                 -ESRCH);
	assert_non_null(strstr(dy_error_msg(err), "pidfd_open"));
	dy_error_free(&err);

	/* Stopped before exit: no callback, the child is left to us. */
	pid_t pid = spawn(3, false);
	assert_int_equal(loop_child_start(loop, &w.child, pid, child_done, NULL), 0);
	loop_child_stop(loop, &w.child);
	loop_child_stop(loop, &w.child);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(WEXITSTATUS(status), 3);
	assert_int_equal(w.calls, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_io_read_write),
	    cmocka_unit_test(test_io_hangup_is_readable),
	    cmocka_unit_test(test_io_bad_fd),
	    cmocka_unit_test(test_stale_event_guard),
	    cmocka_unit_test(test_stale_event_guard_free_now),
	    cmocka_unit_test(test_defer_after_dispatch),
	    cmocka_unit_test(test_defer_runs_on_free),
	    cmocka_unit_test(test_defer_requeue_next_round),
	    cmocka_unit_test(test_timers_fire_in_order),
	    cmocka_unit_test(test_timer_heap_many),
	    cmocka_unit_test(test_timer_cancel),
	    cmocka_unit_test(test_zero_timer_does_not_starve),
	    cmocka_unit_test(test_signalfd),
	    cmocka_unit_test(test_pidfd_exit_status),
	    cmocka_unit_test(test_pidfd_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
