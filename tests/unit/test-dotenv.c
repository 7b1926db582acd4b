#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "slugs/dotenv.h"

static struct dotenv *parse_ok(const char *s, size_t len)
{
	struct dotenv *env = NULL;
	struct dy_error *err = NULL;
	if (dotenv_parse(s, len, &env, &err) < 0)
		fail_msg("unexpected error: %s", dy_error_msg(err));
	assert_non_null(env);
	return env;
}

static void parse_fails(const char *s, size_t len, const char *msg)
{
	struct dotenv *env = NULL;
	struct dy_error *err = NULL;
	assert_true(dotenv_parse(s, len, &env, &err) < 0);
	assert_null(env);
	assert_non_null(err);
	assert_string_equal(dy_error_msg(err), msg);
	dy_error_free(&err);
}

#define OK(s)         parse_ok(s, strlen(s))
#define FAILS(s, msg) parse_fails(s, strlen(s), msg)

static void test_basic(void **state)
{
	struct dotenv *env = OK("A=1\n"
	                        "B = two words \n"
	                        "_c9=\n"
	                        "  D=x=y\r\n"
	                        "E=last");
	assert_int_equal(env->n, 5);
	assert_string_equal(env->vars[0].key, "A");
	assert_string_equal(dotenv_get(env, "A"), "1");
	assert_string_equal(dotenv_get(env, "B"), "two words");
	assert_string_equal(dotenv_get(env, "_c9"), "");
	assert_string_equal(dotenv_get(env, "D"), "x=y");
	assert_string_equal(dotenv_get(env, "E"), "last");
	assert_null(dotenv_get(env, "F"));
	assert_null(dotenv_get(NULL, "A"));
	dotenv_free(env);
	dotenv_free(NULL);
}

static void test_export(void **state)
{
	struct dotenv *env = OK("export A=1\nexport\t  B=2\nexporter=3\n");
	assert_int_equal(env->n, 3);
	assert_string_equal(dotenv_get(env, "A"), "1");
	assert_string_equal(dotenv_get(env, "B"), "2");
	assert_string_equal(dotenv_get(env, "exporter"), "3");
	dotenv_free(env);
}

static void test_single_quotes(void **state)
{
	struct dotenv *env = OK("A='a \\n $B # not a comment'\n"
	                        "B=''\n"
	                        "C='two\nlines'  # comment\n");
	assert_string_equal(dotenv_get(env, "A"), "a \\n $B # not a comment");
	assert_string_equal(dotenv_get(env, "B"), "");
	assert_string_equal(dotenv_get(env, "C"), "two\nlines");
	dotenv_free(env);
}

static void test_double_quotes(void **state)
{
	struct dotenv *env = OK("A=\"a\\nb\\tc\\\"d\\\\e\\$f\\rg\"\n"
	                        "B=\"keep \\q as is\"\n"
	                        "C=\"multi\n"
	                        "line # not a comment\n"
	                        "value\"\n"
	                        "D=\"\" # empty\n");
	assert_string_equal(dotenv_get(env, "A"), "a\nb\tc\"d\\e$f\rg");
	assert_string_equal(dotenv_get(env, "B"), "keep \\q as is");
	assert_string_equal(dotenv_get(env, "C"), "multi\nline # not a comment\nvalue");
	assert_string_equal(dotenv_get(env, "D"), "");
	dotenv_free(env);
}

static void test_comments(void **state)
{
	struct dotenv *env = OK("# whole line\n"
	                        "   # indented\n"
	                        "\n"
	                        "A=b#c\n"
	                        "B=b #c\n"
	                        "C=b\t# c\n"
	                        "D=http://x/#frag\n");
	assert_int_equal(env->n, 4);
	assert_string_equal(dotenv_get(env, "A"), "b#c");
	assert_string_equal(dotenv_get(env, "B"), "b");
	assert_string_equal(dotenv_get(env, "C"), "b");
	assert_string_equal(dotenv_get(env, "D"), "http://x/#frag");
	dotenv_free(env);
}

/* "A= #c" is an empty value with a comment, as dotenv reads it; it used
 * to give "#c". "A=#c" keeps "#c". */
static void test_comment_instead_of_value(void **state)
{
	struct dotenv *env = OK("A= # only a comment\nB=\t#c\nC=#c\nD=\n");
	assert_int_equal(env->n, 4);
	assert_string_equal(dotenv_get(env, "A"), "");
	assert_string_equal(dotenv_get(env, "B"), "");
	assert_string_equal(dotenv_get(env, "C"), "#c");
	assert_string_equal(dotenv_get(env, "D"), "");
	dotenv_free(env);
}

static void test_repeated_key_keeps_last(void **state)
{
	struct dotenv *env = OK("A=1\nB=2\nA=3\n");
	assert_int_equal(env->n, 2);
	assert_string_equal(env->vars[0].key, "A");
	assert_string_equal(env->vars[0].value, "3");
	assert_string_equal(env->vars[1].key, "B");
	dotenv_free(env);
}

static void test_empty(void **state)
{
	struct dotenv *env = parse_ok("", 0);
	assert_int_equal(env->n, 0);
	dotenv_free(env);
	env = OK("\n\n# x\n");
	assert_int_equal(env->n, 0);
	dotenv_free(env);
}

static void test_errors(void **state)
{
	FAILS("A=1\n=2\n", ".env line 2: expected KEY=VALUE");
	FAILS("9A=1\n", ".env line 1: expected KEY=VALUE");
	FAILS("A=1\nB-C=2\n", ".env line 2: expected '=' after \"B\"");
	FAILS("A=1\n\nB\n", ".env line 3: expected '=' after \"B\"");
	FAILS("A B=1\n", ".env line 1: expected '=' after \"A\"");
	FAILS("A=1\nB='abc\n", ".env line 2: unterminated single quote");
	FAILS("A=1\nB=\"abc\nd\n", ".env line 2: unterminated double quote");
	FAILS("A='x' y\n", ".env line 1: unexpected text after the value of A");
	FAILS("A=\"x\"y\n", ".env line 1: unexpected text after the value of A");
	parse_fails("A=1\nB=x\0y\n", 10, ".env line 2: NUL byte in the value of B");
	parse_fails("A=\"x\0\"\n", 7, ".env line 1: NUL byte in the value of A");
	char *big = malloc(DOTENV_MAX_BYTES + 1);
	assert_non_null(big);
	memset(big, '\n', DOTENV_MAX_BYTES + 1);
	parse_fails(big, DOTENV_MAX_BYTES + 1, ".env is larger than 1048576 bytes");
	free(big);
}

/* Line numbers count the lines a multi-line value spans. */
static void test_line_numbers_after_multiline(void **state)
{
	FAILS("A=\"one\ntwo\nthree\"\nB\n", ".env line 4: expected '=' after \"B\"");
	FAILS("A='one\ntwo'\n\n=x\n", ".env line 4: expected KEY=VALUE");
	/* an escaped "\n" is no new line */
	FAILS("A=\"one\\ntwo\"\nB\n", ".env line 2: expected '=' after \"B\"");
	/* a backslash before a real newline is one */
	FAILS("A=\"one\\\ntwo\"\nB\n", ".env line 3: expected '=' after \"B\"");
	FAILS("A=\"one\ntwo\nthree\nB='x\n", ".env line 1: unterminated double quote");
	FAILS("A=\"1\n2\" junk\n", ".env line 2: unexpected text after the value of A");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_basic),
	    cmocka_unit_test(test_export),
	    cmocka_unit_test(test_single_quotes),
	    cmocka_unit_test(test_double_quotes),
	    cmocka_unit_test(test_comments),
	    cmocka_unit_test(test_comment_instead_of_value),
	    cmocka_unit_test(test_repeated_key_keeps_last),
	    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_line_numbers_after_multiline),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
