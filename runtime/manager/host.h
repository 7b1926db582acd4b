/* What dynod takes of the host: its helpers' executables, the cgroup
 * parent of its dynos (one dynod owns it; capped at the host's total
 * minus host_reserve), the prefix of its dynos' ids (docs/operating.md). */
#pragma once

#include "common/config.h"
#include "common/error.h"

/* The executable name beside dynod (the build tree's bin/), else in
 * ../bin (installed: dynod in sbin), else on PATH. A malloc'ed path, or
 * NULL when there is none. */
char *host_find_helper(const char *name);

/* Takes the cgroup parent of the dynos: locked (a second dynod is refused,
 * naming the first), its memory and pids capped at the host's total minus
 * cfg's host_reserve (a size that does not fit is logged). Fills id_prefix
 * with the start of every dyno id of cfg's state dir ("1a2b3c4d-": 8 hex
 * digits of the sha256 of its real path), by which a start-up sweep knows
 * its own leftovers. Returns 0 with the lock's fd in *ret_lock (kept open
 * while dynod runs), or < 0. */
int host_own_parent(const struct config *cfg, const char *parent, char id_prefix[16], int *ret_lock,
                    struct dy_error **err);
