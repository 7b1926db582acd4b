#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "slugs/slugignore.h"

static struct slugignore *parse_ok(const char *s)
{
	struct slugignore *si = NULL;
	struct dy_error *err = NULL;
	if (slugignore_parse(s, strlen(s), &si, &err) < 0)
		fail_msg("unexpected error: %s", dy_error_msg(err));
	assert_non_null(si);
	return si;
}

static void test_unanchored_any_depth(void **state)
{
	struct slugignore *si = parse_ok("*.log\ntmp\n");
	assert_true(slugignore_match(si, "a.log", false));
	assert_true(slugignore_match(si, "x/y/z/a.log", false));
	assert_true(slugignore_match(si, "tmp", true));
	assert_true(slugignore_match(si, "src/tmp", false));
	assert_true(slugignore_match(si, "a/b/tmp", true));
	assert_false(slugignore_match(si, "a.log.txt", false));
	assert_false(slugignore_match(si, "tmpx", false));
	assert_false(slugignore_match(si, "tmp.d/x", false));
	slugignore_free(si);
}

static void test_anchored(void **state)
{
	struct slugignore *si = parse_ok("docs/*.md\n/vendor\nspec/fixtures\n");
	assert_true(slugignore_match(si, "docs/a.md", false));
	assert_false(slugignore_match(si, "x/docs/a.md", false));
	/* '*' does not cross '/' in anchored patterns */
	assert_false(slugignore_match(si, "docs/sub/a.md", false));
	assert_true(slugignore_match(si, "vendor", true));
	assert_true(slugignore_match(si, "vendor", false));
	assert_false(slugignore_match(si, "lib/vendor", true));
	assert_true(slugignore_match(si, "spec/fixtures", true));
	assert_false(slugignore_match(si, "a/spec/fixtures", true));
	slugignore_free(si);
}

static void test_dir_only(void **state)
{
	struct slugignore *si = parse_ok("cache/\n/log/\n");
	assert_true(slugignore_match(si, "cache", true));
	assert_true(slugignore_match(si, "a/b/cache", true));
	assert_false(slugignore_match(si, "cache", false));
	assert_true(slugignore_match(si, "log", true));
	assert_false(slugignore_match(si, "log", false));
	assert_false(slugignore_match(si, "x/log", true));
	slugignore_free(si);
}

static void test_double_star_prefix(void **state)
{
	struct slugignore *si = parse_ok("**/node_modules\n**/*.pyc\n");
	assert_true(slugignore_match(si, "node_modules", true));
	assert_true(slugignore_match(si, "a/b/node_modules", true));
	assert_true(slugignore_match(si, "x.pyc", false));
	assert_true(slugignore_match(si, "pkg/__pycache__/x.pyc", false));
	assert_false(slugignore_match(si, "node_modules2", true));
	slugignore_free(si);
}

/* "**" + "/" followed by a pattern with a '/' matches that sub-path at any
 * depth, as in .gitignore (it used to be compared with the basename only,
 * so it never matched). */
static void test_double_star_prefix_with_slash(void **state)
{
	struct slugignore *si = parse_ok("**/test/fixtures\n**/doc/*.md\n");
	assert_true(slugignore_match(si, "test/fixtures", true));
	assert_true(slugignore_match(si, "a/b/test/fixtures", true));
	assert_true(slugignore_match(si, "doc/a.md", false));
	assert_true(slugignore_match(si, "x/doc/a.md", false));
	assert_false(slugignore_match(si, "x/doc/y/a.md", false));
	assert_false(slugignore_match(si, "atest/fixtures", true));
	assert_false(slugignore_match(si, "fixtures", true));
	slugignore_free(si);
}

static void test_comments_and_blanks(void **state)
{
	struct slugignore *si = parse_ok("# a comment\n\n   \n  *.tmp  \r\n\t# another\n/\n");
	assert_true(slugignore_match(si, "x.tmp", false));
	assert_false(slugignore_match(si, "# a comment", false));
	assert_false(slugignore_match(si, "Procfile", false));
	slugignore_free(si);

	si = parse_ok("");
	assert_false(slugignore_match(si, "x", false));
	slugignore_free(si);
	assert_false(slugignore_match(NULL, "x", false));
	slugignore_free(NULL);
}

static void test_negation_refused(void **state)
{
	struct slugignore *si = NULL;
	struct dy_error *err = NULL;
	const char *s = "*.log\n# c\n\n  !keep.log\n";
	assert_true(slugignore_parse(s, strlen(s), &si, &err) < 0);
	assert_null(si);
	assert_string_equal(dy_error_msg(err),
	                    ".slugignore line 4: negation ('!') is not supported");
	dy_error_free(&err);
}

static void test_nul_refused(void **state)
{
	struct slugignore *si = NULL;
	struct dy_error *err = NULL;
	assert_true(slugignore_parse("a\nb\0c\n", 6, &si, &err) < 0);
	assert_null(si);
	assert_string_equal(dy_error_msg(err), ".slugignore line 2: NUL byte");
	dy_error_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_unanchored_any_depth),
	    cmocka_unit_test(test_anchored),
	    cmocka_unit_test(test_dir_only),
	    cmocka_unit_test(test_double_star_prefix),
	    cmocka_unit_test(test_double_star_prefix_with_slash),
	    cmocka_unit_test(test_comments_and_blanks),
	    cmocka_unit_test(test_negation_refused),
	    cmocka_unit_test(test_nul_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
