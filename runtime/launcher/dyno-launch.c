/* dyno-launch: starts one dyno from the command line, waits for it, stops
 * and cleans it. A test and bench tool over liblauncher (dynod links the
 * same library):
 *
 *   dyno-launch --slug-dir D --uid U --name web.1 --id ID [--size standard-1x]
 *               [--memory 64M] [--pids 64] [--port 5000] [--log-sock PATH]
 *               [--gateway-port P]... [--egress] [--env K=V]... [--grace 5]
 *               [--repeat N [--gap MS]] [--burst N] [--pool N] [--init PATH]
 *               [--setup-timeout 10s] -- CMD...
 *   dyno-launch --sweep [--cgroup-parent P]
 *   dyno-launch --adopt PID --id ID [--cgroup-parent P] [--memory M]
 *
 * stdout: one JSON object per event ("running", "oom", "exited"). SIGTERM or
 * SIGINT stops the dyno (SIGTERM, grace, SIGKILL of its cgroup). On an OOM
 * kill the whole dyno is stopped (R15). --repeat N starts and stops the
 * command N times and prints start and teardown times (and the addresses
 * of the first 8 runs: one process hands them out round-robin). --burst N starts N
 * dynos back to back (ids ID-0 .. ID-N-1), as a scale-up does, and stops
 * and cleans them all only afterwards: teardown (a veth delete waits for
 * the network to quiesce) stays off the start path; it prints the start
 * times and the teardown time per dyno. --pool N starts from a warm pool
 * of N prepared dynos (launch.h, "A warm pool"), filled before the first
 * start (and, with --repeat, before each): a dyno's id is then its pool
 * entry's (<ID>-pool-<pid>-<n>), as the "running" event says. --gap MS
 * waits MS milliseconds between --repeat's runs; --repeat prints every
 * start's time, CLOCK_REALTIME at its call ("t0_ns") and its whole cycle,
 * teardown included ("cycle_us"). --hold (one
 * dyno) prints {"event":"pool","ready":N} once the pool is filled and
 * starts the dyno only after a line on stdin. */
#include <arpa/inet.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/config.h"
#include "common/heroku-codes.h"
#include "common/units.h"
#include "runtime/launcher/launch.h"

static struct launch_pool *pool;
static size_t pool_size;

/* Before a measured start: the pool full again (its thread refills it
 * after each take). */
static void pool_fill(void)
{
	if (pool && launch_pool_wait(pool, pool_size, 30 * 1000000ULL) < pool_size) {
		/* the start goes on: from what is ready, else the usual way */
		struct dy_error *e = launch_pool_error(pool);
		fprintf(stderr, "dyno-launch: the pool is not full: %s\n",
		        e ? dy_error_msg(e) : "not within 30 s");
		dy_error_free(&e);
	}
}

static uint64_t now_ns_real(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static int fail(struct dy_error **e)
{
	fprintf(stderr, "dyno-launch: %s\n", dy_error_msg(*e));
	dy_error_free(e);
	return 1;
}

static void usage(void)
{
	fprintf(stderr, "usage: dyno-launch --slug-dir D --uid U --name NAME --id ID [options] -- "
	                "CMD...\n       dyno-launch --sweep [--cgroup-parent P]\n"
	                "       dyno-launch --adopt PID --id ID [--cgroup-parent P]\n");
}

static int run_repeat(const struct launch_params *pp, long repeat, long gap_ms, uint64_t grace);

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* --burst: n starts back to back, then every stop and cleanup. */
static int run_burst(const struct launch_params *base, long n, uint64_t grace)
{
	struct launch_dyno **d = calloc((size_t)n, sizeof(*d));
	uint64_t *start = calloc((size_t)n, sizeof(uint64_t));
	char **ids = calloc((size_t)n, sizeof(*ids));
	char **dyno_ids = calloc((size_t)n, sizeof(*dyno_ids));
	int rc = 0;
	long started = 0;
	if (!d || !start || !ids || !dyno_ids) {
		free(d);
		free(start);
		free(ids);
		free(dyno_ids);
		return 1;
	}
	pool_fill();
	uint64_t t0 = now_us();
	for (long i = 0; i < n; i++) {
		struct launch_params p = *base;
		struct dy_error *e = NULL;
		if (asprintf(&ids[i], "%s-%ld", base->id, i) < 0) {
			ids[i] = NULL;
			rc = 1;
			break;
		}
		p.id = ids[i];
		uint64_t s = now_us();
		if (launch_start(&p, &d[i], &e) < 0) {
			rc = fail(&e);
			break;
		}
		start[i] = now_us() - s;
		dyno_ids[i] = strdup(d[i]->id); /* a pooled one's is its entry's */
		started++;
	}
	uint64_t all_started = now_us() - t0;
	uint64_t t1 = now_us();
	for (long i = 0; i < started; i++) {
		struct dy_error *e = NULL;
		bool killed = false;
		if (launch_poll(d[i], &e) < 0 || launch_stop(d[i], grace, &killed, &e) < 0 ||
		    launch_cleanup(d[i], &e) < 0)
			rc = fail(&e);
		launch_free(d[i]);
	}
	uint64_t teardown = now_us() - t1;
	if (started > 0) {
		printf("{\"event\":\"burst_samples\",\"start_us\":[");
		for (long i = 0; i < started; i++)
			printf("%s%" PRIu64, i ? "," : "", start[i]);
		printf("],\"ids\":[");
		for (long i = 0; i < started; i++)
			printf("%s\"%s\"", i ? "," : "", dyno_ids[i]);
		printf("]}\n");
		for (long i = 0; i < started; i++)
			free(dyno_ids[i]);
		qsort(start, (size_t)started, sizeof(uint64_t), cmp_u64);
		printf("{\"event\":\"burst\",\"runs\":%ld,\"start_median_us\":%" PRIu64
		       ",\"start_max_us\":%" PRIu64 ",\"all_started_us\":%" PRIu64
		       ",\"teardown_per_dyno_us\":%" PRIu64 "}\n",
		       started, start[started / 2], start[started - 1], all_started,
		       teardown / (uint64_t)started);
	}
	for (long i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	free(dyno_ids);
	free(start);
	free(d);
	return rc;
}

static int run_once(const struct launch_params *p, pid_t adopt, uint64_t grace, bool quiet,
                    uint64_t *ret_start, uint64_t *ret_teardown, struct in_addr *ret_addr,
                    uint64_t *ret_t0_ns)
{
	struct dy_error *e = NULL;
	struct launch_dyno *d = NULL;
	char addr[INET_ADDRSTRLEN];
	if (ret_t0_ns)
		*ret_t0_ns = now_ns_real();
	uint64_t t0 = now_us();
	if ((adopt ? launch_adopt(p->cgroup_parent, p->id, adopt, &d, &e)
	           : launch_start(p, &d, &e)) < 0)
		return fail(&e);
	uint64_t t1 = now_us();
	inet_ntop(AF_INET, &d->addr, addr, sizeof(addr));
	if (!quiet) {
		printf("{\"event\":\"%s\",\"id\":\"%s\",\"pid\":%d,\"addr\":\"%s\","
		       "\"veth\":\"%s\",\"cgroup\":\"%s\",\"start_us\":%" PRIu64 "}\n",
		       adopt ? "adopted" : "running", d->id, (int)d->pid, addr, d->veth, d->cg->rel,
		       t1 - t0);
		fflush(stdout);
	}

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	bool oom = false, killed = false;
	int rc = 0;
	uint64_t t2 = 0, last_r14 = 0;
	for (;;) {
		struct pollfd pf[3] = {
		    {d->pidfd, POLLIN, 0}, {d->oom_fd, POLLIN, 0}, {sfd, POLLIN, 0}};
		if (poll(pf, 3, 1000) < 0)
			continue;
		{
			/* an OOM kill anywhere stops the whole dyno, also when it hit
			 * the main process itself (then the dyno has exited). Checked
			 * on every wake-up, not only on the OOM fd: v1 signals the
			 * OOM condition, which may come before the kill is counted */
			int r = launch_check_oom(d, &e);
			if (r < 0)
				rc = fail(&e);
			if (r > 0) {
				oom = true;
				fprintf(stderr, "dyno-launch: %s: " HK_ERROR_FMT "\n", d->id,
				        HK_ERROR_ARGS(HK_R15));
				printf("{\"event\":\"oom\",\"id\":\"%s\"}\n", d->id);
				fflush(stdout);
			}
			if (r != 0 || pf[0].revents) {
				t2 = now_us();
				if (launch_poll(d, &e) < 0)
					rc = fail(&e);
				if (d->exited)
					break;
			}
		}
		if (pf[2].revents) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) < 0)
				continue;
			t2 = now_us();
			if (launch_stop(d, grace, &killed, &e) < 0)
				rc = fail(&e);
			break;
		}
		/* R14: over the quota (anonymous + swap), at most once a minute */
		uint64_t used = 0, now = now_us();
		if (cg_quota_usage(d->cg, p->limits.memory, &used, NULL) == 0 && used > p->limits.memory &&
		    (!last_r14 || now - last_r14 >= 60 * 1000000ULL)) {
			last_r14 = now;
			fprintf(stderr, "dyno-launch: %s: " HK_ERROR_FMT "\n", d->id,
			        HK_ERROR_ARGS(HK_R14));
			printf("{\"event\":\"r14\",\"id\":\"%s\",\"bytes\":%" PRIu64 "}\n", d->id,
			       used);
			fflush(stdout);
		}
	}
	close(sfd);
	uint64_t oom_kills = cg_oom_kills(d->cg);
	if (launch_cleanup(d, &e) < 0)
		rc = fail(&e);
	uint64_t t3 = now_us();
	if (!quiet) {
		printf("{\"event\":\"exited\",\"id\":\"%s\",\"status\":%d,\"oom\":%s,"
		       "\"oom_kills\":%" PRIu64 ",\"killed\":%s,\"teardown_us\":%" PRIu64 "}\n",
		       d->id, d->status, oom ? "true" : "false", oom_kills,
		       killed ? "true" : "false", t3 - t2);
		fflush(stdout);
	}
	if (ret_start)
		*ret_start = t1 - t0;
	if (ret_teardown)
		*ret_teardown = t3 - t2;
	if (ret_addr)
		*ret_addr = d->addr;
	launch_free(d);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"slug-dir", required_argument, NULL, 'd'},
	    {"uid", required_argument, NULL, 'u'},
	    {"gid", required_argument, NULL, 'g'},
	    {"name", required_argument, NULL, 'n'},
	    {"id", required_argument, NULL, 'i'},
	    {"size", required_argument, NULL, 's'},
	    {"memory", required_argument, NULL, 'm'},
	    {"pids", required_argument, NULL, 'P'},
	    {"port", required_argument, NULL, 'p'},
	    {"log-sock", required_argument, NULL, 'l'},
	    {"log-buffer", required_argument, NULL, 'b'},
	    {"gateway-port", required_argument, NULL, 'G'},
	    {"addr", required_argument, NULL, 'a'},
	    {"env", required_argument, NULL, 'e'},
	    {"grace", required_argument, NULL, 't'},
	    {"cgroup-parent", required_argument, NULL, 'c'},
	    {"repeat", required_argument, NULL, 'r'},
	    {"burst", required_argument, NULL, 'B'},
	    {"sweep", no_argument, NULL, 'S'},
	    {"adopt", required_argument, NULL, 'A'},
	    {"egress", no_argument, NULL, 'E'},
	    {"init", required_argument, NULL, 'I'},
	    {"setup-timeout", required_argument, NULL, 'T'},
	    {"pool", required_argument, NULL, 'o'},
	    {"gap", required_argument, NULL, 'y'},
	    {"hold", no_argument, NULL, 'H'},
	    {NULL, 0, NULL, 0},
	};
	struct dy_error *e = NULL;
	_cleanup_config_ struct config *cfg = NULL;
	if (config_load_string("{}", 2, "defaults", &cfg, &e) < 0)
		return fail(&e);
	struct launch_params p = {
	    .subnet = cfg->network.subnet,
	    .subnet_prefix = cfg->network.subnet_prefix,
	    .cgroup_parent = "dyno",
	};
	const char *size = cfg->dyno.default_size;
	uint64_t memory = 0, grace = 5 * 1000000;
	uint32_t pids = 0;
	bool sweep = false, gid_set = false, hold = false;
	long repeat = 0, burst = 0, gap_ms = 0;
	pid_t adopt = 0;
	uint16_t ports[16];
	size_t n_ports = 0;
	char *env[64];
	size_t n_env = 0;
	int c;
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			p.slug_dir = optarg;
			break;
		case 'u':
			p.uid = (uid_t)strtoul(optarg, NULL, 10);
			break;
		case 'g':
			p.gid = (gid_t)strtoul(optarg, NULL, 10);
			gid_set = true;
			break;
		case 'n':
			p.name = optarg;
			break;
		case 'i':
			p.id = optarg;
			break;
		case 's':
			size = optarg;
			break;
		case 'm':
			if (dy_parse_size(optarg, &memory, &e) < 0)
				return fail(&e);
			break;
		case 'P':
			pids = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'p':
			p.port = (uint16_t)strtoul(optarg, NULL, 10);
			break;
		case 'l':
			p.log_sink = optarg;
			break;
		case 'b': {
			uint64_t b;
			if (dy_parse_size(optarg, &b, &e) < 0)
				return fail(&e);
			p.log_buffer = (size_t)b;
			break;
		}
		case 'G':
			if (n_ports < ELEMENTSOF(ports))
				ports[n_ports++] = (uint16_t)strtoul(optarg, NULL, 10);
			break;
		case 'a':
			if (inet_pton(AF_INET, optarg, &p.addr) != 1) {
				fprintf(stderr, "dyno-launch: bad address %s\n", optarg);
				return 2;
			}
			break;
		case 'e':
			if (n_env + 1 < ELEMENTSOF(env))
				env[n_env++] = optarg;
			break;
		case 't':
			grace = (uint64_t)(strtod(optarg, NULL) * 1e6);
			break;
		case 'c':
			p.cgroup_parent = optarg;
			break;
		case 'r':
			repeat = strtol(optarg, NULL, 10);
			break;
		case 'B':
			burst = strtol(optarg, NULL, 10);
			break;
		case 'S':
			sweep = true;
			break;
		case 'E':
			p.egress = true;
			break;
		case 'I':
			p.init_path = optarg;
			break;
		case 'T': {
			uint64_t us;
			if (dy_parse_duration(optarg, &us, &e) < 0)
				return fail(&e);
			p.setup_timeout_usec = us;
			break;
		}
		case 'o':
			pool_size = (size_t)strtoul(optarg, NULL, 10);
			break;
		case 'y':
			gap_ms = strtol(optarg, NULL, 10);
			break;
		case 'H':
			hold = true;
			break;
		case 'A':
			adopt = (pid_t)strtol(optarg, NULL, 10);
			break;
		default:
			usage();
			return 2;
		}
	}
	if (sweep) {
		printf("{\"event\":\"swept\",\"count\":%d}\n", launch_sweep(p.cgroup_parent, NULL));
		return 0;
	}
	if (adopt > 0 && p.id) {
		const struct config_size *asz = config_size_find(cfg, size);
		p.limits.memory = memory ? memory : asz ? asz->memory : 0;
		sigset_t amask;
		sigemptyset(&amask);
		sigaddset(&amask, SIGTERM);
		sigaddset(&amask, SIGINT);
		sigprocmask(SIG_BLOCK, &amask, NULL);
		return run_once(&p, adopt, grace, false, NULL, NULL, NULL, NULL);
	}
	if (optind >= argc || !p.slug_dir || !p.name || !p.id || !p.uid) {
		usage();
		return 2;
	}
	if (!gid_set)
		p.gid = p.uid;
	const struct config_size *sz = config_size_find(cfg, size);
	if (!sz) {
		fprintf(stderr, "dyno-launch: unknown size %s\n", size);
		return 2;
	}
	p.limits.memory = memory ? memory : sz->memory;
	p.limits.pids = pids ? pids : sz->pids;
	p.limits.cpu = sz->cpu;
	env[n_env] = NULL;
	p.env = env;
	p.gateway_ports = ports;
	p.n_gateway_ports = n_ports;

	/* the command: the words after --, joined by spaces */
	size_t len = 1;
	for (int i = optind; i < argc; i++)
		len += strlen(argv[i]) + 1;
	_cleanup_free_ char *cmd = calloc(1, len);
	if (!cmd)
		return 1;
	for (int i = optind; i < argc; i++) {
		if (i > optind)
			strcat(cmd, " ");
		strcat(cmd, argv[i]);
	}
	p.command = cmd;

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);

	/* after the mask: the pool's thread inherits it (signalfd) */
	if (pool_size > 0) {
		const struct config_size *dsz = config_size_find(cfg, cfg->dyno.default_size);
		if (!dsz)
			dsz = sz;
		_cleanup_free_ char *prefix = NULL;
		if (asprintf(&prefix, "%s-", p.id) < 0)
			return 1;
		struct launch_pool_params pp = {
		    .size = pool_size,
		    .cgroup_parent = p.cgroup_parent,
		    .id_prefix = prefix,
		    .subnet = p.subnet,
		    .subnet_prefix = p.subnet_prefix,
		    .init_path = p.init_path,
		    /* the default size's, as dynod's pool: a take writes the
		     * dyno's own over them */
		    .limits = {.memory = dsz->memory, .pids = dsz->pids, .cpu = dsz->cpu},
		    .setup_timeout_usec = p.setup_timeout_usec,
		};
		if (launch_pool_new(&pp, &pool, &e) < 0)
			return fail(&e);
		p.pool = pool;
	}
	int rc;
	if (burst > 0)
		rc = run_burst(&p, burst, grace);
	else if (repeat <= 0) {
		pool_fill();
		if (hold) {
			/* a test's moment to look at (or end) the pool's entries */
			printf("{\"event\":\"pool\",\"ready\":%zu}\n",
			       pool ? launch_pool_wait(pool, 0, 0) : 0);
			fflush(stdout);
			char line[16];
			if (!fgets(line, sizeof(line), stdin))
				return 1;
		}
		rc = run_once(&p, 0, grace, false, NULL, NULL, NULL, NULL);
	} else
		rc = run_repeat(&p, repeat, gap_ms, grace);
	launch_pool_free(pool);
	return rc;
}

/* --repeat: n starts one after the other, each stopped and cleaned before
 * the next. */
static int run_repeat(const struct launch_params *pp, long repeat, long gap_ms, uint64_t grace)
{
	struct launch_params p = *pp;

	uint64_t *start = calloc((size_t)repeat, sizeof(uint64_t));
	uint64_t *down = calloc((size_t)repeat, sizeof(uint64_t));
	uint64_t *raw = calloc((size_t)repeat, sizeof(uint64_t));
	uint64_t *t0_ns = calloc((size_t)repeat, sizeof(uint64_t));
	uint64_t *cycle = calloc((size_t)repeat, sizeof(uint64_t));
	struct in_addr addrs[8];
	if (!start || !down || !raw || !t0_ns || !cycle) {
		free(start);
		free(down);
		free(raw);
		free(t0_ns);
		free(cycle);
		return 1;
	}
	uint64_t t0 = now_us();
	for (long i = 0; i < repeat; i++) {
		struct in_addr a;
		if (gap_ms > 0)
			usleep((useconds_t)gap_ms * 1000);
		pool_fill();
		uint64_t c0 = now_us();
		if (run_once(&p, 0, grace, true, &start[i], &down[i], &a, &t0_ns[i]) != 0) {
			free(start);
			free(down);
			free(raw);
			free(t0_ns);
			free(cycle);
			return 1;
		}
		raw[i] = start[i];
		cycle[i] = now_us() - c0;
		if (i < (long)ELEMENTSOF(addrs))
			addrs[i] = a;
	}
	uint64_t total = now_us() - t0;
	qsort(start, (size_t)repeat, sizeof(uint64_t), cmp_u64);
	qsort(down, (size_t)repeat, sizeof(uint64_t), cmp_u64);
	/* the addresses of the first runs: one after the other (net.h) */
	printf("{\"event\":\"bench\",\"runs\":%ld,\"start_median_us\":%" PRIu64
	       ",\"teardown_median_us\":%" PRIu64 ",\"cycles_per_s\":%.1f,\"addrs\":[",
	       repeat, start[repeat / 2], down[repeat / 2], (double)repeat * 1e6 / (double)total);
	for (long i = 0; i < repeat && i < (long)ELEMENTSOF(addrs); i++)
		printf("%s\"%s\"", i ? "," : "", inet_ntoa(addrs[i]));
	printf("],\"start_us\":[");
	for (long i = 0; i < repeat; i++)
		printf("%s%" PRIu64, i ? "," : "", raw[i]);
	printf("],\"t0_ns\":[");
	for (long i = 0; i < repeat; i++)
		printf("%s%" PRIu64, i ? "," : "", t0_ns[i]);
	printf("],\"cycle_us\":[");
	for (long i = 0; i < repeat; i++)
		printf("%s%" PRIu64, i ? "," : "", cycle[i]);
	printf("]}\n");
	free(start);
	free(down);
	free(raw);
	free(t0_ns);
	free(cycle);
	return 0;
}
