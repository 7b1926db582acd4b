/* The memory watch of a dyno (memory-watch.h). */
#include "runtime/manager/memory-watch.h"

void mw_init(struct mw_dyno *w)
{
	*w = (struct mw_dyno){0};
}

void mw_started(struct mw_dyno *w)
{
	w->oom_kills = 0;
}

enum hk_code mw_oom(struct mw_dyno *w, uint64_t oom_kills)
{
	if (oom_kills <= w->oom_kills)
		return HK_NONE;
	w->oom_kills = oom_kills;
	return HK_R15;
}

enum hk_code mw_usage(struct mw_dyno *w, uint64_t now, uint64_t used, uint64_t quota)
{
	if (used <= quota)
		return HK_NONE;
	if (w->last_r14 != 0 && now - w->last_r14 < MW_R14_USEC)
		return HK_NONE;
	w->last_r14 = now;
	return HK_R14;
}
