/* routes.json -> struct route_table (docs/design.md, "Internal contract"). */
#include "router/routes.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"

const char *route_state_str(enum route_state s)
{
	switch (s) {
	case ROUTE_UP:
		return "up";
	case ROUTE_CRASHED:
		return "crashed";
	case ROUTE_NO_WEB:
		return "no-web";
	case ROUTE_MAINTENANCE:
		return "maintenance";
	}
	return "unknown";
}

int route_parse_addr(const char *text, struct sockaddr_storage *sa, socklen_t *ret_len)
{
	char host[64];
	const char *colon;
	memset(sa, 0, sizeof(*sa));
	if (text[0] == '[') {
		const char *end = strchr(text, ']');
		if (end == NULL || end[1] != ':' || (size_t)(end - text - 1) >= sizeof(host))
			return -EINVAL;
		memcpy(host, text + 1, (size_t)(end - text - 1));
		host[end - text - 1] = '\0';
		colon = end + 1;
	} else {
		colon = strrchr(text, ':');
		if (colon == NULL || (size_t)(colon - text) >= sizeof(host))
			return -EINVAL;
		memcpy(host, text, (size_t)(colon - text));
		host[colon - text] = '\0';
	}
	char *endp;
	if (colon[1] == '\0' || !isdigit((unsigned char)colon[1]))
		return -EINVAL;
	unsigned long port = strtoul(colon + 1, &endp, 10);
	if (*endp != '\0' || port > 65535)
		return -EINVAL;
	struct sockaddr_in *in = (struct sockaddr_in *)sa;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
	if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		*ret_len = sizeof(*in);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*ret_len = sizeof(*in6);
		return 0;
	}
	return -EINVAL;
}

void route_backend_ref(struct route_backend *b)
{
	b->refs++;
}

void route_backend_unref(struct route_backend *b)
{
	if (b == NULL || --b->refs > 0)
		return;
	free(b->app);
	free(b->health_path);
	free(b->health_host);
	free(b);
}

static uint64_t hash_host(const char *s, size_t len)
{
	/* FNV-1a over the lower-cased bytes */
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)tolower((unsigned char)s[i]);
		h *= 1099511628211ull;
	}
	return h;
}

static size_t host_len(const char *host, size_t len)
{
	/* strip ":port" (not inside an IPv6 literal) */
	if (len > 0 && host[0] == '[') {
		const char *e = memchr(host, ']', len);
		return e ? (size_t)(e - host) + 1 : len;
	}
	const char *c = memchr(host, ':', len);
	return c ? (size_t)(c - host) : len;
}

static bool key_eq(const char *key, const char *s, size_t len)
{
	return strncasecmp(key, s, len) == 0 && key[len] == '\0';
}

static int index_add(struct route_table *t, const char *host, size_t app, struct dy_error **err)
{
	size_t len = strlen(host);
	size_t i = hash_host(host, len) & (t->index_cap - 1);
	while (t->index_keys[i] != NULL) {
		if (key_eq(t->index_keys[i], host, len))
			return dy_error(err, "host \"%s\" belongs to two apps", host);
		i = (i + 1) & (t->index_cap - 1);
	}
	t->index_keys[i] = strdup(host);
	if (t->index_keys[i] == NULL)
		return dy_error_errno(err, ENOMEM, "routes");
	for (char *p = t->index_keys[i]; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	t->index_vals[i] = app + 1;
	return 0;
}

struct route_app *route_lookup(const struct route_table *t, const char *host, size_t len)
{
	if (t == NULL || t->index_cap == 0)
		return NULL;
	len = host_len(host, len);
	/* a trailing dot names the same host (RFC 1034 3.1) */
	if (len > 0 && host[len - 1] == '.')
		len--;
	size_t i = hash_host(host, len) & (t->index_cap - 1);
	while (t->index_keys[i] != NULL) {
		if (key_eq(t->index_keys[i], host, len))
			return &t->apps[t->index_vals[i] - 1];
		i = (i + 1) & (t->index_cap - 1);
	}
	return NULL;
}

void route_table_free(struct route_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->napps; i++) {
		struct route_app *a = &t->apps[i];
		free(a->name);
		for (size_t k = 0; k < a->nhosts; k++)
			free(a->hosts[k]);
		free(a->hosts);
		free(a->health_path);
		for (size_t k = 0; k < a->nbackends; k++)
			route_backend_unref(a->backends[k]);
		free(a->backends);
	}
	free(t->apps);
	for (size_t i = 0; i < t->index_cap; i++)
		free(t->index_keys[i]);
	free(t->index_keys);
	free(t->index_vals);
	free(t);
}

struct route_table *route_table_empty(void)
{
	return calloc(1, sizeof(struct route_table));
}

static struct route_backend *find_old(const struct route_table *old, const char *app,
                                      const char *id, const char *addr)
{
	if (old == NULL)
		return NULL;
	for (size_t i = 0; i < old->napps; i++) {
		const struct route_app *a = &old->apps[i];
		if (strcmp(a->name, app) != 0)
			continue;
		for (size_t k = 0; k < a->nbackends; k++) {
			struct route_backend *b = a->backends[k];
			if (strcmp(b->id, id) == 0 && strcmp(b->addr_text, addr) == 0)
				return b;
		}
	}
	return NULL;
}

static bool in_table(const struct route_table *t, const struct route_backend *b)
{
	if (t == NULL)
		return false;
	for (size_t i = 0; i < t->napps; i++)
		for (size_t k = 0; k < t->apps[i].nbackends; k++)
			if (t->apps[i].backends[k] == b)
				return true;
	return false;
}

void route_table_retire(const struct route_table *old, const struct route_table *new_table,
                        const struct route_hooks *hooks)
{
	if (old == NULL)
		return;
	for (size_t i = 0; i < old->napps; i++)
		for (size_t k = 0; k < old->apps[i].nbackends; k++) {
			struct route_backend *b = old->apps[i].backends[k];
			if (in_table(new_table, b))
				continue;
			b->removed = true;
			if (hooks && hooks->removed)
				hooks->removed(b, hooks->data);
		}
}

static bool valid_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
			return false;
	return true;
}

/* A DNS name: labels of [A-Za-z0-9_-], none empty, one trailing dot
 * allowed. */
static bool valid_host(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 254 || s[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '.' && i + 1 < n && s[i + 1] == '.')
			return false;
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '.' && s[i] != '_')
			return false;
	}
	return true;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Copies what the table says about b (draining) and its app (keepalive,
 * health check) into b. */
static void set_backend(const struct route_app *a, struct route_backend *b, json_t *jb)
{
	b->draining = json_is_true(json_object_get(jb, "draining"));
	b->keepalive = a->keepalive;
	if (b->health_path == NULL || a->health_path == NULL ||
	    strcmp(b->health_path, a->health_path) != 0) {
		free(b->health_path);
		b->health_path = dup_or_null(a->health_path);
	}
	if (b->health_host == NULL || strcmp(b->health_host, a->hosts[0]) != 0) {
		free(b->health_host);
		b->health_host = strdup(a->hosts[0]);
	}
}

static int parse_app(json_t *ja, size_t ai, const char *domain, const struct route_table *old,
                     struct route_app *a, struct dy_error **err)
{
	const char *name = json_string_value(json_object_get(ja, "name"));
	if (!json_is_object(ja) || name == NULL || !valid_name(name))
		return dy_error(err, "apps[%zu].name: missing or invalid", ai);
	a->name = strdup(name);
	const char *state = "up";
	json_t *js = json_object_get(ja, "state");
	if (js != NULL && (state = json_string_value(js)) == NULL)
		return dy_error(err, "apps[%zu].state: not a string", ai);
	if (strcmp(state, "up") == 0)
		a->state = ROUTE_UP;
	else if (strcmp(state, "crashed") == 0)
		a->state = ROUTE_CRASHED;
	else if (strcmp(state, "no-web") == 0)
		a->state = ROUTE_NO_WEB;
	else if (strcmp(state, "maintenance") == 0)
		a->state = ROUTE_MAINTENANCE;
	else
		return dy_error(err, "apps[%zu].state: unknown state \"%s\"", ai, state);
	json_t *jk = json_object_get(ja, "keepalive");
	if (jk != NULL && !json_is_boolean(jk))
		return dy_error(err, "apps[%zu].keepalive: not a boolean", ai);
	a->keepalive = jk == NULL || json_is_true(jk);
	json_t *jh = json_object_get(ja, "health_path");
	if (jh != NULL && !json_is_null(jh)) {
		const char *hp = json_string_value(jh);
		if (hp == NULL || hp[0] != '/' || strpbrk(hp, " \r\n\t") != NULL ||
		    strlen(hp) > 1024)
			return dy_error(err, "apps[%zu].health_path: not an absolute path", ai);
		a->health_path = strdup(hp);
	}

	json_t *hosts = json_object_get(ja, "hosts");
	if (hosts != NULL && !json_is_array(hosts))
		return dy_error(err, "apps[%zu].hosts: not an array", ai);
	size_t nh = json_array_size(hosts);
	a->hosts = calloc(nh + 1, sizeof(char *));
	if (a->hosts == NULL)
		return dy_error_errno(err, ENOMEM, "routes");
	char own[320];
	snprintf(own, sizeof(own), "%s.%s", name, domain);
	a->hosts[a->nhosts++] = strdup(own);
	for (size_t i = 0; i < nh; i++) {
		const char *h = json_string_value(json_array_get(hosts, i));
		if (h == NULL || !valid_host(h))
			return dy_error(err, "apps[%zu].hosts[%zu]: invalid host", ai, i);
		/* "a.example." names "a.example" (RFC 1034 3.1), which is
		 * how route_lookup() reads a Host */
		size_t hl = strlen(h);
		if (h[hl - 1] == '.')
			hl--;
		if (hl == 0)
			return dy_error(err, "apps[%zu].hosts[%zu]: invalid host", ai, i);
		if (strncasecmp(h, own, hl) == 0 && own[hl] == '\0')
			continue;
		a->hosts[a->nhosts++] = strndup(h, hl);
	}

	json_t *bes = json_object_get(ja, "backends");
	if (bes != NULL && !json_is_array(bes))
		return dy_error(err, "apps[%zu].backends: not an array", ai);
	size_t nb = json_array_size(bes);
	a->backends = calloc(nb + 1, sizeof(*a->backends));
	if (a->backends == NULL)
		return dy_error_errno(err, ENOMEM, "routes");
	for (size_t i = 0; i < nb; i++) {
		json_t *jb = json_array_get(bes, i);
		const char *dyno = json_string_value(json_object_get(jb, "dyno"));
		const char *addr = json_string_value(json_object_get(jb, "addr"));
		json_t *jid = json_object_get(jb, "id");
		const char *id = jid ? json_string_value(jid) : dyno;
		json_t *jd = json_object_get(jb, "draining");
		if (dyno == NULL || dyno[0] == '\0' ||
		    strlen(dyno) >= sizeof(((struct route_backend *)0)->dyno) ||
		    strpbrk(dyno, " \"\\\r\n\t") != NULL)
			return dy_error(err, "apps[%zu].backends[%zu].dyno: missing or invalid", ai,
			                i);
		if (id == NULL || id[0] == '\0' ||
		    strlen(id) >= sizeof(((struct route_backend *)0)->id) ||
		    strpbrk(id, " \"\\\r\n\t") != NULL)
			return dy_error(err, "apps[%zu].backends[%zu].id: missing or invalid", ai,
			                i);
		if (jd != NULL && !json_is_boolean(jd))
			return dy_error(err, "apps[%zu].backends[%zu].draining: not a boolean", ai,
			                i);
		struct sockaddr_storage sa;
		socklen_t sa_len;
		if (addr == NULL || strlen(addr) >= 64 ||
		    route_parse_addr(addr, &sa, &sa_len) < 0 ||
		    ((struct sockaddr_in *)&sa)->sin_port == 0)
			return dy_error(err, "apps[%zu].backends[%zu].addr: invalid address", ai,
			                i);
		struct route_backend *b = find_old(old, name, id, addr);
		if (b != NULL) {
			route_backend_ref(b);
		} else {
			b = calloc(1, sizeof(*b));
			if (b == NULL)
				return dy_error_errno(err, ENOMEM, "routes");
			b->refs = 1;
			b->app = strdup(name);
			snprintf(b->dyno, sizeof(b->dyno), "%s", dyno);
			snprintf(b->id, sizeof(b->id), "%s", id);
			snprintf(b->addr_text, sizeof(b->addr_text), "%s", addr);
			b->sa = sa;
			b->sa_len = sa_len;
			b->healthy = true; /* docs/design.md: a new backend is healthy at once */
		}
		a->backends[a->nbackends++] = b;
		if (b->refs == 1) /* new: settled now; taken over: after success */
			set_backend(a, b, jb);
		for (size_t k = 0; k + 1 < a->nbackends; k++)
			if (strcmp(a->backends[k]->id, id) == 0)
				return dy_error(err, "apps[%zu].backends[%zu]: id %s listed twice",
				                ai, i, id);
	}
	return 0;
}

int route_table_parse(const char *json, size_t len, const char *domain,
                      const struct route_table *old, const struct route_hooks *hooks,
                      struct route_table **ret, struct dy_error **err)
{
	json_error_t jerr;
	json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return dy_error(err, "line %d: %s", jerr.line, jerr.text);
	struct route_table *t = calloc(1, sizeof(*t));
	int r = 0;
	if (t == NULL) {
		r = dy_error_errno(err, ENOMEM, "routes");
		goto out;
	}
	json_t *jv = json_object_get(root, "version");
	json_t *apps = json_object_get(root, "apps");
	if (!json_is_object(root) || (jv != NULL && !json_is_integer(jv))) {
		r = dy_error(err, "version: not an integer");
		goto out;
	}
	if (!json_is_array(apps)) {
		r = dy_error(err, "apps: missing or not an array");
		goto out;
	}
	t->version = jv ? json_integer_value(jv) : 0;
	size_t na = json_array_size(apps);
	t->apps = calloc(na + 1, sizeof(*t->apps));
	if (t->apps == NULL) {
		r = dy_error_errno(err, ENOMEM, "routes");
		goto out;
	}
	size_t nhosts = 0;
	for (size_t i = 0; i < na; i++) {
		struct route_app *a = &t->apps[t->napps++];
		r = parse_app(json_array_get(apps, i), i, domain, old, a, err);
		if (r < 0)
			goto out;
		for (size_t k = 0; k < i; k++)
			if (strcmp(t->apps[k].name, a->name) == 0) {
				r = dy_error(err, "apps[%zu].name: \"%s\" listed twice", i,
				             a->name);
				goto out;
			}
		nhosts += a->nhosts;
	}
	t->index_cap = 16;
	while (t->index_cap < nhosts * 2)
		t->index_cap *= 2;
	t->index_keys = calloc(t->index_cap, sizeof(char *));
	t->index_vals = calloc(t->index_cap, sizeof(size_t));
	if (t->index_keys == NULL || t->index_vals == NULL) {
		r = dy_error_errno(err, ENOMEM, "routes");
		goto out;
	}
	for (size_t i = 0; i < t->napps; i++)
		for (size_t k = 0; k < t->apps[i].nhosts; k++) {
			r = index_add(t, t->apps[i].hosts[k], i, err);
			if (r < 0)
				goto out;
		}
	/* only now, the parse being good, do backends taken over from the
	 * table in use change */
	for (size_t i = 0; i < t->napps; i++) {
		json_t *bes = json_object_get(json_array_get(apps, i), "backends");
		for (size_t k = 0; k < t->apps[i].nbackends; k++)
			set_backend(&t->apps[i], t->apps[i].backends[k], json_array_get(bes, k));
	}
	if (hooks && hooks->added)
		for (size_t i = 0; i < t->napps; i++)
			for (size_t k = 0; k < t->apps[i].nbackends; k++) {
				struct route_backend *b = t->apps[i].backends[k];
				if (b->refs == 1)
					hooks->added(b, hooks->data);
			}
	*ret = TAKE_PTR(t);
out:
	route_table_free(t);
	json_decref(root);
	return r;
}

int route_table_load(const char *path, const char *domain, const struct route_table *old,
                     const struct route_hooks *hooks, struct route_table **ret,
                     struct dy_error **err)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (f == NULL)
		return dy_error_errno(err, errno, "%s", path);
	size_t cap = 65536, len = 0;
	_cleanup_free_ char *buf = malloc(cap);
	if (buf == NULL)
		return dy_error_errno(err, ENOMEM, "%s", path);
	for (;;) {
		if (len == cap) {
			if (cap >= 16u << 20)
				return dy_error(err, "%s: larger than 16 MiB", path);
			char *nb = realloc(buf, cap * 2);
			if (nb == NULL)
				return dy_error_errno(err, ENOMEM, "%s", path);
			buf = nb;
			cap *= 2;
		}
		size_t n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0) {
			if (ferror(f))
				return dy_error_errno(err, EIO, "%s", path);
			break;
		}
	}
	int r = route_table_parse(buf, len, domain, old, hooks, ret, err);
	if (r < 0)
		return dy_error_prefix(err, "%s", path);
	return 0;
}
