/* Writes the apps' state files off the event loop (common/work.h).
 *
 * A change takes effect in memory at once; state_writer_save() then takes
 * the app's file content on the loop (cheap: it shares the config
 * snapshots) and a worker thread dumps, writes and fsyncs it
 * (state_file_write_at(): never a half-written file). Measured with
 * tests/bench/state.sh: a 6 MB file held the loop up to 240 ms a write
 * (docs/operating.md, "State").
 *
 * Per app, writes are ordered and coalesced: one is in flight at most, and
 * a newer save supersedes the one queued behind it (the newest content is
 * all that matters). A waiter (struct state_wait) learns when the app's
 * content as of its wait is durable, or that writing it failed; a failed
 * write is logged and retried (1 s, doubling to 30 s) until it succeeds
 * or a newer one does. state_writer_free() writes what is still queued. */
#pragma once

#include <stdint.h>

#include "common/error.h"
#include "common/loop.h"
#include "runtime/manager/state.h"

struct state_writer;

struct state_wait;
/* r is 0 once the content is durable, or -errno with msg when its write
 * failed (it is retried; the content stays in memory). */
typedef void (*state_wait_fn)(struct state_wait *w, int r, const char *msg);

/* Embedded by the waiter (an API connection); must stay alive until its
 * fn has run or state_wait_cancel(). */
struct state_wait {
	struct state_wait *next, **pprev; /* the writer's, while waiting */
	uint64_t seq;
	state_wait_fn fn;
};

/* A writer for the apps of st (borrowed, must outlive it), on a worker
 * thread of its own, completions dispatched by loop. Returns 0 and *ret
 * (state_writer_free), or < 0. */
int state_writer_new(struct loop *loop, struct state *st, struct state_writer **ret,
                     struct dy_error **err);

/* Waits for the write in flight, writes every app's queued content on the
 * calling thread (failures logged), and frees w. Waiters left are
 * dropped without their fn. Accepts NULL. */
void state_writer_free(struct state_writer *w);

/* Queues app's current content for writing (superseding any queued).
 * Returns 0, or < 0 (ENOMEM, the app's directory cannot be opened): then
 * nothing was queued. */
int state_writer_save(struct state_writer *w, const struct state_app *app, struct dy_error **err);

/* Calls fn(wait, ...) once app's content saved so far is durable (or its
 * write failed). Returns false, without calling fn, when nothing of app
 * is queued or in flight: it is durable already. */
bool state_writer_wait(struct state_writer *w, const struct state_app *app, struct state_wait *wait,
                       state_wait_fn fn);

/* Stops wait (its fn will not run). Accepts a wait not waiting. */
void state_wait_cancel(struct state_wait *wait);

/* App is leaving the state (destroy): its queued content is dropped and a
 * write in flight leaves app.json alone; its waiters are answered (0). */
void state_writer_forget(struct state_writer *w, const struct state_app *app);

/* Writes queued or in flight (for tests and the bench's report). */
size_t state_writer_pending(const struct state_writer *w);
