/* runtime/manager/boot: a web dyno is up once a TCP connect to its
 * address and port succeeds; R10 when the deadline passes first. Runs on
 * 127.0.0.1, no root needed. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "runtime/manager/boot.h"

#define SEC (1000ULL * 1000)

/* A TCP socket on 127.0.0.1 and an ephemeral port, listening or not. */
static int tcp_socket(bool listening, uint16_t *ret_port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	socklen_t len = sizeof(sa);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*ret_port = ntohs(sa.sin_port);
	if (listening)
		assert_int_equal(listen(fd, 8), 0);
	return fd;
}

static int open_fds(void)
{
	int n = 0;
	for (int fd = 0; fd < 1024; fd++)
		n += fcntl(fd, F_GETFD) >= 0;
	return n;
}

static struct in_addr loopback(void)
{
	return (struct in_addr){.s_addr = htonl(INADDR_LOOPBACK)};
}

static void test_result_str(void **state)
{
	(void)state;
	assert_string_equal(boot_result_str(BOOT_WAITING), "waiting");
	assert_string_equal(boot_result_str(BOOT_UP), "up");
	assert_string_equal(boot_result_str(BOOT_TIMEOUT), "timeout");
	assert_string_equal(boot_result_str((enum boot_result)42), "unknown");
}

static void test_up_when_listening(void **state)
{
	(void)state;
	uint16_t port;
	int lfd = tcp_socket(true, &port);
	int before = open_fds();
	struct boot_probe b;
	boot_init(&b);
	boot_start(&b, loopback(), port, 1000 * SEC, 60 * SEC);
	/* the connect may stay in progress for a tick or two */
	enum boot_result r = BOOT_WAITING;
	for (int i = 0; i < 200 && r == BOOT_WAITING; i++) {
		r = boot_check(&b, 1000 * SEC);
		if (r == BOOT_WAITING)
			usleep(10 * 1000);
	}
	assert_int_equal(r, BOOT_UP);
	assert_int_equal(b.fd, -1);
	assert_int_equal(open_fds(), before); /* the probe's socket is closed */
	close(lfd);
}

static void test_timeout_when_not_bound(void **state)
{
	(void)state;
	uint16_t port;
	int fd = tcp_socket(false, &port); /* bound, not listening: refused */
	int before = open_fds();
	struct boot_probe b;
	boot_init(&b);
	boot_start(&b, loopback(), port, 1000 * SEC, 30 * SEC);
	for (uint64_t t = 0; t < 30; t++)
		assert_int_equal(boot_check(&b, (1000 + t) * SEC), BOOT_WAITING);
	assert_int_equal(boot_check(&b, 1030 * SEC - 1), BOOT_WAITING);
	assert_int_equal(boot_check(&b, 1030 * SEC), BOOT_TIMEOUT);
	assert_int_equal(b.fd, -1);
	assert_int_equal(open_fds(), before);
	boot_stop(&b); /* again: a no-op */
	close(fd);
}

static void test_up_after_late_bind(void **state)
{
	(void)state;
	uint16_t port;
	int fd = tcp_socket(false, &port);
	struct boot_probe b;
	boot_init(&b);
	boot_start(&b, loopback(), port, 0, 10 * SEC);
	assert_int_equal(boot_check(&b, 1 * SEC), BOOT_WAITING);
	assert_int_equal(listen(fd, 8), 0); /* the app binds $PORT late */
	enum boot_result r = BOOT_WAITING;
	for (int i = 0; i < 200 && r == BOOT_WAITING; i++) {
		r = boot_check(&b, 2 * SEC);
		if (r == BOOT_WAITING)
			usleep(10 * 1000);
	}
	assert_int_equal(r, BOOT_UP);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_result_str),
	    cmocka_unit_test(test_up_when_listening),
	    cmocka_unit_test(test_timeout_when_not_bound),
	    cmocka_unit_test(test_up_after_late_bind),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
