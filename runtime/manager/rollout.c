/* Releases without downtime (docs/design.md, "Releases without downtime";
 * supervisor-internal.h, "Rollouts").
 *
 * A rollout replaces an app's web dynos by fresh ones of a target release
 * (a deploy, a config change, a rollback) or of the same release (a
 * ps:restart, whose replaced dynos carry `replaced`). The fresh web.N
 * starts beside the web.N it replaces; both serve once the fresh one is up
 * (routes.json keys backends on the dyno's id). When every web.1..web.Q of
 * the formation has a fresh (or kept) dyno up, the rollout switches: the
 * release succeeds, the old web dynos drain (no new requests for
 * dyno.timeouts.drain, then SIGTERM and the grace) and the other process
 * types are replaced. A fresh dyno that crashes before the switch (a crash,
 * R10, R15, a start that fails) aborts it: the fresh dynos stop, the old
 * ones serve on, the release fails naming why.
 *
 * The decision runs on a zero-delay timer after the events (never inside
 * a dyno's own callbacks, which go on using the dyno). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "runtime/manager/manager.h"
#include "runtime/manager/routes-writer.h"
#include "runtime/manager/supervisor-internal.h"

struct sup_rollout {
	struct sup_rollout *next;
	char app[STATE_APP_NAME_MAX + 1];
	int version;  /* the release rolled out */
	bool release; /* its end goes to the manager; false: a ps:restart */
	bool failed;
	char why[SUP_WHY_MAX + 64]; /* "web.1 crashed: Error R10 (Boot timeout)" */
};

static struct sup_rollout *find(struct sup *s, const char *app)
{
	for (struct sup_rollout *r = s->rollouts; r; r = r->next)
		if (strcmp(r->app, app) == 0)
			return r;
	return NULL;
}

static void unlink_rollout(struct sup *s, struct sup_rollout *r)
{
	for (struct sup_rollout **p = &s->rollouts; *p; p = &(*p)->next)
		if (*p == r) {
			*p = r->next;
			break;
		}
	free(r);
}

static void check_soon(struct sup *s)
{
	if (!loop_timer_active(&s->rollout_timer))
		loop_timer_start(s->loop, &s->rollout_timer, 0, NULL);
}

/* The web dynos wanted of rel: its formation's quantity when rel has a web
 * command, else 0. */
static int web_wanted(const struct state_app *app, const struct state_release *rel)
{
	const struct state_formation *f = state_formation_find(app, "web");
	if (!rel || !rel->process_types || !json_is_string(json_object_get(rel->process_types, "web")))
		return 0;
	return f ? f->quantity : 0;
}

/* d serves slot web.N of the rollout to version: fresh, or of that
 * version and not being replaced, and of the formation's size. */
static bool serves_slot(const struct sup_dyno *d, int version, const char *size)
{
	return !d->lc.oneoff && !d->lc.stopping && d->version == version &&
	       (d->fresh || !d->replaced) && strcmp(d->size, size) == 0;
}

/* The rolling half of a reconcile: the fresh web dynos of r's release
 * that are missing start (beside the ones they replace), fresh ones past
 * the formation stop; nothing else changes before the switch. */
static int roll(struct sup *s, const struct state_app *app, const struct state_release *rel,
                struct dy_error **err)
{
	int want = web_wanted(app, rel);
	const struct state_formation *f = state_formation_find(app, "web");
	for (struct sup_dyno *d = s->dynos, *next; d; d = next) {
		next = d->next;
		if (!sup_is_web(d) || d->lc.stopping || strcmp(d->app, app->name) != 0)
			continue;
		if (!serves_slot(d, rel->version, f ? f->size : d->size))
			continue;
		if (atoi(d->name + 4) > want)
			sup_dyno_stop(d);
	}
	for (int n = 1; n <= want; n++) {
		char name[SUP_NAME_MAX];
		snprintf(name, sizeof(name), "web.%d", n);
		bool have = false;
		for (const struct sup_dyno *d = s->dynos; d && !have; d = d->next)
			have = sup_is_web(d) && strcmp(d->app, app->name) == 0 &&
			       strcmp(d->name, name) == 0 && serves_slot(d, rel->version, f->size);
		if (have)
			continue;
		struct sup_dyno *d =
		    sup_dyno_new(s, app->name, "web", n,
		                 json_string_value(json_object_get(rel->process_types, "web")),
		                 f->size, rel->version, false);
		if (!d)
			return dy_error_errno(err, ENOMEM, "dyno %s", name);
		d->fresh = true;
		sup_dyno_start(d);
	}
	check_soon(s);
	return 0;
}

int sup_rollout_apply(struct sup *s, const struct state_app *app, bool *ret_rolling,
                      struct dy_error **err)
{
	struct sup_rollout *r = find(s, app->name);
	*ret_rolling = r != NULL;
	if (!r)
		return 0;
	const struct state_release *rel = state_release_find(app, r->version);
	if (!rel) { /* gone with its app: nothing to roll */
		unlink_rollout(s, r);
		*ret_rolling = false;
		return 0;
	}
	return roll(s, app, rel, err);
}

/* Tells the manager how r's release ended; false when the end could not
 * be saved (then the release stays pending until the next start). */
static bool report(struct sup *s, const struct sup_rollout *r, bool ok, const char *why)
{
	if (!r->release || !s->mgr)
		return true;
	struct dy_error *e = NULL;
	if (mgr_rollout_finished(s->mgr, r->app, r->version, ok, why, &e) < 0) {
		dy_log("dynod", "%s: release v%d: %s", r->app, r->version, dy_error_msg(e));
		dy_error_free(&e);
		return false;
	}
	return true;
}

static void abort_rollout(struct sup *s, struct sup_rollout *r, const struct state_app *app)
{
	dy_log_app(r->app, "api", "Rollout of v%d aborted: %s", r->version, r->why);
	for (struct sup_dyno *d = s->dynos, *next; d; d = next) {
		next = d->next;
		if (strcmp(d->app, r->app) != 0)
			continue;
		d->replaced = false;
		if (d->fresh) {
			d->fresh = false;
			sup_dyno_stop(d);
		}
	}
	report(s, r, false, r->why);
	unlink_rollout(s, r);
	sup_apply_formation(s, app, state_app_current(app), NULL);
}

static void switch_rollout(struct sup *s, struct sup_rollout *r, const struct state_app *app,
                           const struct state_release *rel)
{
	if (!report(s, r, true, NULL)) {
		snprintf(r->why, sizeof(r->why), "its end could not be saved");
		abort_rollout(s, r, app);
		return;
	}
	dy_log_app(r->app, "api", "Rolled out v%d: the replaced web dynos drain", r->version);
	for (struct sup_dyno *d = s->dynos; d; d = d->next)
		if (strcmp(d->app, r->app) == 0)
			d->fresh = false;
	unlink_rollout(s, r);
	/* the old web dynos drain, the other types are replaced */
	sup_apply_formation(s, app, rel, NULL);
}

/* True when every slot web.1..web.Q has its dyno: a fresh one up, or one
 * kept as it is (whatever its state: a crashed dyno that is not replaced
 * does not hold a restart of the others back). */
static bool slots_ready(const struct sup *s, const struct state_app *app,
                        const struct state_release *rel)
{
	int want = web_wanted(app, rel);
	const struct state_formation *f = state_formation_find(app, "web");
	for (int n = 1; n <= want; n++) {
		char name[SUP_NAME_MAX];
		snprintf(name, sizeof(name), "web.%d", n);
		bool ready = false;
		for (const struct sup_dyno *d = s->dynos; d && !ready; d = d->next)
			ready = sup_is_web(d) && strcmp(d->app, app->name) == 0 &&
			        strcmp(d->name, name) == 0 && serves_slot(d, rel->version, f->size) &&
			        (!d->fresh || d->lc.state == LC_UP);
		if (!ready)
			return false;
	}
	return true;
}

/* Decides each rollout: aborted, switched, or waiting on. */
static void on_rollout_timer(struct loop *loop, struct loop_timer *t)
{
	(void)loop;
	struct sup *s = loop_container_of(t, struct sup, rollout_timer);
	const struct state *st = s->mgr ? mgr_state(s->mgr) : NULL;
	for (struct sup_rollout *r = s->rollouts, *next; r; r = next) {
		next = r->next;
		if (s->shutting_down)
			return; /* a pending release fails at the next start */
		const struct state_app *app = st ? state_app_find(st, r->app) : NULL;
		const struct state_release *rel = app ? state_release_find(app, r->version) : NULL;
		if (!rel) {
			unlink_rollout(s, r);
			continue;
		}
		if (r->failed) {
			abort_rollout(s, r, app);
			continue;
		}
		if (slots_ready(s, app, rel))
			switch_rollout(s, r, app, rel);
	}
}

void sup_rollout_init(struct sup *s)
{
	loop_timer_init(&s->rollout_timer, on_rollout_timer);
}

void sup_rollout_changed(struct sup_dyno *d)
{
	struct sup *s = d->sup;
	struct sup_rollout *r = find(s, d->app);
	if (!r)
		return;
	/* a start that failed once (the platform's trouble: a set-up past
	 * dyno.timeouts.setup on a host tearing down many namespaces) is
	 * tried again as any crashed dyno; twice, or the app's own crash,
	 * aborts */
	bool platform_once = d->start_failures == 1 && strncmp(d->why, "could not start", 15) == 0;
	if (d->fresh && d->lc.state == LC_CRASHED && !d->lc.stopping && !r->failed &&
	    !platform_once) {
		r->failed = true;
		snprintf(r->why, sizeof(r->why), "%s crashed: %s", d->name,
		         d->why[0] ? d->why : "unknown");
	}
	check_soon(s);
}

int sup_roll_out(void *data, const struct state_app *app, const struct state_release *rel,
                 struct dy_error **err)
{
	struct sup *s = data;
	if (s->shutting_down)
		return dy_error(err, "dynod is stopping");
	struct sup_rollout *r = find(s, app->name);
	if (r && r->release && r->version != rel->version) {
		char why[64];
		snprintf(why, sizeof(why), "superseded by v%d before its rollout ended", rel->version);
		dy_log_app(app->name, "api", "Rollout of v%d %s", r->version, why);
		report(s, r, false, why);
	}
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return dy_error_errno(err, ENOMEM, "rollout of v%d", rel->version);
		snprintf(r->app, sizeof(r->app), "%s", app->name);
		r->next = s->rollouts;
		s->rollouts = r;
	}
	/* what the superseded rollout started is old now: what serves
	 * drains at the switch, the rest stops */
	for (struct sup_dyno *d = s->dynos, *next; d; d = next) {
		next = d->next;
		if (strcmp(d->app, app->name) != 0 || !d->fresh || d->version == rel->version)
			continue;
		d->fresh = false;
		if (d->lc.state != LC_UP)
			sup_dyno_stop(d);
	}
	r->version = rel->version;
	r->release = true;
	r->failed = false;
	dy_log_app(app->name, "api", "Rolling out v%d", rel->version);
	return roll(s, app, rel, err);
}

int sup_roll_restart(struct sup *s, const struct state_app *app, struct dy_error **err)
{
	const struct state_release *rel = state_app_current(app);
	struct sup_rollout *r = find(s, app->name);
	if (r) { /* the running rollout replaces them too */
		const struct state_release *to = state_release_find(app, r->version);
		return to ? roll(s, app, to, err) : 0;
	}
	if (!rel)
		return 0;
	r = calloc(1, sizeof(*r));
	if (!r)
		return dy_error_errno(err, ENOMEM, "restart");
	snprintf(r->app, sizeof(r->app), "%s", app->name);
	r->version = rel->version;
	r->next = s->rollouts;
	s->rollouts = r;
	return roll(s, app, rel, err);
}

bool sup_rolling(const struct sup *s, const char *app)
{
	return find((struct sup *)s, app) != NULL;
}

void sup_rollouts_free(struct sup *s)
{
	loop_timer_stop(s->loop, &s->rollout_timer);
	while (s->rollouts)
		unlink_rollout(s, s->rollouts);
}

/* ---- drains ---- */

static bool any_draining(const struct sup *s)
{
	for (const struct sup_dyno *d = s->dynos; d; d = d->next)
		if (loop_timer_active(&d->drain_timer))
			return true;
	return false;
}

/* dw_done_fn: the router's gauges; each draining dyno of which no request
 * is in flight any more stops now, not at the end of its drain. */
void sup_on_drains(void *ctx, const struct dw_metrics *m)
{
	struct sup *s = ctx;
	for (struct sup_dyno *d = s->dynos; m && d; d = d->next) {
		if (!loop_timer_active(&d->drain_timer) || !d->ld)
			continue;
		char addr[RW_ADDR_MAX];
		rw_addr_text(d->ld->addr, d->port, addr);
		if (!dw_drained(m, addr, d->drain_version))
			continue;
		loop_timer_stop(s->loop, &d->drain_timer);
		dy_log_app(d->app, d->name, "Drained: no request in flight");
		sup_send_sigterm(d);
	}
	if (any_draining(s))
		loop_timer_start(s->loop, &s->drain_poll, SUP_DRAIN_POLL_USEC, NULL);
}

void sup_on_drain_poll(struct loop *loop, struct loop_timer *t)
{
	(void)loop;
	struct sup *s = loop_container_of(t, struct sup, drain_poll);
	if (s->drains && any_draining(s))
		dw_ask(s->drains);
}

void sup_on_drain_timer(struct loop *loop, struct loop_timer *t)
{
	(void)loop;
	struct sup_dyno *d = loop_container_of(t, struct sup_dyno, drain_timer);
	if (d->ld && d->lc.stopping)
		sup_send_sigterm(d);
}

void sup_dyno_drain(struct sup_dyno *d)
{
	struct sup *s = d->sup;
	uint64_t drain = s->cfg->dyno.timeouts.drain;
	if (d->lc.stopping || d->removed || !d->ld || d->lc.state != LC_UP || drain == 0) {
		sup_dyno_stop(d);
		return;
	}
	lc_stop(&d->lc, true);
	/* the next write of routes.json marks it draining: the router must
	 * run that one before its in-flight count means anything */
	d->drain_version = (long long)rw_version(s->routes) + 1;
	sup_routes_changed(s); /* draining: no new requests */
	if (!loop_timer_active(&s->drain_poll))
		loop_timer_start(s->loop, &s->drain_poll, SUP_DRAIN_POLL_USEC, NULL);
	dy_log_app(d->app, d->name, "Draining: no new requests, stopping in %llu ms",
	           (unsigned long long)(drain / 1000));
	loop_timer_start(s->loop, &d->drain_timer, drain, NULL);
}
