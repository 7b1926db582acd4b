#include "common/conn.h"

#include <unistd.h>

void dy_conn_init(struct dy_conn *c, int fd, loop_io_fn io_fn, loop_timer_fn timer_fn,
                  loop_defer_fn free_fn)
{
	c->prev = c->next = NULL;
	c->closed = false;
	loop_io_init(&c->io, fd, io_fn);
	loop_timer_init(&c->timer, timer_fn);
	loop_defer_init(&c->reap, free_fn);
}

int dy_conn_start(struct loop *loop, struct dy_conn_list *list, struct dy_conn *c,
                  uint64_t timeout_usec)
{
	c->next = list->head;
	if (c->next)
		c->next->prev = c;
	list->head = c;
	list->n++;
	int r = loop_io_set(loop, &c->io, LOOP_READ, NULL);
	if (r == 0 && timeout_usec > 0)
		r = loop_timer_start(loop, &c->timer, timeout_usec, NULL);
	if (r < 0)
		dy_conn_close(loop, list, c);
	return r;
}

bool dy_conn_close(struct loop *loop, struct dy_conn_list *list, struct dy_conn *c)
{
	if (c->closed)
		return false;
	c->closed = true;
	loop_io_stop(loop, &c->io);
	loop_timer_stop(loop, &c->timer);
	close(c->io.fd);
	c->io.fd = -1;
	if (c->prev)
		c->prev->next = c->next;
	else
		list->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	list->n--;
	loop_defer(loop, &c->reap);
	return true;
}
