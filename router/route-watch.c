/* inotify on the directory of routes.json. */
#include "router/route-watch.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/loop.h"

struct route_watch {
	struct loop *loop;
	struct loop_io io;
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
	if (inotify_add_watch(fd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE) < 0)
		return dy_error_errno(err, errno, "watch %s", dir);
	struct route_watch *w = calloc(1, sizeof(*w));
	if (w == NULL || (w->name = strdup(name)) == NULL) {
		free(w);
		return dy_error_errno(err, ENOMEM, "watch %s", path);
	}
	w->loop = loop;
	w->fn = fn;
	w->data = data;
	loop_io_init(&w->io, fd, on_io);
	int r = loop_io_set(loop, &w->io, LOOP_READ, err);
	if (r < 0) {
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
	close(w->io.fd);
	free(w->name);
	free(w);
}
