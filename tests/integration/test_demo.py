"""make demo: the platform in the foreground with the getting-started app,
served by web.1 and web.2; Ctrl-C (SIGINT to its process group) stops
everything; run again, it picks up the state it left.

The demo runs in a network namespace of its own (its router listens on
0.0.0.0:8080 there), with its state in tmp_path (DYNO_DEMO_DIR) and a cgroup
parent of its own (DYNO_DEMO_CGROUP)."""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import BUILD, ROOT
from test_supervise import Dynod

APP = "getting-started"
READY = "== the demo runs"


class Demo:
    """One `make demo` run in a network namespace of its own."""

    def __init__(self, tmp_path, parent):
        self.tmp = tmp_path
        self.out = tmp_path / f"demo-{time.monotonic_ns()}.out"
        env = dict(os.environ, DYNO_DEMO_DIR=str(tmp_path), DYNO_DEMO_CGROUP=parent,
                   BUILD=str(BUILD))
        for k in ("DYNO_API", "DYNO_APP", "MAKEFLAGS"):
            env.pop(k, None)
        with open(self.out, "wb") as f:
            # unshare and sh exec: the PID (and process group) is make's
            self.proc = subprocess.Popen(
                ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec make -s demo'],
                cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, env=env,
                start_new_session=True)

    def output(self):
        return self.out.read_text(errors="replace")

    def wait_ready(self, timeout=180):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if READY in self.output():
                return self.output()
            assert self.proc.poll() is None, "make demo exited:\n" + self.output()
            time.sleep(0.2)
        pytest.fail("make demo not ready in time:\n" + self.output())

    def get(self, path):
        """GET path from the demo's router, as a browser asking for
        getting-started.localhost:8080: (status, body)."""
        r = subprocess.run(
            ["nsenter", f"--net=/proc/{self.proc.pid}/ns/net", "curl", "-s", "-m", "10",
             "-H", f"Host: {APP}.localhost", "-w", "\n%{http_code}",
             f"http://127.0.0.1:8080{path}"], capture_output=True, text=True, timeout=20)
        body, _, code = r.stdout.rpartition("\n")
        return int(code or 0), body

    def ctrl_c(self, timeout=60):
        """SIGINT to the whole process group, as a terminal's Ctrl-C."""
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout=timeout)

    def kill(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def running_under(tmp_path):
    """Processes whose command line names tmp_path (dynod and the router
    take --config tmp_path/dynod.json)."""
    found = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(tmp_path) in cmd:
            found.append(f"{p.name}: {cmd}")
    return found


def served_by(demo, n=12):
    """The dynos and releases that served n requests for /."""
    dynos, releases = set(), set()
    for _ in range(n):
        code, body = demo.get("/")
        assert code == 200, body
        m = re.search(r"Served by <b id=dyno>([^<]+)</b>, release <b id=release>([^<]+)</b>",
                      body)
        assert m, body
        dynos.add(m.group(1))
        releases.add(m.group(2))
    return dynos, releases


def stopped_cleanly(demo, leftovers, rc):
    out = demo.output()
    # make dies of the SIGINT once its recipe has ended, as on a terminal
    assert rc in (0, -signal.SIGINT), out
    assert "demo: stopped" in out, out
    end = time.monotonic() + 10
    while time.monotonic() < end and (running_under(demo.tmp) or leftovers.cgroups()):
        time.sleep(0.2)
    assert running_under(demo.tmp) == []
    assert leftovers.cgroups() == []
    assert leftovers.router_pid() is None
    log = (demo.tmp / "dynod.log").read_text(errors="replace")
    assert "Sanitizer" not in log and "runtime error:" not in log, log[-3000:]


def test_demo_serves_stops_on_ctrl_c_and_picks_up_its_state(dyno_bin):
    # a directory only root may enter, as a clone under /root: the add-on's
    # cluster (run as postgres) works all the same
    tmp_path = Path(tempfile.mkdtemp(prefix="dydemo-"))
    # not started: only its cgroup parent name, cgroups() and sweep()
    leftovers = Dynod(tmp_path, dyno_bin)
    demo = None
    try:
        demo = Demo(tmp_path, leftovers.parent)
        out = demo.wait_ready()
        assert f"Creating {APP}... done" in out
        assert "attached as DATABASE_URL" in out, out
        assert "created v2" in out and "release: table visits ready" in out, out
        assert f"http://{APP}.localhost:8080/" in out
        assert f"export DYNO_API={tmp_path}/api.sock DYNO_APP={APP}" in out
        dynos, releases = served_by(demo)
        assert dynos == {"web.1", "web.2"} and releases == {"v2"}
        code, body = demo.get("/db")
        assert code == 200 and "<p id=count>1 visit.</p>" in body, body
        # the app's own lines reach its log
        r = subprocess.run([str(dyno_bin), "logs", "-n", "200", "-a", APP],
                           env=dict(os.environ, DYNO_API=str(tmp_path / "api.sock")),
                           capture_output=True, text=True, timeout=30)
        assert re.search(r'app\[web\.[12]\]: 10\.213\.0\.1 "GET / HTTP/1\.1" 200', r.stdout), \
            r.stdout
        stopped_cleanly(demo, leftovers, demo.ctrl_c())

        # again: the app, its release and its formation are still there
        demo = Demo(tmp_path, leftovers.parent)
        out = demo.wait_ready()
        assert f"{APP} exists" in out and "is deployed already" in out, out
        assert "has its database" in out, out
        assert "Creating" not in out and "created v" not in out, out
        dynos, releases = served_by(demo)
        assert dynos == {"web.1", "web.2"} and releases == {"v2"}
        # the database kept its rows: the cluster started again with dynod
        code, body = demo.get("/db")
        assert code == 200 and "<p id=count>2 visits.</p>" in body, body
        stopped_cleanly(demo, leftovers, demo.ctrl_c())
    finally:
        if demo is not None:
            demo.kill()
        for line in running_under(tmp_path):
            os.kill(int(line.split(":")[0]), signal.SIGKILL)
        leftovers.sweep()
        shutil.rmtree(tmp_path, ignore_errors=True)
