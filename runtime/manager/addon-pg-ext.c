/* The PostgreSQL add-on's external mode (docs/addons.md, "External
 * mode"): the administrator's URL (addons.postgresql.url) taken apart, the
 * environment dynod's clients connect with, and the forward of the
 * gateway port to the server. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/macro.h"
#include "runtime/launcher/net.h"
#include "runtime/manager/addon-pg-internal.h"

/* The n bytes at s, %XX decoded: newly allocated, NULL when a %
 * escape is bad, a NUL is decoded or memory is short. */
static char *decode(const char *s, size_t n)
{
	char *r = malloc(n + 1), *o = r;
	if (!r)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '%') {
			*o++ = s[i];
			continue;
		}
		if (i + 2 < n && isxdigit((unsigned char)s[i + 1]) &&
		    isxdigit((unsigned char)s[i + 2])) {
			char two[3] = {s[i + 1], s[i + 2], '\0'};
			*o = (char)strtoul(two, NULL, 16);
			if (*o++ != '\0') {
				i += 2;
				continue;
			}
		}
		free(r);
		return NULL;
	}
	*o = '\0';
	return r;
}

void pgw_ext_clear(struct pg_env *e)
{
	free(e->ext_host);
	free(e->ext_user);
	free(e->ext_db);
	free(e->ext_sslmode);
	free(e->ext_sslrootcert);
	e->ext_host = e->ext_user = e->ext_db = e->ext_sslmode = e->ext_sslrootcert = NULL;
	if (e->ext_password) {
		explicit_bzero(e->ext_password, strlen(e->ext_password));
		free(e->ext_password);
		e->ext_password = NULL;
	}
}

/* The query's k=v pairs: sslmode and sslrootcert are kept for dynod's
 * own connections; anything else is refused (it would be ignored). */
static int parse_query(struct pg_env *e, const char *q, struct dy_error **err)
{
	while (*q) {
		size_t n = strcspn(q, "&");
		const char *eq = memchr(q, '=', n);
		if (!eq)
			return dy_error(err, "addons.postgresql.url: \"%.*s\" is not KEY=VALUE",
			                (int)n, q);
		size_t kn = (size_t)(eq - q);
		char **slot = NULL;
		if (kn == 7 && strncmp(q, "sslmode", 7) == 0)
			slot = &e->ext_sslmode;
		else if (kn == 11 && strncmp(q, "sslrootcert", 11) == 0)
			slot = &e->ext_sslrootcert;
		else
			return dy_error(
			    err,
			    "addons.postgresql.url: parameter \"%.*s\" is not supported "
			    "(sslmode and sslrootcert are)",
			    (int)kn, q);
		free(*slot);
		*slot = decode(eq + 1, n - kn - 1);
		if (!*slot)
			return dy_error(err, "addons.postgresql.url: bad %%-escape in %.*s",
			                (int)kn, q);
		q += n;
		if (*q == '&')
			q++;
	}
	return 0;
}

int pgw_ext_init(struct pg_env *e, const char *url, struct dy_error **err)
{
	e->external = true;
	const char *p = strstr(url, "://");
	if (!p)
		return dy_error(err, "addons.postgresql.url: expected postgres://USER:PASSWORD@HOST"
		                     "[:PORT][/DB]");
	p += 3;
	const char *end = p + strcspn(p, "/?");
	const char *at = NULL;
	for (const char *s = p; s < end; s++)
		if (*s == '@')
			at = s;
	if (!at)
		return dy_error(err, "addons.postgresql.url: no USER@ before the host (an "
		                     "administrator's URL: postgres://USER:PASSWORD@HOST:PORT/DB)");
	const char *colon = memchr(p, ':', (size_t)(at - p));
	e->ext_user = decode(p, (size_t)((colon ? colon : at) - p));
	e->ext_password = colon ? decode(colon + 1, (size_t)(at - colon - 1)) : strdup("");
	if (!e->ext_user || !e->ext_password || !e->ext_user[0])
		return dy_error(err, "addons.postgresql.url: bad user or password (%%-escapes?)");
	const char *host = at + 1;
	const char *pc = memchr(host, ':', (size_t)(end - host));
	if (host[0] == '[')
		return dy_error(err, "addons.postgresql.url: an IPv6 host is not supported (the "
		                     "forward from the gateway is IPv4)");
	e->ext_host = strndup(host, (size_t)((pc ? pc : end) - host));
	if (!e->ext_host)
		return dy_error_errno(err, ENOMEM, "postgresql");
	if (!e->ext_host[0])
		return dy_error(err, "addons.postgresql.url: no host");
	e->ext_port = 5432;
	if (pc) {
		char *stop;
		unsigned long v = strtoul(pc + 1, &stop, 10);
		if (stop != end || v < 1 || v > 65535)
			return dy_error(err, "addons.postgresql.url: bad port \"%.*s\"",
			                (int)(end - pc - 1), pc + 1);
		e->ext_port = (unsigned)v;
	}
	const char *db = *end == '/' ? end + 1 : end;
	size_t dn = strcspn(db, "?");
	e->ext_db = dn ? decode(db, dn) : strdup("postgres");
	if (!e->ext_db)
		return dy_error(err, "addons.postgresql.url: bad database name");
	if (db[dn] == '?' && parse_query(e, db + dn + 1, err) < 0)
		return -1;
	/* the forward is to an address: the host's is looked up once, here */
	struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai = NULL;
	int r = getaddrinfo(e->ext_host, NULL, &hints, &ai);
	if (r != 0 || !ai)
		return dy_error(err, "addons.postgresql.url: host %s: %s", e->ext_host,
		                r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
	e->ext_to = ((struct sockaddr_in *)ai->ai_addr)->sin_addr;
	freeaddrinfo(ai);
	inet_ntop(AF_INET, &e->ext_to, e->ext_addr, sizeof(e->ext_addr));
	if (strcmp(e->ext_addr, e->gw) == 0)
		return dy_error(err, "addons.postgresql.url: host %s is the gateway address",
		                e->ext_host);
	return 0;
}

char **pgw_ext_envp(const struct pg_env *e)
{
	char **envp = calloc(16, sizeof(char *));
	if (!envp)
		return NULL;
	size_t n = 0;
	bool ok = asprintf(&envp[n++], "PATH=/usr/bin:/bin") >= 0 &&
	          asprintf(&envp[n++], "HOME=/nonexistent") >= 0 &&
	          asprintf(&envp[n++], "LC_ALL=C") >= 0 && asprintf(&envp[n++], "PGTZ=UTC") >= 0 &&
	          /* the name for TLS's verify-full, the address it was at start-up */
	          asprintf(&envp[n++], "PGHOST=%s", e->ext_host) >= 0 &&
	          asprintf(&envp[n++], "PGHOSTADDR=%s", e->ext_addr) >= 0 &&
	          asprintf(&envp[n++], "PGPORT=%u", e->ext_port) >= 0 &&
	          asprintf(&envp[n++], "PGUSER=%s", e->ext_user) >= 0 &&
	          /* in the child's environment (its /proc/PID/environ is
	           * root's), never its arguments */
	          asprintf(&envp[n++], "PGPASSWORD=%s", e->ext_password) >= 0 &&
	          asprintf(&envp[n++], "PGCONNECT_TIMEOUT=%u", PG_EXT_CONNECT_TIMEOUT) >= 0 &&
	          asprintf(&envp[n++], "PGAPPNAME=dynod") >= 0;
	if (ok && e->ext_sslmode)
		ok = asprintf(&envp[n++], "PGSSLMODE=%s", e->ext_sslmode) >= 0;
	if (ok && e->ext_sslrootcert)
		ok = asprintf(&envp[n++], "PGSSLROOTCERT=%s", e->ext_sslrootcert) >= 0;
	if (!ok) {
		envp[n - 1] = NULL; /* asprintf's failure leaves it undefined */
		pgw_envp_free(envp);
		return NULL;
	}
	return envp;
}

void pgw_envp_free(char **envp)
{
	if (!envp)
		return;
	for (size_t i = 0; envp[i]; i++) {
		/* the password goes from memory with it */
		explicit_bzero(envp[i], strlen(envp[i]));
		free(envp[i]);
	}
	free(envp);
}

int pg_ext_forward(const struct pg_env *e, struct dy_error **err)
{
	struct in_addr gw;
	inet_pton(AF_INET, e->gw, &gw);
	if (net_forward_port(gw, (uint16_t)e->port, e->ext_to, (uint16_t)e->ext_port, err) < 0)
		return dy_error_prefix(err, "forwarding %s:%u to %s:%u", e->gw, e->port,
		                       e->ext_addr, e->ext_port);
	return 0;
}
