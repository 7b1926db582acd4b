/* The configuration of dynod and dyno-router: one JSON file of nested
 * objects (docs/design.md, "Daemons and configuration"). Every key has a default;
 * an unknown key or a bad value is refused with a message naming the full
 * key path, e.g.
 *
 *	dynod.json: router.timeouts.connect: invalid duration "5x": ...
 *	dynod.json: unknown key "router.timeout"
 *
 * Durations are held in microseconds, sizes in bytes. Whether api_group
 * names an existing group is left to dynod at start-up. */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>

#include "common/error.h"
#include "common/macro.h"

#define CONFIG_DEFAULT_PATH  "/etc/dyno/dynod.json"
#define CONFIG_MAX_FILE_SIZE (1024 * 1024)
#define CONFIG_MAX_LISTEN    16
#define CONFIG_MAX_SIZES     64
#define CONFIG_SIZE_NAME_MAX 30

/* "ADDR:PORT" with ADDR an IPv4 dotted quad or a bracketed IPv6 address. */
struct config_addr {
	char text[64]; /* as written, e.g. "[::1]:8080" */
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} sa;
	socklen_t sa_len;
};

struct config_listen {
	struct config_addr addr[CONFIG_MAX_LISTEN];
	size_t n;
};

/* One dyno size: memory quota in bytes, pids limit, cpu weight factor. */
struct config_size {
	char name[CONFIG_SIZE_NAME_MAX + 1];
	uint64_t memory;
	uint32_t pids;
	uint32_t cpu;
};

struct config_sizes {
	struct config_size size[CONFIG_MAX_SIZES];
	size_t n;
};

enum config_pg_mode {
	CONFIG_PG_EMBEDDED,
	CONFIG_PG_EXTERNAL,
};

struct config {
	char *state_dir;
	char *api_socket;
	char *api_group;
	char *domain;
	char *stack;
	struct {
		uint32_t first;
		uint32_t count;
	} uids;
	struct {
		struct config_listen listen;
		struct config_addr admin_listen;
		bool external;
		struct {
			uint64_t connect;
			uint64_t first_byte;
			uint64_t idle;
			uint64_t request_head;
		} timeouts;
		struct {
			uint64_t interval;
			uint32_t rise;
			uint32_t fall;
		} health;
		uint32_t max_inflight_per_dyno;   /* requests at once per backend */
		uint32_t queue_per_dyno;          /* more wait this many deep, then H11 */
		uint32_t max_connections_per_app; /* client connections at once */
	} router;
	struct {
		char subnet_text[32];
		struct in_addr subnet; /* network address, network byte order */
		uint8_t subnet_prefix; /* 8..28 */
		bool egress;
	} network;
	struct {
		uint64_t max_compressed;
		uint64_t max_unpacked;
		uint64_t max_entries;
		uint32_t keep_unpacked;   /* unpacked trees kept besides the current's */
		uint64_t app_disk_budget; /* bytes an app may hold on disk */
	} slugs;
	struct {
		uint64_t max_size; /* bytes of an app's config vars (keys + values) */
	} config_vars;
	char *cgroup_parent; /* one dynod per cgroup parent and state dir */
	struct {
		uint64_t memory; /* bytes of the host's memory dynos never get */
		uint32_t pids;   /* pids of the host dynos never get */
	} host_reserve;
	struct {
		struct {
			uint64_t boot;
			uint64_t stop;
			uint64_t drain; /* a replaced web dyno gets no new requests this long */
			uint64_t setup; /* clone to the app's exec: a longer set-up fails the start */
			uint64_t build; /* a build dyno is stopped after this long */
		} timeouts;
		struct {
			uint64_t first;
			uint64_t max;
			uint64_t reset_after;
		} cooloff;
		struct {
			uint32_t size; /* prepared dynos kept ready (launch.h); 0: none */
		} pool;
		char *default_size;
		char *build_size; /* a build dyno's (docs/builds.md) */
		uint32_t start_threads; /* dyno starts (and clean-ups) at once */
	} dyno;
	struct config_sizes sizes; /* in the order written */
	struct {
		uint32_t lines;
	} logs;
	struct {
		struct {
			enum config_pg_mode mode;
			char *url;     /* NULL when null */
			uint32_t port; /* on the gateway address */
			uint32_t connections_per_database;
		} postgresql;
	} addons;
	struct {
		/* the host in the apps' ssh remotes (ssh://dyno@HOST/APP.git);
		 * NULL: remotes are paths on this host */
		char *ssh_host;
	} git;
};

/* Loads the configuration from the JSON file at path (at most
 * CONFIG_MAX_FILE_SIZE bytes) over the built-in defaults. path NULL means
 * CONFIG_DEFAULT_PATH when that file exists, else the defaults alone.
 * Returns 0 and a configuration in *ret (owned by the caller, release with
 * config_free()), or < 0 with an error naming the file and the key. */
int config_load(const char *path, struct config **ret, struct dy_error **err);

/* As config_load() on the len bytes at data (need not be NUL-terminated;
 * "{}" gives the defaults). name prefixes error messages (the file
 * name; NULL: "config"). */
int config_load_string(const char *data, size_t len, const char *name, struct config **ret,
                       struct dy_error **err);

/* The size called name in cfg, or NULL. The result points into cfg. */
const struct config_size *config_size_find(const struct config *cfg, const char *name);

/* The gid of cfg's api_group, or < 0 with an error saying how to make the
 * group. */
int config_api_gid(const struct config *cfg, gid_t *ret, struct dy_error **err);

/* "embedded" or "external". */
const char *config_pg_mode_str(enum config_pg_mode mode);

/* Frees cfg and everything it owns. Accepts NULL. */
void config_free(struct config *cfg);

DY_DEFINE_CLEANUP(struct config *, config_free, config_freep)
#define _cleanup_config_ __attribute__((cleanup(config_freep)))
