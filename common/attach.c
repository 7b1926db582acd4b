/* The attach protocol's frames; see attach.h. */
#include "common/attach.h"

#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

const char *attach_type_str(enum attach_type t)
{
	static const char *const names[] = {"stdin",  "stdout", "stderr", "resize",
	                                    "signal", "exit",   "error"};
	return (unsigned)t <= ATTACH_TYPE_MAX ? names[t] : "unknown";
}

int attach_parse(const char *buf, size_t len, struct attach_frame *ret)
{
	if (len < 1)
		return 0;
	if ((unsigned char)buf[0] > ATTACH_TYPE_MAX)
		return -1;
	if (len < ATTACH_HEADER)
		return 0;
	const unsigned char *u = (const unsigned char *)buf;
	uint32_t n = (uint32_t)u[1] << 24 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 8 | u[4];
	if (n > ATTACH_MAX_LEN)
		return -1;
	if (len - ATTACH_HEADER < n)
		return 0;
	ret->type = (enum attach_type)u[0];
	ret->data = buf + ATTACH_HEADER;
	ret->len = n;
	return (int)(ATTACH_HEADER + n);
}

void attach_header(char hdr[ATTACH_HEADER], enum attach_type type, size_t len)
{
	hdr[0] = (char)type;
	hdr[1] = (char)(len >> 24);
	hdr[2] = (char)(len >> 16);
	hdr[3] = (char)(len >> 8);
	hdr[4] = (char)len;
}

int attach_write(int fd, enum attach_type type, const void *data, size_t len)
{
	char hdr[ATTACH_HEADER];
	attach_header(hdr, type, len);
	struct iovec iov[2] = {{hdr, ATTACH_HEADER}, {(void *)data, len}};
	int n = len ? 2 : 1;
	struct iovec *v = iov;
	while (n > 0) {
		ssize_t w = writev(fd, v, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		size_t done = (size_t)w;
		while (n > 0 && done >= v->iov_len) {
			done -= v->iov_len;
			v++;
			n--;
		}
		if (n > 0) {
			v->iov_base = (char *)v->iov_base + done;
			v->iov_len -= done;
		}
	}
	return 0;
}
