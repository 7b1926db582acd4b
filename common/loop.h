/* One event loop per process, on epoll, without threads (docs/design.md: "One
 * event loop per process (epoll + timerfd + signalfd + pidfd)").
 *
 * An iteration is: expire timers, epoll_wait, dispatch the batch of fd
 * events, run the functions queued with loop_defer(). Watchers are structs
 * embedded by the caller in its own objects (find the object again with
 * loop_container_of()); the loop never allocates per watcher and never frees
 * one.
 *
 * Rules for callers:
 * - Stop a watcher (loop_io_stop()) before closing its fd: epoll only forgets
 *   an fd when the last reference to the open file goes away.
 * - Never free the object holding a watcher inside that watcher's callback:
 *   stop the watcher, then loop_defer() the free, which runs after the
 *   dispatch round (as h2o reaps connections after dispatch), when no code
 *   up the stack can still hold a pointer to it.
 * - A deferred call is a struct loop_deferred node embedded in the object it
 *   concerns, like the watchers: queuing it allocates nothing, so
 *   loop_defer() cannot fail and every object is freed the same way (never
 *   at once "because the queue could not grow", never leaked). Queuing a
 *   node already queued is a no-op. An object whose node is queued is freed
 *   by that deferred call only, or the queue would hold a dangling node.
 * - Events still queued in the current batch for a watcher that is stopped
 *   during dispatch are dropped (the stale-event guard): once
 *   loop_io_stop() returns the loop holds no reference to the watcher, so a
 *   callback may stop, close and even free or re-register another one. */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/signalfd.h>
#include <sys/types.h>

#include "common/error.h"
#include "common/macro.h"

#define loop_container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

struct loop;

/* Interest and readiness bits of an fd watcher. EPOLLERR and EPOLLHUP are
 * delivered as LOOP_READ | LOOP_WRITE (restricted to the interest), as
 * redis' ae_epoll does, so that the read or write which follows reports the
 * error. */
enum {
	LOOP_READ = 1u << 0,
	LOOP_WRITE = 1u << 1,
};

struct loop_io;
typedef void (*loop_io_fn)(struct loop *loop, struct loop_io *io, uint32_t events);

struct loop_io {
	int fd;
	uint32_t interest; /* LOOP_READ | LOOP_WRITE as registered with epoll */
	loop_io_fn fn;
};

struct loop_timer;
typedef void (*loop_timer_fn)(struct loop *loop, struct loop_timer *timer);

#define LOOP_TIMER_IDLE SIZE_MAX

struct loop_timer {
	uint64_t deadline; /* CLOCK_MONOTONIC, microseconds */
	uint64_t seq;      /* start order: ties fire first started, first fired */
	size_t index;      /* slot in the loop's heap, LOOP_TIMER_IDLE when stopped */
	loop_timer_fn fn;
};

struct loop_signal;
typedef void (*loop_signal_fn)(struct loop *loop, struct loop_signal *sig, int signo,
                               const struct signalfd_siginfo *info);

struct loop_signal {
	struct loop_io io;
	sigset_t mask;        /* the signals watched */
	sigset_t was_blocked; /* those of mask already blocked before start */
	loop_signal_fn fn;
};

struct loop_child;
typedef void (*loop_child_fn)(struct loop *loop, struct loop_child *child, const siginfo_t *info);

struct loop_child {
	struct loop_io io; /* on the pidfd */
	pid_t pid;
	loop_child_fn fn;
};

struct loop_deferred;
typedef void (*loop_defer_fn)(struct loop_deferred *d);

struct loop_deferred {
	struct loop_deferred *next; /* in the loop's queue */
	bool queued;
	loop_defer_fn fn;
};

/* Creates a loop (its epoll fd is O_CLOEXEC). Returns 0 and the loop in
 * *ret (owned by the caller, release with loop_free()), or < 0. */
int loop_new(struct loop **ret, struct dy_error **err);

/* Runs the deferred functions still queued (until the queue is empty), then
 * frees the loop. Watchers
 * still registered are forgotten, not called, and their fds stay open (they
 * belong to the caller). Accepts NULL. */
void loop_free(struct loop *loop);

DY_DEFINE_CLEANUP(struct loop *, loop_free, loop_freep)
#define _cleanup_loop_ __attribute__((cleanup(loop_freep)))

/* Runs iterations until loop_stop() (a stop requested before the call is
 * forgotten). Returns 0 once stopped, or < 0 when epoll_wait fails (EINTR is
 * not a failure). */
int loop_run(struct loop *loop, struct dy_error **err);

/* Runs one iteration: expire timers, wait for fd events (blocking until the
 * earliest timer when nothing is pending, not at all after loop_stop() or
 * while deferred work is queued), dispatch them, run deferred functions.
 * Returns 0 or < 0 as loop_run(). */
int loop_run_once(struct loop *loop, struct dy_error **err);

/* Makes loop_run() return after the current iteration. */
void loop_stop(struct loop *loop);

/* The monotonic time in microseconds cached at the start of the iteration
 * and again after epoll_wait returns; timer deadlines are relative to it. */
uint64_t loop_now(const struct loop *loop);

/* Prepares io for fd with callback fn; not registered yet. */
void loop_io_init(struct loop_io *io, int fd, loop_io_fn fn);

/* Sets the interest of io to events (LOOP_READ | LOOP_WRITE, 0 stops it).
 * Calls epoll_ctl only when the interest changes. Returns 0 or < 0 (the fd
 * cannot be polled, ENOMEM). The io stays owned by the caller and must
 * outlive its registration. */
int loop_io_set(struct loop *loop, struct loop_io *io, uint32_t events, struct dy_error **err);

/* Unregisters io (a no-op when it is not registered) and drops events for it
 * still queued in the batch being dispatched. Call before closing io->fd. */
void loop_io_stop(struct loop *loop, struct loop_io *io);

/* True when io is registered with some interest. */
bool loop_io_active(const struct loop_io *io);

/* Prepares timer with callback fn; stopped. */
void loop_timer_init(struct loop_timer *timer, loop_timer_fn fn);

/* (Re)starts timer to fire after usec microseconds from loop_now(). A timer
 * already running is moved, in O(log n). Returns 0 or < 0 (ENOMEM). The
 * timer stays owned by the caller and must outlive its running. */
int loop_timer_start(struct loop *loop, struct loop_timer *timer, uint64_t usec,
                     struct dy_error **err);

/* As loop_timer_start() with an absolute monotonic deadline (microseconds). */
int loop_timer_start_at(struct loop *loop, struct loop_timer *timer, uint64_t deadline,
                        struct dy_error **err);

/* Stops timer; a no-op when it is not running. O(log n). */
void loop_timer_stop(struct loop *loop, struct loop_timer *timer);

/* True while timer is running (started and not yet fired or stopped). */
bool loop_timer_active(const struct loop_timer *timer);

/* Blocks the signals of mask in the process (the loop is single-threaded)
 * and watches them through a signalfd (O_CLOEXEC, non-blocking). fn is
 * called once per signal received, with its number and siginfo. Returns 0
 * or < 0. sig is owned by the caller. The mask is inherited across fork and
 * execve: a child that runs other code must reset it (sigprocmask) first. */
int loop_signal_start(struct loop *loop, struct loop_signal *sig, const sigset_t *mask,
                      loop_signal_fn fn, struct dy_error **err);

/* Stops watching, drops signals still pending for the signalfd, closes it
 * and unblocks the signals which were not blocked before start. A no-op on a
 * stopped watcher. */
void loop_signal_stop(struct loop *loop, struct loop_signal *sig);

/* Watches process pid through a pidfd (pidfd_open(2), close-on-exec). When
 * the process exits, the watcher stops itself, reaps the child with
 * waitid(P_PIDFD, ...) and calls fn once with the siginfo (si_code
 * CLD_EXITED, CLD_KILLED or CLD_DUMPED, si_status). For a process which is
 * not our child (re-adopted after a restart) the exit status cannot be
 * known: fn gets si_pid = pid and si_code = 0. fn may free child (after
 * the call the loop no longer touches it). Returns 0 or < 0 (ESRCH when the
 * process is gone). */
int loop_child_start(struct loop *loop, struct loop_child *child, pid_t pid, loop_child_fn fn,
                     struct dy_error **err);

/* Stops watching pid and closes the pidfd without reaping. A no-op on a
 * stopped watcher. */
void loop_child_stop(struct loop *loop, struct loop_child *child);

/* Prepares d to call fn (which finds its object with loop_container_of());
 * not queued. */
void loop_defer_init(struct loop_deferred *d, loop_defer_fn fn);

/* Queues d's function to run after the current dispatch round (or at the
 * end of the next iteration when called outside one); functions run in the
 * order queued, each once however often it was queued before it ran. The
 * place to free objects whose watchers fired in this round: the function
 * may free d's object, and may queue d again (it then runs next round).
 * Never fails: d is owned by the caller and must outlive its queuing. */
void loop_defer(struct loop *loop, struct loop_deferred *d);

/* True while d is queued. */
bool loop_defer_pending(const struct loop_deferred *d);
