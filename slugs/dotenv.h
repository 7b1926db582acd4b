/* .env files as `heroku local` reads them: KEY=VALUE per line, an optional
 * leading "export ", single quotes (literal), double quotes (\n \t \" \\
 * escapes, may span lines), '#' comments (whole lines, or after an
 * unquoted value preceded by whitespace), blank lines. */
#pragma once

#include <stddef.h>

#include "common/error.h"

#define DOTENV_MAX_BYTES (1024 * 1024)

struct dotenv_var {
	char *key;
	char *value;
};

struct dotenv {
	size_t n;
	struct dotenv_var *vars; /* in file order; a repeated key keeps its last value */
};

/* Parses data (len bytes). Keys match [A-Za-z_][A-Za-z0-9_]*. Errors read
 * ".env line N: <what is wrong>". *ret is owned by the caller
 * (dotenv_free). Returns 0 or < 0. */
int dotenv_parse(const char *data, size_t len, struct dotenv **ret, struct dy_error **err);

/* The value of key, or NULL. */
const char *dotenv_get(const struct dotenv *env, const char *key);

/* Frees env; accepts NULL. */
void dotenv_free(struct dotenv *env);
