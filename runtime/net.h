/* A dyno's network (DESIGN.md, Network): a veth pair per dyno, routed /32.
 *
 * Host side: the veth "dy-<12 hex of sha256(id)>" carries the gateway
 * address (the subnet's first, e.g. 10.213.0.1/32; the same on every dyno's
 * veth) and a /32 route to the dyno's address. Inside: eth0 holds the
 * dyno's address /32 and a default route via the gateway, onlink; lo is up.
 *
 * nftables (libnftables), table `inet dyno`, created once:
 *   input:   from a dyno veth, the dyno's own chain (anti-spoofing: source
 *            must be its address), then replies to the host's connections,
 *            then the ports the platform opens at the gateway (set @ports),
 *            all else dropped: the host's other services do not answer.
 *   forward: between dyno veths, dropped: dynos cannot reach each other,
 *            even when the host forwards packets; from a dyno to the
 *            outside only when its veth is in @egress (off by default;
 *            masqueraded by table ip dyno-nat), replies back; all else
 *            from or to a dyno veth dropped.
 * Per dyno: chain "d-<hex>" and an element in the map @dynos, removed with
 * the dyno. */
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

/* Picks the lowest address of subnet/prefix (after the gateway) that no
 * /32 route of this network namespace uses. Returns 0 or < 0. */
int net_alloc_address(struct in_addr subnet, uint8_t prefix, struct in_addr *ret,
                      struct dy_error **err);

/* Host side: creates the veth pair with its peer "eth0" in the network
 * namespace of pid, brings the host side up with the gateway address and a
 * route to addr. Returns 0, or < 0 with nothing left. */
int net_host_setup(const char *veth, pid_t pid, struct in_addr addr, struct in_addr gw,
                   struct dy_error **err);

/* In the dyno's network namespace, before its mounts (it writes the
 * namespace's /proc/sys): lo up, IPv6 off for every link. Returns 0 or < 0. */
int net_dyno_early(struct dy_error **err);

/* Dyno side, once the launcher has moved eth0 in: eth0 up with addr/32
 * and a default route via gw onlink. Returns 0 or < 0. */
int net_dyno_setup(struct in_addr addr, struct in_addr gw, struct dy_error **err);

/* The dyno address routed through veth (its /32 route), for a dyno
 * re-adopted after the launcher's restart. Returns 0 or < 0. */
int net_route_of(const char *veth, struct in_addr *ret, struct dy_error **err);

/* Deletes the link (both ends of a veth). Missing is not an error. */
int net_link_delete(const char *veth, struct dy_error **err);

/* Creates table inet dyno (and ip dyno-nat) when missing and puts ports
 * (the ones the platform opens to dynos at the gateway) into @ports. The
 * gateway is subnet's first address; egress NAT masquerades subnet/prefix.
 * Returns 0 or < 0. */
int net_rules_init(struct in_addr subnet, uint8_t prefix, const uint16_t *ports, size_t n_ports,
                   struct dy_error **err);

/* Adds the dyno's chain and map element; with egress, its veth in @egress
 * (packets to the outside are forwarded, masqueraded). Returns 0 or < 0. */
int net_rules_add(const char *veth, struct in_addr addr, bool egress, struct dy_error **err);

/* Removes them. Missing is not an error. Returns 0 or < 0. */
int net_rules_del(const char *veth, struct dy_error **err);
