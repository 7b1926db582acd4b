/* The dyno command: one verb per file (cli/cmd-*.c), dispatched by main.c. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define CLI_OK    0
#define CLI_ERROR 1
#define CLI_USAGE 2

struct cli_verb {
	const char *name;
	int (*run)(int argc, char **argv); /* argv[0] is the verb */
	const char *usage;   /* "slugs:create DIR -o FILE [--compression gzip|zstd|none]" */
	const char *summary; /* one line */
	const char *help;    /* the rest of `dyno help VERB`, may be NULL */
};

/* All verbs, NULL-terminated. */
extern const struct cli_verb *const cli_verbs[];

const struct cli_verb *cli_find_verb(const char *name);

/* Prints "dyno: error: <msg>" to stderr and returns CLI_ERROR. */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints "dyno: <msg>" and the verb's usage line to stderr and returns
 * CLI_USAGE. */
int cli_usage_error(const struct cli_verb *verb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Argument scanner for a verb's words: options may come in any order
 * among the positional words; "--" ends the options. */
struct cli_opt {
	const char *long_name; /* "--json" */
	char short_name;       /* 'o' or 0 */
	bool takes_value;
	const char **value; /* where the value goes (takes_value) */
	bool *flag;         /* set when seen (no value) */
};

/* Scans argv[1..argc): fills options, collects positional words into
 * pos (capacity max_pos; *npos set). Returns 0, or CLI_USAGE after printing
 * the problem (unknown option, missing value, too many words). */
int cli_parse(const struct cli_verb *verb, int argc, char **argv, const struct cli_opt *opts,
              const char **pos, size_t max_pos, size_t *npos);

extern const struct cli_verb cli_verb_help;
extern const struct cli_verb cli_verb_version;
extern const struct cli_verb cli_verb_slugs_create;
extern const struct cli_verb cli_verb_slugs_inspect;
extern const struct cli_verb cli_verb_slugs_unpack;
extern const struct cli_verb cli_verb_local;
extern const struct cli_verb cli_verb_apps;
extern const struct cli_verb cli_verb_apps_create;
extern const struct cli_verb cli_verb_apps_info;
extern const struct cli_verb cli_verb_apps_destroy;
extern const struct cli_verb cli_verb_open;
extern const struct cli_verb cli_verb_domains;
extern const struct cli_verb cli_verb_git_remote;
extern const struct cli_verb cli_verb_builds;
extern const struct cli_verb cli_verb_builds_output;
extern const struct cli_verb cli_verb_builds_create;
extern const struct cli_verb cli_verb_builds_cache_purge;
extern const struct cli_verb cli_verb_buildpacks;
extern const struct cli_verb cli_verb_buildpacks_set;
extern const struct cli_verb cli_verb_buildpacks_add;
extern const struct cli_verb cli_verb_buildpacks_clear;

#include <stdint.h>
/* Posts the source tar at fd (size bytes, app/ prefix) as a build of app
 * (commit: the pushed commit, or NULL), streams its output, then waits for
 * its release and rollout. CLI_OK, or CLI_ERROR naming what failed. */
int cli_build_source(const char *app, int fd, uint64_t size, const char *commit);
extern const struct cli_verb cli_verb_git_hook;
extern const struct cli_verb cli_verb_git_receive;
extern const struct cli_verb cli_verb_domains_add;
extern const struct cli_verb cli_verb_domains_remove;
extern const struct cli_verb cli_verb_maintenance;
extern const struct cli_verb cli_verb_maintenance_on;
extern const struct cli_verb cli_verb_maintenance_off;
extern const struct cli_verb cli_verb_deploy;
extern const struct cli_verb cli_verb_ps;
extern const struct cli_verb cli_verb_run;
extern const struct cli_verb cli_verb_ps_scale;
extern const struct cli_verb cli_verb_ps_restart;
extern const struct cli_verb cli_verb_ps_stop;
extern const struct cli_verb cli_verb_config;
extern const struct cli_verb cli_verb_config_set;
extern const struct cli_verb cli_verb_config_get;
extern const struct cli_verb cli_verb_config_unset;
extern const struct cli_verb cli_verb_releases;
extern const struct cli_verb cli_verb_rollback;
extern const struct cli_verb cli_verb_logs;
extern const struct cli_verb cli_verb_addons;
extern const struct cli_verb cli_verb_addons_create;
extern const struct cli_verb cli_verb_addons_info;
extern const struct cli_verb cli_verb_addons_destroy;
extern const struct cli_verb cli_verb_pg_info;
extern const struct cli_verb cli_verb_pg_psql;
extern const struct cli_verb cli_verb_pg_backups;
extern const struct cli_verb cli_verb_pg_backups_capture;
extern const struct cli_verb cli_verb_pg_backups_restore;
extern const struct cli_verb cli_verb_pg_backups_download;
