#include "slugs/slug-entry.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"

struct node {
	char *path; /* NULL: empty slot */
	char *target;
	enum slug_entry_type type;
};

struct slug_tree {
	struct node *slots;
	size_t cap, used;
	size_t *links; /* slot indices of links, in the order first seen */
	size_t nlinks, links_cap;
};

const char *slug_entry_type_str(enum slug_entry_type t)
{
	switch (t) {
	case SLUG_ENTRY_FILE:
		return "file";
	case SLUG_ENTRY_DIR:
		return "directory";
	case SLUG_ENTRY_LINK:
		return "link";
	case SLUG_ENTRY_HARDLINK:
		return "hard link";
	case SLUG_ENTRY_NONE:
		break;
	}
	return "none";
}

char *slug_entry_quote(const char *name, char *buf, size_t size)
{
	size_t o = 0;
	if (size < 8) {
		if (size)
			buf[0] = '\0';
		return buf;
	}
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		if (o + 8 >= size) {
			memcpy(buf + o, "...", 4);
			return buf;
		}
		if (*p < 0x20 || *p == 0x7f || *p == '"' || *p == '\\')
			o += (size_t)snprintf(buf + o, size - o, "\\x%02x", *p);
		else
			buf[o++] = (char)*p;
	}
	buf[o] = '\0';
	return buf;
}

int slug_entry_normalize(const char *name, char **ret_rel, struct dy_error **err)
{
	if (name == NULL || name[0] == '\0')
		return dy_error(err, "empty name");
	if (name[0] == '/')
		return dy_error(err, "absolute path");
	size_t total = strlen(name);
	if (total > SLUG_PATH_MAX)
		return dy_error(err, "path longer than %d bytes", SLUG_PATH_MAX);
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return dy_error(err, "control character 0x%02x in name", *p);

	_cleanup_free_ char *rel = malloc(total + 1);
	if (rel == NULL)
		return dy_error_errno(err, ENOMEM, "normalize");
	size_t o = 0;
	int seen_app = 0, depth = 0;
	const char *p = name;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		if (n > SLUG_NAME_MAX)
			return dy_error(err, "path component longer than %d bytes", SLUG_NAME_MAX);
		if (n == 0 || (n == 1 && p[0] == '.')) {
			/* empty or "." component: no effect */
		} else if (n == 2 && p[0] == '.' && p[1] == '.') {
			return dy_error(err, "path has a \"..\" component");
		} else if (!seen_app) {
			if (n != 3 || memcmp(p, "app", 3) != 0)
				return dy_error(err, "outside app/");
			seen_app = 1;
		} else {
			if (++depth > SLUG_DEPTH_MAX)
				return dy_error(err, "path deeper than %d levels", SLUG_DEPTH_MAX);
			if (o > 0)
				rel[o++] = '/';
			memcpy(rel + o, p, n);
			o += n;
		}
		p += n;
		if (*p == '/')
			p++;
	}
	if (!seen_app)
		return 1; /* "." or "./": the archive's root, nothing to do */
	rel[o] = '\0';
	*ret_rel = TAKE_PTR(rel);
	return 0;
}

static uint64_t hash_str(const char *s)
{
	/* FNV-1a */
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static struct node *find_slot(struct node *slots, size_t cap, const char *path)
{
	size_t i = hash_str(path) & (cap - 1);
	while (slots[i].path != NULL && strcmp(slots[i].path, path) != 0)
		i = (i + 1) & (cap - 1);
	return &slots[i];
}

static int grow(struct slug_tree *t)
{
	size_t ncap = t->cap * 2;
	struct node *ns = calloc(ncap, sizeof(*ns));
	if (ns == NULL)
		return -1;
	/* Link indices are slot positions: remap them while rehashing. */
	for (size_t l = 0; l < t->nlinks; l++) {
		struct node *old = &t->slots[t->links[l]];
		struct node *nw = find_slot(ns, ncap, old->path);
		*nw = *old;
		old->path = NULL;
		t->links[l] = (size_t)(nw - ns);
	}
	for (size_t i = 0; i < t->cap; i++) {
		if (t->slots[i].path == NULL)
			continue;
		*find_slot(ns, ncap, t->slots[i].path) = t->slots[i];
	}
	free(t->slots);
	t->slots = ns;
	t->cap = ncap;
	return 0;
}

static struct node *lookup(const struct slug_tree *t, const char *path)
{
	struct node *n = find_slot(t->slots, t->cap, path);
	return n->path ? n : NULL;
}

enum slug_entry_type slug_tree_type(const struct slug_tree *t, const char *rel)
{
	struct node *n = lookup(t, rel);
	return n ? n->type : SLUG_ENTRY_NONE;
}

static struct node *insert(struct slug_tree *t, const char *path, enum slug_entry_type type)
{
	if ((t->used + 1) * 4 >= t->cap * 3 && grow(t) < 0)
		return NULL;
	struct node *n = find_slot(t->slots, t->cap, path);
	if (n->path)
		return n;
	n->path = strdup(path);
	if (n->path == NULL)
		return NULL;
	n->type = type;
	n->target = NULL;
	t->used++;
	return n;
}

struct slug_tree *slug_tree_new(void)
{
	struct slug_tree *t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	t->cap = 1024;
	t->slots = calloc(t->cap, sizeof(*t->slots));
	if (t->slots == NULL || insert(t, "", SLUG_ENTRY_DIR) == NULL) {
		slug_tree_free(t);
		return NULL;
	}
	return t;
}

void slug_tree_free(struct slug_tree *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; t->slots && i < t->cap; i++) {
		free(t->slots[i].path);
		free(t->slots[i].target);
	}
	free(t->slots);
	free(t->links);
	free(t);
}

size_t slug_tree_count(const struct slug_tree *t)
{
	return t->used - 1;
}

/* Resolves target of the link at link_rel as the dyno will see it: the
 * link sits at /app/<link_rel>; components are walked one by one, links
 * recorded in the tree are followed (at most SLUG_LINK_DEPTH_MAX), and a
 * ".." at app/ itself, or an absolute target not under /app, leaves app/. */
static int resolve(const struct slug_tree *t, const char *link_rel, const char *target,
                   struct dy_error **err)
{
	char cur[SLUG_PATH_MAX + 1];
	_cleanup_free_ char *rest = NULL;
	char qt[256];

	if (target[0] == '\0')
		return dy_error(err, "empty link target");
	if (target[0] == '/') {
		if (strncmp(target, "/app", 4) != 0 || (target[4] != '\0' && target[4] != '/'))
			return dy_error(err, "absolute link target \"%s\" is not under /app/",
			                slug_entry_quote(target, qt, sizeof(qt)));
		cur[0] = '\0';
		rest = strdup(target + 4);
	} else {
		const char *slash = strrchr(link_rel, '/');
		size_t n = slash ? (size_t)(slash - link_rel) : 0;
		memcpy(cur, link_rel, n);
		cur[n] = '\0';
		rest = strdup(target);
	}
	if (rest == NULL)
		return dy_error_errno(err, ENOMEM, "resolve");

	int depth = 0;
	size_t pos = 0;
	while (rest[pos] != '\0') {
		char *comp = rest + pos;
		char *slash = strchr(comp, '/');
		size_t n = slash ? (size_t)(slash - comp) : strlen(comp);
		pos += n + (slash ? 1 : 0);
		if (n == 0 || (n == 1 && comp[0] == '.'))
			continue;
		if (n == 2 && comp[0] == '.' && comp[1] == '.') {
			if (cur[0] == '\0')
				return dy_error(err, "link target \"%s\" leaves app/",
				                slug_entry_quote(target, qt, sizeof(qt)));
			char *last = strrchr(cur, '/');
			if (last)
				*last = '\0';
			else
				cur[0] = '\0';
			continue;
		}
		size_t cl = strlen(cur);
		if (cl + 1 + n > SLUG_PATH_MAX)
			return dy_error(err, "link target \"%s\" resolves to a path too long",
			                slug_entry_quote(target, qt, sizeof(qt)));
		size_t before = cl;
		if (cl > 0)
			cur[cl++] = '/';
		memcpy(cur + cl, comp, n);
		cur[cl + n] = '\0';

		struct node *nd = lookup(t, cur);
		if (nd == NULL || nd->type != SLUG_ENTRY_LINK)
			continue;
		if (++depth > SLUG_LINK_DEPTH_MAX)
			return dy_error(err, "link target \"%s\": too many levels of links",
			                slug_entry_quote(target, qt, sizeof(qt)));
		const char *lt = nd->target;
		const char *lt_rest;
		if (lt[0] == '/') {
			if (strncmp(lt, "/app", 4) != 0 || (lt[4] != '\0' && lt[4] != '/'))
				return dy_error(err,
				                "link target \"%s\" leaves app/ through \"%s\"",
				                slug_entry_quote(target, qt, sizeof(qt)), nd->path);
			cur[0] = '\0';
			lt_rest = lt + 4;
		} else {
			cur[before] = '\0';
			lt_rest = lt;
		}
		/* rest = lt_rest + "/" + what is left */
		char *nr = NULL;
		if (asprintf(&nr, "%s/%s", lt_rest, rest + pos) < 0)
			return dy_error_errno(err, ENOMEM, "resolve");
		if (strlen(nr) > 64 * 1024) {
			free(nr);
			return dy_error(err, "link target \"%s\": too many levels of links",
			                slug_entry_quote(target, qt, sizeof(qt)));
		}
		free(rest);
		rest = nr;
		pos = 0;
	}
	return 0;
}

int slug_tree_add(struct slug_tree *t, const char *rel, enum slug_entry_type type,
                  const char *target, struct dy_error **err)
{
	enum slug_entry_type as = type == SLUG_ENTRY_HARDLINK ? SLUG_ENTRY_FILE : type;

	if (rel[0] == '\0' && as != SLUG_ENTRY_DIR)
		return dy_error(err, "app/ must be a directory, not a %s",
		                slug_entry_type_str(type));

	/* Every parent: a directory (recorded now if new), never a link or a
	 * file. */
	char path[SLUG_PATH_MAX + 1];
	size_t len = strlen(rel);
	if (len > SLUG_PATH_MAX)
		return dy_error(err, "path too long");
	memcpy(path, rel, len + 1);
	for (size_t i = 0; i < len; i++) {
		if (path[i] != '/')
			continue;
		path[i] = '\0';
		struct node *p = lookup(t, path);
		if (p == NULL) {
			if (insert(t, path, SLUG_ENTRY_DIR) == NULL)
				return dy_error_errno(err, ENOMEM, "slug tree");
		} else if (p->type == SLUG_ENTRY_LINK) {
			return dy_error(err, "is under the link app/%s", path);
		} else if (p->type == SLUG_ENTRY_FILE) {
			return dy_error(err, "is under the file app/%s", path);
		}
		path[i] = '/';
	}

	if (type == SLUG_ENTRY_HARDLINK) {
		if (strcmp(target, rel) == 0)
			return dy_error(err, "hard link to itself");
		struct node *tn = lookup(t, target);
		if (tn == NULL || tn->type != SLUG_ENTRY_FILE) {
			char qt[256];
			return dy_error(
			    err, "hard link target app/%s is not an earlier file of the slug",
			    slug_entry_quote(target, qt, sizeof(qt)));
		}
	}
	if (type == SLUG_ENTRY_LINK) {
		if (strlen(target) > SLUG_PATH_MAX)
			return dy_error(err, "link target longer than %d bytes", SLUG_PATH_MAX);
		for (const unsigned char *c = (const unsigned char *)target; *c; c++)
			if (*c < 0x20 || *c == 0x7f)
				return dy_error(err, "control character 0x%02x in link target", *c);
		int r = resolve(t, rel, target, err);
		if (r < 0)
			return r;
	}

	struct node *n = lookup(t, rel);
	if (n != NULL && n->type != as)
		return dy_error(err, "changes the type of an earlier entry (%s, then %s)",
		                slug_entry_type_str(n->type), slug_entry_type_str(type));
	if (n == NULL) {
		n = insert(t, rel, as);
		if (n == NULL)
			return dy_error_errno(err, ENOMEM, "slug tree");
		if (as == SLUG_ENTRY_LINK) {
			if (t->nlinks == t->links_cap) {
				size_t nc = t->links_cap ? t->links_cap * 2 : 64;
				size_t *nl = realloc(t->links, nc * sizeof(*nl));
				if (nl == NULL)
					return dy_error_errno(err, ENOMEM, "slug tree");
				t->links = nl;
				t->links_cap = nc;
			}
			t->links[t->nlinks++] = (size_t)(n - t->slots);
		}
	}
	if (as == SLUG_ENTRY_LINK) {
		char *nt = strdup(target);
		if (nt == NULL)
			return dy_error_errno(err, ENOMEM, "slug tree");
		free(n->target);
		n->target = nt;
	}
	return 0;
}

int slug_tree_check_links(const struct slug_tree *t, struct dy_error **err)
{
	for (size_t l = 0; l < t->nlinks; l++) {
		const struct node *n = &t->slots[t->links[l]];
		int r = resolve(t, n->path, n->target, err);
		if (r < 0) {
			char q[512];
			return dy_error_prefix(err, "refused entry \"app/%s\"",
			                       slug_entry_quote(n->path, q, sizeof(q)));
		}
	}
	return 0;
}
