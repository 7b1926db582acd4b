/* The web process of tests/bench/density.sh: a tiny HTTP/1.1 server on
 * 0.0.0.0:$PORT that answers every request with 200 and "$DYNO\n"
 * (keep-alive, pipelining-safe: one answer per "\r\n\r\n" seen; requests
 * carry no body). Single-threaded poll(2) over at most 64 connections;
 * static, so that it starts at once in any dyno and costs little memory. */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXC 64

struct conn {
	int fd;
	int matched; /* bytes of "\r\n\r\n" matched so far */
};

int main(void)
{
	const char *port = getenv("PORT"), *dyno = getenv("DYNO");
	if (port == NULL) {
		fputs("tiny-web: no $PORT\n", stderr);
		return 2;
	}
	char answer[256];
	int alen = snprintf(answer, sizeof(answer),
	                    "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n%s\n",
	                    strlen(dyno ? dyno : "?") + 1, dyno ? dyno : "?");
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)atoi(port)),
	                         .sin_addr.s_addr = htonl(INADDR_ANY)};
	if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 128) < 0) {
		perror("tiny-web");
		return 1;
	}
	struct pollfd pf[MAXC + 1];
	struct conn c[MAXC];
	int n = 0;
	static const char end[] = "\r\n\r\n";
	for (;;) {
		pf[0] = (struct pollfd){.fd = ls, .events = n < MAXC ? POLLIN : 0};
		for (int i = 0; i < n; i++)
			pf[i + 1] = (struct pollfd){.fd = c[i].fd, .events = POLLIN};
		if (poll(pf, (nfds_t)n + 1, -1) < 0 && errno != EINTR)
			return 1;
		for (int i = n - 1; i >= 0; i--) {
			if (!pf[i + 1].revents)
				continue;
			char buf[4096];
			ssize_t r = read(c[i].fd, buf, sizeof(buf));
			int answers = 0;
			for (ssize_t k = 0; k < r; k++) {
				if (buf[k] == end[c[i].matched])
					c[i].matched++;
				else
					c[i].matched = buf[k] == '\r';
				if (c[i].matched == 4) {
					answers++;
					c[i].matched = 0;
				}
			}
			int drop = r <= 0;
			for (int a = 0; a < answers && !drop; a++)
				drop = write(c[i].fd, answer, (size_t)alen) != alen;
			if (drop) {
				close(c[i].fd);
				c[i] = c[--n];
			}
		}
		if (pf[0].revents) {
			int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
			if (fd >= 0)
				c[n++] = (struct conn){.fd = fd};
		}
	}
}
