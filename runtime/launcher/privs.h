/* Privileges of the processes in a dyno (docs/design.md, "A dyno, from inside"). */
#pragma once

#include <sys/types.h>

#include "common/error.h"

/* For the app: drops every capability from the bounding and ambient sets,
 * takes uid:gid (supplementary groups: gid alone), then empties the
 * effective, permitted and inheritable sets (libcap) and sets
 * no_new_privs. Verifies the result. Must run as root. Returns 0 or < 0. */
int privs_drop(uid_t uid, gid_t gid, struct dy_error **err);

/* For the dyno's init, which stays uid 0 of the host but keeps only
 * CAP_KILL (to forward signals to the app's processes): empties the
 * bounding and ambient sets, keeps CAP_KILL effective and permitted, sets
 * no_new_privs and makes the process non-dumpable, so that the app (another
 * uid) cannot reach its /proc/1/fd. Returns 0 or < 0. */
int privs_restrict_init(struct dy_error **err);
