#include "common/buf.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "common/macro.h"

#define BUF_MIN_GROW 4096

static void compact(struct buf *b)
{
	if (b->start == 0)
		return;
	memmove(b->p, b->p + b->start, b->end - b->start);
	b->end -= b->start;
	b->start = 0;
}

static bool resize(struct buf *b, size_t cap)
{
	char *p = realloc(b->p, cap);
	if (p == NULL)
		return false;
	b->p = p;
	b->cap = cap;
	return true;
}

size_t buf_reserve_slow(struct buf *b, size_t max)
{
	if (b->p == NULL && !resize(b, MIN((size_t)BUF_START, max)))
		return 0;
	if (b->end == b->cap)
		compact(b);
	if (b->end == b->cap && b->cap < max) {
		/* doubling keeps the copies few; a failed growth leaves the
		 * buffer as it was, full: the caller waits */
		size_t cap = b->cap <= SIZE_MAX / 2 ? b->cap * 2 : SIZE_MAX;
		resize(b, MIN(cap, max));
	}
	return b->cap - b->end;
}

int buf_append_slow(struct buf *b, const void *p, size_t n, size_t max)
{
	if (n > max || buf_len(b) > max - n)
		return -ENOBUFS;
	if (b->cap - b->end < n)
		compact(b);
	if (b->cap - b->end < n) {
		size_t cap = MAX(b->cap, (size_t)BUF_MIN_GROW / 2);
		while (cap < b->end + n && cap <= SIZE_MAX / 2)
			cap *= 2;
		if (!resize(b, CLAMP(cap, b->end + n, max)))
			return -ENOMEM;
	}
	if (n > 0)
		memcpy(b->p + b->end, p, n);
	b->end += n;
	return 0;
}

int buf_grow(struct buf *b, size_t cap)
{
	if (b->cap >= cap)
		return 0;
	return resize(b, cap) ? 0 : -ENOMEM;
}

void buf_free(struct buf *b)
{
	free(b->p);
	*b = (struct buf){0};
}

ssize_t buf_recv(struct buf *b, int fd, size_t max)
{
	size_t room = buf_reserve(b, max);
	if (room == 0)
		return -ENOBUFS;
	for (;;) {
		ssize_t r = recv(fd, b->p + b->end, room, 0);
		if (r > 0) {
			b->end += (size_t)r;
			return r;
		}
		if (r == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == EWOULDBLOCK)
			return -EAGAIN;
		return -errno;
	}
}

/* The result of one send(2) or sendmsg(2) of n bytes: as buf_send(). */
static ssize_t sent(ssize_t w, size_t n, bool *blocked)
{
	if (w >= 0) {
		if ((size_t)w < n)
			*blocked = true;
		return w;
	}
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		*blocked = true;
		return 0;
	}
	return -errno;
}

ssize_t buf_send(int fd, const void *p, size_t n, bool *blocked)
{
	ssize_t w;
	do
		w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (w < 0 && errno == EINTR);
	return sent(w, n, blocked);
}

ssize_t buf_send2(int fd, const void *p1, size_t n1, const void *p2, size_t n2, bool *blocked)
{
	if (n1 == 0)
		return buf_send(fd, p2, n2, blocked);
	if (n2 == 0)
		return buf_send(fd, p1, n1, blocked);
	struct iovec iov[2] = {{(void *)p1, n1}, {(void *)p2, n2}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
	ssize_t w;
	do
		w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (w < 0 && errno == EINTR);
	return sent(w, n1 + n2, blocked);
}

ssize_t buf_flush(struct buf *b, int fd, bool *blocked)
{
	ssize_t w = buf_send(fd, buf_data(b), buf_len(b), blocked);
	if (w > 0)
		buf_consume(b, (size_t)w);
	return w;
}
