#include "slugs/slugignore.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

struct pattern {
	char *glob;
	bool dir_only;
	bool anchored;
	bool multi; /* unanchored, with a '/' inside: matched at any depth */
};

struct slugignore {
	size_t n;
	struct pattern *p;
};

void slugignore_free(struct slugignore *si)
{
	if (si == NULL)
		return;
	for (size_t i = 0; i < si->n; i++)
		free(si->p[i].glob);
	free(si->p);
	free(si);
}

int slugignore_parse(const char *data, size_t len, struct slugignore **ret, struct dy_error **err)
{
	struct slugignore *si = calloc(1, sizeof(*si));
	if (si == NULL)
		return dy_error_errno(err, ENOMEM, ".slugignore");
	size_t pos = 0, line = 0;
	while (pos < len) {
		line++;
		const char *s = data + pos;
		const char *nl = memchr(s, '\n', len - pos);
		size_t l = nl ? (size_t)(nl - s) : len - pos;
		pos += l + (nl ? 1 : 0);
		while (l > 0 && (s[l - 1] == '\r' || s[l - 1] == ' ' || s[l - 1] == '\t'))
			l--;
		while (l > 0 && (*s == ' ' || *s == '\t')) {
			s++;
			l--;
		}
		if (l == 0 || *s == '#')
			continue;
		if (*s == '!') {
			slugignore_free(si);
			return dy_error(
			    err, ".slugignore line %zu: negation ('!') is not supported", line);
		}
		if (memchr(s, '\0', l)) {
			slugignore_free(si);
			return dy_error(err, ".slugignore line %zu: NUL byte", line);
		}
		struct pattern p = {0};
		if (l > 0 && s[l - 1] == '/') {
			p.dir_only = true;
			l--;
		}
		if (l >= 3 && memcmp(s, "**/", 3) == 0) {
			s += 3;
			l -= 3;
			p.multi = memchr(s, '/', l) != NULL;
		} else if (memchr(s, '/', l)) {
			p.anchored = true;
		}
		while (l > 0 && *s == '/') {
			s++;
			l--;
		}
		if (l == 0)
			continue;
		p.glob = strndup(s, l);
		struct pattern *np = realloc(si->p, (si->n + 1) * sizeof(*np));
		if (p.glob == NULL || np == NULL) {
			free(p.glob);
			if (np)
				si->p = np;
			slugignore_free(si);
			return dy_error_errno(err, ENOMEM, ".slugignore");
		}
		si->p = np;
		si->p[si->n++] = p;
	}
	*ret = si;
	return 0;
}

/* An unanchored pattern with a '/' ("**" + "/a/b"): matched against path
 * and every suffix of it that starts a component. */
static bool match_any_depth(const char *glob, const char *path)
{
	for (const char *s = path; s != NULL; s = strchr(s, '/'), s = s ? s + 1 : NULL)
		if (fnmatch(glob, s, FNM_PATHNAME) == 0)
			return true;
	return false;
}

bool slugignore_match(const struct slugignore *si, const char *path, bool is_dir)
{
	if (si == NULL)
		return false;
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	for (size_t i = 0; i < si->n; i++) {
		const struct pattern *p = &si->p[i];
		if (p->dir_only && !is_dir)
			continue;
		if (p->anchored ? fnmatch(p->glob, path, FNM_PATHNAME) == 0
		    : p->multi  ? match_any_depth(p->glob, path)
		                : fnmatch(p->glob, base, 0) == 0)
			return true;
	}
	return false;
}
