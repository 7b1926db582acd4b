/* The dyno object of the Platform API (dyno-json.h). */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/macro.h"
#include "runtime/manager/dyno-json.h"

json_t *dj_dyno_json(const struct dj_dyno *d)
{
	json_t *addr = json_null();
	if (d->running && d->port) {
		char ip[INET_ADDRSTRLEN], buf[INET_ADDRSTRLEN + 8];
		inet_ntop(AF_INET, &d->addr, ip, sizeof(ip));
		snprintf(buf, sizeof(buf), "%s:%u", ip, (unsigned)d->port);
		addr = json_string(buf);
	}
	/* pid (of the dyno's init, on the host; 0 when not running) is beyond
	 * docs/design.md's object: operators and tests find the dyno's processes */
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:i}, s:o, s:s, s:s, s:i, s:b}", "name",
	                 d->name, "type", d->type, "state", lc_state_str(d->state), "command",
	                 d->command, "size", d->size, "release", "version", d->version, "addr",
	                 addr, "created_at", d->created_at, "updated_at", d->updated_at, "pid",
	                 d->running ? d->pid : 0, "stopping", d->stopping);
}

static int cmp_name(const void *a, const void *b)
{
	const struct dj_dyno *const *x = a, *const *y = b;
	return strcmp((*x)->name, (*y)->name);
}

json_t *dj_list_json(const struct dj_dyno *dynos, size_t n)
{
	_cleanup_free_ const struct dj_dyno **v = calloc(MAX(n, (size_t)1), sizeof(*v));
	json_t *list = json_array();
	if (!v || !list) {
		json_decref(list);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		v[i] = &dynos[i];
	qsort(v, n, sizeof(*v), cmp_name);
	for (size_t i = 0; i < n; i++) {
		if (json_array_append_new(list, dj_dyno_json(v[i])) < 0) {
			json_decref(list);
			return NULL;
		}
	}
	return list;
}
