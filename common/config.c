#include "common/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/units.h"

/* How a key's JSON value is checked and stored. */
enum kind {
	K_PATH,      /* absolute path -> char * */
	K_GROUP,     /* group name -> char * */
	K_DOMAIN,    /* domain name -> char * */
	K_WORD,      /* [a-z0-9][a-z0-9._-]* -> char * */
	K_URL,       /* null or postgres URL -> char * (NULL) */
	K_SIZE_NAME, /* a size name -> char * */
	K_BOOL,      /* -> bool */
	K_U32,       /* integer in [min, max] -> uint32_t */
	K_U64,       /* integer in [min, max] -> uint64_t */
	K_DURATION,  /* "30s" in [min, max] microseconds -> uint64_t */
	K_SIZE,      /* "512M" in [min, max] bytes -> uint64_t */
	K_ADDR,      /* "ADDR:PORT" -> struct config_addr */
	K_LISTEN,    /* "ADDR:PORT" or a list of them -> struct config_listen */
	K_CIDR,      /* IPv4 "A.B.C.D/P", P in [min, max] -> network.subnet* */
	K_PG_MODE,   /* "embedded" | "external" -> enum config_pg_mode */
	K_SIZES,     /* object of sizes, replaces the table -> struct config_sizes */
};

struct key {
	const char *path; /* dotted; "sizes.*.x" is key x of every size */
	enum kind kind;
	const char *def;   /* default as text (JSON text for K_SIZES); NULL: null or required */
	size_t offset;     /* in struct config, or struct config_size for "sizes.*." */
	uint64_t min, max; /* range of numbers, durations, sizes; max length of strings */
};

#define C(field) offsetof(struct config, field)
#define S(field) offsetof(struct config_size, field)
#define MS       1000ULL
#define SEC      (1000 * MS)
#define MINUTE   (60 * SEC)
#define HOUR     (60 * MINUTE)
#define MIB      (1ULL << 20)
#define TIB      (1ULL << 40)

#define DEFAULT_SIZES                                                                              \
	"{\"standard-1x\": {\"memory\": \"512M\", \"pids\": 256, \"cpu\": 1},"                     \
	" \"standard-2x\": {\"memory\": \"1G\", \"pids\": 512, \"cpu\": 2},"                       \
	" \"performance-m\": {\"memory\": \"2560M\", \"pids\": 16384, \"cpu\": 8},"                \
	" \"performance-l\": {\"memory\": \"14G\", \"pids\": 32768, \"cpu\": 16}}"

/* Every key of the schema (docs/design.md, "Daemons and configuration"), with
 * its default: adding a key is one line here plus its field in config.h.
 * Objects in between ("router", "router.timeouts") follow from the paths. */
/* clang-format off */
static const struct key keys[] = {
	{"state_dir", K_PATH, "/var/lib/dyno", C(state_dir), 0, 4095},
	/* sun_path holds 108 bytes with the NUL */
	{"api_socket", K_PATH, "/run/dyno/api.sock", C(api_socket), 0, 107},
	{"api_group", K_GROUP, "dyno", C(api_group), 0, 32},
	{"domain", K_DOMAIN, "localhost", C(domain), 0, 253},
	{"stack", K_WORD, "host", C(stack), 0, 64},
	{"uids.first", K_U32, "200000", C(uids.first), 1000, UINT32_MAX - 2},
	{"uids.count", K_U32, "100000", C(uids.count), 1, UINT32_MAX - 2},
	{"router.listen", K_LISTEN, "0.0.0.0:8080", C(router.listen), 0, 0},
	{"router.admin_listen", K_ADDR, "127.0.0.1:8081", C(router.admin_listen), 0, 0},
	{"router.external", K_BOOL, "false", C(router.external), 0, 0},
	{"router.timeouts.connect", K_DURATION, "5s", C(router.timeouts.connect), MS, 24 * HOUR},
	{"router.timeouts.first_byte", K_DURATION, "30s", C(router.timeouts.first_byte), MS,
	 24 * HOUR},
	{"router.timeouts.idle", K_DURATION, "55s", C(router.timeouts.idle), MS, 24 * HOUR},
	{"router.timeouts.request_head", K_DURATION, "10s", C(router.timeouts.request_head), MS,
	 24 * HOUR},
	{"router.health.interval", K_DURATION, "2s", C(router.health.interval), 10 * MS, HOUR},
	{"router.health.rise", K_U32, "2", C(router.health.rise), 1, 100},
	{"router.health.fall", K_U32, "3", C(router.health.fall), 1, 100},
	{"router.max_inflight_per_dyno", K_U32, "50", C(router.max_inflight_per_dyno), 1, 100000},
	{"router.queue_per_dyno", K_U32, "50", C(router.queue_per_dyno), 0, 100000},
	{"router.max_connections_per_app", K_U32, "10000", C(router.max_connections_per_app), 1,
	 10000000},
	{"network.subnet", K_CIDR, "10.213.0.0/16", C(network), 8, 28},
	{"network.egress", K_BOOL, "false", C(network.egress), 0, 0},
	{"slugs.max_compressed", K_SIZE, "1G", C(slugs.max_compressed), MIB, 1024 * TIB},
	{"slugs.max_unpacked", K_SIZE, "4G", C(slugs.max_unpacked), MIB, 1024 * TIB},
	{"slugs.max_entries", K_U64, "1000000", C(slugs.max_entries), 1, 1000000000},
	{"slugs.keep_unpacked", K_U32, "3", C(slugs.keep_unpacked), 0, 100},
	{"slugs.app_disk_budget", K_SIZE, "10G", C(slugs.app_disk_budget), MIB, 1024 * TIB},
	{"config_vars.max_size", K_SIZE, "32K", C(config_vars.max_size), 1024, 64 * MIB},
	{"cgroup_parent", K_WORD, "dyno", C(cgroup_parent), 0, 64},
	{"host_reserve.memory", K_SIZE, "1G", C(host_reserve.memory), 0, 1024 * TIB},
	{"host_reserve.pids", K_U32, "4096", C(host_reserve.pids), 0, 4194304},
	{"dyno.timeouts.boot", K_DURATION, "60s", C(dyno.timeouts.boot), MS, 24 * HOUR},
	{"dyno.timeouts.stop", K_DURATION, "30s", C(dyno.timeouts.stop), MS, 24 * HOUR},
	{"dyno.timeouts.drain", K_DURATION, "30s", C(dyno.timeouts.drain), 0, 24 * HOUR},
	{"dyno.timeouts.setup", K_DURATION, "10s", C(dyno.timeouts.setup), 100 * MS, HOUR},
	{"dyno.start_threads", K_U32, "2", C(dyno.start_threads), 1, 16},
	{"dyno.timeouts.build", K_DURATION, "15m", C(dyno.timeouts.build), MS, 24 * HOUR},
	{"dyno.pool.size", K_U32, "2", C(dyno.pool.size), 0, 64},
	{"dyno.cooloff.first", K_DURATION, "10s", C(dyno.cooloff.first), MS, 24 * HOUR},
	{"dyno.cooloff.max", K_DURATION, "20m", C(dyno.cooloff.max), MS, 24 * HOUR},
	{"dyno.cooloff.reset_after", K_DURATION, "5m", C(dyno.cooloff.reset_after), MS, 24 * HOUR},
	{"dyno.default_size", K_SIZE_NAME, "standard-1x", C(dyno.default_size), 0,
	 CONFIG_SIZE_NAME_MAX},
	{"dyno.build_size", K_SIZE_NAME, "performance-m", C(dyno.build_size), 0,
	 CONFIG_SIZE_NAME_MAX},
	{"sizes", K_SIZES, DEFAULT_SIZES, C(sizes), 1, CONFIG_MAX_SIZES},
	{"sizes.*.memory", K_SIZE, NULL, S(memory), MIB, 1024 * TIB},
	{"sizes.*.pids", K_U32, NULL, S(pids), 1, 4194304 /* PID_MAX_LIMIT */},
	/* cgroup v2 cpu.weight is 100 per 1x, at most 10000 */
	{"sizes.*.cpu", K_U32, NULL, S(cpu), 1, 100},
	{"logs.lines", K_U32, "1500", C(logs.lines), 1, 1000000},
	{"addons.postgresql.mode", K_PG_MODE, "embedded", C(addons.postgresql.mode), 0, 0},
	{"addons.postgresql.url", K_URL, NULL, C(addons.postgresql.url), 0, 1024},
	{"addons.postgresql.port", K_U32, "5433", C(addons.postgresql.port), 1, 65535},
	{"addons.postgresql.connections_per_database", K_U32, "20",
	 C(addons.postgresql.connections_per_database), 1, 10000},
	{"git.ssh_host", K_DOMAIN, NULL, C(git.ssh_host), 0, 253},
};
/* clang-format on */

#define SIZE_KEY_PREFIX "sizes.*."

/* set_sizes() tracks the keys seen in a 64-bit mask. */
_Static_assert(ELEMENTSOF(keys) <= 64, "too many keys for the seen mask");

static bool is_size_key(const struct key *k)
{
	return strncmp(k->path, SIZE_KEY_PREFIX, strlen(SIZE_KEY_PREFIX)) == 0;
}

static bool is_string_kind(enum kind kind)
{
	return kind == K_PATH || kind == K_GROUP || kind == K_DOMAIN || kind == K_WORD ||
	       kind == K_URL || kind == K_SIZE_NAME;
}

static const char *const pg_modes[] = {
    [CONFIG_PG_EMBEDDED] = "embedded",
    [CONFIG_PG_EXTERNAL] = "external",
};

_Static_assert(sizeof(enum config_pg_mode) == sizeof(unsigned), "enum stored as unsigned");

const char *config_pg_mode_str(enum config_pg_mode mode)
{
	if ((size_t)mode >= ELEMENTSOF(pg_modes))
		return "unknown";
	return pg_modes[mode];
}

/* Loading context: the name errors start with, and the error. */
struct ctx {
	const char *name;
	struct dy_error **err;
};

/* Quotes text for a message: printable ASCII as is, the rest as \xNN, cut
 * after 64 characters so a hostile key cannot flood the log. */
static const char *quote(const char *text, char *buf, size_t size)
{
	size_t o = 0;
	buf[o++] = '"';
	for (size_t i = 0; text[i] != '\0' && o + 8 < size; i++) {
		unsigned char c = (unsigned char)text[i];
		if (i == 64) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (c == '"' || c == '\\')
			o += (size_t)snprintf(buf + o, size - o, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
		else
			buf[o++] = (char)c;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

#define QUOTE_MAX 300

static const char *json_type_str(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "a list";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
		return "true";
	case JSON_FALSE:
		return "false";
	case JSON_NULL:
		return "null";
	}
	return "something else";
}

/* "1h", "250ms": the largest unit which divides usec. */
static const char *fmt_duration(uint64_t usec, char *buf, size_t size)
{
	static const struct {
		uint64_t n;
		const char *unit;
	} units[] = {{HOUR, "h"}, {MINUTE, "m"}, {SEC, "s"}, {MS, "ms"}, {1, "us"}};
	size_t i = 0;
	while (i + 1 < ELEMENTSOF(units) && (usec == 0 || usec % units[i].n != 0))
		i++;
	snprintf(buf, size, "%" PRIu64 "%s", usec / units[i].n, units[i].unit);
	return buf;
}

static const char *fmt_size(uint64_t bytes, char *buf, size_t size)
{
	static const char units[] = "BKMGTP";
	size_t i = 0;
	while (i + 1 < sizeof(units) - 1 && bytes != 0 && bytes % 1024 == 0) {
		bytes /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(buf, size, "%" PRIu64, bytes);
	else
		snprintf(buf, size, "%" PRIu64 "%c", bytes, units[i]);
	return buf;
}

/* What a key expects, for "expected ..." messages. */
static const char *expected(const struct key *k, char *buf, size_t size)
{
	switch (k->kind) {
	case K_PATH:
		return "an absolute path";
	case K_GROUP:
		return "a group name";
	case K_DOMAIN:
		return "a domain name like \"localhost\" or \"apps.example.com\"";
	case K_WORD:
		return "a name of lower-case letters, digits, '.', '_' and '-'";
	case K_URL:
		return "null or a string like \"postgres://user@host:5432/db\"";
	case K_SIZE_NAME:
		return "a size name like \"standard-1x\"";
	case K_BOOL:
		return "true or false";
	case K_U32:
	case K_U64:
		snprintf(buf, size, "an integer from %" PRIu64 " to %" PRIu64, k->min, k->max);
		return buf;
	case K_DURATION:
		return "a string like \"30s\"";
	case K_SIZE:
		return "a string like \"512M\"";
	case K_ADDR:
		return "a string like \"127.0.0.1:8081\"";
	case K_LISTEN:
		return "a string like \"0.0.0.0:8080\" or a list of them";
	case K_CIDR:
		return "a string like \"10.213.0.0/16\"";
	case K_PG_MODE:
		return "\"embedded\" or \"external\"";
	case K_SIZES:
		return "an object of sizes";
	}
	return "something else";
}

static int type_error(struct ctx *ctx, const struct key *k, const char *path, const json_t *v)
{
	char buf[128];
	return dy_error(ctx->err, "%s: %s: expected %s, got %s", ctx->name, path,
	                expected(k, buf, sizeof(buf)), json_type_str(v));
}

/* Takes over an error from a lower layer, prefixed with name and path. */
static int pass_error(struct ctx *ctx, const char *path, struct dy_error **e)
{
	int r = dy_error_prefix(e, "%s: %s", ctx->name, path);
	if (ctx->err != NULL && *ctx->err == NULL)
		*ctx->err = TAKE_PTR(*e);
	dy_error_free(e);
	return r;
}

/* String checks: each returns NULL when s is fine, else what is wrong. */

static bool has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static const char *check_size_name(const char *s)
{
	/* ^[a-z0-9][a-z0-9-]{0,29}$ */
	size_t n = strlen(s);
	if (n == 0 || n > CONFIG_SIZE_NAME_MAX || !is_lower_alnum(s[0]))
		return "expected 1 to 30 lower-case letters, digits and '-', starting with a "
		       "letter "
		       "or digit";
	for (size_t i = 1; i < n; i++)
		if (!is_lower_alnum(s[i]) && s[i] != '-')
			return "expected 1 to 30 lower-case letters, digits and '-', starting with "
			       "a "
			       "letter or digit";
	return NULL;
}

static const char *check_string(const struct key *k, const char *s)
{
	size_t n = strlen(s);
	if (n == 0)
		return "must not be empty";
	if (n > k->max)
		return "too long";
	if (has_control(s))
		return "contains a control character";
	switch (k->kind) {
	case K_PATH:
		if (s[0] != '/')
			return "expected an absolute path";
		return NULL;
	case K_GROUP:
		/* shadow-utils' default NAME_REGEX */
		if (!((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
			return "expected a group name starting with a lower-case letter or '_'";
		for (size_t i = 1; i < n; i++)
			if (!is_lower_alnum(s[i]) && s[i] != '_' && s[i] != '-' &&
			    !(s[i] == '$' && i == n - 1))
				return "expected a group name of lower-case letters, digits, '_' "
				       "and "
				       "'-'";
		return NULL;
	case K_DOMAIN: {
		/* RFC 1123 host names, lower case: labels of 1-63 letters,
		 * digits and '-', not starting or ending with '-'. */
		size_t label = 0;
		for (size_t i = 0; i <= n; i++) {
			if (s[i] == '.' || s[i] == '\0') {
				if (label == 0 || label > 63 || s[i - 1] == '-')
					return "expected lower-case labels of letters, digits and "
					       "'-' "
					       "separated by dots";
				label = 0;
			} else if (is_lower_alnum(s[i]) || (s[i] == '-' && label > 0)) {
				label++;
			} else {
				return "expected lower-case labels of letters, digits and '-' "
				       "separated by dots";
			}
		}
		return NULL;
	}
	case K_WORD:
		if (!is_lower_alnum(s[0]))
			return "expected lower-case letters, digits, '.', '_' and '-'";
		for (size_t i = 1; i < n; i++)
			if (!is_lower_alnum(s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
				return "expected lower-case letters, digits, '.', '_' and '-'";
		return NULL;
	case K_URL:
		if (strncmp(s, "postgres://", 11) != 0 && strncmp(s, "postgresql://", 13) != 0)
			return "expected a postgres:// or postgresql:// URL";
		if (strchr(s, ' ') != NULL)
			return "contains a space";
		return NULL;
	case K_SIZE_NAME:
		return check_size_name(s);
	default:
		return NULL;
	}
}

/* Parses "ADDR:PORT": ADDR an IPv4 dotted quad or a bracketed IPv6 address,
 * PORT 1-65535. Returns NULL or what is wrong. */
static const char *parse_addr(const char *text, struct config_addr *out)
{
	static const char *const form =
	    "expected ADDR:PORT with an IPv4 dotted quad or a [bracketed] IPv6 address";
	char host[64];
	const char *port;
	size_t n = strlen(text);
	if (n >= sizeof(out->text))
		return "too long";
	memset(out, 0, sizeof(*out));
	bool v6 = text[0] == '[';
	if (v6) {
		const char *end = strchr(text, ']');
		if (end == NULL || end[1] != ':')
			return form;
		memcpy(host, text + 1, (size_t)(end - text - 1));
		host[end - text - 1] = '\0';
		port = end + 2;
	} else {
		const char *colon = strrchr(text, ':');
		if (colon == NULL)
			return "missing \":PORT\"";
		if (memchr(text, ':', (size_t)(colon - text)) != NULL)
			return "IPv6 addresses need brackets, like \"[::1]:8080\"";
		memcpy(host, text, (size_t)(colon - text));
		host[colon - text] = '\0';
		port = colon + 1;
	}
	size_t digits = strspn(port, "0123456789");
	if (digits == 0 || digits > 5 || port[digits] != '\0')
		return "expected a port number from 1 to 65535 after the last ':'";
	unsigned long p = strtoul(port, NULL, 10);
	if (p < 1 || p > 65535)
		return "expected a port number from 1 to 65535 after the last ':'";
	if (v6) {
		if (inet_pton(AF_INET6, host, &out->sa.in6.sin6_addr) != 1)
			return "invalid IPv6 address in brackets";
		out->sa.in6.sin6_family = AF_INET6;
		out->sa.in6.sin6_port = htons((uint16_t)p);
		out->sa_len = sizeof(out->sa.in6);
	} else {
		/* inet_pton() takes exactly four decimal parts, unlike
		 * inet_aton() which also reads "10.1" and octal. */
		if (inet_pton(AF_INET, host, &out->sa.in.sin_addr) != 1)
			return form;
		out->sa.in.sin_family = AF_INET;
		out->sa.in.sin_port = htons((uint16_t)p);
		out->sa_len = sizeof(out->sa.in);
	}
	memcpy(out->text, text, n + 1);
	return NULL;
}

static int set_addr(struct ctx *ctx, const char *path, const char *text, struct config_addr *out)
{
	char q[QUOTE_MAX];
	const char *why = parse_addr(text, out);
	if (why != NULL)
		return dy_error(ctx->err, "%s: %s: invalid address %s: %s", ctx->name, path,
		                quote(text, q, sizeof(q)), why);
	return 0;
}

static int set_cidr(struct ctx *ctx, const struct key *k, const char *path, const char *text,
                    struct config *cfg)
{
	char q[QUOTE_MAX];
	char addr[32];
	const char *slash = strchr(text, '/');
	size_t n = slash ? (size_t)(slash - text) : 0;
	struct in_addr in;
	if (slash == NULL || n >= sizeof(addr) || strlen(text) >= sizeof(cfg->network.subnet_text))
		return dy_error(ctx->err,
		                "%s: %s: invalid subnet %s: expected an IPv4 A.B.C.D/PREFIX",
		                ctx->name, path, quote(text, q, sizeof(q)));
	memcpy(addr, text, n);
	addr[n] = '\0';
	if (inet_pton(AF_INET, addr, &in) != 1)
		return dy_error(ctx->err,
		                "%s: %s: invalid subnet %s: expected an IPv4 A.B.C.D/PREFIX",
		                ctx->name, path, quote(text, q, sizeof(q)));
	const char *p = slash + 1;
	size_t digits = strspn(p, "0123456789");
	unsigned long prefix = digits > 0 && digits <= 2 ? strtoul(p, NULL, 10) : 0;
	if (digits == 0 || digits > 2 || p[digits] != '\0' || prefix < k->min || prefix > k->max)
		return dy_error(ctx->err,
		                "%s: %s: invalid subnet %s: expected a prefix length from %" PRIu64
		                " to %" PRIu64,
		                ctx->name, path, quote(text, q, sizeof(q)), k->min, k->max);
	uint32_t mask = ~0u << (32 - prefix);
	uint32_t host = ntohl(in.s_addr);
	if ((host & ~mask) != 0) {
		struct in_addr net = {.s_addr = htonl(host & mask)};
		char buf[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &net, buf, sizeof(buf));
		return dy_error(ctx->err,
		                "%s: %s: invalid subnet %s: host bits are set (the network is "
		                "%s/%lu)",
		                ctx->name, path, quote(text, q, sizeof(q)), buf, prefix);
	}
	cfg->network.subnet = in;
	cfg->network.subnet_prefix = (uint8_t)prefix;
	memcpy(cfg->network.subnet_text, text, strlen(text) + 1);
	return 0;
}

static int set_value(struct ctx *ctx, const struct key *k, const char *path, json_t *v, void *base,
                     struct config *cfg);

static const struct key *find_size_key(const char *name)
{
	for (size_t i = 0; i < ELEMENTSOF(keys); i++)
		if (is_size_key(&keys[i]) &&
		    strcmp(keys[i].path + strlen(SIZE_KEY_PREFIX), name) == 0)
			return &keys[i];
	return NULL;
}

static int set_sizes(struct ctx *ctx, const struct key *k, const char *path, json_t *v,
                     struct config_sizes *out)
{
	char q[QUOTE_MAX];
	size_t n = json_object_size(v);
	if (n < k->min || n > k->max)
		return dy_error(ctx->err, "%s: %s: expected from %" PRIu64 " to %" PRIu64 " sizes",
		                ctx->name, path, k->min, k->max);
	_cleanup_free_ struct config_sizes *table = calloc(1, sizeof(*table));
	if (table == NULL)
		return dy_error_errno(ctx->err, ENOMEM, "%s: %s", ctx->name, path);
	const char *name;
	json_t *size;
	json_object_foreach(v, name, size)
	{
		const char *why = check_size_name(name);
		if (why != NULL)
			return dy_error(ctx->err, "%s: %s: invalid size name %s: %s", ctx->name,
			                path, quote(name, q, sizeof(q)), why);
		_cleanup_free_ char *spath = NULL;
		if (asprintf(&spath, "%s.%s", path, name) < 0)
			return dy_error_errno(ctx->err, ENOMEM, "%s: %s", ctx->name, path);
		if (!json_is_object(size))
			return dy_error(
			    ctx->err,
			    "%s: %s: expected an object with memory, pids and cpu, got %s",
			    ctx->name, spath, json_type_str(size));
		struct config_size *s = &table->size[table->n++];
		memcpy(s->name, name, strlen(name) + 1);
		uint64_t seen = 0;
		const char *field;
		json_t *fv;
		json_object_foreach(size, field, fv)
		{
			_cleanup_free_ char *fpath = NULL;
			if (asprintf(&fpath, "%s.%s", spath, field) < 0)
				return dy_error_errno(ctx->err, ENOMEM, "%s: %s", ctx->name, spath);
			const struct key *fk = field[0] != '\0' ? find_size_key(field) : NULL;
			if (fk == NULL)
				return dy_error(ctx->err, "%s: unknown key %s", ctx->name,
				                quote(fpath, q, sizeof(q)));
			int r = set_value(ctx, fk, fpath, fv, s, NULL);
			if (r < 0)
				return r;
			seen |= 1ULL << (fk - keys);
		}
		for (size_t i = 0; i < ELEMENTSOF(keys); i++)
			if (is_size_key(&keys[i]) && !(seen & (1ULL << i)))
				return dy_error(ctx->err, "%s: %s: missing \"%s\"", ctx->name,
				                spath, keys[i].path + strlen(SIZE_KEY_PREFIX));
	}
	*out = *table;
	return 0;
}

/* Checks v against k and stores it at base + k->offset (base: the config,
 * or one size for "sizes.*." keys). cfg is the config for kinds that fill
 * more than one field. */
static int set_value(struct ctx *ctx, const struct key *k, const char *path, json_t *v, void *base,
                     struct config *cfg)
{
	void *field = (char *)base + k->offset;
	char q[QUOTE_MAX], lo[32], hi[32];
	struct dy_error *e = NULL;

	if (is_string_kind(k->kind)) {
		/* a string without a default may be null */
		if (k->def == NULL && json_is_null(v)) {
			free(*(char **)field);
			*(char **)field = NULL;
			return 0;
		}
		if (!json_is_string(v))
			return type_error(ctx, k, path, v);
		const char *s = json_string_value(v);
		const char *why = check_string(k, s);
		if (why != NULL)
			return dy_error(ctx->err, "%s: %s: invalid value %s: %s", ctx->name, path,
			                quote(s, q, sizeof(q)), why);
		char *copy = strdup(s);
		if (copy == NULL)
			return dy_error_errno(ctx->err, ENOMEM, "%s: %s", ctx->name, path);
		free(*(char **)field);
		*(char **)field = copy;
		return 0;
	}

	switch (k->kind) {
	case K_BOOL:
		if (!json_is_boolean(v))
			return type_error(ctx, k, path, v);
		*(bool *)field = json_is_true(v);
		return 0;
	case K_U32:
	case K_U64: {
		if (!json_is_integer(v))
			return type_error(ctx, k, path, v);
		json_int_t n = json_integer_value(v);
		if (n < 0 || (uint64_t)n < k->min || (uint64_t)n > k->max)
			return dy_error(ctx->err,
			                "%s: %s: %" JSON_INTEGER_FORMAT
			                " is out of range: expected an integer from %" PRIu64
			                " to %" PRIu64,
			                ctx->name, path, n, k->min, k->max);
		if (k->kind == K_U32)
			*(uint32_t *)field = (uint32_t)n;
		else
			*(uint64_t *)field = (uint64_t)n;
		return 0;
	}
	case K_DURATION:
	case K_SIZE: {
		if (!json_is_string(v))
			return type_error(ctx, k, path, v);
		const char *s = json_string_value(v);
		uint64_t n;
		if (has_control(s))
			return dy_error(ctx->err,
			                "%s: %s: invalid value %s: contains a control character",
			                ctx->name, path, quote(s, q, sizeof(q)));
		bool dur = k->kind == K_DURATION;
		int r = dur ? dy_parse_duration(s, &n, &e) : dy_parse_size(s, &n, &e);
		if (r < 0)
			return pass_error(ctx, path, &e);
		if (n < k->min || n > k->max)
			return dy_error(ctx->err,
			                "%s: %s: %s is out of range: expected from %s to %s",
			                ctx->name, path, quote(s, q, sizeof(q)),
			                dur ? fmt_duration(k->min, lo, sizeof(lo))
			                    : fmt_size(k->min, lo, sizeof(lo)),
			                dur ? fmt_duration(k->max, hi, sizeof(hi))
			                    : fmt_size(k->max, hi, sizeof(hi)));
		*(uint64_t *)field = n;
		return 0;
	}
	case K_ADDR:
		if (!json_is_string(v))
			return type_error(ctx, k, path, v);
		return set_addr(ctx, path, json_string_value(v), field);
	case K_LISTEN: {
		struct config_listen *l = field;
		struct config_listen tmp = {.n = 0};
		if (json_is_string(v)) {
			int r = set_addr(ctx, path, json_string_value(v), &tmp.addr[0]);
			if (r < 0)
				return r;
			tmp.n = 1;
		} else if (json_is_array(v)) {
			size_t n = json_array_size(v);
			if (n == 0 || n > CONFIG_MAX_LISTEN)
				return dy_error(ctx->err,
				                "%s: %s: expected from 1 to %d addresses, got %zu",
				                ctx->name, path, CONFIG_MAX_LISTEN, n);
			for (size_t i = 0; i < n; i++) {
				json_t *a = json_array_get(v, i);
				char ipath[256];
				snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
				if (!json_is_string(a))
					return dy_error(ctx->err,
					                "%s: %s: expected a string like "
					                "\"0.0.0.0:8080\", got %s",
					                ctx->name, ipath, json_type_str(a));
				int r = set_addr(ctx, ipath, json_string_value(a), &tmp.addr[i]);
				if (r < 0)
					return r;
			}
			tmp.n = n;
		} else {
			return type_error(ctx, k, path, v);
		}
		*l = tmp;
		return 0;
	}
	case K_CIDR:
		if (!json_is_string(v))
			return type_error(ctx, k, path, v);
		return set_cidr(ctx, k, path, json_string_value(v), cfg);
	case K_PG_MODE:
		if (json_is_string(v))
			for (size_t i = 0; i < ELEMENTSOF(pg_modes); i++)
				if (strcmp(json_string_value(v), pg_modes[i]) == 0) {
					*(unsigned *)field = (unsigned)i;
					return 0;
				}
		if (json_is_string(v))
			return dy_error(ctx->err, "%s: %s: invalid value %s: expected %s",
			                ctx->name, path, quote(json_string_value(v), q, sizeof(q)),
			                expected(k, lo, sizeof(lo)));
		return type_error(ctx, k, path, v);
	case K_SIZES:
		if (!json_is_object(v))
			return type_error(ctx, k, path, v);
		return set_sizes(ctx, k, path, v, field);
	default:
		return dy_error(ctx->err, "%s: %s: internal error: unhandled kind", ctx->name,
		                path);
	}
}

/* The built-in default of k as a JSON value (new reference). */
static json_t *default_value(const struct key *k)
{
	if (k->def == NULL)
		return json_null();
	switch (k->kind) {
	case K_BOOL:
		return json_boolean(strcmp(k->def, "true") == 0);
	case K_U32:
	case K_U64:
		return json_integer(strtoll(k->def, NULL, 10));
	case K_SIZES:
		return json_loads(k->def, JSON_REJECT_DUPLICATES, NULL);
	default:
		return json_string(k->def);
	}
}

static int apply_defaults(struct ctx *ctx, struct config *cfg)
{
	for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
		const struct key *k = &keys[i];
		if (is_size_key(k))
			continue;
		json_t *v = default_value(k);
		if (v == NULL)
			return dy_error_errno(ctx->err, ENOMEM, "%s: default of %s", ctx->name,
			                      k->path);
		int r = set_value(ctx, k, k->path, v, cfg, cfg);
		json_decref(v);
		if (r < 0)
			return dy_error_prefix(ctx->err, "built-in default");
	}
	return 0;
}

static const struct key *find_key(const char *path)
{
	for (size_t i = 0; i < ELEMENTSOF(keys); i++)
		if (!is_size_key(&keys[i]) && strcmp(keys[i].path, path) == 0)
			return &keys[i];
	return NULL;
}

/* True when path names an object holding keys of the table. */
static bool is_section(const char *path)
{
	size_t n = strlen(path);
	for (size_t i = 0; i < ELEMENTSOF(keys); i++)
		if (!is_size_key(&keys[i]) && strncmp(keys[i].path, path, n) == 0 &&
		    keys[i].path[n] == '.')
			return true;
	return false;
}

static int apply_object(struct ctx *ctx, struct config *cfg, json_t *obj, const char *prefix)
{
	const char *name;
	json_t *v;
	json_object_foreach(obj, name, v)
	{
		char q[QUOTE_MAX];
		_cleanup_free_ char *path = NULL;
		if (asprintf(&path, "%s%s%s", prefix ? prefix : "", prefix ? "." : "", name) < 0)
			return dy_error_errno(ctx->err, ENOMEM, "%s", ctx->name);
		/* A key with a dot could pass for a nested one ("timeouts.idle"
		 * under "router"): no key of the schema has one. */
		const struct key *k =
		    name[0] != '\0' && strchr(name, '.') == NULL ? find_key(path) : NULL;
		if (k != NULL) {
			int r = set_value(ctx, k, path, v, cfg, cfg);
			if (r < 0)
				return r;
		} else if (name[0] != '\0' && strchr(name, '.') == NULL && is_section(path)) {
			if (!json_is_object(v))
				return dy_error(ctx->err, "%s: %s: expected an object, got %s",
				                ctx->name, path, json_type_str(v));
			int r = apply_object(ctx, cfg, v, path);
			if (r < 0)
				return r;
		} else {
			return dy_error(ctx->err, "%s: unknown key %s", ctx->name,
			                quote(path, q, sizeof(q)));
		}
	}
	return 0;
}

const struct config_size *config_size_find(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->sizes.n; i++)
		if (strcmp(cfg->sizes.size[i].name, name) == 0)
			return &cfg->sizes.size[i];
	return NULL;
}

/* Rules between keys, checked once everything is read. */
static int check_config(struct ctx *ctx, const struct config *cfg)
{
	char a[32], b[32];
	if ((uint64_t)cfg->uids.first + cfg->uids.count > UINT32_MAX - 1)
		return dy_error(ctx->err,
		                "%s: uids: first + count must be at most %" PRIu32 " (got %" PRIu32
		                " + %" PRIu32 ")",
		                ctx->name, UINT32_MAX - 1, cfg->uids.first, cfg->uids.count);
	if (config_size_find(cfg, cfg->dyno.default_size) == NULL) {
		char list[CONFIG_MAX_SIZES * (CONFIG_SIZE_NAME_MAX + 2)] = "";
		size_t o = 0;
		for (size_t i = 0; i < cfg->sizes.n; i++)
			o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", i ? ", " : "",
			                      cfg->sizes.size[i].name);
		return dy_error(ctx->err, "%s: dyno.default_size: \"%s\" is not in sizes (%s)",
		                ctx->name, cfg->dyno.default_size, list);
	}
	if (cfg->dyno.cooloff.max < cfg->dyno.cooloff.first)
		return dy_error(ctx->err,
		                "%s: dyno.cooloff.max: %s is less than dyno.cooloff.first (%s)",
		                ctx->name, fmt_duration(cfg->dyno.cooloff.max, a, sizeof(a)),
		                fmt_duration(cfg->dyno.cooloff.first, b, sizeof(b)));
	if (cfg->addons.postgresql.mode == CONFIG_PG_EXTERNAL && cfg->addons.postgresql.url == NULL)
		return dy_error(ctx->err,
		                "%s: addons.postgresql.url: needed when addons.postgresql.mode is "
		                "\"external\"",
		                ctx->name);
	return 0;
}

int config_api_gid(const struct config *cfg, gid_t *ret, struct dy_error **err)
{
	errno = 0;
	struct group *gr = getgrnam(cfg->api_group);
	if (gr == NULL)
		return dy_error(err,
		                "api_group \"%s\": no such group (create it with `groupadd %s`, or "
		                "set api_group in the configuration)",
		                cfg->api_group, cfg->api_group);
	*ret = gr->gr_gid;
	return 0;
}

void config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < ELEMENTSOF(keys); i++)
		if (!is_size_key(&keys[i]) && is_string_kind(keys[i].kind))
			free(*(char **)((char *)cfg + keys[i].offset));
	free(cfg);
}

int config_load_string(const char *data, size_t len, const char *name, struct config **ret,
                       struct dy_error **err)
{
	struct ctx ctx = {.name = name ? name : "config", .err = err};
	json_error_t jerr;
	_cleanup_config_ struct config *cfg = calloc(1, sizeof(*cfg));
	if (cfg == NULL)
		return dy_error_errno(err, ENOMEM, "%s", ctx.name);
	int r = apply_defaults(&ctx, cfg);
	if (r < 0)
		return r;
	_cleanup_(json_decrefp) json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		return dy_error(err, "%s: invalid JSON at line %d, column %d: %s", ctx.name,
		                jerr.line, jerr.column, jerr.text);
	if (!json_is_object(root))
		return dy_error(err, "%s: expected a JSON object at the top level, got %s",
		                ctx.name, json_type_str(root));
	r = apply_object(&ctx, cfg, root, NULL);
	if (r < 0)
		return r;
	r = check_config(&ctx, cfg);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(cfg);
	return 0;
}

int config_load(const char *path, struct config **ret, struct dy_error **err)
{
	bool explicit = path != NULL;
	if (!explicit)
		path = CONFIG_DEFAULT_PATH;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (!explicit && errno == ENOENT)
			return config_load_string("{}", 2, "built-in defaults", ret, err);
		return dy_error_errno(err, errno, "open %s", path);
	}
	struct stat st;
	if (fstat(fd, &st) < 0)
		return dy_error_errno(err, errno, "stat %s", path);
	if (!S_ISREG(st.st_mode))
		return dy_error(err, "%s: not a regular file", path);
	/* Read one byte past the cap, in case the file grew since fstat. */
	_cleanup_free_ char *buf = malloc(CONFIG_MAX_FILE_SIZE + 1);
	if (buf == NULL)
		return dy_error_errno(err, ENOMEM, "%s", path);
	size_t len = 0;
	while (len <= CONFIG_MAX_FILE_SIZE) {
		ssize_t n = read(fd, buf + len, CONFIG_MAX_FILE_SIZE + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return dy_error_errno(err, errno, "read %s", path);
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > CONFIG_MAX_FILE_SIZE)
		return dy_error(err, "%s: too large (more than %d bytes)", path,
		                CONFIG_MAX_FILE_SIZE);
	return config_load_string(buf, len, path, ret, err);
}
