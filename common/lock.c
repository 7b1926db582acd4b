#include "common/lock.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/cleanup.h"

pid_t dy_lock_holder(int fd)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return 0;
	_cleanup_fclose_ FILE *f = fopen("/proc/locks", "re");
	if (f == NULL)
		return 0;
	/* "1: FLOCK  ADVISORY  WRITE 4180 fe:00:10952978 0 EOF": the device as
	 * hex major:minor, the inode in decimal */
	char line[256];
	while (fgets(line, sizeof(line), f)) {
		char kind[16];
		long pid;
		unsigned maj, min;
		uint64_t ino;
		if (sscanf(line, "%*[^:]: %15s %*s %*s %ld %x:%x:%" SCNu64, kind, &pid, &maj, &min,
		           &ino) != 5)
			continue;
		if (strcmp(kind, "FLOCK") != 0 || pid <= 0 || pid == getpid())
			continue;
		if (maj == major(st.st_dev) && min == minor(st.st_dev) && ino == st.st_ino)
			return (pid_t)pid;
	}
	return 0;
}

int dy_lock_dir(const char *path, int *ret_fd, pid_t *ret_holder, struct dy_error **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return dy_error_errno(err, errno, "open %s", path);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		if (e == EWOULDBLOCK) {
			if (ret_holder)
				*ret_holder = dy_lock_holder(fd);
			return -EWOULDBLOCK;
		}
		return dy_error_errno(err, e, "lock %s", path);
	}
	*ret_fd = TAKE_FD(fd);
	return 0;
}
