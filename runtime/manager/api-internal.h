/* The Platform API server's parts (runtime/manager/api.c: connections,
 * request reading, responses; api-routes.c: the endpoints), and what they
 * share. Not for other modules: the interface is runtime/manager/api.h. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/conn.h"
#include "common/error.h"
#include "common/http1.h"
#include "common/loop.h"
#include "runtime/manager/api.h"
#include "runtime/manager/state-writer.h"

#define API_HEADERS_MAX 100

struct pg_op;

enum conn_state {
	CONN_HEAD = 0, /* reading a request head */
	CONN_BODY,     /* reading its body */
	CONN_WAITING,  /* its answer waits: on a job off the loop, or on its change
	                  reaching the disk (the state writer); reading paused */
	CONN_CLOSING,  /* answer queued: flush, then close */
};

enum body_sink {
	SINK_MEMORY = 0, /* JSON: in c->body */
	SINK_FILE,       /* slug upload: to c->body_fd */
};

struct conn {
	struct api *api;
	struct dy_conn conn; /* socket, idle timer, list, deferred free */
	/* a waiting request was answered: take up the next one after the
	 * dispatch round, never inside the job's or the state writer's
	 * report (a DELETE read there would free what reports) */
	struct loop_deferred resume;

	struct buf in;  /* read, not yet taken by the parser or the body */
	struct buf out; /* answers queued, not yet sent */

	enum conn_state state;
	struct h1_parser parser;
	struct h1_header headers[API_HEADERS_MAX];

	/* the request being read (copied out of the input buffer) */
	enum h1_method method; /* HEAD is served as GET ... */
	bool head_only;        /* ... without the body (RFC 9110 9.3.2) */
	char *path;
	bool keep_alive;
	bool upgrade_attach; /* Connection: Upgrade, Upgrade: dyno-attach */
	enum body_sink sink;
	bool chunked;
	struct h1_chunked chunk;
	uint64_t remaining; /* Content-Length bytes still to come */
	uint64_t body_limit;
	uint64_t body_total;
	struct buf body; /* SINK_MEMORY */
	int body_fd;     /* SINK_FILE */

	/* CONN_WAITING: the manager's job the answer waits for (detached
	 * when c closes first), and what to do once it is done */
	struct mgr_job *job;
	/* CONN_WAITING for the disk: the answer, sent once the state writer
	 * reports (saving_active while it waits; cancelled when c closes).
	 * A release waits for its job first, then for the disk: never both
	 * at once. */
	struct state_wait saving;
	bool saving_active;
	int saved_status;
	json_t *saved_body;
	bool dispatching; /* inside api_dispatch: a job done at once answers there */
	int rollback_to;  /* 0: a deploy of slug_id */
	char slug_id[STATE_SLUG_ID_LEN + 1];
	struct pg_op *pg_op;   /* CONN_WAITING on an add-on operation */
};

struct api {
	struct loop *loop;
	struct mgr *mgr;
	const struct config *cfg;
	char *path;
	int fd;
	struct loop_io io;
	struct dy_conn_list conns;
	struct lgi *logs; /* NULL: log-stream answers 501 */
	struct builds *builds;
	struct lstreams *streams;
	struct pg *pg; /* NULL: the add-on endpoints answer 501 */
};

/* Closes c without an answer: its request was handed over with a copy of
 * its socket (F_DUPFD_CLOEXEC), which someone else answers on (a
 * log-stream). Bytes pipelined behind the request are dropped: such an
 * answer says Connection: close. */
void api_conn_handed_off(struct conn *c);

/* Queues the response to c's request: status and the JSON body j (stolen;
 * NULL gives an empty object). Closes c when memory is short. */
void api_respond_json(struct conn *c, int status, json_t *j);

/* As api_respond_json(), once app's changes so far are durable (the state
 * writer, mgr_wait_saved()): the connection reads nothing meanwhile
 * (CONN_WAITING). A failed write answers 500 (507 for a full disk)
 * instead (the change is kept, and retried), naming the app and the errno
 * text only. */
void api_respond_json_saved(struct conn *c, const struct state_app *app, int status, json_t *j);

/* Queues an error response: the status and error id of kind (docs/api.md,
 * "Errors") and the message formatted from fmt. */
void api_respond_error(struct conn *c, enum dy_error_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A request in CONN_WAITING got its answer (queued) from a job's cb:
 * ends it, sends the answer, and takes up the next request (input kept
 * while waiting) after the dispatch round. Unless the answer waits for
 * the disk now (api_respond_json_saved() in the cb): then the state
 * writer's report ends it. */
void api_request_done(struct conn *c);

/* The app name of c's path (/apps/{app}/...), cut to fit. */
void api_path_app(const struct conn *c, char name[STATE_APP_NAME_MAX + 1]);

/* POST /apps/{app}/dynos (api-run.c): a one-off run.N, detached (201
 * and the dyno object) or attached (101, then the connection goes to the
 * dyno's init: docs/api.md, "Attach"). */
void api_route_run(struct conn *c, struct state_app *app);

/* Free space a change (POST, PATCH, PUT) needs on the state directory's
 * filesystem: below it the change is refused before it is made (507,
 * docs/operating.md, "A full disk"), so that a full disk never leaves a
 * change made in memory that cannot be written. */
#define API_STATE_FREE_MIN (1ULL << 20)

/* Refuses c's change when the state directory's filesystem has less than
 * API_STATE_FREE_MIN free: answers 507 naming the lack of space and
 * returns true. Reads and deletes are never refused. */
bool api_refuse_on_full_disk(struct conn *c);

/* The request's body as a JSON object, or NULL (answered: 400). New
 * reference. */
json_t *api_body_object(struct conn *c);

/* Answers 405 naming the allowed methods. */
void api_method_not_allowed(struct conn *c, const char *allowed);

/* /apps/{app}/addons/...: seg the n path segments after "addons"
 * (api-addons.c). */
void api_route_addons(struct conn *c, struct state_app *app, const char *const *seg, size_t n);

/* Answers c's request, whose head and body are complete (c->method,
 * c->path, c->body or c->body_fd): finds its endpoint and queues the
 * response. */
void api_dispatch(struct conn *c);

/* Answers err (taken) as api-routes.c does: its kind's status, an
 * internal error's errno text only. */
void api_respond_dy_error(struct conn *c, struct dy_error **err);

/* /apps/{app}/builds[/{id}[/output]], /buildpack-installations,
 * /build-cache (api-builds.c; docs/api.md, "Builds"). */
void api_route_builds(struct conn *c, struct state_app *app, const char *id, const char *sub);
