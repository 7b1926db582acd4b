#include "slugs/slug-disk.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/sha256.h"
#include "slugs/slug-fs.h"

uint64_t slug_disk_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

uint64_t slug_disk_left(uint64_t used, uint64_t budget)
{
	return used >= budget ? 0 : budget - used;
}

bool slug_disk_over(uint64_t used, uint64_t add, uint64_t budget)
{
	return slug_disk_add(used, add) > budget;
}

const char *slug_disk_fmt(uint64_t bytes, char *buf, size_t size)
{
	static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	if (bytes < 1024) {
		snprintf(buf, size, "%" PRIu64 " bytes", bytes);
		return buf;
	}
	unsigned u = 0;
	uint64_t unit = 1024;
	while (u + 1 < sizeof(units) / sizeof(units[0]) && bytes / unit >= 1024) {
		unit *= 1024;
		u++;
	}
	if (bytes % unit == 0) {
		snprintf(buf, size, "%" PRIu64 " %s", bytes / unit, units[u]);
		return buf;
	}
	/* tenths, rounded down so that "over 10 GiB" never reads "10.0 GiB" */
	uint64_t whole = bytes / unit, tenths = (bytes % unit) * 10 / unit;
	snprintf(buf, size, "%" PRIu64 ".%" PRIu64 " %s", whole, tenths, units[u]);
	return buf;
}

static bool has_id(const char **ids, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(ids[i], id) == 0)
			return true;
	return false;
}

size_t slug_disk_keep(const struct slug_disk_release *rels, size_t n, unsigned keep,
                      const char **ret_ids)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		const char *id = rels[i].slug_id;
		if (id && id[0] && (rels[i].current || rels[i].pending) && !has_id(ret_ids, k, id))
			ret_ids[k++] = id;
	}
	size_t fixed = k;
	for (size_t i = n; i-- > 0 && k - fixed < keep;) {
		const char *id = rels[i].slug_id;
		if (id && id[0] && !has_id(ret_ids, k, id))
			ret_ids[k++] = id;
	}
	return k;
}

/* Adds the blocks of everything below the directory dfd (taken). */
static int usage_dir(int dfd, uint64_t *total, unsigned depth, struct dy_error **err)
{
	DIR *d = fdopendir(dfd);
	if (d == NULL) {
		int e = errno;
		close(dfd);
		return dy_error_errno(err, e, "read directory");
	}
	int r = 0;
	struct dirent *de;
	while (r == 0 && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue; /* removed meanwhile */
			r = dy_error_errno(err, errno, "stat");
			break;
		}
		*total = slug_disk_add(*total, (uint64_t)st.st_blocks * 512);
		if (!S_ISDIR(st.st_mode))
			continue;
		if (depth > 4096) {
			r = dy_error(err, "directories nested too deep");
			break;
		}
		int sub =
		    openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0) {
			if (errno == ENOENT)
				continue;
			r = dy_error_errno(err, errno, "open directory");
			break;
		}
		r = usage_dir(sub, total, depth + 1, err);
	}
	closedir(d);
	return r;
}

int slug_disk_usage(const char *path, uint64_t *ret, struct dy_error **err)
{
	*ret = 0;
	struct stat st;
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		return dy_error_errno(err, errno, "stat %s", path);
	}
	*ret = (uint64_t)st.st_blocks * 512;
	if (!S_ISDIR(st.st_mode))
		return 0;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : dy_error_errno(err, errno, "open %s", path);
	if (usage_dir(fd, ret, 0, err) < 0)
		return dy_error_prefix(err, "disk usage of %s", path);
	return 0;
}

int slug_disk_available(const char *path, uint64_t *ret, struct dy_error **err)
{
	struct statvfs sv;
	if (statvfs(path, &sv) < 0)
		return dy_error_errno(err, errno, "statvfs %s", path);
	uint64_t bs = sv.f_frsize ? sv.f_frsize : sv.f_bsize;
	*ret = (uint64_t)sv.f_bavail > UINT64_MAX / bs ? UINT64_MAX : (uint64_t)sv.f_bavail * bs;
	return 0;
}

static bool is_tree_name(const char *name)
{
	size_t n = 0;
	for (; name[n]; n++)
		if (!((name[n] >= '0' && name[n] <= '9') || (name[n] >= 'a' && name[n] <= 'f')))
			return false;
	return n == DY_SHA256_HEX_LEN;
}

int slug_disk_remove_trees(const char *dir, const char *const *keep, size_t nkeep)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return 0;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!is_tree_name(de->d_name))
			continue;
		bool kept = false;
		for (size_t i = 0; i < nkeep && !kept; i++)
			kept = strcmp(keep[i], de->d_name) == 0;
		if (!kept && slug_fs_remove_tree(dirfd(d), de->d_name) == 0)
			n++;
	}
	closedir(d);
	return n;
}
