/* .slugignore, as Heroku reads it: one pattern per line, the syntax of
 * .gitignore without negation. Blank lines and '#' comments are skipped. A
 * trailing '/' matches directories only; a pattern with a '/' elsewhere is
 * anchored at the app's root (a leading '/' is dropped); one without
 * matches the name at any depth. '*', '?', '[...]' as fnmatch(3), '*'
 * not crossing '/' in anchored patterns; a leading "**" + "/" matches at any
 * depth. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "common/error.h"

struct slugignore;

/* Parses data (len bytes). *ret is owned by the caller. A line starting
 * with '!' is refused (Heroku does not support negation), naming the line.
 * Returns 0 or < 0. */
int slugignore_parse(const char *data, size_t len, struct slugignore **ret, struct dy_error **err);

/* Whether path (relative to the app's root, no leading '/') is ignored. */
bool slugignore_match(const struct slugignore *si, const char *path, bool is_dir);

void slugignore_free(struct slugignore *si);
