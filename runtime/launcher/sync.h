/* The launcher's sync protocol (after crun's sync socket): the messages
 * between launch_start() (the parent), its child after clone and the
 * dyno-init the child execs, over one SOCK_SEQPACKET socket pair, so that
 * a message is one packet: read whole or not at all.
 *
 * Each message is a struct launch_sync_msg: its type, and for a failure
 * the errno and the message of the side that failed, so that the parent's
 * struct dy_error carries the child's errno, not only its text. A message
 * of an unknown type, a short one or one out of order is refused with an
 * error that says so. The order of a start (docs/isolation.md, "Start, in
 * order"):
 *
 *   parent -> child     LAUNCH_SYNC_CGROUP_JOINED  (v1 and hybrid hosts)
 *   child  -> parent    LAUNCH_SYNC_NETNS_MADE
 *   parent -> child     LAUNCH_SYNC_VETH_READY
 *   parent -> init      LAUNCH_SYNC_RULES_READY
 *   init   -> parent    LAUNCH_SYNC_APP_EXECED
 *
 * A pooled child (launch-pool.c) answers LAUNCH_SYNC_VETH_READY with
 * LAUNCH_SYNC_POOL_READY and waits; the start that takes it sends
 * LAUNCH_SYNC_TAKE (the dyno's slug, uid, sizes, command, env memfd),
 * then LAUNCH_SYNC_RULES_READY as above.
 *
 * and LAUNCH_SYNC_ERROR from the child or init in place of any of theirs.
 * The app, forked by init, reports to init over a socket pair of its own:
 * LAUNCH_SYNC_ERROR when its set-up or exec fails, else nothing (the end
 * of stream its exec makes says it runs; init.c).
 * Both ends are built from the same sources (dyno-init links this file):
 * the launcher opens dyno-init once per process, so a dyno-init replaced
 * on disk by an upgrade is only taken by the next launcher (launch.c). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

enum launch_sync_type {
	LAUNCH_SYNC_INVALID = 0,   /* never sent: a zeroed message is refused */
	LAUNCH_SYNC_CGROUP_JOINED, /* parent: the child is in its memory cgroup
	                            * (what it allocates from now on is the
	                            * dyno's): make the network namespace */
	LAUNCH_SYNC_NETNS_MADE,    /* child: its network namespace exists: the
	                            * parent may make the veth into it */
	LAUNCH_SYNC_VETH_READY,    /* parent: the child is in every controller's
	                            * cgroup and has eth0: go on to dyno-init */
	LAUNCH_SYNC_RULES_READY,   /* parent, read by dyno-init: the nftables
	                            * rules are in place: start the app */
	LAUNCH_SYNC_APP_EXECED,    /* dyno-init: the command has exec'd */
	LAUNCH_SYNC_ERROR,         /* child or dyno-init: set-up failed
	                            * (errnum, text); it exits */
	LAUNCH_SYNC_POOL_READY,    /* a pooled child: everything but the app's
	                            * part is made, waiting to be taken */
	LAUNCH_SYNC_TAKE,          /* parent: a struct launch_take, the env
	                            * memfd with it (SCM_RIGHTS): finish, exec
	                            * dyno-init */
	_LAUNCH_SYNC_MAX,
};

/* The text of a LAUNCH_SYNC_ERROR, NUL included; a longer one is cut. */
#define LAUNCH_SYNC_TEXT_MAX 4096

struct launch_sync_msg {
	uint32_t type;                   /* enum launch_sync_type */
	int32_t errnum;                  /* LAUNCH_SYNC_ERROR: errno, or 0 */
	char text[LAUNCH_SYNC_TEXT_MAX]; /* LAUNCH_SYNC_ERROR: the message */
};

/* Every message starts with these bytes; only an error carries text. */
#define LAUNCH_SYNC_HEADER offsetof(struct launch_sync_msg, text)

/* "LAUNCH_SYNC_NETNS_MADE", ...; "unknown" out of range. Never NULL. */
const char *launch_sync_type_str(enum launch_sync_type type);

/* Sends the message type (not LAUNCH_SYNC_ERROR: see
 * launch_sync_send_error()) in one packet, without SIGPIPE. Returns 0, or
 * < 0 with *err set (EPIPE: the other end is gone). */
int launch_sync_send(int fd, enum launch_sync_type type, struct dy_error **err);

/* Sends LAUNCH_SYNC_ERROR with e's errno and message (cut to
 * LAUNCH_SYNC_TEXT_MAX - 1 bytes). For a process about to exit: a failed
 * send is not reported. */
void launch_sync_send_error(int fd, const struct dy_error *e);

/* Receives one message into *ret (recv(2) flags: 0 or MSG_DONTWAIT),
 * its text NUL-terminated. Returns 1; 0 at end of stream (the other end
 * closed, nothing was read); < 0 with *err set: recv failed (EAGAIN with
 * MSG_DONTWAIT and nothing waiting), a message shorter than its header,
 * or of an unknown type. */
int launch_sync_read(int fd, int flags, struct launch_sync_msg *ret, struct dy_error **err);

/* Receives the message expect. Returns 1 when it came; 0 at end of
 * stream; < 0 with *err set: the other end's own failure
 * (LAUNCH_SYNC_ERROR: its message, its errno in (*err)->errnum), a
 * message other than expect (out of order), or what launch_sync_read()
 * refuses. */
int launch_sync_recv(int fd, int flags, enum launch_sync_type expect, struct dy_error **err);

/* Sets *err (when empty) from a LAUNCH_SYNC_ERROR message: its text as
 * the message (strerror already in it), its errnum. Returns -errnum, or
 * -1 when errnum is 0. */
int launch_sync_error(const struct launch_sync_msg *m, struct dy_error **err);

/* LAUNCH_SYNC_TAKE: what a pooled child learns of its dyno at take. data
 * holds the strings named by len[], in that order, each NUL-terminated
 * (len counts the NUL; 0: absent). */
enum launch_take_str {
	LAUNCH_TAKE_SLUG_DIR,
	LAUNCH_TAKE_SINK_DIR,
	LAUNCH_TAKE_SINK_NAME,
	LAUNCH_TAKE_NAME,
	LAUNCH_TAKE_COMMAND,
	_LAUNCH_TAKE_N,
};

/* The largest take: a start whose strings do not fit is not pooled. */
#define LAUNCH_TAKE_MAX 32768

struct launch_take {
	uint32_t type; /* LAUNCH_SYNC_TAKE */
	int32_t errnum;
	uint32_t uid, gid;
	uint64_t tmpfs_size;
	uint64_t log_buffer;
	uint32_t len[_LAUNCH_TAKE_N];
	char data[];
};

/* The fds a take passes (SCM_RIGHTS), in this order; the sink's only with
 * a sink. */
enum launch_take_fd {
	LAUNCH_TAKE_FD_ENV,  /* the sealed env memfd */
	LAUNCH_TAKE_FD_SLUG, /* the slug directory, a detached read-only mount */
	LAUNCH_TAKE_FD_SINK, /* the sink's directory, likewise */
	_LAUNCH_TAKE_FD_N,
};

/* Sends the take t (size bytes, header and strings) with the nfds fds
 * passed along (SCM_RIGHTS). Returns 0 or < 0 (EPIPE: the child is gone). */
int launch_sync_send_take(int sock, const struct launch_take *t, size_t size, const int *fds,
                          size_t nfds, struct dy_error **err);

/* Receives a take into buf (size bytes; no allocation), checks its
 * strings and sets str[] to them (NULL when absent) and fds[] to the fds
 * passed (-1 past those that came). Returns 1, 0 at end of stream, < 0
 * with *err (LAUNCH_SYNC_ERROR is not expected here). */
int launch_sync_recv_take(int sock, struct launch_take *buf, size_t size,
                          const char *str[_LAUNCH_TAKE_N], int fds[_LAUNCH_TAKE_FD_N],
                          struct dy_error **err);
