#include "slugs/procfile.h"

#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"

static int is_name_char(char c, int first)
{
	if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
		return 1;
	return !first && (c == '_' || c == '-');
}

int procfile_valid_name(const char *name, size_t len)
{
	if (len == 0 || len > PROCFILE_NAME_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!is_name_char(name[i], i == 0))
			return 0;
	return 1;
}

void procfile_free(struct procfile *pf)
{
	if (pf == NULL)
		return;
	for (size_t i = 0; i < pf->n; i++) {
		free(pf->entries[i].name);
		free(pf->entries[i].command);
	}
	free(pf->entries);
	free(pf);
}

const char *procfile_command(const struct procfile *pf, const char *name)
{
	for (size_t i = 0; pf != NULL && i < pf->n; i++)
		if (strcmp(pf->entries[i].name, name) == 0)
			return pf->entries[i].command;
	return NULL;
}

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static int parse_line(struct procfile *pf, const char *line, size_t len, size_t lineno,
                      struct dy_error **err)
{
	size_t i = 0;
	while (i < len && is_blank(line[i]))
		i++;
	if (i == len || line[i] == '#')
		return 0;

	size_t name_start = i;
	while (i < len && line[i] != ':' && !is_blank(line[i]))
		i++;
	size_t name_len = i - name_start;
	while (i < len && is_blank(line[i]))
		i++;
	if (i == len || line[i] != ':')
		return dy_error(err, "Procfile line %zu: expected \"name: command\"", lineno);
	if (name_len == 0)
		return dy_error(err, "Procfile line %zu: missing process type name before ':'",
		                lineno);
	const char *name = line + name_start;
	if (name_len > PROCFILE_NAME_MAX)
		return dy_error(err,
		                "Procfile line %zu: process type name is longer than %d characters",
		                lineno, PROCFILE_NAME_MAX);
	if (!procfile_valid_name(name, name_len))
		return dy_error(err,
		                "Procfile line %zu: invalid process type name \"%.*s\" (letters, "
		                "digits, '_' and '-', starting with a letter or digit)",
		                lineno, (int)name_len, name);
	if (name_len == 3 && memcmp(name, "run", 3) == 0)
		return dy_error(
		    err,
		    "Procfile line %zu: process type name \"run\" is reserved for one-off "
		    "dynos",
		    lineno);
	i++; /* ':' */
	while (i < len && is_blank(line[i]))
		i++;
	size_t end = len;
	while (end > i && is_blank(line[end - 1]))
		end--;
	if (end == i)
		return dy_error(err, "Procfile line %zu: process type \"%.*s\" has no command",
		                lineno, (int)name_len, name);
	for (size_t k = i; k < end; k++) {
		unsigned char c = (unsigned char)line[k];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return dy_error(err,
			                "Procfile line %zu: control character 0x%02x in command",
			                lineno, c);
	}
	for (size_t k = 0; k < pf->n; k++)
		if (strlen(pf->entries[k].name) == name_len &&
		    memcmp(pf->entries[k].name, name, name_len) == 0)
			return dy_error(err, "Procfile line %zu: duplicate process type \"%.*s\"",
			                lineno, (int)name_len, name);

	struct procfile_entry *ne = realloc(pf->entries, (pf->n + 1) * sizeof(*ne));
	if (ne == NULL)
		return dy_error_errno(err, ENOMEM, "Procfile line %zu", lineno);
	pf->entries = ne;
	char *n = strndup(name, name_len);
	char *c = strndup(line + i, end - i);
	if (n == NULL || c == NULL) {
		free(n);
		free(c);
		return dy_error_errno(err, ENOMEM, "Procfile line %zu", lineno);
	}
	pf->entries[pf->n].name = n;
	pf->entries[pf->n].command = c;
	pf->n++;
	return 0;
}

int procfile_parse(const char *data, size_t len, struct procfile **ret, struct dy_error **err)
{
	if (len > PROCFILE_MAX_BYTES)
		return dy_error(err, "Procfile is larger than %d bytes", PROCFILE_MAX_BYTES);
	if (memchr(data, '\0', len) != NULL) {
		size_t lineno = 1;
		for (const char *p = data; *p != '\0'; p++)
			lineno += *p == '\n';
		return dy_error(err, "Procfile line %zu: NUL byte", lineno);
	}
	struct procfile *pf = calloc(1, sizeof(*pf));
	if (pf == NULL)
		return dy_error_errno(err, ENOMEM, "Procfile");
	size_t lineno = 0, pos = 0;
	while (pos < len) {
		lineno++;
		const char *nl = memchr(data + pos, '\n', len - pos);
		size_t line_len = nl ? (size_t)(nl - (data + pos)) : len - pos;
		size_t l = line_len;
		if (l > 0 && data[pos + l - 1] == '\r')
			l--;
		if (parse_line(pf, data + pos, l, lineno, err) < 0) {
			procfile_free(pf);
			return -1;
		}
		pos += line_len + (nl ? 1 : 0);
	}
	if (pf->n == 0) {
		procfile_free(pf);
		return dy_error(err, "Procfile declares no process types");
	}
	*ret = pf;
	return 0;
}
