/* A dyno's network (docs/design.md, Network): a veth pair per dyno, routed /32.
 *
 * Host side: the veth "dy-<12 hex of sha256(id)>" carries the gateway
 * address (the subnet's first, e.g. 10.213.0.1/32; the same on every dyno's
 * veth) and a /32 route to the dyno's address. Inside: eth0 holds the
 * dyno's address /32 and a default route via the gateway, onlink; lo is up.
 *
 * nftables (libnftables), table `inet dyno`, its base chains (re)done once
 * per process:
 *   input:   from a dyno veth, the dyno's own chain (anti-spoofing: source
 *            must be its address; then its own gateway ports accepted),
 *            then replies to the host's connections, all else dropped: the
 *            host's other services (on any of its addresses) do not answer;
 *            the gateway address answers nothing but dyno veths and lo.
 *   forward: the dyno's own chain (anti-spoofing); between dyno veths,
 *            dropped: dynos cannot reach each other, even when the host
 *            forwards packets; to NET_EGRESS_DENY and the dyno subnet,
 *            dropped; from a dyno to the outside only when its veth is in
 *            @egress (off by default; masqueraded by table ip dyno-nat),
 *            replies back; all else from or to a dyno veth dropped.
 * Table `arp dyno`: ARP from a dyno veth whose sender is not the dyno's
 * address is dropped (its chain d-<hex>).
 * Per dyno: chains "d-<hex>" and their elements in the maps @dynos (both
 * tables), removed with the dyno. */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/error.h"

#define NET_IFNAME_LEN 16

/* "dy-" + 12 hex digits of sha256(id), into name[NET_IFNAME_LEN]. */
void net_veth_name(const char *id, char name[NET_IFNAME_LEN]);

/* The subnet's first address (the gateway), network byte order. */
struct in_addr net_gateway(struct in_addr subnet);

/* Picks an address of subnet/prefix (after the gateway) that no /32 route
 * of this network namespace uses: round-robin, the first free one after
 * the last this process handed out (a fresh process: after the highest in
 * use), wrapping around, so a stopped dyno's address is not handed out
 * again until the subnet has gone round. Returns 0 or < 0. */
int net_alloc_address(struct in_addr subnet, uint8_t prefix, struct in_addr *ret,
                      struct dy_error **err);

/* The MAC addresses of a dyno's veth ends, made from its address (locally
 * administered, unicast): host end 0a:64:A:B:C:D, the dyno's eth0
 * 0a:65:A:B:C:D for the dyno address A.B.C.D. Both sides know them without
 * asking, so each gets a permanent neighbour entry for the other and no
 * ARP is ever resolved on a veth: a dyno takes no room in the kernel's
 * neighbour table (gc_thresh3, 1024 entries host-wide by default, shared
 * by every network namespace; permanent entries do not count). */
static inline void net_veth_macs(struct in_addr addr, unsigned char host[6], unsigned char dyno[6])
{
	const unsigned char *b = (const unsigned char *)&addr.s_addr;
	host[0] = dyno[0] = 0x0a;
	host[1] = 0x64;
	dyno[1] = 0x65;
	for (int i = 0; i < 4; i++)
		host[2 + i] = dyno[2 + i] = b[i];
}

/* Host side: creates the veth pair with its peer "eth0" in the network
 * namespace of pid (MACs of net_veth_macs()), brings the host side up with
 * the gateway address, a route to addr and a permanent neighbour entry for
 * addr. Returns 0, or < 0 with nothing left. */
int net_host_setup(const char *veth, pid_t pid, struct in_addr addr, struct in_addr gw,
                   struct dy_error **err);

/* In the dyno's network namespace, before pivot_root (it writes the
 * namespace's sysctls through the host's /proc; a dyno's /proc/sys is
 * read-only): lo up, IPv6 off for every link. Returns 0 or < 0. */
int net_dyno_early(struct dy_error **err);

/* Writes 1 to /proc/sys/net/ipv6/conf/IFNAME/disable_ipv6 (quietly: a
 * read-only /proc/sys or no IPv6 is fine, nftables drops it anyway). */
void net_disable_ipv6(const char *ifname);

/* Sends the netlink (NETLINK_ROUTE) request req[0..len) on a socket of
 * its own and reads the first answer into buf. Allocates nothing (the
 * child of clone3 uses it). Returns the answer's length, or -errno. */
ssize_t net_nl_ask(const void *req, size_t len, char *buf, size_t cap);

/* Dyno side, once the launcher has moved eth0 in: eth0 up with addr/32,
 * a default route via gw onlink and a permanent neighbour entry for gw
 * (the host end's MAC, net_veth_macs()). Returns 0 or < 0. */
int net_dyno_setup(struct in_addr addr, struct in_addr gw, struct dy_error **err);

/* The dyno address routed through veth (its /32 route), for a dyno
 * re-adopted after the launcher's restart. Returns 0 or < 0. */
int net_route_of(const char *veth, struct in_addr *ret, struct dy_error **err);

/* Deletes the conntrack entries with addr in either direction (a stopped
 * dyno's: no state of its connections is left for the next dyno of that
 * address), through ctnetlink; *ret_n (may be NULL): how many. Returns 0
 * or < 0. */
int net_conntrack_flush(struct in_addr addr, size_t *ret_n, struct dy_error **err);

/* Deletes the link (both ends of a veth). Missing is not an error. */
int net_link_delete(const char *veth, struct dy_error **err);

/* What a dyno with egress never reaches (besides the dyno subnet and the
 * host's own addresses, which only the input chain sees): "this" network,
 * the private ranges (RFC 1918), shared address space (carrier-grade NAT),
 * loopback, link-local (cloud metadata, 169.254.169.254), multicast and
 * reserved. An nftables set. */
#define NET_EGRESS_DENY                                                                            \
	"0.0.0.0/8, 10.0.0.0/8, 100.64.0.0/10, 127.0.0.0/8, 169.254.0.0/16, 172.16.0.0/12, "       \
	"192.168.0.0/16, 224.0.0.0/4, 240.0.0.0/4"

/* Once per process: creates tables inet dyno, arp dyno (and ip dyno-nat)
 * or brings an older launcher's to this layout (its global @ports set goes;
 * its dynos keep those ports in their own chains). The gateway is subnet's
 * first address; egress NAT masquerades subnet/prefix, which egress never
 * reaches. Returns 0 or < 0. */
int net_rules_init(struct in_addr subnet, uint8_t prefix, struct dy_error **err);

/* Adds the dyno's chains and map elements: its packets must come from addr
 * (IPv4 and ARP); tcp to the gateway gw is accepted on ports (n_ports,
 * the ones the platform opens to this dyno) only; with egress, its veth
 * in @egress (packets to the outside are forwarded, masqueraded). Returns
 * 0 or < 0. */
int net_rules_add(const char *veth, struct in_addr addr, struct in_addr gw, const uint16_t *ports,
                  size_t n_ports, bool egress, struct dy_error **err);

/* The host's link that holds the gateway address from dynod's start-up,
 * so a service (the add-on database) can bind it before any dyno runs. */
#define NET_GATEWAY_LINK "dyno-gw"

/* Makes NET_GATEWAY_LINK (a dummy; a veth pair whose peer stays on the
 * host when the kernel has no dummy driver) up with the gateway address
 * /32, unless it is there already, and the nftables tables
 * (net_rules_init()): the gateway answers dynos and the host itself (lo),
 * nothing else. Returns 0 or < 0. */
int net_gateway_setup(struct in_addr subnet, uint8_t prefix, struct dy_error **err);

/* The table of net_forward_port(). */
#define NET_FORWARD_TABLE "dyno-pg"

/* Forwards tcp to the gateway gw on port to to:to_port (a DNAT in table
 * ip NET_FORWARD_TABLE): the connections of the dynos (from their veths;
 * only those whose own chain opens port pass, net_rules_add()) and of
 * the host itself. Replaces an earlier forward. Returns 0 or < 0. */
int net_forward_port(struct in_addr gw, uint16_t port, struct in_addr to, uint16_t to_port,
                     struct dy_error **err);

/* Removes net_forward_port()'s table. Missing is not an error. */
int net_forward_port_del(struct dy_error **err);

/* Removes them (egress: whether the dyno has the egress element, 1 or 0;
 * -1 not known). Missing is not an error. Returns 0 or < 0. */
int net_rules_del(const char *veth, int egress, struct dy_error **err);
