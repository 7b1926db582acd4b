/* The dyno state machine (docs/design.md, "Lifecycle"): states, the
 * transitions the supervisor's events cause, and the crash cool-off.
 *
 * Pure: no loop, no process, no clock of its own. The supervisor feeds it
 * events with the monotonic time (microseconds) and carries out what it
 * answers (start again after a delay, forget the dyno). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

enum lc_state {
	LC_STARTING, /* launched, not up yet (a web dyno: not bound to $PORT) */
	LC_UP,
	LC_CRASHED,  /* exited on its own, or failed to start: restarts */
	LC_DOWN,     /* stopped on purpose */
	LC_COMPLETE, /* a one-off that has exited */
};

/* What the supervisor does after an event. */
enum lc_next {
	LC_NEXT_NONE,    /* nothing: wait for the next event */
	LC_NEXT_RESTART, /* start the dyno again after the delay given */
	LC_NEXT_REMOVE,  /* the dyno is over: forget it */
};

/* The cool-off rules, from dynod.json's dyno.cooloff (max >= first). */
struct lc_policy {
	uint64_t first;       /* cool-off before the second restart in a row */
	uint64_t max;         /* the doubling stops here */
	uint64_t reset_after; /* up this long: the next crash counts as the first */
};

struct lc_dyno {
	enum lc_state state;
	bool oneoff;       /* release.N: never restarted */
	bool stopping;     /* asked to stop: its exit is not a crash */
	unsigned crashes;  /* in a row, for the cool-off */
	uint64_t up_since; /* when it went up; meaningful in LC_UP */
};

/* "starting", "up", "crashed", "down", "complete" (the API's dyno state);
 * "unknown" for a value out of range. Static. */
const char *lc_state_str(enum lc_state st);

/* Sets up l for a new dyno: starting, no crash yet. */
void lc_init(struct lc_dyno *l, bool oneoff);

/* The cool-off before restart number crashes in a row: 0 for the first
 * (restarted at once), then p->first doubling per crash, at most p->max. */
uint64_t lc_cooloff(const struct lc_policy *p, unsigned crashes);

/* The dyno's process was launched: starting. */
void lc_started(struct lc_dyno *l);

/* The dyno is up at now (a web dyno accepts on $PORT, others at once). */
void lc_up(struct lc_dyno *l, uint64_t now);

/* The dyno's process has exited at now. A one-off completes, a stopping
 * dyno is down: both LC_NEXT_REMOVE. Any other exit is a crash: the count
 * starts again when the dyno was up for p->reset_after, and
 * LC_NEXT_RESTART with *ret_delay the cool-off. */
enum lc_next lc_exited(struct lc_dyno *l, const struct lc_policy *p, uint64_t now,
                       uint64_t *ret_delay);

/* The dyno's process could not be launched. A one-off is given up
 * (LC_NEXT_REMOVE, state unchanged); a formation dyno crashes and is tried
 * again after its cool-off, never at once (at least p->first):
 * LC_NEXT_RESTART with *ret_delay. */
enum lc_next lc_start_failed(struct lc_dyno *l, const struct lc_policy *p, uint64_t *ret_delay);

/* Asks the dyno to stop. With a process (running) the supervisor signals
 * it and its exit follows (LC_NEXT_NONE); without one (waiting for its
 * cool-off, or a release phase not started yet) it is down at once:
 * LC_NEXT_REMOVE. Stopping twice is LC_NEXT_NONE. */
enum lc_next lc_stop(struct lc_dyno *l, bool running);
