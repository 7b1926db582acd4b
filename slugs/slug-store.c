#include "slugs/slug-store.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "slugs/slug-fs.h"

static int valid_id(const char *id)
{
	size_t n = 0;
	for (; id[n]; n++)
		if (!((id[n] >= '0' && id[n] <= '9') || (id[n] >= 'a' && id[n] <= 'f')))
			return 0;
	return n == DY_SHA256_HEX_LEN;
}

int slug_store_path(const char *state_dir, const char *id, char **ret, struct dy_error **err)
{
	if (!valid_id(id))
		return dy_error(err, "invalid slug id \"%.80s\": expected 64 hex digits", id);
	if (asprintf(ret, "%s/slugs/%s.slug", state_dir, id) < 0)
		return dy_error_errno(err, ENOMEM, "slug path");
	return 0;
}

int slug_store_put_fd(const char *state_dir, int fd, const struct slug_limits *limits,
                      struct slug_info *ret_info, struct dy_error **err)
{
	_cleanup_free_ char *dir = NULL, *tmp = NULL, *final = NULL;
	if (asprintf(&dir, "%s/slugs", state_dir) < 0)
		return dy_error_errno(err, ENOMEM, "store");
	if (dy_mkdir_p(dir, 0700, err) < 0)
		return -1;
	if (asprintf(&tmp, "%s/upload.tmp-XXXXXX", dir) < 0)
		return dy_error_errno(err, ENOMEM, "store");
	_cleanup_close_ int tfd = mkostemp(tmp, O_CLOEXEC);
	if (tfd < 0)
		return dy_error_errno(err, errno, "create %s", tmp);

	uint64_t max = limits ? limits->max_compressed : SLUG_DEFAULT_MAX_COMPRESSED;
	uint64_t total = 0;
	_cleanup_free_ char *buf = malloc(256 * 1024);
	int r = 0;
	if (buf == NULL)
		r = dy_error_errno(err, ENOMEM, "store");
	while (r == 0) {
		ssize_t n = read(fd, buf, 256 * 1024);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = dy_error_errno(err, errno, "read slug");
			break;
		}
		if (n == 0)
			break;
		total += (uint64_t)n;
		if (total > max) {
			r = dy_error(err, "slug is over the limit of %llu bytes",
			             (unsigned long long)max);
			break;
		}
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(tfd, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				r = dy_error_errno(err, errno, "write %s", tmp);
				break;
			}
			off += w;
		}
	}
	if (r == 0 && fsync(tfd) < 0)
		r = dy_error_errno(err, errno, "fsync %s", tmp);
	struct slug_info info = {0};
	if (r == 0)
		r = slug_inspect(tmp, limits, &info, err);
	if (r == 0 && asprintf(&final, "%s/%s.slug", dir, info.id) < 0)
		r = dy_error_errno(err, ENOMEM, "store");
	if (r == 0 && fchmod(tfd, SLUG_STORE_FILE_MODE) < 0)
		r = dy_error_errno(err, errno, "chmod %s", tmp);
	if (r == 0 && rename(tmp, final) < 0)
		r = dy_error_errno(err, errno, "rename %s", final);
	if (r == 0)
		dy_fsync_dir(dir, NULL);
	if (r < 0) {
		unlink(tmp);
		slug_info_clear(&info);
		return r;
	}
	if (ret_info)
		*ret_info = info;
	else
		slug_info_clear(&info);
	return 0;
}

int slug_store_put(const char *state_dir, const char *file, const struct slug_limits *limits,
                   struct slug_info *ret_info, struct dy_error **err)
{
	_cleanup_close_ int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return dy_error_errno(err, errno, "open %s", file);
	return slug_store_put_fd(state_dir, fd, limits, ret_info, err);
}

int slug_store_unpack(const char *state_dir, const char *id, const char *app, uid_t uid, gid_t gid,
                      const struct slug_limits *limits, char **ret_dir, struct dy_error **err)
{
	_cleanup_free_ char *src = NULL, *parent = NULL, *dir = NULL;
	if (slug_store_path(state_dir, id, &src, err) < 0)
		return -1;
	for (const char *c = app; *c; c++)
		if (*c == '/' || (c == app && *c == '.'))
			return dy_error(err, "invalid app name \"%s\"", app);
	if (asprintf(&parent, "%s/apps/%s/slugs", state_dir, app) < 0 ||
	    asprintf(&dir, "%s/%s", parent, id) < 0)
		return dy_error_errno(err, ENOMEM, "store");
	struct stat st;
	if (lstat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
		*ret_dir = TAKE_PTR(dir);
		return 0; /* unpacked once, reused */
	}
	if (dy_dir_mode(parent, 0700, err) < 0)
		return -1;
	struct slug_unpack_opts opts = {.chown = true, .uid = uid, .gid = gid};
	if (limits)
		opts.limits = *limits;
	else
		slug_limits_default(&opts.limits);
	if (slug_unpack(src, dir, &opts, NULL, err) < 0)
		return -1;
	dy_fsync_dir(parent, NULL);
	*ret_dir = TAKE_PTR(dir);
	return 0;
}

static int sweep_dir(const char *path)
{
	DIR *d = opendir(path);
	if (d == NULL)
		return 0;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if ((de->d_name[0] == '.' && strstr(de->d_name, ".unpack-") != NULL) ||
		    strstr(de->d_name, ".tmp-") != NULL) {
			if (slug_fs_remove_tree(dirfd(d), de->d_name) == 0)
				n++;
		}
	}
	closedir(d);
	return n;
}

int slug_store_sweep(const char *state_dir)
{
	_cleanup_free_ char *slugs = NULL, *apps = NULL;
	if (asprintf(&slugs, "%s/slugs", state_dir) < 0 ||
	    asprintf(&apps, "%s/apps", state_dir) < 0)
		return 0;
	int n = sweep_dir(slugs);
	DIR *d = opendir(apps);
	if (d == NULL)
		return n;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		char *p = NULL;
		if (asprintf(&p, "%s/%s/slugs", apps, de->d_name) >= 0) {
			n += sweep_dir(p);
			free(p);
		}
	}
	closedir(d);
	return n;
}
