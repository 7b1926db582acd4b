/* The proxy of dyno-router, as glue (after h2o's lib/core/proxy.c): the
 * routing table and its hooks, the health checks, the upstream pool
 * (router/upstream.c), the client connections (router/client.c) with their
 * body pumps (router/pump.c), shutdown. */
#include "router/proxy.h"

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/macro.h"
#include "router/client.h"

static void hook_added(struct route_backend *b, void *data)
{
	struct proxy *px = data;
	hc_start(&px->hc, b);
}

/* The requests waiting for b pick again: b is gone or draining. */
static void wake_all(struct route_backend *b)
{
	while (b->wait_head)
		client_wake(loop_container_of(bal_queue_pop(b), struct client, wait));
}

static void hook_removed(struct route_backend *b, void *data)
{
	struct proxy *px = data;
	hc_stop(&px->hc, b);
	upstream_close_idle(b);
	wake_all(b);
}

/* A slot of b was freed: the first waiters take it (one per slot; one that
 * finds b unusable now picks another dyno). b is kept valid by the caller. */
static void on_slot(struct route_backend *b, void *data)
{
	struct proxy *px = data;
	for (unsigned n = b->nwait; n > 0 && b->wait_head; n--) {
		if (bal_usable(b, loop_now(px->loop)) &&
		    b->inflight >= px->cfg.max_inflight_per_dyno)
			break;
		client_wake(loop_container_of(bal_queue_pop(b), struct client, wait));
	}
}

uint64_t proxy_fds_open(const struct proxy *px)
{
	return px->clients.n + px->pool.n + PROXY_FDS_BASE;
}

int proxy_new(struct loop *loop, const struct proxy_config *cfg, struct rlog *log,
              struct proxy **ret, struct dy_error **err)
{
	struct proxy *px = calloc(1, sizeof(*px));
	if (px == NULL)
		return dy_error_errno(err, ENOMEM, "proxy");
	px->loop = loop;
	px->cfg = *cfg;
	/* 0: unbounded, for callers that leave the bounds out */
	if (px->cfg.max_inflight_per_dyno == 0)
		px->cfg.max_inflight_per_dyno = UINT_MAX;
	if (px->cfg.max_connections_per_app == 0)
		px->cfg.max_connections_per_app = UINT_MAX;
	px->log = log;
	px->table = route_table_empty();
	if (px->table == NULL) {
		free(px);
		return dy_error_errno(err, ENOMEM, "proxy");
	}
	px->hooks.added = hook_added;
	px->hooks.removed = hook_removed;
	px->hooks.data = px;
	if (fair_init(&px->fair, px->cfg.max_connections_per_app, cfg->fd_limit) < 0) {
		route_table_free(px->table);
		free(px);
		return dy_error_errno(err, ENOMEM, "proxy");
	}
	upstream_pool_init(&px->pool, loop, PROXY_POOL_MAX, cfg->idle_timeout, client_upstream_io,
	                   client_upstream_timer);
	px->pool.on_slot = on_slot;
	px->pool.slot_data = px;
	px->hc.loop = loop;
	px->hc.log = log;
	px->hc.metrics = &px->metrics;
	px->hc.interval = cfg->health_interval;
	px->hc.timeout = MIN(cfg->connect_timeout, cfg->health_interval);
	px->hc.rise = cfg->rise ? cfg->rise : 1;
	px->hc.fall = cfg->fall ? cfg->fall : 1;
	bal_seed(&px->rng);
	*ret = px;
	return 0;
}

void proxy_accept(struct proxy *px, int fd, const struct sockaddr *peer, unsigned listen_port)
{
	if (px->shutting_down) {
		close(fd);
		return;
	}
	client_accept(px, fd, peer, listen_port);
}

const struct route_table *proxy_table(const struct proxy *px)
{
	return px->table;
}

const struct route_hooks *proxy_route_hooks(struct proxy *px)
{
	return &px->hooks;
}

void proxy_set_table(struct proxy *px, struct route_table *t)
{
	struct route_table *old = px->table;
	px->table = t;
	route_table_retire(old, t, &px->hooks);
	/* pools of backends that turned draining hold no new work */
	for (size_t i = 0; i < t->napps; i++)
		for (size_t k = 0; k < t->apps[i].nbackends; k++) {
			struct route_backend *b = t->apps[i].backends[k];
			if (b->draining) {
				upstream_close_idle(b);
				wake_all(b);
			}
		}
	route_table_free(old);
}

struct metrics *proxy_metrics(struct proxy *px)
{
	return &px->metrics;
}

void proxy_shutdown(struct proxy *px)
{
	px->shutting_down = true;
	px->pool.closing = true;
	for (struct dy_conn *n = px->clients.head, *next; n; n = next) {
		next = n->next;
		struct client *c = loop_container_of(n, struct client, conn);
		if (c->state == CLIENT_HEAD && buf_len(&c->in) == 0)
			client_close(c);
	}
	for (size_t i = 0; i < px->table->napps; i++)
		for (size_t k = 0; k < px->table->apps[i].nbackends; k++)
			upstream_close_idle(px->table->apps[i].backends[k]);
	if (px->clients.n == 0)
		loop_stop(px->loop);
}

bool proxy_busy(const struct proxy *px)
{
	return px->clients.n > 0;
}

void proxy_free(struct proxy *px)
{
	if (px == NULL)
		return;
	px->shutting_down = true;
	px->pool.closing = true;
	while (px->clients.head)
		client_close(loop_container_of(px->clients.head, struct client, conn));
	upstream_pool_close_all(&px->pool);
	route_table_retire(px->table, NULL, &px->hooks);
	route_table_free(px->table);
	fair_done(&px->fair);
	free(px);
}
