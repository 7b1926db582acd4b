/* libFuzzer target: slug entry checks. The input is lines "f PATH",
 * "d PATH", "l PATH TARGET", "h PATH TARGET", fed to slug_entry_normalize
 * and slug_tree_add as the unpacker does, then slug_tree_check_links. An
 * accepted path never has a ".." component, never starts or ends with '/',
 * and is recorded with its type. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "slugs/slug-entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_rel(const char *rel)
{
	size_t n = strlen(rel);
	if (rel[0] == '/' || (n > 0 && rel[n - 1] == '/') || strstr(rel, "//") != NULL)
		abort();
	if (n > SLUG_PATH_MAX)
		abort();
	/* no "..", "." or empty component */
	for (const char *c = rel; n > 0;) {
		const char *slash = strchr(c, '/');
		size_t len = slash ? (size_t)(slash - c) : strlen(c);
		if (len == 0 || len > SLUG_NAME_MAX || (len == 1 && c[0] == '.') ||
		    (len == 2 && c[0] == '.' && c[1] == '.'))
			abort();
		if (slash == NULL)
			break;
		c = slash + 1;
	}
	for (const unsigned char *c = (const unsigned char *)rel; *c; c++)
		if (*c < 0x20 || *c == 0x7f)
			abort();
}

static void one_line(struct slug_tree *t, char *line)
{
	if (line[0] == '\0' || line[1] != ' ')
		return;
	enum slug_entry_type type;
	switch (line[0]) {
	case 'f':
		type = SLUG_ENTRY_FILE;
		break;
	case 'd':
		type = SLUG_ENTRY_DIR;
		break;
	case 'l':
		type = SLUG_ENTRY_LINK;
		break;
	case 'h':
		type = SLUG_ENTRY_HARDLINK;
		break;
	default:
		return;
	}
	char *name = line + 2, *target = NULL;
	if (type == SLUG_ENTRY_LINK || type == SLUG_ENTRY_HARDLINK) {
		char *sp = strchr(name, ' ');
		if (sp == NULL)
			return;
		*sp = '\0';
		target = sp + 1;
	}
	char *rel = NULL, *hl = NULL;
	struct dy_error *err = NULL;
	int r = slug_entry_normalize(name, &rel, &err);
	dy_error_free(&err);
	if (r != 0) {
		if (rel != NULL)
			abort();
		return;
	}
	check_rel(rel);
	if (type == SLUG_ENTRY_HARDLINK) {
		if (slug_entry_normalize(target, &hl, &err) != 0) {
			dy_error_free(&err);
			free(rel);
			return;
		}
		check_rel(hl);
		target = hl;
	}
	enum slug_entry_type before = slug_tree_type(t, rel);
	if (slug_tree_add(t, rel, type, target, &err) == 0) {
		enum slug_entry_type as = type == SLUG_ENTRY_HARDLINK ? SLUG_ENTRY_FILE : type;
		if (err != NULL || slug_tree_type(t, rel) != as)
			abort();
		if (before != SLUG_ENTRY_NONE && before != as)
			abort();
		if (type == SLUG_ENTRY_LINK && target[0] == '/' &&
		    (strncmp(target, "/app", 4) != 0 || (target[4] != '\0' && target[4] != '/')))
			abort();
	} else {
		if (err == NULL)
			abort();
		dy_error_free(&err);
	}
	free(rel);
	free(hl);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 64 * 1024)
		return 0;
	char *buf = malloc(size + 1);
	if (buf == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	struct slug_tree *t = slug_tree_new();
	if (t == NULL) {
		free(buf);
		return 0;
	}
	size_t before = slug_tree_count(t);
	if (before != 0)
		abort();
	for (char *line = buf, *next; line != NULL; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		one_line(t, line);
	}
	struct dy_error *err = NULL;
	if (slug_tree_check_links(t, &err) < 0) {
		if (err == NULL || strncmp(dy_error_msg(err), "refused entry \"app/", 19) != 0)
			abort();
		dy_error_free(&err);
	}
	slug_tree_free(t);
	free(buf);
	return 0;
}
