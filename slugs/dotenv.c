#include "slugs/dotenv.h"

#include <stdlib.h>
#include <string.h>

struct buf {
	char *p;
	size_t len, cap;
};

static int buf_put(struct buf *b, char c)
{
	if (b->len + 1 >= b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		char *np = realloc(b->p, cap);
		if (np == NULL)
			return -1;
		b->p = np;
		b->cap = cap;
	}
	b->p[b->len++] = c;
	b->p[b->len] = '\0';
	return 0;
}

void dotenv_free(struct dotenv *env)
{
	if (env == NULL)
		return;
	for (size_t i = 0; i < env->n; i++) {
		free(env->vars[i].key);
		free(env->vars[i].value);
	}
	free(env->vars);
	free(env);
}

const char *dotenv_get(const struct dotenv *env, const char *key)
{
	for (size_t i = 0; env != NULL && i < env->n; i++)
		if (strcmp(env->vars[i].key, key) == 0)
			return env->vars[i].value;
	return NULL;
}

static int set_var(struct dotenv *env, char *key, char *value)
{
	for (size_t i = 0; i < env->n; i++) {
		if (strcmp(env->vars[i].key, key) == 0) {
			free(env->vars[i].value);
			env->vars[i].value = value;
			free(key);
			return 0;
		}
	}
	struct dotenv_var *nv = realloc(env->vars, (env->n + 1) * sizeof(*nv));
	if (nv == NULL)
		return -1;
	env->vars = nv;
	env->vars[env->n].key = key;
	env->vars[env->n].value = value;
	env->n++;
	return 0;
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static int is_key_char(char c, int first)
{
	if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_')
		return 1;
	return !first && c >= '0' && c <= '9';
}

int dotenv_parse(const char *data, size_t len, struct dotenv **ret, struct dy_error **err)
{
	if (len > DOTENV_MAX_BYTES)
		return dy_error(err, ".env is larger than %d bytes", DOTENV_MAX_BYTES);
	struct dotenv *env = calloc(1, sizeof(*env));
	if (env == NULL)
		return dy_error_errno(err, ENOMEM, ".env");
	size_t i = 0, line = 1;
	struct buf val = {0};
	char *key = NULL;
	int r = -1;

	while (i < len) {
		size_t start_line = line;
		while (i < len && is_blank(data[i]))
			i++;
		if (i < len && (data[i] == '\n' || data[i] == '\r' || data[i] == '#')) {
			while (i < len && data[i] != '\n')
				i++;
			if (i < len) {
				i++;
				line++;
			}
			continue;
		}
		if (i == len)
			break;
		if (len - i > 7 && memcmp(data + i, "export", 6) == 0 && is_blank(data[i + 6])) {
			i += 7;
			while (i < len && is_blank(data[i]))
				i++;
		}
		size_t ks = i;
		while (i < len && is_key_char(data[i], i == ks))
			i++;
		if (i == ks) {
			dy_error(err, ".env line %zu: expected KEY=VALUE", start_line);
			goto out;
		}
		size_t kl = i - ks;
		while (i < len && is_blank(data[i]))
			i++;
		if (i == len || data[i] != '=') {
			dy_error(err, ".env line %zu: expected '=' after \"%.*s\"", start_line,
			         (int)kl, data + ks);
			goto out;
		}
		i++;
		while (i < len && is_blank(data[i]))
			i++;
		val.len = 0;
		if (buf_put(&val, 'x') < 0) /* make sure p is allocated */
			goto oom;
		val.len = 0;
		val.p[0] = '\0';
		if (i < len && data[i] == '\'') {
			i++;
			while (i < len && data[i] != '\'') {
				if (data[i] == '\n')
					line++;
				if (buf_put(&val, data[i++]) < 0)
					goto oom;
			}
			if (i == len) {
				dy_error(err, ".env line %zu: unterminated single quote",
				         start_line);
				goto out;
			}
			i++;
		} else if (i < len && data[i] == '"') {
			i++;
			while (i < len && data[i] != '"') {
				char c = data[i++];
				if (c == '\\' && i < len) {
					char e = data[i++];
					switch (e) {
					case 'n':
						c = '\n';
						break;
					case 't':
						c = '\t';
						break;
					case 'r':
						c = '\r';
						break;
					case '"':
					case '\\':
					case '$':
						c = e;
						break;
					default:
						/* Unknown escapes stay as written, as dotenv does.
						 */
						if (buf_put(&val, '\\') < 0)
							goto oom;
						c = e;
						break;
					}
				}
				if (c == '\n' && data[i - 1] == '\n')
					line++;
				if (buf_put(&val, c) < 0)
					goto oom;
			}
			if (i == len) {
				dy_error(err, ".env line %zu: unterminated double quote",
				         start_line);
				goto out;
			}
			i++;
		} else {
			size_t vs = i;
			/* A '#' after a blank starts a comment, also where the
			 * value would start ("A= #c" is empty); data[i - 1] is
			 * the '=' or a blank at vs. */
			while (i < len && data[i] != '\n') {
				if (data[i] == '#' && is_blank(data[i - 1]))
					break;
				i++;
			}
			size_t ve = i;
			while (ve > vs && (is_blank(data[ve - 1]) || data[ve - 1] == '\r'))
				ve--;
			for (size_t k = vs; k < ve; k++)
				if (buf_put(&val, data[k]) < 0)
					goto oom;
		}
		/* After the value: blanks, an optional comment, then the end of
		 * the line. */
		while (i < len && (is_blank(data[i]) || data[i] == '\r'))
			i++;
		if (i < len && data[i] == '#')
			while (i < len && data[i] != '\n')
				i++;
		if (i < len && data[i] != '\n') {
			dy_error(err, ".env line %zu: unexpected text after the value of %.*s",
			         line, (int)kl, data + ks);
			goto out;
		}
		if (i < len) {
			i++;
			line++;
		}
		if (memchr(val.p, '\0', val.len) != NULL) {
			dy_error(err, ".env line %zu: NUL byte in the value of %.*s", start_line,
			         (int)kl, data + ks);
			goto out;
		}
		key = strndup(data + ks, kl);
		char *v = strndup(val.p, val.len);
		if (key == NULL || v == NULL) {
			free(v);
			goto oom;
		}
		if (set_var(env, key, v) < 0) {
			free(v);
			goto oom;
		}
		key = NULL;
	}
	*ret = env;
	env = NULL;
	r = 0;
	goto out;
oom:
	dy_error_errno(err, ENOMEM, ".env line %zu", line);
out:
	free(key);
	free(val.p);
	dotenv_free(env);
	return r;
}
