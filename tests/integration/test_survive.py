"""A crash or an upgrade of dynod loses no running dyno (docs/design.md,
"What survives what"; runtime/manager/dyno-record.c and the re-adoption in
supervisor.c). test_router_keeper's KeptDynod: a real dynod in a network
namespace held by a process of the test's own, so that a dynod killed (or
told SIGQUIT) and started again finds the same namespace, the dynos' veths
and the router it left there. A request loop through the router runs across
each restart. Every test kills what it started by PID (holder, dynod, the
router from router.pid, the dynos by their cgroups), even on failure."""
import json
import os
import signal
import stat
import subprocess
import time

import pytest

from conftest import BUILD
from loadkit import Load, wait_logged
from test_router_keeper import answers, kept  # noqa: F401 (kept: the fixture)
from test_supervise import WEB, WORKER, all_up, alive, app_pid, by_name, make_app

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="dynos need root")

NAMES = ["web.1", "web.2", "worker.1"]

def pids(dynos):
    return {x["name"]: x["pid"] for x in dynos}


def record(d):
    return json.loads((d.state / "dynos.json").read_text())


def wait_recorded(d, names, timeout=5):
    """Until dynos.json lists names (and no other), each up."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            last = record(d)
            got = {x["name"]: x["state"] for x in last["dynos"]}
            if got == {n: "up" for n in names}:
                return last
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    pytest.fail(f"dynos.json never listed {names} up: {last}")


def backends(d):
    app = next(a for a in d.routes()["apps"] if a["name"] == "app")
    return {b["dyno"]: b["addr"] for b in app["backends"]}


def deploy(d, tmp_path, web=WEB, files=None):
    """The app with web.1, web.2 and worker.1 up, answering, recorded;
    returns their pids by name."""
    slug = make_app(d, tmp_path, f"web: {web}\nworker: {WORKER}\n", files=files)
    assert d.cli("apps:create", "app").returncode == 0
    r = d.cli("deploy", slug)
    assert r.returncode == 0, r.stderr
    assert d.cli("ps:scale", "web=2", "worker=1").returncode == 0
    ds = d.wait(all_up(NAMES), what="web.1, web.2, worker.1 up")
    answers(d)
    wait_recorded(d, NAMES)
    return pids(ds)


def readopted(d, before):
    """dynod started again: the same pids up, in routes.json too."""
    ds = d.wait(all_up(NAMES), what="the same dynos up again")
    assert pids(ds) == before, (before, ds)
    m = by_name(ds)
    assert backends(d) == {"web.1": m["web.1"]["addr"], "web.2": m["web.2"]["addr"]}
    log = d.log.read_text()
    for n in NAMES:
        assert f"re-adopted pid {before[n]}" in log, log[-3000:]
    assert "Starting process" not in log.split("ready:")[-1], log[-3000:]


def no_failure(res):
    assert res.failed == [] and res.other == {} and res.refused == 0, res
    assert res.ok >= 20, res


def test_kill9_of_dynod_loses_no_dyno(kept, tmp_path):
    d = kept.start()
    before = deploy(d, tmp_path)
    rec = d.state / "dynos.json"
    assert stat.S_IMODE(rec.stat().st_mode) == 0o600
    entry = next(x for x in record(d)["dynos"] if x["name"] == "web.1")
    assert entry["pid"] == before["web.1"] and entry["port"] == 5000
    assert entry["veth"].startswith("dy-") and entry["start_time"] > 0
    loop = Load(d.ns, d.tmp, "/Procfile", keep_alive=1, new=1, pause=0.005)
    time.sleep(0.5)
    d.kill9()
    assert all(alive(p) for p in before.values())
    time.sleep(0.5)
    d.start()
    readopted(d, before)
    time.sleep(0.5)
    no_failure(loop.stop())
    # the adopted dynos' output still reaches the app's log (their init
    # sends to the sink by path; the new dynod bound it again)
    marker = f"/after-restart-{time.monotonic_ns()}"
    assert d.get(marker) == "404"
    assert "app[web." in wait_logged(d, marker)
    # an adopted dyno that exits on its own: its init reports the status
    # (dynod is not its parent and cannot wait for it), then it restarts
    os.kill(app_pid(before["worker.1"]), signal.SIGKILL)
    d.wait(lambda ds: by_name(ds)["worker.1"]["pid"] not in (0, before["worker.1"]) and
           by_name(ds)["worker.1"]["state"] == "up", what="worker.1 restarted")
    log = d.cli("logs", "--dyno", "worker.1").stdout
    assert "dyno[worker.1]: Process exited with status 137" in log, log
    assert "status unknown" not in log and "status unknown" not in d.log.read_text()
    assert log.count("Process exited with status 137") == 1, log
    before["worker.1"] = by_name(d.dynos())["worker.1"]["pid"]
    # an adopted dyno is supervised as any other: scaled down, it stops
    assert d.cli("ps:scale", "web=1").returncode == 0
    ds = d.wait(all_up(["web.1", "worker.1"]), what="web.2 gone")
    assert pids(ds) == {"web.1": before["web.1"], "worker.1": before["worker.1"]}
    end = time.monotonic() + 10
    while alive(before["web.2"]) and time.monotonic() < end:
        time.sleep(0.05)
    assert not alive(before["web.2"])
    assert list(backends(d)) == ["web.1"]
    wait_recorded(d, ["web.1", "worker.1"])
    answers(d)
    # SIGTERM stops them all, adopted or not, and empties the record
    assert d.stop() == 0
    assert d.cgroups() == [] and record(d)["dynos"] == []
    assert not any(alive(p) for p in before.values())


def test_sigquit_leaves_dynos_and_router_running(kept, tmp_path):
    d = kept.start()
    before = deploy(d, tmp_path)
    router = d.router_pid()
    loop = Load(d.ns, d.tmp, "/Procfile", keep_alive=1, new=1, pause=0.005)
    time.sleep(0.5)
    d.proc.send_signal(signal.SIGQUIT)
    assert d.proc.wait(timeout=10) == 0
    d.proc = None
    d.logf.close()
    assert all(alive(p) for p in before.values()) and d.router_pid() == router
    assert {x["name"]: x["pid"] for x in record(d)["dynos"]} == before
    time.sleep(0.5)
    d.start()
    readopted(d, before)
    assert d.router_pid() == router and f"adopted pid {router}" in d.log.read_text()
    time.sleep(0.5)
    no_failure(loop.stop())
    assert d.stop() == 0
    assert d.cgroups() == [] and d.routers() == []


def test_dyno_killed_while_dynod_is_down_restarts(kept, tmp_path):
    d = kept.start()
    before = deploy(d, tmp_path)
    d.kill9()
    # its init dies, and the kernel kills the rest of its PID namespace
    os.kill(before["web.2"], signal.SIGKILL)
    end = time.monotonic() + 5
    while alive(before["web.2"]) and time.monotonic() < end:
        time.sleep(0.05)
    d.start()
    ds = d.wait(all_up(NAMES), what="web.2 up again")
    after = pids(ds)
    assert after["web.1"] == before["web.1"] and after["worker.1"] == before["worker.1"]
    assert after["web.2"] != before["web.2"]
    log = d.log.read_text()
    assert "web.2]: not re-adopted" in log, log[-3000:]
    assert "web.2]: State changed from up to crashed" in log, log[-3000:]
    answers(d)
    assert sorted(backends(d)) == ["web.1", "web.2"]
    assert d.stop() == 0 and d.cgroups() == []


def start_fails(d):
    r = subprocess.run(["nsenter", f"--net={d.ns}", str(BUILD / "bin" / "dynod"), "--config",
                        str(d.config)], capture_output=True, text=True, timeout=30)
    return r.returncode, r.stderr


def test_a_newer_or_broken_record_stops_startup_and_is_kept(kept, tmp_path):
    d = kept.start()
    before = deploy(d, tmp_path)
    d.kill9()
    rec = d.state / "dynos.json"
    good = rec.read_text()
    newer = json.dumps({"schema_version": 99, "dynos": []})
    for text, what in ((newer, "schema_version 99 is newer"), ("{\"schema", "invalid JSON")):
        rec.write_text(text)
        rc, err = start_fails(d)
        assert rc == 1 and f"{rec}: {what}" in err, err
        assert rec.read_text() == text
        # nothing was killed
        assert all(alive(p) for p in before.values())
    rec.write_text(good)
    d.start()
    readopted(d, before)
    assert d.stop() == 0 and d.cgroups() == []
