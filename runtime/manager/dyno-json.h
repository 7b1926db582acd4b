/* The dyno object of the Platform API (docs/design.md, "Platform API";
 * GET /apps/{app}/dynos[/{name}]), rendered from a plain description of
 * the dyno so that its shape is tested without running one. */
#pragma once

#include <jansson.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/manager/lifecycle.h"

/* A dyno as the API shows it (borrowed strings). */
struct dj_dyno {
	const char *name; /* "web.1" */
	const char *type;
	const char *command;
	const char *size;
	enum lc_state state;
	int version;  /* of the release it runs */
	bool running; /* has a process: addr and pid are valid */
	struct in_addr addr;
	uint16_t port; /* 0: no port (not web): addr is null */
	int pid;       /* of its init on the host */
	bool stopping; /* asked to stop, or draining (replaced by a rollout) */
	const char *created_at;
	const char *updated_at;
};

/* {"name", "type", "state", "command", "size", "release": {"version"},
 * "addr": "IP:PORT" or null, "created_at", "updated_at", "pid",
 * "stopping"}; pid is 0 when not running. New reference, NULL when out of memory. */
json_t *dj_dyno_json(const struct dj_dyno *d);

/* The n dynos as a list sorted by name. New reference, NULL when out of
 * memory. */
json_t *dj_list_json(const struct dj_dyno *dynos, size_t n);
