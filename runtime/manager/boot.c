/* Boot detection of a web dyno (boot.h). */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runtime/manager/boot.h"

const char *boot_result_str(enum boot_result r)
{
	switch (r) {
	case BOOT_WAITING:
		return "waiting";
	case BOOT_UP:
		return "up";
	case BOOT_TIMEOUT:
		return "timeout";
	}
	return "unknown";
}

void boot_init(struct boot_probe *b)
{
	*b = (struct boot_probe){.fd = -1};
}

void boot_stop(struct boot_probe *b)
{
	if (b->fd >= 0) {
		close(b->fd);
		b->fd = -1;
	}
}

void boot_start(struct boot_probe *b, struct in_addr addr, uint16_t port, uint64_t now,
                uint64_t timeout)
{
	boot_stop(b);
	b->addr = addr;
	b->port = port;
	b->deadline = now + timeout;
}

/* 1 when a TCP connect to addr:port has succeeded, 0 not yet. A connect in
 * progress is looked at without waiting (poll with timeout 0); a refused
 * one is tried afresh at once. */
static int probe(struct boot_probe *b)
{
	if (b->fd >= 0) {
		struct pollfd pf = {b->fd, POLLOUT, 0};
		if (poll(&pf, 1, 0) == 0)
			return 0; /* still in progress */
		int soerr = 0;
		socklen_t len = sizeof(soerr);
		if (getsockopt(b->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
			soerr = errno;
		boot_stop(b);
		if (soerr == 0)
			return 1;
	}
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	struct sockaddr_in sa = {
	    .sin_family = AF_INET, .sin_port = htons(b->port), .sin_addr = b->addr};
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		close(fd);
		return 1;
	}
	if (errno == EINPROGRESS) {
		b->fd = fd;
		return 0;
	}
	close(fd);
	return 0;
}

enum boot_result boot_check(struct boot_probe *b, uint64_t now)
{
	if (probe(b) > 0) {
		boot_stop(b);
		return BOOT_UP;
	}
	if (now >= b->deadline) {
		boot_stop(b);
		return BOOT_TIMEOUT;
	}
	return BOOT_WAITING;
}
