/* Slug unpack, inspect, pack and store against archives built here with
 * libarchive's write API, in a private directory under /tmp. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "common/sha256.h"
#include "slugs/slug-fs.h"
#include "slugs/slug-store.h"
#include "slugs/slug.h"

static char base[64];
static int counter;

/* One entry of a test archive. type: 'f' file, 'd' directory, 'l' link,
 * 'h' hard link, 'p' fifo, 'c' character device. data is the file's
 * contents or the link target; size, when not 0, is the declared size of
 * a file of zeros. */
struct ent {
	const char *name;
	char type;
	const char *data;
	mode_t mode;
	int64_t size;
};

static int setup(void **state)
{
	snprintf(base, sizeof(base), "/tmp/dyno-test-slug-unpack-XXXXXX");
	if (mkdtemp(base) == NULL)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	return slug_fs_remove_tree(AT_FDCWD, base);
}

/* A new path under base, unique within this run. */
static char *tmp_path(const char *what)
{
	size_t size = strlen(base) + strlen(what) + 16;
	char *p = malloc(size);
	assert_non_null(p);
	snprintf(p, size, "%s/%s-%d", base, what, ++counter);
	return p;
}

static void build(const char *path, enum slug_compression c, const struct ent *ents, size_t n)
{
	struct archive *a = archive_write_new();
	assert_non_null(a);
	assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
	switch (c) {
	case SLUG_COMPRESSION_GZIP:
		assert_int_equal(archive_write_add_filter_gzip(a), ARCHIVE_OK);
		break;
	case SLUG_COMPRESSION_ZSTD:
		assert_int_equal(archive_write_add_filter_zstd(a), ARCHIVE_OK);
		break;
	case SLUG_COMPRESSION_NONE:
		assert_int_equal(archive_write_add_filter_none(a), ARCHIVE_OK);
		break;
	}
	assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
	static char zeros[64 * 1024];
	for (size_t i = 0; i < n; i++) {
		const struct ent *x = &ents[i];
		struct archive_entry *e = archive_entry_new();
		archive_entry_set_pathname(e, x->name);
		archive_entry_set_perm(e, x->mode ? x->mode : (x->type == 'd' ? 0755 : 0644));
		archive_entry_set_mtime(e, 1700000000, 0);
		int64_t size = 0;
		switch (x->type) {
		case 'f':
			archive_entry_set_filetype(e, AE_IFREG);
			size = x->size ? x->size : (int64_t)strlen(x->data ? x->data : "");
			break;
		case 'd':
			archive_entry_set_filetype(e, AE_IFDIR);
			break;
		case 'l':
			archive_entry_set_filetype(e, AE_IFLNK);
			archive_entry_set_symlink(e, x->data);
			break;
		case 'h':
			archive_entry_set_filetype(e, AE_IFREG);
			archive_entry_set_hardlink(e, x->data);
			break;
		case 'p':
			archive_entry_set_filetype(e, AE_IFIFO);
			break;
		case 'c':
			archive_entry_set_filetype(e, AE_IFCHR);
			archive_entry_set_rdevmajor(e, 1);
			archive_entry_set_rdevminor(e, 3);
			break;
		default:
			fail();
		}
		archive_entry_set_size(e, size);
		assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
		if (x->type == 'f' && x->size) {
			for (int64_t left = size; left > 0;) {
				size_t k =
				    left > (int64_t)sizeof(zeros) ? sizeof(zeros) : (size_t)left;
				assert_int_equal(archive_write_data(a, zeros, k), (la_ssize_t)k);
				left -= (int64_t)k;
			}
		} else if (x->type == 'f' && size > 0) {
			assert_int_equal(archive_write_data(a, x->data, (size_t)size), size);
		}
		archive_entry_free(e);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
}

#define BUILD(path, c, ...)                                                                        \
	do {                                                                                       \
		const struct ent ents_[] = {__VA_ARGS__};                                          \
		build(path, c, ents_, sizeof(ents_) / sizeof(ents_[0]));                           \
	} while (0)

static void default_opts(struct slug_unpack_opts *o)
{
	memset(o, 0, sizeof(*o));
	slug_limits_default(&o->limits);
}

/* Neither dir nor a ".<name>.unpack-*" sibling exists. */
static void assert_nothing_left(const char *dir)
{
	struct stat st;
	assert_int_equal(lstat(dir, &st), -1);
	const char *slash = strrchr(dir, '/');
	char parent[256], prefix[256];
	snprintf(parent, sizeof(parent), "%.*s", (int)(slash - dir), dir);
	snprintf(prefix, sizeof(prefix), ".%s.unpack-", slash + 1);
	DIR *d = opendir(parent);
	assert_non_null(d);
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			fail_msg("leftover %s/%s", parent, de->d_name);
		assert_string_not_equal(de->d_name, slash + 1);
	}
	closedir(d);
}

/* Runs slug_check_unpack_fd on slug into a new directory, which it
 * returns (to be removed by the caller); *ret is its result. */
static char *one_pass(const char *slug, const struct slug_unpack_opts *o, uint64_t write_limit,
                      struct slug_info *info, bool *complete, struct dy_error **err, int *ret)
{
	char *root = tmp_path("onepass");
	assert_int_equal(mkdir(root, 0700), 0);
	int rfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int fd = open(slug, O_RDONLY | O_CLOEXEC);
	assert_true(rfd >= 0 && fd >= 0);
	*ret = slug_check_unpack_fd(fd, rfd, o, write_limit, info, complete, err);
	close(fd);
	close(rfd);
	return root;
}

/* The upload's single pass (check and unpack at once) refuses slug as
 * slug_inspect_fd does, word for word. */
static void one_pass_fails_as_inspect(const char *slug, const struct slug_unpack_opts *o)
{
	struct dy_error *ie = NULL, *ce = NULL;
	struct slug_info info;
	int fd = open(slug, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_true(slug_inspect_fd(fd, &o->limits, &info, &ie) < 0);
	close(fd);
	bool complete = true;
	int r;
	char *root = one_pass(slug, o, UINT64_MAX, &info, &complete, &ce, &r);
	assert_true(r < 0);
	assert_non_null(ce);
	assert_string_equal(dy_error_msg(ce), dy_error_msg(ie));
	assert_false(complete);
	dy_error_free(&ie);
	dy_error_free(&ce);
	assert_int_equal(slug_fs_remove_tree(AT_FDCWD, root), 0);
	free(root);
}

/* Unpacking slug fails with an error containing want, leaving nothing. */
static void unpack_fails(const char *slug, const struct slug_unpack_opts *o, const char *want)
{
	char *dir = tmp_path("out");
	struct dy_error *err = NULL;
	struct slug_info info;
	memset(&info, 0xa5, sizeof(info));
	assert_true(slug_unpack(slug, dir, o, &info, &err) < 0);
	assert_non_null(err);
	if (strstr(dy_error_msg(err), want) == NULL)
		fail_msg("error \"%s\" does not contain \"%s\"", dy_error_msg(err), want);
	dy_error_free(&err);
	assert_nothing_left(dir);
	free(dir);
	if (o->cancel == NULL && access(slug, F_OK) == 0)
		one_pass_fails_as_inspect(slug, o);
}

static void read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW);
	assert_true(fd >= 0);
	ssize_t n = read(fd, buf, size - 1);
	assert_true(n >= 0);
	buf[n] = '\0';
	close(fd);
}

static void sha256_file(const char *path, char hex[DY_SHA256_HEX_LEN + 1])
{
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	struct dy_sha256 s;
	dy_sha256_init(&s);
	char buf[4096];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		dy_sha256_update(&s, buf, (size_t)n);
	close(fd);
	uint8_t d[DY_SHA256_LEN];
	dy_sha256_final(&s, d);
	dy_sha256_hex(d, hex);
}

static void assert_good_tree(const char *dir);
static void assert_same_info(const struct slug_info *a, const struct slug_info *b);

static void check_good(enum slug_compression c)
{
	char *slug = tmp_path("good.slug"), *dir = tmp_path("good");
	BUILD(slug, c, {"./", 'd'}, {"./app/", 'd'},
	      {"./app/Procfile", 'f', "web: ./bin/server\nworker: ./bin/work\n"},
	      {"./app/bin/", 'd', NULL, 0750}, {"./app/bin/server", 'f', "#!/bin/sh\n", 04755},
	      {"./app/lib/x/y", 'f', "y", 02644}, {"./app/link", 'l', "bin/server"},
	      {"./app/abs", 'l', "/app/bin"}, {"./app/hard", 'h', "./app/bin/server"},
	      {"app/sticky/", 'd', NULL, 01777});
	struct slug_unpack_opts o;
	default_opts(&o);
	struct slug_info info;
	struct dy_error *err = NULL;
	if (slug_unpack(slug, dir, &o, &info, &err) < 0)
		fail_msg("unpack: %s", dy_error_msg(err));
	assert_good_tree(dir);

	assert_int_equal(info.entries, 10);
	assert_int_equal(info.unpacked_size,
	                 strlen("web: ./bin/server\nworker: ./bin/work\n") + 10 + 1);
	assert_string_equal(info.compression, slug_compression_str(c));
	assert_non_null(info.procfile);
	assert_int_equal(info.procfile->n, 2);
	assert_string_equal(procfile_command(info.procfile, "worker"), "./bin/work");
	/* unpack does not hash (slug_inspect and the store do) */
	assert_string_equal(info.id, "");
	slug_info_clear(&info);
	slug_info_clear(NULL);

	/* no temporary sibling is left once done */
	struct stat dummy;
	assert_int_equal(lstat(dir, &dummy), 0);

	/* one pass: the same tree, and what slug_inspect finds, id included */
	struct slug_info ii, ci;
	if (slug_inspect(slug, NULL, &ii, &err) < 0)
		fail_msg("inspect: %s", dy_error_msg(err));
	uint64_t passes = slug_read_passes();
	bool complete = false;
	int r;
	char *root = one_pass(slug, &o, UINT64_MAX, &ci, &complete, &err, &r);
	if (r < 0)
		fail_msg("one pass: %s", dy_error_msg(err));
	assert_int_equal(slug_read_passes() - passes, 1);
	assert_true(complete);
	assert_int_equal(chmod(root, 0755), 0); /* as the store does */
	assert_good_tree(root);
	assert_same_info(&ci, &ii);
	slug_info_clear(&ci);
	assert_int_equal(slug_fs_remove_tree(AT_FDCWD, root), 0);
	free(root);
	/* past the write limit the tree is incomplete, the check the same */
	root = one_pass(slug, &o, 10, &ci, &complete, &err, &r);
	assert_int_equal(r, 0);
	assert_false(complete);
	assert_same_info(&ci, &ii);
	slug_info_clear(&ci);
	slug_info_clear(&ii);
	assert_int_equal(slug_fs_remove_tree(AT_FDCWD, root), 0);
	free(root);
	free(slug);
	free(dir);
}

static void assert_same_info(const struct slug_info *a, const struct slug_info *b)
{
	assert_string_equal(a->id, b->id);
	assert_int_equal(a->size, b->size);
	assert_int_equal(a->unpacked_size, b->unpacked_size);
	assert_int_equal(a->entries, b->entries);
	assert_string_equal(a->compression, b->compression);
	assert_int_equal(a->procfile->n, b->procfile->n);
	for (size_t i = 0; i < a->procfile->n; i++) {
		assert_string_equal(a->procfile->entries[i].name, b->procfile->entries[i].name);
		assert_string_equal(a->procfile->entries[i].command,
		                    b->procfile->entries[i].command);
	}
}

/* What check_good's slug unpacks to. */
static void assert_good_tree(const char *dir)
{
	char buf[256], path[512];
	struct stat st, st2;
	snprintf(path, sizeof(path), "%s/Procfile", dir);
	read_file(path, buf, sizeof(buf));
	assert_string_equal(buf, "web: ./bin/server\nworker: ./bin/work\n");
	assert_int_equal(lstat(dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	snprintf(path, sizeof(path), "%s/bin", dir);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0750);
	snprintf(path, sizeof(path), "%s/bin/server", dir);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0755); /* setuid stripped */
	assert_int_equal(st.st_mtime, 1700000000);
	snprintf(path, sizeof(path), "%s/lib/x/y", dir);
	assert_int_equal(lstat(path, &st2), 0);
	assert_int_equal(st2.st_mode & 07777, 0644); /* setgid stripped */
	snprintf(path, sizeof(path), "%s/sticky", dir);
	assert_int_equal(lstat(path, &st2), 0);
	assert_int_equal(st2.st_mode & 07777, 0777); /* sticky stripped */
	snprintf(path, sizeof(path), "%s/hard", dir);
	assert_int_equal(lstat(path, &st2), 0);
	assert_int_equal(st2.st_ino, st.st_ino);
	snprintf(path, sizeof(path), "%s/link", dir);
	ssize_t n = readlink(path, buf, sizeof(buf) - 1);
	assert_int_equal(n, strlen("bin/server"));
	buf[n] = '\0';
	assert_string_equal(buf, "bin/server");
	snprintf(path, sizeof(path), "%s/abs", dir);
	n = readlink(path, buf, sizeof(buf) - 1);
	assert_int_equal(n, 8);
	buf[n] = '\0';
	assert_string_equal(buf, "/app/bin");
}

static void test_unpack_good_gzip(void **state)
{
	check_good(SLUG_COMPRESSION_GZIP);
}

static void test_unpack_good_zstd(void **state)
{
	check_good(SLUG_COMPRESSION_ZSTD);
}

static void test_unpack_good_none(void **state)
{
	check_good(SLUG_COMPRESSION_NONE);
}

#define PROCFILE                                                                                   \
	{                                                                                          \
		"./app/Procfile", 'f', "web: x\n"                                                  \
	}

#define REFUSED(want, ...)                                                                         \
	do {                                                                                       \
		char *slug_ = tmp_path("bad.slug");                                                \
		BUILD(slug_, SLUG_COMPRESSION_GZIP, __VA_ARGS__);                                  \
		struct slug_unpack_opts o_;                                                        \
		default_opts(&o_);                                                                 \
		unpack_fails(slug_, &o_, want);                                                    \
		free(slug_);                                                                       \
	} while (0)

static void test_unpack_refused(void **state)
{
	REFUSED("refused entry \"../etc/x\": path has a \"..\" component", PROCFILE,
	        {"../etc/x", 'f', "x"});
	REFUSED("refused entry \"./app/a/../../x\": path has a \"..\" component", PROCFILE,
	        {"./app/a/../../x", 'f', "x"});
	REFUSED("refused entry \"/app/x\": absolute path", PROCFILE, {"/app/x", 'f', "x"});
	REFUSED("refused entry \"./etc/passwd\": outside app/", PROCFILE,
	        {"./etc/passwd", 'f', "x"});
	REFUSED("refused entry \"./app/l\": link target \"../etc\" leaves app/", PROCFILE,
	        {"./app/l", 'l', "../etc"});
	REFUSED("refused entry \"./app/l\": absolute link target \"/etc\" is not under /app/",
	        PROCFILE, {"./app/l", 'l', "/etc"});
	REFUSED("refused entry \"./app/l/x\": is under the link app/l", {"./app/l", 'l', "d"},
	        {"./app/l/x", 'f', "x"}, PROCFILE);
	REFUSED("refused entry \"./app/f\": fifos are not allowed", PROCFILE, {"./app/f", 'p'});
	REFUSED("refused entry \"./app/null\": character device nodes are not allowed", PROCFILE,
	        {"./app/null", 'c'});
	REFUSED("refused entry \"./app/h\": hard link to \"/etc/passwd\" outside app/", PROCFILE,
	        {"./app/h", 'h', "/etc/passwd"});
	REFUSED("refused entry \"./app/h\": hard link target app/nope is not an earlier file",
	        PROCFILE, {"./app/h", 'h', "./app/nope"});
	REFUSED("refused entry \"./app/d\": changes the type of an earlier entry (directory, then "
	        "file)",
	        PROCFILE, {"./app/d/", 'd'}, {"./app/d", 'f', "x"});
	REFUSED("refused entry \"./app/d/\": changes the type of an earlier entry (file, then "
	        "directory)",
	        PROCFILE, {"./app/d", 'f', "x"}, {"./app/d/", 'd'});
	REFUSED("refused entry \"./app/d\": changes the type of an earlier entry (directory, then "
	        "link)",
	        PROCFILE, {"./app/d/x", 'f', "x"}, {"./app/d", 'l', "."});
	REFUSED("refused entry \"./app/a\\x0ab\": control character 0x0a in name", PROCFILE,
	        {"./app/a\nb", 'f', "x"});
	/* a link made to leave app/ by a later link */
	REFUSED("refused entry \"app/b\": link target \"l/../x\" leaves app/", PROCFILE,
	        {"./app/b", 'l', "l/../x"}, {"./app/l", 'l', "/app"});
	REFUSED("refused entry \"./app/c\": link target \"a/x\": too many levels of links",
	        PROCFILE, {"./app/a", 'l', "b"}, {"./app/b", 'l', "a"}, {"./app/c", 'l', "a/x"});
}

/* A file declaring more than the unpacked budget is refused at its header,
 * before any of its data is written. */
static void test_unpacked_limit(void **state)
{
	char *slug = tmp_path("big.slug");
	BUILD(slug, SLUG_COMPRESSION_GZIP, PROCFILE, {"./app/small", 'f', NULL, 0, 1000},
	      {"./app/big", 'f', NULL, 0, 2 << 20});
	struct slug_unpack_opts o;
	default_opts(&o);
	o.limits.max_unpacked = 1 << 20;
	unpack_fails(slug, &o,
	             "refused entry \"./app/big\": declares 2097152 bytes; the unpacked size "
	             "would exceed the limit of 1048576 bytes");
	/* also when it is just past what is left after the earlier files */
	o.limits.max_unpacked = (2 << 20) + 1000 + 6;
	unpack_fails(slug, &o, "refused entry \"./app/big\": declares 2097152 bytes");
	o.limits.max_unpacked = (2 << 20) + 1000 + 7;
	char *dir = tmp_path("big");
	struct dy_error *err = NULL;
	if (slug_unpack(slug, dir, &o, NULL, &err) < 0)
		fail_msg("%s", dy_error_msg(err));
	free(dir);
	free(slug);
}

static void test_entries_limit(void **state)
{
	char *slug = tmp_path("many.slug");
	BUILD(slug, SLUG_COMPRESSION_GZIP, {"./app/", 'd'}, PROCFILE, {"./app/a", 'f', "a"},
	      {"./app/b", 'f', "b"}, {"./app/c", 'f', "c"});
	struct slug_unpack_opts o;
	default_opts(&o);
	o.limits.max_entries = 3;
	unpack_fails(slug, &o, "refused entry \"./app/b\": the slug has more than 3 entries");
	o.limits.max_entries = 5;
	struct slug_info info;
	struct dy_error *err = NULL;
	if (slug_inspect(slug, &o.limits, &info, &err) < 0)
		fail_msg("%s", dy_error_msg(err));
	assert_int_equal(info.entries, 5);
	slug_info_clear(&info);
	free(slug);
}

static void test_compressed_limit(void **state)
{
	char *slug = tmp_path("c.slug");
	BUILD(slug, SLUG_COMPRESSION_NONE, PROCFILE, {"./app/a", 'f', "a"});
	struct stat st;
	assert_int_equal(stat(slug, &st), 0);
	struct slug_unpack_opts o;
	default_opts(&o);
	o.limits.max_compressed = (uint64_t)st.st_size - 1;
	unpack_fails(slug, &o, "over the limit of");
	struct slug_info info;
	struct dy_error *err = NULL;
	assert_true(slug_inspect(slug, &o.limits, &info, &err) < 0);
	assert_non_null(strstr(dy_error_msg(err), "over the limit of"));
	dy_error_free(&err);
	o.limits.max_compressed = (uint64_t)st.st_size;
	assert_int_equal(slug_inspect(slug, &o.limits, &info, &err), 0);
	assert_int_equal(info.size, st.st_size);
	slug_info_clear(&info);
	free(slug);
}

static void test_procfile_required(void **state)
{
	REFUSED("no Procfile: a slug needs app/Procfile", {"./app/", 'd'}, {"./app/x", 'f', "x"});
	REFUSED("refused entry \"./app/Procfile\": the Procfile must be a regular file, not a link",
	        {"./app/P", 'f', "web: x\n"}, {"./app/Procfile", 'l', "P"});
	REFUSED("refused entry \"./app/Procfile\": the Procfile must be a regular file, not a "
	        "hard link",
	        {"./app/P", 'f', "web: x\n"}, {"./app/Procfile", 'h', "./app/P"});
	REFUSED("Procfile line 2: expected \"name: command\"",
	        {"./app/Procfile", 'f', "web: x\nbad\n"});
	REFUSED("Procfile declares no process types", {"./app/Procfile", 'f', ""});
	REFUSED("refused entry \"./app/Procfile/\": the Procfile must be a regular file, not a "
	        "directory",
	        {"./app/Procfile/", 'd'});
}

static void test_not_a_slug(void **state)
{
	char *slug = tmp_path("junk.slug");
	int fd = open(slug, O_WRONLY | O_CREAT | O_EXCL, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "hello, not a tar\n", 17), 17);
	close(fd);
	struct slug_unpack_opts o;
	default_opts(&o);
	unpack_fails(slug, &o, "not a slug");
	char *missing = tmp_path("missing.slug");
	unpack_fails(missing, &o, "No such file or directory");
	free(missing);
	free(slug);
}

static void test_target_dir(void **state)
{
	char *slug = tmp_path("t.slug");
	BUILD(slug, SLUG_COMPRESSION_GZIP, PROCFILE);
	struct slug_unpack_opts o;
	default_opts(&o);
	struct dy_error *err = NULL;

	char *dir = tmp_path("exists");
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_true(slug_unpack(slug, dir, &o, NULL, &err) < 0);
	assert_non_null(strstr(dy_error_msg(err), "already exists"));
	dy_error_free(&err);

	char *orphan = NULL;
	assert_true(asprintf(&orphan, "%s/no-such-parent/dir", base) > 0);
	assert_true(slug_unpack(slug, orphan, &o, NULL, &err) < 0);
	assert_non_null(strstr(dy_error_msg(err), "parent directory"));
	dy_error_free(&err);

	free(orphan);
	free(dir);
	free(slug);
}

static void test_cancel(void **state)
{
	char *slug = tmp_path("cancel.slug");
	BUILD(slug, SLUG_COMPRESSION_GZIP, PROCFILE, {"./app/a", 'f', "a"});
	volatile sig_atomic_t cancel = 1;
	struct slug_unpack_opts o;
	default_opts(&o);
	o.cancel = &cancel;
	unpack_fails(slug, &o, "interrupted");
	free(slug);
}

static void test_inspect(void **state)
{
	char *slug = tmp_path("inspect.slug");
	BUILD(slug, SLUG_COMPRESSION_ZSTD, {"./app/", 'd'},
	      {"./app/Procfile", 'f', "web: a\r\nrelease: b\n"}, {"./app/x", 'f', "12345"});
	struct slug_info info;
	struct dy_error *err = NULL;
	if (slug_inspect(slug, NULL, &info, &err) < 0)
		fail_msg("%s", dy_error_msg(err));
	char hex[DY_SHA256_HEX_LEN + 1];
	sha256_file(slug, hex);
	assert_string_equal(info.id, hex);
	struct stat st;
	assert_int_equal(stat(slug, &st), 0);
	assert_int_equal(info.size, st.st_size);
	assert_int_equal(info.entries, 3);
	assert_int_equal(info.unpacked_size, 19 + 5);
	assert_string_equal(info.compression, "zstd");
	assert_int_equal(info.procfile->n, 2);
	assert_string_equal(info.procfile->entries[0].name, "web");
	assert_string_equal(info.procfile->entries[1].name, "release");
	assert_string_equal(procfile_command(info.procfile, "release"), "b");
	slug_info_clear(&info);
	free(slug);
}

static void write_file(const char *dir, const char *name, const char *data, mode_t mode)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, strlen(data)), strlen(data));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void make_app(const char *dir)
{
	char path[512];
	assert_int_equal(mkdir(dir, 0755), 0);
	write_file(dir, "Procfile", "web: ./bin/web\n", 0644);
	snprintf(path, sizeof(path), "%s/bin", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	write_file(dir, "bin/web", "#!/bin/sh\nexec true\n", 04755);
	snprintf(path, sizeof(path), "%s/current", dir);
	assert_int_equal(symlink("bin/web", path), 0);
	snprintf(path, sizeof(path), "%s/log", dir);
	assert_int_equal(mkdir(path, 0755), 0);
	write_file(dir, "log/x.log", "log", 0644);
	write_file(dir, "a.log", "log", 0644);
	write_file(dir, "keep.txt", "keep", 0600);
}

static void test_pack_deterministic(void **state)
{
	char *dir = tmp_path("app");
	make_app(dir);
	enum slug_compression cs[] = {SLUG_COMPRESSION_GZIP, SLUG_COMPRESSION_ZSTD,
	                              SLUG_COMPRESSION_NONE};
	for (size_t i = 0; i < 3; i++) {
		char *s1 = tmp_path("p1.slug"), *s2 = tmp_path("p2.slug");
		struct dy_error *err = NULL;
		if (slug_pack(dir, s1, cs[i], &err) < 0)
			fail_msg("%s", dy_error_msg(err));
		/* a touched file changes nothing: mtimes are not kept */
		char path[512];
		snprintf(path, sizeof(path), "%s/keep.txt", dir);
		struct timespec ts[2] = {{.tv_sec = 12345}, {.tv_sec = 12345}};
		assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
		if (slug_pack(dir, s2, cs[i], &err) < 0)
			fail_msg("%s", dy_error_msg(err));
		char h1[DY_SHA256_HEX_LEN + 1], h2[DY_SHA256_HEX_LEN + 1];
		sha256_file(s1, h1);
		sha256_file(s2, h2);
		assert_string_equal(h1, h2);

		/* what we pack we unpack */
		char *out = tmp_path("unpacked");
		struct slug_unpack_opts o;
		default_opts(&o);
		struct slug_info info;
		if (slug_unpack(s1, out, &o, &info, &err) < 0)
			fail_msg("%s", dy_error_msg(err));
		assert_string_equal(info.compression, slug_compression_str(cs[i]));
		assert_string_equal(info.id, "");
		slug_info_clear(&info);
		struct stat st;
		snprintf(path, sizeof(path), "%s/bin/web", out);
		assert_int_equal(lstat(path, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0755);
		snprintf(path, sizeof(path), "%s/current", out);
		assert_int_equal(lstat(path, &st), 0);
		assert_true(S_ISLNK(st.st_mode));
		snprintf(path, sizeof(path), "%s/keep.txt", out);
		assert_int_equal(lstat(path, &st), 0);
		assert_int_equal(st.st_mode & 07777, 0600);
		free(out);
		free(s1);
		free(s2);
	}
	free(dir);
}

static void test_pack_slugignore(void **state)
{
	char *dir = tmp_path("app");
	make_app(dir);
	write_file(dir, ".slugignore", "# ignore logs\n*.log\nlog/\n", 0644);
	char *slug = tmp_path("ign.slug"), *out = tmp_path("ign");
	struct dy_error *err = NULL;
	if (slug_pack(dir, slug, SLUG_COMPRESSION_GZIP, &err) < 0)
		fail_msg("%s", dy_error_msg(err));
	struct slug_unpack_opts o;
	default_opts(&o);
	if (slug_unpack(slug, out, &o, NULL, &err) < 0)
		fail_msg("%s", dy_error_msg(err));
	char path[512];
	struct stat st;
	snprintf(path, sizeof(path), "%s/a.log", out);
	assert_int_equal(lstat(path, &st), -1);
	snprintf(path, sizeof(path), "%s/log", out);
	assert_int_equal(lstat(path, &st), -1);
	snprintf(path, sizeof(path), "%s/keep.txt", out);
	assert_int_equal(lstat(path, &st), 0);

	/* negation is refused */
	write_file(dir, ".slugignore", "*.log\n!a.log\n", 0644);
	char *slug2 = tmp_path("ign2.slug");
	assert_true(slug_pack(dir, slug2, SLUG_COMPRESSION_GZIP, &err) < 0);
	assert_non_null(strstr(dy_error_msg(err), ".slugignore line 2: negation"));
	dy_error_free(&err);
	assert_int_equal(lstat(slug2, &st), -1);
	free(slug2);
	free(slug);
	free(out);
	free(dir);
}

static void pack_fails(const char *dir, const char *want)
{
	char *slug = tmp_path("refused.slug");
	struct dy_error *err = NULL;
	assert_true(slug_pack(dir, slug, SLUG_COMPRESSION_GZIP, &err) < 0);
	if (strstr(dy_error_msg(err), want) == NULL)
		fail_msg("error \"%s\" does not contain \"%s\"", dy_error_msg(err), want);
	dy_error_free(&err);
	struct stat st;
	assert_int_equal(lstat(slug, &st), -1);
	/* no temporary file either */
	DIR *d = opendir(base);
	struct dirent *de;
	const char *name = strrchr(slug, '/') + 1;
	while ((de = readdir(d)) != NULL)
		assert_true(strncmp(de->d_name, name, strlen(name)) != 0);
	closedir(d);
	free(slug);
}

static void test_pack_refused(void **state)
{
	char path[512];
	char *dir = tmp_path("app");
	assert_int_equal(mkdir(dir, 0755), 0);
	write_file(dir, "x", "x", 0644);
	pack_fails(dir, "has no Procfile");
	snprintf(path, sizeof(path), "%s/Procfile", dir);
	assert_int_equal(symlink("x", path), 0);
	pack_fails(dir, "Procfile");
	assert_int_equal(unlink(path), 0);
	write_file(dir, "Procfile", "run: x\n", 0644);
	pack_fails(dir, "Procfile line 1: process type name \"run\" is reserved");
	write_file(dir, "Procfile", "web: x\n", 0644);

	snprintf(path, sizeof(path), "%s/fifo", dir);
	assert_int_equal(mkfifo(path, 0644), 0);
	pack_fails(dir, "/fifo: a fifo cannot go into a slug");
	assert_int_equal(unlink(path), 0);

	snprintf(path, sizeof(path), "%s/etc", dir);
	assert_int_equal(symlink("/etc", path), 0);
	pack_fails(dir, "/etc: absolute link target \"/etc\" is not under /app/");
	assert_int_equal(unlink(path), 0);
	assert_int_equal(symlink("../../..", path), 0);
	pack_fails(dir, "leaves app/");
	assert_int_equal(unlink(path), 0);
	free(dir);
}

static void test_store(void **state)
{
	char *dir = tmp_path("app"), *slug = tmp_path("store.slug"), *sd = tmp_path("state");
	make_app(dir);
	struct dy_error *err = NULL;
	if (slug_pack(dir, slug, SLUG_COMPRESSION_GZIP, &err) < 0)
		fail_msg("%s", dy_error_msg(err));
	struct slug_info info;
	if (slug_store_put(sd, slug, NULL, &info, &err) < 0)
		fail_msg("%s", dy_error_msg(err));
	char hex[DY_SHA256_HEX_LEN + 1];
	sha256_file(slug, hex);
	assert_string_equal(info.id, hex);
	char *stored = NULL;
	assert_int_equal(slug_store_path(sd, info.id, &stored, &err), 0);
	char h2[DY_SHA256_HEX_LEN + 1];
	sha256_file(stored, h2);
	assert_string_equal(h2, hex);
	/* the same slug again is fine */
	struct slug_info again;
	if (slug_store_put(sd, slug, NULL, &again, &err) < 0)
		fail_msg("%s", dy_error_msg(err));
	assert_string_equal(again.id, info.id);
	slug_info_clear(&again);
	/* an upload in an unnamed file of the store (as the API receives
	 * one) is named, not copied: the same bytes, the same id */
	assert_int_equal(unlink(stored), 0);
	char slugs_dir[512];
	snprintf(slugs_dir, sizeof(slugs_dir), "%s/slugs", sd);
	int ufd = open(slugs_dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	assert_true(ufd >= 0);
	int sfd = open(slug, O_RDONLY | O_CLOEXEC);
	assert_true(sfd >= 0);
	char cbuf[4096];
	ssize_t cn;
	while ((cn = read(sfd, cbuf, sizeof(cbuf))) > 0)
		assert_int_equal(write(ufd, cbuf, (size_t)cn), cn);
	close(sfd);
	assert_int_equal(lseek(ufd, 0, SEEK_SET), 0);
	if (slug_store_put_fd(sd, ufd, NULL, &again, &err) < 0)
		fail_msg("%s", dy_error_msg(err));
	assert_string_equal(again.id, info.id);
	slug_info_clear(&again);
	struct stat ust;
	assert_int_equal(fstat(ufd, &ust), 0);
	assert_int_equal(ust.st_nlink, 1); /* it is the stored slug now */
	close(ufd);
	sha256_file(stored, h2);
	assert_string_equal(h2, hex);

	char *u1 = NULL, *u2 = NULL;
	if (slug_store_unpack(sd, info.id, "myapp", getuid(), getgid(), NULL, &u1, &err) < 0)
		fail_msg("%s", dy_error_msg(err));
	char path[512];
	struct stat st;
	snprintf(path, sizeof(path), "%s/bin/web", u1);
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(st.st_uid, getuid());
	/* unpacked once: the second call reuses the tree */
	snprintf(path, sizeof(path), "%s/marker", u1);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	assert_true(fd >= 0);
	close(fd);
	if (slug_store_unpack(sd, info.id, "myapp", getuid(), getgid(), NULL, &u2, &err) < 0)
		fail_msg("%s", dy_error_msg(err));
	assert_string_equal(u1, u2);
	assert_int_equal(lstat(path, &st), 0);

	assert_true(slug_store_unpack(sd, "abc", "myapp", 0, 0, NULL, &u2, &err) < 0);
	assert_non_null(strstr(dy_error_msg(err), "invalid slug id"));
	dy_error_free(&err);
	assert_true(slug_store_unpack(sd, info.id, "../x", 0, 0, NULL, &u2, &err) < 0);
	assert_non_null(strstr(dy_error_msg(err), "invalid app name"));
	dy_error_free(&err);

	/* sweep removes leftovers of interrupted work only */
	snprintf(path, sizeof(path), "%s/apps/myapp/slugs/.x.unpack-123", sd);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/apps/myapp/slugs/.x.unpack-123/sub", sd);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/slugs/upload.tmp-abcdef", sd);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(slug_store_sweep(sd), 2);
	assert_int_equal(lstat(path, &st), -1);
	snprintf(path, sizeof(path), "%s/apps/myapp/slugs/.x.unpack-123", sd);
	assert_int_equal(lstat(path, &st), -1);
	assert_int_equal(lstat(u1, &st), 0);
	assert_int_equal(lstat(stored, &st), 0);
	assert_int_equal(slug_store_sweep(sd), 0);

	/* a refused slug is not kept */
	char *bad = tmp_path("bad.slug");
	BUILD(bad, SLUG_COMPRESSION_GZIP, PROCFILE, {"./app/l", 'l', "/etc"});
	assert_true(slug_store_put(sd, bad, NULL, &again, &err) < 0);
	dy_error_free(&err);
	snprintf(path, sizeof(path), "%s/slugs", sd);
	DIR *d = opendir(path);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	assert_int_equal(n, 2); /* the good slug and its meta file */

	free(bad);
	free(u1);
	free(u2);
	free(stored);
	slug_info_clear(&info);
	free(dir);
	free(slug);
	free(sd);
}

/* The bytes of the file at path (*len of them; free them). */
static uint8_t *slurp(const char *path, size_t *len)
{
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	uint8_t *b = malloc((size_t)st.st_size + 1);
	assert_non_null(b);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, b, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return b;
}

static void spill(const char *path, const uint8_t *b, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, b, len), (ssize_t)len);
	close(fd);
}

/* Appends a gzip member of data[0..len) to the file at path (zlib). */
static void gzip_member(const char *path, const uint8_t *data, size_t len)
{
	z_stream z = {0};
	assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
	size_t cap = deflateBound(&z, len);
	uint8_t *out = malloc(cap);
	assert_non_null(out);
	z.next_in = (uint8_t *)data;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, out, z.total_out), (ssize_t)z.total_out);
	close(fd);
	deflateEnd(&z);
	free(out);
}

/* A slug of a few files, one of 300 KiB that compresses and one that
 * does not, as plain tar. */
static char *plain_slug(void)
{
	static char text[300 * 1024], noise[64 * 1024];
	for (size_t i = 0; i < sizeof(text) - 1; i++)
		text[i] = "web worker release\n"[i % 19];
	uint32_t x = 7;
	for (size_t i = 0; i < sizeof(noise) - 1; i++) {
		x = x * 1103515245 + 12345;
		noise[i] = (char)(1 + (x >> 16) % 255);
	}
	char *tar = tmp_path("plain.tar");
	BUILD(tar, SLUG_COMPRESSION_NONE, {"./app/", 'd'}, PROCFILE, {"./app/text", 'f', text},
	      {"./app/noise", 'f', noise}, {"./app/l", 'l', "text"});
	return tar;
}

/* slug_inspect through slug-decompress.c, and through libarchive's own
 * filter (env=value: DYNO_GUNZIP=zlib, DYNO_UNZSTD=libarchive): the same
 * answer. */
static void inspect_both_env(const char *slug, struct slug_info *info, const char *env,
                             const char *value)
{
	struct dy_error *err = NULL;
	struct slug_info zi;
	if (slug_inspect(slug, NULL, info, &err) < 0)
		fail_msg("inspect: %s", dy_error_msg(err));
	setenv(env, value, 1);
	int r = slug_inspect(slug, NULL, &zi, &err);
	unsetenv(env);
	if (r < 0)
		fail_msg("inspect (%s=%s): %s", env, value, dy_error_msg(err));
	assert_same_info(info, &zi);
	slug_info_clear(&zi);
}

static void inspect_both(const char *slug, struct slug_info *info)
{
	inspect_both_env(slug, info, "DYNO_GUNZIP", "zlib");
}

/* check_good with libarchive's own filter (env=value); then the bytes of
 * a plain_slug (*ret_tar its path). */
static uint8_t *good_with_fallback(enum slug_compression c, const char *env, const char *value,
                                   char **ret_tar, size_t *len)
{
	setenv(env, value, 1);
	check_good(c);
	unsetenv(env);
	*ret_tar = plain_slug();
	return slurp(*ret_tar, len);
}

/* Appends a zstd frame of data[0..len) (with its checksum) to path. */
static void zstd_frame(const char *path, const uint8_t *data, size_t len)
{
	ZSTD_CCtx *c = ZSTD_createCCtx();
	assert_non_null(c);
	assert_false(ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1)));
	size_t cap = ZSTD_compressBound(len);
	uint8_t *out = malloc(cap);
	assert_non_null(out);
	size_t n = ZSTD_compress2(c, out, cap, data, len);
	assert_false(ZSTD_isError(n));
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, out, n), (ssize_t)n);
	close(fd);
	ZSTD_freeCCtx(c);
	free(out);
}

/* zstd slugs through libzstd here and through libarchive's filter: the
 * same info; a bad checksum and a cut frame are refused saying so. */
static void test_zstd_frames(void **state)
{
	char *tar, *slug = tmp_path("frames.slug");
	size_t len;
	uint8_t *t =
	    good_with_fallback(SLUG_COMPRESSION_ZSTD, "DYNO_UNZSTD", "libarchive", &tar, &len);
	zstd_frame(slug, t, 1000);
	zstd_frame(slug, t + 1000, len - 1000);
	struct slug_info info;
	inspect_both_env(slug, &info, "DYNO_UNZSTD", "libarchive");
	assert_string_equal(info.compression, "zstd");
	assert_int_equal(info.entries, 5);
	slug_info_clear(&info);

	uint8_t *z = slurp(slug, &len);
	struct slug_unpack_opts o;
	default_opts(&o);
	char *bad = tmp_path("bad.slug");
	z[len - 1] ^= 0x80; /* the last frame's checksum */
	spill(bad, z, len);
	unpack_fails(bad, &o, "zstd: invalid data near byte");
	unpack_fails(bad, &o, "checksum");
	z[len - 1] ^= 0x80;
	spill(bad, z, len - 7);
	unpack_fails(bad, &o, "zstd: truncated: the data ends inside a frame");
	free(z);
	free(t);
	free(bad);
	free(tar);
	free(slug);
}

/* gzip slugs through ISA-L and through zlib: the same tree and info */
static void test_gzip_isal_and_zlib(void **state)
{
	char *tar, *slug = tmp_path("members.slug");
	size_t len;
	uint8_t *t = good_with_fallback(SLUG_COMPRESSION_GZIP, "DYNO_GUNZIP", "zlib", &tar, &len);
	/* members cut inside a header, inside data, and an empty one */
	gzip_member(slug, t, 700);
	gzip_member(slug, t + 700, 0);
	gzip_member(slug, t + 700, 200000);
	gzip_member(slug, t + 200700, len - 200700);
	struct slug_info one, many;
	char *single = tmp_path("single.slug");
	gzip_member(single, t, len);
	inspect_both(single, &one);
	inspect_both(slug, &many);
	assert_int_equal(many.entries, 5);
	assert_int_equal(many.unpacked_size, one.unpacked_size);
	assert_string_equal(many.compression, "gzip");
	slug_info_clear(&one);
	slug_info_clear(&many);

	/* unpacked both ways: the same files */
	char *a = tmp_path("isal"), *b = tmp_path("zlib");
	struct slug_unpack_opts o;
	default_opts(&o);
	struct dy_error *err = NULL;
	if (slug_unpack(slug, a, &o, NULL, &err) < 0)
		fail_msg("%s", dy_error_msg(err));
	setenv("DYNO_GUNZIP", "zlib", 1);
	int r = slug_unpack(slug, b, &o, NULL, &err);
	unsetenv("DYNO_GUNZIP");
	if (r < 0)
		fail_msg("%s", dy_error_msg(err));
	const char *files[] = {"Procfile", "text", "noise"};
	for (size_t i = 0; i < 3; i++) {
		char pa[512], pb[512], ha[DY_SHA256_HEX_LEN + 1], hb[DY_SHA256_HEX_LEN + 1];
		snprintf(pa, sizeof(pa), "%s/%s", a, files[i]);
		snprintf(pb, sizeof(pb), "%s/%s", b, files[i]);
		sha256_file(pa, ha);
		sha256_file(pb, hb);
		assert_string_equal(ha, hb);
	}
	char target[64] = "";
	char pl[512];
	snprintf(pl, sizeof(pl), "%s/l", a);
	assert_int_equal(readlink(pl, target, sizeof(target)), 4);

	/* from a pipe (ISA-L on the caller's thread): the same */
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		size_t sl;
		uint8_t *sb = slurp(slug, &sl);
		for (size_t off = 0; off < sl;) {
			/* odd sizes: the magic and headers cut across reads */
			ssize_t n = write(p[1], sb + off, sl - off < 1 ? sl - off : 1);
			if (n <= 0)
				_exit(1);
			off += (size_t)n;
			if (off > 64 && off < sl)
				n = write(p[1], sb + off, sl - off < 4093 ? sl - off : 4093),
				off += n;
		}
		_exit(0);
	}
	close(p[1]);
	struct slug_info pi, fi;
	if (slug_inspect_fd(p[0], NULL, &pi, &err) < 0)
		fail_msg("from a pipe: %s", dy_error_msg(err));
	close(p[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_int_equal(slug_inspect(slug, NULL, &fi, &err), 0);
	assert_same_info(&pi, &fi);
	slug_info_clear(&pi);
	slug_info_clear(&fi);

	free(t);
	free(a);
	free(b);
	free(single);
	free(tar);
	free(slug);
}

/* A new slug (its name from what): plain_slug's tar as one gzip member. */
static char *gzip_slug(const char *what)
{
	char *tar = plain_slug(), *slug = tmp_path(what);
	size_t len;
	uint8_t *t = slurp(tar, &len);
	gzip_member(slug, t, len);
	free(t);
	free(tar);
	return slug;
}

/* Corrupt gzip slugs: refused with what was wrong (ISA-L checks every
 * member's CRC-32 and length, to the end of the stream). */
static void test_gzip_corrupt(void **state)
{
	char *slug = gzip_slug("good.slug");
	size_t len;
	uint8_t *z = slurp(slug, &len);
	struct slug_unpack_opts o;
	default_opts(&o);
	char *bad = tmp_path("bad.slug");

	z[len - 6] ^= 0x20; /* the CRC-32 */
	spill(bad, z, len);
	unpack_fails(bad, &o, "gzip: bad CRC-32 or length in the trailer of member 1");
	z[len - 6] ^= 0x20;
	z[len - 3] ^= 0x01; /* the length */
	spill(bad, z, len);
	unpack_fails(bad, &o, "gzip: bad CRC-32 or length in the trailer of member 1");
	z[len - 3] ^= 0x01;

	spill(bad, z, len - 4);
	unpack_fails(bad, &o, "gzip: truncated: the data ends inside member 1");
	spill(bad, z, len / 2);
	unpack_fails(bad, &o, "reading data: gzip: truncated: the data ends inside member 1");
	spill(bad, z, 12);
	unpack_fails(bad, &o,
	             "not a slug: gzip: truncated: the data ends inside member 1 after 12 bytes");

	/* bad deflate data in the first block: a reserved block type */
	z[10] |= 0x06;
	spill(bad, z, len);
	unpack_fails(bad, &o, "gzip: invalid data near byte 1");
	free(z);
	free(bad);
	free(slug);
}

/* A bomb after the tar's end (zeros in a later member): ISA-L inflates to
 * the end of the stream, against what is left of the unpacked budget. */
static void test_gzip_bomb_after_tar(void **state)
{
	char *slug = gzip_slug("bomb.slug");
	uint8_t *zeros = calloc(1, 8 << 20);
	assert_non_null(zeros);
	gzip_member(slug, zeros, 8 << 20);
	struct slug_unpack_opts o;
	default_opts(&o);
	o.limits.max_unpacked = 4 << 20;
	bool over = false;
	o.ret_over_limit = &over;
	unpack_fails(slug, &o,
	             "bytes after the end of its tar: the unpacked size would exceed "
	             "the limit of 4194304 bytes");
	assert_true(over);
	/* within the budget, the same slug is good */
	o.limits.max_unpacked = 16 << 20;
	o.ret_over_limit = NULL;
	char *dir = tmp_path("bomb");
	struct dy_error *err = NULL;
	if (slug_unpack(slug, dir, &o, NULL, &err) < 0)
		fail_msg("%s", dy_error_msg(err));
	free(dir);
	free(zeros);
	free(slug);
}

static void test_compression_names(void **state)
{
	enum slug_compression c;
	assert_int_equal(slug_compression_from_str("zstd", &c), 0);
	assert_int_equal(c, SLUG_COMPRESSION_ZSTD);
	assert_int_equal(slug_compression_from_str("gzip", &c), 0);
	assert_int_equal(c, SLUG_COMPRESSION_GZIP);
	assert_int_equal(slug_compression_from_str("none", &c), 0);
	assert_int_equal(c, SLUG_COMPRESSION_NONE);
	assert_true(slug_compression_from_str("xz", &c) < 0);
	assert_string_equal(slug_compression_str(SLUG_COMPRESSION_GZIP), "gzip");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_unpack_good_gzip),
	    cmocka_unit_test(test_unpack_good_zstd),
	    cmocka_unit_test(test_unpack_good_none),
	    cmocka_unit_test(test_unpack_refused),
	    cmocka_unit_test(test_unpacked_limit),
	    cmocka_unit_test(test_entries_limit),
	    cmocka_unit_test(test_compressed_limit),
	    cmocka_unit_test(test_procfile_required),
	    cmocka_unit_test(test_not_a_slug),
	    cmocka_unit_test(test_target_dir),
	    cmocka_unit_test(test_cancel),
	    cmocka_unit_test(test_inspect),
	    cmocka_unit_test(test_pack_deterministic),
	    cmocka_unit_test(test_pack_slugignore),
	    cmocka_unit_test(test_pack_refused),
	    cmocka_unit_test(test_store),
	    cmocka_unit_test(test_compression_names),
	    cmocka_unit_test(test_gzip_isal_and_zlib),
	    cmocka_unit_test(test_gzip_corrupt),
	    cmocka_unit_test(test_gzip_bomb_after_tar),
	    cmocka_unit_test(test_zstd_frames),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
