/* libFuzzer target: attach_parse, the frames of an attached one-off.
 * Walks the input frame by frame; every frame consumed lies inside the
 * input, has a known type and a length within ATTACH_MAX_LEN, and parsing
 * the same bytes split at any point gives the same frames (a frame is
 * never taken from fewer bytes than it needs). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/attach.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	size_t off = 0;
	while (off < size) {
		struct attach_frame f;
		int r = attach_parse(buf + off, size - off, &f);
		if (r < 0)
			return 0; /* malformed: the connection is dropped */
		if (r == 0) {
			/* more bytes needed: then none of the shorter prefixes parses */
			for (size_t k = 0; k < size - off; k++) {
				struct attach_frame g;
				if (attach_parse(buf + off, k, &g) > 0)
					abort();
			}
			return 0;
		}
		if ((size_t)r > size - off || (size_t)r != ATTACH_HEADER + f.len ||
		    f.len > ATTACH_MAX_LEN || (unsigned)f.type > ATTACH_TYPE_MAX ||
		    f.data != buf + off + ATTACH_HEADER)
			abort();
		/* a frame needs all its bytes: one byte fewer is "more needed" */
		struct attach_frame g;
		if (attach_parse(buf + off, (size_t)r - 1, &g) != 0)
			abort();
		/* the header written back is the one parsed */
		char hdr[ATTACH_HEADER];
		attach_header(hdr, f.type, f.len);
		if (memcmp(hdr, buf + off, ATTACH_HEADER) != 0)
			abort();
		off += (size_t)r;
	}
	return 0;
}
