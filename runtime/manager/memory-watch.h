/* The memory watch of a dyno (docs/design.md, "Lifecycle"): Heroku's R14
 * (Memory quota exceeded) when the dyno's memory is over its size's quota,
 * at most once a minute, and R15 (Memory quota vastly exceeded) when the
 * kernel's OOM killer has struck.
 *
 * It decides from the counters it is given (memory in use, quota, OOM
 * kills seen so far) and the monotonic time; reading the cgroup and
 * stopping the dyno are the caller's. */
#pragma once

#include <stdint.h>

#include "common/heroku-codes.h"

#define MW_R14_USEC (60ULL * 1000000) /* R14 at most once a minute */

struct mw_dyno {
	uint64_t last_r14;  /* monotonic, 0: never */
	uint64_t oom_kills; /* the kill count last looked at */
};

/* Sets up w for a new dyno: no R14 given yet, no OOM kill seen. */
void mw_init(struct mw_dyno *w);

/* A new process of the dyno was launched: its OOM count starts at 0. The
 * last R14 is kept, so a restart does not repeat it within the minute. */
void mw_started(struct mw_dyno *w);

/* The OOM kill count of the dyno's process is now oom_kills: HK_R15 when it
 * went up since the last call (or mw_init()), else HK_NONE. */
enum hk_code mw_oom(struct mw_dyno *w, uint64_t oom_kills);

/* The dyno uses used bytes of quota at now: HK_R14 when over the quota and
 * no R14 was given in the last MW_R14_USEC, else HK_NONE. */
enum hk_code mw_usage(struct mw_dyno *w, uint64_t now, uint64_t used, uint64_t quota);
