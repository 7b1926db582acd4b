/* The checks every slug entry passes before anything is written (docs/design.md,
 * Slug): names, types, link targets. A struct slug_tree remembers what the
 * archive declared so far, so that an entry under a link, a type change or
 * a link escaping app/ through earlier links is refused.
 *
 * Paths in the tree are relative to app/ ("" is app/ itself), normalized:
 * no empty, "." or ".." components, no leading or trailing '/'. */
#pragma once

#include <stddef.h>

#include "common/error.h"

enum slug_entry_type {
	SLUG_ENTRY_NONE = 0,
	SLUG_ENTRY_FILE,
	SLUG_ENTRY_DIR,
	SLUG_ENTRY_LINK,     /* symbolic link */
	SLUG_ENTRY_HARDLINK, /* only as an input type: recorded as FILE */
};

#define SLUG_NAME_MAX       255
#define SLUG_PATH_MAX       4095
#define SLUG_DEPTH_MAX      256 /* components below app/ */
#define SLUG_LINK_DEPTH_MAX 40

struct slug_tree;

/* Returns "file", "directory", "link", "hard link" or "none". */
const char *slug_entry_type_str(enum slug_entry_type t);

/* Normalizes an archive entry name ("./app/x", "app/x/", "app") into a path
 * relative to app/ (*ret_rel, owned by the caller; "" for app/ itself).
 * Returns 1 for the bare "." / "./" entry, which carries nothing and is
 * skipped; 0 on success; < 0 with an error saying what is wrong (absolute
 * path, ".." component, outside app/, control character, component or path
 * too long). */
int slug_entry_normalize(const char *name, char **ret_rel, struct dy_error **err);

/* A new, empty tree holding only app/ itself. NULL when out of memory. */
struct slug_tree *slug_tree_new(void);
void slug_tree_free(struct slug_tree *t);

/* Records the entry rel (normalized) of type type; target is the link
 * target for LINK (as written in the archive) and the normalized target
 * path for HARDLINK. Refuses: an entry under a link; an entry under a file;
 * a type change of an earlier entry; a link target that leaves app/ (a
 * relative one) or is not under /app/ (an absolute one), resolved through
 * the links recorded so far; a hard link whose target is not an earlier
 * file. Parents not seen before are recorded as directories. Returns 0 or
 * < 0; the error does not name the entry (the caller does). */
int slug_tree_add(struct slug_tree *t, const char *rel, enum slug_entry_type type,
                  const char *target, struct dy_error **err);

/* The type recorded for rel, SLUG_ENTRY_NONE when unknown. */
enum slug_entry_type slug_tree_type(const struct slug_tree *t, const char *rel);

/* Resolves every link again with the whole tree (a later link can change
 * where an earlier one leads). Returns 0, or < 0 naming the first link
 * that now leaves app/, in archive order. */
int slug_tree_check_links(const struct slug_tree *t, struct dy_error **err);

/* Number of entries recorded (app/ itself excluded). */
size_t slug_tree_count(const struct slug_tree *t);

/* Writes name into buf for messages, escaping control characters and
 * quotes as \xNN, cut with "..." past size. Returns buf. */
char *slug_entry_quote(const char *name, char *buf, size_t size);
