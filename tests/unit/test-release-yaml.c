#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "slugs/release-yaml.h"

static struct procfile *parse_ok(const char *s)
{
	struct procfile *pf = NULL;
	struct dy_error *err = NULL;
	if (release_yaml_parse(s, strlen(s), &pf, &err) < 0)
		fail_msg("unexpected error: %s", dy_error_msg(err));
	assert_non_null(pf);
	return pf;
}

static void parse_err(const char *s, const char *want)
{
	struct procfile *pf = NULL;
	struct dy_error *err = NULL;
	assert_int_equal(release_yaml_parse(s, strlen(s), &pf, &err), -1);
	assert_null(pf);
	assert_string_equal(dy_error_msg(err), want);
	dy_error_free(&err);
}

static void test_types(void **state)
{
	struct procfile *pf = parse_ok("---\naddons: []\nconfig_vars: {A: b}\n"
	                               "default_process_types:\n"
	                               "  web: gunicorn app:app --bind 0.0.0.0:$PORT\n"
	                               "  worker: \"python worker.py\"\n");
	assert_int_equal(pf->n, 2);
	assert_string_equal(procfile_command(pf, "web"), "gunicorn app:app --bind 0.0.0.0:$PORT");
	assert_string_equal(procfile_command(pf, "worker"), "python worker.py");
	procfile_free(pf);
}

static void test_none(void **state)
{
	static const char *const docs[] = {"", "--- {}\n", "---\n", "default_process_types:\n",
	                                    "default_process_types: ~\n", "other: [1, {a: b}]\n"};
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		struct procfile *pf = parse_ok(docs[i]);
		assert_int_equal(pf->n, 0);
		procfile_free(pf);
	}
}

static void test_errors(void **state)
{
	parse_err("default_process_types: [web]\n",
	          "line 1: default_process_types: expected a mapping of type: command");
	parse_err("default_process_types:\n  web: {a: b}\n",
	          "line 2: default_process_types: web: expected a command string");
	parse_err("default_process_types:\n  'no good': x\n",
	          "line 2: default_process_types: \"no good\" is not a process type name");
	parse_err("default_process_types:\n  web: ''\n",
	          "line 2: default_process_types: web: expected a one-line command");
	parse_err("default_process_types:\n  web: a\n  web: b\n",
	          "line 3: default_process_types: web given twice");
	parse_err("- a\n- b\n", "line 1: expected a mapping (default_process_types: ...)");
	parse_err("a: [\n", "line 2: did not find expected node content");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_types),
	    cmocka_unit_test(test_none),
	    cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
