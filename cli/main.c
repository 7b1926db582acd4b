#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

/* clang-format off */
const struct cli_verb *const cli_verbs[] = {
    &cli_verb_help,
    &cli_verb_version,
    &cli_verb_apps,
    &cli_verb_apps_create,
    &cli_verb_apps_info,
    &cli_verb_apps_destroy,
    &cli_verb_open,
    &cli_verb_deploy,
    &cli_verb_ps,
    &cli_verb_run,
    &cli_verb_ps_scale,
    &cli_verb_ps_restart,
    &cli_verb_ps_stop,
    &cli_verb_config,
    &cli_verb_config_set,
    &cli_verb_config_get,
    &cli_verb_config_unset,
    &cli_verb_releases,
    &cli_verb_rollback,
    &cli_verb_logs,
    &cli_verb_git_remote,
    &cli_verb_builds,
    &cli_verb_builds_output,
    &cli_verb_builds_create,
    &cli_verb_builds_cache_purge,
    &cli_verb_buildpacks,
    &cli_verb_buildpacks_set,
    &cli_verb_buildpacks_add,
    &cli_verb_buildpacks_clear,
    &cli_verb_git_receive,
    &cli_verb_git_hook,
    &cli_verb_domains,
    &cli_verb_domains_add,
    &cli_verb_domains_remove,
    &cli_verb_maintenance,
    &cli_verb_maintenance_on,
    &cli_verb_maintenance_off,
    &cli_verb_addons,
    &cli_verb_addons_create,
    &cli_verb_addons_info,
    &cli_verb_addons_destroy,
    &cli_verb_pg_info,
    &cli_verb_pg_psql,
    &cli_verb_pg_backups,
    &cli_verb_pg_backups_capture,
    &cli_verb_pg_backups_restore,
    &cli_verb_pg_backups_download,
    &cli_verb_slugs_create,
    &cli_verb_slugs_inspect,
    &cli_verb_slugs_unpack,
    &cli_verb_local,
    NULL,
};
/* clang-format on */

const struct cli_verb *cli_find_verb(const char *name)
{
	for (size_t i = 0; cli_verbs[i]; i++)
		if (strcmp(cli_verbs[i]->name, name) == 0)
			return cli_verbs[i];
	return NULL;
}

int cli_error(const char *fmt, ...)
{
	va_list ap;
	fputs("dyno: error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CLI_ERROR;
}

int cli_usage_error(const struct cli_verb *verb, const char *fmt, ...)
{
	va_list ap;
	fputs("dyno: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (verb)
		fprintf(stderr, "usage: dyno %s\n", verb->usage);
	else
		fputs("usage: dyno [--help] [--version] VERB [ARGS...]   (dyno help)\n", stderr);
	return CLI_USAGE;
}

int cli_parse(const struct cli_verb *verb, int argc, char **argv, const struct cli_opt *opts,
              const char **pos, size_t max_pos, size_t *npos)
{
	*npos = 0;
	bool only_words = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!only_words && strcmp(a, "--") == 0) {
			only_words = true;
			continue;
		}
		if (!only_words && a[0] == '-' && a[1] != '\0') {
			const struct cli_opt *o = NULL;
			const char *inline_value = NULL;
			for (size_t k = 0; opts && opts[k].long_name; k++) {
				size_t n = strlen(opts[k].long_name);
				if (strncmp(a, opts[k].long_name, n) == 0 &&
				    (a[n] == '\0' || (a[n] == '=' && opts[k].takes_value))) {
					o = &opts[k];
					inline_value = a[n] == '=' ? a + n + 1 : NULL;
					break;
				}
				if (opts[k].short_name && a[0] == '-' &&
				    a[1] == opts[k].short_name && a[2] == '\0') {
					o = &opts[k];
					break;
				}
			}
			if (o == NULL)
				return cli_usage_error(verb, "unknown option %s", a);
			if (o->takes_value) {
				if (inline_value == NULL) {
					if (i + 1 >= argc)
						return cli_usage_error(
						    verb, "option %s needs a value", a);
					inline_value = argv[++i];
				}
				*o->value = inline_value;
			} else if (o->flag) {
				*o->flag = true;
			}
			continue;
		}
		if (*npos >= max_pos)
			return cli_usage_error(verb, "unexpected argument \"%s\"", a);
		pos[(*npos)++] = a;
	}
	return 0;
}

int main(int argc, char **argv)
{
	/* `dyno -a APP VERB ...`: an app given before the verb counts as
	 * $DYNO_APP for it */
	while (argc >= 3 && (strcmp(argv[1], "-a") == 0 || strcmp(argv[1], "--app") == 0)) {
		setenv("DYNO_APP", argv[2], 1);
		argv[2] = argv[0];
		argv += 2;
		argc -= 2;
	}
	if (argc < 2)
		return cli_usage_error(NULL, "missing verb");
	const char *first = argv[1];
	if (strcmp(first, "--help") == 0 || strcmp(first, "-h") == 0)
		return cli_verb_help.run(1, argv + 1);
	if (strcmp(first, "--version") == 0 || strcmp(first, "-v") == 0)
		return cli_verb_version.run(1, argv + 1);
	const struct cli_verb *verb = cli_find_verb(first);
	if (verb == NULL)
		return cli_usage_error(NULL, "unknown verb \"%s\"", first);
	/* `dyno VERB --help` is `dyno help VERB` */
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			char *hargv[] = {"help", (char *)verb->name, NULL};
			return cli_verb_help.run(2, hargv);
		}
	}
	return verb->run(argc - 1, argv + 1);
}
