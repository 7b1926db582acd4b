/* What builds.c (runs) and builds-api.c (output streams, buildpacks,
 * lists) share. Not for other modules: the interface is builds.h. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/attach.h"
#include "common/loop.h"
#include "runtime/manager/builds.h"
#include "runtime/manager/state.h"

#define BUILD_IN_MAX   (ATTACH_HEADER + ATTACH_MAX_LEN) /* one whole frame */
#define BUILD_ID_LEN   36                               /* a UUID */
#define BUILDPACKS_MAX 8
#define BUILD_BINDS_MAX 16 /* the launcher's LAUNCH_BINDS_MAX */

enum build_status { BUILD_PENDING = 0, BUILD_SUCCEEDED, BUILD_FAILED };

struct build {
	struct builds *b;
	struct build *next;
	char app[STATE_APP_NAME_MAX + 1];
	char id[BUILD_ID_LEN + 1];
	char commit[41];
	uid_t uid;
	enum build_status status;
	bool done; /* released, or failed: the output is complete */
	char slug_id[STATE_SLUG_ID_LEN + 1];
	int version;
	char created_at[STATE_TIME_LEN + 1];
	char updated_at[STATE_TIME_LEN + 1];
	char failure[512];
	json_t *buildpacks; /* [{url, name}], or null (auto-detection) */
	/* the build dyno's stdio: frames of the attach protocol */
	int sock;
	struct loop_io io;
	char *in;
	size_t inlen;
	bool exited;
	int exit_status;
	char start_error[512];
	int log_fd; /* ID.log, appended */
	uint64_t log_size;
	int slug_fd; /* ID/slug.tgz */
	uint64_t slug_size;
	const char *slug_error; /* the slug could not be kept: why */
	struct mgr_job *job; /* storing or unpacking the slug */
	char dyno[48];       /* build.N */
	struct loop_timer deadline; /* dyno.timeouts.build */
	bool timed_out;
	int readers;         /* output streams open on it */
};

struct build_rm {
	struct loop_child child;
	char *dir;
};

struct builds {
	struct loop *loop;
	struct mgr *mgr;
	const struct config *cfg;
	char *driver;   /* dyno-build */
	char *packer;   /* dyno-build-pack */
	char *builtins; /* the built-in buildpacks' directory, or NULL */
	struct build *active;
	struct bstream *streams;
};

/* <state_dir>/builds/APP[/ID][suffix] into buf. Returns 0, or < 0 when it
 * does not fit. */
int builds_path(const struct builds *b, char *buf, size_t n, const char *app, const char *id,
                const char *suffix);

struct build *builds_find(struct builds *b, const char *app, const char *id);

/* Wakes x's output streams: more output, or the end. */
void builds_output_wake(struct builds *b, struct build *x);

/* Frees x when it is over and nothing refers to it any more. */
void builds_release(struct builds *b, struct build *x);

/* The app's buildpacks (host paths) from buildpacks.json: a new array. */
json_t *builds_app_buildpacks(struct builds *b, const char *app, struct dy_error **err);
void builds_streams_free(struct builds *b);

/* The build object of x (new reference). */
json_t *build_json(const struct build *x);

/* Watches pid, a child removing dir's contents as the app; then dir goes. */
void builds_reap_later(struct builds *b, pid_t pid, const char *dir);

/* Forks a child that empties dir as uid (find -delete): root opens dir,
 * the child enters it and drops to uid, so root never walks the tenant's
 * tree. Returns its pid (the caller reaps it), or -1. */
pid_t builds_remove_as(const char *dir, uid_t uid);

/* A buildpack named by a git URL (https://, http://, git://). */
bool builds_is_url(const char *p);
