#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/buf.h"

static void test_append_grows_to_cap(void **state)
{
	struct buf b = {0};
	char chunk[3000];
	memset(chunk, 'a', sizeof(chunk));
	assert_int_equal(buf_append(&b, chunk, sizeof(chunk), 10000), 0);
	assert_int_equal(buf_len(&b), 3000);
	assert_true(b.cap >= 3000 && b.cap <= 10000);
	assert_int_equal(buf_append(&b, chunk, sizeof(chunk), 10000), 0);
	assert_int_equal(buf_append(&b, chunk, sizeof(chunk), 10000), 0);
	/* 9000 held: 3000 more would pass the cap, refused whole */
	assert_int_equal(buf_append(&b, chunk, sizeof(chunk), 10000), -ENOBUFS);
	assert_int_equal(buf_len(&b), 9000);
	assert_true(b.cap <= 10000);
	/* exactly to the cap is fine */
	assert_int_equal(buf_append(&b, chunk, 1000, 10000), 0);
	assert_int_equal(buf_len(&b), 10000);
	assert_int_equal(b.cap, 10000);
	assert_int_equal(buf_append(&b, "x", 1, 10000), -ENOBUFS);
	buf_free(&b);
	assert_null(b.p);
	assert_int_equal(buf_len(&b), 0);
}

static void test_consume_compacts(void **state)
{
	struct buf b = {0};
	assert_int_equal(buf_append(&b, "0123456789", 10, 16), 0);
	buf_consume(&b, 4);
	assert_int_equal(buf_len(&b), 6);
	assert_memory_equal(buf_data(&b), "456789", 6);
	/* room is made by moving the bytes to the front before growing */
	while (b.cap - b.end > 0)
		assert_int_equal(buf_append(&b, "z", 1, 16), 0);
	size_t len = buf_len(&b);
	assert_int_equal(buf_append(&b, "!", 1, len + 1), 0);
	assert_int_equal(b.start, 0);
	assert_memory_equal(buf_data(&b), "456789", 6);
	assert_int_equal(buf_data(&b)[len], '!');
	/* consuming everything starts again at the front */
	buf_consume(&b, buf_len(&b));
	assert_int_equal(b.start, 0);
	assert_int_equal(b.end, 0);
	buf_free(&b);
}

static void test_reserve(void **state)
{
	struct buf b = {0};
	/* the first allocation is BUF_START, or the cap when smaller */
	assert_int_equal(buf_reserve(&b, 100), 100);
	assert_int_equal(b.cap, 100);
	b.end = 100;
	assert_int_equal(buf_reserve(&b, 100), 0); /* full at the cap */
	assert_false(buf_can_take(&b, 100));
	assert_true(buf_can_take(&b, 150));
	assert_int_equal(buf_reserve(&b, 150), 50); /* doubled, cut to the cap */
	b.start = 40;
	b.end = 150;
	assert_true(buf_can_take(&b, 150));
	assert_int_equal(buf_reserve(&b, 150), 40); /* compacted, not grown */
	assert_int_equal(b.cap, 150);
	assert_int_equal(buf_len(&b), 110);
	buf_free(&b);
	assert_int_equal(buf_reserve(&b, SIZE_MAX), BUF_START);
	buf_free(&b);
}

static void test_grow(void **state)
{
	struct buf b = {0};
	assert_int_equal(buf_append(&b, "abc", 3, 100), 0);
	size_t cap = b.cap;
	assert_int_equal(buf_grow(&b, 1), 0); /* never shrinks */
	assert_int_equal(b.cap, cap);
	assert_int_equal(buf_grow(&b, 65536), 0);
	assert_int_equal(b.cap, 65536);
	assert_int_equal(buf_len(&b), 3); /* the bytes waiting stay */
	assert_memory_equal(buf_data(&b), "abc", 3);
	/* an empty buffer's room is the whole growth, not BUF_START */
	buf_clear(&b);
	assert_int_equal(buf_reserve(&b, 65536), 65536);
	buf_free(&b);
	assert_int_equal(buf_grow(&b, 100), 0);
	assert_int_equal(buf_reserve(&b, 1000), 100);
	buf_free(&b);
}

static void pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	/* small buffers so that a few sends fill them */
	int sz = 4096;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
}

static void test_recv(void **state)
{
	int sv[2];
	pair(sv);
	struct buf b = {0};
	assert_int_equal(buf_recv(&b, sv[1], 5), -EAGAIN);
	assert_int_equal(write(sv[0], "hello world", 11), 11);
	/* the cap bounds the allocation, and so what one call takes */
	assert_int_equal(buf_recv(&b, sv[1], 5), 5);
	assert_memory_equal(buf_data(&b), "hello", 5);
	assert_int_equal(buf_recv(&b, sv[1], 5), -ENOBUFS);
	buf_consume(&b, 5);
	assert_int_equal(buf_recv(&b, sv[1], 5), 5);
	assert_memory_equal(buf_data(&b), " worl", 5);
	/* a larger cap lets the buffer grow */
	assert_int_equal(buf_recv(&b, sv[1], 64), 1);
	assert_int_equal(buf_len(&b), 6);
	assert_memory_equal(buf_data(&b), " world", 6);
	close(sv[0]);
	assert_int_equal(buf_recv(&b, sv[1], 64), 0); /* EOF */
	close(sv[1]);
	assert_int_equal(buf_recv(&b, sv[1], 64), -EBADF);
	buf_free(&b);
}

static void test_send_eagain(void **state)
{
	int sv[2];
	pair(sv);
	static char big[1 << 20];
	memset(big, 'x', sizeof(big));
	bool blocked = false;
	size_t total = 0;
	ssize_t w;
	/* fill the socket until the kernel takes less than offered */
	while ((w = buf_send(sv[0], big, sizeof(big), &blocked)) > 0 && !blocked)
		total += (size_t)w;
	assert_true(w >= 0);
	total += (size_t)w;
	assert_true(blocked);
	assert_true(total > 0 && total < sizeof(big));
	blocked = false;
	assert_int_equal(buf_send(sv[0], big, 10, &blocked), 0);
	assert_true(blocked);

	/* buf_flush consumes only what went */
	struct buf b = {0};
	assert_int_equal(buf_append(&b, "abc", 3, 64), 0);
	blocked = false;
	assert_int_equal(buf_flush(&b, sv[0], &blocked), 0);
	assert_true(blocked);
	assert_int_equal(buf_len(&b), 3);

	/* drain the peer: the rest goes, in order, head then body */
	char sink[65536];
	while (read(sv[1], sink, sizeof(sink)) > 0)
		;
	blocked = false;
	assert_int_equal(buf_send2(sv[0], "head:", 5, "body", 4, &blocked), 9);
	assert_false(blocked);
	assert_int_equal(buf_flush(&b, sv[0], &blocked), 3);
	assert_int_equal(buf_len(&b), 0);
	char got[16];
	assert_int_equal(read(sv[1], got, sizeof(got)), 12);
	assert_memory_equal(got, "head:bodyabc", 12);

	/* an empty side is one plain send */
	assert_int_equal(buf_send2(sv[0], "", 0, "tail", 4, &blocked), 4);
	assert_int_equal(buf_send2(sv[0], "hd", 2, "", 0, &blocked), 2);
	assert_int_equal(read(sv[1], got, sizeof(got)), 6);
	assert_memory_equal(got, "tailhd", 6);

	/* a closed peer is an error, without SIGPIPE */
	close(sv[1]);
	assert_int_equal(buf_send(sv[0], "x", 1, &blocked), -EPIPE);
	assert_int_equal(buf_send2(sv[0], "x", 1, "y", 1, &blocked), -EPIPE);
	close(sv[0]);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_append_grows_to_cap),
	    cmocka_unit_test(test_consume_compacts),
	    cmocka_unit_test(test_reserve),
	    cmocka_unit_test(test_grow),
	    cmocka_unit_test(test_recv),
	    cmocka_unit_test(test_send_eagain),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
