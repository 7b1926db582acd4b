/* Privileges; see privs.h. */
#include "runtime/launcher/privs.h"

#include <grp.h>
#include <linux/capability.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

static int drop_bounding(struct dy_error **err)
{
	/* cap_max_bits() is what the running kernel knows, which may be more
	 * than this libcap's headers */
	for (cap_value_t c = 0; c < (cap_value_t)cap_max_bits(); c++) {
		if (cap_drop_bound(c) < 0)
			return dy_error_errno(err, errno,
			                      "drop capability %d from the bounding set", (int)c);
	}
	if (cap_reset_ambient() < 0)
		return dy_error_errno(err, errno, "reset ambient capabilities");
	return 0;
}

static int set_caps(const cap_value_t *keep, int n, struct dy_error **err)
{
	cap_t caps = cap_init(); /* all clear */
	if (!caps)
		return dy_error_errno(err, errno, "cap_init");
	if (n > 0 && (cap_set_flag(caps, CAP_EFFECTIVE, n, keep, CAP_SET) < 0 ||
	              cap_set_flag(caps, CAP_PERMITTED, n, keep, CAP_SET) < 0)) {
		cap_free(caps);
		return dy_error_errno(err, errno, "cap_set_flag");
	}
	int r = cap_set_proc(caps);
	int e = errno;
	cap_free(caps);
	if (r < 0)
		return dy_error_errno(err, e, "cap_set_proc");
	return 0;
}

int privs_drop(uid_t uid, gid_t gid, struct dy_error **err)
{
	if (uid == 0 || gid == 0)
		return dy_error(err, "refusing to run a dyno as root");
	if (drop_bounding(err) < 0)
		return -1;
	if (setgroups(1, &gid) < 0)
		return dy_error_errno(err, errno, "setgroups %u", (unsigned)gid);
	if (setresgid(gid, gid, gid) < 0)
		return dy_error_errno(err, errno, "setresgid %u", (unsigned)gid);
	/* leaving uid 0 clears the effective and permitted sets (no
	 * SECBIT_KEEP_CAPS); the inheritable set is cleared below */
	if (setresuid(uid, uid, uid) < 0)
		return dy_error_errno(err, errno, "setresuid %u", (unsigned)uid);
	if (set_caps(NULL, 0, err) < 0)
		return -1;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return dy_error_errno(err, errno, "no_new_privs");

	/* verify: a silent failure here would be a root dyno */
	uid_t r, e, s;
	if (getresuid(&r, &e, &s) < 0 || r != uid || e != uid || s != uid)
		return dy_error(err, "uid did not change to %u", (unsigned)uid);
	cap_t now = cap_get_proc();
	cap_t none = cap_init();
	int differ = !now || !none || cap_compare(now, none) != 0;
	cap_free(now);
	cap_free(none);
	if (differ)
		return dy_error(err, "capabilities remain after dropping them");
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_SYS_ADMIN, 0, 0) != 0 ||
	    prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN, 0, 0, 0) != 0)
		return dy_error(err, "bounding or ambient capabilities remain");
	return 0;
}

int privs_restrict_init(struct dy_error **err)
{
	static const cap_value_t keep[] = {CAP_KILL};
	if (drop_bounding(err) < 0)
		return -1;
	if (set_caps(keep, 1, err) < 0)
		return -1;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return dy_error_errno(err, errno, "no_new_privs");
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return dy_error_errno(err, errno, "PR_SET_DUMPABLE");
	return 0;
}
