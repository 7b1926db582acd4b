/* dynod's log intake (docs/design.md, "Logs"): every line of an app's log
 * comes here, is filed under its app (log-store.h) and passed to the
 * readers following it (log-stream.h).
 *
 * Where lines come from:
 *   - each app's dynos: dyno-init sends "TS app[web.1]: line" datagrams to
 *     the app's own sink, <state_dir>/sinks/<app>/log.sock (a directory of
 *     root's, mode 0700, bound read-only into the app's dynos for their
 *     init only). One socket per app: the app is known from the socket a
 *     line arrives on, never from what the line says, and each app has a
 *     kernel queue of its own (net.unix.max_dgram_qlen datagrams), so one
 *     app's flood fills its own queue, not another's. The app's processes
 *     cannot reach the sink at all (/.init is 0700 root's in the dyno);
 *   - the router: "APP TS router[router]: ..." datagrams to
 *     <state_dir>/log.sock (0600, root's): the router names the app by the
 *     request's host, the intake strips the name;
 *   - dynod itself: the platform lines of dy_log_app() / dy_log_to_app()
 *     (common/log.h): "dyno[web.1]: State changed from starting to up".
 *
 * The intake never blocks: every socket is non-blocking and read with
 * recvmmsg, at most LGI_ROUNDS * LGI_BATCH datagrams per socket per loop
 * round (level-triggered epoll comes back for the rest, after the other
 * sockets had their turn). The stores are flushed once per loop round. A
 * datagram that is not a line in the format, or names no app, is dropped
 * and counted (lgi_stats). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/config.h"
#include "common/error.h"
#include "common/loop.h"
#include "runtime/manager/log-store.h"
#include "runtime/manager/state.h"

#define LGI_BATCH     64    /* datagrams per recvmmsg */
#define LGI_ROUNDS    4     /* recvmmsg calls per socket per loop round */
#define LGI_DGRAM_MAX 16384 /* a longer datagram is cut (init sends <= 16000: INIT_DGRAM_MAX) */
#define LGI_SINK_NAME "log.sock"

/* A reader of an app's new lines (log-stream.c embeds one). fn gets each
 * line filed that matches filter; it must not stop the tail. gone is
 * called (the tail already removed) when the app is destroyed or the
 * intake freed. */
struct lgi_tail {
	struct lgi_tail *prev, *next;
	struct lstore_filter filter;
	lstore_line_fn fn;
	void (*gone)(struct lgi_tail *t);
	void *ctx;
	struct lgi_app *app;
};

struct lgi_stats {
	uint64_t lines;   /* filed */
	uint64_t bad;     /* datagrams not in the format, or cut */
	uint64_t unknown; /* lines for no app of the state */
	uint64_t lost;    /* lines the stores failed to write */
};

struct lgi;

/* Binds the router's socket and a sink for every app of st (both
 * borrowed, they must outlive the intake), removes the sinks of apps that
 * are gone, and installs itself as common/log.h's app sink. Returns 0 and
 * *ret (lgi_free), or < 0. */
int lgi_new(struct loop *loop, const struct config *cfg, const struct state *st, struct lgi **ret,
            struct dy_error **err);

/* The path of app's sink, bound now when it is not yet (a new app): for
 * launch_params.log_sink. NULL when it cannot be (the dyno then runs
 * without a sink; the reason is logged). Valid until lgi_forget(). */
const char *lgi_app_sink(struct lgi *l, const char *app);

/* Files line[0..len) under app (a platform line). Dropped (counted) when
 * no app of the state is called app. */
void lgi_file(struct lgi *l, const char *app, const char *line, size_t len);

/* app was destroyed: its sink goes, its store is closed (its files went
 * with its directory), its tails are told. */
void lgi_forget(struct lgi *l, const char *app);

/* The last n lines of app that match f, oldest first, to fn.
 * DY_E_NOT_FOUND when there is no such app. Returns the count or < 0. */
int lgi_read(struct lgi *l, const char *app, size_t n, const struct lstore_filter *f,
             lstore_line_fn fn, void *ctx, struct dy_error **err);

/* Starts t (fn, gone, filter and ctx set) on app's new lines.
 * DY_E_NOT_FOUND when there is no such app. */
int lgi_tail_start(struct lgi *l, const char *app, struct lgi_tail *t, struct dy_error **err);

/* Stops t. A tail not started, or stopped, is fine. */
void lgi_tail_stop(struct lgi_tail *t);

/* Reads every sink until it is empty: tests and benchmarks. */
void lgi_drain(struct lgi *l);

struct lgi_stats lgi_stats(const struct lgi *l);

/* Told when a dyno's init reports how its app ended ("dyno[web.1]:
 * Process exited with status N" from its sink): app, the init's pid (the
 * kernel's credentials of the datagram), the status. */
typedef void (*lgi_exit_fn)(void *ctx, const char *app, pid_t pid, int status);
void lgi_set_exit_fn(struct lgi *l, lgi_exit_fn fn, void *ctx);

/* Reads what app's sink holds now (before a dyno's exit is handled, its
 * init's last lines and report are in). */
void lgi_drain_app(struct lgi *l, const char *app);

/* Flushes the stores, closes every socket (their files removed), ends
 * every tail. Accepts NULL. */
void lgi_free(struct lgi *l);
