#include "common/fs.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"

int dy_mkdir_p(const char *path, mode_t mode, struct dy_error **err)
{
	_cleanup_free_ char *p = strdup(path);
	if (p == NULL)
		return dy_error_errno(err, ENOMEM, "mkdir %s", path);
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return dy_error_errno(err, errno, "mkdir %s", p);
		*s = c;
		if (c == '\0')
			break;
	}
	return 0;
}

int dy_dir_mode(const char *path, mode_t mode, struct dy_error **err)
{
	if (dy_mkdir_p(path, mode, err) < 0)
		return -1;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return dy_error_errno(err, errno, "open %s", path);
	/* mkdir's mode went through the umask, and an older directory may have
	 * another: set it exactly */
	if (fchmod(fd, mode) < 0)
		return dy_error_errno(err, errno, "chmod %s", path);
	return 0;
}

int dy_fsync_dir(const char *path, struct dy_error **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return dy_error_errno(err, errno, "open %s", path);
	if (fsync(fd) < 0)
		return dy_error_errno(err, errno, "fsync %s", path);
	return 0;
}

int dy_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                         struct dy_error **err)
{
	return dy_write_file_atomic_as(path, data, len, mode, (gid_t)-1, err);
}

static int write_replace(const char *path, const void *data, size_t len, mode_t mode, gid_t gid,
                         bool durable, struct dy_error **err)
{
	_cleanup_free_ char *dcopy = strdup(path), *bcopy = strdup(path), *tmp = NULL;
	if (dcopy == NULL || bcopy == NULL)
		return dy_error_errno(err, ENOMEM, "write %s", path);
	const char *dir = dirname(dcopy);
	if (asprintf(&tmp, "%s/.%s.tmp-XXXXXX", dir, basename(bcopy)) < 0) {
		tmp = NULL;
		return dy_error_errno(err, ENOMEM, "write %s", path);
	}
	_cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return dy_error_errno(err, errno, "create a temporary file beside %s", path);
	int r = 0;
	const char *p = data;
	while (r == 0 && len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		p += n;
		len -= (size_t)n;
	}
	/* the group before the mode: never readable by a group it is not for */
	if (r == 0 && gid != (gid_t)-1 && fchown(fd, (uid_t)-1, gid) < 0)
		r = -errno;
	if (r == 0 && fchmod(fd, mode) < 0)
		r = -errno;
	if (r == 0 && durable && fsync(fd) < 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		return dy_error_errno(err, -r, "write %s", path);
	}
	return durable ? dy_fsync_dir(dir, err) : 0;
}

int dy_write_file_atomic_as(const char *path, const void *data, size_t len, mode_t mode, gid_t gid,
                            struct dy_error **err)
{
	return write_replace(path, data, len, mode, gid, true, err);
}

int dy_write_file_replace_as(const char *path, const void *data, size_t len, mode_t mode,
                             gid_t gid, struct dy_error **err)
{
	return write_replace(path, data, len, mode, gid, false, err);
}

int dy_write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			return -1;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

int dy_remove_stale_tmp(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *name = de->d_name;
		size_t len = strlen(name);
		/* ".NAME.tmp-" and the six characters of mkostemp */
		if (name[0] != '.' || len < 12 || memcmp(name + len - 11, ".tmp-", 5) != 0)
			continue;
		struct stat st;
		if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
		    unlinkat(dirfd(d), name, 0) == 0)
			n++;
	}
	closedir(d);
	return n;
}
