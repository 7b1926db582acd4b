#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "slugs/slug-entry.h"

static void norm_ok(const char *name, const char *want)
{
	char *rel = NULL;
	struct dy_error *err = NULL;
	int r = slug_entry_normalize(name, &rel, &err);
	if (r != 0)
		fail_msg("%s: r=%d %s", name, r, dy_error_msg(err));
	assert_string_equal(rel, want);
	free(rel);
}

static void norm_fails(const char *name, const char *msg)
{
	char *rel = NULL;
	struct dy_error *err = NULL;
	assert_true(slug_entry_normalize(name, &rel, &err) < 0);
	assert_null(rel);
	assert_string_equal(dy_error_msg(err), msg);
	dy_error_free(&err);
}

static void test_normalize(void **state)
{
	norm_ok("./app/x", "x");
	norm_ok("app/x/", "x");
	norm_ok("app", "");
	norm_ok("./app/", "");
	norm_ok("app//x/./y", "x/y");
	norm_ok("././app/./a/b//c/", "a/b/c");
	norm_ok("app/.hidden/..x/x..", ".hidden/..x/x..");

	char *rel = NULL;
	struct dy_error *err = NULL;
	assert_int_equal(slug_entry_normalize(".", &rel, &err), 1);
	assert_int_equal(slug_entry_normalize("./", &rel, &err), 1);
	assert_int_equal(slug_entry_normalize(".//./", &rel, &err), 1);
	assert_null(rel);
	assert_null(err);

	norm_fails("", "empty name");
	norm_fails("/app/x", "absolute path");
	norm_fails("app/../etc", "path has a \"..\" component");
	norm_fails("./app/a/../../x", "path has a \"..\" component");
	norm_fails("..", "path has a \"..\" component");
	norm_fails("etc/passwd", "outside app/");
	norm_fails("./apps/x", "outside app/");
	norm_fails("ap", "outside app/");
	norm_fails("app/a\nb", "control character 0x0a in name");
	norm_fails("app/a\x7f", "control character 0x7f in name");
	norm_fails("app/\x1b[31m", "control character 0x1b in name");
}

static void test_normalize_lengths(void **state)
{
	char name[8192];
	/* a component of 255 bytes is accepted, 256 refused */
	strcpy(name, "app/");
	memset(name + 4, 'c', 255);
	name[4 + 255] = '\0';
	char *rel = NULL;
	struct dy_error *err = NULL;
	assert_int_equal(slug_entry_normalize(name, &rel, &err), 0);
	assert_int_equal(strlen(rel), 255);
	free(rel);
	rel = NULL;
	strcat(name, "c");
	norm_fails(name, "path component longer than 255 bytes");

	/* a path of 4095 bytes is accepted, 4096 refused */
	size_t o = 0;
	o += (size_t)sprintf(name, "app");
	while (o + 101 <= 4095) {
		name[o++] = '/';
		memset(name + o, 'd', 100);
		o += 100;
	}
	while (o < 4095)
		name[o++] = 'e';
	name[o] = '\0';
	assert_int_equal(strlen(name), 4095);
	assert_int_equal(slug_entry_normalize(name, &rel, &err), 0);
	free(rel);
	strcat(name, "e");
	norm_fails(name, "path longer than 4095 bytes");
}

static void add_ok(struct slug_tree *t, const char *rel, enum slug_entry_type type,
                   const char *target)
{
	struct dy_error *err = NULL;
	if (slug_tree_add(t, rel, type, target, &err) < 0)
		fail_msg("add %s: %s", rel, dy_error_msg(err));
}

static void add_fails(struct slug_tree *t, const char *rel, enum slug_entry_type type,
                      const char *target, const char *msg)
{
	struct dy_error *err = NULL;
	assert_true(slug_tree_add(t, rel, type, target, &err) < 0);
	assert_string_equal(dy_error_msg(err), msg);
	dy_error_free(&err);
}

static void test_tree_basic(void **state)
{
	struct slug_tree *t = slug_tree_new();
	assert_non_null(t);
	assert_int_equal(slug_tree_count(t), 0);
	assert_int_equal(slug_tree_type(t, ""), SLUG_ENTRY_DIR);
	add_ok(t, "", SLUG_ENTRY_DIR, NULL);
	add_ok(t, "Procfile", SLUG_ENTRY_FILE, NULL);
	add_ok(t, "a/b/c", SLUG_ENTRY_FILE, NULL); /* implicit parents */
	assert_int_equal(slug_tree_type(t, "a"), SLUG_ENTRY_DIR);
	assert_int_equal(slug_tree_type(t, "a/b"), SLUG_ENTRY_DIR);
	assert_int_equal(slug_tree_type(t, "a/b/c"), SLUG_ENTRY_FILE);
	assert_int_equal(slug_tree_type(t, "nope"), SLUG_ENTRY_NONE);
	add_ok(t, "a", SLUG_ENTRY_DIR, NULL); /* the same type again */
	add_ok(t, "a/b/c", SLUG_ENTRY_FILE, NULL);
	add_ok(t, "l", SLUG_ENTRY_LINK, "a/b");
	add_ok(t, "l", SLUG_ENTRY_LINK, "a"); /* a link again, new target */
	assert_int_equal(slug_tree_count(t), 5);
	add_fails(t, "", SLUG_ENTRY_FILE, NULL, "app/ must be a directory, not a file");
	add_fails(t, "", SLUG_ENTRY_LINK, "/app", "app/ must be a directory, not a link");
	struct dy_error *err = NULL;
	assert_int_equal(slug_tree_check_links(t, &err), 0);
	slug_tree_free(t);
	slug_tree_free(NULL);
}

static void test_tree_under_link_or_file(void **state)
{
	struct slug_tree *t = slug_tree_new();
	add_ok(t, "l", SLUG_ENTRY_LINK, "d");
	add_fails(t, "l/x", SLUG_ENTRY_FILE, NULL, "is under the link app/l");
	add_fails(t, "l/x/y", SLUG_ENTRY_DIR, NULL, "is under the link app/l");
	add_ok(t, "d/m", SLUG_ENTRY_LINK, "/app/x");
	add_fails(t, "d/m/z", SLUG_ENTRY_FILE, NULL, "is under the link app/d/m");
	add_ok(t, "f", SLUG_ENTRY_FILE, NULL);
	add_fails(t, "f/x", SLUG_ENTRY_FILE, NULL, "is under the file app/f");
	add_ok(t, "h", SLUG_ENTRY_HARDLINK, "f");
	add_fails(t, "h/x", SLUG_ENTRY_LINK, "../f", "is under the file app/h");
	slug_tree_free(t);
}

static void test_tree_type_changes(void **state)
{
	struct slug_tree *t = slug_tree_new();
	add_ok(t, "d", SLUG_ENTRY_DIR, NULL);
	add_fails(t, "d", SLUG_ENTRY_FILE, NULL,
	          "changes the type of an earlier entry (directory, then file)");
	add_fails(t, "d", SLUG_ENTRY_LINK, "x",
	          "changes the type of an earlier entry (directory, then link)");
	add_ok(t, "f", SLUG_ENTRY_FILE, NULL);
	add_fails(t, "f", SLUG_ENTRY_DIR, NULL,
	          "changes the type of an earlier entry (file, then directory)");
	add_fails(t, "f", SLUG_ENTRY_LINK, "d",
	          "changes the type of an earlier entry (file, then link)");
	add_ok(t, "l", SLUG_ENTRY_LINK, "d");
	add_fails(t, "l", SLUG_ENTRY_FILE, NULL,
	          "changes the type of an earlier entry (link, then file)");
	add_fails(t, "l", SLUG_ENTRY_DIR, NULL,
	          "changes the type of an earlier entry (link, then directory)");
	/* an implicit parent is a directory too */
	add_ok(t, "p/q", SLUG_ENTRY_FILE, NULL);
	add_fails(t, "p", SLUG_ENTRY_FILE, NULL,
	          "changes the type of an earlier entry (directory, then file)");
	add_fails(t, "d", SLUG_ENTRY_HARDLINK, "f",
	          "changes the type of an earlier entry (directory, then hard link)");
	slug_tree_free(t);
}

static void test_tree_link_targets(void **state)
{
	struct slug_tree *t = slug_tree_new();
	add_ok(t, "a", SLUG_ENTRY_LINK, "/app");
	add_ok(t, "a2", SLUG_ENTRY_LINK, "/app/");
	add_ok(t, "b", SLUG_ENTRY_LINK, "/app/x/y");
	add_ok(t, "c", SLUG_ENTRY_LINK, ".");
	add_ok(t, "d/e", SLUG_ENTRY_LINK, "../x");
	add_ok(t, "d/f/g", SLUG_ENTRY_LINK, "../../x/./y/../z");
	add_fails(t, "x1", SLUG_ENTRY_LINK, "..", "link target \"..\" leaves app/");
	add_fails(t, "d/x2", SLUG_ENTRY_LINK, "../../etc/passwd",
	          "link target \"../../etc/passwd\" leaves app/");
	add_fails(t, "x3", SLUG_ENTRY_LINK, "d/../../x", "link target \"d/../../x\" leaves app/");
	add_fails(t, "x4", SLUG_ENTRY_LINK, "/etc/passwd",
	          "absolute link target \"/etc/passwd\" is not under /app/");
	add_fails(t, "x5", SLUG_ENTRY_LINK, "/apple",
	          "absolute link target \"/apple\" is not under /app/");
	add_fails(t, "x6", SLUG_ENTRY_LINK, "/", "absolute link target \"/\" is not under /app/");
	add_fails(t, "x7", SLUG_ENTRY_LINK, "/app/..", "link target \"/app/..\" leaves app/");
	add_fails(t, "x8", SLUG_ENTRY_LINK, "", "empty link target");
	add_fails(t, "x9", SLUG_ENTRY_LINK, "a\nb", "control character 0x0a in link target");
	/* resolved through the links before: a is /app, so a/.. is / */
	add_fails(t, "y1", SLUG_ENTRY_LINK, "a/../x", "link target \"a/../x\" leaves app/");
	add_fails(t, "d/y2", SLUG_ENTRY_LINK, "../c/..", "link target \"../c/..\" leaves app/");
	add_ok(t, "y3", SLUG_ENTRY_LINK, "a/x/..");
	assert_int_equal(slug_tree_type(t, "x1"), SLUG_ENTRY_NONE);
	struct dy_error *err = NULL;
	assert_int_equal(slug_tree_check_links(t, &err), 0);
	slug_tree_free(t);
}

static void test_tree_loops(void **state)
{
	struct slug_tree *t = slug_tree_new();
	add_ok(t, "a", SLUG_ENTRY_LINK, "b");
	add_ok(t, "b", SLUG_ENTRY_LINK, "a");
	add_fails(t, "c", SLUG_ENTRY_LINK, "a/x", "link target \"a/x\": too many levels of links");
	struct dy_error *err = NULL;
	assert_true(slug_tree_check_links(t, &err) < 0);
	assert_string_equal(dy_error_msg(err),
	                    "refused entry \"app/a\": link target \"b\": too many levels of links");
	dy_error_free(&err);
	slug_tree_free(t);

	/* a link to itself */
	t = slug_tree_new();
	add_ok(t, "s", SLUG_ENTRY_LINK, "/app/s");
	assert_true(slug_tree_check_links(t, &err) < 0);
	assert_string_equal(dy_error_msg(err),
	                    "refused entry \"app/s\": link target \"/app/s\": too many levels of "
	                    "links");
	dy_error_free(&err);
	slug_tree_free(t);

	/* a long but finite chain, and one growing the path on each turn */
	t = slug_tree_new();
	add_ok(t, "l", SLUG_ENTRY_LINK, ".");
	char target[256] = "";
	for (int i = 0; i < 40; i++)
		strcat(target, "l/");
	add_ok(t, "ok", SLUG_ENTRY_LINK, target);
	strcat(target, "l");
	add_fails(t, "deep", SLUG_ENTRY_LINK, target,
	          "link target \"l/l/l/l/l/l/l/l/l/l/l/l/l/l/l/l/l/l/l/l/l/l/l/l/l/l/l/l/l/l/l/l/l/"
	          "l/l/l/l/l/l/l/l\": too many levels of links");
	add_ok(t, "g", SLUG_ENTRY_LINK, "g/g");
	assert_true(slug_tree_check_links(t, &err) < 0);
	assert_non_null(strstr(dy_error_msg(err), "refused entry \"app/g\""));
	dy_error_free(&err);
	slug_tree_free(t);
}

static void test_tree_hardlinks(void **state)
{
	struct slug_tree *t = slug_tree_new();
	add_ok(t, "d/f", SLUG_ENTRY_FILE, NULL);
	add_ok(t, "h", SLUG_ENTRY_HARDLINK, "d/f");
	assert_int_equal(slug_tree_type(t, "h"), SLUG_ENTRY_FILE);
	add_ok(t, "h2", SLUG_ENTRY_HARDLINK, "h");
	add_fails(t, "x", SLUG_ENTRY_HARDLINK, "nope",
	          "hard link target app/nope is not an earlier file of the slug");
	add_fails(t, "x", SLUG_ENTRY_HARDLINK, "d",
	          "hard link target app/d is not an earlier file of the slug");
	add_ok(t, "l", SLUG_ENTRY_LINK, "d/f");
	add_fails(t, "x", SLUG_ENTRY_HARDLINK, "l",
	          "hard link target app/l is not an earlier file of the slug");
	add_fails(t, "self", SLUG_ENTRY_HARDLINK, "self", "hard link to itself");
	add_ok(t, "f2", SLUG_ENTRY_FILE, NULL);
	add_fails(t, "f2", SLUG_ENTRY_HARDLINK, "f2", "hard link to itself");
	slug_tree_free(t);
}

/* A later link can change where an earlier one leads: add accepts b (l is
 * unknown then), check_links refuses it once l -> /app is known. */
static void test_check_links_ordering(void **state)
{
	struct slug_tree *t = slug_tree_new();
	add_ok(t, "b", SLUG_ENTRY_LINK, "l/../x");
	add_ok(t, "l", SLUG_ENTRY_LINK, "/app");
	struct dy_error *err = NULL;
	assert_true(slug_tree_check_links(t, &err) < 0);
	assert_string_equal(dy_error_msg(err),
	                    "refused entry \"app/b\": link target \"l/../x\" leaves app/");
	dy_error_free(&err);
	slug_tree_free(t);
}

/* Enough entries to rehash the tree several times: links keep their
 * archive order and are still found by check_links. */
static void test_tree_grows(void **state)
{
	struct slug_tree *t = slug_tree_new();
	char rel[64], target[64];
	add_ok(t, "first", SLUG_ENTRY_LINK, "later/../x");
	for (int i = 0; i < 5000; i++) {
		snprintf(rel, sizeof(rel), "d%d/f%d", i % 97, i);
		add_ok(t, rel, SLUG_ENTRY_FILE, NULL);
		if (i % 10 == 0) {
			snprintf(rel, sizeof(rel), "l%d", i);
			snprintf(target, sizeof(target), "d%d/f%d", i % 97, i);
			add_ok(t, rel, SLUG_ENTRY_LINK, target);
		}
	}
	assert_int_equal(slug_tree_count(t), 1 + 5000 + 97 + 500);
	assert_int_equal(slug_tree_type(t, "l4990"), SLUG_ENTRY_LINK);
	assert_int_equal(slug_tree_type(t, "d3/f3"), SLUG_ENTRY_FILE);
	struct dy_error *err = NULL;
	assert_int_equal(slug_tree_check_links(t, &err), 0);
	add_ok(t, "later", SLUG_ENTRY_LINK, "/app");
	assert_true(slug_tree_check_links(t, &err) < 0);
	assert_string_equal(dy_error_msg(err),
	                    "refused entry \"app/first\": link target \"later/../x\" leaves app/");
	dy_error_free(&err);
	slug_tree_free(t);
}

static void test_quote_and_type_str(void **state)
{
	char buf[32];
	assert_string_equal(slug_entry_quote("a\"b\\c\n", buf, sizeof(buf)), "a\\x22b\\x5cc\\x0a");
	assert_string_equal(
	    slug_entry_quote("0123456789012345678901234567890123456789", buf, sizeof(buf)),
	    "012345678901234567890123...");
	assert_string_equal(slug_entry_type_str(SLUG_ENTRY_FILE), "file");
	assert_string_equal(slug_entry_type_str(SLUG_ENTRY_DIR), "directory");
	assert_string_equal(slug_entry_type_str(SLUG_ENTRY_LINK), "link");
	assert_string_equal(slug_entry_type_str(SLUG_ENTRY_HARDLINK), "hard link");
	assert_string_equal(slug_entry_type_str(SLUG_ENTRY_NONE), "none");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_normalize),
	    cmocka_unit_test(test_normalize_lengths),
	    cmocka_unit_test(test_tree_basic),
	    cmocka_unit_test(test_tree_under_link_or_file),
	    cmocka_unit_test(test_tree_type_changes),
	    cmocka_unit_test(test_tree_link_targets),
	    cmocka_unit_test(test_tree_loops),
	    cmocka_unit_test(test_tree_hardlinks),
	    cmocka_unit_test(test_check_links_ordering),
	    cmocka_unit_test(test_tree_grows),
	    cmocka_unit_test(test_quote_and_type_str),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
