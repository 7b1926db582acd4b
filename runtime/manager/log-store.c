/* An app's log on disk: two segments rotated (log-store.h). */
#include "runtime/manager/log-store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/macro.h"

#define LSTORE_FLUSH_AT (256 * 1024)
#define SEG_CUR         "log"
#define SEG_OLD         "log.1"

struct lstore {
	int dfd; /* the app's directory */
	int fd;  /* SEG_CUR, O_RDWR | O_APPEND (pread ignores O_APPEND) */
	uint32_t max_lines;
	uint32_t cur_lines; /* in SEG_CUR, the buffer included */
	char *pend;         /* lines written by the next flush */
	size_t pend_len, pend_cap;
	uint64_t lost;
};

static int rotate(struct lstore *s, struct dy_error **err);

bool lstore_parse(const char *line, size_t len, struct lstore_parts *ret)
{
	const char *sp = memchr(line, ' ', MIN(len, (size_t)64));
	if (sp == NULL || sp == line)
		return false;
	const char *src = sp + 1;
	const char *end = line + len;
	const char *lb = memchr(src, '[', MIN((size_t)(end - src), (size_t)32));
	if (lb == NULL || lb == src)
		return false;
	const char *proc = lb + 1;
	const char *rb = memchr(proc, ']', MIN((size_t)(end - proc), (size_t)64));
	if (rb == NULL || rb == proc || end - rb < 3 || rb[1] != ':' || rb[2] != ' ')
		return false;
	ret->source = src;
	ret->source_len = (size_t)(lb - src);
	ret->proc = proc;
	ret->proc_len = (size_t)(rb - proc);
	ret->msg = rb + 3;
	ret->msg_len = (size_t)(end - ret->msg);
	ret->prefix_len = (size_t)(ret->msg - line);
	return true;
}

bool lstore_match(const struct lstore_filter *f, const char *line, size_t len)
{
	if (f == NULL || (f->dyno == NULL && f->source == NULL))
		return true;
	struct lstore_parts p;
	if (!lstore_parse(line, len, &p))
		return false;
	if (f->source &&
	    (strlen(f->source) != p.source_len || memcmp(f->source, p.source, p.source_len) != 0))
		return false;
	if (f->dyno) {
		size_t n = strlen(f->dyno);
		bool exact = n == p.proc_len && memcmp(f->dyno, p.proc, n) == 0;
		/* "web" is the process type: every web.N */
		bool type = strchr(f->dyno, '.') == NULL && p.proc_len > n &&
		            memcmp(f->dyno, p.proc, n) == 0 && p.proc[n] == '.';
		if (!exact && !type)
			return false;
	}
	return true;
}

/* Drops a last line without its newline (cut by a crash mid-write), and
 * counts the lines. Returns 0 or < 0. */
static int scan_current(struct lstore *s, struct dy_error **err)
{
	struct stat st;
	if (fstat(s->fd, &st) < 0)
		return dy_error_errno(err, errno, "log: stat");
	if (st.st_size == 0)
		return 0;
	_cleanup_free_ char *data = malloc((size_t)st.st_size);
	if (data == NULL)
		return dy_error_errno(err, ENOMEM, "log: %lld bytes", (long long)st.st_size);
	ssize_t n = pread(s->fd, data, (size_t)st.st_size, 0);
	if (n < 0)
		return dy_error_errno(err, errno, "log: read");
	size_t whole = 0;
	for (ssize_t i = 0; i < n; i++) {
		if (data[i] == '\n') {
			s->cur_lines++;
			whole = (size_t)i + 1;
		}
	}
	if (whole < (size_t)n && ftruncate(s->fd, (off_t)whole) < 0)
		return dy_error_errno(err, errno, "log: truncate the cut line");
	return 0;
}

int lstore_open(const char *dir, uint32_t max_lines, struct lstore **ret, struct dy_error **err)
{
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return dy_error_errno(err, errno, "open %s", dir);
	int fd = openat(dfd, SEG_CUR, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return dy_error_errno(err, errno, "open %s/" SEG_CUR, dir);
	struct lstore *s = calloc(1, sizeof(*s));
	if (s == NULL) {
		close(fd);
		return dy_error_errno(err, ENOMEM, "log store");
	}
	s->dfd = TAKE_FD(dfd);
	s->fd = fd;
	s->max_lines = MAX(max_lines, 1u);
	/* an older file of another mode (by hand): the log is root's */
	fchmod(fd, 0600);
	int r = scan_current(s, err);
	if (r == 0 && s->cur_lines >= s->max_lines)
		r = rotate(s, err); /* logs.lines was lowered */
	if (r < 0) {
		lstore_free(s);
		return r;
	}
	*ret = s;
	return 0;
}

static int pend_add(struct lstore *s, const char *p, size_t n)
{
	if (s->pend_len + n > s->pend_cap) {
		size_t cap = MAX(s->pend_cap * 2, s->pend_len + n + 4096);
		char *np = realloc(s->pend, cap);
		if (np == NULL)
			return -ENOMEM;
		s->pend = np;
		s->pend_cap = cap;
	}
	memcpy(s->pend + s->pend_len, p, n);
	s->pend_len += n;
	return 0;
}

/* One stored line: prefix, then body, then '\n'. */
static void add_line(struct lstore *s, const char *prefix, size_t plen, const char *body,
                     size_t blen, lstore_line_fn fn, void *ctx)
{
	char line[LSTORE_LINE_MAX + 1];
	plen = MIN(plen, (size_t)LSTORE_LINE_MAX - LSTORE_MSG_MAX);
	blen = MIN(blen, (size_t)LSTORE_MSG_MAX);
	memcpy(line, prefix, plen);
	memcpy(line + plen, body, blen);
	if (fn)
		fn(ctx, line, plen + blen);
	line[plen + blen] = '\n';
	if (pend_add(s, line, plen + blen + 1) < 0) {
		s->lost++;
		return;
	}
	s->cur_lines++;
	if (s->pend_len >= LSTORE_FLUSH_AT)
		lstore_flush(s, NULL);
}

void lstore_append(struct lstore *s, const char *line, size_t len, lstore_line_fn fn, void *ctx)
{
	struct lstore_parts p;
	size_t plen = 0;
	if (lstore_parse(line, len, &p))
		plen = p.prefix_len;
	const char *body = line + plen;
	size_t blen = len - plen;
	do {
		/* a newline ends a line: what follows is a line of its own */
		const char *nl = memchr(body, '\n', blen);
		size_t take = nl ? (size_t)(nl - body) : blen;
		size_t skip = nl ? 1 : 0;
		if (take > LSTORE_MSG_MAX) {
			take = LSTORE_MSG_MAX;
			skip = 0;
		}
		add_line(s, line, plen, body, take, fn, ctx);
		body += take + skip;
		blen -= take + skip;
	} while (blen > 0);
}

static int rotate(struct lstore *s, struct dy_error **err)
{
	if (renameat(s->dfd, SEG_CUR, s->dfd, SEG_OLD) < 0)
		return dy_error_errno(err, errno, "log: rotate");
	int fd = openat(s->dfd, SEG_CUR,
	                O_RDWR | O_APPEND | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return dy_error_errno(err, errno, "log: open a new segment");
	close(s->fd);
	s->fd = fd;
	s->cur_lines = 0;
	return 0;
}

/* A flush that failed after off bytes (the disk filled mid-line): the
 * part of a line it wrote goes, so that the next flush does not glue a
 * line onto it. */
static void cut_partial(struct lstore *s, size_t off)
{
	size_t whole = off;
	while (whole > 0 && s->pend[whole - 1] != '\n')
		whole--;
	struct stat st;
	if (whole == off || fstat(s->fd, &st) < 0 || (uint64_t)st.st_size < off - whole)
		return;
	/* best effort: what is left is dropped at the next open (scan_current) */
	(void)!ftruncate(s->fd, st.st_size - (off_t)(off - whole));
}

int lstore_flush(struct lstore *s, struct dy_error **err)
{
	if (s == NULL || s->pend_len == 0)
		return 0;
	size_t off = 0;
	int r = 0;
	while (off < s->pend_len) {
		ssize_t w = write(s->fd, s->pend + off, s->pend_len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			/* the lines not written are lost (ENOSPC...): count them */
			for (size_t i = off; i < s->pend_len; i++)
				if (s->pend[i] == '\n') {
					s->lost++;
					s->cur_lines--;
				}
			r = dy_error_errno(err, w < 0 ? errno : EIO, "log: write");
			cut_partial(s, off);
			break;
		}
		off += (size_t)w;
	}
	s->pend_len = 0;
	if (s->pend_cap > 4 * LSTORE_FLUSH_AT) {
		free(s->pend); /* a burst's memory goes back */
		s->pend = NULL;
		s->pend_cap = 0;
	}
	if (r == 0 && s->cur_lines >= s->max_lines)
		r = rotate(s, err);
	return r;
}

/* Reads the segment name whole into *ret (NULL and 0 when missing). */
static int read_seg(struct lstore *s, const char *name, char **ret, size_t *ret_len,
                    struct dy_error **err)
{
	*ret = NULL;
	*ret_len = 0;
	_cleanup_close_ int fd = openat(s->dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? 0 : dy_error_errno(err, errno, "log: open %s", name);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return dy_error_errno(err, errno, "log: stat %s", name);
	if (st.st_size == 0)
		return 0;
	char *p = malloc((size_t)st.st_size);
	if (p == NULL)
		return dy_error_errno(err, ENOMEM, "log: read %s", name);
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = pread(fd, p + got, (size_t)st.st_size - got, (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	*ret = p;
	*ret_len = got;
	return 0;
}

struct slice {
	const char *p;
	size_t len;
};

int lstore_read(struct lstore *s, size_t n, const struct lstore_filter *f, lstore_line_fn fn,
                void *ctx, struct dy_error **err)
{
	if (n == 0)
		return 0;
	if (lstore_flush(s, err) < 0)
		return -1;
	/* Both segments whole: each holds at most max_lines lines, and a
	 * reader asks for at most 1500 (docs/api.md); the matches are kept in
	 * a ring of n, so the newest n remain. */
	_cleanup_free_ char *old = NULL, *cur = NULL;
	size_t old_len, cur_len;
	if (read_seg(s, SEG_OLD, &old, &old_len, err) < 0 ||
	    read_seg(s, SEG_CUR, &cur, &cur_len, err) < 0)
		return -1;
	_cleanup_free_ struct slice *ring = calloc(n, sizeof(*ring));
	if (ring == NULL)
		return dy_error_errno(err, ENOMEM, "log: %zu lines", n);
	size_t count = 0;
	const char *segs[2] = {old, cur};
	size_t lens[2] = {old_len, cur_len};
	for (int k = 0; k < 2; k++) {
		const char *p = segs[k], *end = segs[k] + lens[k];
		while (p && p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			if (nl == NULL)
				break; /* a line being written by no one: cut, skip it */
			size_t len = (size_t)(nl - p);
			if (lstore_match(f, p, len))
				ring[count++ % n] = (struct slice){p, len};
			p = nl + 1;
		}
	}
	size_t first = count > n ? count % n : 0;
	size_t m = MIN(count, n);
	for (size_t i = 0; i < m; i++) {
		const struct slice *sl = &ring[(first + i) % n];
		fn(ctx, sl->p, sl->len);
	}
	return (int)m;
}

uint64_t lstore_lost(const struct lstore *s)
{
	return s ? s->lost : 0;
}

void lstore_free(struct lstore *s)
{
	if (s == NULL)
		return;
	lstore_flush(s, NULL);
	if (s->fd >= 0)
		close(s->fd);
	if (s->dfd >= 0)
		close(s->dfd);
	free(s->pend);
	free(s);
}
