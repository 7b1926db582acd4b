/* POST /apps/{app}/dynos: one-off dynos (docs/api.md, "One-off dynos" and
 * "Attach"). Detached, the answer is the dyno object; attached, the
 * request carries `Upgrade: dyno-attach`, dynod answers 101 and hands the
 * connection to the dyno: the supervisor gives it to the launcher, which
 * makes it the dyno's init's (fd 6 of dyno-init), and init speaks the
 * attach protocol (common/attach.h) with the client from there on. dynod
 * relays nothing: an attached session outlives a restart of dynod, as its
 * dyno does. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "common/log.h"
#include "runtime/manager/api-internal.h"
#include "runtime/manager/manager.h"

#define RUN_COMMAND_MAX 8192

static const char switching[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                "Connection: Upgrade\r\n"
                                "Upgrade: dyno-attach\r\n"
                                "\r\n";

/* The answer for an error err of the manager (its message is the
 * client's; an internal one names what failed only). */
static void respond_run_error(struct conn *c, struct dy_error **err)
{
	enum dy_error_kind kind = dy_error_kind_of(*err);
	if (kind == DY_E_INTERNAL) {
		dy_log("api", "%s: %s", c->path, dy_error_msg(*err));
		api_respond_error(c, kind, "starting a one-off dyno failed (dynod's log says why)");
	} else {
		api_respond_error(c, kind, "%s", dy_error_msg(*err));
	}
	dy_error_free(err);
}

void api_route_run(struct conn *c, struct state_app *app)
{
	struct api *a = c->api;
	struct dy_error *err = NULL;
	json_error_t jerr;
	json_t *j = json_loadb(c->body.p ? buf_data(&c->body) : "", buf_len(&c->body),
	                       JSON_REJECT_DUPLICATES, &jerr);
	_cleanup_(json_decrefp) json_t *body = j;
	if (!json_is_object(body)) {
		api_respond_error(c, DY_E_BAD_REQUEST, "request body must be a JSON object");
		return;
	}
	json_t *cmd = json_object_get(body, "command");
	json_t *size = json_object_get(body, "size");
	json_t *attach = json_object_get(body, "attach");
	json_t *tty = json_object_get(body, "tty");
	if (!json_is_string(cmd) || json_string_length(cmd) == 0 ||
	    json_string_length(cmd) > RUN_COMMAND_MAX ||
	    strlen(json_string_value(cmd)) != json_string_length(cmd)) {
		api_respond_error(
		    c, DY_E_INVALID,
		    "command: a non-empty string (at most %d bytes, no NUL) is needed",
		    RUN_COMMAND_MAX);
		return;
	}
	if ((size && !json_is_string(size)) || (attach && !json_is_boolean(attach)) ||
	    (tty && !json_is_boolean(tty))) {
		api_respond_error(c, DY_E_INVALID,
		                  "size must be a string, attach and tty true or false");
		return;
	}
	bool attached = json_is_true(attach);
	if (attached != c->upgrade_attach) {
		api_respond_error(c, DY_E_BAD_REQUEST,
		                  attached ? "attach: true needs Connection: Upgrade and "
		                             "Upgrade: dyno-attach"
		                           : "Upgrade: dyno-attach needs attach: true");
		return;
	}
	if (!mgr_has_dynos(a->mgr)) {
		api_respond_error(c, DY_E_UNSUPPORTED,
		                  "%s needs the dyno launcher, which this dynod runs without",
		                  c->path);
		return;
	}
	_cleanup_close_ int fd = -1;
	if (attached && (fd = fcntl(c->conn.io.fd, F_DUPFD_CLOEXEC, 3)) < 0) {
		api_respond_error(c, DY_E_INTERNAL, "no file descriptor for the attached dyno");
		return;
	}
	struct mgr_run run = {
	    .command = json_string_value(cmd),
	    .size = size ? json_string_value(size) : NULL,
	    .attach_fd = fd,
	    .tty = json_is_true(tty),
	};
	json_t *dyno = mgr_dyno_run(a->mgr, app->name, &run, &err);
	if (dyno == NULL) {
		respond_run_error(c, &err);
		return;
	}
	const char *name = json_string_value(json_object_get(dyno, "name"));
	dy_log("api", "%s: run %s%s: %s", app->name, name ? name : "?",
	       attached ? " (attached)" : "", run.command);
	dy_log_to_app(app->name, "api", "Starting process with command `%s`%s by user", run.command,
	              attached ? " (attached)" : "");
	if (!attached) {
		api_respond_json(c, 201, dyno);
		return;
	}
	json_decref(dyno);
	/* the dyno is started on the next round of the loop: the 101 goes
	 * before anything of its init. The supervisor owns the copy now. */
	TAKE_FD(fd);
	if (dy_write_all(c->conn.io.fd, switching, sizeof(switching) - 1) < 0)
		dy_log("api", "%s: the attached client went away", app->name);
	api_conn_handed_off(c);
}
