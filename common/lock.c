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

const char *dy_lock_holder_text(pid_t pid, char *buf, size_t size)
{
	buf[0] = '\0';
	if (pid <= 0)
		return buf;
	char path[64], cmd[256] = "";
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, cmd, sizeof(cmd) - 1) : -1;
	for (ssize_t i = 0; i < n; i++)
		if (cmd[i] == '\0' || (unsigned char)cmd[i] < 0x20)
			cmd[i] = ' ';
	cmd[n > 0 ? n : 0] = '\0';
	while (n > 0 && cmd[n - 1] == ' ')
		cmd[--n] = '\0';
	snprintf(buf, size, " (pid %d%s%.*s)", (int)pid, n > 0 ? ": " : "", (int)(size - 24), cmd);
	return buf;
}
