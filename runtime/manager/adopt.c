/* Re-adoption of the dynos a dead dynod left running
 * (docs/design.md, "What survives what"): the record (dynos.json) read
 * back, each dyno that still runs taken over in its recorded state. */
#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/heroku-codes.h"
#include "common/log.h"
#include "common/macro.h"
#include "runtime/launcher/launch.h"
#include "runtime/manager/boot.h"
#include "runtime/manager/dyno-json.h"
#include "runtime/manager/dyno-record.h"
#include "runtime/manager/host.h"
#include "runtime/manager/lifecycle.h"
#include "runtime/manager/log-intake.h"
#include "runtime/manager/memory-watch.h"
#include "runtime/manager/router-keeper.h"
#include "runtime/manager/routes-writer.h"
#include "runtime/manager/supervisor.h"
#include "runtime/manager/supervisor-internal.h"
#include "runtime/manager/teardown.h"
#include "slugs/slug-store.h"

/* Re-adoption (docs/design.md, "What survives what") */

/* The dyno e of the record, as a supervised dyno in its recorded state;
 * NULL when out of memory or its name is not "type.N". */
static struct sup_dyno *dyno_of_record(struct sup *s, const struct dr_entry *e)
{
	size_t tlen = strlen(e->type);
	if (strncmp(e->name, e->type, tlen) != 0 || e->name[tlen] != '.' ||
	    atoi(e->name + tlen + 1) < 1)
		return NULL;
	struct sup_dyno *d = sup_dyno_new(s, e->app, e->type, atoi(e->name + tlen + 1), e->command,
	                                  e->size, e->version, e->oneoff);
	if (!d)
		return NULL;
	if (e->oneoff) /* run.N: the next one gets a number of its own */
		s->run_seq = MAX(s->run_seq, (unsigned)atoi(e->name + tlen + 1));
	memcpy(d->created_at, e->created_at, sizeof(d->created_at));
	if (e->up)
		lc_up(&d->lc, loop_now(s->loop));
	/* ids go on after the highest of ours: no new id is an adopted one's */
	const char *dash = strrchr(e->id, '-');
	unsigned seq = dash ? (unsigned)strtoul(dash + 1, NULL, 10) : 0;
	s->seq = MAX(s->seq, seq);
	return d;
}

/* Re-adopts the dyno e names when its init still runs (the same start
 * time, PID 1 of a PID namespace of ours, named dyno-init, in the dyno's
 * cgroup): watched as if started here, the boot probe again for a
 * starting web dyno. A dyno that is gone crashed while dynod was down: it
 * restarts (at once: its first crash) once the loop runs. Returns true
 * when adopted. */
static bool adopt_one(struct sup *s, const struct dr_entry *e)
{
	struct dy_error *err = NULL;
	struct launch_dyno *ld = NULL;
	char comm[16];
	unsigned long long start = 0;
	int r = launch_adopt(s->cgroup_parent, e->id, e->pid, &ld, &err);
	/* after the pidfd is open: the pid cannot change hands under us */
	if (r == 0 && (rkeep_proc_stat(e->pid, comm, &start) < 0 || start != e->start_time)) {
		r = dy_error(&err, "pid %d is another process now", (int)e->pid);
		launch_free(TAKE_PTR(ld));
	}
	if (r < 0 && (e->stopping || e->oneoff)) {
		/* it was being stopped, or a one-off, and it has ended:
		 * nothing to start again */
		dy_log(e->name, "not re-adopted (%s, %s): %s", e->app,
		       e->oneoff ? "ended while dynod was down" : "stopping", dy_error_msg(err));
		dy_error_free(&err);
		return false;
	}
	struct sup_dyno *d = dyno_of_record(s, e);
	if (!d) {
		dy_log("dynod", "%s %s: not re-adopted: %s", e->app, e->name,
		       r < 0 ? dy_error_msg(err) : "out of memory or a bad name");
		dy_error_free(&err);
		launch_free(ld);
		return false;
	}
	if (r < 0) {
		dy_log_app(d->app, d->name, "not re-adopted: %s", dy_error_msg(err));
		dy_error_free(&err);
		enum lc_state was = d->lc.state;
		uint64_t wait = 0;
		lc_exited(&d->lc, &s->policy, loop_now(s->loop), &wait);
		dy_log_app(d->app, d->name, "Process exited while dynod was down");
		sup_state_changed(d, was);
		/* started when the loop runs, with the manager's state */
		loop_timer_start(s->loop, &d->start_timer, wait, NULL);
		return false;
	}
	d->ld = ld;
	d->port = e->port;
	/* the kills counted before are not this dynod's R15 */
	d->mem.oom_kills = ld->oom_kills;
	dy_log_app(d->app, d->name, "re-adopted pid %d (%s)", (int)e->pid,
	           lc_state_str(d->lc.state));
	sup_watch_process(d);
	if (d->lc.state == LC_STARTING) {
		if (sup_is_web(d))
			sup_boot_begin(d);
		else
			sup_mark_up(d);
	}
	if (e->stopping)
		sup_dyno_stop(d);
	return true;
}

/* Reads <state_dir>/dynos.json and re-adopts the dynos of this state dir
 * it names (same boot); their ids go in *ret_keep (n in *ret_nkeep: the
 * leftovers not to kill). Returns 0, or < 0 when the record cannot be
 * read (start-up stops; the file is left as it is). */
int sup_adopt_recorded(struct sup *s, char ***ret_keep, size_t *ret_nkeep, struct dy_error **err)
{
	*ret_keep = NULL;
	*ret_nkeep = 0;
	_cleanup_free_ char *path = NULL;
	if (asprintf(&path, "%s/" DR_FILE, s->cfg->state_dir) < 0)
		return dy_error_errno(err, ENOMEM, "%s", DR_FILE);
	struct dr_record rec;
	if (dr_read(path, &rec, err) < 0)
		return -1;
	bool same_boot = rec.boot_id[0] && strcmp(rec.boot_id, s->boot_id) == 0;
	char **keep = calloc(MAX(rec.n, (size_t)1), sizeof(*keep));
	if (!keep) {
		dr_record_free(&rec);
		return dy_error_errno(err, ENOMEM, "%s", path);
	}
	size_t nkeep = 0, prefix_len = strlen(s->id_prefix);
	for (size_t i = 0; same_boot && i < rec.n; i++) {
		const struct dr_entry *e = &rec.dynos[i];
		if (strncmp(e->id, s->id_prefix, prefix_len) != 0)
			continue; /* a copied state dir: another dynod's dynos */
		if (adopt_one(s, e) && (keep[nkeep] = strdup(e->id)))
			nkeep++;
	}
	dr_record_free(&rec);
	*ret_keep = keep;
	*ret_nkeep = nkeep;
	return 0;
}
