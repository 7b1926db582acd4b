/* dyno-router [--config FILE] [--routes FILE] [--listen ADDR:PORT]...
 *             [--admin ADDR:PORT] [--log-socket PATH|none]
 *
 * Reads the router part and state_dir of dynod's configuration, routes from
 * <state_dir>/routes.json (watched), and serves until SIGTERM or SIGINT,
 * after which it finishes the requests in flight (at most 10 s) and exits.
 * SIGHUP reloads the routes. Sockets handed over by dynod (LISTEN_FDS,
 * the admin one named "admin" in LISTEN_FDNAMES) are used instead of
 * binding router.listen and router.admin_listen. A missing state dir is
 * waited for (route-watch.h). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/config.h"
#include "common/log.h"
#include "common/loop.h"
#include "router/admin.h"
#include "router/fair.h"
#include "router/listener.h"
#include "router/proxy.h"
#include "router/rlog.h"
#include "router/route-watch.h"
#include "router/routes.h"

#define MAX_LISTENERS  (CONFIG_MAX_LISTEN + 1)
#define SHUTDOWN_GRACE (10ull * 1000 * 1000)

struct router {
	struct loop *loop;
	struct config *cfg;
	struct proxy *px;
	struct rlog *log;
	struct admin *admin;
	struct route_watch *watch;
	struct lsn *lsn[MAX_LISTENERS];
	size_t nlsn;
	struct lsn *admin_lsn;
	struct loop_signal sig;
	struct loop_timer grace;
	char *routes_path;
	bool stopping;
};

static void reload(void *data)
{
	struct router *rt = data;
	_cleanup_error_ struct dy_error *err = NULL;
	struct route_table *t = NULL;
	struct metrics *m = proxy_metrics(rt->px);
	if (route_table_load(rt->routes_path, rt->cfg->domain, proxy_table(rt->px),
	                     proxy_route_hooks(rt->px), &t, &err) < 0) {
		m->reload_errors++;
		dy_log("router", "routes not reloaded, keeping version %lld: %s",
		       (long long)proxy_table(rt->px)->version, dy_error_msg(err));
		return;
	}
	m->reloads++;
	proxy_set_table(rt->px, t);
	dy_log("router", "routes version %lld loaded: %zu apps", (long long)t->version, t->napps);
}

static void on_grace(struct loop *loop, struct loop_timer *t)
{
	loop_stop(loop);
}

static void on_signal(struct loop *loop, struct loop_signal *sig, int signo,
                      const struct signalfd_siginfo *info)
{
	struct router *rt = loop_container_of(sig, struct router, sig);
	if (signo == SIGHUP) {
		reload(rt);
		return;
	}
	if (rt->stopping) {
		loop_stop(loop); /* a second signal: stop now */
		return;
	}
	rt->stopping = true;
	dy_log("router", "stopping: finishing the requests in flight");
	for (size_t i = 0; i < rt->nlsn; i++) {
		lsn_free(rt->lsn[i]);
		rt->lsn[i] = NULL;
	}
	rt->nlsn = 0;
	loop_timer_start(loop, &rt->grace, SHUTDOWN_GRACE, NULL);
	proxy_shutdown(rt->px);
}

static void on_client(void *data, int fd, const struct sockaddr *peer, unsigned port)
{
	proxy_accept(data, fd, peer, port);
}

static void usage(FILE *f)
{
	fputs("usage: dyno-router [--config FILE] [--routes FILE] [--listen ADDR:PORT]...\n"
	      "                   [--admin ADDR:PORT] [--log-socket PATH|none]\n",
	      f);
}

/* Raises the soft RLIMIT_NOFILE to the hard limit: 10k idle clients and
 * their dynos need far more than 1024 fds. Returns the limit in force (the
 * proxy keeps a floor of it free, router/fair.h), 0 when unknown. */
static uint64_t raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 0;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit up = {.rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max};
		if (setrlimit(RLIMIT_NOFILE, &up) == 0)
			rl = up;
	}
	if (rl.rlim_cur == RLIM_INFINITY)
		return 0;
	return (uint64_t)rl.rlim_cur;
}

static int run(int argc, char **argv)
{
	const char *config_path = NULL, *routes = NULL, *admin_addr = NULL, *log_socket = NULL;
	const char *listen_addrs[CONFIG_MAX_LISTEN];
	size_t nlisten = 0;
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"routes", required_argument, NULL, 'r'},
	    {"listen", required_argument, NULL, 'l'},
	    {"admin", required_argument, NULL, 'a'},
	    {"log-socket", required_argument, NULL, 's'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	int o;
	while ((o = getopt_long(argc, argv, "c:r:l:a:s:h", opts, NULL)) != -1) {
		switch (o) {
		case 'c':
			config_path = optarg;
			break;
		case 'r':
			routes = optarg;
			break;
		case 'l':
			if (nlisten == CONFIG_MAX_LISTEN) {
				fprintf(stderr, "dyno-router: too many --listen\n");
				return 2;
			}
			listen_addrs[nlisten++] = optarg;
			break;
		case 'a':
			admin_addr = optarg;
			break;
		case 's':
			log_socket = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	_cleanup_error_ struct dy_error *err = NULL;
	_cleanup_free_ char *log_path = NULL;
	struct router rt = {0};
	int status = 1;
	signal(SIGPIPE, SIG_IGN);
	uint64_t nofile = raise_nofile();
	if (nofile > 0)
		dy_log("router", "open files limit %llu, %llu kept free from any one app",
		       (unsigned long long)nofile, (unsigned long long)fair_fd_floor(nofile));
	if (config_load(config_path, &rt.cfg, &err) < 0)
		goto out;
	if (routes)
		rt.routes_path = strdup(routes);
	else if (asprintf(&rt.routes_path, "%s/routes.json", rt.cfg->state_dir) < 0)
		rt.routes_path = NULL;
	if (log_socket == NULL) {
		if (asprintf(&log_path, "%s/log.sock", rt.cfg->state_dir) < 0)
			log_path = NULL;
	} else if (strcmp(log_socket, "none") != 0) {
		log_path = strdup(log_socket);
	}
	if (rt.routes_path == NULL) {
		dy_error_errno(&err, ENOMEM, "routes path");
		goto out;
	}
	if (loop_new(&rt.loop, &err) < 0)
		goto out;
	loop_timer_init(&rt.grace, on_grace);
	if (rlog_new(rt.loop, STDOUT_FILENO, log_path, &rt.log, &err) < 0)
		goto out;
	const struct proxy_config pcfg = {
	    .connect_timeout = rt.cfg->router.timeouts.connect,
	    .first_byte_timeout = rt.cfg->router.timeouts.first_byte,
	    .idle_timeout = rt.cfg->router.timeouts.idle,
	    .head_timeout = rt.cfg->router.timeouts.request_head,
	    .health_interval = rt.cfg->router.health.interval,
	    .rise = rt.cfg->router.health.rise,
	    .fall = rt.cfg->router.health.fall,
	    .max_inflight_per_dyno = rt.cfg->router.max_inflight_per_dyno,
	    .queue_per_dyno = rt.cfg->router.queue_per_dyno,
	    .max_connections_per_app = rt.cfg->router.max_connections_per_app,
	    .fd_limit = nofile,
	    .domain = rt.cfg->domain,
	};
	if (proxy_new(rt.loop, &pcfg, rt.log, &rt.px, &err) < 0)
		goto out;
	if (admin_new(rt.loop, rt.px, rt.log, &rt.admin, &err) < 0)
		goto out;

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (loop_signal_start(rt.loop, &rt.sig, &mask, on_signal, &err) < 0)
		goto out;

	if (route_watch_start(rt.loop, rt.routes_path, reload, &rt, &rt.watch, &err) < 0)
		goto out;
	reload(&rt);

	int fds[MAX_LISTENERS];
	int admin_fd = -1;
	size_t nfds = lsn_inherited(fds, MAX_LISTENERS, &admin_fd);
	if (nfds == 0) {
		for (size_t i = 0; i < (nlisten ? nlisten : rt.cfg->router.listen.n); i++) {
			struct config_addr a;
			const struct config_addr *ap = &rt.cfg->router.listen.addr[i];
			if (nlisten) {
				memset(&a, 0, sizeof(a));
				struct sockaddr_storage ss;
				socklen_t sl;
				if (route_parse_addr(listen_addrs[i], &ss, &sl) < 0) {
					dy_error(&err, "--listen %s: not ADDR:PORT",
					         listen_addrs[i]);
					goto out;
				}
				memcpy(&a.sa, &ss, sl);
				a.sa_len = sl;
				snprintf(a.text, sizeof(a.text), "%s", listen_addrs[i]);
				ap = &a;
			}
			int fd = lsn_bind(&ap->sa.sa, ap->sa_len, ap->text, &err);
			if (fd < 0)
				goto out;
			fds[nfds++] = fd;
		}
	}
	for (size_t i = 0; i < nfds; i++) {
		if (lsn_start(rt.loop, fds[i], on_client, rt.px, &rt.lsn[rt.nlsn], &err) < 0) {
			for (size_t k = i + 1; k < nfds; k++)
				close(fds[k]);
			if (admin_fd >= 0)
				close(admin_fd);
			goto out;
		}
		dy_log("router", "listening on port %u", lsn_port(rt.lsn[rt.nlsn]));
		rt.nlsn++;
	}
	if (admin_fd >= 0) {
		if (lsn_start(rt.loop, admin_fd, admin_accept, rt.admin, &rt.admin_lsn, &err) < 0)
			goto out;
		dy_log("router", "admin listening on port %u", lsn_port(rt.admin_lsn));
	} else {
		struct config_addr a = rt.cfg->router.admin_listen;
		if (admin_addr) {
			struct sockaddr_storage ss;
			socklen_t sl;
			if (route_parse_addr(admin_addr, &ss, &sl) < 0) {
				dy_error(&err, "--admin %s: not ADDR:PORT", admin_addr);
				goto out;
			}
			memcpy(&a.sa, &ss, sl);
			a.sa_len = sl;
			snprintf(a.text, sizeof(a.text), "%s", admin_addr);
		}
		int fd = lsn_bind(&a.sa.sa, a.sa_len, a.text, &err);
		if (fd < 0)
			goto out;
		if (lsn_start(rt.loop, fd, admin_accept, rt.admin, &rt.admin_lsn, &err) < 0)
			goto out;
		dy_log("router", "admin listening on port %u", lsn_port(rt.admin_lsn));
	}

	if (loop_run(rt.loop, &err) < 0)
		goto out;
	status = 0;
out:
	if (err)
		fprintf(stderr, "dyno-router: error: %s\n", dy_error_msg(err));
	for (size_t i = 0; i < rt.nlsn; i++)
		lsn_free(rt.lsn[i]);
	lsn_free(rt.admin_lsn);
	if (rt.loop)
		loop_signal_stop(rt.loop, &rt.sig);
	route_watch_free(rt.watch);
	admin_free(rt.admin);
	proxy_free(rt.px);
	if (rt.loop)
		loop_timer_stop(rt.loop, &rt.grace);
	loop_free(rt.loop);
	rlog_free(rt.log);
	free(rt.routes_path);
	config_free(rt.cfg);
	return status;
}

int main(int argc, char **argv)
{
	return run(argc, argv);
}
