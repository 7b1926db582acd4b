/* Power of two choices over the usable backends of an app. */
#include "router/balancer.h"

#include <assert.h>
#include <sys/random.h>
#include <time.h>

void bal_seed(struct bal_rng *rng)
{
	uint64_t s = 0;
	if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s)) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		s = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32);
	}
	rng->s = s ? s : 0x9e3779b97f4a7c15ull;
}

uint64_t bal_next(struct bal_rng *rng)
{
	/* xorshift64* (Vigna): plenty for picking among dynos */
	uint64_t x = rng->s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng->s = x;
	return x * 0x2545f4914f6cdd1dull;
}

bool bal_usable(const struct route_backend *b, uint64_t now)
{
	return !b->draining && !b->removed && b->healthy && b->skip_until <= now;
}

void bal_skip(struct route_backend *b, uint64_t now)
{
	b->skip_until = now + BAL_SKIP_USEC;
}

static bool was_tried(const struct route_backend *b, struct route_backend *const *tried, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (tried[i] == b)
			return true;
	return false;
}

/* A candidate for a new request: usable, not tried yet, under the bound. */
static bool candidate(const struct route_backend *b, uint64_t now,
                      struct route_backend *const *tried, size_t ntried, unsigned max_inflight,
                      bool *busy)
{
	if (!bal_usable(b, now) || was_tried(b, tried, ntried))
		return false;
	if (b->inflight >= max_inflight) {
		*busy = true;
		return false;
	}
	return true;
}

struct route_backend *bal_pick(const struct route_app *app, uint64_t now,
                               struct route_backend *const *tried, size_t ntried,
                               unsigned max_inflight, struct bal_rng *rng, bool *ret_busy)
{
	/* Count the candidates, then pick two distinct ones by rank without
	 * allocating: apps have a handful of dynos, two passes are cheap. */
	bool busy = false;
	size_t n = 0;
	for (size_t i = 0; i < app->nbackends; i++)
		if (candidate(app->backends[i], now, tried, ntried, max_inflight, &busy))
			n++;
	if (ret_busy)
		*ret_busy = busy;
	if (n == 0)
		return NULL;
	size_t ra = (size_t)(bal_next(rng) % n), rb = ra;
	if (n > 1) {
		rb = (size_t)(bal_next(rng) % (n - 1));
		if (rb >= ra)
			rb++;
	}
	struct route_backend *a = NULL, *b = NULL;
	size_t k = 0;
	for (size_t i = 0; i < app->nbackends; i++) {
		struct route_backend *c = app->backends[i];
		if (!candidate(c, now, tried, ntried, max_inflight, &busy))
			continue;
		if (k == ra)
			a = c;
		if (k == rb)
			b = c;
		k++;
	}
	assert(a != NULL && b != NULL);
	if (a->inflight != b->inflight)
		return a->inflight < b->inflight ? a : b;
	/* ra and rb are already random, so a tie goes to the first drawn */
	return a;
}

struct route_backend *bal_queue_pick(const struct route_app *app, uint64_t now,
                                     struct route_backend *const *tried, size_t ntried,
                                     unsigned queue_max)
{
	struct route_backend *best = NULL;
	for (size_t i = 0; i < app->nbackends; i++) {
		struct route_backend *b = app->backends[i];
		if (!bal_usable(b, now) || was_tried(b, tried, ntried) || b->nwait >= queue_max)
			continue;
		if (best == NULL || b->nwait < best->nwait)
			best = b;
	}
	return best;
}

void bal_queue_push(struct route_backend *b, struct bal_waiter *w)
{
	assert(w->be == NULL);
	route_backend_ref(b);
	w->be = b;
	w->next = NULL;
	w->prev = b->wait_tail;
	if (b->wait_tail)
		b->wait_tail->next = w;
	else
		b->wait_head = w;
	b->wait_tail = w;
	b->nwait++;
}

void bal_queue_remove(struct bal_waiter *w)
{
	struct route_backend *b = w->be;
	if (b == NULL)
		return;
	if (w->prev)
		w->prev->next = w->next;
	else
		b->wait_head = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		b->wait_tail = w->prev;
	b->nwait--;
	w->prev = w->next = NULL;
	w->be = NULL;
	route_backend_unref(b);
}

struct bal_waiter *bal_queue_pop(struct route_backend *b)
{
	struct bal_waiter *w = b->wait_head;
	if (w)
		bal_queue_remove(w);
	return w;
}
