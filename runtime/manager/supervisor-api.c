/* The supervised dynos as the Platform API sees them: the dyno objects,
 * restart, stop (supervisor-internal.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/macro.h"
#include "runtime/manager/dyno-json.h"
#include "runtime/manager/supervisor-internal.h"

/* Platform API */

/* The dyno as the API shows it. */
static struct dj_dyno dj_of(const struct sup_dyno *d)
{
	return (struct dj_dyno){
	    .name = d->name,
	    .type = d->type,
	    .command = d->command,
	    .size = d->size,
	    .state = d->lc.state,
	    .version = d->version,
	    .running = d->ld != NULL,
	    .addr = d->ld ? d->ld->addr : (struct in_addr){0},
	    .port = d->port,
	    .pid = d->ld ? (int)d->ld->pid : 0,
	    .stopping = d->lc.stopping,
	    .created_at = d->created_at,
	    .updated_at = d->updated_at,
	};
}

json_t *sup_dynos_json(struct sup *s, const struct state_app *app, const char *name,
                       struct dy_error **err)
{
	if (name) {
		/* a replacement is shown rather than the dyno it replaces */
		const struct sup_dyno *found = NULL;
		for (const struct sup_dyno *d = s->dynos; d; d = d->next)
			if (strcmp(d->app, app->name) == 0 && strcmp(d->name, name) == 0 &&
			    (!found || found->lc.stopping))
				found = d;
		if (!found) {
			dy_error_as(err, DY_E_NOT_FOUND, "dyno %.64s of %s not found", name,
			            app->name);
			return NULL;
		}
		struct dj_dyno one = dj_of(found);
		return dj_dyno_json(&one);
	}
	size_t n = 0;
	for (const struct sup_dyno *d = s->dynos; d; d = d->next)
		n += strcmp(d->app, app->name) == 0;
	_cleanup_free_ struct dj_dyno *v = calloc(MAX(n, (size_t)1), sizeof(*v));
	if (!v)
		return NULL;
	size_t i = 0;
	for (const struct sup_dyno *d = s->dynos; d; d = d->next)
		if (strcmp(d->app, app->name) == 0)
			v[i++] = dj_of(d);
	return dj_list_json(v, n);
}

static int not_found(struct dy_error **err, const char *what, const char *app)
{
	return dy_error_as(err, DY_E_NOT_FOUND, "no dyno %.64s in %s", what, app);
}

int sup_restart(struct sup *s, const struct state_app *app, const char *which,
                struct dy_error **err)
{
	bool any = false;
	for (struct sup_dyno *d = s->dynos, *next; d; d = next) {
		next = d->next;
		if (d->lc.oneoff || d->lc.stopping || strcmp(d->app, app->name) != 0)
			continue;
		if (which && strcmp(which, d->name) != 0 && strcmp(which, d->type) != 0)
			continue;
		any = true;
		d->replaced = true;
	}
	if (!any && which)
		return not_found(err, which, app->name);
	/* fresh ones (no cool-off) start beside them, as a release rolls out:
	 * the web dynos they replace drain once they are up */
	return sup_roll_restart(s, app, err);
}

int sup_stop_dyno(struct sup *s, const struct state_app *app, const char *name,
                  struct dy_error **err)
{
	for (struct sup_dyno *d = s->dynos; d; d = d->next) {
		if (!d->lc.stopping && strcmp(d->app, app->name) == 0 &&
		    strcmp(d->name, name) == 0) {
			sup_dyno_stop(d);
			if (d->lc.oneoff)
				return 0;
			return sup_apply_formation(s, app, state_app_current(app), err);
		}
	}
	return not_found(err, name, app->name);
}

json_t *sup_ops_dynos_json(void *data, const struct state_app *app, const char *name,
                           struct dy_error **err)
{
	return sup_dynos_json(data, app, name, err);
}

int sup_ops_restart(void *data, const struct state_app *app, const char *which,
                    struct dy_error **err)
{
	return sup_restart(data, app, which, err);
}

int sup_ops_stop_dyno(void *data, const struct state_app *app, const char *name,
                      struct dy_error **err)
{
	return sup_stop_dyno(data, app, name, err);
}

json_t *sup_ops_run(void *data, const struct state_app *app, const struct mgr_run *run,
                    struct dy_error **err)
{
	struct sup *s = data;
	int fd = run->attach_fd;
	const char *size = run->size ? run->size : s->cfg->dyno.default_size;
	const struct state_release *rel = state_app_current(app);
	json_t *j = NULL;
	struct sup_dyno *d = NULL;
	if (!config_size_find(s->cfg, size)) {
		dy_error_as(err, DY_E_INVALID, "unknown size \"%.64s\"", size);
	} else if (run->app_dir) {
		d = sup_dyno_new(s, app->name, "build", (int)++s->build_seq, run->command, size,
		                 rel ? rel->version : 0, true);
		if (d)
			d->build = sup_build_new(run);
		if (!d || !d->build) {
			if (d)
				sup_dyno_stop(d);
			d = NULL;
			dy_error_errno(err, ENOMEM, "build dyno");
		} else {
			fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
			d->attach_fd = TAKE_FD(fd);
			loop_timer_start(s->loop, &d->start_timer, 0, NULL);
			j = sup_dynos_json(s, app, d->name, err);
		}
	} else if (!rel || !rel->slug_id[0]) {
		dy_error_as(err, DY_E_CONFLICT, "%s has no release with a slug to run", app->name);
	} else {
		d = sup_dyno_new(s, app->name, "run", (int)++s->run_seq, run->command, size,
		                 rel->version, true);
		if (!d) {
			dy_error_errno(err, ENOMEM, "run dyno");
		} else {
			/* init writes to the client at the client's pace */
			if (fd >= 0)
				fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
			d->attach_fd = TAKE_FD(fd);
			d->attach_tty = run->tty;
			/* started on the next round, as a release phase */
			loop_timer_start(s->loop, &d->start_timer, 0, NULL);
			j = sup_dynos_json(s, app, d->name, err);
		}
	}
	if (!j && d)
		d->attach_fd = -1; /* the caller's again: it answers (and closes) */
	return j;
}
