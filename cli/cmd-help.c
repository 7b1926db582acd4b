#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/config.h"

static int run_help(int argc, char **argv)
{
	if (argc > 2)
		return cli_usage_error(&cli_verb_help, "help takes at most one verb");
	if (argc == 2) {
		const struct cli_verb *v = cli_find_verb(argv[1]);
		if (v == NULL)
			return cli_usage_error(&cli_verb_help, "unknown verb \"%s\"", argv[1]);
		printf("usage: dyno %s\n\n%s\n", v->usage, v->summary);
		if (v->help)
			printf("\n%s", v->help);
		return CLI_OK;
	}
	printf("usage: dyno [--help] [--version] VERB [ARGS...]\n\n"
	       "dyno runs twelve-factor apps as isolated dynos, like Heroku's Common Runtime.\n\n"
	       "Verbs:\n");
	for (size_t i = 0; cli_verbs[i]; i++)
		printf("  %-16s %s\n", cli_verbs[i]->name, cli_verbs[i]->summary);
	printf("\nApp verbs take -a APP (also before the verb), else $DYNO_APP. dynod is reached\n"
	       "at $DYNO_API (a socket path), else api_socket of %s.\n",
	       CONFIG_DEFAULT_PATH);
	printf("\nExit status: 0 done, 1 error, 2 bad usage.\n"
	       "`dyno help VERB` tells more about a verb.\n");
	return CLI_OK;
}

const struct cli_verb cli_verb_help = {
    .name = "help",
    .run = run_help,
    .usage = "help [VERB]",
    .summary = "show the verbs, or what one verb does",
};

static int run_version(int argc, char **argv)
{
	if (argc > 1)
		return cli_usage_error(&cli_verb_version, "version takes no arguments");
	printf("dyno %s\n", DYNO_VERSION);
	return CLI_OK;
}

const struct cli_verb cli_verb_version = {
    .name = "version",
    .run = run_version,
    .usage = "version",
    .summary = "print dyno's version (also --version)",
};
