/* Reading a slug: the checks of slug-entry.c on every entry, then (unpack)
 * writing it under a directory fd without ever following a link: parents
 * are opened with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), files
 * are created O_EXCL | O_NOFOLLOW, and an entry under a link is refused
 * before anything is written for it. */
#include "slugs/slug.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "slugs/slug-decompress.h"
#include "slugs/slug-entry.h"
#include "slugs/slug-fs.h"

#define READ_BLOCK (256 * 1024)
/* The decompressor's output per call: the tar reader hands out pointers
 * into it */
#define DECODE_BLOCK (512 * 1024)

void slug_limits_default(struct slug_limits *l)
{
	l->max_compressed = SLUG_DEFAULT_MAX_COMPRESSED;
	l->max_unpacked = SLUG_DEFAULT_MAX_UNPACKED;
	l->max_entries = SLUG_DEFAULT_MAX_ENTRIES;
}

void slug_info_clear(struct slug_info *info)
{
	if (info == NULL)
		return;
	procfile_free(info->procfile);
	memset(info, 0, sizeof(*info));
}

const char *slug_compression_str(enum slug_compression c)
{
	switch (c) {
	case SLUG_COMPRESSION_GZIP:
		return "gzip";
	case SLUG_COMPRESSION_ZSTD:
		return "zstd";
	case SLUG_COMPRESSION_NONE:
		return "none";
	}
	return "unknown";
}

int slug_compression_from_str(const char *s, enum slug_compression *ret)
{
	if (strcmp(s, "gzip") == 0)
		*ret = SLUG_COMPRESSION_GZIP;
	else if (strcmp(s, "zstd") == 0)
		*ret = SLUG_COMPRESSION_ZSTD;
	else if (strcmp(s, "none") == 0)
		*ret = SLUG_COMPRESSION_NONE;
	else
		return -1;
	return 0;
}

/* Bytes come through here: counted against max_compressed and hashed, so
 * the id is the sha256 of exactly the bytes read. A gzip or zstd slug is
 * decompressed by slug-decompress.c (dc set: ISA-L, libzstd) and
 * libarchive reads a plain tar from it; else (a plain tar, or
 * DYNO_GUNZIP=zlib, DYNO_UNZSTD=libarchive) libarchive reads the bytes
 * with its own filters. */
struct reader {
	int fd;
	uint8_t *buf;
	uint64_t total;
	uint64_t max;
	struct dy_sha256 sha;
	int too_big;
	volatile sig_atomic_t *cancel;
	int hash;               /* compute the id (inspect); unpack does not need it */
	const uint8_t *pending; /* the first block, read to look at the magic */
	size_t pending_len;
	int errnum; /* of a failed raw_read: every later one fails the same */
	char errmsg[160];
	struct slug_dc *dc;
};

/* True once *cancel is set: by a signal handler (the CLI) or by another
 * thread (dynod stopping while a worker unpacks), hence the atomic load. */
static bool cancelled(volatile sig_atomic_t *cancel)
{
	return cancel && __atomic_load_n(cancel, __ATOMIC_RELAXED);
}

/* The slug's next bytes as they are in the file: n, 0 at its end, -1
 * (r->errnum, r->errmsg). */
static ssize_t raw_read(struct reader *r, const uint8_t **buf)
{
	if (r->errnum)
		return -1;
	if (r->pending_len > 0) {
		*buf = r->pending;
		ssize_t n = (ssize_t)r->pending_len;
		r->pending_len = 0;
		return n;
	}
	ssize_t n;
	do
		n = read(r->fd, r->buf, READ_BLOCK);
	while (n < 0 && errno == EINTR && !cancelled(r->cancel));
	if (n < 0) {
		r->errnum = errno;
		snprintf(r->errmsg, sizeof(r->errmsg), "read: %s", strerror(errno));
		return -1;
	}
	r->total += (uint64_t)n;
	if (r->total > r->max) {
		r->too_big = 1;
		r->errnum = EFBIG;
		snprintf(r->errmsg, sizeof(r->errmsg), "slug is larger than the limit");
		return -1;
	}
	if (r->hash)
		dy_sha256_update(&r->sha, r->buf, (size_t)n);
	*buf = r->buf;
	return n;
}

static ssize_t dc_source(void *arg, const uint8_t **buf)
{
	return raw_read(arg, buf);
}

static la_ssize_t reader_read(struct archive *a, void *ud, const void **buf)
{
	struct reader *r = ud;
	const uint8_t *b;
	ssize_t n = r->dc ? slug_dc_read(r->dc, &b) : raw_read(r, &b);
	if (n == -1 && r->dc) {
		archive_set_error(a, EILSEQ, "%s", slug_dc_error(r->dc));
		return -1;
	}
	if (n < 0) {
		archive_set_error(a, r->errnum, "%s", r->errmsg);
		return -1;
	}
	*buf = b;
	return n;
}

/* The id of a slug that is a regular file is hashed by a thread of its
 * own, reading the file with pread beside the walk: hashing costs about
 * as much as decompressing, and the two then overlap. */
struct hasher {
	pthread_t thread;
	int fd;
	off_t off;
	uint64_t len;
	int err;  /* errno of a failed read */
	int stop; /* set (atomic) when the walk ends early */
	struct dy_sha256 sha;
};

static void *hasher_run(void *arg)
{
	struct hasher *h = arg;
	uint8_t *buf = malloc(READ_BLOCK);
	if (buf == NULL) {
		h->err = ENOMEM;
		return NULL;
	}
	while (!__atomic_load_n(&h->stop, __ATOMIC_RELAXED)) {
		ssize_t n = pread(h->fd, buf, READ_BLOCK, h->off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			h->err = errno;
			break;
		}
		if (n == 0)
			break;
		dy_sha256_update(&h->sha, buf, (size_t)n);
		h->off += n;
		h->len += (uint64_t)n;
	}
	free(buf);
	return NULL;
}

/* Starts hashing fd from its offset on a thread that takes no signal.
 * Returns false when it could not start (then the reader hashes). */
static bool hasher_start(struct hasher *h, int fd)
{
	memset(h, 0, sizeof(*h));
	h->fd = fd;
	h->off = lseek(fd, 0, SEEK_CUR);
	if (h->off < 0)
		return false;
	dy_sha256_init(&h->sha);
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int r = pthread_create(&h->thread, NULL, hasher_run, h);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return r == 0;
}

/* Waits for the hash (stopping it first when stop). Returns 0, or an
 * errno when it did not read the same total bytes as the walk. */
static int hasher_end(struct hasher *h, bool stop, uint64_t total)
{
	if (stop)
		__atomic_store_n(&h->stop, 1, __ATOMIC_RELAXED);
	pthread_join(h->thread, NULL);
	if (stop)
		return 0;
	if (h->err)
		return h->err;
	return h->len == total ? 0 : EIO; /* the file changed under the walk */
}

/* libarchive's message, never NULL. */
static const char *archive_err(struct archive *a)
{
	const char *s = archive_error_string(a);
	return s ? s : "unexpected end of data";
}

struct walk {
	struct archive *a;
	const struct slug_unpack_opts *opts;
	struct slug_tree *tree;
	int rootfd; /* -1: inspect only */
	/* slug_check_unpack_fd: writing is best effort. Past write_limit
	 * bytes of data, or once a write failed, write_off is set and the
	 * walk goes on as an inspect. */
	bool best_effort;
	bool write_off;
	uint64_t write_limit;
	char *cache_dir;
	int cache_fd;
	uint64_t unpacked;
	uint64_t entries;
	char *procfile;
	size_t procfile_len;
	int procfile_seen;
	int procfile_too_big;
};

static int entry_error(struct dy_error **err, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int entry_error(struct dy_error **err, const char *name, const char *fmt, ...)
{
	char q[512], msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return dy_error(err, "refused entry \"%s\": %s", slug_entry_quote(name, q, sizeof(q)), msg);
}

/* A write (not a check) failed with *err: in best-effort mode writing
 * stops and the walk goes on (returns 0, *err cleared); else returns
 * -1. */
static int write_failed(struct walk *w, struct dy_error **err)
{
	if (!w->best_effort || cancelled(w->opts->cancel))
		return -1;
	w->write_off = true;
	dy_error_free(err);
	return 0;
}

static int open_beneath(int rootfd, const char *path)
{
	struct open_how how = {
	    .flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
	    .resolve =
	        RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
	};
	return (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
}

static void chown_fd(const struct walk *w, int fd)
{
	if (w->opts->chown && fchown(fd, w->opts->uid, w->opts->gid) < 0) {
		/* reported by the caller's later checks; nothing to undo here */
	}
}

/* Opens (creating as needed) the directory dir (relative to the root,
 * "" for the root itself). Returns a borrowed fd (the cache owns it) or
 * < 0. */
static int parent_fd(struct walk *w, const char *dir, struct dy_error **err)
{
	if (dir[0] == '\0')
		return w->rootfd;
	if (w->cache_dir && strcmp(w->cache_dir, dir) == 0)
		return w->cache_fd;
	int fd = open_beneath(w->rootfd, dir);
	if (fd < 0 && errno == ENOENT) {
		/* Implicit parents (an archive may list app/a/b before or
		 * without app/a/): create each missing one, never through a
		 * link (the tree refused entries under links already). */
		char path[SLUG_PATH_MAX + 1];
		snprintf(path, sizeof(path), "%s", dir);
		for (char *p = path;; p++) {
			if (*p != '/' && *p != '\0')
				continue;
			char saved = *p;
			*p = '\0';
			if (mkdirat(w->rootfd, path, 0755) == 0) {
				int dfd = open_beneath(w->rootfd, path);
				if (dfd >= 0) {
					chown_fd(w, dfd);
					close(dfd);
				}
			} else if (errno != EEXIST) {
				return dy_error_errno(err, errno, "mkdir app/%s", path);
			}
			*p = saved;
			if (saved == '\0')
				break;
		}
		fd = open_beneath(w->rootfd, dir);
	}
	if (fd < 0)
		return dy_error_errno(err, errno, "open app/%s", dir);
	if (w->cache_fd >= 0)
		close(w->cache_fd);
	free(w->cache_dir);
	w->cache_dir = strdup(dir);
	w->cache_fd = fd;
	if (w->cache_dir == NULL) {
		close(fd);
		w->cache_fd = -1;
		return dy_error_errno(err, ENOMEM, "unpack");
	}
	return fd;
}

static void split(const char *rel, char *dir, const char **base)
{
	const char *slash = strrchr(rel, '/');
	if (slash == NULL) {
		dir[0] = '\0';
		*base = rel;
		return;
	}
	memcpy(dir, rel, (size_t)(slash - rel));
	dir[slash - rel] = '\0';
	*base = slash + 1;
}

static int procfile_take(struct walk *w, const void *buf, size_t len)
{
	if (w->procfile_too_big)
		return 0;
	if (w->procfile_len + len > PROCFILE_MAX_BYTES) {
		w->procfile_too_big = 1;
		return 0;
	}
	char *np = realloc(w->procfile, w->procfile_len + len + 1);
	if (np == NULL)
		return -1;
	memcpy(np + w->procfile_len, buf, len);
	w->procfile = np;
	w->procfile_len += len;
	return 0;
}

/* Reads (and writes to fd when fd >= 0) the data of the current entry. */
static int copy_data(struct walk *w, const char *name, int fd, int is_procfile, int64_t size,
                     struct dy_error **err)
{
	const void *buf;
	size_t len;
	la_int64_t offset;
	int64_t pos = 0;
	for (;;) {
		if (cancelled(w->opts->cancel))
			return dy_error(err, "interrupted");
		int r = archive_read_data_block(w->a, &buf, &len, &offset);
		if (r == ARCHIVE_EOF)
			break;
		if (r < ARCHIVE_OK)
			return entry_error(err, name, "reading data: %s", archive_err(w->a));
		w->unpacked += len;
		if (w->unpacked > w->opts->limits.max_unpacked) {
			if (w->opts->ret_over_limit)
				*w->opts->ret_over_limit = true;
			return entry_error(err, name,
			                   "unpacked size would exceed the limit of %llu bytes",
			                   (unsigned long long)w->opts->limits.max_unpacked);
		}
		if (is_procfile && procfile_take(w, buf, len) < 0)
			return dy_error_errno(err, ENOMEM, "Procfile");
		if (fd >= 0 && w->best_effort && w->unpacked > w->write_limit)
			w->write_off = true;
		if (w->write_off)
			fd = -1; /* the rest is only read */
		if (fd < 0)
			continue;
		if (offset != pos) {
			/* sparse entry: leave a hole */
			if (lseek(fd, offset, SEEK_SET) < 0) {
				dy_error_errno(err, errno, "seek app entry %s", name);
				if (write_failed(w, err) < 0)
					return -1;
				fd = -1;
				continue;
			}
			pos = offset;
		}
		const char *p = buf;
		while (len > 0) {
			ssize_t n = write(fd, p, len);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				dy_error_errno(err, errno, "write %s", name);
				if (write_failed(w, err) < 0)
					return -1;
				fd = -1;
				break;
			}
			p += n;
			len -= (size_t)n;
			pos += n;
		}
	}
	if (fd >= 0 && size > pos && ftruncate(fd, size) < 0) {
		dy_error_errno(err, errno, "truncate %s", name);
		return write_failed(w, err);
	}
	return 0;
}

/* Writes the entry under rootfd; *data_read is set once the entry's
 * data went through copy_data (whose own write errors are handled
 * there). */
static int put_entry(struct walk *w, struct archive_entry *e, const char *name, const char *rel,
                     enum slug_entry_type type, const char *target, int is_procfile,
                     bool *data_read, struct dy_error **err)
{
	if (rel[0] == '\0')
		return 0; /* app/ itself is the root */

	char dir[SLUG_PATH_MAX + 1];
	const char *base;
	split(rel, dir, &base);
	int pfd = parent_fd(w, dir, err);
	if (pfd < 0)
		return pfd;
	mode_t mode = archive_entry_perm(e) & 0777; /* no setuid, setgid, sticky */

	switch (type) {
	case SLUG_ENTRY_DIR: {
		if (mkdirat(pfd, base, 0700) < 0 && errno != EEXIST)
			return dy_error_errno(err, errno, "mkdir app/%s", rel);
		int dfd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dfd < 0)
			return dy_error_errno(err, errno, "open app/%s", rel);
		chown_fd(w, dfd);
		/* The owner keeps rwx so later entries can be written in it. */
		int r = fchmod(dfd, mode | 0700);
		close(dfd);
		if (r < 0)
			return dy_error_errno(err, errno, "chmod app/%s", rel);
		return 0;
	}
	case SLUG_ENTRY_FILE: {
		int fd =
		    openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 && errno == EEXIST) {
			/* the same file again: the later one wins, as with tar */
			if (unlinkat(pfd, base, 0) < 0)
				return dy_error_errno(err, errno, "replace app/%s", rel);
			fd = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			            0600);
		}
		if (fd < 0)
			return dy_error_errno(err, errno, "create app/%s", rel);
		int64_t size = archive_entry_size_is_set(e) ? archive_entry_size(e) : 0;
		*data_read = true;
		int r = copy_data(w, name, fd, is_procfile, size, err);
		if (r == 0 && !w->write_off) {
			chown_fd(w, fd);
			if (fchmod(fd, mode) < 0) {
				dy_error_errno(err, errno, "chmod app/%s", rel);
				r = write_failed(w, err);
			}
		}
		if (r == 0 && !w->write_off) {
			struct timespec ts[2] = {
			    {.tv_sec = archive_entry_mtime(e),
			     .tv_nsec = archive_entry_mtime_nsec(e)},
			    {.tv_sec = archive_entry_mtime(e),
			     .tv_nsec = archive_entry_mtime_nsec(e)},
			};
			if (futimens(fd, ts) < 0) {
				dy_error_errno(err, errno, "set times of app/%s", rel);
				r = write_failed(w, err);
			}
		}
		close(fd);
		return r;
	}
	case SLUG_ENTRY_LINK:
		if (symlinkat(target, pfd, base) < 0) {
			if (errno != EEXIST)
				return dy_error_errno(err, errno, "symlink app/%s", rel);
			/* the same link again: the later one wins */
			if (unlinkat(pfd, base, 0) < 0 || symlinkat(target, pfd, base) < 0)
				return dy_error_errno(err, errno, "symlink app/%s", rel);
		}
		if (w->opts->chown &&
		    fchownat(pfd, base, w->opts->uid, w->opts->gid, AT_SYMLINK_NOFOLLOW) < 0)
			return dy_error_errno(err, errno, "chown app/%s", rel);
		return 0;
	case SLUG_ENTRY_HARDLINK:
		if (linkat(w->rootfd, target, pfd, base, 0) < 0) {
			if (errno != EEXIST)
				return dy_error_errno(err, errno, "link app/%s", rel);
			if (unlinkat(pfd, base, 0) < 0 ||
			    linkat(w->rootfd, target, pfd, base, 0) < 0)
				return dy_error_errno(err, errno, "link app/%s", rel);
		}
		return 0;
	case SLUG_ENTRY_NONE:
		break;
	}
	return dy_error(err, "unexpected entry type");
}

static int write_entry(struct walk *w, struct archive_entry *e, const char *name, const char *rel,
                       enum slug_entry_type type, const char *target, int is_procfile,
                       struct dy_error **err)
{
	bool data_read = false;
	if (w->rootfd >= 0 && !w->write_off) {
		int r = put_entry(w, e, name, rel, type, target, is_procfile, &data_read, err);
		if (r == 0 || data_read)
			return r; /* copy_data and what follows it handled write errors */
		if (write_failed(w, err) < 0)
			return -1;
	}
	/* inspect, or writing stopped: the checks read the data on */
	if (type == SLUG_ENTRY_FILE && !data_read)
		return copy_data(w, name, -1, is_procfile, 0, err);
	return 0;
}

static int walk_entry(struct walk *w, struct archive_entry *e, struct dy_error **err)
{
	const char *name = archive_entry_pathname(e);
	if (name == NULL)
		return dy_error(err, "refused entry #%llu: name is not readable",
		                (unsigned long long)w->entries);
	if (++w->entries > w->opts->limits.max_entries)
		return entry_error(err, name, "the slug has more than %llu entries (the limit)",
		                   (unsigned long long)w->opts->limits.max_entries);

	_cleanup_free_ char *rel = NULL;
	struct dy_error *e2 = NULL;
	int r = slug_entry_normalize(name, &rel, &e2);
	if (r == 1)
		return 0;
	if (r < 0) {
		entry_error(err, name, "%s", dy_error_msg(e2));
		dy_error_free(&e2);
		return -1;
	}

	enum slug_entry_type type;
	_cleanup_free_ char *hl_rel = NULL;
	const char *target = NULL;
	const char *hardlink = archive_entry_hardlink(e);
	if (hardlink != NULL) {
		type = SLUG_ENTRY_HARDLINK;
		r = slug_entry_normalize(hardlink, &hl_rel, &e2);
		if (r != 0) {
			char q[512];
			entry_error(err, name, "hard link to \"%s\" outside app/ (%s)",
			            slug_entry_quote(hardlink, q, sizeof(q)),
			            r < 0 ? dy_error_msg(e2) : "the archive root");
			dy_error_free(&e2);
			return -1;
		}
		target = hl_rel;
	} else {
		switch (archive_entry_filetype(e)) {
		case AE_IFREG:
			type = SLUG_ENTRY_FILE;
			break;
		case AE_IFDIR:
			type = SLUG_ENTRY_DIR;
			break;
		case AE_IFLNK:
			type = SLUG_ENTRY_LINK;
			target = archive_entry_symlink(e);
			if (target == NULL)
				return entry_error(err, name, "link without a readable target");
			break;
		case AE_IFCHR:
			return entry_error(err, name, "character device nodes are not allowed");
		case AE_IFBLK:
			return entry_error(err, name, "block device nodes are not allowed");
		case AE_IFIFO:
			return entry_error(err, name, "fifos are not allowed");
		case AE_IFSOCK:
			return entry_error(err, name, "sockets are not allowed");
		default:
			return entry_error(err, name, "unknown entry type 0%o",
			                   (unsigned)archive_entry_filetype(e));
		}
	}

	if (type == SLUG_ENTRY_FILE && archive_entry_size_is_set(e)) {
		int64_t size = archive_entry_size(e);
		uint64_t left = w->opts->limits.max_unpacked - w->unpacked;
		/* Refused before a byte is written: a bomb stops here. */
		if (size < 0 || (uint64_t)size > left) {
			if (w->opts->ret_over_limit)
				*w->opts->ret_over_limit = true;
			return entry_error(
			    err, name,
			    "declares %lld bytes; the unpacked size would exceed the "
			    "limit of %llu bytes",
			    (long long)size, (unsigned long long)w->opts->limits.max_unpacked);
		}
	}

	if (type == SLUG_ENTRY_FILE && archive_entry_size_is_set(e) && w->best_effort &&
	    (w->unpacked > w->write_limit ||
	     (uint64_t)archive_entry_size(e) > w->write_limit - w->unpacked))
		w->write_off = true; /* past the write limit: the check reads on */

	if (slug_tree_add(w->tree, rel, type, target, &e2) < 0) {
		entry_error(err, name, "%s", dy_error_msg(e2));
		dy_error_free(&e2);
		return -1;
	}

	int is_procfile = strcmp(rel, "Procfile") == 0;
	if (is_procfile) {
		if (type != SLUG_ENTRY_FILE)
			return entry_error(err, name,
			                   "the Procfile must be a regular file, not a %s",
			                   slug_entry_type_str(type));
		/* A later Procfile entry replaces the earlier one. */
		free(w->procfile);
		w->procfile = NULL;
		w->procfile_len = 0;
		w->procfile_too_big = 0;
		w->procfile_seen = 1;
	}
	return write_entry(w, e, name, rel, type, target, is_procfile, err);
}

/* Passes over a slug's archive (each one decompresses it) in this
 * process: slug_read_passes(). */
static uint64_t read_passes;

uint64_t slug_read_passes(void)
{
	return __atomic_load_n(&read_passes, __ATOMIC_RELAXED);
}

/* Decompresses what is left of the stream once the tar ended. */
static int drain_dc(struct walk *w, struct reader *rd, struct dy_error **err)
{
	uint64_t left = w->opts->limits.max_unpacked - w->unpacked, after = 0;
	for (;;) {
		const uint8_t *b;
		ssize_t n = slug_dc_read(rd->dc, &b);
		if (n == 0)
			return 0;
		if (n == -1)
			return dy_error(err, "slug is damaged after %llu entries: %s",
			                (unsigned long long)w->entries, slug_dc_error(rd->dc));
		if (n < 0) {
			if (rd->too_big)
				return dy_error(err, "slug is over the limit of %llu bytes",
				                (unsigned long long)w->opts->limits.max_compressed);
			return dy_error(err, "slug is damaged after %llu entries: %s",
			                (unsigned long long)w->entries, rd->errmsg);
		}
		after += (uint64_t)n;
		if (after > left) {
			if (w->opts->ret_over_limit)
				*w->opts->ret_over_limit = true;
			return dy_error(
			    err,
			    "slug has more than %llu bytes after the end of its tar: the "
			    "unpacked size would exceed the limit of %llu bytes",
			    (unsigned long long)left,
			    (unsigned long long)w->opts->limits.max_unpacked);
		}
		if (cancelled(w->opts->cancel))
			return dy_error(err, "interrupted");
	}
}

/* Reads every entry of the slug at fd; writes under rootfd unless it is
 * -1. Fills info (the id when hash). With ret_complete, writing is best
 * effort up to write_limit bytes of data (struct walk) and
 * *ret_complete says whether rootfd got the whole tree. */
static int walk_slug(int fd, int rootfd, const struct slug_unpack_opts *opts, bool hash,
                     uint64_t write_limit, struct slug_info *info, bool *ret_complete,
                     struct dy_error **err)
{
	struct reader rd = {
	    .fd = fd, .max = opts->limits.max_compressed, .cancel = opts->cancel, .hash = hash};
	la_int64_t end_of_entries = 0;
	struct walk w = {.opts = opts,
	                 .rootfd = rootfd,
	                 .cache_fd = -1,
	                 .best_effort = ret_complete != NULL,
	                 .write_limit = write_limit};
	int r = -1;

	struct stat st;
	bool regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
	if (regular && (uint64_t)st.st_size > opts->limits.max_compressed)
		return dy_error(err, "slug is %llu bytes, over the limit of %llu bytes",
		                (unsigned long long)st.st_size,
		                (unsigned long long)opts->limits.max_compressed);
	struct hasher hasher;
	bool hashing = hash && regular && hasher_start(&hasher, fd);
	if (hashing)
		rd.hash = 0; /* the hasher's */

	rd.buf = malloc(READ_BLOCK);
	w.tree = slug_tree_new();
	w.a = archive_read_new();
	if (rd.buf == NULL || w.tree == NULL || w.a == NULL) {
		dy_error_errno(err, ENOMEM, "read slug");
		goto out;
	}
	dy_sha256_init(&rd.sha);
	/* The first block tells gzip (1f 8b) and zstd (28 b5 2f fd) from the
	 * rest; a read error here is reported by the archive_read_open
	 * below, as any other. */
	ssize_t first = raw_read(&rd, &rd.pending);
	if (first > 0)
		rd.pending_len = (size_t)first;
	enum slug_dc_kind kind = SLUG_DC_GZIP;
	bool dc = false;
	if (first >= 2 && memcmp(rd.pending, "\x1f\x8b", 2) == 0)
		dc = slug_dc_wanted(kind = SLUG_DC_GZIP);
	else if (first >= 4 && memcmp(rd.pending, "\x28\xb5\x2f\xfd", 4) == 0)
		dc = slug_dc_wanted(kind = SLUG_DC_ZSTD);
	if (dc) {
		rd.dc = slug_dc_new(kind, dc_source, &rd, DECODE_BLOCK);
		if (rd.dc == NULL) {
			dy_error_errno(err, ENOMEM, "read slug");
			goto out;
		}
		slug_dc_push_input(rd.dc, rd.pending, rd.pending_len);
		rd.pending_len = 0;
		/* From a file (not a pipe, whose read may block past a stop)
		 * it decompresses on a thread of its own, ahead of the walk. */
		if (regular)
			slug_dc_start_thread(rd.dc);
	} else {
		archive_read_support_filter_gzip(w.a);
		archive_read_support_filter_zstd(w.a);
	}
	archive_read_support_format_tar(w.a);
	__atomic_add_fetch(&read_passes, 1, __ATOMIC_RELAXED);
	if (archive_read_open(w.a, &rd, NULL, reader_read, NULL) != ARCHIVE_OK) {
		dy_error(err, "not a slug: %s", archive_err(w.a));
		goto out;
	}
	for (;;) {
		if (cancelled(opts->cancel)) {
			dy_error(err, "interrupted");
			goto out;
		}
		struct archive_entry *e;
		int ar = archive_read_next_header(w.a, &e);
		if (ar == ARCHIVE_EOF) {
			/* libarchive takes a tar cut at an entry boundary for a
			 * complete one; a slug must end with the end-of-archive
			 * blocks (two zero blocks, at least one here), or it was
			 * truncated on the way. */
			if (archive_filter_bytes(w.a, 0) - end_of_entries < 512) {
				dy_error(err,
				         "slug is truncated: no end-of-archive marker after %llu "
				         "entries",
				         (unsigned long long)w.entries);
				goto out;
			}
			break;
		}
		if (ar < ARCHIVE_WARN || (ar == ARCHIVE_WARN && e == NULL)) {
			slug_dc_stop_thread(rd.dc); /* rd is this thread's again */
			if (rd.too_big)
				dy_error(err, "slug is over the limit of %llu bytes",
				         (unsigned long long)opts->limits.max_compressed);
			else if (w.entries == 0)
				dy_error(err, "not a slug (a tar, optionally gzip or zstd): %s",
				         archive_err(w.a));
			else
				dy_error(err, "slug is damaged after %llu entries: %s",
				         (unsigned long long)w.entries, archive_err(w.a));
			goto out;
		}
		if (walk_entry(&w, e, err) < 0) {
			slug_dc_stop_thread(rd.dc);
			if (rd.too_big) {
				dy_error_free(err);
				dy_error(err, "slug is over the limit of %llu bytes",
				         (unsigned long long)opts->limits.max_compressed);
			}
			goto out;
		}
		if (archive_read_data_skip(w.a) < ARCHIVE_WARN) {
			dy_error(err, "slug is damaged after %llu entries: %s",
			         (unsigned long long)w.entries, archive_err(w.a));
			goto out;
		}
		end_of_entries = archive_filter_bytes(w.a, 0);
	}
	if (slug_tree_check_links(w.tree, err) < 0)
		goto out;
	if (!w.procfile_seen) {
		dy_error(err, "no Procfile: a slug needs app/Procfile");
		goto out;
	}
	if (w.procfile_too_big) {
		dy_error(err, "Procfile is larger than %d bytes", PROCFILE_MAX_BYTES);
		goto out;
	}
	struct procfile *pf = NULL;
	if (procfile_parse(w.procfile ? w.procfile : "", w.procfile_len, &pf, err) < 0)
		goto out;

	snprintf(info->compression, sizeof(info->compression), "%s",
	         rd.dc ? (kind == SLUG_DC_GZIP ? "gzip" : "zstd") : archive_filter_name(w.a, 0));
	/* Decompressed to the end of the stream, so every gzip member's
	 * CRC-32 and length (every zstd frame's checksum) are checked; what
	 * follows the tar's end counts against what is left of the unpacked
	 * budget (a bomb there too). */
	if (rd.dc && drain_dc(&w, &rd, err) < 0) {
		procfile_free(pf);
		goto out;
	}
	slug_dc_stop_thread(rd.dc); /* it ended: the raw reads are this thread's */
	/* The id covers every byte of the file, also what follows the end of
	 * the tar (padding). */
	for (;;) {
		const uint8_t *b;
		if (raw_read(&rd, &b) <= 0)
			break;
	}
	if (rd.too_big) {
		procfile_free(pf);
		dy_error(err, "slug is over the limit of %llu bytes",
		         (unsigned long long)opts->limits.max_compressed);
		goto out;
	}
	if (hashing) {
		hashing = false;
		int e = hasher_end(&hasher, false, rd.total);
		if (e != 0) {
			procfile_free(pf);
			dy_error_errno(err, e, "read the slug to hash it");
			goto out;
		}
		rd.sha = hasher.sha;
	}
	if (hash) {
		uint8_t digest[DY_SHA256_LEN];
		dy_sha256_final(&rd.sha, digest);
		dy_sha256_hex(digest, info->id);
	}
	info->size = rd.total;
	info->unpacked_size = w.unpacked;
	info->entries = w.entries;
	info->procfile = pf;
	if (ret_complete)
		*ret_complete = !w.write_off;
	r = 0;
out:
	if (hashing)
		hasher_end(&hasher, true, 0);
	if (r < 0 && cancelled(opts->cancel) && err) {
		dy_error_free(err);
		dy_error(err, "interrupted");
	}
	if (w.a)
		archive_read_free(w.a);
	if (w.cache_fd >= 0)
		close(w.cache_fd);
	free(w.cache_dir);
	free(w.procfile);
	slug_tree_free(w.tree);
	slug_dc_free(rd.dc);
	free(rd.buf);
	return r;
}

static int open_slug(const char *file, struct dy_error **err)
{
	int fd = strcmp(file, "-") == 0 ? dup(STDIN_FILENO)
	                                : open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return dy_error_errno(err, errno, "open %s", file);
	return fd;
}

int slug_inspect_fd(int fd, const struct slug_limits *limits, struct slug_info *ret_info,
                    struct dy_error **err)
{
	struct slug_unpack_opts opts = {0};
	if (limits)
		opts.limits = *limits;
	else
		slug_limits_default(&opts.limits);
	memset(ret_info, 0, sizeof(*ret_info));
	return walk_slug(fd, -1, &opts, true, 0, ret_info, NULL, err);
}

int slug_check_unpack_fd(int fd, int rootfd, const struct slug_unpack_opts *opts,
                         uint64_t write_limit, struct slug_info *ret_info, bool *ret_complete,
                         struct dy_error **err)
{
	struct slug_unpack_opts o = *opts;
	o.ret_over_limit = NULL;
	o.name = NULL;
	memset(ret_info, 0, sizeof(*ret_info));
	*ret_complete = false;
	return walk_slug(fd, rootfd, &o, true, write_limit, ret_info, ret_complete, err);
}

int slug_inspect(const char *file, const struct slug_limits *limits, struct slug_info *ret_info,
                 struct dy_error **err)
{
	_cleanup_close_ int fd = open_slug(file, err);
	if (fd < 0)
		return fd;
	if (slug_inspect_fd(fd, limits, ret_info, err) < 0)
		return dy_error_prefix(err, "%s", file);
	return 0;
}

int slug_unpack(const char *file, const char *dir, const struct slug_unpack_opts *opts,
                struct slug_info *ret_info, struct dy_error **err)
{
	struct stat st;
	if (lstat(dir, &st) == 0)
		return dy_error(err, "%s already exists", dir);
	if (errno != ENOENT)
		return dy_error_errno(err, errno, "%s", dir);

	_cleanup_free_ char *copy = strdup(dir);
	if (copy == NULL)
		return dy_error_errno(err, ENOMEM, "unpack");
	size_t len = strlen(copy);
	while (len > 1 && copy[len - 1] == '/')
		copy[--len] = '\0';
	char *slash = strrchr(copy, '/');
	const char *base = slash ? slash + 1 : copy;
	_cleanup_free_ char *parent =
	    slash ? strndup(copy, slash == copy ? 1 : (size_t)(slash - copy)) : strdup(".");
	if (parent == NULL)
		return dy_error_errno(err, ENOMEM, "unpack");
	if (base[0] == '\0' || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
		return dy_error(err, "%s: not a directory name to create", dir);
	if (stat(parent, &st) < 0)
		return dy_error_errno(err, errno, "parent directory %s of %s", parent, dir);
	if (!S_ISDIR(st.st_mode))
		return dy_error(err, "parent %s of %s is not a directory", parent, dir);

	_cleanup_close_ int fd = open_slug(file, err);
	if (fd < 0)
		return fd;

	_cleanup_free_ char *tmp = NULL;
	if (asprintf(&tmp, "%s/.%s.unpack-XXXXXX", parent, base) < 0)
		return dy_error_errno(err, ENOMEM, "unpack");
	if (mkdtemp(tmp) == NULL)
		return dy_error_errno(err, errno, "create a directory beside %s", dir);
	int rootfd = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rootfd < 0) {
		int e = errno;
		rmdir(tmp);
		return dy_error_errno(err, e, "open %s", tmp);
	}

	struct slug_info info = {0};
	int r = walk_slug(fd, rootfd, opts, false, 0, &info, NULL, err);
	if (r == 0 && opts->chown && fchown(rootfd, opts->uid, opts->gid) < 0)
		r = dy_error_errno(err, errno, "chown %s", dir);
	if (r == 0 && fchmod(rootfd, 0755) < 0)
		r = dy_error_errno(err, errno, "chmod %s", dir);
	close(rootfd);
	if (r == 0 && renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_NOREPLACE) < 0)
		r = dy_error_errno(err, errno, "rename to %s", dir);
	if (r < 0) {
		slug_fs_remove_tree(AT_FDCWD, tmp);
		slug_info_clear(&info);
		return dy_error_prefix(err, "%s", opts->name ? opts->name : file);
	}
	if (ret_info)
		*ret_info = info;
	else
		slug_info_clear(&info);
	return 0;
}
