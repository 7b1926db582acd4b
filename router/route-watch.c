/* inotify on the directory of routes.json. */
#include "router/route-watch.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/loop.h"

#define WATCH_MASK (IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE)

struct route_watch {
	struct loop *loop;
	struct loop_io io;
	struct loop_timer retry; /* while the directory is missing */
	char *dir;
	char *name; /* base name of the file */
	route_watch_fn fn;
	void *data;
};

static void on_io(struct loop *loop, struct loop_io *io, uint32_t events)
{
	struct route_watch *w = loop_container_of(io, struct route_watch, io);
	char buf[16 * (sizeof(struct inotify_event) + NAME_MAX + 1)]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	bool changed = false;
	for (;;) {
		ssize_t n = read(io->fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			if (ev->len > 0 && strcmp(ev->name, w->name) == 0)
				changed = true;
			p += sizeof(*ev) + ev->len;
		}
	}
	/* one reload for a burst of events */
	if (changed)
		w->fn(w->data);
}

static void on_retry(struct loop *loop, struct loop_timer *t)
{
	struct route_watch *w = loop_container_of(t, struct route_watch, retry);
	if (inotify_add_watch(w->io.fd, w->dir, WATCH_MASK) < 0) {
		/* still missing (or the watch failed otherwise): try again; the
		 * wait was logged once */
		loop_timer_start(loop, &w->retry, ROUTE_WATCH_RETRY_MS * 1000ull, NULL);
		return;
	}
	dy_log("router", "%s is there: watching it", w->dir);
	w->fn(w->data);
}

int route_watch_start(struct loop *loop, const char *path, route_watch_fn fn, void *data,
                      struct route_watch **ret, struct dy_error **err)
{
	_cleanup_free_ char *dir = strdup(path);
	if (dir == NULL)
		return dy_error_errno(err, ENOMEM, "watch %s", path);
	char *slash = strrchr(dir, '/');
	const char *name = path;
	if (slash == NULL) {
		free(dir);
		dir = strdup(".");
		if (dir == NULL)
			return dy_error_errno(err, ENOMEM, "watch %s", path);
	} else {
		name = path + (slash - dir) + 1;
		if (slash == dir)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
	_cleanup_close_ int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd < 0)
		return dy_error_errno(err, errno, "inotify");
	bool missing = false;
	if (inotify_add_watch(fd, dir, WATCH_MASK) < 0) {
		/* ENOENT: the directory (or one above it) is not made yet */
		if (errno != ENOENT)
			return dy_error_errno(err, errno, "watch %s", dir);
		missing = true;
	}
	struct route_watch *w = calloc(1, sizeof(*w));
	if (w == NULL || (w->name = strdup(name)) == NULL) {
		free(w);
		return dy_error_errno(err, ENOMEM, "watch %s", path);
	}
	w->dir = TAKE_PTR(dir);
	w->loop = loop;
	w->fn = fn;
	w->data = data;
	loop_io_init(&w->io, fd, on_io);
	loop_timer_init(&w->retry, on_retry);
	int r = loop_io_set(loop, &w->io, LOOP_READ, err);
	if (r == 0 && missing) {
		dy_log("router", "%s is missing: waiting for it (retried every %d ms)", w->dir,
		       ROUTE_WATCH_RETRY_MS);
		r = loop_timer_start(loop, &w->retry, ROUTE_WATCH_RETRY_MS * 1000ull, err);
	}
	if (r < 0) {
		loop_io_stop(loop, &w->io);
		free(w->dir);
		free(w->name);
		free(w);
		return r;
	}
	TAKE_FD(fd);
	*ret = w;
	return 0;
}

void route_watch_free(struct route_watch *w)
{
	if (w == NULL)
		return;
	loop_io_stop(w->loop, &w->io);
	loop_timer_stop(w->loop, &w->retry);
	close(w->io.fd);
	free(w->dir);
	free(w->name);
	free(w);
}
