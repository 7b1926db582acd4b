/* The benchmark's backend (docs/benchmarks.md): a single-threaded epoll server
 * on 127.0.0.1:PORT answering every request head with 200 and keep-alive.
 * The body is "hello\n" (Content-Length 6), or N bytes for a target "/N"
 * (1 <= N <= 1 MiB, e.g. GET /65536), from one static buffer: the answers
 * leave with writev, no per-answer copy of the body. Pipelining-safe (one
 * answer per head, in order; reading stops while answers are queued).
 * Requests must have no body. Usage: echo-backend PORT */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_BODY (1 << 20)
#define QUEUE    256 /* answers waiting per connection; no read while any waits */

struct conn {
	int fd;
	int match;     /* bytes of "\r\n\r\n" matched so far, across reads */
	char line[24]; /* the start of the head's request line */
	unsigned line_len;
	unsigned head, n; /* ring of queued answers: their body sizes */
	size_t sizes[QUEUE];
	size_t sent;  /* bytes of the first queued answer written */
	int want_out; /* EPOLLOUT armed */
};

static char body[MAX_BODY];

/* The status line and headers of an answer with a body of size bytes, and
 * their length: formatted once per size (the last two sizes are kept), as
 * the answers are the benchmark's hot path on the client's CPU. */
static const char *head_of(size_t size, size_t *ret_len)
{
	static struct {
		size_t size, len;
		char text[96];
	} cache[2];
	static unsigned next;
	for (unsigned i = 0; i < 2; i++)
		if (cache[i].len > 0 && cache[i].size == size) {
			*ret_len = cache[i].len;
			return cache[i].text;
		}
	unsigned i = next++ % 2;
	cache[i].size = size;
	cache[i].len = (size_t)snprintf(cache[i].text, sizeof(cache[i].text),
	                                "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n"
	                                "Content-Type: text/plain\r\n\r\n",
	                                size);
	*ret_len = cache[i].len;
	return cache[i].text;
}

/* The body size a request line asks for: "/N" -> N, else 6. */
static size_t size_of(const struct conn *c)
{
	const char *sp = memchr(c->line, ' ', c->line_len);
	if (sp == NULL || sp + 2 >= c->line + c->line_len || sp[1] != '/')
		return 6;
	size_t n = 0;
	for (const char *p = sp + 2; p < c->line + c->line_len && *p >= '0' && *p <= '9'; p++)
		n = n * 10 + (size_t)(*p - '0');
	return n >= 1 && n <= MAX_BODY ? n : 6;
}

static size_t iov_total(const struct iovec *iov, int k)
{
	size_t t = 0;
	for (int i = 0; i < k; i++)
		t += iov[i].iov_len;
	return t;
}

/* Writes what the socket takes of the queued answers. Returns -1 when the
 * connection failed, 0 otherwise. */
static int flush(struct conn *c)
{
	while (c->n > 0) {
		struct iovec iov[128];
		int k = 0;
		size_t skip = c->sent;
		for (unsigned i = 0; i < c->n && k + 2 <= 128; i++) {
			size_t size = c->sizes[(c->head + i) % QUEUE], hl;
			const char *h = head_of(size, &hl);
			const char *b = size == 6 ? "hello\n" : body;
			struct iovec parts[2] = {{(void *)h, hl}, {(void *)b, size}};
			for (int j = 0; j < 2; j++) {
				if (skip >= parts[j].iov_len) {
					skip -= parts[j].iov_len;
					continue;
				}
				iov[k].iov_base = (char *)parts[j].iov_base + skip;
				iov[k].iov_len = parts[j].iov_len - skip;
				skip = 0;
				k++;
			}
		}
		ssize_t w = writev(c->fd, iov, k);
		if (w < 0)
			return errno == EAGAIN ? 0 : -1;
		size_t left = (size_t)w + c->sent;
		c->sent = 0;
		while (c->n > 0) {
			size_t size = c->sizes[c->head], hl;
			head_of(size, &hl);
			if (left < hl + size) {
				c->sent = left;
				break;
			}
			left -= hl + size;
			c->head = (c->head + 1) % QUEUE;
			c->n--;
		}
		if (c->n > 0 && (size_t)w < iov_total(iov, k))
			return 0; /* the socket is full */
	}
	return 0;
}

static void drop(struct conn *c)
{
	close(c->fd);
	free(c);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: echo-backend PORT\n");
		return 2;
	}
	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (char)('a' + i % 26);
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa = {.sin_family = AF_INET,
	                         .sin_port = htons((uint16_t)atoi(argv[1])),
	                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	/* the kernel caps the backlog at net.core.somaxconn */
	if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 65535) < 0) {
		perror("echo-backend: listen");
		return 1;
	}
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
	static char buf[QUEUE * 16];
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
			if (c->n > 0) { /* EPOLLOUT: answers still queued */
				if (flush(c) < 0) {
					drop(c);
					continue;
				}
				if (c->n > 0)
					continue;
			}
			/* answers are all out here (n == 0); a read takes at most
			 * QUEUE heads of the shortest form ("GET / HTTP/1.1\r\n\r\n"
			 * is 18 bytes), so the queue cannot overflow */
			ssize_t r = read(c->fd, buf, QUEUE * 16);
			if (r <= 0) {
				if (r < 0 && errno == EAGAIN)
					goto arm;
				drop(c);
				continue;
			}
			for (ssize_t k = 0; k < r; k++) {
				char ch = buf[k];
				if (c->match == 0 && c->line_len < sizeof(c->line))
					c->line[c->line_len++] = ch;
				if ((c->match % 2 == 0 && ch == '\r') ||
				    (c->match % 2 == 1 && ch == '\n'))
					c->match++;
				else
					c->match = ch == '\r' ? 1 : 0;
				if (c->match == 4) {
					c->match = 0;
					c->sizes[(c->head + c->n) % QUEUE] = size_of(c);
					c->n++;
					c->line_len = 0;
				}
			}
			if (flush(c) < 0) {
				drop(c);
				continue;
			}
		arm:;
			int want = c->n > 0;
			if (want != c->want_out) {
				struct epoll_event e = {.events = want ? EPOLLOUT : EPOLLIN,
				                        .data.ptr = c};
				epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
				c->want_out = want;
			}
		}
	}
}
