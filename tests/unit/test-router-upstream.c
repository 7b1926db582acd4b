/* The upstream pool against a listening socket on 127.0.0.1: connect,
 * attach, release into the pool, reuse, bounds, expiry, close. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "router/upstream.h"

struct fixture {
	struct loop *loop;
	struct loop_timer watchdog;
	int lfd;
	struct route_backend *be;
	struct upstream_pool pool;
	int io_calls, timer_calls;
};

static struct fixture *F;

static void owner_io(struct upstream *u, uint32_t events)
{
	F->io_calls++;
}

static void owner_timer(struct upstream *u)
{
	F->timer_calls++;
}

static void watchdog_fired(struct loop *loop, struct loop_timer *t)
{
	fail_msg("watchdog: the loop did not stop in time");
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	assert_int_equal(loop_new(&f->loop, NULL), 0);
	loop_timer_init(&f->watchdog, watchdog_fired);
	assert_int_equal(loop_timer_start(f->loop, &f->watchdog, 5000000, NULL), 0);
	f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(f->lfd >= 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(f->lfd, 16), 0);
	f->be = calloc(1, sizeof(*f->be));
	assert_non_null(f->be);
	f->be->refs = 1; /* the table's */
	socklen_t sl = sizeof(f->be->sa);
	assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&f->be->sa, &sl), 0);
	f->be->sa_len = sl;
	upstream_pool_init(&f->pool, f->loop, 2, 20000, owner_io, owner_timer);
	F = f;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	upstream_pool_close_all(&f->pool);
	loop_timer_stop(f->loop, &f->watchdog);
	loop_free(f->loop); /* runs the deferred frees */
	/* every upstream gave its reference back */
	assert_int_equal(f->be->refs, 1);
	route_backend_unref(f->be);
	close(f->lfd);
	free(f);
	return 0;
}

/* A connected upstream, attached to owner slot *ref, and the server's end. */
static struct upstream *open_one(struct fixture *f, struct upstream **ref, int *ret_peer)
{
	struct upstream *u = NULL;
	bool refused = true;
	assert_int_equal(upstream_connect(&f->pool, f->be, &u, &refused), 0);
	assert_false(refused);
	assert_non_null(u);
	assert_true(u->state == UPSTREAM_CONNECTING || u->state == UPSTREAM_ACTIVE);
	int peer = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(peer >= 0);
	struct pollfd pfd = {.fd = u->io.fd, .events = POLLOUT};
	assert_int_equal(poll(&pfd, 1, 2000), 1);
	if (u->state == UPSTREAM_CONNECTING)
		assert_int_equal(upstream_connected(u), 0);
	assert_int_equal(u->state, UPSTREAM_ACTIVE);
	upstream_attach(u, f, ref);
	assert_ptr_equal(*ref, u);
	*ret_peer = peer;
	return u;
}

/* Runs the loop until the deferred frees ran (one round does it). */
static void round_trip(struct fixture *f)
{
	loop_stop(f->loop);
	assert_int_equal(loop_run_once(f->loop, NULL), 0);
}

static void test_put_get_reuse(void **state)
{
	struct fixture *f = *state;
	struct upstream *ref = NULL;
	int peer;
	struct upstream *u = open_one(f, &ref, &peer);
	assert_int_equal(f->be->inflight, 1);
	assert_int_equal(f->be->requests, 1);
	assert_int_equal(f->be->refs, 2);
	assert_false(u->reused);

	upstream_release(u, true);
	assert_null(ref); /* the owner's slot is cleared */
	assert_int_equal(u->state, UPSTREAM_IDLE);
	assert_int_equal(f->be->npool, 1);
	assert_int_equal(f->be->inflight, 0);
	assert_true(loop_timer_active(&u->timer));

	struct upstream *again = upstream_take(&f->pool, f->be);
	assert_ptr_equal(again, u);
	assert_true(again->reused);
	assert_int_equal(again->state, UPSTREAM_ACTIVE);
	assert_int_equal(f->be->npool, 0);
	assert_null(upstream_take(&f->pool, f->be));
	upstream_attach(again, f, &ref);
	assert_int_equal(f->be->requests, 2);

	/* not kept: closed, not pooled */
	upstream_release(again, false);
	assert_null(ref);
	assert_true(u->dead);
	assert_int_equal(f->be->npool, 0);
	assert_int_equal(f->be->inflight, 0);
	round_trip(f);
	assert_int_equal(f->be->refs, 1);
	close(peer);
}

static void test_not_pooled_when_unfit(void **state)
{
	struct fixture *f = *state;
	struct upstream *ref = NULL;
	int peer[3];
	/* unread bytes, a dyno that closed, a draining backend: closed */
	struct upstream *u = open_one(f, &ref, &peer[0]);
	assert_int_equal(buf_append(&u->in, "x", 1, 16), 0);
	upstream_release(u, true);
	assert_true(u->dead);
	u = open_one(f, &ref, &peer[1]);
	u->rd_eof = true;
	upstream_release(u, true);
	assert_true(u->dead);
	u = open_one(f, &ref, &peer[2]);
	f->be->draining = true;
	upstream_release(u, true);
	assert_true(u->dead);
	f->be->draining = false;
	assert_int_equal(f->be->npool, 0);
	for (int i = 0; i < 3; i++)
		close(peer[i]);
}

static void test_per_backend_bound(void **state)
{
	struct fixture *f = *state;
	struct upstream *ref[3] = {NULL};
	struct upstream *u[3];
	int peer[3];
	for (int i = 0; i < 3; i++)
		u[i] = open_one(f, &ref[i], &peer[i]);
	assert_int_equal(f->be->inflight, 3);
	for (int i = 0; i < 3; i++)
		upstream_release(u[i], true);
	/* idle_max is 2: the third is closed */
	assert_int_equal(f->be->npool, 2);
	assert_false(u[0]->dead);
	assert_false(u[1]->dead);
	assert_true(u[2]->dead);
	/* the most recently pooled comes back first */
	assert_ptr_equal(upstream_take(&f->pool, f->be), u[1]);
	upstream_close(u[1]);
	upstream_close_idle(f->be);
	assert_int_equal(f->be->npool, 0);
	assert_null(f->be->pool);
	assert_true(u[0]->dead);
	/* a closing pool pools nothing */
	struct upstream *r = NULL;
	int p;
	struct upstream *v = open_one(f, &r, &p);
	f->pool.closing = true;
	upstream_release(v, true);
	assert_true(v->dead);
	for (int i = 0; i < 3; i++)
		close(peer[i]);
	close(p);
}

static void stop_loop(struct loop *loop, struct loop_timer *t)
{
	loop_stop(loop);
}

static void test_idle_expire_and_peer_close(void **state)
{
	struct fixture *f = *state;
	struct upstream *ref[2] = {NULL};
	int peer[2];
	struct upstream *a = open_one(f, &ref[0], &peer[0]);
	upstream_release(a, true);
	assert_int_equal(f->be->npool, 1);
	/* the dyno closes an idle connection: noticed, closed */
	close(peer[0]);
	assert_int_equal(f->be->refs, 2);
	/* one iteration: closed on the event, freed after the dispatch */
	assert_int_equal(loop_run_once(f->loop, NULL), 0);
	assert_int_equal(f->be->npool, 0);
	assert_int_equal(f->be->refs, 1);

	/* an idle connection outlives idle_timeout (20 ms) by nothing */
	struct upstream *b = open_one(f, &ref[1], &peer[1]);
	upstream_release(b, true);
	assert_int_equal(f->be->npool, 1);
	struct loop_timer end;
	loop_timer_init(&end, stop_loop);
	assert_int_equal(loop_timer_start(f->loop, &end, 60000, NULL), 0);
	assert_int_equal(loop_run(f->loop, NULL), 0);
	assert_int_equal(f->be->npool, 0);
	/* the owner heard nothing of idle connections */
	assert_int_equal(f->io_calls, 0);
	assert_int_equal(f->timer_calls, 0);
	close(peer[1]);
}

static void test_attached_events_go_to_owner(void **state)
{
	struct fixture *f = *state;
	struct upstream *ref = NULL;
	int peer;
	struct upstream *u = open_one(f, &ref, &peer);
	assert_int_equal(loop_io_set(f->loop, &u->io, LOOP_READ, NULL), 0);
	assert_int_equal(write(peer, "HTTP", 4), 4);
	assert_int_equal(loop_timer_start(f->loop, &u->timer, 0, NULL), 0);
	loop_stop(f->loop);
	assert_int_equal(loop_run_once(f->loop, NULL), 0);
	/* both in one iteration: the expired timer, then the readable socket */
	assert_int_equal(f->io_calls, 1);
	assert_int_equal(f->timer_calls, 1);
	assert_false(u->dead);
	upstream_close(u);
	assert_null(ref);
	upstream_close(u); /* twice is once */
	upstream_close(NULL);
	close(peer);
}

static void test_connect_refused(void **state)
{
	struct fixture *f = *state;
	/* a port nobody listens on: the listener's, once closed */
	struct route_backend *gone = calloc(1, sizeof(*gone));
	assert_non_null(gone);
	gone->refs = 1;
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
	socklen_t sl = sizeof(gone->sa);
	assert_int_equal(getsockname(s, (struct sockaddr *)&gone->sa, &sl), 0);
	gone->sa_len = sl;
	close(s);
	struct upstream *u = NULL;
	bool refused = false;
	int r = upstream_connect(&f->pool, gone, &u, &refused);
	if (r == 0) {
		/* refused later: SO_ERROR tells */
		struct pollfd pfd = {.fd = u->io.fd, .events = POLLOUT};
		assert_int_equal(poll(&pfd, 1, 2000), 1);
		assert_int_equal(upstream_connected(u), -ECONNREFUSED);
		assert_int_equal(u->state, UPSTREAM_CONNECTING);
		upstream_close(u);
		round_trip(f);
	} else {
		assert_int_equal(r, -ECONNREFUSED);
		assert_true(refused);
	}
	assert_int_equal(gone->refs, 1);
	route_backend_unref(gone);
	assert_string_equal(upstream_state_str(UPSTREAM_IDLE), "idle");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_put_get_reuse, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_not_pooled_when_unfit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_per_backend_bound, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_idle_expire_and_peer_close, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_attached_events_go_to_owner, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_connect_refused, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
