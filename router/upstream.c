#include "router/upstream.h"

#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

const char *upstream_state_str(enum upstream_state s)
{
	switch (s) {
	case UPSTREAM_CONNECTING:
		return "connecting";
	case UPSTREAM_ACTIVE:
		return "active";
	case UPSTREAM_IDLE:
		return "idle";
	}
	return "?";
}

static void on_io(struct loop *loop, struct loop_io *io, uint32_t events)
{
	struct upstream *u = loop_container_of(io, struct upstream, io);
	if (u->dead)
		return;
	if (u->owner == NULL) {
		/* pooled: data or a close from an idle dyno connection */
		upstream_close(u);
		return;
	}
	u->pool->on_io(u, events);
}

static void on_timer(struct loop *loop, struct loop_timer *t)
{
	struct upstream *u = loop_container_of(t, struct upstream, timer);
	if (u->owner == NULL) {
		upstream_close(u); /* idle in the pool too long */
		return;
	}
	u->pool->on_timer(u);
}

static void reap(struct loop_deferred *d)
{
	struct upstream *u = loop_container_of(d, struct upstream, reap);
	buf_free(&u->in);
	buf_free(&u->out);
	free(u);
}

void upstream_pool_init(struct upstream_pool *p, struct loop *loop, size_t idle_max,
                        uint64_t idle_timeout, upstream_io_fn io_fn, upstream_timer_fn timer_fn)
{
	*p = (struct upstream_pool){
	    .loop = loop,
	    .idle_max = idle_max,
	    .idle_timeout = idle_timeout,
	    .on_io = io_fn,
	    .on_timer = timer_fn,
	};
}

static void idle_remove(struct upstream *u)
{
	struct route_backend *b = u->be;
	for (struct upstream **pp = &b->pool; *pp; pp = &(*pp)->idle_next)
		if (*pp == u) {
			*pp = u->idle_next;
			b->npool--;
			break;
		}
	u->idle_next = NULL;
}

struct upstream *upstream_take(struct upstream_pool *p, struct route_backend *b)
{
	struct upstream *u = b->pool;
	if (u == NULL)
		return NULL;
	assert(u->state == UPSTREAM_IDLE && u->owner == NULL);
	b->pool = u->idle_next;
	b->npool--;
	u->idle_next = NULL;
	u->state = UPSTREAM_ACTIVE;
	u->reused = true;
	return u;
}

int upstream_connect(struct upstream_pool *p, struct route_backend *b, struct upstream **ret,
                     bool *ret_refused)
{
	*ret_refused = false;
	int fd = socket(b->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	int cr = connect(fd, (struct sockaddr *)&b->sa, b->sa_len);
	if (cr < 0 && errno != EINPROGRESS) {
		int e = errno;
		close(fd);
		*ret_refused = true;
		return -e;
	}
	struct upstream *u = calloc(1, sizeof(*u));
	if (u == NULL) {
		close(fd);
		return -ENOMEM;
	}
	u->pool = p;
	loop_io_init(&u->io, fd, on_io);
	loop_timer_init(&u->timer, on_timer);
	loop_defer_init(&u->reap, reap);
	u->be = b;
	route_backend_ref(b);
	u->state = cr == 0 ? UPSTREAM_ACTIVE : UPSTREAM_CONNECTING;
	u->next = p->all;
	if (u->next)
		u->next->prev = u;
	p->all = u;
	p->n++;
	u->last_active = loop_now(p->loop);
	*ret = u;
	return 0;
}

void upstream_attach(struct upstream *u, void *owner, struct upstream **ref)
{
	assert(u->owner == NULL && !u->dead);
	u->owner = owner;
	u->owner_ref = ref;
	*ref = u;
	u->be->inflight++;
	u->be->requests++;
}

int upstream_connected(struct upstream *u)
{
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	if (getsockopt(u->io.fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
		soerr = errno;
	if (soerr != 0)
		return -soerr;
	u->state = UPSTREAM_ACTIVE;
	return 0;
}

static void detach(struct upstream *u)
{
	if (u->owner == NULL)
		return;
	*u->owner_ref = NULL;
	u->owner = NULL;
	u->owner_ref = NULL;
	u->be->inflight--;
}

void upstream_release(struct upstream *u, bool keep)
{
	struct upstream_pool *p = u->pool;
	struct route_backend *b = u->be;
	if (!keep || b->removed || b->draining || b->npool >= p->idle_max || buf_len(&u->in) > 0 ||
	    u->rd_eof || p->closing) {
		upstream_close(u);
		return;
	}
	detach(u);
	u->state = UPSTREAM_IDLE;
	buf_clear(&u->out);
	buf_clear(&u->in);
	/* an idle connection keeps no more than BUF_START: a buffer grown
	 * for a long body or a large head goes back */
	if (u->in.cap > BUF_START)
		buf_free(&u->in);
	if (u->out.cap > BUF_START)
		buf_free(&u->out);
	u->idle_next = b->pool;
	b->pool = u;
	b->npool++;
	/* an idle dyno connection is only read to notice its close */
	loop_io_set(p->loop, &u->io, LOOP_READ, NULL);
	u->last_active = loop_now(p->loop);
	loop_timer_start(p->loop, &u->timer, p->idle_timeout, NULL);
	if (b->nwait > 0 && p->on_slot)
		p->on_slot(b, p->slot_data);
}

void upstream_close(struct upstream *u)
{
	if (u == NULL || u->dead)
		return;
	struct upstream_pool *p = u->pool;
	struct route_backend *b = u->be;
	bool attached = u->owner != NULL;
	u->dead = true;
	if (u->state == UPSTREAM_IDLE)
		idle_remove(u);
	loop_io_stop(p->loop, &u->io);
	loop_timer_stop(p->loop, &u->timer);
	close(u->io.fd);
	u->io.fd = -1;
	detach(u);
	if (u->prev)
		u->prev->next = u->next;
	else
		p->all = u->next;
	if (u->next)
		u->next->prev = u->prev;
	p->n--;
	u->be = NULL;
	loop_defer(p->loop, &u->reap);
	/* before the reference is dropped: b stays valid for the waiters */
	if (attached && b->nwait > 0 && p->on_slot)
		p->on_slot(b, p->slot_data);
	route_backend_unref(b);
}

void upstream_close_idle(struct route_backend *b)
{
	while (b->pool)
		upstream_close(b->pool);
}

void upstream_pool_close_all(struct upstream_pool *p)
{
	while (p->all)
		upstream_close(p->all);
}
