"""The launcher's warm pool (docs/isolation.md, "The pool"): what only a
pool does. Every scenario of test_launch*.py also runs with its dynos taken
from a pool (their `pool` fixture): a pooled dyno is as isolated as any.
Scenarios are in dynoharness.py, each in its own network namespace."""
import os

import pytest

from test_launch import scenario

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the launcher needs root")


def test_an_entry_that_died_waiting_is_discarded():
    r = scenario("pool_dead_entry")
    assert r["pool"] == {"event": "pool", "ready": 2}, r
    victim = r["held"]["victim"]
    live = [i for i in r["held"]["entries"] if i != victim]
    # the start took the live entry, not the dead one; its hostname is its id
    assert r["id"] in live, r
    assert r["line"] == f"pooled {r['id']}", r
    assert r["init_ls"] == "init-ls=2", r  # ls: Permission denied
    # the dead one is gone with its cgroup, veth and rules
    assert r["gone"] == {"cgroup": True, "veth": True, "chain": True}, r
    assert r["exited"]["status"] in (0, 143), r
    assert r["leftovers"] == [], r


def test_a_burst_larger_than_the_pool():
    r = scenario("pool_burst")
    assert r["rc"] == 0, r["stderr"]
    ids = next(e for e in r["events"] if e["event"] == "burst_samples")["ids"]
    # four dynos, four ids: no entry served two starts
    assert len(ids) == 4 and len(set(ids)) == 4, ids
    pooled = [i for i in ids if "-pool-" in i]
    assert len(pooled) >= 2, ids  # the two ready before the burst
    assert r["leftover_cgroups"] == [] and r["veths"] == [] and r["chains"] == [], r
