#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/cleanup.h"
#include "common/config.h"

#define MS  1000ULL
#define SEC (1000 * MS)
#define MINUTE (60 * SEC)
#define MIB (1ULL << 20)
#define GIB (1ULL << 30)

static struct config *load_ok(const char *json)
{
	struct config *cfg = NULL;
	struct dy_error *err = NULL;
	int r = config_load_string(json, strlen(json), "t.json", &cfg, &err);
	if (r < 0)
		fail_msg("config refused: %s\n%s", dy_error_msg(err), json);
	assert_non_null(cfg);
	assert_null(err);
	return cfg;
}

/* Loads json, which must fail, and checks the message: the whole of it, or
 * its start when want ends with '*'. */
static void load_fails(const char *json, const char *want)
{
	struct config *cfg = NULL;
	struct dy_error *err = NULL;
	int r = config_load_string(json, strlen(json), "t.json", &cfg, &err);
	if (r >= 0)
		fail_msg("config accepted: %s", json);
	assert_null(cfg);
	assert_non_null(err);
	const char *msg = dy_error_msg(err);
	size_t n = strlen(want);
	if (n > 0 && want[n - 1] == '*') {
		if (strncmp(msg, want, n - 1) != 0)
			fail_msg("for %s\n got: %s\nwant: %s", json, msg, want);
	} else if (strcmp(msg, want) != 0) {
		fail_msg("for %s\n got: %s\nwant: %s", json, msg, want);
	}
	dy_error_free(&err);
}

static void assert_addr4(const struct config_addr *a, const char *text, const char *ip,
                         uint16_t port)
{
	char buf[INET_ADDRSTRLEN];
	assert_string_equal(a->text, text);
	assert_int_equal(a->sa.sa.sa_family, AF_INET);
	assert_int_equal(a->sa_len, sizeof(struct sockaddr_in));
	assert_int_equal(ntohs(a->sa.in.sin_port), port);
	inet_ntop(AF_INET, &a->sa.in.sin_addr, buf, sizeof(buf));
	assert_string_equal(buf, ip);
}

static void assert_size(const struct config *cfg, size_t i, const char *name, uint64_t memory,
                        uint32_t pids, uint32_t cpu)
{
	assert_true(i < cfg->sizes.n);
	assert_string_equal(cfg->sizes.size[i].name, name);
	assert_int_equal(cfg->sizes.size[i].memory, memory);
	assert_int_equal(cfg->sizes.size[i].pids, pids);
	assert_int_equal(cfg->sizes.size[i].cpu, cpu);
}

/* Every default of docs/design.md, "Daemons and configuration". */
static void assert_defaults(const struct config *cfg)
{
	assert_string_equal(cfg->state_dir, "/var/lib/dyno");
	assert_string_equal(cfg->api_socket, "/run/dyno/api.sock");
	assert_string_equal(cfg->api_group, "dyno");
	assert_string_equal(cfg->domain, "localhost");
	assert_string_equal(cfg->stack, "host");
	assert_int_equal(cfg->uids.first, 200000);
	assert_int_equal(cfg->uids.count, 100000);
	assert_int_equal(cfg->router.listen.n, 1);
	assert_addr4(&cfg->router.listen.addr[0], "0.0.0.0:8080", "0.0.0.0", 8080);
	assert_addr4(&cfg->router.admin_listen, "127.0.0.1:8081", "127.0.0.1", 8081);
	assert_false(cfg->router.external);
	assert_int_equal(cfg->router.timeouts.connect, 5 * SEC);
	assert_int_equal(cfg->router.timeouts.first_byte, 30 * SEC);
	assert_int_equal(cfg->router.timeouts.idle, 55 * SEC);
	assert_int_equal(cfg->router.timeouts.request_head, 10 * SEC);
	assert_int_equal(cfg->router.health.interval, 2 * SEC);
	assert_int_equal(cfg->router.health.rise, 2);
	assert_int_equal(cfg->router.health.fall, 3);
	assert_int_equal(cfg->router.max_inflight_per_dyno, 50);
	assert_int_equal(cfg->router.queue_per_dyno, 50);
	assert_int_equal(cfg->router.max_connections_per_app, 10000);
	assert_string_equal(cfg->network.subnet_text, "10.213.0.0/16");
	assert_int_equal(ntohl(cfg->network.subnet.s_addr), 0x0ad50000);
	assert_int_equal(cfg->network.subnet_prefix, 16);
	assert_false(cfg->network.egress);
	assert_int_equal(cfg->slugs.max_compressed, GIB);
	assert_int_equal(cfg->slugs.max_unpacked, 4 * GIB);
	assert_int_equal(cfg->slugs.max_entries, 1000000);
	assert_int_equal(cfg->slugs.keep_unpacked, 3);
	assert_int_equal(cfg->slugs.app_disk_budget, 10 * GIB);
	assert_int_equal(cfg->config_vars.max_size, 32 * 1024);
	assert_string_equal(cfg->cgroup_parent, "dyno");
	assert_int_equal(cfg->host_reserve.memory, GIB);
	assert_int_equal(cfg->host_reserve.pids, 4096);
	assert_int_equal(cfg->dyno.timeouts.boot, 60 * SEC);
	assert_int_equal(cfg->dyno.timeouts.stop, 30 * SEC);
	assert_int_equal(cfg->dyno.cooloff.first, 10 * SEC);
	assert_int_equal(cfg->dyno.cooloff.max, 20 * MINUTE);
	assert_int_equal(cfg->dyno.cooloff.reset_after, 5 * MINUTE);
	assert_string_equal(cfg->dyno.default_size, "standard-1x");
	assert_string_equal(cfg->dyno.build_size, "performance-m");
	assert_int_equal(cfg->sizes.n, 4);
	assert_size(cfg, 0, "standard-1x", 512 * MIB, 256, 1);
	assert_size(cfg, 1, "standard-2x", GIB, 512, 2);
	assert_size(cfg, 2, "performance-m", 2560 * MIB, 16384, 8);
	assert_size(cfg, 3, "performance-l", 14 * GIB, 32768, 16);
	assert_int_equal(cfg->logs.lines, 1500);
	assert_int_equal(cfg->addons.postgresql.mode, CONFIG_PG_EMBEDDED);
	assert_string_equal(config_pg_mode_str(cfg->addons.postgresql.mode), "embedded");
	assert_null(cfg->addons.postgresql.url);
	assert_int_equal(cfg->addons.postgresql.port, 5433);
	assert_int_equal(cfg->addons.postgresql.connections_per_database, 20);
	assert_ptr_equal(config_size_find(cfg, "standard-2x"), &cfg->sizes.size[1]);
	assert_null(config_size_find(cfg, "nope"));
}

static void test_defaults(void **state)
{
	_cleanup_config_ struct config *cfg = load_ok("{}");
	assert_defaults(cfg);
	/* Empty sections change nothing either. */
	_cleanup_config_ struct config *cfg2 =
	    load_ok("{\"router\": {\"timeouts\": {}, \"health\": {}}, \"addons\": {}}");
	assert_defaults(cfg2);
}

static void test_default_path(void **state)
{
	/* Without /etc/dyno/dynod.json, NULL means the built-in defaults. */
	if (access(CONFIG_DEFAULT_PATH, F_OK) == 0)
		skip();
	_cleanup_config_ struct config *cfg = NULL;
	assert_int_equal(config_load(NULL, &cfg, NULL), 0);
	assert_defaults(cfg);
}

/* configs/dynod.json in the source tree is the full default config. */
static void test_shipped_config(void **state)
{
	_cleanup_config_ struct config *cfg = NULL;
	struct dy_error *err = NULL;
	int r = config_load(DYNO_SOURCE_ROOT "/configs/dynod.json", &cfg, &err);
	if (r < 0)
		fail_msg("%s", dy_error_msg(err));
	assert_defaults(cfg);
}

static void test_overrides(void **state)
{
	_cleanup_config_ struct config *cfg =
	    load_ok("{\"state_dir\": \"/srv/dyno\", \"api_socket\": \"/tmp/api.sock\","
	            " \"api_group\": \"ops_team\", \"domain\": \"apps.example.com\","
	            " \"stack\": \"heroku-22\","
	            " \"uids\": {\"first\": 1000, \"count\": 4294966294},"
	            " \"router\": {\"listen\": [\"10.0.0.1:80\", \"[::1]:8443\"],"
	            "   \"admin_listen\": \"[::]:9000\", \"external\": true,"
	            "   \"timeouts\": {\"connect\": \"1m30s\", \"idle\": \"250ms\"},"
	            "   \"health\": {\"interval\": \"500ms\", \"rise\": 1, \"fall\": 100}},"
	            " \"network\": {\"subnet\": \"172.16.0.0/12\", \"egress\": true},"
	            " \"slugs\": {\"max_compressed\": \"100M\", \"max_entries\": 5},"
	            " \"dyno\": {\"timeouts\": {\"boot\": \"2m\"}, \"cooloff\": {\"max\": \"1h\"},"
	            "   \"default_size\": \"standard-2x\"},"
	            " \"logs\": {\"lines\": 10},"
	            " \"addons\": {\"postgresql\": {\"mode\": \"external\","
	            "   \"url\": \"postgres://dyno@db:5432/dyno\"}}}");
	assert_string_equal(cfg->state_dir, "/srv/dyno");
	assert_string_equal(cfg->api_socket, "/tmp/api.sock");
	assert_string_equal(cfg->api_group, "ops_team");
	assert_string_equal(cfg->domain, "apps.example.com");
	assert_string_equal(cfg->stack, "heroku-22");
	assert_int_equal(cfg->uids.first, 1000);
	assert_int_equal(cfg->uids.count, 4294966294u);
	assert_int_equal(cfg->router.listen.n, 2);
	assert_addr4(&cfg->router.listen.addr[0], "10.0.0.1:80", "10.0.0.1", 80);
	const struct config_addr *v6 = &cfg->router.listen.addr[1];
	assert_string_equal(v6->text, "[::1]:8443");
	assert_int_equal(v6->sa.sa.sa_family, AF_INET6);
	assert_int_equal(v6->sa_len, sizeof(struct sockaddr_in6));
	assert_int_equal(ntohs(v6->sa.in6.sin6_port), 8443);
	assert_memory_equal(&v6->sa.in6.sin6_addr, &in6addr_loopback, sizeof(struct in6_addr));
	assert_int_equal(cfg->router.admin_listen.sa.sa.sa_family, AF_INET6);
	assert_true(cfg->router.external);
	assert_int_equal(cfg->router.timeouts.connect, 90 * SEC);
	assert_int_equal(cfg->router.timeouts.first_byte, 30 * SEC); /* untouched */
	assert_int_equal(cfg->router.timeouts.idle, 250 * MS);
	assert_int_equal(cfg->router.health.interval, 500 * MS);
	assert_int_equal(cfg->router.health.rise, 1);
	assert_int_equal(cfg->router.health.fall, 100);
	assert_int_equal(ntohl(cfg->network.subnet.s_addr), 0xac100000);
	assert_int_equal(cfg->network.subnet_prefix, 12);
	assert_true(cfg->network.egress);
	assert_int_equal(cfg->slugs.max_compressed, 100 * MIB);
	assert_int_equal(cfg->slugs.max_unpacked, 4 * GIB);
	assert_int_equal(cfg->slugs.max_entries, 5);
	assert_int_equal(cfg->dyno.timeouts.boot, 2 * MINUTE);
	assert_int_equal(cfg->dyno.cooloff.max, 60 * MINUTE);
	assert_string_equal(cfg->dyno.default_size, "standard-2x");
	assert_int_equal(cfg->sizes.n, 4);
	assert_int_equal(cfg->logs.lines, 10);
	assert_int_equal(cfg->addons.postgresql.mode, CONFIG_PG_EXTERNAL);
	assert_string_equal(config_pg_mode_str(cfg->addons.postgresql.mode), "external");
	assert_string_equal(cfg->addons.postgresql.url, "postgres://dyno@db:5432/dyno");

	/* A single listen string, null for the url, 28-bit subnet. */
	_cleanup_config_ struct config *cfg2 =
	    load_ok("{\"router\": {\"listen\": \"[2001:db8::1]:443\"},"
	            " \"addons\": {\"postgresql\": {\"url\": null}},"
	            " \"network\": {\"subnet\": \"192.168.7.16/28\"}}");
	assert_int_equal(cfg2->router.listen.n, 1);
	assert_string_equal(cfg2->router.listen.addr[0].text, "[2001:db8::1]:443");
	assert_null(cfg2->addons.postgresql.url);
	assert_int_equal(cfg2->network.subnet_prefix, 28);
}

static void test_sizes_replace_table(void **state)
{
	_cleanup_config_ struct config *cfg =
	    load_ok("{\"sizes\": {\"tiny\": {\"memory\": \"64M\", \"pids\": 32, \"cpu\": 1},"
	            " \"big-9\": {\"cpu\": 4, \"pids\": 4096, \"memory\": \"8G\"}},"
	            " \"dyno\": {\"default_size\": \"tiny\"}}");
	assert_int_equal(cfg->sizes.n, 2);
	assert_size(cfg, 0, "tiny", 64 * MIB, 32, 1);
	assert_size(cfg, 1, "big-9", 8 * GIB, 4096, 4);
	assert_null(config_size_find(cfg, "standard-1x"));
	assert_string_equal(cfg->dyno.default_size, "tiny");

	/* The default size must be in the final table. */
	load_fails("{\"sizes\": {\"tiny\": {\"memory\": \"64M\", \"pids\": 32, \"cpu\": 1}}}",
	           "t.json: dyno.default_size: \"standard-1x\" is not in sizes (tiny)");
	load_fails("{\"dyno\": {\"default_size\": \"standard-9x\"}}",
	           "t.json: dyno.default_size: \"standard-9x\" is not in sizes (standard-1x, "
	           "standard-2x, performance-m, performance-l)");
	load_fails("{\"sizes\": {\"tiny\": {\"memory\": \"64M\", \"pids\": 32}}}",
	           "t.json: sizes.tiny: missing \"cpu\"");
	load_fails("{\"sizes\": {\"tiny\": {\"memory\": \"64M\", \"pids\": 32, \"cpu\": 1, "
	           "\"swap\": \"1G\"}}}",
	           "t.json: unknown key \"sizes.tiny.swap\"");
	load_fails("{\"sizes\": {\"Tiny\": {}}}",
	           "t.json: sizes: invalid size name \"Tiny\": expected 1 to 30 lower-case "
	           "letters, digits and '-', starting with a letter or digit");
	load_fails("{\"sizes\": {\"-x\": {}}}", "t.json: sizes: invalid size name \"-x\": *");
	load_fails("{\"sizes\": {\"a234567890123456789012345678901\": {}}}",
	           "t.json: sizes: invalid size name *");
	load_fails("{\"sizes\": {}}", "t.json: sizes: expected from 1 to 64 sizes");
	load_fails("{\"sizes\": {\"tiny\": 5}}",
	           "t.json: sizes.tiny: expected an object with memory, pids and cpu, got an "
	           "integer");
	load_fails("{\"sizes\": [1]}", "t.json: sizes: expected an object of sizes, got a list");
	load_fails("{\"sizes\": {\"tiny\": {\"memory\": \"64M\", \"pids\": 32, \"cpu\": 0}}}",
	           "t.json: sizes.tiny.cpu: 0 is out of range: expected an integer from 1 to 100");
	load_fails("{\"sizes\": {\"tiny\": {\"memory\": 64, \"pids\": 32, \"cpu\": 1}}}",
	           "t.json: sizes.tiny.memory: expected a string like \"512M\", got an integer");
}

static void test_unknown_keys(void **state)
{
	load_fails("{\"foo\": 1}", "t.json: unknown key \"foo\"");
	load_fails("{\"router\": {\"timeout\": \"5s\"}}", "t.json: unknown key \"router.timeout\"");
	load_fails("{\"router\": {\"timeouts\": {\"conect\": \"5s\"}}}",
	           "t.json: unknown key \"router.timeouts.conect\"");
	load_fails("{\"addons\": {\"redis\": {}}}", "t.json: unknown key \"addons.redis\"");
	/* A dotted key is not a path. */
	load_fails("{\"router.listen\": \"1.2.3.4:80\"}", "t.json: unknown key \"router.listen\"");
	load_fails("{\"router\": {\"timeouts.idle\": \"5s\"}}",
	           "t.json: unknown key \"router.timeouts.idle\"");
	load_fails("{\"\": 1}", "t.json: unknown key \"\"");
	/* Hostile keys are quoted and cut. */
	load_fails("{\"a\\nb\": 1}", "t.json: unknown key \"a\\x0ab\"");
}

static void test_wrong_types(void **state)
{
	load_fails("[]", "t.json: expected a JSON object at the top level, got a list");
	load_fails("{\"router\": 1}", "t.json: router: expected an object, got an integer");
	load_fails("{\"router\": {\"timeouts\": {\"connect\": 5}}}",
	           "t.json: router.timeouts.connect: expected a string like \"30s\", got an "
	           "integer");
	load_fails("{\"slugs\": {\"max_unpacked\": true}}",
	           "t.json: slugs.max_unpacked: expected a string like \"512M\", got true");
	load_fails("{\"router\": {\"external\": \"yes\"}}",
	           "t.json: router.external: expected true or false, got a string");
	load_fails("{\"logs\": {\"lines\": 1.5}}",
	           "t.json: logs.lines: expected an integer from 1 to 1000000, got a number");
	load_fails("{\"logs\": {\"lines\": 0}}",
	           "t.json: logs.lines: 0 is out of range: expected an integer from 1 to 1000000");
	load_fails("{\"slugs\": {\"max_entries\": -1}}",
	           "t.json: slugs.max_entries: -1 is out of range: *");
	load_fails("{\"config_vars\": {\"max_size\": \"512\"}}",
	           "t.json: config_vars.max_size: \"512\" is out of range: *");
	load_fails("{\"slugs\": {\"keep_unpacked\": 101}}",
	           "t.json: slugs.keep_unpacked: 101 is out of range: expected an integer from 0 to 100");
	load_fails("{\"cgroup_parent\": \"a/b\"}", "t.json: cgroup_parent: invalid value \"a/b\"*");
	load_fails("{\"router\": {\"max_inflight_per_dyno\": 0}}",
	           "t.json: router.max_inflight_per_dyno: 0 is out of range: *");
	load_fails("{\"host_reserve\": {\"pids\": -1}}",
	           "t.json: host_reserve.pids: -1 is out of range: *");
	load_fails("{\"state_dir\": null}",
	           "t.json: state_dir: expected an absolute path, got null");
	load_fails("{\"state_dir\": \"var/lib\"}",
	           "t.json: state_dir: invalid value \"var/lib\": expected an absolute path");
	load_fails(
	    "{\"api_socket\": \"/"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
	    "t.json: api_socket: invalid value \"/aaa*");
	load_fails("{\"api_group\": \"Ops\"}", "t.json: api_group: invalid value \"Ops\": *");
	load_fails("{\"domain\": \"a..b\"}", "t.json: domain: invalid value \"a..b\": *");
	load_fails("{\"domain\": \"-a.com\"}", "t.json: domain: invalid value \"-a.com\": *");
	load_fails("{\"stack\": \"\"}", "t.json: stack: invalid value \"\": must not be empty");
	load_fails("{\"addons\": {\"postgresql\": {\"mode\": \"cloud\"}}}",
	           "t.json: addons.postgresql.mode: invalid value \"cloud\": expected "
	           "\"embedded\" or \"external\"");
	load_fails("{\"addons\": {\"postgresql\": {\"mode\": 1}}}",
	           "t.json: addons.postgresql.mode: expected \"embedded\" or \"external\", got an "
	           "integer");
	load_fails("{\"addons\": {\"postgresql\": {\"url\": 5}}}",
	           "t.json: addons.postgresql.url: expected null or a string like "
	           "\"postgres://user@host:5432/db\", got an integer");
	load_fails("{\"addons\": {\"postgresql\": {\"url\": \"mysql://x\"}}}",
	           "t.json: addons.postgresql.url: invalid value \"mysql://x\": expected a "
	           "postgres:// or postgresql:// URL");
	load_fails("{\"addons\": {\"postgresql\": {\"mode\": \"external\"}}}",
	           "t.json: addons.postgresql.url: needed when addons.postgresql.mode is "
	           "\"external\"");
}

static void test_bad_durations_and_sizes(void **state)
{
	load_fails("{\"router\": {\"timeouts\": {\"connect\": \"5x\"}}}",
	           "t.json: router.timeouts.connect: invalid duration \"5x\": missing or unknown "
	           "unit (use us, ms, s, m or h)");
	load_fails("{\"dyno\": {\"timeouts\": {\"stop\": \"30\"}}}",
	           "t.json: dyno.timeouts.stop: invalid duration \"30\": *");
	load_fails(
	    "{\"router\": {\"timeouts\": {\"idle\": \"0s\"}}}",
	    "t.json: router.timeouts.idle: \"0s\" is out of range: expected from 1ms to 24h");
	load_fails("{\"router\": {\"health\": {\"interval\": \"2h\"}}}",
	           "t.json: router.health.interval: \"2h\" is out of range: expected from 10ms "
	           "to 1h");
	load_fails("{\"dyno\": {\"cooloff\": {\"first\": \"30m\"}}}",
	           "t.json: dyno.cooloff.max: 20m is less than dyno.cooloff.first (30m)");
	load_fails("{\"slugs\": {\"max_compressed\": \"1X\"}}",
	           "t.json: slugs.max_compressed: invalid size \"1X\": unknown unit \"X\" (use K, "
	           "M, G or T)");
	load_fails("{\"slugs\": {\"max_compressed\": \"12\"}}",
	           "t.json: slugs.max_compressed: \"12\" is out of range: expected from 1M to 1P");
	load_fails("{\"slugs\": {\"max_compressed\": \"1\\t2\"}}",
	           "t.json: slugs.max_compressed: invalid value \"1\\x092\": contains a control "
	           "character");
}

static void test_bad_listen(void **state)
{
	static const char *const bad[][2] = {
	    {"localhost:80", "expected ADDR:PORT with an IPv4 dotted quad or a [bracketed] "
	                     "IPv6 address"},
	    {"1.2.3:80", "expected ADDR:PORT *"},
	    {"1.2.3.4", "missing \":PORT\""},
	    {"1.2.3.4:0", "expected a port number from 1 to 65535 after the last ':'"},
	    {"1.2.3.4:65536", "expected a port number *"},
	    {"1.2.3.4:123456", "expected a port number *"},
	    {"1.2.3.4:+80", "expected a port number *"},
	    {"1.2.3.4:", "expected a port number *"},
	    {"::1:80", "IPv6 addresses need brackets, like \"[::1]:8080\""},
	    {"[::1]80", "expected ADDR:PORT *"},
	    {"[zz::1]:80", "invalid IPv6 address in brackets"},
	    {"[fe80::1%eth0]:80", "invalid IPv6 address in brackets"},
	    {"[1.2.3.4]:80", "invalid IPv6 address in brackets"},
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		char json[256], want[512];
		snprintf(json, sizeof(json), "{\"router\": {\"listen\": \"%s\"}}", bad[i][0]);
		snprintf(want, sizeof(want), "t.json: router.listen: invalid address \"%s\": %s",
		         bad[i][0], bad[i][1]);
		load_fails(json, want);
	}
	load_fails("{\"router\": {\"listen\": [\"1.2.3.4:80\", \"1.2.3.4\"]}}",
	           "t.json: router.listen[1]: invalid address \"1.2.3.4\": missing \":PORT\"");
	load_fails("{\"router\": {\"listen\": [\"1.2.3.4:80\", 80]}}",
	           "t.json: router.listen[1]: expected a string like \"0.0.0.0:8080\", got an "
	           "integer");
	load_fails("{\"router\": {\"listen\": []}}",
	           "t.json: router.listen: expected from 1 to 16 addresses, got 0");
	load_fails("{\"router\": {\"listen\": 8080}}",
	           "t.json: router.listen: expected a string like \"0.0.0.0:8080\" or a list of "
	           "them, got an integer");
	load_fails("{\"router\": {\"admin_listen\": [\"127.0.0.1:1\"]}}",
	           "t.json: router.admin_listen: expected a string like \"127.0.0.1:8081\", got a "
	           "list");
	/* 16 is the most. */
	char json[1024] = "{\"router\": {\"listen\": [";
	for (int i = 0; i < 17; i++) {
		char a[32];
		snprintf(a, sizeof(a), "%s\"127.0.0.1:%d\"", i ? ", " : "", 1000 + i);
		strcat(json, a);
		if (i == 15) {
			char ok[1024];
			snprintf(ok, sizeof(ok), "%s]}}", json);
			_cleanup_config_ struct config *cfg = load_ok(ok);
			assert_int_equal(cfg->router.listen.n, 16);
			assert_int_equal(ntohs(cfg->router.listen.addr[15].sa.in.sin_port), 1015);
		}
	}
	strcat(json, "]}}");
	load_fails(json, "t.json: router.listen: expected from 1 to 16 addresses, got 17");
}

static void test_ranges(void **state)
{
	load_fails("{\"uids\": {\"first\": 999}}",
	           "t.json: uids.first: 999 is out of range: expected an integer from 1000 to "
	           "4294967293");
	load_fails("{\"uids\": {\"count\": 0}}", "t.json: uids.count: 0 is out of range: *");
	load_fails("{\"uids\": {\"first\": 4294967000, \"count\": 295}}",
	           "t.json: uids: first + count must be at most 4294967294 (got 4294967000 + 295)");
	_cleanup_config_ struct config *cfg =
	    load_ok("{\"uids\": {\"first\": 4294967000, \"count\": 294}}");
	assert_int_equal(cfg->uids.first + cfg->uids.count, 4294967294u);
	load_fails("{\"network\": {\"subnet\": \"10.213.0.0/7\"}}",
	           "t.json: network.subnet: invalid subnet \"10.213.0.0/7\": expected a prefix "
	           "length from 8 to 28");
	load_fails("{\"network\": {\"subnet\": \"10.213.0.0/29\"}}",
	           "t.json: network.subnet: invalid subnet \"10.213.0.0/29\": *");
	load_fails("{\"network\": {\"subnet\": \"10.213.0.1/16\"}}",
	           "t.json: network.subnet: invalid subnet \"10.213.0.1/16\": host bits are set "
	           "(the network is 10.213.0.0/16)");
	load_fails("{\"network\": {\"subnet\": \"10.213.0.0\"}}",
	           "t.json: network.subnet: invalid subnet \"10.213.0.0\": expected an IPv4 "
	           "A.B.C.D/PREFIX");
	load_fails("{\"network\": {\"subnet\": \"fd00::/16\"}}",
	           "t.json: network.subnet: invalid subnet \"fd00::/16\": *");
}

static void test_invalid_json(void **state)
{
	load_fails("{\n  \"domain\": \"x\",\n  \"stack\": \n}",
	           "t.json: invalid JSON at line 4, column 1: *");
	load_fails("", "t.json: invalid JSON at line 1, column 0: *");
	load_fails("{} {}", "t.json: invalid JSON at line 1, column 4: *");
	load_fails("{\"domain\": \"a\", \"domain\": \"b\"}",
	           "t.json: invalid JSON at line 1, column *");
	/* Not NUL-terminated: only len bytes are read. */
	struct config *cfg = NULL;
	assert_int_equal(config_load_string("{}garbage", 2, NULL, &cfg, NULL), 0);
	config_free(cfg);
	struct dy_error *err = NULL;
	assert_true(config_load_string("{", 1, NULL, &cfg, &err) < 0);
	assert_non_null(strstr(dy_error_msg(err), "config: invalid JSON"));
	dy_error_free(&err);
	config_free(NULL);
}

static void test_load_files(void **state)
{
	struct config *cfg = NULL;
	struct dy_error *err = NULL;
	assert_int_equal(config_load("/nonexistent/dynod.json", &cfg, &err), -ENOENT);
	assert_string_equal(dy_error_msg(err),
	                    "open /nonexistent/dynod.json: No such file or directory");
	dy_error_free(&err);

	assert_true(config_load("/", &cfg, &err) < 0);
	assert_string_equal(dy_error_msg(err), "/: not a regular file");
	dy_error_free(&err);

	char path[] = "/tmp/test-config-XXXXXX";
	_cleanup_close_ int fd = mkostemp(path, O_CLOEXEC);
	assert_true(fd >= 0);
	const char *json = "{\"router\": {\"timeouts\": {\"connect\": \"5x\"}}}";
	assert_int_equal(write(fd, json, strlen(json)), (ssize_t)strlen(json));
	assert_true(config_load(path, &cfg, &err) < 0);
	char want[256];
	snprintf(want, sizeof(want), "%s: router.timeouts.connect: invalid duration \"5x\": *",
	         path);
	assert_int_equal(strncmp(dy_error_msg(err), want, strlen(want) - 1), 0);
	dy_error_free(&err);

	/* Over 1 MiB: refused before parsing. */
	assert_int_equal(ftruncate(fd, CONFIG_MAX_FILE_SIZE + 1), 0);
	assert_true(config_load(path, &cfg, &err) < 0);
	snprintf(want, sizeof(want), "%s: too large (more than 1048576 bytes)", path);
	assert_string_equal(dy_error_msg(err), want);
	dy_error_free(&err);
	unlink(path);
	assert_null(cfg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_default_path),
	    cmocka_unit_test(test_shipped_config),
	    cmocka_unit_test(test_overrides),
	    cmocka_unit_test(test_sizes_replace_table),
	    cmocka_unit_test(test_unknown_keys),
	    cmocka_unit_test(test_wrong_types),
	    cmocka_unit_test(test_bad_durations_and_sizes),
	    cmocka_unit_test(test_bad_listen),
	    cmocka_unit_test(test_ranges),
	    cmocka_unit_test(test_invalid_json),
	    cmocka_unit_test(test_load_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
