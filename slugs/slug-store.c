#include "slugs/slug-store.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fs.h"
#include "slugs/slug-disk.h"
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

/* Serializes what changes the store's names: a put's rename (and its
 * meta) against the removal of an unreferenced slug, which run on
 * different worker threads. */
static pthread_mutex_t store_mu = PTHREAD_MUTEX_INITIALIZER;

static int meta_path(const char *state_dir, const char *id, char **ret)
{
	return asprintf(ret, "%s/slugs/%s.meta", state_dir, id) < 0 ? -ENOMEM : 0;
}

/* "dyno-slug-meta 1 <size> <unpacked> <entries> <compression>\n" then the
 * Procfile, one "name: command" a line. */
static int meta_write(const char *state_dir, const char *id, const struct slug_info *info,
                      struct dy_error **err)
{
	_cleanup_free_ char *path = NULL, *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (f == NULL || meta_path(state_dir, id, &path) < 0) {
		if (f)
			fclose(f);
		return dy_error_errno(err, ENOMEM, "slug %.7s: meta", id);
	}
	fprintf(f, "dyno-slug-meta 1 %llu %llu %llu %s\n", (unsigned long long)info->size,
	        (unsigned long long)info->unpacked_size, (unsigned long long)info->entries,
	        info->compression[0] ? info->compression : "none");
	for (size_t i = 0; info->procfile && i < info->procfile->n; i++)
		fprintf(f, "%s: %s\n", info->procfile->entries[i].name,
		        info->procfile->entries[i].command);
	if (fclose(f) != 0)
		return dy_error_errno(err, ENOMEM, "slug %.7s: meta", id);
	struct dy_error *e = NULL;
	if (dy_write_file_atomic(path, text, len, SLUG_STORE_FILE_MODE, &e) < 0) {
		int errnum = e ? e->errnum : EIO;
		dy_error_free(&e);
		return dy_error_errno(err, errnum, "slug %.7s: write its meta file", id);
	}
	return 0;
}

static int meta_read(const char *state_dir, const char *id, struct slug_info *info)
{
	_cleanup_free_ char *path = NULL;
	if (meta_path(state_dir, id, &path) < 0)
		return -ENOMEM;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	char buf[PROCFILE_MAX_BYTES + 256];
	size_t len = 0;
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0 || (len += (size_t)n) == sizeof(buf) - 1)
			break;
	}
	buf[len] = '\0';
	unsigned long long size, unpacked, entries;
	char comp[16];
	int used = 0;
	if (sscanf(buf, "dyno-slug-meta 1 %llu %llu %llu %15s\n%n", &size, &unpacked, &entries,
	           comp, &used) != 4 ||
	    used == 0)
		return -EINVAL;
	memset(info, 0, sizeof(*info));
	if (procfile_parse(buf + used, len - (size_t)used, &info->procfile, NULL) < 0)
		return -EINVAL;
	info->size = size;
	info->unpacked_size = unpacked;
	info->entries = entries;
	snprintf(info->compression, sizeof(info->compression), "%s", comp);
	return 0;
}

static bool is_app_name(const char *app);

/* Copies the upload at fd into tfd. Returns 0 or < 0. */
static int copy_upload(int fd, int tfd, uint64_t max, struct dy_error **err)
{
	_cleanup_free_ char *buf = malloc(256 * 1024);
	if (buf == NULL)
		return dy_error_errno(err, ENOMEM, "store");
	uint64_t total = 0;
	for (;;) {
		ssize_t n = read(fd, buf, 256 * 1024);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return dy_error_errno(err, errno, "read the upload");
		if (n == 0)
			return 0;
		total += (uint64_t)n;
		if (total > max)
			return dy_error(err, "slug is over the limit of %llu bytes",
			                (unsigned long long)max);
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(tfd, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return dy_error_errno(err, errno,
				                      "write the upload to the slug store");
			off += w;
		}
	}
}

/* An upload that is an unnamed file (the API's O_TMPFILE, read from its
 * start) on the store's filesystem is given a name in dir (*ret_tmp)
 * instead of being copied. Returns a new fd of it, or -1 to copy (also
 * on failure: *r stays 0), or -1 with *r < 0 for an upload over max. */
static int link_upload(int fd, const char *dir, uint64_t max, char **ret_tmp, int *r,
                       struct dy_error **err)
{
	static unsigned seq;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 0 ||
	    lseek(fd, 0, SEEK_CUR) != 0)
		return -1;
	if ((uint64_t)st.st_size > max) {
		*r = dy_error(err, "slug is over the limit of %llu bytes", (unsigned long long)max);
		return -1;
	}
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (asprintf(ret_tmp, "%s/upload.tmp-%d-%u", dir, (int)getpid(),
	             __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED)) < 0) {
		*ret_tmp = NULL;
		return -1;
	}
	int tfd = -1;
	if (linkat(AT_FDCWD, proc, AT_FDCWD, *ret_tmp, AT_SYMLINK_FOLLOW) == 0) {
		tfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
		if (tfd < 0)
			unlink(*ret_tmp);
	}
	if (tfd < 0) {
		free(*ret_tmp);
		*ret_tmp = NULL;
	}
	return tfd;
}

/* The temporary directory an upload is unpacked into as it is checked,
 * beside the app's trees: removed by slug_store_sweep() if left. */
struct put_tree {
	char *parent; /* apps/<app>/slugs */
	char *tmp;    /* parent/.upload.unpack-XXXXXX */
	int fd;
};

/* Makes the temporary directory; on any failure, the upload is only
 * checked (the deploy unpacks it). */
static void put_tree_open(struct put_tree *t, const char *state_dir, const char *app)
{
	t->fd = -1;
	if (!is_app_name(app) || asprintf(&t->parent, "%s/apps/%s/slugs", state_dir, app) < 0) {
		t->parent = NULL;
		return;
	}
	if (dy_dir_mode(t->parent, 0700, NULL) < 0 ||
	    asprintf(&t->tmp, "%s/.upload.unpack-XXXXXX", t->parent) < 0) {
		t->tmp = NULL;
		return;
	}
	if (mkdtemp(t->tmp) == NULL) {
		free(t->tmp);
		t->tmp = NULL;
		return;
	}
	t->fd = open(t->tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* Renames the complete tree to parent/<id> (an existing one is kept as
 * it is). Returns true when <id> is there. */
static bool put_tree_keep(struct put_tree *t, const struct slug_store_app_tree *at, const char *id)
{
	_cleanup_free_ char *dir = NULL;
	if (fchown(t->fd, at->uid, at->gid) < 0 || fchmod(t->fd, 0755) < 0 ||
	    asprintf(&dir, "%s/%s", t->parent, id) < 0)
		return false;
	if (renameat2(AT_FDCWD, t->tmp, AT_FDCWD, dir, RENAME_NOREPLACE) < 0)
		return errno == EEXIST;
	free(t->tmp);
	t->tmp = NULL; /* renamed: nothing to remove */
	dy_fsync_dir(t->parent, NULL);
	return true;
}

static void put_tree_close(struct put_tree *t)
{
	if (t->fd >= 0)
		close(t->fd);
	if (t->tmp)
		slug_fs_remove_tree(AT_FDCWD, t->tmp);
	free(t->tmp);
	free(t->parent);
}

int slug_store_put_fd_checked(const char *state_dir, int fd, const struct slug_limits *limits,
                              slug_store_check_fn check, void *arg, struct slug_info *ret_info,
                              struct dy_error **err)
{
	return slug_store_put_fd_unpack(state_dir, fd, limits, check, arg, NULL, ret_info, NULL,
	                                err);
}

int slug_store_put_fd_unpack(const char *state_dir, int fd, const struct slug_limits *limits,
                             slug_store_check_fn check, void *arg,
                             const struct slug_store_app_tree *app_tree, struct slug_info *ret_info,
                             bool *ret_unpacked, struct dy_error **err)
{
	if (ret_unpacked)
		*ret_unpacked = false;
	_cleanup_free_ char *dir = NULL, *tmp = NULL, *final = NULL;
	if (asprintf(&dir, "%s/slugs", state_dir) < 0)
		return dy_error_errno(err, ENOMEM, "store");
	struct dy_error *e = NULL;
	if (dy_mkdir_p(dir, 0700, &e) < 0) {
		int errnum = e ? e->errnum : EIO;
		dy_error_free(&e);
		return dy_error_errno(err, errnum, "create the slug store");
	}
	uint64_t max = limits ? limits->max_compressed : SLUG_DEFAULT_MAX_COMPRESSED;
	int r = 0;
	_cleanup_close_ int tfd = link_upload(fd, dir, max, &tmp, &r, err);
	if (r < 0)
		return r;
	if (tfd < 0) {
		if (asprintf(&tmp, "%s/upload.tmp-XXXXXX", dir) < 0)
			return dy_error_errno(err, ENOMEM, "store");
		tfd = mkostemp(tmp, O_CLOEXEC);
		if (tfd < 0)
			return dy_error_errno(err, errno,
			                      "create a file for the upload in the slug store");
		r = copy_upload(fd, tfd, max, err);
	}
	if (r == 0 && fsync(tfd) < 0)
		r = dy_error_errno(err, errno, "fsync the upload");
	struct slug_info info = {0};
	if (r == 0 && lseek(tfd, 0, SEEK_SET) < 0)
		r = dy_error_errno(err, errno, "read the upload");
	struct put_tree tree = {.fd = -1};
	bool complete = false;
	if (r == 0 && app_tree)
		put_tree_open(&tree, state_dir, app_tree->app);
	if (r == 0 && tree.fd >= 0) {
		/* checked and unpacked in one pass: the slug is decompressed once */
		struct slug_unpack_opts o = {
		    .chown = true, .uid = app_tree->uid, .gid = app_tree->gid};
		if (limits)
			o.limits = *limits;
		else
			slug_limits_default(&o.limits);
		r = slug_check_unpack_fd(tfd, tree.fd, &o, app_tree->write_limit, &info, &complete,
		                         err);
	} else if (r == 0) {
		r = slug_inspect_fd(tfd, limits, &info, err);
	}
	if (r == 0 && check)
		r = check(&info, arg, err);
	if (r == 0 && asprintf(&final, "%s/%s.slug", dir, info.id) < 0)
		r = dy_error_errno(err, ENOMEM, "store");
	if (r == 0 && fchmod(tfd, SLUG_STORE_FILE_MODE) < 0)
		r = dy_error_errno(err, errno, "chmod the upload");
	if (r == 0) {
		pthread_mutex_lock(&store_mu);
		if (rename(tmp, final) < 0)
			r = dy_error_errno(err, errno, "store slug %.7s", info.id);
		if (r == 0)
			r = meta_write(state_dir, info.id, &info, err);
		pthread_mutex_unlock(&store_mu);
	}
	if (r == 0)
		dy_fsync_dir(dir, NULL);
	if (r == 0 && complete && put_tree_keep(&tree, app_tree, info.id) && ret_unpacked)
		*ret_unpacked = true;
	put_tree_close(&tree);
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

int slug_store_put_fd(const char *state_dir, int fd, const struct slug_limits *limits,
                      struct slug_info *ret_info, struct dy_error **err)
{
	return slug_store_put_fd_checked(state_dir, fd, limits, NULL, NULL, ret_info, err);
}

int slug_store_meta(const char *state_dir, const char *id, const struct slug_limits *limits,
                    struct slug_info *ret_info, struct dy_error **err)
{
	_cleanup_free_ char *src = NULL;
	if (slug_store_path(state_dir, id, &src, err) < 0)
		return -1;
	if (meta_read(state_dir, id, ret_info) == 0)
		return 0;
	/* stored before meta files existed (or the file is damaged): read
	 * the slug again, once */
	_cleanup_close_ int fd = open(src, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT)
			return dy_error_as(err, DY_E_NOT_FOUND,
			                   "slug %s not found (upload it first)", id);
		return dy_error_errno(err, errno, "open slug %.7s", id);
	}
	struct slug_info info = {0};
	if (slug_inspect_fd(fd, limits, &info, err) < 0)
		return dy_error_prefix(err, "slug %.7s", id);
	pthread_mutex_lock(&store_mu);
	struct dy_error *e = NULL;
	if (meta_write(state_dir, id, &info, &e) < 0)
		dy_error_free(&e); /* read again next time */
	pthread_mutex_unlock(&store_mu);
	*ret_info = info;
	return 0;
}

static bool is_app_name(const char *app)
{
	if (app[0] == '\0' || app[0] == '.')
		return false;
	return strchr(app, '/') == NULL;
}

int slug_store_mark_upload(const char *state_dir, const char *app, const char *id,
                           struct dy_error **err)
{
	if (!valid_id(id) || !is_app_name(app))
		return dy_error(err, "invalid app or slug id");
	_cleanup_free_ char *parent = NULL, *mark = NULL;
	if (asprintf(&parent, "%s/apps/%s/slugs", state_dir, app) < 0 ||
	    asprintf(&mark, "%s/.upload-%s", parent, id) < 0)
		return dy_error_errno(err, ENOMEM, "store");
	struct dy_error *e = NULL;
	if (dy_dir_mode(parent, 0700, &e) < 0) {
		int errnum = e ? e->errnum : EIO;
		dy_error_free(&e);
		return dy_error_errno(err, errnum, "app %s: create its slugs directory", app);
	}
	_cleanup_close_ int fd =
	    open(mark, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, SLUG_STORE_FILE_MODE);
	if (fd < 0 || futimens(fd, NULL) < 0)
		return dy_error_errno(err, errno, "app %s: record the upload of slug %.7s", app,
		                      id);
	return 0;
}

/* Calls fn for each upload mark of app's slugs directory d. */
static void each_mark(DIR *d, void (*fn)(const char *id, const struct stat *st, void *arg),
                      void *arg)
{
	struct dirent *de;
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, ".upload-", 8) != 0 || !valid_id(de->d_name + 8))
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
			fn(de->d_name + 8, &st, arg);
	}
}

struct id_set {
	char (*ids)[DY_SHA256_HEX_LEN + 1];
	size_t n, cap;
};

static void id_set_add(struct id_set *s, const char *id)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->ids[i], id) == 0)
			return;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 16;
		void *p = realloc(s->ids, cap * sizeof(*s->ids));
		if (p == NULL)
			return; /* counted short: the next count retries */
		s->ids = p;
		s->cap = cap;
	}
	snprintf(s->ids[s->n++], DY_SHA256_HEX_LEN + 1, "%s", id);
}

static void add_mark(const char *id, const struct stat *st, void *arg)
{
	(void)st;
	id_set_add(arg, id);
}

/* The bytes of the unpacked trees in parent named by none of set's ids. */
static uint64_t spare_trees(const char *parent, const struct id_set *set)
{
	DIR *d = opendir(parent);
	if (d == NULL)
		return 0;
	uint64_t total = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!valid_id(de->d_name))
			continue;
		bool named = false;
		for (size_t i = 0; i < set->n && !named; i++)
			named = strcmp(set->ids[i], de->d_name) == 0;
		_cleanup_free_ char *p = NULL;
		uint64_t u = 0;
		if (!named && asprintf(&p, "%s/%s", parent, de->d_name) >= 0 &&
		    slug_disk_usage(p, &u, NULL) == 0)
			total = slug_disk_add(total, u);
	}
	closedir(d);
	return total;
}

int slug_store_app_usage(const char *state_dir, const char *app, const char *const *ids, size_t n,
                         uint64_t *ret, struct dy_error **err)
{
	return slug_store_app_usage_ex(state_dir, app, ids, n, ret, NULL, err);
}

int slug_store_app_usage_ex(const char *state_dir, const char *app, const char *const *ids,
                            size_t n, uint64_t *ret, uint64_t *ret_spare, struct dy_error **err)
{
	_cleanup_free_ char *parent = NULL;
	if (!is_app_name(app))
		return dy_error(err, "invalid app name \"%s\"", app);
	if (asprintf(&parent, "%s/apps/%s/slugs", state_dir, app) < 0)
		return dy_error_errno(err, ENOMEM, "store");
	uint64_t total = 0;
	if (slug_disk_usage(parent, &total, err) < 0)
		return dy_error_prefix(err, "app %s", app);
	struct id_set set = {0};
	for (size_t i = 0; i < n; i++)
		if (ids[i] && valid_id(ids[i]))
			id_set_add(&set, ids[i]);
	if (ret_spare)
		*ret_spare = spare_trees(parent, &set);
	DIR *d = opendir(parent);
	if (d) {
		each_mark(d, add_mark, &set);
		closedir(d);
	}
	for (size_t i = 0; i < set.n; i++) {
		_cleanup_free_ char *path = NULL;
		struct stat st;
		if (slug_store_path(state_dir, set.ids[i], &path, NULL) == 0 &&
		    stat(path, &st) == 0)
			total = slug_disk_add(total, (uint64_t)st.st_blocks * 512);
	}
	free(set.ids);
	*ret = total;
	return 0;
}

static void drop_old_mark(const char *id, const struct stat *st, void *arg)
{
	int dfd = *(int *)arg;
	char name[DY_SHA256_HEX_LEN + 16];
	if (time(NULL) - st->st_mtime <= SLUG_STORE_UPLOAD_GRACE_SEC)
		return;
	snprintf(name, sizeof(name), ".upload-%s", id);
	unlinkat(dfd, name, 0);
}

int slug_store_remove_trees(const char *state_dir, const char *app, const char *const *keep,
                            size_t nkeep)
{
	_cleanup_free_ char *parent = NULL;
	if (!is_app_name(app) || asprintf(&parent, "%s/apps/%s/slugs", state_dir, app) < 0)
		return 0;
	return slug_disk_remove_trees(parent, keep, nkeep);
}

struct fresh_upload {
	struct id_set *keep;
	const char *const *released;
	size_t nreleased;
};

/* A tree unpacked by its upload is kept for its deploy: while the mark
 * is fresh and no release uses the slug yet. */
static void keep_fresh_upload(const char *id, const struct stat *st, void *arg)
{
	struct fresh_upload *f = arg;
	if (time(NULL) - st->st_mtime > SLUG_STORE_UPLOAD_GRACE_SEC)
		return;
	for (size_t i = 0; i < f->nreleased; i++)
		if (f->released[i] && strcmp(f->released[i], id) == 0)
			return;
	id_set_add(f->keep, id);
}

int slug_store_gc_app(const char *state_dir, const char *app, const char *const *keep, size_t nkeep,
                      const char *const *released, size_t nreleased)
{
	_cleanup_free_ char *parent = NULL;
	if (!is_app_name(app) || asprintf(&parent, "%s/apps/%s/slugs", state_dir, app) < 0)
		return 0;
	struct id_set set = {0};
	for (size_t i = 0; i < nkeep; i++)
		if (keep[i] && valid_id(keep[i]))
			id_set_add(&set, keep[i]);
	struct fresh_upload f = {.keep = &set, .released = released, .nreleased = nreleased};
	DIR *d = opendir(parent);
	if (d) {
		each_mark(d, keep_fresh_upload, &f);
		closedir(d);
	}
	_cleanup_free_ const char **ids = calloc(set.n ? set.n : 1, sizeof(*ids));
	int n = 0;
	if (ids) {
		for (size_t i = 0; i < set.n; i++)
			ids[i] = set.ids[i];
		n = slug_disk_remove_trees(parent, ids, set.n);
	}
	free(set.ids);
	d = opendir(parent);
	if (d) {
		int dfd = dirfd(d);
		each_mark(d, drop_old_mark, &dfd);
		closedir(d);
	}
	return n;
}

static void add_fresh_mark(const char *id, const struct stat *st, void *arg)
{
	if (time(NULL) - st->st_mtime <= SLUG_STORE_UPLOAD_GRACE_SEC)
		id_set_add(arg, id);
}

int slug_store_gc(const char *state_dir, const char *const *referenced, size_t n)
{
	_cleanup_free_ char *slugs = NULL, *apps = NULL;
	if (asprintf(&slugs, "%s/slugs", state_dir) < 0 ||
	    asprintf(&apps, "%s/apps", state_dir) < 0)
		return 0;
	/* what must stay: the releases' slugs and every recent upload */
	struct id_set keep = {0};
	for (size_t i = 0; i < n; i++)
		if (referenced[i] && valid_id(referenced[i]))
			id_set_add(&keep, referenced[i]);
	DIR *ad = opendir(apps);
	if (ad) {
		struct dirent *de;
		while ((de = readdir(ad)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			_cleanup_free_ char *p = NULL;
			if (asprintf(&p, "%s/%s/slugs", apps, de->d_name) < 0)
				continue;
			DIR *d = opendir(p);
			if (d) {
				each_mark(d, add_fresh_mark, &keep);
				closedir(d);
			}
		}
		closedir(ad);
	}
	int removed = 0;
	DIR *d = opendir(slugs);
	if (d == NULL) {
		free(keep.ids);
		return 0;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);
		if (len != DY_SHA256_HEX_LEN + 5 ||
		    strcmp(de->d_name + DY_SHA256_HEX_LEN, ".slug") != 0)
			continue;
		char id[DY_SHA256_HEX_LEN + 1];
		snprintf(id, sizeof(id), "%.*s", DY_SHA256_HEX_LEN, de->d_name);
		if (!valid_id(id))
			continue;
		bool kept = false;
		for (size_t i = 0; i < keep.n && !kept; i++)
			kept = strcmp(keep.ids[i], id) == 0;
		if (kept)
			continue;
		char meta[DY_SHA256_HEX_LEN + 6];
		snprintf(meta, sizeof(meta), "%s.meta", id);
		/* under the lock: a put of the same slug renames a new file in
		 * (with a new mtime) either before this stat or after the
		 * unlink, never between */
		pthread_mutex_lock(&store_mu);
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    time(NULL) - st.st_mtime > SLUG_STORE_UPLOAD_GRACE_SEC &&
		    unlinkat(dirfd(d), de->d_name, 0) == 0) {
			unlinkat(dirfd(d), meta, 0);
			removed++;
		}
		pthread_mutex_unlock(&store_mu);
	}
	closedir(d);
	free(keep.ids);
	return removed;
}

int slug_store_put(const char *state_dir, const char *file, const struct slug_limits *limits,
                   struct slug_info *ret_info, struct dy_error **err)
{
	_cleanup_close_ int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return dy_error_errno(err, errno, "open %s", file);
	return slug_store_put_fd(state_dir, fd, limits, ret_info, err);
}

int slug_store_tree(const char *state_dir, const char *id, const char *app, char **ret,
                    struct dy_error **err)
{
	if (!valid_id(id))
		return dy_error(err, "invalid slug id \"%.80s\": expected 64 hex digits", id);
	if (!is_app_name(app))
		return dy_error(err, "invalid app name \"%s\"", app);
	if (asprintf(ret, "%s/apps/%s/slugs/%s", state_dir, app, id) < 0)
		return dy_error_errno(err, ENOMEM, "store");
	return 0;
}

int slug_store_unpack_ex(const char *state_dir, const char *id, const char *app, uid_t uid,
                         gid_t gid, const struct slug_limits *limits, volatile sig_atomic_t *cancel,
                         bool *ret_over_limit, char **ret_dir, struct dy_error **err)
{
	_cleanup_free_ char *src = NULL, *parent = NULL, *dir = NULL;
	if (slug_store_path(state_dir, id, &src, err) < 0)
		return -1;
	if (slug_store_tree(state_dir, id, app, &dir, err) < 0)
		return -1;
	if (asprintf(&parent, "%s/apps/%s/slugs", state_dir, app) < 0)
		return dy_error_errno(err, ENOMEM, "store");
	struct stat st;
	if (lstat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
		*ret_dir = TAKE_PTR(dir);
		return 0; /* unpacked once, reused */
	}
	if (dy_dir_mode(parent, 0700, err) < 0)
		return -1;
	char name[16];
	snprintf(name, sizeof(name), "slug %.7s", id);
	struct slug_unpack_opts opts = {.chown = true,
	                                .uid = uid,
	                                .gid = gid,
	                                .cancel = cancel,
	                                .name = name,
	                                .ret_over_limit = ret_over_limit};
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

int slug_store_unpack(const char *state_dir, const char *id, const char *app, uid_t uid, gid_t gid,
                      const struct slug_limits *limits, char **ret_dir, struct dy_error **err)
{
	return slug_store_unpack_ex(state_dir, id, app, uid, gid, limits, NULL, NULL, ret_dir, err);
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
