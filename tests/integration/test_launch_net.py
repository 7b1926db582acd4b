"""The launcher's network hardening (runtime/net.c, docs/isolation.md,
Network): gateway ports per dyno, the egress deny list, anti-spoofing (IPv4
and ARP), round-robin addresses, an older launcher's table. Scenarios of
dynoharness.py, each in its own network namespace (test_launch.scenario)."""
import errno
import os

import pytest

from test_launch import pool, scenario  # noqa: F401 (pool: autouse, both ways)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the launcher needs root")


def test_gateway_ports_are_per_dyno():
    r = scenario("gateway_ports")
    pa, pb = r["pa"], r["pb"]
    assert r["a"] == {f"10.213.0.1:{pa}": "ok", f"10.213.0.1:{pb}": "timeout"}, r
    assert r["b"] == {f"10.213.0.1:{pa}": "timeout", f"10.213.0.1:{pb}": "ok"}, r
    # the port is in the dyno's own chain, gone with it
    assert f"ip daddr 10.213.0.1 tcp dport {pa} accept" in r["chain_a"], r["chain_a"]
    assert r["left_a"] == [], r["left_a"]
    # a dyno started after a has gone still has its own port only
    assert r["c"] == {f"10.213.0.1:{pb}": "ok"}, r
    # no global set of ports any more
    assert r["global_set"] is None
    assert "@ports" not in r["input"] and "dport" not in r["input"], r["input"]
    assert r["leftovers"] == []


def test_older_table_is_brought_to_the_new_layout():
    r = scenario("old_table")
    # the new dyno: its own port, not the old global one
    assert r["res"] == {f"10.213.0.1:{r['old']}": "timeout",
                        f"10.213.0.1:{r['new']}": "ok"}, r
    assert r["global_set"] is None
    assert "@ports" not in r["input"], r["input"]
    # the old dyno's chain got the ports it had
    assert f"tcp dport {r['old']} accept" in r["old_chain"], r["old_chain"]
    # forward redone with the deny list; the arp table made
    assert "169.254.0.0/16" in r["forward"], r["forward"]
    assert r["arp"] is not None and "input" in r["arp"]
    assert r["leftovers"] == []


def test_egress_never_reaches_private_metadata_or_the_host():
    r = scenario("egress_deny")
    res = r["res"]
    assert res["192.0.2.2:7000"] == "ok", res  # the outside
    for a in ("169.254.169.254", "10.99.0.2", "172.16.5.5", "192.168.7.7", "100.64.1.1",
              "10.213.200.9"):
        assert res[f"{a}:7000"] == "timeout", (a, res)
    # the host's services on its other address and on the gateway
    assert res[f"192.0.2.1:{r['host_port']}"] == "timeout", res
    assert res[f"10.213.0.1:{r['host_port']}"] == "timeout", res
    assert r["leftovers"] == []


def test_egress_reaches_the_hosts_resolver_on_port_53_only():
    r = scenario("egress_dns")
    assert r["res"] == {"10.99.0.2:53": "ok", "10.99.0.2:7000": "timeout",
                        "172.16.5.5:53": "timeout"}, r
    assert r["no_egress"] == {"10.99.0.2:53": "timeout"}, r
    assert "10.99.0.2" in r["forward"] and "127.0.0.53" not in r["forward"], r["forward"]
    assert r["leftovers"] == []


def test_spoofed_source_is_dropped():
    r = scenario("spoof")
    # the app: no raw or packet sockets; a foreign address bound with
    # IP_FREEBIND is not routed from
    app = r["app"]
    assert app["raw"] == errno.EPERM and app["packet"] == errno.EPERM, app
    assert app["bind"] != 0 or app["send"] != 0, app
    # root's raw socket in the dyno's namespace (a compromised dyno):
    assert r["sent"] == ["sent"] * 4, r
    # only the dyno's own source address gets out (masqueraded)
    assert [u[1] for u in r["udp"]] == ["real"], r["udp"]
    assert r["leftovers"] == []


def test_arp_in_another_name_is_dropped():
    r = scenario("arp")
    assert r["sent"] == ["sent"] * 3, r
    assert f"arp saddr ip != {r['b']} drop" in r["arp_chain"], r["arp_chain"]
    # the host learnt the sender's own address only
    assert r["b"] in r["learned"], r
    assert r["a"] not in r["learned"] and "10.213.0.77" not in r["learned"], r
    assert r["leftovers"] == []


def test_veth_neighbours_are_permanent():
    # a dyno costs no entry of the kernel's neighbour table (shared by all
    # namespaces, 1024 by default): each end knows the other's MAC
    r = scenario("neigh")
    assert [a.startswith("ok") for a in r["answers"]] == [True, True], r
    assert all(list(c.values()) == ["ok"] for c in r["to_gw"]), r
    for ip, veth, inside in zip(r["ips"], r["veths"], r["inside"]):
        mac = "0a:65:" + ":".join("%02x" % int(b) for b in ip.split("."))
        assert [e for e in r["host"] if e[1] == veth] == [[ip, veth, mac, "PERMANENT"]], r
        gw_mac = "0a:64:" + mac[6:]
        assert inside == [["10.213.0.1", "eth0", gw_mac, "PERMANENT"]], r
    assert [e for e in r["host"] if e[3] != "PERMANENT"] == [], r
    assert r["leftovers"] == []


def test_addresses_are_handed_out_round_robin():
    r = scenario("addr_rr")
    assert r["bench"] is not None, r["stderr"]
    assert "Sanitizer" not in r["stderr"] and "runtime error:" not in r["stderr"], r["stderr"]
    addrs = r["bench"]["addrs"]
    assert len(addrs) == 3 and len(set(addrs)) == 3, addrs
    last = [int(a.split(".")[-1]) for a in addrs]
    assert last == sorted(last), addrs
    assert "dy-" not in r["routes"], r["routes"]


def test_addresses_with_a_route_are_skipped():
    r = scenario("addr_skip")
    assert r["bench"] is not None, r["stderr"]
    # after the highest in use (the last) the first pick wraps around: .2
    # is routed, .3 (the dump's); then .4 routed, .5 (the lookups')
    assert r["bench"]["addrs"] == ["10.213.0.3", "10.213.0.5"], r


@pytest.mark.skipif(not os.path.exists("/proc/net/nf_conntrack"),
                    reason="no /proc/net/nf_conntrack (CONFIG_NF_CONNTRACK_PROCFS) to look at")
def test_conntrack_entries_go_with_the_dyno():
    r = scenario("conntrack")
    assert r["served"] == ["ok:hello web.1"] * 2, r
    # the host's connections to both dynos are tracked (TIME_WAIT now)
    assert r["before"]["a"] >= 1 and r["before"]["b"] >= 1, r
    # a's are gone with a; b's are still there until b stops
    assert r["after"]["a"] == [], r["after"]
    assert r["after"]["b"] == r["before"]["b"], r
    assert r["b_end"] == [], r
    assert r["leftovers"] == []
