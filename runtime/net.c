/* A dyno's network through libnl-route and libnftables; see net.h. */
#include "runtime/net.h"

#include <unistd.h>

#include <fcntl.h>

#include <arpa/inet.h>
#include <linux/if.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>
#include <nftables/libnftables.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/sha256.h"

void net_veth_name(const char *id, char name[NET_IFNAME_LEN])
{
	struct dy_sha256 s;
	uint8_t d[DY_SHA256_LEN];
	char hex[DY_SHA256_HEX_LEN + 1];
	dy_sha256_init(&s);
	dy_sha256_update(&s, id, strlen(id));
	dy_sha256_final(&s, d);
	dy_sha256_hex(d, hex);
	snprintf(name, NET_IFNAME_LEN, "dy-%.12s", hex);
}

struct in_addr net_gateway(struct in_addr subnet)
{
	return (struct in_addr){htonl(ntohl(subnet.s_addr) + 1)};
}

static void nl_sockp(struct nl_sock **sk)
{
	if (*sk)
		nl_socket_free(*sk);
	*sk = NULL;
}
#define _cleanup_nl_sock_ _cleanup_(nl_sockp)

static int nl_open(struct nl_sock **ret, struct dy_error **err)
{
	struct nl_sock *sk = nl_socket_alloc();
	if (!sk)
		return dy_error_errno(err, ENOMEM, "netlink socket");
	int r = nl_connect(sk, NETLINK_ROUTE);
	if (r < 0) {
		nl_socket_free(sk);
		return dy_error(err, "netlink connect: %s", nl_geterror(r));
	}
	*ret = sk;
	return 0;
}

static struct nl_addr *addr4(struct in_addr a, int prefix)
{
	struct nl_addr *na = nl_addr_build(AF_INET, &a, sizeof(a));
	if (na)
		nl_addr_set_prefixlen(na, prefix);
	return na;
}

struct alloc_ctx {
	uint32_t net, size;
	uint8_t *used;
};

static void mark_route(struct nl_object *obj, void *arg)
{
	struct alloc_ctx *c = arg;
	struct nl_addr *dst = rtnl_route_get_dst((struct rtnl_route *)obj);
	if (!dst || nl_addr_get_family(dst) != AF_INET || nl_addr_get_prefixlen(dst) != 32)
		return;
	uint32_t a;
	memcpy(&a, nl_addr_get_binary_addr(dst), 4);
	a = ntohl(a);
	if (a - c->net < c->size)
		c->used[a - c->net] = 1;
}

int net_alloc_address(struct in_addr subnet, uint8_t prefix, struct in_addr *ret,
                      struct dy_error **err)
{
	if (prefix < 8 || prefix > 30)
		return dy_error(err, "subnet prefix /%u out of range", prefix);
	_cleanup_nl_sock_ struct nl_sock *sk = NULL;
	if (nl_open(&sk, err) < 0)
		return -1;
	struct nl_cache *cache = NULL;
	int r = rtnl_route_alloc_cache(sk, AF_INET, 0, &cache);
	if (r < 0)
		return dy_error(err, "list routes: %s", nl_geterror(r));
	struct alloc_ctx c = {ntohl(subnet.s_addr), 1u << (32 - prefix), NULL};
	c.used = calloc(c.size, 1);
	if (!c.used) {
		nl_cache_free(cache);
		return dy_error_errno(err, ENOMEM, "calloc");
	}
	nl_cache_foreach(cache, mark_route, &c);
	nl_cache_free(cache);
	r = dy_error(err, "subnet %s/%u: no free address", inet_ntoa(subnet), prefix);
	/* 0 is the network, 1 the gateway, size-1 the broadcast address */
	for (uint32_t i = 2; i + 1 < c.size; i++) {
		if (!c.used[i]) {
			ret->s_addr = htonl(c.net + i);
			if (err && *err)
				dy_error_free(err);
			r = 0;
			break;
		}
	}
	free(c.used);
	return r;
}

static int link_up(struct nl_sock *sk, const char *name, struct rtnl_link **ret,
                   struct dy_error **err)
{
	struct rtnl_link *link = NULL;
	int r = rtnl_link_get_kernel(sk, 0, name, &link);
	if (r < 0)
		return dy_error(err, "link %s: %s", name, nl_geterror(r));
	struct rtnl_link *change = rtnl_link_alloc();
	if (!change) {
		rtnl_link_put(link);
		return dy_error_errno(err, ENOMEM, "rtnl_link_alloc");
	}
	rtnl_link_set_flags(change, IFF_UP);
	r = rtnl_link_change(sk, link, change, 0);
	rtnl_link_put(change);
	if (r < 0) {
		rtnl_link_put(link);
		return dy_error(err, "link %s up: %s", name, nl_geterror(r));
	}
	*ret = link;
	return 0;
}

static int add_addr(struct nl_sock *sk, int ifindex, const char *ifname, struct in_addr a,
                    struct dy_error **err)
{
	struct rtnl_addr *ra = rtnl_addr_alloc();
	struct nl_addr *local = addr4(a, 32);
	if (!ra || !local) {
		rtnl_addr_put(ra);
		nl_addr_put(local);
		return dy_error_errno(err, ENOMEM, "rtnl_addr_alloc");
	}
	rtnl_addr_set_ifindex(ra, ifindex);
	rtnl_addr_set_local(ra, local);
	rtnl_addr_set_prefixlen(ra, 32);
	int r = rtnl_addr_add(sk, ra, 0);
	rtnl_addr_put(ra);
	nl_addr_put(local);
	if (r < 0)
		return dy_error(err, "address %s on %s: %s", inet_ntoa(a), ifname, nl_geterror(r));
	return 0;
}

/* A route to dst/plen through ifindex: via gw (onlink) when gw is not 0,
 * else scope link. */
static int add_route(struct nl_sock *sk, int ifindex, struct in_addr dst, int plen,
                     struct in_addr gw, struct dy_error **err)
{
	struct rtnl_route *rt = rtnl_route_alloc();
	struct rtnl_nexthop *nh = rtnl_route_nh_alloc();
	struct nl_addr *d = addr4(dst, plen);
	struct nl_addr *g = gw.s_addr ? addr4(gw, 32) : NULL;
	int r;
	if (!rt || !nh || !d || (gw.s_addr && !g)) {
		r = dy_error_errno(err, ENOMEM, "rtnl_route_alloc");
		goto out;
	}
	rtnl_route_set_family(rt, AF_INET);
	rtnl_route_set_table(rt, RT_TABLE_MAIN);
	rtnl_route_set_protocol(rt, RTPROT_STATIC);
	rtnl_route_set_dst(rt, d);
	rtnl_route_nh_set_ifindex(nh, ifindex);
	if (g) {
		rtnl_route_nh_set_gateway(nh, g);
		rtnl_route_nh_set_flags(nh, RTNH_F_ONLINK);
		rtnl_route_set_scope(rt, RT_SCOPE_UNIVERSE);
	} else {
		rtnl_route_set_scope(rt, RT_SCOPE_LINK);
	}
	rtnl_route_add_nexthop(rt, nh);
	nh = NULL; /* owned by rt now */
	r = rtnl_route_add(sk, rt, NLM_F_CREATE | NLM_F_EXCL);
	if (r < 0) {
		char b[64];
		snprintf(b, sizeof(b), "%s/%d", inet_ntoa(dst), plen);
		r = dy_error(err, "route %s: %s", b, nl_geterror(r));
	}
out:
	if (nh)
		rtnl_route_nh_free(nh);
	if (rt)
		rtnl_route_put(rt);
	nl_addr_put(d);
	nl_addr_put(g);
	return r;
}

/* IPv6 off on a dyno's links (both ends): the nftables table drops it,
 * and this holds even if that table were flushed: no link-local address,
 * no router advertisement from a dyno taken by the host. Best effort: a
 * kernel without IPv6 has no such file. */
static void disable_ipv6(const char *ifname)
{
	char path[96];
	snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", ifname);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (write(fd, "1", 1) < 0) {
		/* read-only /proc/sys or no IPv6: nftables still drops it */
	}
	close(fd);
}

int net_host_setup(const char *veth, pid_t pid, struct in_addr addr, struct in_addr gw,
                   struct dy_error **err)
{
	_cleanup_nl_sock_ struct nl_sock *sk = NULL;
	if (nl_open(&sk, err) < 0)
		return -1;
	int r = rtnl_link_veth_add(sk, veth, "eth0", pid);
	if (r < 0)
		return dy_error(err, "veth %s: %s", veth, nl_geterror(r));
	disable_ipv6(veth);
	struct rtnl_link *link = NULL;
	if (link_up(sk, veth, &link, err) < 0)
		goto fail;
	int ifindex = rtnl_link_get_ifindex(link);
	rtnl_link_put(link);
	if (add_addr(sk, ifindex, veth, gw, err) < 0)
		goto fail;
	if (add_route(sk, ifindex, addr, 32, (struct in_addr){0}, err) < 0)
		goto fail;
	return 0;
fail:
	net_link_delete(veth, NULL);
	return -1;
}

int net_dyno_early(struct dy_error **err)
{
	_cleanup_nl_sock_ struct nl_sock *sk = NULL;
	if (nl_open(&sk, err) < 0)
		return -1;
	struct rtnl_link *link = NULL;
	if (link_up(sk, "lo", &link, err) < 0)
		return -1;
	rtnl_link_put(link);
	/* "all" also sets "default" and every existing link: eth0 is off
	 * whether the launcher moves it in before or after this */
	disable_ipv6("all");
	disable_ipv6("default");
	return 0;
}

int net_dyno_setup(struct in_addr addr, struct in_addr gw, struct dy_error **err)
{
	_cleanup_nl_sock_ struct nl_sock *sk = NULL;
	if (nl_open(&sk, err) < 0)
		return -1;
	struct rtnl_link *link = NULL;
	if (link_up(sk, "eth0", &link, err) < 0)
		return -1;
	int ifindex = rtnl_link_get_ifindex(link);
	rtnl_link_put(link);
	if (add_addr(sk, ifindex, "eth0", addr, err) < 0)
		return -1;
	return add_route(sk, ifindex, (struct in_addr){0}, 0, gw, err);
}

struct route_of_ctx {
	int ifindex;
	struct in_addr addr;
	bool found;
};

static void match_route(struct nl_object *obj, void *arg)
{
	struct route_of_ctx *c = arg;
	struct rtnl_route *rt = (struct rtnl_route *)obj;
	struct nl_addr *dst = rtnl_route_get_dst(rt);
	if (c->found || !dst || nl_addr_get_family(dst) != AF_INET ||
	    nl_addr_get_prefixlen(dst) != 32 || rtnl_route_get_nnexthops(rt) < 1)
		return;
	if (rtnl_route_nh_get_ifindex(rtnl_route_nexthop_n(rt, 0)) != c->ifindex)
		return;
	memcpy(&c->addr, nl_addr_get_binary_addr(dst), 4);
	c->found = true;
}

int net_route_of(const char *veth, struct in_addr *ret, struct dy_error **err)
{
	_cleanup_nl_sock_ struct nl_sock *sk = NULL;
	if (nl_open(&sk, err) < 0)
		return -1;
	struct rtnl_link *link = NULL;
	int r = rtnl_link_get_kernel(sk, 0, veth, &link);
	if (r < 0)
		return dy_error(err, "link %s: %s", veth, nl_geterror(r));
	struct route_of_ctx c = {rtnl_link_get_ifindex(link), {0}, false};
	rtnl_link_put(link);
	struct nl_cache *cache = NULL;
	r = rtnl_route_alloc_cache(sk, AF_INET, 0, &cache);
	if (r < 0)
		return dy_error(err, "list routes: %s", nl_geterror(r));
	nl_cache_foreach(cache, match_route, &c);
	nl_cache_free(cache);
	if (!c.found)
		return dy_error(err, "no route through %s", veth);
	*ret = c.addr;
	return 0;
}

int net_link_delete(const char *veth, struct dy_error **err)
{
	_cleanup_nl_sock_ struct nl_sock *sk = NULL;
	if (nl_open(&sk, err) < 0)
		return -1;
	struct rtnl_link *link = rtnl_link_alloc();
	if (!link)
		return dy_error_errno(err, ENOMEM, "rtnl_link_alloc");
	rtnl_link_set_name(link, veth);
	int r = rtnl_link_delete(sk, link);
	rtnl_link_put(link);
	if (r < 0 && r != -NLE_NODEV && r != -NLE_OBJ_NOTFOUND)
		return dy_error(err, "delete link %s: %s", veth, nl_geterror(r));
	return 0;
}

/* Runs nftables commands; quiet when ok is set and the command fails with
 * a missing object. */
static struct nft_ctx *nft_ctx_get(void)
{
	/* one context per process: creating one reads nftables' and
	 * iproute2's tables each time (about 1 ms) */
	static struct nft_ctx *ctx;
	if (!ctx) {
		ctx = nft_ctx_new(NFT_CTX_DEFAULT);
		if (ctx) {
			nft_ctx_buffer_output(ctx);
			nft_ctx_buffer_error(ctx);
		}
	}
	return ctx;
}

static int nft_run(const char *cmds, bool missing_ok, struct dy_error **err)
{
	struct nft_ctx *ctx = nft_ctx_get();
	if (!ctx)
		return dy_error(err, "nftables: cannot create a context");
	int r = nft_run_cmd_from_buffer(ctx, cmds);
	if (r != 0) {
		const char *e = nft_ctx_get_error_buffer(ctx);
		if (missing_ok && e && strstr(e, "No such file or directory"))
			r = 0;
		else
			r = dy_error(err, "nftables: %s", e && *e ? e : "failed");
	}
	/* the buffers are read and reset with each call */
	nft_ctx_get_output_buffer(ctx);
	return r;
}

/* The forward chain's rules, and the egress NAT: a dyno's packets leave
 * (masqueraded) only when its veth is in @egress. */
static const char forward_rules[] =
    "add rule inet dyno forward iifname \"dy-*\" iifname vmap @dynos\n"
    "add rule inet dyno forward iifname \"dy-*\" oifname \"dy-*\" drop\n"
    "add rule inet dyno forward iifname \"dy-*\" iifname vmap @egress\n"
    "add rule inet dyno forward oifname \"dy-*\" ct state established,related accept\n"
    "add rule inet dyno forward iifname \"dy-*\" drop\n"
    "add rule inet dyno forward oifname \"dy-*\" drop\n"
    "add table ip dyno-nat\n"
    "add chain ip dyno-nat postrouting { type nat hook postrouting priority 100; policy "
    "accept; }\n"
    "flush chain ip dyno-nat postrouting\n"
    "add rule ip dyno-nat postrouting ip saddr %s/%u oifname != \"dy-*\" masquerade\n";

int net_rules_init(struct in_addr subnet, uint8_t prefix, const uint16_t *ports, size_t n_ports,
                   struct dy_error **err)
{
	char gws[INET_ADDRSTRLEN], nets[INET_ADDRSTRLEN];
	struct in_addr gw = net_gateway(subnet);
	inet_ntop(AF_INET, &gw, gws, sizeof(gws));
	inet_ntop(AF_INET, &subnet, nets, sizeof(nets));
	/* checked once per process: dynod owns the table; a ruleset flushed
	 * behind its back comes back with its next start */
	static bool ready;
	char buf[4096], fwd[1024];
	snprintf(fwd, sizeof(fwd), forward_rules, nets, prefix);
	if (!ready && nft_run("list table inet dyno", false, NULL) != 0) {
		/* priority -10: before other filter chains, so a permissive host
		 * ruleset cannot open a dyno's way to the host */
		snprintf(
		    buf, sizeof(buf),
		    "add table inet dyno\n"
		    "add set inet dyno ports { type inet_service; }\n"
		    "add map inet dyno dynos { type ifname : verdict; }\n"
		    "add map inet dyno egress { type ifname : verdict; }\n"
		    "add chain inet dyno input { type filter hook input priority -10; policy "
		    "accept; }\n"
		    "add chain inet dyno forward { type filter hook forward priority -10; policy "
		    "accept; }\n"
		    "add rule inet dyno input iifname \"dy-*\" iifname vmap @dynos\n"
		    "add rule inet dyno input iifname \"dy-*\" ct state established,related "
		    "accept\n"
		    "add rule inet dyno input iifname \"dy-*\" ip daddr %s tcp dport @ports "
		    "accept\n"
		    "add rule inet dyno input iifname \"dy-*\" drop\n"
		    "%s",
		    gws, fwd);
		if (nft_run(buf, false, err) < 0)
			return -1;
	} else if (!ready && nft_run("list map inet dyno egress", false, NULL) != 0) {
		/* a table of an older launcher: the forward chain is redone */
		snprintf(buf, sizeof(buf),
		         "add map inet dyno egress { type ifname : verdict; }\n"
		         "flush chain inet dyno forward\n"
		         "%s",
		         fwd);
		if (nft_run(buf, false, err) < 0)
			return -1;
	}
	ready = true;
	for (size_t i = 0; i < n_ports; i++) {
		char b[128];
		snprintf(b, sizeof(b), "add element inet dyno ports { %u }", ports[i]);
		if (nft_run(b, false, err) < 0)
			return -1;
	}
	return 0;
}

int net_rules_add(const char *veth, struct in_addr addr, bool egress, struct dy_error **err)
{
	char buf[512], as[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &addr, as, sizeof(as));
	/* veth is "dy-<hex>": the chain is "d-<hex>" */
	int n = snprintf(buf, sizeof(buf),
	                 "add chain inet dyno d-%s\n"
	                 "add rule inet dyno d-%s ip saddr != %s drop\n"
	                 "add rule inet dyno d-%s meta nfproto ipv6 drop\n"
	                 "add element inet dyno dynos { \"%s\" : jump d-%s }\n",
	                 veth + 3, veth + 3, as, veth + 3, veth, veth + 3);
	if (egress)
		snprintf(buf + n, sizeof(buf) - (size_t)n,
		         "add element inet dyno egress { \"%s\" : accept }\n", veth);
	return nft_run(buf, false, err);
}

int net_rules_del(const char *veth, struct dy_error **err)
{
	char buf[256];
	/* one transaction each: the element may be gone while the chain is not */
	snprintf(buf, sizeof(buf), "delete element inet dyno dynos { \"%s\" }", veth);
	int r = nft_run(buf, true, err);
	snprintf(buf, sizeof(buf), "delete element inet dyno egress { \"%s\" }", veth);
	if (nft_run(buf, true, r < 0 ? NULL : err) < 0)
		r = -1;
	snprintf(buf, sizeof(buf), "delete chain inet dyno d-%s", veth + 3);
	if (nft_run(buf, true, r < 0 ? NULL : err) < 0)
		r = -1;
	return r;
}
