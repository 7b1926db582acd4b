"""Faults under load (docs/operating.md, "Faults, measured"): while
loadkit's clients send requests through the router (keep-alive
connections and a new connection per request) to an app with two web
dynos, one thing is broken at a time: the router (kill -9), dynod (kill -9,
or SIGQUIT, then a new dynod on the same config and network namespace),
one web dyno's app process (kill -9, not its init). Each test prints its
counts (pytest -s shows them) and asserts what the fault may cost: a
router killed fails at most the request each client had in flight on it
and refuses no connection; dynod going away fails nothing and the same
dynos serve on; a dyno's app killed fails at most its requests in flight,
and only it restarts. The app prints a line per request: lines written
meanwhile must reach `dyno logs`. test_router_keeper's kept fixture: a
dynod in a network namespace held by a process of the test's own; every
test kills what it started by PID, even on failure."""
import os
import signal
import time

import pytest

from loadkit import APP, APP_WEB, Load, get, wait_logged
from test_router_keeper import kept  # noqa: F401 (kept: the fixture)
from test_supervise import alive, all_up, app_pid, by_name
from test_survive import NAMES, deploy, pids, readopted, wait_recorded

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="dynos need root"),
              pytest.mark.heavy]

KEEP_ALIVE, NEW = 3, 3  # clients of each kind
CLIENTS = KEEP_ALIVE + NEW


def start(kept, tmp_path):
    d = kept.start()
    return d, deploy(d, tmp_path, web=APP_WEB, files={"app.py": APP})


def report(what, res, at=None):
    print("\n" + res.line(what) + (f"  (fault at {at:.3f} s)" if at is not None else ""))
    for f in res.failed:
        print(f"    failed at {f['t']} s: {f['error']} (connection reused: {f['reused']})")


def marker(what):
    return f"/?fault={what}-{time.monotonic_ns()}"


def served(d, path):
    """GET path answered 200; returns the dyno that answered."""
    code, body = get(d, path)
    assert code == "200", (code, body)
    return body.strip()


def test_router_kill9_refuses_nothing(kept, tmp_path):
    d, before = start(kept, tmp_path)
    time.sleep(1.1)  # a router that ran over a second is restarted at once
    router = d.router_pid()
    load = Load(d.ns, d.tmp, marker("router"), keep_alive=KEEP_ALIVE, new=NEW, pause=0.002)
    try:
        time.sleep(2)
        at = load.since()
        os.kill(router, signal.SIGKILL)
        end = time.monotonic() + 5
        while d.router_pid() in (None, router) and time.monotonic() < end:
            time.sleep(0.02)
        assert d.router_pid() not in (None, router), d.log.read_text()[-2000:]
        time.sleep(2)
        # served by the new router while the load runs (the load's lines
        # would push it out of the last 1,500 if it came earlier)
        after = marker("router-restarted")
        served(d, after)
        res = load.stop()
    finally:
        load.kill()
    report("router kill -9", res, at)
    assert res.refused == 0, res
    # only what was in flight on the killed router: one per client at most,
    # right at the kill
    assert len(res.failed) <= CLIENTS, res
    for c in res.clients:
        assert len(c["failed"]) <= 1, c
    assert all(at - 0.005 <= f["t"] <= at + 1 for f in res.failed), (at, res.failed)
    assert res.other == {} and res.ok >= 100, res
    assert pids(d.dynos()) == before
    assert f"pid {router} killed by KILL: restarting" in d.log.read_text()
    wait_logged(d, after)
    assert d.stop() == 0 and d.cgroups() == []


@pytest.mark.parametrize("how", ["kill9", "sigquit"])
def test_dynod_gone_fails_nothing(kept, tmp_path, how):
    d, before = start(kept, tmp_path)
    router = d.router_pid()
    load = Load(d.ns, d.tmp, marker(f"dynod-{how}"), keep_alive=KEEP_ALIVE, new=NEW, pause=0.02)
    try:
        time.sleep(1.5)
        if how == "kill9":
            d.kill9()
        else:
            d.proc.send_signal(signal.SIGQUIT)
            assert d.proc.wait(timeout=10) == 0
            d.proc = None
            d.logf.close()
        time.sleep(1.5)
        # served while no dynod runs: the app's line waits in its init
        down = marker(f"dynod-{how}-down")
        served(d, down)
        d.start()
        readopted(d, before)
        time.sleep(1.5)
        res = load.stop()
    finally:
        load.kill()
    report(f"dynod {'kill -9' if how == 'kill9' else 'SIGQUIT'} + restart", res)
    assert res.failed == [] and res.refused == 0 and res.other == {}, res
    assert res.ok >= 100, res
    assert d.router_pid() == router
    wait_logged(d, down)
    wait_recorded(d, NAMES)
    assert d.stop() == 0 and d.cgroups() == []


def test_web_dyno_app_kill9_fails_its_inflight_only(kept, tmp_path):
    d, before = start(kept, tmp_path)
    victim = app_pid(before["web.1"])
    load = Load(d.ns, d.tmp, marker("dyno"), keep_alive=KEEP_ALIVE, new=NEW, pause=0.002)
    try:
        time.sleep(2)
        at = load.since()
        os.kill(victim, signal.SIGKILL)
        ds = d.wait(lambda ds: all_up(NAMES)(ds) and by_name(ds)["web.1"]["pid"] != before["web.1"],
                    what="web.1 restarted")
        time.sleep(1)
        res = load.stop()
    finally:
        load.kill()
    # the new web.1 serves, and its lines reach the log
    end = time.monotonic() + 10
    after = None
    while time.monotonic() < end and after is None:
        path = marker("dyno-restarted")
        if served(d, path) == "web.1":
            after = path
    assert after is not None, "the new web.1 never answered"
    report("web dyno's app kill -9", res, at)
    now = pids(ds)
    assert now["web.2"] == before["web.2"] and now["worker.1"] == before["worker.1"]
    assert not alive(victim)
    # what was in flight on web.1: at most one request per client, failed
    # (no answer) or answered 503 by the router, right at the kill
    lost = len(res.failed) + sum(res.other.values())
    assert set(res.other) <= {"503"} and lost <= CLIENTS and res.refused == 0, res
    assert all(at - 0.005 <= f["t"] <= at + 1 for f in res.failed), (at, res.failed)
    assert res.ok >= 100, res
    log = d.log.read_text()
    assert "web.1]: State changed from up to crashed" in log, log[-3000:]
    assert "app[web.1]" in wait_logged(d, after)
    assert d.stop() == 0 and d.cgroups() == []
