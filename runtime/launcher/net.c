/* A dyno's network through libnl-route and libnftables; see net.h. */
#include "runtime/launcher/net.h"

#include <unistd.h>

#include <fcntl.h>

#include <arpa/inet.h>
#include <linux/if.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/route.h>
#include <nftables/libnftables.h>
#include <pthread.h>
#include <sys/socket.h>
#include <linux/rtnetlink.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/sha256.h"

void net_veth_name(const char *id, char name[NET_IFNAME_LEN])
{
	char hex[DY_SHA256_HEX_LEN + 1];
	dy_sha256_hex_of(id, strlen(id), hex);
	snprintf(name, NET_IFNAME_LEN, "dy-%.12s", hex);
}

struct in_addr net_gateway(struct in_addr subnet)
{
	return (struct in_addr){htonl(ntohl(subnet.s_addr) + 1)};
}

DY_DEFINE_CLEANUP(struct nl_sock *, nl_socket_free, nl_sockp)
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

/* Starts run on several threads: one pick at a time. The round-robin
 * keeps two starts apart before either has its route (the pick after the
 * last one handed out). */
static pthread_mutex_t alloc_lock = PTHREAD_MUTEX_INITIALIZER;

static int alloc_address_locked(struct in_addr subnet, uint8_t prefix, struct in_addr *ret,
                                struct dy_error **err);

int net_alloc_address(struct in_addr subnet, uint8_t prefix, struct in_addr *ret,
                      struct dy_error **err)
{
	pthread_mutex_lock(&alloc_lock);
	int r = alloc_address_locked(subnet, prefix, ret, err);
	pthread_mutex_unlock(&alloc_lock);
	return r;
}

/* The round-robin's place: the last address handed out. */
static struct {
	uint32_t net, size, last;
} rr;

/* 1 when a /32 route names a (host order), 0 when none does, < 0 when the
 * kernel could not say. One FIB lookup (RTM_F_FIB_MATCH: the route that
 * matched, not a clone for the destination) instead of a dump of every
 * route: a dump per start costs O(dynos). */
static int addr_routed(uint32_t a)
{
	struct {
		struct nlmsghdr h;
		struct rtmsg r;
		struct rtattr dst;
		uint32_t addr;
	} q;
	memset(&q, 0, sizeof(q));
	q.h.nlmsg_len = sizeof(q);
	q.h.nlmsg_type = RTM_GETROUTE;
	q.h.nlmsg_flags = NLM_F_REQUEST;
	q.h.nlmsg_seq = 1;
	q.r.rtm_family = AF_INET;
	q.r.rtm_dst_len = 32;
	q.r.rtm_flags = RTM_F_FIB_MATCH;
	q.dst.rta_type = RTA_DST;
	q.dst.rta_len = RTA_LENGTH(sizeof(uint32_t));
	q.addr = htonl(a);
	char buf[4096];
	ssize_t n = net_nl_ask(&q, sizeof(q), buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	struct nlmsghdr *h = (struct nlmsghdr *)buf;
	if (!NLMSG_OK(h, (unsigned)n))
		return -EIO;
	if (h->nlmsg_type == NLMSG_ERROR) {
		int code = h->nlmsg_len >= NLMSG_LENGTH(sizeof(struct nlmsgerr))
		               ? -((struct nlmsgerr *)NLMSG_DATA(h))->error
		               : EIO;
		/* no route at all to it: free */
		return code == ENETUNREACH || code == EHOSTUNREACH ? 0 : -(code ? code : EIO);
	}
	if (h->nlmsg_type != RTM_NEWROUTE || h->nlmsg_len < NLMSG_LENGTH(sizeof(struct rtmsg)))
		return -EIO;
	struct rtmsg *rm = NLMSG_DATA(h);
	if (rm->rtm_dst_len != 32)
		return 0;
	int len = (int)RTM_PAYLOAD(h);
	for (struct rtattr *at = RTM_RTA(rm); RTA_OK(at, len); at = RTA_NEXT(at, len))
		if (at->rta_type == RTA_DST && RTA_PAYLOAD(at) == 4)
			return memcmp(RTA_DATA(at), &q.addr, 4) == 0;
	return 0;
}

/* After the first pick, the next ones look up a few candidates after the
 * last; a full dump when they are all taken (or the kernel cannot say). */
#define ALLOC_LOOKUPS 64

static int alloc_address_locked(struct in_addr subnet, uint8_t prefix, struct in_addr *ret,
                                struct dy_error **err)
{
	if (prefix < 8 || prefix > 30)
		return dy_error(err, "subnet prefix /%u out of range", prefix);
	uint32_t net = ntohl(subnet.s_addr), size = 1u << (32 - prefix), cands = size - 3;
	if (rr.net == net && rr.size == size && rr.last >= 2) {
		for (uint32_t k = 0; k < ALLOC_LOOKUPS && k < cands; k++) {
			uint32_t i = 2 + (rr.last - 2 + 1 + k) % cands;
			int u = addr_routed(net + i);
			if (u < 0)
				break;
			if (u == 0) {
				ret->s_addr = htonl(net + i);
				rr.last = i;
				return 0;
			}
		}
	}
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
	/* 0 is the network, 1 the gateway, size-1 the broadcast address: the
	 * n candidates are 2 .. size-2. Round-robin from after the last one
	 * handed out (a fresh process: after the highest in use) */
	uint32_t n = c.size - 3, from = 0;
	if (rr.net == c.net && rr.size == c.size && rr.last >= 2) {
		from = rr.last - 2 + 1;
	} else {
		for (uint32_t i = c.size - 2; i >= 2; i--) {
			if (c.used[i]) {
				from = i - 2 + 1;
				break;
			}
		}
	}
	r = dy_error(err, "subnet %s/%u: no free address", inet_ntoa(subnet), prefix);
	for (uint32_t k = 0; k < n; k++) {
		uint32_t i = 2 + (from + k) % n;
		if (!c.used[i]) {
			ret->s_addr = htonl(c.net + i);
			rr.net = c.net;
			rr.size = c.size;
			rr.last = i;
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

/* a/32 on ifindex; one there already is fine when exist_ok. */
static int add_addr_as(struct nl_sock *sk, int ifindex, const char *ifname, struct in_addr a,
                       bool exist_ok, struct dy_error **err)
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
	if (r < 0 && !(exist_ok && r == -NLE_EXIST))
		return dy_error(err, "address %s on %s: %s", inet_ntoa(a), ifname, nl_geterror(r));
	return 0;
}

static int add_addr(struct nl_sock *sk, int ifindex, const char *ifname, struct in_addr a,
                    struct dy_error **err)
{
	return add_addr_as(sk, ifindex, ifname, a, false, err);
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
void net_disable_ipv6(const char *ifname)
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

/* The veth pair veth <-> "eth0" in pid's network namespace, with the MACs
 * given (rtnl_link_veth_add() would leave random ones). */
static int veth_add(struct nl_sock *sk, const char *veth, pid_t pid, const unsigned char host[6],
                    const unsigned char dyno[6], struct dy_error **err)
{
	struct rtnl_link *link = rtnl_link_veth_alloc();
	struct nl_addr *hm = nl_addr_build(AF_LLC, host, 6);
	struct nl_addr *dm = nl_addr_build(AF_LLC, dyno, 6);
	int r;
	if (!link || !hm || !dm) {
		r = dy_error_errno(err, ENOMEM, "veth %s", veth);
		goto out;
	}
	struct rtnl_link *peer = rtnl_link_veth_get_peer(link);
	rtnl_link_set_name(link, veth);
	rtnl_link_set_addr(link, hm);
	rtnl_link_set_name(peer, "eth0");
	rtnl_link_set_addr(peer, dm);
	rtnl_link_set_ns_pid(peer, pid);
	rtnl_link_put(peer);
	r = rtnl_link_add(sk, link, NLM_F_CREATE | NLM_F_EXCL);
	if (r < 0)
		r = dy_error(err, "veth %s: %s", veth, nl_geterror(r));
out:
	rtnl_link_put(link);
	nl_addr_put(hm);
	nl_addr_put(dm);
	return r;
}

/* A permanent neighbour entry a -> mac on ifindex. */
static int add_neigh(struct nl_sock *sk, int ifindex, const char *ifname, struct in_addr a,
                     const unsigned char mac[6], struct dy_error **err)
{
	struct rtnl_neigh *n = rtnl_neigh_alloc();
	struct nl_addr *dst = addr4(a, 32);
	struct nl_addr *ll = nl_addr_build(AF_LLC, mac, 6);
	int r = 0;
	if (!n || !dst || !ll) {
		r = dy_error_errno(err, ENOMEM, "neighbour %s on %s", inet_ntoa(a), ifname);
		goto out;
	}
	rtnl_neigh_set_ifindex(n, ifindex);
	rtnl_neigh_set_family(n, AF_INET);
	rtnl_neigh_set_dst(n, dst);
	rtnl_neigh_set_lladdr(n, ll);
	rtnl_neigh_set_state(n, NUD_PERMANENT);
	r = rtnl_neigh_add(sk, n, NLM_F_CREATE | NLM_F_REPLACE);
	if (r < 0)
		r = dy_error(err, "neighbour %s on %s: %s", inet_ntoa(a), ifname, nl_geterror(r));
out:
	rtnl_neigh_put(n);
	nl_addr_put(dst);
	nl_addr_put(ll);
	return r;
}

int net_host_setup(const char *veth, pid_t pid, struct in_addr addr, struct in_addr gw,
                   struct dy_error **err)
{
	_cleanup_nl_sock_ struct nl_sock *sk = NULL;
	if (nl_open(&sk, err) < 0)
		return -1;
	unsigned char host_mac[6], dyno_mac[6];
	net_veth_macs(addr, host_mac, dyno_mac);
	if (veth_add(sk, veth, pid, host_mac, dyno_mac, err) < 0)
		return -1;
	net_disable_ipv6(veth);
	struct rtnl_link *link = NULL;
	if (link_up(sk, veth, &link, err) < 0)
		goto fail;
	int ifindex = rtnl_link_get_ifindex(link);
	rtnl_link_put(link);
	if (add_addr(sk, ifindex, veth, gw, err) < 0)
		goto fail;
	if (add_route(sk, ifindex, addr, 32, (struct in_addr){0}, err) < 0)
		goto fail;
	if (add_neigh(sk, ifindex, veth, addr, dyno_mac, err) < 0)
		goto fail;
	return 0;
fail:
	net_link_delete(veth, NULL);
	return -1;
}

/* Makes the gateway link: a dummy, or (a kernel without the dummy
 * driver) a veth pair whose peer stays here, up, unused. */
static int gateway_link_add(struct nl_sock *sk, struct dy_error **err)
{
	struct rtnl_link *link = rtnl_link_alloc();
	if (!link)
		return dy_error_errno(err, ENOMEM, "rtnl_link_alloc");
	rtnl_link_set_name(link, NET_GATEWAY_LINK);
	int r = rtnl_link_set_type(link, "dummy");
	if (r >= 0)
		r = rtnl_link_add(sk, link, NLM_F_CREATE | NLM_F_EXCL);
	rtnl_link_put(link);
	if (r >= 0)
		return 0;
	r = rtnl_link_veth_add(sk, NET_GATEWAY_LINK, NET_GATEWAY_LINK "-p", getpid());
	if (r < 0)
		return dy_error(err, "link %s (dummy, then veth): %s", NET_GATEWAY_LINK,
		                nl_geterror(r));
	struct rtnl_link *peer = NULL;
	if (link_up(sk, NET_GATEWAY_LINK "-p", &peer, err) < 0)
		return -1;
	rtnl_link_put(peer);
	return 0;
}

int net_gateway_setup(struct in_addr subnet, uint8_t prefix, struct dy_error **err)
{
	_cleanup_nl_sock_ struct nl_sock *sk = NULL;
	if (nl_open(&sk, err) < 0)
		return -1;
	struct rtnl_link *link = NULL;
	if (rtnl_link_get_kernel(sk, 0, NET_GATEWAY_LINK, &link) < 0) {
		if (gateway_link_add(sk, err) < 0)
			return -1;
		net_disable_ipv6(NET_GATEWAY_LINK);
	} else {
		rtnl_link_put(link);
	}
	if (link_up(sk, NET_GATEWAY_LINK, &link, err) < 0)
		return -1;
	int ifindex = rtnl_link_get_ifindex(link);
	rtnl_link_put(link);
	if (add_addr_as(sk, ifindex, NET_GATEWAY_LINK, net_gateway(subnet), true, err) < 0)
		return -1;
	/* the rules that keep everyone but dynos and the host itself away */
	return net_rules_init(subnet, prefix, err);
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

/* Conntrack entries through ctnetlink, with libnl's core (no
 * libnetfilter_conntrack): a dump of the IPv4 table, then a delete of each
 * entry with addr in its original or reply tuple. */
struct ct_flush {
	struct in_addr addr;
	struct nl_msg **del; /* delete requests, made while dumping */
	size_t n, cap;
	int err;
};

static bool tuple_has(struct nlattr *tuple, struct in_addr a)
{
	struct nlattr *t[CTA_TUPLE_MAX + 1], *ip[CTA_IP_MAX + 1];
	if (!tuple || nla_parse_nested(t, CTA_TUPLE_MAX, tuple, NULL) < 0 || !t[CTA_TUPLE_IP] ||
	    nla_parse_nested(ip, CTA_IP_MAX, t[CTA_TUPLE_IP], NULL) < 0)
		return false;
	for (int k = CTA_IP_V4_SRC; k <= CTA_IP_V4_DST; k++)
		if (ip[k] && nla_len(ip[k]) == 4 && nla_get_u32(ip[k]) == a.s_addr)
			return true;
	return false;
}

static int ct_entry(struct nl_msg *msg, void *arg)
{
	struct ct_flush *c = arg;
	struct nlattr *tb[CTA_MAX + 1];
	if (nlmsg_parse(nlmsg_hdr(msg), sizeof(struct nfgenmsg), tb, CTA_MAX, NULL) < 0 ||
	    !tb[CTA_TUPLE_ORIG])
		return NL_OK;
	if (!tuple_has(tb[CTA_TUPLE_ORIG], c->addr) && !tuple_has(tb[CTA_TUPLE_REPLY], c->addr))
		return NL_OK;
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 16;
		struct nl_msg **d = realloc(c->del, cap * sizeof(*d));
		if (!d) {
			c->err = -ENOMEM;
			return NL_STOP;
		}
		c->del = d;
		c->cap = cap;
	}
	struct nfgenmsg g = {.nfgen_family = AF_INET, .version = NFNETLINK_V0};
	struct nl_msg *d = nlmsg_alloc_simple((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE,
	                                      NLM_F_REQUEST | NLM_F_ACK);
	if (!d || nlmsg_append(d, &g, sizeof(g), NLMSG_ALIGNTO) < 0 ||
	    nla_put(d, CTA_TUPLE_ORIG, nla_len(tb[CTA_TUPLE_ORIG]), nla_data(tb[CTA_TUPLE_ORIG])) <
	        0 ||
	    (tb[CTA_ZONE] &&
	     nla_put(d, CTA_ZONE, nla_len(tb[CTA_ZONE]), nla_data(tb[CTA_ZONE])) < 0)) {
		nlmsg_free(d);
		c->err = -ENOMEM;
		return NL_STOP;
	}
	c->del[c->n++] = d;
	return NL_OK;
}

int net_conntrack_flush(struct in_addr addr, size_t *ret_n, struct dy_error **err)
{
	/* the dump walks the whole (global) hash table, entry or not: about
	 * 6 ms with 262144 buckets. No entry in this namespace, nothing to
	 * walk for. */
	char count[32] = "";
	int cfd = open("/proc/sys/net/netfilter/nf_conntrack_count", O_RDONLY | O_CLOEXEC);
	if (cfd >= 0) {
		ssize_t n = read(cfd, count, sizeof(count) - 1);
		close(cfd);
		if (n > 0 && strtoul(count, NULL, 10) == 0) {
			if (ret_n)
				*ret_n = 0;
			return 0;
		}
	}
	_cleanup_nl_sock_ struct nl_sock *sk = nl_socket_alloc();
	if (!sk)
		return dy_error_errno(err, ENOMEM, "netlink socket");
	int r = nl_connect(sk, NETLINK_NETFILTER);
	if (r < 0)
		return dy_error(err, "ctnetlink: %s", nl_geterror(r));
	struct ct_flush c = {addr, NULL, 0, 0, 0};
	struct nfgenmsg g = {.nfgen_family = AF_INET, .version = NFNETLINK_V0};
	nl_socket_modify_cb(sk, NL_CB_VALID, NL_CB_CUSTOM, ct_entry, &c);
	r = nl_send_simple(sk, (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET, NLM_F_DUMP, &g,
	                   sizeof(g));
	if (r >= 0)
		r = nl_recvmsgs_default(sk);
	if (r < 0 || c.err < 0) {
		r = r < 0 ? dy_error(err, "ctnetlink dump: %s", nl_geterror(r))
		          : dy_error_errno(err, -c.err, "ctnetlink dump");
		goto out;
	}
	size_t done = 0;
	for (size_t i = 0; i < c.n; i++) {
		r = nl_send_auto(sk, c.del[i]);
		if (r >= 0)
			r = nl_wait_for_ack(sk);
		/* gone meanwhile (timed out, or a duplicate) is fine */
		if (r < 0 && r != -NLE_OBJ_NOTFOUND) {
			r = dy_error(err, "ctnetlink delete: %s", nl_geterror(r));
			goto out;
		}
		if (r >= 0)
			done++;
	}
	r = 0;
	if (ret_n)
		*ret_n = done;
out:
	for (size_t i = 0; i < c.n; i++)
		nlmsg_free(c.del[i]);
	free(c.del);
	return r;
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

/* The one context is shared by dynod's loop (clean-ups) and the thread
 * that starts dynos (launch.h, "Threads"): one command at a time. */
static pthread_mutex_t nft_lock = PTHREAD_MUTEX_INITIALIZER;

static int nft_run_locked(const char *cmds, bool missing_ok, struct dy_error **err);

static int nft_run(const char *cmds, bool missing_ok, struct dy_error **err)
{
	pthread_mutex_lock(&nft_lock);
	int r = nft_run_locked(cmds, missing_ok, err);
	pthread_mutex_unlock(&nft_lock);
	return r;
}

static int nft_run_locked(const char *cmds, bool missing_ok, struct dy_error **err)
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

/* Runs a listing command; *ret is its output (free it). Returns 0, or < 0
 * (quietly) when it fails, e.g. the object is missing. */
static int nft_list_locked(const char *cmd, char **ret);

static int nft_list(const char *cmd, char **ret)
{
	pthread_mutex_lock(&nft_lock);
	int r = nft_list_locked(cmd, ret);
	pthread_mutex_unlock(&nft_lock);
	return r;
}

static int nft_list_locked(const char *cmd, char **ret)
{
	struct nft_ctx *ctx = nft_ctx_get();
	if (!ctx)
		return -1;
	int r = nft_run_cmd_from_buffer(ctx, cmd);
	const char *out = nft_ctx_get_output_buffer(ctx);
	nft_ctx_get_error_buffer(ctx);
	if (r != 0)
		return -1;
	*ret = strdup(out ? out : "");
	return *ret ? 0 : -1;
}

/* The input chain: a dyno's packets reach the host only through its own
 * chain (its gateway ports) or as replies to the host's connections. */
static const char input_rules[] =
    "add rule inet dyno input iifname \"dy-*\" iifname vmap @dynos\n"
    "add rule inet dyno input iifname \"dy-*\" ct state established,related accept\n"
    "add rule inet dyno input iifname \"dy-*\" drop\n";

/* The forward chain's rules, and the egress NAT: a dyno's packets leave
 * (masqueraded) only when its veth is in @egress, and never to the
 * addresses of NET_EGRESS_DENY nor to the dyno subnet (%s/%u, twice), but
 * for DNS to the host's resolvers (the first %s: that rule, or nothing),
 * which are often private addresses (a cloud's resolver). */
static const char forward_rules[] =
    "add rule inet dyno forward iifname \"dy-*\" iifname vmap @dynos\n"
    /* a gateway port forwarded elsewhere (net_forward_port) that the
     * dyno's own chain did not accept */
    "add rule inet dyno forward iifname \"dy-*\" ct status dnat drop\n"
    "add rule inet dyno forward iifname \"dy-*\" oifname \"dy-*\" drop\n"
    "%s"
    "add rule inet dyno forward iifname \"dy-*\" ip daddr { " NET_EGRESS_DENY " } drop\n"
    "add rule inet dyno forward iifname \"dy-*\" ip daddr %s/%u drop\n"
    "add rule inet dyno forward iifname \"dy-*\" iifname vmap @egress\n"
    "add rule inet dyno forward oifname \"dy-*\" ct state established,related accept\n"
    "add rule inet dyno forward iifname \"dy-*\" drop\n"
    "add rule inet dyno forward oifname \"dy-*\" drop\n"
    "add table ip dyno-nat\n"
    "add chain ip dyno-nat postrouting { type nat hook postrouting priority 100; policy "
    "accept; }\n"
    "flush chain ip dyno-nat postrouting\n"
    "add rule ip dyno-nat postrouting ip saddr %s/%u oifname != \"dy-*\" masquerade\n";

/* ARP from a dyno's veth goes through its chain in table arp dyno. */
static const char arp_rules[] =
    "add table arp dyno\n"
    "add map arp dyno dynos { type ifname : verdict; }\n"
    "add chain arp dyno input { type filter hook input priority -10; policy accept; }\n"
    "flush chain arp dyno input\n"
    /* Ethernet and IPv4 only, the same for every dyno: here once, so
     * that a dyno's own chain is one rule */
    "add rule arp dyno input iifname \"dy-*\" arp htype != 1 drop\n"
    "add rule arp dyno input iifname \"dy-*\" arp ptype != ip drop\n"
    "add rule arp dyno input iifname \"dy-*\" arp hlen != 6 drop\n"
    "add rule arp dyno input iifname \"dy-*\" arp plen != 4 drop\n"
    "add rule arp dyno input iifname \"dy-*\" iifname vmap @dynos\n";

/* The host's IPv4 resolvers (/etc/resolv.conf, which dynos get a copy
 * of) as an nftables set's elements, "a, b", into buf; empty when none.
 * Loopback ones are left out: a dyno's 127.0.0.1 is its own. */
static void resolvers(char *buf, size_t size)
{
	struct in_addr seen[8];
	size_t n_seen = 0;
	buf[0] = '\0';
	FILE *f = fopen("/etc/resolv.conf", "re");
	if (!f)
		return;
	char line[256];
	while (n_seen < ELEMENTSOF(seen) && fgets(line, sizeof(line), f)) {
		char ns[64];
		struct in_addr a;
		if (sscanf(line, " nameserver %63s", ns) != 1 || inet_pton(AF_INET, ns, &a) != 1)
			continue;
		uint32_t h = ntohl(a.s_addr);
		bool dup = (h >> 24) == 127 || (h >> 24) == 0;
		for (size_t i = 0; i < n_seen && !dup; i++)
			dup = seen[i].s_addr == a.s_addr;
		if (dup)
			continue;
		seen[n_seen++] = a;
		size_t n = strlen(buf);
		inet_ntop(AF_INET, &a, ns, sizeof(ns));
		snprintf(buf + n, size - n, "%s%s", n ? ", " : "", ns);
	}
	fclose(f);
}

/* The ports of the global set @ports of an older launcher ("5432,6379,"),
 * or NULL when there is no such set. */
static char *old_ports(void)
{
	_cleanup_free_ char *out = NULL;
	if (nft_list("list set inet dyno ports", &out) < 0)
		return NULL;
	size_t cap = strlen(out) + 1;
	char *ports = calloc(1, cap);
	if (!ports)
		return NULL;
	const char *p = strstr(out, "elements = {");
	if (!p)
		return ports;
	for (p += strlen("elements = {"); *p && *p != '}'; p++) {
		if (*p >= '0' && *p <= '9') {
			char *end;
			unsigned long v = strtoul(p, &end, 10);
			size_t n = strlen(ports);
			snprintf(ports + n, cap - n, "%lu,", v);
			p = end - 1;
		}
	}
	return ports;
}

/* An older launcher's table: gateway ports in one global set @ports,
 * open to every dyno. Its dynos (their chains d-<hex>) keep those ports,
 * in their own chain now; the set goes. Appended to f. */
static void migrate_ports(FILE *f, const char *gws)
{
	_cleanup_free_ char *ports = old_ports();
	if (!ports)
		return;
	size_t n = strlen(ports);
	if (n > 0)
		ports[n - 1] = '\0'; /* the last comma */
	_cleanup_free_ char *table = NULL;
	if (n > 0 && nft_list("list table inet dyno", &table) == 0) {
		for (const char *p = table; (p = strstr(p, "chain d-")); p++) {
			const char *name = p + strlen("chain ");
			size_t len = strcspn(name, " {\n");
			fprintf(f, "add rule inet dyno %.*s ip daddr %s tcp dport { %s } accept\n",
			        (int)len, name, gws, ports);
		}
	}
	fputs("delete set inet dyno ports\n", f);
}

static int rules_init_once(struct in_addr subnet, uint8_t prefix, struct dy_error **err);

int net_rules_init(struct in_addr subnet, uint8_t prefix, struct dy_error **err)
{
	/* once per process: dynod owns the tables; a ruleset flushed behind
	 * its back comes back with its next start */
	static bool ready;
	/* once per process, before the first start's rules; starts run on
	 * several threads */
	static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_mutex_lock(&init_lock);
	int r = ready ? 0 : rules_init_once(subnet, prefix, err);
	if (r == 0)
		ready = true;
	pthread_mutex_unlock(&init_lock);
	return r;
}

static int rules_init_once(struct in_addr subnet, uint8_t prefix, struct dy_error **err)
{
	char gws[INET_ADDRSTRLEN], nets[INET_ADDRSTRLEN];
	struct in_addr gw = net_gateway(subnet);
	inet_ntop(AF_INET, &gw, gws, sizeof(gws));
	inet_ntop(AF_INET, &subnet, nets, sizeof(nets));
	int r = -1;
	/* twice: another launcher may migrate an old table at the same time */
	for (int attempt = 0; attempt < 2 && r < 0; attempt++) {
		_cleanup_free_ char *buf = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&buf, &len);
		if (!f)
			return dy_error_errno(err, ENOMEM, "open_memstream");
		/* The base chains are redone in one transaction, so a table of
		 * an older launcher gets this layout. Priority -10: before other
		 * filter chains, so a permissive host ruleset cannot open a
		 * dyno's way to the host. Live dynos keep their chains and map
		 * elements. */
		fputs("add table inet dyno\n"
		      "add map inet dyno dynos { type ifname : verdict; }\n"
		      "add map inet dyno egress { type ifname : verdict; }\n"
		      "add chain inet dyno input { type filter hook input priority -10; policy "
		      "accept; }\n"
		      "add chain inet dyno forward { type filter hook forward priority -10; policy "
		      "accept; }\n"
		      "flush chain inet dyno input\n"
		      "flush chain inet dyno forward\n",
		      f);
		fputs(input_rules, f);
		/* the gateway answers dynos (above) and the host itself only;
		 * the host's own connections to a gateway port forwarded
		 * elsewhere (net_forward_port) come back to the gateway from
		 * that link: replies, which only the host's can be (a dyno's
		 * source address is its own) */
		fprintf(f,
		        "add rule inet dyno input ip daddr %s ct direction reply ct status dnat "
		        "accept\n",
		        gws);
		fprintf(f, "add rule inet dyno input ip daddr %s iifname != \"lo\" drop\n", gws);
		char ns[512], dns[640] = "";
		resolvers(ns, sizeof(ns));
		if (ns[0])
			snprintf(dns, sizeof(dns),
			         "add rule inet dyno forward iifname \"dy-*\" ip daddr { %s } meta "
			         "l4proto { tcp, udp } th dport 53 iifname vmap @egress\n",
			         ns);
		fprintf(f, forward_rules, dns, nets, prefix, nets, prefix);
		fputs(arp_rules, f);
		migrate_ports(f, gws);
		if (fclose(f) != 0)
			return dy_error_errno(err, ENOMEM, "open_memstream");
		r = nft_run(buf, false, attempt == 0 ? NULL : err);
	}
	return r < 0 ? -1 : 0;
}

int net_rules_add(const char *veth, struct in_addr addr, struct in_addr gw, const uint16_t *ports,
                  size_t n_ports, bool egress, struct dy_error **err)
{
	char as[INET_ADDRSTRLEN], gws[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &addr, as, sizeof(as));
	inet_ntop(AF_INET, &gw, gws, sizeof(gws));
	/* veth is "dy-<hex>": the chains are "d-<hex>", flushed after "add":
	 * a chain left by a dyno of the same id (a failed clean-up) must not
	 * keep its rules (its address) */
	const char *hex = veth + 3;
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return dy_error_errno(err, ENOMEM, "open_memstream");
	fprintf(f,
	        "add chain inet dyno d-%s\n"
	        "flush chain inet dyno d-%s\n"
	        "add rule inet dyno d-%s ip saddr != %s drop\n"
	        "add rule inet dyno d-%s meta nfproto ipv6 drop\n",
	        hex, hex, hex, as, hex);
	if (n_ports > 0) {
		/* the gateway is a local address: only input sees these */
		fprintf(f, "add rule inet dyno d-%s ip daddr %s tcp dport { ", hex, gws);
		for (size_t i = 0; i < n_ports; i++)
			fprintf(f, "%s%u", i ? ", " : "", ports[i]);
		fputs(" } accept\n", f);
		/* the same port forwarded to another server (net_forward_port):
		 * the address and port the dyno asked for, before the DNAT */
		fprintf(f,
		        "add rule inet dyno d-%s meta l4proto tcp ct status dnat ct original ip "
		        "daddr %s ct original proto-dst { ",
		        hex, gws);
		for (size_t i = 0; i < n_ports; i++)
			fprintf(f, "%s%u", i ? ", " : "", ports[i]);
		fputs(" } accept\n", f);
	}
	fprintf(f, "add element inet dyno dynos { \"%s\" : jump d-%s }\n", veth, hex);
	if (egress)
		fprintf(f, "add element inet dyno egress { \"%s\" : accept }\n", veth);
	/* ARP: the sender must be the dyno's own address (Ethernet, IPv4) */
	fprintf(f,
	        "add chain arp dyno d-%s\n"
	        "flush chain arp dyno d-%s\n"
	        "add rule arp dyno d-%s arp saddr ip != %s drop\n"
	        "add element arp dyno dynos { \"%s\" : jump d-%s }\n",
	        hex, hex, hex, as, veth, hex);
	if (fclose(f) != 0)
		return dy_error_errno(err, ENOMEM, "open_memstream");
	return nft_run(buf, false, err);
}

int net_rules_del(const char *veth, int egress, struct dy_error **err)
{
	/* one transaction each: the element may be gone while the chain is not
	 * (and a table of an older launcher has no arp table) */
	static const char *const elements[] = {"inet dyno egress", "inet dyno dynos",
	                                       "arp dyno dynos"};
	static const char *const chains[] = {"inet dyno", "arp dyno"};
	/* Everything in one transaction (one cache fill and commit): a
	 * deletion's commit waits for an RCU grace period (~15 ms here,
	 * whatever it holds), and so does a failed one. So the egress element
	 * is in it when the dyno has one; when that is not known (a sweep), it
	 * goes first on its own, missing being fine. A missing piece fails a
	 * transaction as a whole: then one by one. */
	char all[640], buf[128];
	if (egress < 0) {
		snprintf(buf, sizeof(buf), "delete element inet dyno egress { \"%s\" }", veth);
		if (nft_run(buf, true, err) < 0)
			return -1;
	}
	snprintf(all, sizeof(all),
	         "%s%s%s"
	         "delete element inet dyno dynos { \"%s\" }\n"
	         "delete element arp dyno dynos { \"%s\" }\n"
	         "delete chain inet dyno d-%s\n"
	         "delete chain arp dyno d-%s\n",
	         egress > 0 ? "delete element inet dyno egress { \"" : "", egress > 0 ? veth : "",
	         egress > 0 ? "\" }\n" : "", veth, veth, veth + 3, veth + 3);
	if (nft_run(all, false, NULL) == 0)
		return 0;
	int r = 0;
	for (size_t i = egress < 0 ? 1 : 0; i < ELEMENTSOF(elements); i++) {
		snprintf(buf, sizeof(buf), "delete element %s { \"%s\" }", elements[i], veth);
		if (nft_run(buf, true, r < 0 ? NULL : err) < 0)
			r = -1;
	}
	for (size_t i = 0; i < ELEMENTSOF(chains); i++) {
		snprintf(buf, sizeof(buf), "delete chain %s d-%s", chains[i], veth + 3);
		if (nft_run(buf, true, r < 0 ? NULL : err) < 0)
			r = -1;
	}
	return r;
}

int net_forward_port(struct in_addr gw, uint16_t port, struct in_addr to, uint16_t to_port,
                     struct dy_error **err)
{
	char gws[INET_ADDRSTRLEN], tos[INET_ADDRSTRLEN], cmds[1024];
	inet_ntop(AF_INET, &gw, gws, sizeof(gws));
	inet_ntop(AF_INET, &to, tos, sizeof(tos));
	/* prerouting: the dynos' connections; output: the host's own (psql
	 * on an app's URL); one transaction, a table left by an earlier
	 * dynod (a kill -9) redone */
	snprintf(cmds, sizeof(cmds),
	         "add table ip " NET_FORWARD_TABLE "\n"
	         "add chain ip " NET_FORWARD_TABLE " prerouting { type nat hook prerouting "
	         "priority -100; policy accept; }\n"
	         "add chain ip " NET_FORWARD_TABLE " output { type nat hook output priority -100; "
	         "policy accept; }\n"
	         "flush chain ip " NET_FORWARD_TABLE " prerouting\n"
	         "flush chain ip " NET_FORWARD_TABLE " output\n"
	         "add rule ip " NET_FORWARD_TABLE " prerouting iifname \"dy-*\" ip daddr %s tcp "
	         "dport %u dnat to %s:%u\n"
	         "add rule ip " NET_FORWARD_TABLE
	         " output ip daddr %s tcp dport %u dnat to %s:%u\n",
	         gws, port, tos, to_port, gws, port, tos, to_port);
	return nft_run(cmds, false, err);
}

int net_forward_port_del(struct dy_error **err)
{
	return nft_run("delete table ip " NET_FORWARD_TABLE "\n", true, err);
}
