/* Listening sockets and accept loops. */
#include "router/listener.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/loop.h"

#define ACCEPT_BATCH      64
#define ACCEPT_PAUSE_USEC 100000

struct lsn {
	struct loop *loop;
	struct loop_io io;
	struct loop_timer pause;
	unsigned port;
	lsn_accept_fn fn;
	void *data;
};

int lsn_bind(const struct sockaddr *sa, socklen_t len, const char *text, struct dy_error **err)
{
	_cleanup_close_ int fd =
	    socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return dy_error_errno(err, errno, "listen %s: socket", text);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, sa, len) < 0)
		return dy_error_errno(err, errno, "listen %s: bind", text);
	if (listen(fd, 4096) < 0)
		return dy_error_errno(err, errno, "listen %s", text);
	return TAKE_FD(fd);
}

size_t lsn_inherited(int *fds, size_t max, int *ret_admin)
{
	const char *n = getenv("LISTEN_FDS");
	const char *pid = getenv("LISTEN_PID");
	const char *names = getenv("LISTEN_FDNAMES");
	*ret_admin = -1;
	if (n == NULL)
		return 0;
	if (pid != NULL && atol(pid) != (long)getpid())
		return 0;
	long count = atol(n);
	size_t k = 0;
	for (long i = 0; i < count; i++) {
		/* the i-th name: between the i-th and the (i+1)-th ':' */
		const char *name = names;
		for (long j = 0; name && j < i; j++) {
			name = strchr(name, ':');
			if (name)
				name++;
		}
		bool admin =
		    name && strncmp(name, "admin", 5) == 0 && (name[5] == ':' || name[5] == '\0');
		int fd = 3 + (int)i;
		int fl = fcntl(fd, F_GETFL);
		if (fl < 0)
			continue;
		if (!admin && k == max)
			continue;
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		if (admin)
			*ret_admin = fd;
		else
			fds[k++] = fd;
	}
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDNAMES");
	return k;
}

static void on_pause(struct loop *loop, struct loop_timer *t)
{
	struct lsn *l = loop_container_of(t, struct lsn, pause);
	loop_io_set(loop, &l->io, LOOP_READ, NULL);
}

static void on_accept(struct loop *loop, struct loop_io *io, uint32_t events)
{
	struct lsn *l = loop_container_of(io, struct lsn, io);
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(io->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* out of descriptors: the listen queue holds the
				 * clients; try again shortly instead of spinning */
				loop_io_set(loop, io, 0, NULL);
				loop_timer_start(loop, &l->pause, ACCEPT_PAUSE_USEC, NULL);
			}
			return;
		}
		l->fn(l->data, fd, (struct sockaddr *)&ss, l->port);
	}
}

int lsn_start(struct loop *loop, int fd, lsn_accept_fn fn, void *data, struct lsn **ret,
              struct dy_error **err)
{
	struct lsn *l = calloc(1, sizeof(*l));
	if (l == NULL) {
		close(fd);
		return dy_error_errno(err, ENOMEM, "listener");
	}
	l->loop = loop;
	l->fn = fn;
	l->data = data;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET)
			l->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			l->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	}
	loop_io_init(&l->io, fd, on_accept);
	loop_timer_init(&l->pause, on_pause);
	int r = loop_io_set(loop, &l->io, LOOP_READ, err);
	if (r < 0) {
		close(fd);
		free(l);
		return r;
	}
	*ret = l;
	return 0;
}

unsigned lsn_port(const struct lsn *l)
{
	return l->port;
}

void lsn_free(struct lsn *l)
{
	if (l == NULL)
		return;
	loop_io_stop(l->loop, &l->io);
	loop_timer_stop(l->loop, &l->pause);
	close(l->io.fd);
	free(l);
}
