/* The record of running dynos (docs/design.md, "What survives what";
 * docs/operating.md, "Upgrades and crashes"): <state_dir>/dynos.json, what
 * a dynod started again needs to re-adopt the dynos the previous one left
 * running instead of killing them.
 *
 *   {"schema_version": 1, "boot_id": "…",
 *    "dynos": [{"app": "hello", "name": "web.1", "type": "web",
 *               "id": "1a2b3c4d-hello-4242-1", "pid": 5123,
 *               "start_time": 881234, "release": 3, "size": "standard-1x",
 *               "command": "…", "addr": "10.213.0.5", "port": 5000,
 *               "veth": "dy-0123456789ab", "created_at": "…",
 *               "state": "up", "stopping": false}]}
 *
 * pid and start_time (field 22 of /proc/PID/stat) name the dyno's init:
 * a pid reused since shows another start time. boot_id is the kernel's
 * (/proc/sys/kernel/random/boot_id): after a reboot no dyno of the record
 * runs, whatever the pids say. The file is root's, mode 0600, replaced
 * atomically (temporary file, fsync, rename, fsync of the directory).
 *
 * A file of a newer schema_version, or one that cannot be read, is an
 * error the caller stops on: it is never overwritten (dr_read()).
 *
 * The writer (dr_writer) renders the record on the loop when asked, at
 * most once per DR_DELAY_USEC, and writes it on a worker thread of its own
 * (common/work.h): one write in flight, the next render waiting for it, so
 * a scale to 100 dynos costs a few writes, none on the loop. */
#pragma once

#include <jansson.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/error.h"
#include "common/loop.h"
#include "runtime/launcher/net.h"
#include "runtime/manager/state.h"

#define DR_FILE           "dynos.json"
#define DR_SCHEMA_VERSION 1
#define DR_FILE_MODE      0600
#define DR_DELAY_USEC     (50ULL * 1000) /* changes within it make one write: at 1000 dynos a render costs ~3 ms of the loop */
#define DR_BOOT_ID_LEN    36
#define DR_NAME_MAX       48
#define DR_TYPE_MAX       32
#define DR_ID_MAX         64

/* One running dyno, as recorded. */
struct dr_entry {
	char app[STATE_APP_NAME_MAX + 1];
	char name[DR_NAME_MAX]; /* web.1 */
	char type[DR_TYPE_MAX];
	char id[DR_ID_MAX]; /* cgroup, hostname, veth */
	pid_t pid;          /* its init, in dynod's PID namespace */
	unsigned long long start_time;
	int version; /* the release it runs */
	char size[STATE_SIZE_NAME_MAX + 1];
	char *command; /* owned by the record (dr_record_free()) */
	struct in_addr addr;
	uint16_t port; /* 0: none (not web) */
	char veth[NET_IFNAME_LEN];
	char created_at[STATE_TIME_LEN + 1];
	bool up;       /* "up", else "starting" */
	bool stopping; /* SIGTERM sent: its exit is not a crash */
	bool oneoff;   /* a run.N: never restarted ("oneoff", absent: false) */
};

struct dr_record {
	char boot_id[DR_BOOT_ID_LEN + 1]; /* "" when the file had none */
	struct dr_entry *dynos;
	size_t n;
};

/* Frees what r holds (not r). Accepts an empty record. */
void dr_record_free(struct dr_record *r);

/* This boot's id into out; "" when the kernel has none to give. */
void dr_boot_id(char out[DR_BOOT_ID_LEN + 1]);

/* The document for n entries. New reference, NULL when out of memory. */
json_t *dr_render(const char *boot_id, const struct dr_entry *v, size_t n);

/* Parses the text of file name (named in errors) into *ret (emptied
 * first; dr_record_free()). Refuses, naming name and what is wrong:
 * invalid JSON, no or a newer schema_version, an entry with a missing or
 * mistyped field. Returns 0 or < 0. */
int dr_parse(const char *text, size_t len, const char *name, struct dr_record *ret,
             struct dy_error **err);

/* Reads path into *ret: an absent file is an empty record (0). Returns 0
 * or < 0 (dr_parse()'s refusals, a file that cannot be read, over 16 MiB). */
int dr_read(const char *path, struct dr_record *ret, struct dy_error **err);

/* Replaces path with doc, mode DR_FILE_MODE, atomically. Returns 0 or < 0. */
int dr_write(const char *path, json_t *doc, struct dy_error **err);

/* Renders the record now: a new reference, or NULL (out of memory). */
typedef json_t *(*dr_render_fn)(void *arg);

struct dr_writer;

/* A writer of path (copied) whose content comes from render(arg), called
 * on loop's thread. Returns 0 and *ret (dr_writer_free()), or < 0. */
int dr_writer_new(struct loop *loop, const char *path, dr_render_fn render, void *arg,
                  struct dr_writer **ret, struct dy_error **err);

/* What the record says has changed: a render and a write follow within
 * DR_DELAY_USEC (after the write in flight, if any). Cannot fail. */
void dr_writer_changed(struct dr_writer *w);

/* Lets the write in flight land; with flush, renders and writes the record
 * once more on the calling thread (a failure is returned, the writer is
 * freed anyway). Frees w. Returns 0 or < 0. Accepts NULL. */
int dr_writer_free(struct dr_writer *w, bool flush, struct dy_error **err);
