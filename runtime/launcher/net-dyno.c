/* The dyno's side of its network (net.h: net_dyno_early(),
 * net_dyno_setup()), run in the child of clone3: the child of a process
 * with other threads must not allocate (clone3 runs no atfork handler: an
 * allocator lock another thread held at the clone stays held in the child,
 * and its first malloc waits for ever). So no libnl here: ioctls, and
 * netlink messages built on the stack. Only an error allocates (its
 * message), and then the set-up is over anyway. */
#include "runtime/launcher/net.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* name up; its index in *ret_index when not NULL. */
static int if_up(const char *name, int *ret_index, struct dy_error **err)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return dy_error_errno(err, errno, "socket");
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	int r = 0;
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
		r = dy_error_errno(err, errno, "link %s", name);
	} else {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			r = dy_error_errno(err, errno, "link %s up", name);
		else if (ret_index && ioctl(s, SIOCGIFINDEX, &ifr) < 0)
			r = dy_error_errno(err, errno, "link %s", name);
		else if (ret_index)
			*ret_index = ifr.ifr_ifindex;
	}
	close(s);
	return r;
}

struct nl_req {
	struct nlmsghdr h;
	union {
		struct ifaddrmsg a;
		struct rtmsg r;
		struct ndmsg n;
	} body;
	char attrs[64];
};

static void add_attr(struct nl_req *q, unsigned short type, const void *data, unsigned short len)
{
	struct rtattr *rta = (struct rtattr *)((char *)q + NLMSG_ALIGN(q->h.nlmsg_len));
	rta->rta_type = type;
	rta->rta_len = (unsigned short)RTA_LENGTH(len);
	memcpy(RTA_DATA(rta), data, len);
	q->h.nlmsg_len = NLMSG_ALIGN(q->h.nlmsg_len) + RTA_ALIGN(rta->rta_len);
}

ssize_t net_nl_ask(const void *req, size_t len, char *buf, size_t cap)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return -errno;
	struct sockaddr_nl to = {.nl_family = AF_NETLINK};
	ssize_t n = sendto(fd, req, len, 0, (struct sockaddr *)&to, sizeof(to));
	if (n >= 0)
		do
			n = recv(fd, buf, cap, 0);
		while (n < 0 && errno == EINTR);
	int e = errno;
	close(fd);
	return n < 0 ? -e : n;
}

/* Sends q to the kernel and reads its acknowledgement. */
static int talk(struct nl_req *q, const char *what, struct dy_error **err)
{
	q->h.nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	q->h.nlmsg_seq = 1;
	char buf[1024];
	ssize_t n = net_nl_ask(q, q->h.nlmsg_len, buf, sizeof(buf));
	if (n < 0)
		return dy_error_errno(err, (int)-n, "%s", what);
	struct nlmsghdr *a = (struct nlmsghdr *)buf;
	if (!NLMSG_OK(a, (unsigned)n) || a->nlmsg_type != NLMSG_ERROR ||
	    a->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr)))
		return dy_error(err, "%s: the kernel's answer is not an acknowledgement", what);
	int code = -((struct nlmsgerr *)NLMSG_DATA(a))->error;
	return code ? dy_error_errno(err, code, "%s", what) : 0;
}

int net_dyno_early(struct dy_error **err)
{
	if (if_up("lo", NULL, err) < 0)
		return -1;
	/* "all" also sets "default" and every existing link: eth0 is off
	 * whether the launcher moves it in before or after this */
	net_disable_ipv6("all");
	net_disable_ipv6("default");
	return 0;
}

int net_dyno_setup(struct in_addr addr, struct in_addr gw, struct dy_error **err)
{
	int ifindex = 0;
	if (if_up("eth0", &ifindex, err) < 0)
		return -1;
	char what[64];
	/* addr/32 on eth0 */
	struct nl_req q;
	memset(&q, 0, sizeof(q));
	q.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
	q.h.nlmsg_type = RTM_NEWADDR;
	q.h.nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
	q.body.a = (struct ifaddrmsg){.ifa_family = AF_INET,
	                              .ifa_prefixlen = 32,
	                              .ifa_scope = RT_SCOPE_UNIVERSE,
	                              .ifa_index = (unsigned)ifindex};
	add_attr(&q, IFA_LOCAL, &addr, sizeof(addr));
	add_attr(&q, IFA_ADDRESS, &addr, sizeof(addr));
	const unsigned char *b = (const unsigned char *)&addr.s_addr;
	snprintf(what, sizeof(what), "address %u.%u.%u.%u on eth0", b[0], b[1], b[2], b[3]);
	if (talk(&q, what, err) < 0)
		return -1;
	/* default via gw, on link: the gateway is not in eth0's /32 */
	memset(&q, 0, sizeof(q));
	q.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg));
	q.h.nlmsg_type = RTM_NEWROUTE;
	q.h.nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
	q.body.r = (struct rtmsg){.rtm_family = AF_INET,
	                          .rtm_table = RT_TABLE_MAIN,
	                          .rtm_protocol = RTPROT_STATIC,
	                          .rtm_scope = RT_SCOPE_UNIVERSE,
	                          .rtm_type = RTN_UNICAST,
	                          .rtm_flags = RTNH_F_ONLINK};
	add_attr(&q, RTA_GATEWAY, &gw, sizeof(gw));
	add_attr(&q, RTA_OIF, &ifindex, sizeof(ifindex));
	if (talk(&q, "route 0.0.0.0/0", err) < 0)
		return -1;
	/* the gateway's MAC, permanent: no ARP, no room in the neighbour table */
	unsigned char host_mac[6], dyno_mac[6];
	net_veth_macs(addr, host_mac, dyno_mac);
	memset(&q, 0, sizeof(q));
	q.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct ndmsg));
	q.h.nlmsg_type = RTM_NEWNEIGH;
	q.h.nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
	q.body.n = (struct ndmsg){.ndm_family = AF_INET, .ndm_ifindex = ifindex, .ndm_state = NUD_PERMANENT};
	add_attr(&q, NDA_DST, &gw, sizeof(gw));
	add_attr(&q, NDA_LLADDR, host_mac, sizeof(host_mac));
	return talk(&q, "neighbour entry of the gateway on eth0", err);
}
