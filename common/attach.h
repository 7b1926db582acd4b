/* The attach protocol of an attached one-off dyno (docs/api.md, "Attach"):
 * after `101 Switching Protocols` the connection carries frames both ways,
 * each a type byte, a 4-byte big-endian length and that many bytes. The
 * dyno's init (runtime/launcher/init.c) speaks it with the client
 * (cli/cmd-run.c); dynod only hands the connection over. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define ATTACH_HEADER  5
#define ATTACH_MAX_LEN 65536 /* a longer frame is refused */

enum attach_type {
	ATTACH_STDIN = 0,  /* client to dyno; empty: end of input */
	ATTACH_STDOUT = 1, /* dyno to client */
	ATTACH_STDERR = 2, /* dyno to client */
	ATTACH_RESIZE = 3, /* client to dyno: rows, cols, 2 bytes each, big-endian */
	ATTACH_SIGNAL = 4, /* client to dyno: 1 byte, the signal number */
	ATTACH_EXIT = 5,   /* dyno to client, last: 4 bytes, the exit status */
	ATTACH_ERROR = 6,  /* dyno (dynod) to client, last: the start failed, a message */
	ATTACH_TYPE_MAX = ATTACH_ERROR,
};

/* The name of a frame type ("stdout"), or "unknown". */
const char *attach_type_str(enum attach_type t);

struct attach_frame {
	enum attach_type type;
	const char *data; /* into the parsed buffer */
	size_t len;
};

/* Parses one frame at the start of buf (len bytes). Returns < 0 when it
 * is malformed (an unknown type, a length over ATTACH_MAX_LEN), 0 when
 * more bytes are needed, > 0 the bytes consumed (then *ret is set, its data
 * pointing into buf). */
int attach_parse(const char *buf, size_t len, struct attach_frame *ret);

/* Writes the header of a frame of type and len into hdr. */
void attach_header(char hdr[ATTACH_HEADER], enum attach_type type, size_t len);

/* Writes a whole frame to the blocking fd, retrying short writes and
 * EINTR. Returns 0, or < 0 (errno set). */
int attach_write(int fd, enum attach_type type, const void *data, size_t len);
