/* Power of two choices over the usable backends of an app. */
#include "router/balancer.h"

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

struct route_backend *bal_pick(const struct route_app *app, uint64_t now,
                               struct route_backend *const *tried, size_t ntried,
                               struct bal_rng *rng)
{
	/* Count the candidates, then pick two distinct ones by rank without
	 * allocating: apps have a handful of dynos, two passes are cheap. */
	size_t n = 0;
	for (size_t i = 0; i < app->nbackends; i++)
		if (bal_usable(app->backends[i], now) &&
		    !was_tried(app->backends[i], tried, ntried))
			n++;
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
		if (!bal_usable(c, now) || was_tried(c, tried, ntried))
			continue;
		if (k == ra)
			a = c;
		if (k == rb)
			b = c;
		k++;
	}
	if (a->inflight != b->inflight)
		return a->inflight < b->inflight ? a : b;
	/* ra and rb are already random, so a tie goes to the first drawn */
	return a;
}
