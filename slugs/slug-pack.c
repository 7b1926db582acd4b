/* Packing a directory into a slug, deterministically: entries sorted by
 * name (byte order), owner 0:0 with no names, mtime 0, the permission bits
 * only, no xattrs/ACLs, gzip without its timestamp. The same tree gives the
 * same bytes on any host. */
#include "slugs/slug.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "slugs/slug-entry.h"
#include "slugs/slugignore.h"

#define PACK_BLOCK (128 * 1024)

struct packer {
	struct archive *a;
	struct slugignore *si;
	struct slug_tree *tree;
	uint8_t *buf;
	const char *root; /* for messages */
	int depth;
	dev_t out_dev; /* the slug being written, if it sits inside dir */
	ino_t out_ino;
};

static int cmp_names(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static int list_sorted(int dfd, char ***ret, size_t *ret_n, const char *what, struct dy_error **err)
{
	int fd = dup(dfd);
	if (fd < 0)
		return dy_error_errno(err, errno, "%s", what);
	DIR *d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return dy_error_errno(err, errno, "%s", what);
	}
	rewinddir(d);
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			char **nn = realloc(names, cap * sizeof(*nn));
			if (nn == NULL)
				goto oom;
			names = nn;
		}
		names[n] = strdup(de->d_name);
		if (names[n] == NULL)
			goto oom;
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_names);
	*ret = names;
	*ret_n = n;
	return 0;
oom:
	closedir(d);
	free_names(names, n);
	return dy_error_errno(err, ENOMEM, "%s", what);
}

static struct archive_entry *new_entry(const char *rel, mode_t type, mode_t perm)
{
	struct archive_entry *e = archive_entry_new();
	if (e == NULL)
		return NULL;
	char path[SLUG_PATH_MAX + 16];
	if (rel[0] == '\0')
		snprintf(path, sizeof(path), "./app/");
	else if (type == AE_IFDIR)
		snprintf(path, sizeof(path), "./app/%s/", rel);
	else
		snprintf(path, sizeof(path), "./app/%s", rel);
	archive_entry_copy_pathname(e, path);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, perm & 0777);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	archive_entry_set_mtime(e, 0, 0);
	return e;
}

static int write_header(struct packer *p, struct archive_entry *e, const char *rel,
                        struct dy_error **err)
{
	if (archive_write_header(p->a, e) != ARCHIVE_OK)
		return dy_error(err, "%s/%s: %s", p->root, rel, archive_error_string(p->a));
	return 0;
}

static int pack_file(struct packer *p, int dfd, const char *name, const char *rel,
                     const struct stat *st, struct dy_error **err)
{
	_cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return dy_error_errno(err, errno, "open %s/%s", p->root, rel);
	struct stat fst;
	if (fstat(fd, &fst) < 0)
		return dy_error_errno(err, errno, "stat %s/%s", p->root, rel);
	if (!S_ISREG(fst.st_mode) || fst.st_ino != st->st_ino)
		return dy_error(err, "%s/%s changed while being packed", p->root, rel);
	struct archive_entry *e = new_entry(rel, AE_IFREG, fst.st_mode);
	if (e == NULL)
		return dy_error_errno(err, ENOMEM, "pack");
	archive_entry_set_size(e, fst.st_size);
	int r = write_header(p, e, rel, err);
	archive_entry_free(e);
	if (r < 0)
		return r;
	off_t left = fst.st_size;
	while (left > 0) {
		ssize_t n = read(fd, p->buf, PACK_BLOCK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return dy_error_errno(err, errno, "read %s/%s", p->root, rel);
		if (n == 0)
			return dy_error(err, "%s/%s shrank while being packed", p->root, rel);
		if (n > left)
			n = (ssize_t)left;
		if (archive_write_data(p->a, p->buf, (size_t)n) != n)
			return dy_error(err, "write %s/%s: %s", p->root, rel,
			                archive_error_string(p->a));
		left -= n;
	}
	return 0;
}

static int pack_dir(struct packer *p, int dfd, const char *rel, struct dy_error **err);

static int pack_one(struct packer *p, int dfd, const char *name, const char *rel,
                    struct dy_error **err)
{
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return dy_error_errno(err, errno, "stat %s/%s", p->root, rel);
	if (slugignore_match(p->si, rel, S_ISDIR(st.st_mode)))
		return 0;
	if (st.st_dev == p->out_dev && st.st_ino == p->out_ino)
		return 0;

	/* The name rules of unpack, applied now so that a slug we make is
	 * one we accept. */
	char full[SLUG_PATH_MAX + 16];
	snprintf(full, sizeof(full), "app/%s", rel);
	_cleanup_free_ char *norm = NULL;
	struct dy_error *e2 = NULL;
	if (slug_entry_normalize(full, &norm, &e2) != 0) {
		int r = dy_error(err, "%s/%s: %s", p->root, rel, dy_error_msg(e2));
		dy_error_free(&e2);
		return r;
	}

	if (S_ISDIR(st.st_mode)) {
		if (slug_tree_add(p->tree, rel, SLUG_ENTRY_DIR, NULL, &e2) < 0)
			goto tree_error;
		_cleanup_close_ int sub =
		    openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0)
			return dy_error_errno(err, errno, "open %s/%s", p->root, rel);
		struct archive_entry *e = new_entry(rel, AE_IFDIR, st.st_mode);
		if (e == NULL)
			return dy_error_errno(err, ENOMEM, "pack");
		int r = write_header(p, e, rel, err);
		archive_entry_free(e);
		if (r < 0)
			return r;
		return pack_dir(p, sub, rel, err);
	}
	if (S_ISREG(st.st_mode)) {
		if (slug_tree_add(p->tree, rel, SLUG_ENTRY_FILE, NULL, &e2) < 0)
			goto tree_error;
		return pack_file(p, dfd, name, rel, &st, err);
	}
	if (S_ISLNK(st.st_mode)) {
		char target[SLUG_PATH_MAX + 2];
		ssize_t n = readlinkat(dfd, name, target, sizeof(target) - 1);
		if (n < 0)
			return dy_error_errno(err, errno, "readlink %s/%s", p->root, rel);
		if ((size_t)n >= sizeof(target) - 1)
			return dy_error(err, "%s/%s: link target too long", p->root, rel);
		target[n] = '\0';
		if (slug_tree_add(p->tree, rel, SLUG_ENTRY_LINK, target, &e2) < 0)
			goto tree_error;
		struct archive_entry *e = new_entry(rel, AE_IFLNK, 0777);
		if (e == NULL)
			return dy_error_errno(err, ENOMEM, "pack");
		archive_entry_copy_symlink(e, target);
		int r = write_header(p, e, rel, err);
		archive_entry_free(e);
		return r;
	}
	return dy_error(err, "%s/%s: %s cannot go into a slug", p->root, rel,
	                S_ISFIFO(st.st_mode)   ? "a fifo"
	                : S_ISSOCK(st.st_mode) ? "a socket"
	                                       : "a device node");
tree_error : {
	int r = dy_error(err, "%s/%s: %s", p->root, rel, dy_error_msg(e2));
	dy_error_free(&e2);
	return r;
}
}

static int pack_dir(struct packer *p, int dfd, const char *rel, struct dy_error **err)
{
	if (++p->depth > 256)
		return dy_error(err, "%s/%s: directories nested deeper than 256 levels", p->root,
		                rel);
	char **names = NULL;
	size_t n = 0;
	int r = list_sorted(dfd, &names, &n, rel[0] ? rel : p->root, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n && r == 0; i++) {
		char child[SLUG_PATH_MAX + 2];
		int len =
		    snprintf(child, sizeof(child), "%s%s%s", rel, rel[0] ? "/" : "", names[i]);
		if (len < 0 || (size_t)len >= sizeof(child))
			r = dy_error(err, "%s/%s/%s: path too long", p->root, rel, names[i]);
		else
			r = pack_one(p, dfd, names[i], child, err);
	}
	free_names(names, n);
	p->depth--;
	return r;
}

static int read_small(int dfd, const char *name, size_t max, char **ret, size_t *ret_len,
                      const char *root, struct dy_error **err)
{
	_cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return dy_error_errno(err, errno, "%s/%s", root, name);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return dy_error_errno(err, errno, "%s/%s", root, name);
	if (!S_ISREG(st.st_mode))
		return dy_error(err, "%s/%s is not a regular file", root, name);
	if ((uint64_t)st.st_size > max)
		return dy_error(err, "%s/%s is larger than %zu bytes", root, name, max);
	_cleanup_free_ char *buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL)
		return dy_error_errno(err, ENOMEM, "%s/%s", root, name);
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	*ret = TAKE_PTR(buf);
	*ret_len = got;
	return 0;
}

int slug_pack(const char *dir, const char *out, enum slug_compression compression,
              struct dy_error **err)
{
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return dy_error_errno(err, errno, "open %s", dir);

	/* A directory without a valid Procfile is no app. */
	_cleanup_free_ char *pdata = NULL;
	size_t plen = 0;
	if (faccessat(dfd, "Procfile", F_OK, AT_SYMLINK_NOFOLLOW) < 0)
		return dy_error(err, "%s has no Procfile", dir);
	if (read_small(dfd, "Procfile", PROCFILE_MAX_BYTES, &pdata, &plen, dir, err) < 0)
		return -1;
	struct procfile *pf = NULL;
	if (procfile_parse(pdata, plen, &pf, err) < 0)
		return dy_error_prefix(err, "%s", dir);
	procfile_free(pf);

	struct packer p = {.root = dir};
	_cleanup_free_ char *idata = NULL;
	size_t ilen = 0;
	if (faccessat(dfd, ".slugignore", F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		if (read_small(dfd, ".slugignore", 1024 * 1024, &idata, &ilen, dir, err) < 0)
			return -1;
		if (slugignore_parse(idata, ilen, &p.si, err) < 0)
			return dy_error_prefix(err, "%s", dir);
	}

	_cleanup_free_ char *tmp = NULL;
	if (asprintf(&tmp, "%s.tmp-XXXXXX", out) < 0) {
		slugignore_free(p.si);
		return dy_error_errno(err, ENOMEM, "pack");
	}
	int ofd = mkostemp(tmp, O_CLOEXEC);
	if (ofd < 0) {
		slugignore_free(p.si);
		return dy_error_errno(err, errno, "create %s", out);
	}

	int r = -1;
	struct stat ost;
	if (fstat(ofd, &ost) == 0) {
		p.out_dev = ost.st_dev;
		p.out_ino = ost.st_ino;
	}
	p.tree = slug_tree_new();
	p.buf = malloc(PACK_BLOCK);
	p.a = archive_write_new();
	if (p.tree == NULL || p.buf == NULL || p.a == NULL) {
		dy_error_errno(err, ENOMEM, "pack");
		goto out;
	}
	archive_write_set_format_pax_restricted(p.a);
	switch (compression) {
	case SLUG_COMPRESSION_GZIP:
		archive_write_add_filter_gzip(p.a);
		/* no timestamp in the gzip header: same input, same bytes */
		archive_write_set_filter_option(p.a, "gzip", "timestamp", NULL);
		break;
	case SLUG_COMPRESSION_ZSTD:
		if (archive_write_add_filter_zstd(p.a) != ARCHIVE_OK) {
			dy_error(err, "zstd: %s", archive_error_string(p.a));
			goto out;
		}
		break;
	case SLUG_COMPRESSION_NONE:
		archive_write_add_filter_none(p.a);
		break;
	}
	if (archive_write_open_fd(p.a, ofd) != ARCHIVE_OK) {
		dy_error(err, "write %s: %s", out, archive_error_string(p.a));
		goto out;
	}
	struct archive_entry *root = new_entry("", AE_IFDIR, 0755);
	if (root == NULL) {
		dy_error_errno(err, ENOMEM, "pack");
		goto out;
	}
	r = write_header(&p, root, "", err);
	archive_entry_free(root);
	if (r == 0)
		r = pack_dir(&p, dfd, "", err);
	if (r == 0 && slug_tree_check_links(p.tree, err) < 0)
		r = -1;
	if (r == 0 && archive_write_close(p.a) != ARCHIVE_OK)
		r = dy_error(err, "write %s: %s", out, archive_error_string(p.a));
	if (r == 0 && fsync(ofd) < 0)
		r = dy_error_errno(err, errno, "fsync %s", out);
	if (r == 0 && fchmod(ofd, 0644) < 0)
		r = dy_error_errno(err, errno, "chmod %s", out);
	if (r == 0 && rename(tmp, out) < 0)
		r = dy_error_errno(err, errno, "rename to %s", out);
out:
	if (p.a)
		archive_write_free(p.a);
	close(ofd);
	if (r < 0)
		unlink(tmp);
	free(p.buf);
	slug_tree_free(p.tree);
	slugignore_free(p.si);
	return r;
}
