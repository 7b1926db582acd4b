/* slugs/slug-disk: the trees an app keeps, budget arithmetic, sizes as
 * people read them, disk usage and tree removal. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "slugs/slug-disk.h"

#define A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define D "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
#define E "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee"

static bool has(const char **ids, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(ids[i], id) == 0)
			return true;
	return false;
}

static void test_keep(void **state)
{
	/* v1 A, v2 B, v3 C, v4 config (C again), v5 D, v6 E (current) */
	struct slug_disk_release r[] = {
	    {A, false, false}, {B, false, false}, {C, false, false},
	    {C, false, false}, {D, false, false}, {E, true, false},
	};
	const char *ids[6];
	size_t n = slug_disk_keep(r, 6, 3, ids);
	assert_int_equal(n, 4);
	assert_string_equal(ids[0], E); /* the current first */
	assert_true(has(ids, n, D) && has(ids, n, C) && has(ids, n, B));
	assert_false(has(ids, n, A)); /* C counts once: B is the third */

	n = slug_disk_keep(r, 6, 0, ids);
	assert_int_equal(n, 1);
	assert_string_equal(ids[0], E);

	n = slug_disk_keep(r, 6, 100, ids);
	assert_int_equal(n, 5);

	/* rolled back to v2: the newer releases are the newest others */
	r[5].current = false;
	r[1].current = true;
	n = slug_disk_keep(r, 6, 1, ids);
	assert_int_equal(n, 2);
	assert_true(has(ids, n, B) && has(ids, n, E));

	/* a pending release is kept whatever keep says; no slug, no tree */
	struct slug_disk_release p[] = {
	    {A, false, false},  {B, true, false}, {NULL, false, false},
	    {"", false, false}, {C, false, true},
	};
	n = slug_disk_keep(p, 5, 0, ids);
	assert_int_equal(n, 2);
	assert_true(has(ids, n, B) && has(ids, n, C));
	assert_int_equal(slug_disk_keep(p, 0, 3, ids), 0);
}

static void test_budget(void **state)
{
	assert_int_equal(slug_disk_add(1, 2), 3);
	assert_int_equal(slug_disk_add(UINT64_MAX - 1, 5), UINT64_MAX);
	assert_int_equal(slug_disk_left(3, 10), 7);
	assert_int_equal(slug_disk_left(10, 10), 0);
	assert_int_equal(slug_disk_left(11, 10), 0);
	assert_false(slug_disk_over(4, 6, 10)); /* exactly the budget fits */
	assert_true(slug_disk_over(4, 7, 10));
	assert_true(slug_disk_over(UINT64_MAX, UINT64_MAX, UINT64_MAX - 1));
	assert_false(slug_disk_over(0, 0, 0));
}

static void test_fmt(void **state)
{
	char b[32];
	assert_string_equal(slug_disk_fmt(0, b, sizeof(b)), "0 bytes");
	assert_string_equal(slug_disk_fmt(1023, b, sizeof(b)), "1023 bytes");
	assert_string_equal(slug_disk_fmt(1024, b, sizeof(b)), "1 KiB");
	assert_string_equal(slug_disk_fmt(64ULL << 20, b, sizeof(b)), "64 MiB");
	assert_string_equal(slug_disk_fmt(10ULL << 30, b, sizeof(b)), "10 GiB");
	/* 11.2 GiB: tenths rounded down, so a byte over 10 GiB is 10.0, not 10 */
	assert_string_equal(slug_disk_fmt((112ULL << 30) / 10 + 1, b, sizeof(b)), "11.2 GiB");
	assert_string_equal(slug_disk_fmt((10ULL << 30) + 1, b, sizeof(b)), "10.0 GiB");
	assert_string_equal(slug_disk_fmt(1536ULL << 30, b, sizeof(b)), "1.5 TiB");
	assert_string_equal(slug_disk_fmt(UINT64_MAX, b, sizeof(b)), "15.9 EiB");
}

static void write_bytes(const char *path, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	char buf[4096];
	memset(buf, 'x', sizeof(buf));
	for (size_t off = 0; off < n; off += sizeof(buf))
		assert_true(write(fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf));
	close(fd);
}

static void test_usage_and_removal(void **state)
{
	char dir[] = "/tmp/test-slug-disk-XXXXXX", p[256];
	assert_non_null(mkdtemp(dir));
	uint64_t u = 1;
	snprintf(p, sizeof(p), "%s/none", dir);
	assert_int_equal(slug_disk_usage(p, &u, NULL), 0);
	assert_int_equal(u, 0);

	const char *trees[] = {A, B, C};
	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, trees[i]);
		assert_int_equal(mkdir(p, 0755), 0);
		snprintf(p, sizeof(p), "%s/%s/sub", dir, trees[i]);
		assert_int_equal(mkdir(p, 0755), 0);
		snprintf(p, sizeof(p), "%s/%s/sub/f", dir, trees[i]);
		write_bytes(p, 1 << 20);
	}
	/* a link is counted, never followed */
	snprintf(p, sizeof(p), "%s/%s/up", dir, A);
	assert_int_equal(symlink("/", p), 0);
	snprintf(p, sizeof(p), "%s/.upload-x", dir);
	write_bytes(p, 4096);
	assert_int_equal(slug_disk_usage(dir, &u, NULL), 0);
	assert_true(u >= 3ULL << 20);
	assert_true(u < (3ULL << 20) + (1ULL << 20));

	const char *keep[] = {B};
	assert_int_equal(slug_disk_remove_trees(dir, keep, 1), 2);
	struct stat st;
	snprintf(p, sizeof(p), "%s/%s/sub/f", dir, B);
	assert_int_equal(stat(p, &st), 0);
	snprintf(p, sizeof(p), "%s/%s", dir, A);
	assert_int_equal(lstat(p, &st), -1);
	snprintf(p, sizeof(p), "%s/.upload-x", dir); /* not a tree: stays */
	assert_int_equal(lstat(p, &st), 0);
	uint64_t after;
	assert_int_equal(slug_disk_usage(dir, &after, NULL), 0);
	assert_true(after < u - (2ULL << 20) + 65536);

	uint64_t avail = 0;
	assert_int_equal(slug_disk_available(dir, &avail, NULL), 0);
	assert_true(avail > 0);

	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_keep),
	    cmocka_unit_test(test_budget),
	    cmocka_unit_test(test_fmt),
	    cmocka_unit_test(test_usage_and_removal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
