/* The Procfile: one "name: command" per line (docs/design.md, Slug). */
#pragma once

#include <stddef.h>

#include "common/error.h"

#define PROCFILE_MAX_BYTES (64 * 1024)
#define PROCFILE_NAME_MAX  30

struct procfile_entry {
	char *name;
	char *command;
};

struct procfile {
	size_t n;
	struct procfile_entry *entries; /* in file order */
};

/* Parses a Procfile held in data (len bytes, need not be NUL-terminated).
 * Blank lines and lines starting with '#' are skipped; CRLF is accepted.
 * Names match ^[A-Za-z0-9][A-Za-z0-9_-]{0,29}$, are unique, and "run" is
 * reserved. Errors read "Procfile line N: <what is wrong>". An empty
 * Procfile (no process type) is an error too. On success *ret is owned by
 * the caller (procfile_free). Returns 0 or < 0. */
int procfile_parse(const char *data, size_t len, struct procfile **ret, struct dy_error **err);

/* The command of process type name, or NULL. */
const char *procfile_command(const struct procfile *pf, const char *name);

/* Frees pf; accepts NULL. */
void procfile_free(struct procfile *pf);

/* Whether name is a valid process type name (the Procfile name rule). */
int procfile_valid_name(const char *name, size_t len);
