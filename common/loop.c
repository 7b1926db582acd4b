#include "common/loop.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"

/* Events fetched per epoll_wait. A busier loop simply takes more rounds;
 * level-triggered epoll reports what is left next time. */
#define LOOP_BATCH 128

struct loop {
	int epfd;
	bool stopped;
	uint64_t now;

	/* Timers: a binary min-heap on (deadline, seq); each timer knows its
	 * slot so that stop and restart are O(log n). */
	struct loop_timer **heap;
	size_t heap_len;
	size_t heap_cap;
	uint64_t timer_seq;

	/* The batch being dispatched: loop_io_stop() clears entries for the
	 * stopped io between pos and len (the stale-event guard). */
	struct epoll_event batch[LOOP_BATCH];
	int batch_len;
	int batch_pos;

	/* Deferred calls: a FIFO of nodes embedded in the callers' objects. */
	struct loop_deferred *deferred;
	struct loop_deferred **deferred_tail;
};

static uint64_t monotonic_usec(void)
{
	struct timespec ts;
	/* CLOCK_MONOTONIC cannot fail with a valid clock id and pointer. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int loop_new(struct loop **ret, struct dy_error **err)
{
	struct loop *loop = calloc(1, sizeof(*loop));
	if (loop == NULL)
		return dy_error_errno(err, ENOMEM, "allocate event loop");
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (loop->epfd < 0) {
		int r = dy_error_errno(err, errno, "epoll_create1");
		free(loop);
		return r;
	}
	loop->now = monotonic_usec();
	loop->deferred_tail = &loop->deferred;
	*ret = loop;
	return 0;
}

static void run_deferred(struct loop *loop)
{
	/* The queue is taken whole: work queued by these functions runs in
	 * the next round, so that a function deferring itself cannot hold the
	 * loop here forever. */
	struct loop_deferred *d = loop->deferred;
	loop->deferred = NULL;
	loop->deferred_tail = &loop->deferred;
	while (d != NULL) {
		/* read before the call: fn may free the node, or queue it again */
		struct loop_deferred *next = d->next;
		assert(d->queued);
		d->queued = false;
		d->next = NULL;
		d->fn(d);
		d = next;
	}
}

void loop_free(struct loop *loop)
{
	if (loop == NULL)
		return;
	while (loop->deferred != NULL)
		run_deferred(loop);
	for (size_t i = 0; i < loop->heap_len; i++)
		loop->heap[i]->index = LOOP_TIMER_IDLE;
	free(loop->heap);
	if (loop->epfd >= 0)
		close(loop->epfd);
	free(loop);
}

void loop_stop(struct loop *loop)
{
	loop->stopped = true;
}

uint64_t loop_now(const struct loop *loop)
{
	return loop->now;
}

/* fd watchers */

void loop_io_init(struct loop_io *io, int fd, loop_io_fn fn)
{
	io->fd = fd;
	io->interest = 0;
	io->fn = fn;
}

bool loop_io_active(const struct loop_io *io)
{
	return io->interest != 0;
}

static uint32_t to_epoll(uint32_t events)
{
	return ((events & LOOP_READ) ? EPOLLIN : 0u) | ((events & LOOP_WRITE) ? EPOLLOUT : 0u);
}

/* Drops events for io still waiting in the batch being dispatched, so that a
 * callback which stops (and perhaps frees, or re-registers) another watcher
 * does not have a stale event delivered to it. A batch is at most
 * LOOP_BATCH entries, and this runs only on stop during dispatch. */
static void forget_queued(struct loop *loop, const struct loop_io *io)
{
	for (int i = loop->batch_pos; i < loop->batch_len; i++)
		if (loop->batch[i].data.ptr == io)
			loop->batch[i].data.ptr = NULL;
}

int loop_io_set(struct loop *loop, struct loop_io *io, uint32_t events, struct dy_error **err)
{
	events &= LOOP_READ | LOOP_WRITE;
	if (events == io->interest)
		return 0;
	if (events == 0) {
		loop_io_stop(loop, io);
		return 0;
	}
	struct epoll_event ev = {.events = to_epoll(events), .data.ptr = io};
	int op = io->interest == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
	if (epoll_ctl(loop->epfd, op, io->fd, &ev) < 0)
		return dy_error_errno(err, errno, "epoll_ctl fd %d", io->fd);
	io->interest = events;
	return 0;
}

void loop_io_stop(struct loop *loop, struct loop_io *io)
{
	if (io->interest == 0)
		return;
	/* With interest 0 epoll would still report EPOLLERR/EPOLLHUP, so a
	 * stopped watcher is deleted, not modified. EBADF/ENOENT here mean the
	 * fd is already gone, which is what we want anyway. */
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
	io->interest = 0;
	forget_queued(loop, io);
}

/* timers */

void loop_timer_init(struct loop_timer *timer, loop_timer_fn fn)
{
	timer->deadline = 0;
	timer->seq = 0;
	timer->index = LOOP_TIMER_IDLE;
	timer->fn = fn;
}

bool loop_timer_active(const struct loop_timer *timer)
{
	return timer->index != LOOP_TIMER_IDLE;
}

static bool timer_before(const struct loop_timer *a, const struct loop_timer *b)
{
	if (a->deadline != b->deadline)
		return a->deadline < b->deadline;
	return a->seq < b->seq;
}

static void heap_place(struct loop *loop, size_t i, struct loop_timer *t)
{
	loop->heap[i] = t;
	t->index = i;
}

static void sift_up(struct loop *loop, size_t i)
{
	struct loop_timer *t = loop->heap[i];
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!timer_before(t, loop->heap[parent]))
			break;
		heap_place(loop, i, loop->heap[parent]);
		i = parent;
	}
	heap_place(loop, i, t);
}

static void sift_down(struct loop *loop, size_t i)
{
	struct loop_timer *t = loop->heap[i];
	for (;;) {
		size_t child = 2 * i + 1;
		if (child >= loop->heap_len)
			break;
		if (child + 1 < loop->heap_len &&
		    timer_before(loop->heap[child + 1], loop->heap[child]))
			child++;
		if (!timer_before(loop->heap[child], t))
			break;
		heap_place(loop, i, loop->heap[child]);
		i = child;
	}
	heap_place(loop, i, t);
}

static void heap_remove(struct loop *loop, struct loop_timer *t)
{
	size_t i = t->index;
	struct loop_timer *last = loop->heap[--loop->heap_len];
	t->index = LOOP_TIMER_IDLE;
	if (last == t)
		return;
	heap_place(loop, i, last);
	/* The moved timer may belong above or below its new slot. */
	if (i > 0 && timer_before(last, loop->heap[(i - 1) / 2]))
		sift_up(loop, i);
	else
		sift_down(loop, i);
}

int loop_timer_start_at(struct loop *loop, struct loop_timer *timer, uint64_t deadline,
                        struct dy_error **err)
{
	if (timer->index == LOOP_TIMER_IDLE && loop->heap_len == loop->heap_cap) {
		size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 16;
		struct loop_timer **heap = reallocarray(loop->heap, cap, sizeof(*heap));
		if (heap == NULL)
			return dy_error_errno(err, ENOMEM, "grow timer heap");
		loop->heap = heap;
		loop->heap_cap = cap;
	}
	timer->deadline = deadline;
	timer->seq = loop->timer_seq++;
	if (timer->index != LOOP_TIMER_IDLE) {
		/* re-keyed where it is: one sift, not a removal (whose moved
		 * last timer sifts too) and an insertion; the router restarts
		 * a few timers per request */
		size_t i = timer->index;
		if (i > 0 && timer_before(timer, loop->heap[(i - 1) / 2]))
			sift_up(loop, i);
		else
			sift_down(loop, i);
		return 0;
	}
	loop->heap[loop->heap_len] = timer;
	timer->index = loop->heap_len++;
	sift_up(loop, timer->index);
	return 0;
}

int loop_timer_start(struct loop *loop, struct loop_timer *timer, uint64_t usec,
                     struct dy_error **err)
{
	uint64_t deadline = usec > UINT64_MAX - loop->now ? UINT64_MAX : loop->now + usec;
	return loop_timer_start_at(loop, timer, deadline, err);
}

void loop_timer_stop(struct loop *loop, struct loop_timer *timer)
{
	if (timer->index != LOOP_TIMER_IDLE)
		heap_remove(loop, timer);
}

static void expire_timers(struct loop *loop)
{
	/* Timers (re)started by these callbacks get a seq at or above the
	 * mark and wait for the next iteration, even with a deadline already
	 * past: a timer restarting itself with 0 cannot starve the fds. */
	uint64_t mark = loop->timer_seq;
	while (loop->heap_len > 0) {
		struct loop_timer *t = loop->heap[0];
		if (t->deadline > loop->now || t->seq >= mark)
			break;
		heap_remove(loop, t);
		t->fn(loop, t);
	}
}

/* The epoll_wait timeout in milliseconds: 0 when work is pending, -1 with no
 * timer, else the time to the earliest deadline rounded up, so that a timer
 * never fires early and the loop does not spin for the last fraction of a
 * millisecond. */
static int wait_timeout(struct loop *loop)
{
	if (loop->stopped || loop->deferred != NULL)
		return 0;
	if (loop->heap_len == 0)
		return -1;
	uint64_t deadline = loop->heap[0]->deadline;
	uint64_t now = monotonic_usec();
	if (deadline <= now)
		return 0;
	uint64_t ms = (deadline - now + 999) / 1000;
	return (int)MIN(ms, (uint64_t)INT_MAX);
}

static uint32_t from_epoll(uint32_t ev)
{
	uint32_t events = 0;
	if (ev & EPOLLIN)
		events |= LOOP_READ;
	if (ev & EPOLLOUT)
		events |= LOOP_WRITE;
	if (ev & (EPOLLERR | EPOLLHUP))
		events |= LOOP_READ | LOOP_WRITE;
	return events;
}

int loop_run_once(struct loop *loop, struct dy_error **err)
{
	loop->now = monotonic_usec();
	expire_timers(loop);

	int n = epoll_wait(loop->epfd, loop->batch, LOOP_BATCH, wait_timeout(loop));
	if (n < 0 && errno != EINTR)
		return dy_error_errno(err, errno, "epoll_wait");
	loop->now = monotonic_usec();

	loop->batch_len = MAX(n, 0);
	for (loop->batch_pos = 0; loop->batch_pos < loop->batch_len;) {
		struct epoll_event *ev = &loop->batch[loop->batch_pos++];
		struct loop_io *io = ev->data.ptr;
		if (io == NULL)
			continue; /* stopped earlier in this batch */
		/* The interest may have shrunk earlier in this batch. */
		uint32_t events = from_epoll(ev->events) & io->interest;
		if (events != 0)
			io->fn(loop, io, events);
		/* io may be gone now: not touched again. */
	}
	loop->batch_len = loop->batch_pos = 0;

	run_deferred(loop);
	return 0;
}

int loop_run(struct loop *loop, struct dy_error **err)
{
	loop->stopped = false;
	while (!loop->stopped) {
		int r = loop_run_once(loop, err);
		if (r < 0)
			return r;
	}
	return 0;
}

/* deferred work */

void loop_defer_init(struct loop_deferred *d, loop_defer_fn fn)
{
	d->next = NULL;
	d->queued = false;
	d->fn = fn;
}

void loop_defer(struct loop *loop, struct loop_deferred *d)
{
	assert(d->fn != NULL);
	if (d->queued)
		return;
	d->queued = true;
	d->next = NULL;
	*loop->deferred_tail = d;
	loop->deferred_tail = &d->next;
}

bool loop_defer_pending(const struct loop_deferred *d)
{
	return d->queued;
}

/* signals */

static void signal_ready(struct loop *loop, struct loop_io *io, uint32_t events)
{
	struct loop_signal *sig = loop_container_of(io, struct loop_signal, io);
	/* A signalfd read returns whole siginfo records. Read one at a time
	 * and re-check: the callback may stop this watcher. */
	while (loop_io_active(io)) {
		struct signalfd_siginfo si;
		ssize_t n = read(io->fd, &si, sizeof(si));
		if (n != (ssize_t)sizeof(si))
			break; /* EAGAIN: drained */
		sig->fn(loop, sig, (int)si.ssi_signo, &si);
	}
}

int loop_signal_start(struct loop *loop, struct loop_signal *sig, const sigset_t *mask,
                      loop_signal_fn fn, struct dy_error **err)
{
	sigset_t old;
	/* Blocked, the signals stay pending until read from the signalfd
	 * instead of running a handler or their default action. */
	if (sigprocmask(SIG_BLOCK, mask, &old) < 0)
		return dy_error_errno(err, errno, "block signals");
	_cleanup_close_ int fd = signalfd(-1, mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0) {
		int r = dy_error_errno(err, errno, "signalfd");
		sigprocmask(SIG_SETMASK, &old, NULL);
		return r;
	}
	sig->mask = *mask;
	sig->was_blocked = old;
	sig->fn = fn;
	loop_io_init(&sig->io, fd, signal_ready);
	int r = loop_io_set(loop, &sig->io, LOOP_READ, err);
	if (r < 0) {
		sig->io.fd = -1;
		sigprocmask(SIG_SETMASK, &old, NULL);
		return r;
	}
	sig->io.fd = TAKE_FD(fd);
	return 0;
}

void loop_signal_stop(struct loop *loop, struct loop_signal *sig)
{
	if (!loop_io_active(&sig->io))
		return;
	loop_io_stop(loop, &sig->io);
	/* Consume what is pending so that unblocking does not run the default
	 * action (termination for SIGTERM, SIGUSR1...) of a signal already
	 * meant for us. */
	struct signalfd_siginfo si;
	while (read(sig->io.fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		;
	close(sig->io.fd);
	sig->io.fd = -1;
	sigset_t unblock;
	sigemptyset(&unblock);
	for (int s = 1; s < NSIG; s++)
		if (sigismember(&sig->mask, s) == 1 && sigismember(&sig->was_blocked, s) == 0)
			sigaddset(&unblock, s);
	sigprocmask(SIG_UNBLOCK, &unblock, NULL);
}

/* children */

static void child_exited(struct loop *loop, struct loop_io *io, uint32_t events)
{
	struct loop_child *child = loop_container_of(io, struct loop_child, io);
	siginfo_t info;
	memset(&info, 0, sizeof(info));
	/* A pidfd polls readable once the process has exited (Linux 5.3).
	 * WNOHANG: if it was reaped elsewhere we must not block the loop. */
	if (waitid(P_PIDFD, (id_t)io->fd, &info, WEXITED | WNOHANG) < 0 || info.si_pid == 0) {
		/* ECHILD: not our child (re-adopted), status unknown. */
		memset(&info, 0, sizeof(info));
		info.si_pid = child->pid;
		info.si_code = 0;
	}
	/* Stop before the callback so that it may free child. */
	loop_child_stop(loop, child);
	child->fn(loop, child, &info);
}

int loop_child_start(struct loop *loop, struct loop_child *child, pid_t pid, loop_child_fn fn,
                     struct dy_error **err)
{
	/* pidfd_open(2) always sets close-on-exec on the new fd. Through
	 * syscall(2) so as not to need glibc 2.36. */
	_cleanup_close_ int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0)
		return dy_error_errno(err, errno, "pidfd_open %d", (int)pid);
	child->pid = pid;
	child->fn = fn;
	loop_io_init(&child->io, fd, child_exited);
	int r = loop_io_set(loop, &child->io, LOOP_READ, err);
	if (r < 0) {
		child->io.fd = -1;
		return r;
	}
	child->io.fd = TAKE_FD(fd);
	return 0;
}

void loop_child_stop(struct loop *loop, struct loop_child *child)
{
	if (!loop_io_active(&child->io))
		return;
	loop_io_stop(loop, &child->io);
	close(child->io.fd);
	child->io.fd = -1;
}
