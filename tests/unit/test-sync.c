/* The launcher's sync protocol (runtime/launcher/sync.c) over a
 * SOCK_SEQPACKET socket pair, as launch_start() and its child use it. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/macro.h"
#include "runtime/launcher/sync.h"

static int pair_setup(void **state)
{
	static int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	*state = sv;
	return 0;
}

static int pair_teardown(void **state)
{
	int *sv = *state;
	for (int i = 0; i < 2; i++)
		if (sv[i] >= 0)
			close(sv[i]);
	return 0;
}

static void test_type_names(void **state)
{
	(void)state;
	for (int t = 0; t < _LAUNCH_SYNC_MAX; t++) {
		const char *s = launch_sync_type_str((enum launch_sync_type)t);
		assert_non_null(s);
		assert_memory_equal(s, "LAUNCH_SYNC_", 12);
		for (int u = 0; u < t; u++)
			assert_string_not_equal(s, launch_sync_type_str((enum launch_sync_type)u));
	}
	assert_string_equal(launch_sync_type_str(_LAUNCH_SYNC_MAX), "unknown");
	assert_string_equal(launch_sync_type_str((enum launch_sync_type) - 1), "unknown");
}

/* Every message of a start goes through whole, in its order. */
static void test_round_trip(void **state)
{
	int *sv = *state;
	static const enum launch_sync_type start[] = {
	    LAUNCH_SYNC_CGROUP_JOINED, LAUNCH_SYNC_NETNS_MADE, LAUNCH_SYNC_VETH_READY,
	    LAUNCH_SYNC_RULES_READY,   LAUNCH_SYNC_APP_EXECED,
	};
	struct dy_error *e = NULL;
	for (size_t i = 0; i < ELEMENTSOF(start); i++) {
		/* alternate ends, as parent and child do */
		int from = sv[i % 2], to = sv[1 - i % 2];
		assert_int_equal(launch_sync_send(from, start[i], &e), 0);
		assert_int_equal(launch_sync_recv(to, 0, start[i], &e), 1);
		assert_null(e);
	}
	/* launch_sync_read() hands the message over, text empty */
	assert_int_equal(launch_sync_send(sv[0], LAUNCH_SYNC_VETH_READY, &e), 0);
	struct launch_sync_msg m;
	memset(&m, 'x', sizeof(m));
	assert_int_equal(launch_sync_read(sv[1], 0, &m, &e), 1);
	assert_int_equal(m.type, LAUNCH_SYNC_VETH_READY);
	assert_int_equal(m.errnum, 0);
	assert_string_equal(m.text, "");
	assert_null(e);
}

/* The other end's failure arrives as a struct dy_error with its errno and
 * its message, whatever message was expected. */
static void test_error_carries_errno(void **state)
{
	int *sv = *state;
	struct dy_error *child = NULL, *e = NULL;
	assert_int_equal(dy_error_errno(&child, EINVAL, "mount /app"), -EINVAL);
	launch_sync_send_error(sv[1], child);
	assert_int_equal(launch_sync_recv(sv[0], 0, LAUNCH_SYNC_NETNS_MADE, &e), -EINVAL);
	assert_non_null(e);
	assert_int_equal(e->errnum, EINVAL);
	assert_string_equal(dy_error_msg(e), dy_error_msg(child));
	assert_string_equal(dy_error_msg(e), "mount /app: Invalid argument");
	/* the caller adds its context as usual, the errno stays */
	assert_int_equal(dy_error_prefix(&e, "dyno t1"), -EINVAL);
	assert_string_equal(dy_error_msg(e), "dyno t1: mount /app: Invalid argument");
	dy_error_free(&e);
	dy_error_free(&child);

	/* a failure that is no system call's: errno 0, -1 returned */
	dy_error(&child, "log sink %s: name too long", "x");
	launch_sync_send_error(sv[1], child);
	assert_int_equal(launch_sync_recv(sv[0], 0, LAUNCH_SYNC_APP_EXECED, &e), -1);
	assert_int_equal(e->errnum, 0);
	assert_string_equal(dy_error_msg(e), "log sink x: name too long");
	dy_error_free(&e);
	dy_error_free(&child);

	/* expected as such, it is handed over; launch_sync_error() makes the
	 * struct dy_error of it */
	dy_error_errno(&child, ENOENT, "exec dyno-init");
	launch_sync_send_error(sv[1], child);
	struct launch_sync_msg m;
	assert_int_equal(launch_sync_read(sv[0], 0, &m, &e), 1);
	assert_int_equal(m.type, LAUNCH_SYNC_ERROR);
	assert_int_equal(m.errnum, ENOENT);
	assert_int_equal(launch_sync_error(&m, &e), -ENOENT);
	assert_int_equal(e->errnum, ENOENT);
	assert_string_equal(dy_error_msg(e), "exec dyno-init: No such file or directory");
	/* an error already set is kept: the first failure wins */
	struct dy_error *first = e;
	assert_int_equal(launch_sync_error(&m, &e), -ENOENT);
	assert_ptr_equal(e, first);
	dy_error_free(&e);
	dy_error_free(&child);
	assert_int_equal(launch_sync_error(&m, NULL), -ENOENT);

	/* NULL (no error at hand) still sends a failure */
	launch_sync_send_error(sv[1], NULL);
	assert_int_equal(launch_sync_recv(sv[0], 0, LAUNCH_SYNC_NETNS_MADE, &e), -1);
	assert_string_equal(dy_error_msg(e), "unknown error");
	dy_error_free(&e);
}

/* A message longer than the text's room is cut, still terminated. */
static void test_long_text_cut(void **state)
{
	int *sv = *state;
	static char big[2 * LAUNCH_SYNC_TEXT_MAX];
	memset(big, 'a', sizeof(big) - 1);
	struct dy_error *child = NULL, *e = NULL;
	dy_error(&child, "%s", big);
	launch_sync_send_error(sv[1], child);
	assert_int_equal(launch_sync_recv(sv[0], 0, LAUNCH_SYNC_NETNS_MADE, &e), -1);
	assert_int_equal(strlen(dy_error_msg(e)), LAUNCH_SYNC_TEXT_MAX - 1);
	dy_error_free(&e);
	dy_error_free(&child);
}

static void test_unknown_type_refused(void **state)
{
	int *sv = *state;
	struct dy_error *e = NULL;
	struct launch_sync_msg m = {.type = 99};
	assert_int_equal(send(sv[1], &m, LAUNCH_SYNC_HEADER, 0), (ssize_t)LAUNCH_SYNC_HEADER);
	assert_int_equal(launch_sync_recv(sv[0], 0, LAUNCH_SYNC_NETNS_MADE, &e), -EPROTO);
	assert_int_equal(e->errnum, EPROTO);
	assert_non_null(strstr(dy_error_msg(e), "sync: unknown message type 99"));
	dy_error_free(&e);
	/* a zeroed message is no message */
	m.type = LAUNCH_SYNC_INVALID;
	assert_int_equal(send(sv[1], &m, LAUNCH_SYNC_HEADER, 0), (ssize_t)LAUNCH_SYNC_HEADER);
	struct launch_sync_msg got;
	assert_int_equal(launch_sync_read(sv[0], 0, &got, &e), -EPROTO);
	assert_non_null(strstr(dy_error_msg(e), "sync: unknown message type 0"));
	dy_error_free(&e);
}

/* A bare letter, as the launcher once sent, is too short to be a message. */
static void test_short_message_refused(void **state)
{
	int *sv = *state;
	struct dy_error *e = NULL;
	assert_int_equal(send(sv[1], "R", 1, 0), 1);
	assert_int_equal(launch_sync_recv(sv[0], 0, LAUNCH_SYNC_RULES_READY, &e), -EPROTO);
	assert_non_null(strstr(dy_error_msg(e), "sync: short message (1 of at least 8 bytes)"));
	dy_error_free(&e);
}

static void test_out_of_order_refused(void **state)
{
	int *sv = *state;
	struct dy_error *e = NULL;
	/* the parent's go-ahead for dyno-init where the child's report was due */
	assert_int_equal(launch_sync_send(sv[1], LAUNCH_SYNC_RULES_READY, &e), 0);
	assert_int_equal(launch_sync_recv(sv[0], 0, LAUNCH_SYNC_NETNS_MADE, &e), -EPROTO);
	assert_int_equal(e->errnum, EPROTO);
	assert_non_null(strstr(dy_error_msg(e), "sync: got LAUNCH_SYNC_RULES_READY, expected "
	                                        "LAUNCH_SYNC_NETNS_MADE"));
	dy_error_free(&e);
}

/* Text that came without its NUL is terminated by the reader. */
static void test_unterminated_text(void **state)
{
	int *sv = *state;
	struct launch_sync_msg m = {.type = LAUNCH_SYNC_ERROR, .errnum = EPERM};
	memcpy(m.text, "abc", 3);
	assert_int_equal(send(sv[1], &m, LAUNCH_SYNC_HEADER + 3, 0),
	                 (ssize_t)LAUNCH_SYNC_HEADER + 3);
	struct launch_sync_msg got;
	memset(&got, 'x', sizeof(got));
	struct dy_error *e = NULL;
	assert_int_equal(launch_sync_read(sv[0], 0, &got, &e), 1);
	assert_string_equal(got.text, "abc");
	assert_int_equal(got.errnum, EPERM);
}

/* End of stream is 0, not an error; nothing waiting with MSG_DONTWAIT is
 * EAGAIN; a send to a closed end is EPIPE, not SIGPIPE. */
static void test_eof_and_closed_peer(void **state)
{
	int *sv = *state;
	struct dy_error *e = NULL;
	assert_int_equal(launch_sync_recv(sv[0], MSG_DONTWAIT, LAUNCH_SYNC_NETNS_MADE, &e),
	                 -EAGAIN);
	assert_int_equal(e->errnum, EAGAIN);
	dy_error_free(&e);
	close(sv[1]);
	sv[1] = -1;
	assert_int_equal(launch_sync_recv(sv[0], 0, LAUNCH_SYNC_NETNS_MADE, &e), 0);
	assert_null(e);
	assert_int_equal(launch_sync_send(sv[0], LAUNCH_SYNC_VETH_READY, &e), -EPIPE);
	assert_non_null(strstr(dy_error_msg(e), "sync: send LAUNCH_SYNC_VETH_READY: "));
	dy_error_free(&e);
	launch_sync_send_error(sv[0], NULL); /* quietly */
}

static union {
	struct launch_take t;
	char bytes[LAUNCH_TAKE_MAX];
} take_out, take_in;

/* A take of these strings (NULL: absent) into take_out; its size. */
static size_t take_of(const char *const str[_LAUNCH_TAKE_N])
{
	memset(&take_out, 0, sizeof(take_out));
	take_out.t.type = LAUNCH_SYNC_TAKE;
	take_out.t.uid = 20001;
	take_out.t.gid = 20002;
	take_out.t.tmpfs_size = 64 << 20;
	size_t off = 0;
	for (int i = 0; i < _LAUNCH_TAKE_N; i++) {
		if (!str[i])
			continue;
		size_t l = strlen(str[i]) + 1;
		memcpy(take_out.t.data + off, str[i], l);
		take_out.t.len[i] = (uint32_t)l;
		off += l;
	}
	return sizeof(take_out.t) + off;
}

/* A pooled dyno's take: its strings and fds (the env memfd, the slug's and
 * the sink's mounts) arrive whole and in order; an absent string is
 * NULL. */
static void test_take_round_trip(void **state)
{
	int *sv = *state;
	struct dy_error *e = NULL;
	const char *str[_LAUNCH_TAKE_N] = {"/slugs/a", NULL, "log.sock", "web.1", "exec app"};
	size_t n = take_of(str);
	int fds[3] = {dup(0), dup(0), dup(0)};
	assert_int_equal(launch_sync_send_take(sv[0], &take_out.t, n, fds, 3, &e), 0);
	const char *got[_LAUNCH_TAKE_N];
	int in[_LAUNCH_TAKE_FD_N];
	assert_int_equal(launch_sync_recv_take(sv[1], &take_in.t, sizeof(take_in), got, in, &e), 1);
	assert_null(e);
	assert_int_equal(take_in.t.uid, 20001);
	assert_int_equal(take_in.t.gid, 20002);
	assert_int_equal(take_in.t.tmpfs_size, 64 << 20);
	assert_string_equal(got[LAUNCH_TAKE_SLUG_DIR], "/slugs/a");
	assert_null(got[LAUNCH_TAKE_SINK_DIR]);
	assert_string_equal(got[LAUNCH_TAKE_SINK_NAME], "log.sock");
	assert_string_equal(got[LAUNCH_TAKE_NAME], "web.1");
	assert_string_equal(got[LAUNCH_TAKE_COMMAND], "exec app");
	for (int i = 0; i < 3; i++) {
		assert_true(in[i] >= 0 && in[i] != fds[i]);
		close(in[i]);
		close(fds[i]);
	}
	/* two fds: the third is -1 */
	fds[0] = dup(0);
	fds[1] = dup(0);
	assert_int_equal(launch_sync_send_take(sv[0], &take_out.t, n, fds, 2, &e), 0);
	assert_int_equal(launch_sync_recv_take(sv[1], &take_in.t, sizeof(take_in), got, in, &e), 1);
	assert_true(in[0] >= 0 && in[1] >= 0);
	assert_int_equal(in[LAUNCH_TAKE_FD_SINK], -1);
	for (int i = 0; i < 2; i++) {
		close(in[i]);
		close(fds[i]);
	}
}

/* A string that runs past the message, or one with a NUL inside, is
 * refused; so is another message where a take is expected, and the end of
 * stream is 0. */
static void test_take_malformed_refused(void **state)
{
	int *sv = *state;
	struct dy_error *e = NULL;
	const char *str[_LAUNCH_TAKE_N] = {"/slugs/a", NULL, NULL, "web.1", "exec app"};
	const char *got[_LAUNCH_TAKE_N];
	int in[_LAUNCH_TAKE_FD_N];
	size_t n = take_of(str);
	take_out.t.len[LAUNCH_TAKE_COMMAND] += 100; /* past the end */
	assert_int_equal(launch_sync_send_take(sv[0], &take_out.t, n, NULL, 0, &e), 0);
	assert_int_equal(launch_sync_recv_take(sv[1], &take_in.t, sizeof(take_in), got, in, &e),
	                 -EPROTO);
	assert_non_null(strstr(dy_error_msg(e), "string 4 malformed"));
	dy_error_free(&e);
	n = take_of(str);
	take_out.t.data[3] = '\0'; /* "/sl\0gs/a" */
	assert_int_equal(launch_sync_send_take(sv[0], &take_out.t, n, NULL, 0, &e), 0);
	assert_int_equal(launch_sync_recv_take(sv[1], &take_in.t, sizeof(take_in), got, in, &e),
	                 -EPROTO);
	dy_error_free(&e);
	assert_int_equal(launch_sync_send(sv[0], LAUNCH_SYNC_RULES_READY, &e), 0);
	assert_int_equal(launch_sync_recv_take(sv[1], &take_in.t, sizeof(take_in), got, in, &e),
	                 -EPROTO);
	assert_non_null(strstr(dy_error_msg(e), "expected LAUNCH_SYNC_TAKE"));
	dy_error_free(&e);
	close(sv[0]);
	sv[0] = -1;
	assert_int_equal(launch_sync_recv_take(sv[1], &take_in.t, sizeof(take_in), got, in, &e), 0);
	assert_null(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_type_names),
	    cmocka_unit_test_setup_teardown(test_round_trip, pair_setup, pair_teardown),
	    cmocka_unit_test_setup_teardown(test_error_carries_errno, pair_setup, pair_teardown),
	    cmocka_unit_test_setup_teardown(test_long_text_cut, pair_setup, pair_teardown),
	    cmocka_unit_test_setup_teardown(test_unknown_type_refused, pair_setup, pair_teardown),
	    cmocka_unit_test_setup_teardown(test_short_message_refused, pair_setup, pair_teardown),
	    cmocka_unit_test_setup_teardown(test_out_of_order_refused, pair_setup, pair_teardown),
	    cmocka_unit_test_setup_teardown(test_unterminated_text, pair_setup, pair_teardown),
	    cmocka_unit_test_setup_teardown(test_eof_and_closed_peer, pair_setup, pair_teardown),
	    cmocka_unit_test_setup_teardown(test_take_round_trip, pair_setup, pair_teardown),
	    cmocka_unit_test_setup_teardown(test_take_malformed_refused, pair_setup, pair_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
