/* slugs:create, slugs:inspect, slugs:unpack */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "common/units.h"
#include "slugs/slug.h"

static int limits_from_opts(const struct cli_verb *verb, const char *max_compressed,
                            const char *max_unpacked, const char *max_entries,
                            struct slug_limits *l)
{
	slug_limits_default(l);
	struct dy_error *err = NULL;
	if (max_compressed && dy_parse_size(max_compressed, &l->max_compressed, &err) < 0)
		goto bad;
	if (max_unpacked && dy_parse_size(max_unpacked, &l->max_unpacked, &err) < 0)
		goto bad;
	if (max_entries) {
		char *end;
		errno = 0;
		unsigned long long v = strtoull(max_entries, &end, 10);
		if (errno || *end || end == max_entries || max_entries[0] == '-' || v == 0)
			return cli_usage_error(verb,
			                       "--max-entries: expected a positive number, got "
			                       "\"%s\"",
			                       max_entries);
		l->max_entries = v;
	}
	return 0;
bad:
	cli_usage_error(verb, "%s", dy_error_msg(err));
	dy_error_free(&err);
	return CLI_USAGE;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The compression FILE's name says: .tgz/.tar.gz gzip, .tar.zst/.tzst
 * zstd, .tar none; gzip for any other name. */
static enum slug_compression compression_from_name(const char *file)
{
	if (ends_with(file, ".tar.zst") || ends_with(file, ".tzst"))
		return SLUG_COMPRESSION_ZSTD;
	if (ends_with(file, ".tar"))
		return SLUG_COMPRESSION_NONE;
	return SLUG_COMPRESSION_GZIP;
}

static int run_create(int argc, char **argv)
{
	const char *out = NULL, *compression = NULL;
	const struct cli_opt opts[] = {
	    {"--output", 'o', true, &out, NULL},
	    {"--compression", 0, true, &compression, NULL},
	    {NULL, 0, false, NULL, NULL},
	};
	const char *pos[1];
	size_t npos;
	int r = cli_parse(&cli_verb_slugs_create, argc, argv, opts, pos, 1, &npos);
	if (r)
		return r;
	if (npos != 1)
		return cli_usage_error(&cli_verb_slugs_create, "missing DIR");
	if (out == NULL)
		return cli_usage_error(&cli_verb_slugs_create, "missing -o FILE");
	enum slug_compression c = compression_from_name(out);
	if (compression && slug_compression_from_str(compression, &c) < 0)
		return cli_usage_error(&cli_verb_slugs_create,
		                       "unknown compression \"%s\" (gzip, zstd or none)",
		                       compression);
	struct dy_error *err = NULL;
	if (slug_pack(pos[0], out, c, &err) < 0) {
		cli_error("%s", dy_error_msg(err));
		dy_error_free(&err);
		return CLI_ERROR;
	}
	struct slug_info info;
	if (slug_inspect(out, NULL, &info, &err) < 0) {
		cli_error("%s", dy_error_msg(err));
		dy_error_free(&err);
		return CLI_ERROR;
	}
	printf("Created %s (%llu bytes, %s, %llu entries, id %s)\n", out,
	       (unsigned long long)info.size, info.compression, (unsigned long long)info.entries,
	       info.id);
	slug_info_clear(&info);
	return CLI_OK;
}

const struct cli_verb cli_verb_slugs_create = {
    .name = "slugs:create",
    .run = run_create,
    .usage = "slugs:create DIR -o FILE [--compression gzip|zstd|none]",
    .summary = "pack an app directory into a slug",
    .help = "The compression follows FILE's name unless --compression says: .tgz and\n"
            ".tar.gz gzip, .tar.zst zstd, .tar none, any other name gzip.\n"
            "DIR needs a valid Procfile. Entries go under ./app/, sorted, owned by 0:0 with\n"
            "mtime 0, so the same directory gives the same bytes. Paths matched by\n"
            "DIR/.slugignore (one glob per line, as Heroku) are left out. Fifos, sockets,\n"
            "device nodes and links that leave the app are refused.\n",
};

static json_t *info_json(const struct slug_info *info)
{
	json_t *pt = json_object();
	for (size_t i = 0; info->procfile && i < info->procfile->n; i++)
		json_object_set_new(pt, info->procfile->entries[i].name,
		                    json_string(info->procfile->entries[i].command));
	return json_pack("{s:s, s:I, s:I, s:I, s:s, s:o}", "id", info->id, "size",
	                 (json_int_t)info->size, "unpacked_size", (json_int_t)info->unpacked_size,
	                 "entries", (json_int_t)info->entries, "compression", info->compression,
	                 "process_types", pt);
}

static int run_inspect(int argc, char **argv)
{
	bool json = false;
	const char *mc = NULL, *mu = NULL, *me = NULL;
	const struct cli_opt opts[] = {
	    {"--json", 0, false, NULL, &json},      {"--max-compressed", 0, true, &mc, NULL},
	    {"--max-unpacked", 0, true, &mu, NULL}, {"--max-entries", 0, true, &me, NULL},
	    {NULL, 0, false, NULL, NULL},
	};
	const char *pos[1];
	size_t npos;
	int r = cli_parse(&cli_verb_slugs_inspect, argc, argv, opts, pos, 1, &npos);
	if (r)
		return r;
	if (npos != 1)
		return cli_usage_error(&cli_verb_slugs_inspect, "missing FILE");
	struct slug_limits limits;
	if ((r = limits_from_opts(&cli_verb_slugs_inspect, mc, mu, me, &limits)))
		return r;
	struct dy_error *err = NULL;
	struct slug_info info;
	if (slug_inspect(pos[0], &limits, &info, &err) < 0) {
		cli_error("%s", dy_error_msg(err));
		dy_error_free(&err);
		return CLI_ERROR;
	}
	if (json) {
		json_t *o = info_json(&info);
		char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		puts(s ? s : "{}");
		free(s);
		json_decref(o);
	} else {
		printf("id:            %s\n", info.id);
		printf("size:          %llu bytes (%s)\n", (unsigned long long)info.size,
		       info.compression);
		printf("unpacked size: %llu bytes\n", (unsigned long long)info.unpacked_size);
		printf("entries:       %llu\n", (unsigned long long)info.entries);
		printf("process types:\n");
		for (size_t i = 0; i < info.procfile->n; i++)
			printf("  %s: %s\n", info.procfile->entries[i].name,
			       info.procfile->entries[i].command);
	}
	slug_info_clear(&info);
	return CLI_OK;
}

const struct cli_verb cli_verb_slugs_inspect = {
    .name = "slugs:inspect",
    .run = run_inspect,
    .usage = "slugs:inspect FILE [--json] [--max-compressed SIZE] [--max-unpacked SIZE] "
             "[--max-entries N]",
    .summary = "check a slug and show its id, sizes and process types",
    .help = "Reads every entry with every check of slugs:unpack, writing nothing.\n"
            "--json prints {id, size, unpacked_size, entries, compression, process_types}.\n",
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static int run_unpack(int argc, char **argv)
{
	const char *mc = NULL, *mu = NULL, *me = NULL;
	const struct cli_opt opts[] = {
	    {"--max-compressed", 0, true, &mc, NULL},
	    {"--max-unpacked", 0, true, &mu, NULL},
	    {"--max-entries", 0, true, &me, NULL},
	    {NULL, 0, false, NULL, NULL},
	};
	const char *pos[2];
	size_t npos;
	int r = cli_parse(&cli_verb_slugs_unpack, argc, argv, opts, pos, 2, &npos);
	if (r)
		return r;
	if (npos != 2)
		return cli_usage_error(&cli_verb_slugs_unpack, "expected FILE and DIR");
	struct slug_unpack_opts uo = {.cancel = &interrupted};
	if ((r = limits_from_opts(&cli_verb_slugs_unpack, mc, mu, me, &uo.limits)))
		return r;
	/* An interrupt stops the unpack, which then removes what it wrote. */
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	struct dy_error *err = NULL;
	struct slug_info info;
	if (slug_unpack(pos[0], pos[1], &uo, &info, &err) < 0) {
		cli_error("%s", dy_error_msg(err));
		dy_error_free(&err);
		return CLI_ERROR;
	}
	printf("Unpacked %s into %s (%llu entries, %llu bytes)\n", pos[0], pos[1],
	       (unsigned long long)info.entries, (unsigned long long)info.unpacked_size);
	slug_info_clear(&info);
	return CLI_OK;
}

const struct cli_verb cli_verb_slugs_unpack = {
    .name = "slugs:unpack",
    .run = run_unpack,
    .usage = "slugs:unpack FILE DIR [--max-compressed SIZE] [--max-unpacked SIZE] "
             "[--max-entries N]",
    .summary = "unpack a slug's app/ into a new directory DIR",
    .help = "DIR must not exist; its parent must. The slug is unpacked into a temporary\n"
            "sibling and renamed to DIR when every entry passed every check, so a refused\n"
            "or interrupted unpack leaves nothing. Limits default to 1G compressed, 4G\n"
            "unpacked and 1000000 entries. gzip is inflated by ISA-L, zstd by libzstd;\n"
            "DYNO_GUNZIP=zlib or DYNO_UNZSTD=libarchive in the environment leaves them to\n"
            "libarchive's own filters. See docs/slugs.md for every rule.\n",
};
