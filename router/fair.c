/* Connections per app and the free-fd floor. */
#include "router/fair.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"

#define FAIR_BUCKETS 256

int fair_init(struct fair *f, unsigned max_app, uint64_t fd_limit)
{
	*f = (struct fair){
	    .nbuckets = FAIR_BUCKETS,
	    .max_app = max_app,
	    .fd_limit = fd_limit,
	    .fd_floor = fd_limit ? fair_fd_floor(fd_limit) : 0,
	};
	f->buckets = calloc(f->nbuckets, sizeof(*f->buckets));
	return f->buckets ? 0 : -ENOMEM;
}

void fair_done(struct fair *f)
{
	for (size_t i = 0; f->buckets && i < f->nbuckets; i++)
		for (struct fair_app *a = f->buckets[i], *next; a; a = next) {
			next = a->next;
			free(a);
		}
	free(f->buckets);
	f->buckets = NULL;
	f->napps = 0;
}

uint64_t fair_fd_floor(uint64_t limit)
{
	return MIN(MAX(limit / 20, (uint64_t)FAIR_FD_FLOOR_MIN), limit / 2);
}

static size_t bucket(const struct fair *f, const char *name)
{
	/* FNV-1a */
	uint64_t h = 1469598103934665603ull;
	for (; *name; name++) {
		h ^= (unsigned char)*name;
		h *= 1099511628211ull;
	}
	return (size_t)(h % f->nbuckets);
}

struct fair_app *fair_join(struct fair *f, const char *app)
{
	size_t i = bucket(f, app);
	struct fair_app *a;
	for (a = f->buckets[i]; a; a = a->next)
		if (strcmp(a->name, app) == 0)
			break;
	if (a == NULL) {
		size_t n = strlen(app);
		a = malloc(sizeof(*a) + n + 1);
		if (a == NULL)
			return NULL;
		memcpy(a->name, app, n + 1);
		a->conns = 0;
		a->next = f->buckets[i];
		f->buckets[i] = a;
		f->napps++;
	}
	a->conns++;
	return a;
}

void fair_leave(struct fair *f, struct fair_app *a)
{
	if (a == NULL)
		return;
	if (--a->conns > 0)
		return;
	for (struct fair_app **pp = &f->buckets[bucket(f, a->name)]; *pp; pp = &(*pp)->next)
		if (*pp == a) {
			*pp = a->next;
			break;
		}
	f->napps--;
	free(a);
}

bool fair_refuse(const struct fair *f, const struct fair_app *a, bool joined, uint64_t fds_open)
{
	if (joined && a->conns > f->max_app)
		return true;
	if (f->fd_limit == 0 || fds_open + f->fd_floor < f->fd_limit)
		return false;
	/* fds are low: an app past its even share of what is above the
	 * floor goes first, so that the others keep theirs */
	uint64_t share = (f->fd_limit - f->fd_floor) / (2 * MAX(f->napps, (size_t)1));
	return a->conns > share;
}
