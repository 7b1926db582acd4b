"""The launcher's cgroup hardening (docs/isolation.md, "cgroups"): the
limits written for a dyno as read on the host (memory + swap bounded: memsw
where swap accounting exists, else swappiness 0), and a stop that kills a
dyno forking as fast as it can. Scenarios are in dynoharness.py, each run in
its own network namespace by test_launch.scenario()."""
import os

import pytest

from test_launch import pool, scenario  # noqa: F401 (pool: autouse, both ways)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the launcher needs root")

MIB = 1024 * 1024


def test_memory_and_swap_limits_as_written():
    r = scenario("cgroup_files")
    f = r["files"]
    assert r["exited"]["status"] in (0, 143), r
    assert r["leftovers"] == []
    assert f["pids.max"] == "64", f
    if r["host"]["v1_memory"]:
        # docs/design.md, Lifecycle: the kernel limit is twice the quota (64M)
        assert int(f["memory.limit_in_bytes"]) == 2 * 64 * MIB, f
        if r["host"]["memsw"]:
            # swap accounting: memory + swap bounded by the same 2x
            assert int(f["memory.memsw.limit_in_bytes"]) == 2 * 64 * MIB, f
            assert r["inside"]["memory.memsw.limit_in_bytes"] == str(2 * 64 * MIB), r
        else:
            # none: no swapping at the dyno's limit
            assert "memory.memsw.limit_in_bytes" not in f, f
            assert f["memory.swappiness"] == "0", f
            assert r["inside"]["memory.swappiness"] == "0", r
        assert r["inside"]["memory.limit_in_bytes"] == str(2 * 64 * MIB), r
        if "cpu.shares" in f:
            assert f["cpu.shares"] == "1024", f
    else:
        assert int(f["memory.max"]) == 2 * 64 * MIB, f
        assert f.get("memory.swap.max", "0") == "0", f
        assert f["memory.oom.group"] == "1", f
        assert f["memory.high"] == "max", f  # never throttled
        if "cpu.weight" in f:
            assert f["cpu.weight"] == "100", f


def test_stop_kills_a_fork_loop():
    r = scenario("kill_forkloop")
    assert r["most"] >= 32, r  # many processes when the kill came
    assert r["exited"]["killed"] is True and r["exited"]["status"] == 137, r
    assert 1.5 < r["took"] < 10, r  # the 2 s grace, then the kill
    assert "survive" not in r["stderr"], r["stderr"]
    assert r["leftovers"] == []
