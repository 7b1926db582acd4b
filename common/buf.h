/* A growable byte buffer with a cap, and non-blocking send/recv on it, for
 * the connections of the router and the API server.
 *
 * The bytes waiting are p[start, end); consuming moves start, and the room
 * at the end is made by compacting (moving the bytes to the front) before
 * growing, so a buffer that is drained as it fills never grows. Every
 * growth takes a cap chosen by the caller for that call: a connection
 * bounds its input by its state (a head may be 64 KiB, a body streams
 * through what is there). The memory is the caller's to give back with
 * buf_free(), for instance while a connection is idle.
 *
 * The sends never block and never raise SIGPIPE (MSG_NOSIGNAL |
 * MSG_DONTWAIT); EINTR is retried. They return what the kernel took and set
 * *blocked when it took less than offered, the sign for the caller to wait
 * for LOOP_WRITE. */
#pragma once

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/types.h>

/* The first allocation of a buffer filled by buf_reserve() or buf_recv(),
 * when the cap allows it. */
#define BUF_START 16384

struct buf {
	char *p;
	size_t start, end, cap;
};

/* The number of bytes waiting. */
static inline size_t buf_len(const struct buf *b)
{
	return b->end - b->start;
}

/* The first byte waiting (valid for buf_len() bytes, until the next call
 * that may move or grow the buffer). */
static inline char *buf_data(const struct buf *b)
{
	return b->p + b->start;
}

/* Drops the first n waiting bytes (n <= buf_len()). An emptied buffer
 * starts again at the front, which saves the compaction later. */
static inline void buf_consume(struct buf *b, size_t n)
{
	assert(n <= buf_len(b));
	b->start += n;
	if (b->start == b->end)
		b->start = b->end = 0;
}

/* Drops every waiting byte, keeping the memory. */
static inline void buf_clear(struct buf *b)
{
	b->start = b->end = 0;
}

/* True when buf_reserve(b, max) would find room: a byte is free at the
 * end, or compacting or growing up to max would free one. */
static inline bool buf_can_take(const struct buf *b, size_t max)
{
	return b->p == NULL || b->end < b->cap || b->start > 0 || b->cap < max;
}

/* The slow paths of buf_reserve() and buf_append(), out of line: only
 * they allocate, compact or grow. Call the inline functions. */
size_t buf_reserve_slow(struct buf *b, size_t max);
int buf_append_slow(struct buf *b, const void *p, size_t n, size_t max);

/* Makes room for at least one byte at the end: allocates (BUF_START, or max
 * when smaller), compacts, then doubles the allocation up to max. Returns
 * the room at b->p + b->end; 0 when the buffer holds max bytes already, or
 * memory is short.
 *
 * Inline with an out-of-line slow path, as the two below: these run a few
 * times per proxied request, and the common case (room at the end) is two
 * compares, cheaper than the call. */
static inline size_t buf_reserve(struct buf *b, size_t max)
{
	if (b->end < b->cap)
		return b->cap - b->end;
	return buf_reserve_slow(b, max);
}

/* Appends the n bytes at p, compacting or growing (doubling, at least 4096
 * bytes, up to max) as needed. Returns 0, -ENOBUFS when the bytes would
 * take the buffer past max (nothing appended), or -ENOMEM. */
static inline int buf_append(struct buf *b, const void *p, size_t n, size_t max)
{
	size_t len = b->end - b->start;
	if (b->p != NULL && n <= b->cap - b->end && len <= max && n <= max - len) {
		memcpy(b->p + b->end, p, n);
		b->end += n;
		return 0;
	}
	return buf_append_slow(b, p, n, max);
}

/* Grows the allocation of b to cap bytes when it is smaller (the bytes
 * waiting stay). Returns 0, or -ENOMEM with b as it was. For a reader that
 * knows more is coming than BUF_START holds: the doubling of
 * buf_reserve() only grows a buffer that is full. */
int buf_grow(struct buf *b, size_t cap);

/* Frees the memory; b is empty and may be used again. */
void buf_free(struct buf *b);

/* Receives once from fd into the room buf_reserve(b, max) makes. Returns the
 * bytes received (> 0), 0 at the end of the stream, -EAGAIN when nothing
 * is there, -ENOBUFS when b holds max bytes (or memory is short), or
 * -errno of recv(2). */
ssize_t buf_recv(struct buf *b, int fd, size_t max);

/* Sends up to n bytes at p on the non-blocking socket fd. Returns the bytes
 * sent (0 on EAGAIN), with *blocked set when fewer than n went, or -errno
 * of send(2) (EPIPE, ECONNRESET). */
ssize_t buf_send(int fd, const void *p, size_t n, bool *blocked);

/* As buf_send() with the n1 bytes at p1 then the n2 at p2, in one sendmsg,
 * so that a head and the body after it leave in one segment, without a
 * copy. Returns the bytes sent from both (those of p1 first). */
ssize_t buf_send2(int fd, const void *p1, size_t n1, const void *p2, size_t n2, bool *blocked);

/* Sends what b holds and consumes what went. Returns as buf_send(). */
ssize_t buf_flush(struct buf *b, int fd, bool *blocked);
