#include "runtime/manager/state-writer.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/work.h"

/* The content a worker dumps shares each release's config vars and
 * process types with the loop's state (state_app_file_json() takes
 * references, not copies). That is safe because nothing changes those
 * objects once a release holds them (a config change copies the set
 * first, mgr_config_update()), and because jansson 2.14 counts
 * references atomically and keeps json_dumps()'s loop check in a set of
 * its own instead of marking the values it reads (older releases set a
 * flag in each object they dumped). Checked here, where it matters: TSan
 * does not see inside an uninstrumented libjansson. */
#if JANSSON_VERSION_HEX < 0x020e00
#error "the state writer shares JSON values between threads: it needs jansson 2.14 or newer"
#endif
#if !JSON_HAVE_ATOMIC_BUILTINS && !JSON_HAVE_SYNC_BUILTINS
#error "the state writer shares JSON values between threads: jansson must count atomically"
#endif

#define RETRY_FIRST_USEC (1000 * 1000ULL)
#define RETRY_MAX_USEC   (30 * 1000 * 1000ULL)

/* One app's file. Fields are the loop thread's, but for those the worker
 * reads while a write is in flight: flying, dirfd and cancelled (atomic),
 * and result, which it writes (read in done, after the pool's hand-over). */
struct entry {
	struct entry *next;
	struct state_writer *w;
	char name[STATE_APP_NAME_MAX + 1];
	int dirfd;      /* the app's directory as it was opened: a destroy's rename
	                   takes a late write along into the removed tree */
	json_t *queued; /* content waiting to be written, or NULL */
	uint64_t queued_seq;
	uint64_t saved_seq;   /* of the newest content queued */
	uint64_t durable_seq; /* of the newest content on disk */
	bool in_flight;
	bool gone;      /* forgotten: freed when the flight lands */
	bool cancelled; /* read by the worker before its rename */
	uint64_t backoff;
	struct loop_timer retry;
	struct state_wait *waiters;

	struct work work;
	json_t *flying; /* the content in flight */
	uint64_t flying_seq;
	int result; /* the worker's: 0 or -errno */
};

struct state_writer {
	struct loop *loop;
	struct state *st;
	struct work_pool *pool;
	struct entry *entries;
	bool closing;
};

static struct entry *entry_find(const struct state_writer *w, const char *name)
{
	for (struct entry *e = w->entries; e; e = e->next)
		if (strcmp(e->name, name) == 0)
			return e;
	return NULL;
}

static void entry_unlink(struct entry *e)
{
	for (struct entry **p = &e->w->entries; *p; p = &(*p)->next)
		if (*p == e) {
			*p = e->next;
			return;
		}
}

static void entry_free(struct entry *e)
{
	assert(!e->in_flight);
	loop_timer_stop(e->w->loop, &e->retry);
	if (e->queued)
		json_decref(e->queued);
	for (struct state_wait *wt = e->waiters; wt;) {
		struct state_wait *next = wt->next;
		wt->pprev = NULL;
		wt = next;
	}
	if (e->dirfd >= 0)
		close(e->dirfd);
	free(e);
}

void state_wait_cancel(struct state_wait *wait)
{
	if (wait->pprev == NULL)
		return;
	*wait->pprev = wait->next;
	if (wait->next)
		wait->next->pprev = wait->pprev;
	wait->next = NULL;
	wait->pprev = NULL;
}

/* Answers the waiters of content up to seq; each fn may cancel others. */
static void notify(struct entry *e, uint64_t seq, int r, const char *msg)
{
	for (;;) {
		struct state_wait *wt = e->waiters;
		while (wt && wt->seq > seq)
			wt = wt->next;
		if (wt == NULL)
			return;
		state_wait_cancel(wt);
		wt->fn(wt, r, msg);
	}
}

/* On the worker: dump, write, fsync, rename. */
static void write_run(struct work *work)
{
	struct entry *e = loop_container_of(work, struct entry, work);
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	e->result = state_file_render(e->flying, &text, &len);
	if (e->result == 0)
		e->result = state_file_write_at(e->dirfd, text, len, &e->cancelled);
}

static void kick(struct entry *e);

static void write_done(struct work *work)
{
	struct entry *e = loop_container_of(work, struct entry, work);
	struct state_writer *w = e->w;
	e->in_flight = false;
	json_t *flying = TAKE_PTR(e->flying);
	if (e->gone) {
		json_decref(flying);
		entry_free(e);
		return;
	}
	if (e->result == 0) {
		json_decref(flying);
		e->durable_seq = e->flying_seq;
		e->backoff = 0;
		notify(e, e->durable_seq, 0, NULL);
		kick(e);
		return;
	}
	char msg[256];
	snprintf(msg, sizeof(msg), "write %s/apps/%s/app.json: %s", w->st->dir, e->name,
	         strerror(-e->result));
	e->backoff = e->backoff ? MIN(e->backoff * 2, RETRY_MAX_USEC) : RETRY_FIRST_USEC;
	dy_log("state", "%s; retrying in %llu s", msg, (unsigned long long)(e->backoff / 1000000));
	if (e->queued == NULL) {
		/* nothing newer: this content again */
		e->queued = flying;
		e->queued_seq = e->flying_seq;
	} else {
		json_decref(flying);
	}
	notify(e, e->flying_seq, e->result, msg);
	if (!w->closing)
		loop_timer_start(w->loop, &e->retry, e->backoff, NULL);
}

/* Starts the queued content's write unless one is in flight or a retry
 * waits. */
static void kick(struct entry *e)
{
	if (e->in_flight || e->queued == NULL || e->w->closing || loop_timer_active(&e->retry))
		return;
	e->flying = TAKE_PTR(e->queued);
	e->flying_seq = e->queued_seq;
	e->in_flight = true;
	work_submit(e->w->pool, &e->work, write_run, write_done);
}

static void on_retry(struct loop *loop, struct loop_timer *t)
{
	(void)loop;
	kick(loop_container_of(t, struct entry, retry));
}

int state_writer_new(struct loop *loop, struct state *st, struct state_writer **ret,
                     struct dy_error **err)
{
	struct state_writer *w = calloc(1, sizeof(*w));
	if (w == NULL)
		return dy_error_errno(err, ENOMEM, "state writer");
	w->loop = loop;
	w->st = st;
	/* one thread: a slow disk holds one write at a time, and an app's
	 * writes are ordered by the entry's single flight anyway */
	if (work_pool_new(loop, 1, &w->pool, err) < 0) {
		free(w);
		return -1;
	}
	*ret = w;
	return 0;
}

void state_writer_free(struct state_writer *w)
{
	if (w == NULL)
		return;
	w->closing = true;
	/* lets the flights land (their done frees forgotten entries) */
	work_pool_free(w->pool);
	w->pool = NULL;
	while (w->entries) {
		struct entry *e = w->entries;
		w->entries = e->next;
		if (e->queued) {
			_cleanup_free_ char *text = NULL;
			size_t len = 0;
			int r = state_file_render(e->queued, &text, &len);
			if (r == 0)
				r = state_file_write_at(e->dirfd, text, len, NULL);
			if (r < 0)
				dy_log("state", "write %s/apps/%s/app.json: %s", w->st->dir,
				       e->name, strerror(-r));
		}
		entry_free(e);
	}
	free(w);
}

int state_writer_save(struct state_writer *w, const struct state_app *app, struct dy_error **err)
{
	struct entry *e = entry_find(w, app->name);
	if (e == NULL) {
		e = calloc(1, sizeof(*e));
		if (e == NULL)
			return dy_error_errno(err, ENOMEM, "save app %s", app->name);
		e->w = w;
		snprintf(e->name, sizeof(e->name), "%s", app->name);
		loop_timer_init(&e->retry, on_retry);
		e->dirfd = state_app_dir_open(w->st, app, err);
		if (e->dirfd < 0) {
			free(e);
			return -1;
		}
		e->next = w->entries;
		w->entries = e;
	}
	json_t *j = state_app_file_json(app);
	if (j == NULL)
		return dy_error_errno(err, ENOMEM, "save app %s", app->name);
	if (e->queued)
		json_decref(e->queued); /* superseded */
	e->queued = j;
	e->queued_seq = ++e->saved_seq;
	kick(e);
	return 0;
}

bool state_writer_wait(struct state_writer *w, const struct state_app *app, struct state_wait *wait,
                       state_wait_fn fn)
{
	struct entry *e = entry_find(w, app->name);
	if (e == NULL || e->durable_seq == e->saved_seq)
		return false;
	wait->seq = e->saved_seq;
	wait->fn = fn;
	wait->next = e->waiters;
	if (wait->next)
		wait->next->pprev = &wait->next;
	wait->pprev = &e->waiters;
	e->waiters = wait;
	return true;
}

void state_writer_forget(struct state_writer *w, const struct state_app *app)
{
	struct entry *e = entry_find(w, app->name);
	if (e == NULL)
		return;
	entry_unlink(e);
	if (e->queued) {
		json_decref(e->queued);
		e->queued = NULL;
	}
	loop_timer_stop(w->loop, &e->retry);
	notify(e, UINT64_MAX, 0, NULL);
	if (e->in_flight) {
		__atomic_store_n(&e->cancelled, true, __ATOMIC_RELEASE);
		e->gone = true; /* write_done frees it */
		return;
	}
	entry_free(e);
}

size_t state_writer_pending(const struct state_writer *w)
{
	size_t n = 0;
	for (const struct entry *e = w->entries; e; e = e->next)
		if (e->in_flight || e->queued)
			n++;
	return n;
}
