/* What manager.c and slug-jobs.c share of the manager; not for other
 * modules (they use manager.h). */
#pragma once

#include <signal.h>
#include <stdbool.h>

#include "runtime/manager/manager.h"
#include "slugs/slug.h"

struct mgr {
	const struct config *cfg;
	struct state *st;
	const struct manager_ops *ops;
	struct state_writer *writer; /* NULL: apps are saved on the calling thread */
	struct work_pool *pool;      /* NULL: jobs run inline */
	struct mgr_job *jobs;        /* started and waiting, oldest first */
	volatile sig_atomic_t stop;  /* read by the workers' unpacks */
	bool stopping;
};

/* The slug limits of m's configuration. */
void mgr_slug_limits(const struct mgr *m, struct slug_limits *l);

/* 0 when slug_id is a stored slug's id, else < 0 (invalid, not found). */
int mgr_check_slug_id(struct mgr *m, const char *slug_id, struct dy_error **err);

/* Checks that the slug's process types can be released without a
 * launcher, and that its tree is there for app: unpacked now without a
 * pool, by mgr_unpack_start() with one (the loop never unpacks). */
int mgr_prepare_slug(struct mgr *m, struct state_app *app, const char *slug_id,
                     const json_t *process_types, struct dy_error **err);

/* After a release: removes what app keeps no more, off the loop. */
void mgr_collect_slugs(struct mgr *m, const struct state_app *app);
