/* The dyno state machine (lifecycle.h). */
#include <assert.h>

#include "common/macro.h"
#include "runtime/manager/lifecycle.h"

const char *lc_state_str(enum lc_state st)
{
	switch (st) {
	case LC_STARTING:
		return "starting";
	case LC_UP:
		return "up";
	case LC_CRASHED:
		return "crashed";
	case LC_DOWN:
		return "down";
	case LC_COMPLETE:
		return "complete";
	}
	return "unknown";
}

void lc_init(struct lc_dyno *l, bool oneoff)
{
	*l = (struct lc_dyno){.state = LC_STARTING, .oneoff = oneoff};
}

uint64_t lc_cooloff(const struct lc_policy *p, unsigned crashes)
{
	if (crashes <= 1)
		return 0;
	uint64_t c = p->first;
	/* stop doubling at the cap: no overflow for any count */
	for (unsigned i = 2; i < crashes && c < p->max; i++)
		c *= 2;
	return MIN(c, p->max);
}

void lc_started(struct lc_dyno *l)
{
	l->state = LC_STARTING;
	l->up_since = 0;
}

void lc_up(struct lc_dyno *l, uint64_t now)
{
	l->state = LC_UP;
	l->up_since = now;
}

enum lc_next lc_exited(struct lc_dyno *l, const struct lc_policy *p, uint64_t now,
                       uint64_t *ret_delay)
{
	bool was_up = l->state == LC_UP;
	*ret_delay = 0;
	if (l->oneoff) {
		l->state = LC_COMPLETE;
		return LC_NEXT_REMOVE;
	}
	if (l->stopping) {
		l->state = LC_DOWN;
		return LC_NEXT_REMOVE;
	}
	/* any exit of a formation dyno is a crash (docs/design.md, Lifecycle) */
	assert(!was_up || now >= l->up_since);
	if (was_up && now - l->up_since >= p->reset_after)
		l->crashes = 0;
	l->crashes++;
	l->state = LC_CRASHED;
	l->up_since = 0;
	*ret_delay = lc_cooloff(p, l->crashes);
	return LC_NEXT_RESTART;
}

enum lc_next lc_start_failed(struct lc_dyno *l, const struct lc_policy *p, uint64_t *ret_delay)
{
	*ret_delay = 0;
	if (l->oneoff)
		return LC_NEXT_REMOVE;
	l->crashes++;
	l->state = LC_CRASHED;
	l->up_since = 0;
	/* a start that fails at once would fail again at once: wait */
	*ret_delay = MAX(lc_cooloff(p, l->crashes), p->first);
	return LC_NEXT_RESTART;
}

enum lc_next lc_stop(struct lc_dyno *l, bool running)
{
	if (l->stopping)
		return LC_NEXT_NONE;
	l->stopping = true;
	if (running)
		return LC_NEXT_NONE;
	l->state = LC_DOWN;
	return LC_NEXT_REMOVE;
}
