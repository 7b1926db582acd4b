/* Slugs: pack a directory, inspect a slug, unpack it safely (docs/design.md,
 * Slug; docs/slugs.md). */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"
#include "common/sha256.h"
#include "slugs/procfile.h"

#define SLUG_DEFAULT_MAX_COMPRESSED (1ULL << 30) /* 1 GiB, as Heroku since 2026 */
#define SLUG_DEFAULT_MAX_UNPACKED   (4ULL << 30) /* 4 GiB */
#define SLUG_DEFAULT_MAX_ENTRIES    1000000ULL

struct slug_limits {
	uint64_t max_compressed; /* bytes of the slug file */
	uint64_t max_unpacked;   /* bytes of file data once unpacked */
	uint64_t max_entries;    /* archive entries */
};

/* The defaults above. */
void slug_limits_default(struct slug_limits *l);

enum slug_compression {
	SLUG_COMPRESSION_GZIP = 0,
	SLUG_COMPRESSION_ZSTD,
	SLUG_COMPRESSION_NONE,
};

/* "gzip", "zstd", "none". */
const char *slug_compression_str(enum slug_compression c);

/* Parses "gzip", "zstd" or "none". Returns 0 or < 0. */
int slug_compression_from_str(const char *s, enum slug_compression *ret);

struct slug_info {
	char id[DY_SHA256_HEX_LEN +
	        1];                /* sha256 of the slug's bytes (inspect only; "" after unpack) */
	uint64_t size;             /* compressed size (bytes of the file) */
	uint64_t unpacked_size;    /* file data once unpacked */
	uint64_t entries;          /* archive entries */
	char compression[16];      /* as libarchive names the filter: gzip, zstd, none */
	struct procfile *procfile; /* owned; free with slug_info_clear */
};

void slug_info_clear(struct slug_info *info);

struct slug_unpack_opts {
	struct slug_limits limits;
	bool chown; /* give every file to uid:gid (needs root) */
	uid_t uid;
	gid_t gid;
	volatile sig_atomic_t *cancel; /* when set non-zero, the unpack stops and cleans up */
	const char *name;     /* names the slug in errors instead of its path (NULL: the path) */
	bool *ret_over_limit; /* set true when refused for limits.max_unpacked (may be NULL) */
};

/* Unpacks the slug file into dir, which must not exist (its parent must):
 * entries go into a temporary sibling ".<name>.unpack-XXXXXX" that is
 * renamed to dir once every entry passed every check, so a refused or
 * interrupted unpack leaves nothing. dir holds what the slug has under
 * app/. Fills *ret_info when not NULL. Returns 0 or < 0 with an error
 * naming the refused entry: `refused entry "./app/x": <reason>`. */
int slug_unpack(const char *file, const char *dir, const struct slug_unpack_opts *opts,
                struct slug_info *ret_info, struct dy_error **err);

/* Reads the whole slug with every check of slug_unpack, writing nothing.
 * Fills *ret_info (id, sizes, entries, process types). Returns 0 or < 0. */
int slug_inspect(const char *file, const struct slug_limits *limits, struct slug_info *ret_info,
                 struct dy_error **err);

/* As slug_inspect for the slug open at fd (read from its offset); errors
 * name no file. */
int slug_inspect_fd(int fd, const struct slug_limits *limits, struct slug_info *ret_info,
                    struct dy_error **err);

/* One pass over the slug open at fd (read from its offset): every check
 * of slug_inspect_fd, with the same errors and the same *ret_info (id
 * included), while writing what the slug has under app/ into the empty
 * directory rootfd as slug_unpack does (opts: limits, chown, cancel).
 * Writing is best effort: once the file data would go past write_limit
 * bytes, or a write fails, it stops and the check reads on to the end.
 * *ret_complete is true when rootfd holds the whole tree (the caller
 * renames it into place or removes it). Returns 0 or < 0 (the slug was
 * refused; what rootfd holds is to be removed). */
int slug_check_unpack_fd(int fd, int rootfd, const struct slug_unpack_opts *opts,
                         uint64_t write_limit, struct slug_info *ret_info, bool *ret_complete,
                         struct dy_error **err);

/* The passes over a slug's archive this process made so far (inspect,
 * unpack, or both at once): each decompresses the slug once. For tests. */
uint64_t slug_read_passes(void);

/* Packs dir into a slug at out (written to a temporary sibling, then
 * renamed): entries under "./app/", sorted, owner 0:0, mtime 0, modes
 * without setuid/setgid/sticky, files listed in dir/.slugignore left out.
 * Same input, same bytes. Refuses a dir without a valid Procfile, special
 * files, and links that would be refused at unpack. Returns 0 or < 0. */
int slug_pack(const char *dir, const char *out, enum slug_compression compression,
              struct dy_error **err);
