/* libFuzzer target: a whole slug through slug_inspect (every check of
 * unpack, nothing written), from a memfd with small limits; then through
 * the upload's single pass (slug_check_unpack_fd, writing into a
 * temporary directory, its write limit taken from the input), which must
 * come to the same answer, word for word, and the same info. A gzip or
 * zstd slug is decompressed by slug-decompress.c (ISA-L, libzstd), on a
 * thread of its own from the memfd; from a pipe (inputs that fit one) on
 * the caller's thread, to the same answer; and a slug that both it and
 * libarchive's own filters (DYNO_GUNZIP=zlib, DYNO_UNZSTD=libarchive)
 * accept gives the same info both ways (slug-decompress.c refuses more: a
 * bad CRC-32 after the tar's end). */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "slugs/slug-fs.h"
#include "slugs/slug.h"

static bool same_info(const struct slug_info *a, const struct slug_info *b)
{
	return strcmp(a->id, b->id) == 0 && a->size == b->size &&
	       a->unpacked_size == b->unpacked_size && a->entries == b->entries &&
	       strcmp(a->compression, b->compression) == 0 && a->procfile->n == b->procfile->n;
}

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
		if (!same_info(&got, info) || (complete && got.unpacked_size > write_limit))
			abort();
		slug_info_clear(&got);
	} else if (e == NULL || strcmp(dy_error_msg(e), dy_error_msg(err)) != 0) {
		abort();
	}
	dy_error_free(&e);
	if (slug_fs_remove_tree(AT_FDCWD, dir) < 0)
		abort();
}

/* The slug read from a pipe (no thread) agrees with inspect's r, info and
 * err; inputs that fit the pipe's buffer only (written before the read). */
static void from_pipe(const uint8_t *data, size_t size, const struct slug_limits *limits, int r,
                      const struct slug_info *info, const struct dy_error *err)
{
	int p[2];
	if (size > 60000 || pipe(p) < 0)
		return;
	for (size_t off = 0; off < size;) {
		ssize_t n = write(p[1], data + off, size - off);
		if (n <= 0)
			abort();
		off += (size_t)n;
	}
	close(p[1]);
	struct slug_info got;
	struct dy_error *e = NULL;
	int r2 = slug_inspect_fd(p[0], limits, &got, &e);
	close(p[0]);
	if ((r2 == 0) != (r == 0))
		abort();
	if (r2 == 0) {
		if (!same_info(&got, info))
			abort();
		slug_info_clear(&got);
	} else if (strcmp(dy_error_msg(e), dy_error_msg(err)) != 0) {
		abort();
	}
	dy_error_free(&e);
}

/* With libarchive's filters: when both accept, the same info. */
static void with_libarchive(int fd, const struct slug_limits *limits, int r,
                            const struct slug_info *info)
{
	if (lseek(fd, 0, SEEK_SET) != 0)
		abort();
	setenv("DYNO_GUNZIP", "zlib", 1);
	setenv("DYNO_UNZSTD", "libarchive", 1);
	struct slug_info got;
	struct dy_error *e = NULL;
	int r2 = slug_inspect_fd(fd, limits, &got, &e);
	unsetenv("DYNO_GUNZIP");
	unsetenv("DYNO_UNZSTD");
	if (r2 == 0 && r == 0 && !same_info(&got, info))
		abort();
	if (r2 == 0)
		slug_info_clear(&got);
	dy_error_free(&e);
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
	from_pipe(data, size, &limits, r, &info, err);
	with_libarchive(fd, &limits, r, &info);
	if (r == 0)
		slug_info_clear(&info);
	dy_error_free(&err);
	close(fd);
	return 0;
}
