/* What dynod takes of the host: its helpers' executables, the cgroup
 * parent of its dynos (locked, capped), the prefix of its dynos' ids. */
#include "runtime/manager/host.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/lock.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/sha256.h"
#include "runtime/launcher/cgroup.h"

char *host_find_helper(const char *name)
{
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *path = NULL;
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			if (asprintf(&path, "%s/%s", exe, name) >= 0 && access(path, X_OK) == 0)
				return path;
			free(path);
			path = NULL;
			if (asprintf(&path, "%s/../bin/%s", exe, name) >= 0 &&
			    access(path, X_OK) == 0)
				return path;
			free(path);
			path = NULL;
		}
	}
	const char *env = getenv("PATH");
	_cleanup_free_ char *copy = env ? strdup(env) : NULL;
	char *save = NULL;
	for (char *dir = copy ? strtok_r(copy, ":", &save) : NULL; dir;
	     dir = strtok_r(NULL, ":", &save)) {
		if (asprintf(&path, "%s/%s", dir, name) >= 0 && access(path, X_OK) == 0)
			return path;
		free(path);
		path = NULL;
	}
	return NULL;
}

/* The id prefix of this state dir's dynos: 8 hex digits of the sha256 of
 * its real path, and "-". */
static int id_prefix_of(const char *state_dir, char out[16], struct dy_error **err)
{
	_cleanup_free_ char *real = realpath(state_dir, NULL);
	if (!real)
		return dy_error_errno(err, errno, "state_dir %s", state_dir);
	char hex[DY_SHA256_HEX_LEN + 1];
	dy_sha256_hex_of(real, strlen(real), hex);
	snprintf(out, 16, "%.8s-", hex);
	return 0;
}

int host_own_parent(const struct config *cfg, const char *parent, char id_prefix[16], int *ret_lock,
                    struct dy_error **err)
{
	if (id_prefix_of(cfg->state_dir, id_prefix, err) < 0)
		return -1;
	struct cg_parent_caps caps;
	if (cg_parent_caps_for_host(cfg->host_reserve.memory, cfg->host_reserve.pids, &caps, err) <
	    0)
		return -1;
	pid_t holder = 0;
	int r = cg_parent_setup(parent, &caps, ret_lock, &holder, err);
	if (r == -EWOULDBLOCK)
		return dy_error(err, "cgroup_parent %s is in use by another dynod%s", parent,
		                dy_lock_holder_text(holder, (char[320]){0}, 320));
	if (r < 0)
		return dy_error_prefix(err, "cgroup_parent %s", parent);
	/* a size the parent cannot hold is worth a warning, not a refusal */
	for (size_t i = 0; i < cfg->sizes.n; i++) {
		const struct config_size *z = &cfg->sizes.size[i];
		if (2 * z->memory > caps.memory || z->pids > caps.pids)
			dy_log(
			    "dynod",
			    "size %s (%llu MiB, %u pids) does not fit in what the host gives dynos "
			    "(%llu MiB, %u pids: the host's total minus host_reserve)",
			    z->name, (unsigned long long)(2 * z->memory >> 20), z->pids,
			    (unsigned long long)(caps.memory >> 20), caps.pids);
	}
	return 0;
}
