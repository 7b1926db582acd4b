/* dyno-build-pack APP_DIR OUT [RELEASE_YAML...]: the last step of a build,
 * run inside the build dyno as the app (docs/builds.md), so that root on
 * the host never reads the tenant's build tree. The default process types
 * of the buildpacks' bin/release output (the last buildpack's first) are
 * appended to APP_DIR/Procfile for the types it lacks; APP_DIR is packed
 * into a slug at OUT (slug_pack: deterministic, .slugignore applied,
 * gzip), which is then written to stdout, the build dyno's stdout that
 * dynod reads. Messages go to stderr; exit 1 names what was wrong. */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "slugs/procfile.h"
#include "slugs/release-yaml.h"
#include "slugs/slug.h"

#define YAML_MAX (1024 * 1024)
#define PROCFILE_READ_MAX (1024 * 1024)

static int fail(struct dy_error **err)
{
	fprintf(stderr, " !     %s\n", dy_error_msg(*err));
	dy_error_free(err);
	return 1;
}

static int read_file(int dirfd, const char *path, size_t max, char **ret, size_t *ret_len,
                     struct dy_error **err)
{
	_cleanup_close_ int fd = openat(dirfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return dy_error_errno(err, errno, "%s", path);
	if (!S_ISREG(st.st_mode) || (size_t)st.st_size > max)
		return dy_error(err, "%s: not a regular file of at most %zu bytes", path, max);
	char *buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return dy_error_errno(err, ENOMEM, "%s", path);
	size_t n = 0;
	while (n < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*ret = buf;
	*ret_len = n;
	return 0;
}

/* Appends the types of the release outputs that the Procfile lacks. */
static int merge_types(const char *app_dir, char **yamls, int nyaml, struct dy_error **err)
{
	_cleanup_close_ int dfd = open(app_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return dy_error_errno(err, errno, "%s", app_dir);
	struct procfile *have = NULL;
	_cleanup_free_ char *pdata = NULL;
	size_t plen = 0;
	if (faccessat(dfd, "Procfile", F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		if (read_file(dfd, "Procfile", PROCFILE_READ_MAX, &pdata, &plen, err) < 0 ||
		    procfile_parse(pdata, plen, &have, err) < 0)
			return -1;
		fprintf(stderr, "       Procfile declares types     -> ");
		for (size_t i = 0; i < have->n; i++)
			fprintf(stderr, "%s%s", i ? ", " : "", have->entries[i].name);
		fprintf(stderr, "%s\n", have->n ? "" : "(none)");
	}
	/* what to append, built up as text */
	char *add = NULL;
	size_t addlen = 0;
	FILE *out = open_memstream(&add, &addlen);
	if (!out) {
		procfile_free(have);
		return dy_error_errno(err, ENOMEM, "merge");
	}
	struct procfile *seen_all = NULL;
	int r = 0;
	for (int i = nyaml - 1; i >= 0 && r == 0; i--) {
		_cleanup_free_ char *y = NULL;
		size_t ylen = 0;
		struct procfile *pf = NULL;
		if (read_file(AT_FDCWD, yamls[i], YAML_MAX, &y, &ylen, err) < 0 ||
		    release_yaml_parse(y, ylen, &pf, err) < 0) {
			r = dy_error_prefix(err, "bin/release output (%s)", yamls[i]);
			break;
		}
		for (size_t k = 0; k < pf->n; k++) {
			const char *name = pf->entries[k].name;
			/* the Procfile wins, then the last buildpack's output */
			if ((have && procfile_command(have, name)) ||
			    (seen_all && procfile_command(seen_all, name)))
				continue;
			fprintf(out, "%s: %s\n", name, pf->entries[k].command);
			fprintf(stderr, "       Default types for buildpack -> %s\n", name);
		}
		if (!seen_all) {
			seen_all = pf;
		} else {
			/* fold pf's names into seen_all */
			for (size_t k = 0; k < pf->n; k++) {
				if (procfile_command(seen_all, pf->entries[k].name))
					continue;
				struct procfile_entry *e =
				    realloc(seen_all->entries, (seen_all->n + 1) * sizeof(*e));
				if (!e) {
					r = dy_error_errno(err, ENOMEM, "merge");
					break;
				}
				seen_all->entries = e;
				e[seen_all->n++] = pf->entries[k];
				pf->entries[k].name = pf->entries[k].command = NULL;
			}
			procfile_free(pf);
		}
	}
	fclose(out);
	procfile_free(seen_all);
	procfile_free(have);
	if (r == 0 && addlen > 0) {
		_cleanup_close_ int fd =
		    openat(dfd, "Procfile", O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
		bool nl = plen > 0 && pdata[plen - 1] != '\n';
		if (fd < 0 || (nl && write(fd, "\n", 1) != 1) ||
		    write(fd, add, addlen) != (ssize_t)addlen)
			r = dy_error_errno(err, errno, "write %s/Procfile", app_dir);
	}
	free(add);
	return r;
}

static int copy_out(const char *path, struct dy_error **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return dy_error_errno(err, errno, "%s", path);
	char buf[65536];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return dy_error_errno(err, errno, "read %s", path);
		if (n == 0)
			return 0;
		for (ssize_t o = 0; o < n;) {
			ssize_t w = write(STDOUT_FILENO, buf + o, (size_t)(n - o));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return dy_error_errno(err, errno, "write the slug to stdout");
			o += w;
		}
	}
}

int main(int argc, char **argv)
{
	struct dy_error *err = NULL;
	if (argc < 3) {
		fprintf(stderr, "usage: dyno-build-pack APP_DIR OUT [RELEASE_YAML...]\n");
		return 2;
	}
	fprintf(stderr, "-----> Discovering process types\n");
	if (merge_types(argv[1], argv + 3, argc - 3, &err) < 0)
		return fail(&err);
	fprintf(stderr, "-----> Compressing...\n");
	if (slug_pack(argv[1], argv[2], SLUG_COMPRESSION_GZIP, &err) < 0)
		return fail(&err);
	struct stat st;
	if (stat(argv[2], &st) == 0)
		fprintf(stderr, "       Done: %.1fM\n", (double)st.st_size / (1024.0 * 1024.0));
	if (copy_out(argv[2], &err) < 0)
		return fail(&err);
	return 0;
}
