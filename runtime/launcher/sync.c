/* The launcher's sync protocol; see sync.h. */
#include "runtime/launcher/sync.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/macro.h"

const char *launch_sync_type_str(enum launch_sync_type type)
{
	static const char *const names[_LAUNCH_SYNC_MAX] = {
	    [LAUNCH_SYNC_INVALID] = "LAUNCH_SYNC_INVALID",
	    [LAUNCH_SYNC_CGROUP_JOINED] = "LAUNCH_SYNC_CGROUP_JOINED",
	    [LAUNCH_SYNC_NETNS_MADE] = "LAUNCH_SYNC_NETNS_MADE",
	    [LAUNCH_SYNC_VETH_READY] = "LAUNCH_SYNC_VETH_READY",
	    [LAUNCH_SYNC_RULES_READY] = "LAUNCH_SYNC_RULES_READY",
	    [LAUNCH_SYNC_APP_EXECED] = "LAUNCH_SYNC_APP_EXECED",
	    [LAUNCH_SYNC_ERROR] = "LAUNCH_SYNC_ERROR",
	    [LAUNCH_SYNC_POOL_READY] = "LAUNCH_SYNC_POOL_READY",
	    [LAUNCH_SYNC_TAKE] = "LAUNCH_SYNC_TAKE",
	};
	if ((unsigned)type >= _LAUNCH_SYNC_MAX)
		return "unknown";
	return names[type];
}

/* One packet of len bytes: SOCK_SEQPACKET sends it whole or not at all. */
static ssize_t send_packet(int fd, const struct launch_sync_msg *m, size_t len)
{
	ssize_t n;
	do
		n = send(fd, m, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n;
}

int launch_sync_send(int fd, enum launch_sync_type type, struct dy_error **err)
{
	assert(type > LAUNCH_SYNC_INVALID && type < _LAUNCH_SYNC_MAX && type != LAUNCH_SYNC_ERROR);
	/* the header only: the start path sends no more than it must (text
	 * is left unset, and not sent) */
	struct launch_sync_msg m;
	m.type = (uint32_t)type;
	m.errnum = 0;
	ssize_t n = send_packet(fd, &m, LAUNCH_SYNC_HEADER);
	if (n < 0)
		return dy_error_errno(err, errno, "sync: send %s", launch_sync_type_str(type));
	if ((size_t)n != LAUNCH_SYNC_HEADER)
		return dy_error_errno(err, EIO, "sync: send %s", launch_sync_type_str(type));
	return 0;
}

void launch_sync_send_error(int fd, const struct dy_error *e)
{
	struct launch_sync_msg m;
	const char *text = dy_error_msg(e);
	size_t len = MIN(strlen(text), sizeof(m.text) - 1);
	m.type = LAUNCH_SYNC_ERROR;
	m.errnum = e ? e->errnum : 0;
	memcpy(m.text, text, len);
	m.text[len] = '\0';
	ssize_t n = send_packet(fd, &m, LAUNCH_SYNC_HEADER + len + 1);
	(void)n; /* the sender exits: nobody to tell */
}

int launch_sync_read(int fd, int flags, struct launch_sync_msg *ret, struct dy_error **err)
{
	ssize_t n;
	do
		n = recv(fd, ret, sizeof(*ret), flags);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return dy_error_errno(err, errno, "sync: recv");
	if (n == 0)
		return 0;
	if ((size_t)n < LAUNCH_SYNC_HEADER)
		return dy_error_errno(err, EPROTO,
		                      "sync: short message (%zd of at least %zu bytes)", n,
		                      LAUNCH_SYNC_HEADER);
	if (ret->type == LAUNCH_SYNC_INVALID || ret->type >= _LAUNCH_SYNC_MAX)
		return dy_error_errno(err, EPROTO, "sync: unknown message type %u",
		                      (unsigned)ret->type);
	/* the text as far as it came, always terminated: a sender's text is
	 * never trusted to be */
	size_t len = (size_t)n - LAUNCH_SYNC_HEADER;
	ret->text[MIN(len, sizeof(ret->text) - 1)] = '\0';
	return 1;
}

int launch_sync_error(const struct launch_sync_msg *m, struct dy_error **err)
{
	assert(m->type == LAUNCH_SYNC_ERROR);
	int errnum = MAX(m->errnum, 0);
	bool was_set = err == NULL || *err != NULL;
	/* the text has ": strerror" in it already (the sender's
	 * dy_error_errno()): set it as it is, then the errno */
	dy_error(err, "%s", m->text[0] ? m->text : "unknown error");
	if (!was_set && *err)
		(*err)->errnum = errnum;
	return errnum ? -errnum : -1;
}

int launch_sync_recv(int fd, int flags, enum launch_sync_type expect, struct dy_error **err)
{
	struct launch_sync_msg m;
	int r = launch_sync_read(fd, flags, &m, err);
	if (r <= 0)
		return r;
	if (m.type == expect)
		return 1;
	if (m.type == LAUNCH_SYNC_ERROR)
		return launch_sync_error(&m, err);
	return dy_error_errno(err, EPROTO, "sync: got %s, expected %s",
	                      launch_sync_type_str((enum launch_sync_type)m.type),
	                      launch_sync_type_str(expect));
}

int launch_sync_send_take(int sock, const struct launch_take *t, size_t size, const int *fds,
                          size_t nfds, struct dy_error **err)
{
	struct iovec iov = {(void *)t, size};
	union {
		char buf[CMSG_SPACE(sizeof(int) * _LAUNCH_TAKE_FD_N)];
		struct cmsghdr align;
	} c;
	memset(&c, 0, sizeof(c));
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	if (nfds > _LAUNCH_TAKE_FD_N)
		return dy_error_errno(err, EINVAL, "sync: %zu fds in a take", nfds);
	if (nfds > 0) {
		mh.msg_control = c.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	ssize_t n;
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return dy_error_errno(err, errno, "sync: send LAUNCH_SYNC_TAKE");
	if ((size_t)n != size)
		return dy_error_errno(err, EIO, "sync: send LAUNCH_SYNC_TAKE");
	return 0;
}

int launch_sync_recv_take(int sock, struct launch_take *buf, size_t size,
                          const char *str[_LAUNCH_TAKE_N], int fds[_LAUNCH_TAKE_FD_N],
                          struct dy_error **err)
{
	struct iovec iov = {buf, size};
	union {
		char buf[CMSG_SPACE(sizeof(int) * _LAUNCH_TAKE_FD_N)];
		struct cmsghdr align;
	} c;
	struct msghdr mh = {.msg_iov = &iov,
	                    .msg_iovlen = 1,
	                    .msg_control = c.buf,
	                    .msg_controllen = sizeof(c.buf)};
	for (int i = 0; i < _LAUNCH_TAKE_FD_N; i++)
		fds[i] = -1;
	ssize_t n;
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return dy_error_errno(err, errno, "sync: recv");
	if (n == 0)
		return 0;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		memcpy(fds, CMSG_DATA(cm), sizeof(int) * MIN(k, (size_t)_LAUNCH_TAKE_FD_N));
	}
	if ((size_t)n < sizeof(*buf) || buf->type != LAUNCH_SYNC_TAKE)
		return dy_error_errno(err, EPROTO, "sync: expected %s (%zd bytes)",
		                      launch_sync_type_str(LAUNCH_SYNC_TAKE), n);
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		return dy_error_errno(err, EPROTO, "sync: %s longer than %zu bytes",
		                      launch_sync_type_str(LAUNCH_SYNC_TAKE), size);
	size_t off = 0, avail = (size_t)n - sizeof(*buf);
	for (int i = 0; i < _LAUNCH_TAKE_N; i++) {
		size_t l = buf->len[i];
		str[i] = NULL;
		if (l == 0)
			continue;
		if (l > avail - off || buf->data[off + l - 1] != '\0' ||
		    memchr(buf->data + off, '\0', l) != buf->data + off + l - 1)
			return dy_error_errno(err, EPROTO, "sync: %s: string %d malformed",
			                      launch_sync_type_str(LAUNCH_SYNC_TAKE), i);
		str[i] = buf->data + off;
		off += l;
	}
	return 1;
}
