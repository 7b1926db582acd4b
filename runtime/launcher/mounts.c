/* The dyno's file system; see mounts.h. */
#include "runtime/launcher/mounts.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <linux/mount.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "runtime/launcher/launch.h"

#define NEWROOT MOUNTS_NEWROOT

/* /etc entries copied (files) or bound read-only (directories). */
static const char *const etc_allow[] = {
    "alternatives", "ca-certificates", "ca-certificates.conf",
    "ssl/certs",    "ssl/openssl.cnf", "ld.so.cache",
    "ld.so.conf",   "ld.so.conf.d",    "localtime",
    "timezone",     "nsswitch.conf",   "host.conf",
    "resolv.conf",  "protocols",       "services",
    "mime.types",   "os-release",      "debian_version",
    "bash.bashrc",  "inputrc",         "gai.conf",
    "magic",        "papersize",
};

static const char *const merged_links[] = {"bin", "sbin", "lib", "lib32", "lib64", "libx32"};

/* dyno path for messages: NEWROOT "/app" -> "/app" */
static const char *dpath(const char *p)
{
	size_t n = strlen(NEWROOT);
	if (strncmp(p, NEWROOT, n) == 0)
		return p[n] ? p + n : "/";
	return p;
}

static int do_mount(const char *src, const char *dst, const char *type, unsigned long flags,
                    const char *data, struct dy_error **err)
{
	if (mount(src, dst, type, flags, data) < 0)
		return dy_error_errno(err, errno, "mount %s", dpath(dst));
	return 0;
}

static int mkdir_p(const char *path, mode_t mode, struct dy_error **err)
{
	char buf[512];
	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return dy_error_errno(err, errno, "mkdir %s", dpath(buf));
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return dy_error_errno(err, errno, "mkdir %s", dpath(buf));
	return 0;
}

static int touch(const char *path, struct dy_error **err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return dy_error_errno(err, errno, "create %s", dpath(path));
	close(fd);
	return 0;
}

/* The remount above changes the top mount only: a host submount under
 * the source (MS_REC brought it along) would stay writable and suid-capable.
 * mount_setattr(AT_RECURSIVE) (Linux 5.12) makes the whole tree read-only,
 * nosuid, nodev. ENOSYS (an older kernel) keeps the top-level remount. */
static int ro_recursive(const char *dst, struct dy_error **err)
{
	struct mount_attr attr = {
	    .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
	};
	if (syscall(SYS_mount_setattr, AT_FDCWD, dst, AT_RECURSIVE, &attr, sizeof(attr)) < 0 &&
	    errno != ENOSYS)
		return dy_error_errno(err, errno, "mount_setattr %s", dpath(dst));
	return 0;
}

/* A read-only bind of src (host) at dst (created as a file or directory). */
static int bind_ro(const char *src, const char *dst, bool dir, struct dy_error **err)
{
	if ((dir ? mkdir_p(dst, 0755, err) : touch(dst, err)) < 0)
		return -1;
	if (do_mount(src, dst, NULL, MS_BIND | MS_REC, NULL, err) < 0)
		return -1;
	/* a bind keeps the source's flags; read-only needs a remount of the
	 * new mount point itself (mount(2), "Creating a bind mount") */
	if (do_mount(NULL, dst, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL,
	             err) < 0)
		return -1;
	return ro_recursive(dst, err);
}

/* A read-write bind of src at dst (a directory), nosuid and nodev. */
static int bind_rw(const char *src, const char *dst, struct dy_error **err)
{
	if (mkdir_p(dst, 0755, err) < 0)
		return -1;
	if (do_mount(src, dst, NULL, MS_BIND, NULL, err) < 0)
		return -1;
	return do_mount(NULL, dst, NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV, NULL, err);
}

/* The extra binds of a build dyno, their sources held by fds opened
 * before the new root hid them. */
static int mount_binds(const struct mounts_params *p, const int *fds, struct dy_error **err)
{
	for (size_t i = 0; i < p->nbinds; i++) {
		const struct launch_bind *b = &p->binds[i];
		char src[64], dst[512];
		struct stat st;
		snprintf(src, sizeof(src), "/proc/self/fd/%d", fds[i]);
		snprintf(dst, sizeof(dst), NEWROOT "%s", b->dst);
		if (fstat(fds[i], &st) < 0)
			return dy_error_errno(err, errno, "stat %s", b->src);
		bool dir = S_ISDIR(st.st_mode);
		if (!dir && b->rw)
			return dy_error(err, "bind %s: a read-write bind must be a directory", b->dst);
		char *slash = strrchr(dst, '/');
		if (!dir && slash && slash > dst + strlen(NEWROOT)) {
			*slash = '\0';
			int m = mkdir_p(dst, 0755, err);
			*slash = '/';
			if (m < 0)
				return -1;
		}
		int r = b->rw ? bind_rw(src, dst, err) : bind_ro(src, dst, dir, err);
		if (r < 0)
			return -1;
	}
	return 0;
}

static int write_file(const char *path, const char *text, struct dy_error **err)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		return dy_error_errno(err, errno, "create %s", dpath(path));
	size_t n = strlen(text);
	ssize_t w = write(fd, text, n);
	int e = errno;
	close(fd);
	if (w != (ssize_t)n)
		return dy_error_errno(err, w < 0 ? e : EIO, "write %s", dpath(path));
	return 0;
}

/* The copy through a buffer, for a file system without sendfile(). */
static int copy_rw(int in, int out, off_t size, const char *dst, struct dy_error **err)
{
	char buf[16384];
	off_t done = 0;
	while (done < size) {
		ssize_t n = pread(in, buf, sizeof(buf), done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? dy_error_errno(err, errno, "read for %s", dpath(dst)) : 0;
		if (write(out, buf, (size_t)n) != n)
			return dy_error_errno(err, errno, "write %s", dpath(dst));
		done += n;
	}
	return 0;
}

/* Copies the regular file open at in (size bytes) to dst: one sendfile()
 * in the kernel, no buffer of ours. */
static int copy_file(int in, off_t size, const char *dst, struct dy_error **err)
{
	if (size > 4 * 1024 * 1024) /* an /etc file, not a disk image */
		return dy_error(err, "copy %s: too large", dpath(dst));
	_cleanup_close_ int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (out < 0)
		return dy_error_errno(err, errno, "create %s", dpath(dst));
	off_t off = 0;
	while (off < size) {
		ssize_t n = sendfile(out, in, &off, (size_t)(size - off));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EINVAL || errno == ENOSYS) && off == 0)
			return copy_rw(in, out, size, dst, err); /* no splice here */
		if (n < 0)
			return dy_error_errno(err, errno, "write %s", dpath(dst));
		if (n == 0)
			break; /* shrunk meanwhile */
	}
	return 0;
}

int mounts_etc_base(const struct mounts_params *p, struct dy_error **err)
{
	if (mkdir_p(NEWROOT "/etc", 0755, err) < 0)
		return -1;
	for (size_t i = 0; i < ELEMENTSOF(etc_allow); i++) {
		char src[256], dst[256];
		snprintf(src, sizeof(src), "/etc/%s", etc_allow[i]);
		snprintf(dst, sizeof(dst), NEWROOT "/etc/%s", etc_allow[i]);
		/* absent, or a dangling link (resolv.conf into /run): left
		 * out; only directories and regular files are looked at (an
		 * open of anything else could reach a driver) */
		struct stat st;
		if (stat(src, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			if (bind_ro(src, dst, true, err) < 0)
				return -1;
		} else if (S_ISREG(st.st_mode)) {
			_cleanup_close_ int fd = open(src, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
			if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
				continue;
			if (copy_file(fd, st.st_size, dst, err) < 0)
				return -1;
		}
	}
	char buf[1024];
	snprintf(buf, sizeof(buf), "%s\n", p->hostname);
	if (write_file(NEWROOT "/etc/hostname", buf, err) < 0)
		return -1;
	snprintf(buf, sizeof(buf), "127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\t%s\n",
	         p->hostname);
	return write_file(NEWROOT "/etc/hosts", buf, err);
}

/* passwd and group naming the app's uid under root ("" or NEWROOT) */
static int write_users(const char *root, const struct mounts_params *p, struct dy_error **err)
{
	char buf[1024], path[64];
	snprintf(buf, sizeof(buf),
	         "root:x:0:0:root:/root:/usr/sbin/nologin\n"
	         "dyno:x:%u:%u:dyno:/app:/bin/bash\n"
	         "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
	         (unsigned)p->uid, (unsigned)p->gid);
	snprintf(path, sizeof(path), "%s/etc/passwd", root);
	if (write_file(path, buf, err) < 0)
		return -1;
	snprintf(buf, sizeof(buf), "root:x:0:\ndyno:x:%u:\nnogroup:x:65534:\n", (unsigned)p->gid);
	snprintf(path, sizeof(path), "%s/etc/group", root);
	return write_file(path, buf, err);
}

int mounts_etc_user(const struct mounts_params *p, struct dy_error **err)
{
	return write_users(NEWROOT, p, err);
}

int mounts_etc(const struct mounts_params *p, struct dy_error **err)
{
	if (mounts_etc_base(p, err) < 0)
		return -1;
	return mounts_etc_user(p, err);
}

/* /proc of a dyno, as Docker's defaults leave it: the files through which
 * uid 0 (the dyno's init is uid 0 inside) could act on the host are
 * read-only, those that leak host state are masked. The app's uid could not
 * write them anyway; this holds even if init were subverted. */
static int harden_proc(struct dy_error **err)
{
	static const char *const ro[] = {"bus", "fs", "irq", "sysrq-trigger", "acpi"};
	static const char *const masked[] = {"kcore",      "keys",        "latency_stats",
	                                     "timer_list", "sched_debug", "scsi"};
	char path[128];
	for (size_t i = 0; i < ELEMENTSOF(ro); i++) {
		struct stat st;
		snprintf(path, sizeof(path), NEWROOT "/proc/%s", ro[i]);
		if (lstat(path, &st) < 0)
			continue;
		if (do_mount(path, path, NULL, MS_BIND | MS_REC, NULL, err) < 0 ||
		    do_mount(NULL, path, NULL,
		             MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
		             NULL, err) < 0)
			return -1;
	}
	for (size_t i = 0; i < ELEMENTSOF(masked); i++) {
		struct stat st;
		snprintf(path, sizeof(path), NEWROOT "/proc/%s", masked[i]);
		if (lstat(path, &st) < 0)
			continue;
		int r = S_ISDIR(st.st_mode)
		            ? do_mount("dyno-mask", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV,
		                       "size=0", err)
		            : do_mount("/dev/null", path, NULL, MS_BIND, NULL, err);
		if (r < 0)
			return -1;
	}
	return 0;
}

static int setup_dev(struct dy_error **err)
{
	static const char *const nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
	if (mkdir_p(NEWROOT "/dev", 0755, err) < 0)
		return -1;
	if (do_mount("dyno-dev", NEWROOT "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC,
	             "mode=0755,size=64k", err) < 0)
		return -1;
	for (size_t i = 0; i < ELEMENTSOF(nodes); i++) {
		char src[64], dst[64];
		snprintf(src, sizeof(src), "/dev/%s", nodes[i]);
		snprintf(dst, sizeof(dst), NEWROOT "/dev/%s", nodes[i]);
		if (touch(dst, err) < 0)
			return -1;
		/* a bind of the host's node: mknod would need the devices cgroup
		 * to agree, a bind does not */
		if (do_mount(src, dst, NULL, MS_BIND, NULL, err) < 0)
			return -1;
	}
	if (mkdir_p(NEWROOT "/dev/pts", 0755, err) < 0 ||
	    do_mount("devpts", NEWROOT "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
	             "newinstance,ptmxmode=0666,mode=0620,max=64", err) < 0)
		return -1;
	if (symlink("pts/ptmx", NEWROOT "/dev/ptmx") < 0)
		return dy_error_errno(err, errno, "symlink /dev/ptmx");
	/* /dev/shm's tmpfs (sized by the dyno's quota) is mounted by
	 * mounts_app() */
	if (mkdir_p(NEWROOT "/dev/shm", 01777, err) < 0)
		return -1;
	static const char *const links[][2] = {{"/proc/self/fd", "fd"},
	                                       {"/proc/self/fd/0", "stdin"},
	                                       {"/proc/self/fd/1", "stdout"},
	                                       {"/proc/self/fd/2", "stderr"}};
	for (size_t i = 0; i < ELEMENTSOF(links); i++) {
		char dst[64];
		snprintf(dst, sizeof(dst), NEWROOT "/dev/%s", links[i][1]);
		if (symlink(links[i][0], dst) < 0)
			return dy_error_errno(err, errno, "symlink %s", dpath(dst));
	}
	return do_mount(NULL, NEWROOT "/dev", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC,
	                "mode=0755,size=64k", err);
}

/* cg_ctrl_str()'s names, here: dyno-init (static, without libcgroup)
 * links this file */
static const char *const ctrl_dirs[CG_N_CTRL] = {
    [CG_MEMORY] = "memory",
    [CG_PIDS] = "pids",
    [CG_CPU] = "cpu",
};

static int setup_cgroup(const struct mounts_params *p, struct dy_error **err)
{
	const struct cg *cg = p->cg;
	if (mkdir_p(NEWROOT "/sys/fs/cgroup", 0755, err) < 0)
		return -1;
	if (cg->ver[CG_MEMORY] == CG_V2 && cg->ver[CG_PIDS] == CG_V2 &&
	    (cg->ver[CG_CPU] == CG_V2 || cg->ver[CG_CPU] == CG_NONE)) {
		/* unified: the dyno's own cgroup directory is the whole tree */
		return bind_ro(cg->dir[CG_MEMORY], NEWROOT "/sys/fs/cgroup", true, err);
	}
	if (do_mount("cgroup", NEWROOT "/sys/fs/cgroup", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
	             "mode=0755,size=16k", err) < 0)
		return -1;
	for (int c = 0; c < CG_N_CTRL; c++) {
		if (!cg->dir[c])
			continue;
		char dst[128];
		snprintf(dst, sizeof(dst), NEWROOT "/sys/fs/cgroup/%s",
		         cg->ver[c] == CG_V2 ? "unified" : ctrl_dirs[c]);
		struct stat st;
		if (stat(dst, &st) == 0)
			continue; /* unified already bound */
		if (bind_ro(cg->dir[c], dst, true, err) < 0)
			return -1;
	}
	return do_mount(NULL, NEWROOT "/sys/fs/cgroup", NULL,
	                MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
	                "mode=0755,size=16k", err);
}

int mounts_base(struct dy_error **err)
{
	/* nothing we mount may propagate back to the host */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return dy_error_errno(err, errno, "make / rprivate");
	if (do_mount("dyno-root", NEWROOT, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=4m",
	             err) < 0)
		return -1;
	if (mkdir_p(NEWROOT "/.scratch", 0700, err) < 0 || mkdir_p(NEWROOT "/app", 0755, err) < 0 ||
	    mkdir_p(NEWROOT "/tmp", 01777, err) < 0)
		return -1;

	/* the stack */
	if (bind_ro("/usr", NEWROOT "/usr", true, err) < 0)
		return -1;
	for (size_t i = 0; i < ELEMENTSOF(merged_links); i++) {
		char src[64], dst[64], target[256];
		snprintf(src, sizeof(src), "/%s", merged_links[i]);
		snprintf(dst, sizeof(dst), NEWROOT "/%s", merged_links[i]);
		ssize_t n = readlink(src, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = '\0';
			if (symlink(target, dst) < 0)
				return dy_error_errno(err, errno, "symlink /%s", merged_links[i]);
			continue;
		}
		struct stat st;
		if (n < 0 && errno == EINVAL && stat(src, &st) == 0 && S_ISDIR(st.st_mode)) {
			/* an unmerged stack: bind the directory instead */
			if (bind_ro(src, dst, true, err) < 0)
				return -1;
		}
	}

	if (mkdir_p(NEWROOT "/proc", 0555, err) < 0 ||
	    do_mount("proc", NEWROOT "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, err) <
	        0)
		return -1;
	/* what is still writable for root in /proc is not for a dyno */
	if (do_mount(NEWROOT "/proc/sys", NEWROOT "/proc/sys", NULL, MS_BIND | MS_REC, NULL, err) <
	        0 ||
	    do_mount(NULL, NEWROOT "/proc/sys", NULL,
	             MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL,
	             err) < 0)
		return -1;
	if (harden_proc(err) < 0)
		return -1;
	if (setup_dev(err) < 0)
		return -1;
	if (mkdir_p(NEWROOT "/run", 0755, err) < 0 || mkdir_p(NEWROOT "/var/tmp", 01777, err) < 0)
		return -1;
	return 0;
}

/* The scratch tmpfs at dir, sized by the dyno's memory quota (its pages
 * are charged to the dyno's memcg): the overlay's upper layer (the app's)
 * and work directory, and /tmp. */
static int scratch(const char *dir, const struct mounts_params *p, struct dy_error **err)
{
	char opts[64], path[128];
	snprintf(opts, sizeof(opts), "mode=0700,size=%llu", (unsigned long long)p->tmpfs_size);
	if (do_mount("dyno-scratch", dir, "tmpfs", MS_NOSUID | MS_NODEV, opts, err) < 0)
		return -1;
	static const struct {
		const char *name;
		mode_t mode;
	} dirs[] = {{"upper", 0755}, {"work", 0700}, {"tmp", 01777}};
	for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, dirs[i].name);
		if (mkdir_p(path, dirs[i].mode, err) < 0)
			return -1;
	}
	snprintf(path, sizeof(path), "%s/upper", dir);
	if (chown(path, p->uid, p->gid) < 0)
		return dy_error_errno(err, errno, "chown /app upper layer");
	snprintf(path, sizeof(path), "%s/tmp", dir);
	if (chmod(path, 01777) < 0) /* past the umask */
		return dy_error_errno(err, errno, "chmod /tmp");
	return 0;
}

static int app_rest(const struct mounts_params *p, int slug_fd, int sink_fd, const int *bind_fds,
                    struct dy_error **err);

/* The host's paths of p, held by fds: the slug directory, the sink's
 * directory, a build dyno's binds (-1: none). */
struct app_fds {
	int slug, sink;
	int binds[LAUNCH_BINDS_MAX];
	size_t nbinds;
};

static void app_close(struct app_fds *f)
{
	if (f->slug >= 0)
		close(f->slug);
	if (f->sink >= 0)
		close(f->sink);
	for (size_t i = 0; i < f->nbinds; i++)
		close(f->binds[i]);
	f->slug = f->sink = -1;
	f->nbinds = 0;
}

static int app_open(const struct mounts_params *p, struct app_fds *f, struct dy_error **err)
{
	*f = (struct app_fds){.slug = -1, .sink = -1};
	/* opened here, in the dyno's mount namespace, so that the slug's
	 * mount is one of this namespace (overlayfs clones the lower layer's
	 * mount and refuses one of another namespace) */
	f->slug = open(p->slug_dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (f->slug < 0)
		return dy_error_errno(err, errno, "open the slug directory %s", p->slug_dir);
	if (p->sink_dir) {
		f->sink = open(p->sink_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (f->sink < 0) {
			int r = dy_error_errno(err, errno, "open the log sink directory %s",
			                       p->sink_dir);
			app_close(f);
			return r;
		}
	}
	for (; f->nbinds < p->nbinds && f->nbinds < LAUNCH_BINDS_MAX; f->nbinds++) {
		const struct launch_bind *b = &p->binds[f->nbinds];
		int r = 0;
		if (b->dst[0] != '/' || strstr(b->dst, ".."))
			r = dy_error(err, "bind %s: not an absolute path", b->dst);
		else if ((f->binds[f->nbinds] = open(b->src, O_PATH | O_NOFOLLOW | O_CLOEXEC)) < 0)
			r = dy_error_errno(err, errno, "open %s (for %s)", b->src, b->dst);
		if (r < 0) {
			app_close(f);
			return r;
		}
	}
	return 0;
}

static int app_rest(const struct mounts_params *p, int slug_fd, int sink_fd, const int *bind_fds,
                    struct dy_error **err);

int mounts_app(const struct mounts_params *p, struct dy_error **err)
{
	struct app_fds f;
	if (app_open(p, &f, err) < 0)
		return -1;
	int r = app_rest(p, f.slug, f.sink, f.binds, err);
	app_close(&f);
	return r;
}

static int app_rest(const struct mounts_params *p, int slug_fd, int sink_fd, const int *bind_fds,
                    struct dy_error **err)
{
	char opts[512];
	/* scratch: the overlay's upper layer and /tmp, in one tmpfs sized by
	 * the dyno's memory quota (its pages are charged to the dyno's memcg) */
	if (scratch(NEWROOT "/.scratch", p, err) < 0)
		return -1;

	if (p->app_rw) {
		char src[64];
		snprintf(src, sizeof(src), "/proc/self/fd/%d", slug_fd);
		if (bind_rw(src, NEWROOT "/app", err) < 0)
			return -1;
	} else {
		/* through /proc's magic link to the fd opened above */
		snprintf(opts, sizeof(opts),
		         "lowerdir=/proc/self/fd/%d,upperdir=" NEWROOT
		         "/.scratch/upper,workdir=" NEWROOT "/.scratch/work",
		         slug_fd);
		if (do_mount("dyno-app", NEWROOT "/app", "overlay", MS_NOSUID | MS_NODEV, opts,
		             err) < 0)
			return -1;
	}
	if (do_mount(NEWROOT "/.scratch/tmp", NEWROOT "/tmp", NULL, MS_BIND, NULL, err) < 0)
		return -1;
	snprintf(opts, sizeof(opts), "mode=1777,size=%llu", (unsigned long long)p->tmpfs_size);
	if (do_mount("shm", NEWROOT "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, opts, err) < 0)
		return -1;
	if (p->sink_dir) {
		/* a bind, not an fd: an fd of a host directory held by init
		 * (uid 0) would lead out of the new root through "..", a
		 * mount's root does not. Read-only: connect() to a socket
		 * needs no write access to its file system.
		 * Not recursive: no mount under the directory comes along (the
		 * launcher checks it holds nothing but sockets). */
		char src[64];
		snprintf(src, sizeof(src), "/proc/self/fd/%d", sink_fd);
		if (mkdir_p(NEWROOT MOUNTS_SINK_DIR, 0700, err) < 0)
			return -1;
		if (chmod(NEWROOT "/.init", 0700) < 0)
			return dy_error_errno(err, errno, "chmod /.init");
		if (do_mount(src, NEWROOT MOUNTS_SINK_DIR, NULL, MS_BIND, NULL, err) < 0)
			return -1;
		if (do_mount(NULL, NEWROOT MOUNTS_SINK_DIR, NULL,
		             MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
		             NULL, err) < 0)
			return -1;
	}
	return mount_binds(p, bind_fds, err);
}

int mounts_prepare(const struct mounts_params *p, struct dy_error **err)
{
	/* the host's paths first: they may sit under NEWROOT, which the new
	 * root's tmpfs covers */
	struct app_fds f;
	if (app_open(p, &f, err) < 0)
		return -1;
	int r = mounts_base(err);
	if (r == 0)
		r = app_rest(p, f.slug, f.sink, f.binds, err);
	app_close(&f);
	return r;
}

int mounts_cgroup(const struct mounts_params *p, struct dy_error **err)
{
	return setup_cgroup(p, err);
}

int mounts_finish(const struct mounts_params *p, struct dy_error **err)
{
	if (setup_cgroup(p, err) < 0)
		return -1;
	return mounts_pivot(err);
}

/* pivot_root(".", "."): the old root ends stacked under the new one and
 * is detached at once (pivot_root(2), NOTES) */
static int pivot(struct dy_error **err)
{
	if (chdir(NEWROOT) < 0)
		return dy_error_errno(err, errno, "chdir to the new root");
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return dy_error_errno(err, errno, "pivot_root");
	if (umount2(".", MNT_DETACH) < 0)
		return dy_error_errno(err, errno, "detach the host's root");
	if (chdir("/") < 0)
		return dy_error_errno(err, errno, "chdir /");
	return 0;
}

int mounts_pivot(struct dy_error **err)
{
	if (do_mount(NULL, NEWROOT, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV,
	             "mode=0755,size=4m", err) < 0)
		return -1;

	if (pivot(err) < 0)
		return -1;
	/* the scratch tmpfs stays referenced by /app and /tmp only */
	if (umount2("/.scratch", MNT_DETACH) < 0)
		return dy_error_errno(err, errno, "detach /.scratch");
	return 0;
}

/* A pooled dyno's own directories: its slug, sink and scratch tmpfs stay
 * mounted there, in a 0700 directory of root's the app cannot enter
 * (nothing is unmounted at take: a detach waits for an RCU grace period,
 * milliseconds on a busy host). */
#define POOL_SLUG    "/.init/slug"
#define POOL_SCRATCH "/.init/scratch"

int mounts_pool_pivot(struct dy_error **err)
{
	if (mkdir_p(NEWROOT POOL_SLUG, 0700, err) < 0 ||
	    mkdir_p(NEWROOT POOL_SCRATCH, 0700, err) < 0 ||
	    mkdir_p(NEWROOT MOUNTS_SINK_DIR, 0700, err) < 0)
		return -1;
	if (chmod(NEWROOT "/.init", 0700) < 0)
		return dy_error_errno(err, errno, "chmod /.init");
	if (touch(NEWROOT "/etc/passwd", err) < 0 || touch(NEWROOT "/etc/group", err) < 0)
		return -1;
	return pivot(err);
}

/* A detached mount (open_tree(OPEN_TREE_CLONE) of the launcher's) onto
 * dst. */
static int attach(int fd, const char *dst, struct dy_error **err)
{
	if (syscall(SYS_move_mount, fd, "", AT_FDCWD, dst, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return dy_error_errno(err, errno, "mount %s", dst);
	return 0;
}

int mounts_pool_take(const struct mounts_params *p, int slug_fd, int sink_fd, struct dy_error **err)
{
	char opts[512];
	if (attach(slug_fd, POOL_SLUG, err) < 0)
		return -1;
	if (sink_fd >= 0 && attach(sink_fd, MOUNTS_SINK_DIR, err) < 0)
		return -1;
	if (scratch(POOL_SCRATCH, p, err) < 0)
		return -1;
	if (do_mount("dyno-app", "/app", "overlay", MS_NOSUID | MS_NODEV,
	             "lowerdir=" POOL_SLUG ",upperdir=" POOL_SCRATCH "/upper,workdir=" POOL_SCRATCH
	             "/work",
	             err) < 0)
		return -1;
	if (do_mount(POOL_SCRATCH "/tmp", "/tmp", NULL, MS_BIND, NULL, err) < 0)
		return -1;
	snprintf(opts, sizeof(opts), "mode=1777,size=%llu", (unsigned long long)p->tmpfs_size);
	if (do_mount("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, opts, err) < 0)
		return -1;
	if (write_users("", p, err) < 0)
		return -1;
	return do_mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV,
	                "mode=0755,size=4m", err);
}
