/* libFuzzer target: a whole slug through slug_inspect (every check of
 * unpack, nothing written), from a memfd with small limits; then through
 * the upload's single pass (slug_check_unpack_fd, writing into a
 * temporary directory, its write limit taken from the input), which must
 * come to the same answer, word for word, and the same info. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "slugs/slug-fs.h"
#include "slugs/slug.h"

/* The single pass over fd agrees with inspect's r, info and err. */
static void one_pass(int fd, const struct slug_limits *limits, uint64_t write_limit, int r,
                     const struct slug_info *info, const struct dy_error *err)
{
	char dir[] = "/tmp/fuzz-slug-XXXXXX";
	if (mkdtemp(dir) == NULL)
		abort();
	int rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0 || lseek(fd, 0, SEEK_SET) != 0)
		abort();
	struct slug_unpack_opts opts = {.limits = *limits};
	struct slug_info got;
	struct dy_error *e = NULL;
	bool complete;
	int r2 = slug_check_unpack_fd(fd, rootfd, &opts, write_limit, &got, &complete, &e);
	close(rootfd);
	if ((r2 == 0) != (r == 0))
		abort();
	if (r2 == 0) {
		if (strcmp(got.id, info->id) != 0 || got.size != info->size ||
		    got.unpacked_size != info->unpacked_size || got.entries != info->entries ||
		    strcmp(got.compression, info->compression) != 0 ||
		    got.procfile->n != info->procfile->n ||
		    (complete && got.unpacked_size > write_limit))
			abort();
		slug_info_clear(&got);
	} else if (e == NULL || strcmp(dy_error_msg(e), dy_error_msg(err)) != 0) {
		abort();
	}
	dy_error_free(&e);
	if (slug_fs_remove_tree(AT_FDCWD, dir) < 0)
		abort();
}

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
	if (lseek(fd, 0, SEEK_SET) != 0)
		abort();
	struct slug_limits limits = {
	    .max_compressed = 4 << 20,
	    .max_unpacked = 1 << 20,
	    .max_entries = 1000,
	};
	struct slug_info info;
	struct dy_error *err = NULL;
	int r = slug_inspect_fd(fd, &limits, &info, &err);
	if (r == 0) {
		if (err != NULL || info.procfile == NULL || info.procfile->n == 0 ||
		    info.size != size || info.unpacked_size > limits.max_unpacked ||
		    info.entries > limits.max_entries || strlen(info.id) != 64)
			abort();
	} else if (err == NULL) {
		abort();
	}
	/* a write limit from the last byte: none, or a few KiB that a slug
	 * may go past */
	uint64_t write_limit =
	    size && data[size - 1] & 1 ? (uint64_t)data[size - 1] << 6 : UINT64_MAX;
	one_pass(fd, &limits, write_limit, r, &info, err);
	if (r == 0)
		slug_info_clear(&info);
	dy_error_free(&err);
	close(fd);
	return 0;
}
