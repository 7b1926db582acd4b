/* The benchmark's backend (docs/benchmarks.md): a single-threaded epoll server
 * on 127.0.0.1:PORT answering every request head with 200, Content-Length
 * 6, "hello\n", keep-alive; pipelining-safe (one answer per head, in
 * order). Requests must have no body. Usage: echo-backend PORT */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n"
                             "Content-Type: text/plain\r\n\r\nhello\n";

struct conn {
	int fd;
	int match; /* bytes of "\r\n\r\n" matched so far, across reads */
};

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: echo-backend PORT\n");
		return 2;
	}
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)atoi(argv[1])),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 4096) < 0) {
		perror("echo-backend: listen");
		return 1;
	}
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
	static char buf[65536], out[65536];
	struct epoll_event evs[256];
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);
		if (n < 0 && errno == EINTR)
			continue;
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (c == NULL) {
				int fd;
				while ((fd = accept4(ls, NULL, NULL,
				                     SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
					c = calloc(1, sizeof(*c));
					c->fd = fd;
					struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
				}
				continue;
			}
			ssize_t r = read(c->fd, buf, sizeof(buf));
			if (r <= 0) {
				if (r < 0 && errno == EAGAIN)
					continue;
				close(c->fd);
				free(c);
				continue;
			}
			size_t len = 0;
			for (ssize_t k = 0; k < r; k++) {
				char ch = buf[k];
				if ((c->match % 2 == 0 && ch == '\r') ||
				    (c->match % 2 == 1 && ch == '\n'))
					c->match++;
				else
					c->match = ch == '\r' ? 1 : 0;
				if (c->match == 4) {
					c->match = 0;
					if (len + sizeof(answer) > sizeof(out)) {
						(void)!write(c->fd, out, len);
						len = 0;
					}
					memcpy(out + len, answer, sizeof(answer) - 1);
					len += sizeof(answer) - 1;
				}
			}
			/* the socket buffer takes these small answers whole */
			if (len > 0 && write(c->fd, out, len) < 0) {
				close(c->fd);
				free(c);
			}
		}
	}
}
