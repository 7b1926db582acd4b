/* libFuzzer target: a whole slug through slug_inspect (every check of
 * unpack, nothing written), from a memfd with small limits. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "slugs/slug.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz-slug", MFD_CLOEXEC);
	if (fd < 0)
		abort();
	for (size_t off = 0; off < size;) {
		ssize_t n = write(fd, data + off, size - off);
		if (n <= 0)
			abort();
		off += (size_t)n;
	}
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	struct slug_limits limits = {
	    .max_compressed = 4 << 20,
	    .max_unpacked = 1 << 20,
	    .max_entries = 1000,
	};
	struct slug_info info;
	struct dy_error *err = NULL;
	if (slug_inspect(path, &limits, &info, &err) == 0) {
		if (err != NULL || info.procfile == NULL || info.procfile->n == 0 ||
		    info.size != size || info.unpacked_size > limits.max_unpacked ||
		    info.entries > limits.max_entries || strlen(info.id) != 64)
			abort();
		slug_info_clear(&info);
	} else {
		if (err == NULL)
			abort();
		dy_error_free(&err);
	}
	close(fd);
	return 0;
}
