"""dynod runs the router (runtime/manager/router-keeper.c; docs/design.md,
"What survives what"). A real dynod with real dynos in a network namespace
of the test's own: a holder process made with `unshare -n` keeps it, so
that a dynod killed and started again (`nsenter --net`) finds the same
namespace, the same ports and the router it left running there. Requests
go through the router on 127.0.0.1:8080 from inside that namespace. Every
test kills what it started by PID (holder, dynod, router from router.pid)
and sweeps its cgroups, even on failure."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import wait_for_socket
from test_supervise import WEB, Dynod, all_up, alive, make_app

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="dynos need root")

# Sequential requests through the router, each on a new connection; at the
# requests named in KILLS the router (its pid re-read from router.pid) is
# killed with SIGKILL just before the connect. Prints one JSON object: the
# status of each request, or the error it met.
LOOP = r"""
import json, os, signal, socket, sys
n, pidfile, kills = int(sys.argv[1]), sys.argv[2], {int(k) for k in sys.argv[3].split(",")}
out = {"status": [], "errors": [], "killed": []}
for i in range(n):
    if i in kills:
        pid = int(open(pidfile).read().split()[0])
        os.kill(pid, signal.SIGKILL)
        out["killed"].append(pid)
    try:
        s = socket.create_connection(("127.0.0.1", 8080), timeout=10)
        s.sendall(b"GET /Procfile HTTP/1.1\r\nHost: app.localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        s.close()
        out["status"].append(int(data.split(b" ", 2)[1]) if data else 0)
    except OSError as e:
        out["errors"].append(f"{i}: {e!r}")
json.dump(out, sys.stdout)
"""


class KeptDynod(Dynod):
    """test_supervise's Dynod, started in a network namespace held by a
    `sleep` of the test's own, so that it can be started there again."""

    def __init__(self, tmp_path, dyno_bin):
        super().__init__(tmp_path, dyno_bin)
        self.holder = subprocess.Popen(
            ["unshare", "-n", "sh", "-c", "ip link set lo up && exec sleep 600"])
        end = time.monotonic() + 5
        while time.monotonic() < end:
            ns = Path(f"/proc/{self.holder.pid}/ns/net")
            if os.readlink(ns) != os.readlink("/proc/self/ns/net"):
                r = subprocess.run(["nsenter", f"--net={ns}", "ip", "-o", "link", "show", "lo"],
                                   capture_output=True, text=True)
                if "UP" in r.stdout:
                    break
            time.sleep(0.02)
        self.ns = f"/proc/{self.holder.pid}/ns/net"

    def start(self):
        exe = self.exe
        env = dict(os.environ)
        env.pop("DYNOD_NO_LAUNCHER", None)
        self.logf = open(self.log, "ab")
        # nsenter execs dynod: the PID is dynod's
        self.proc = subprocess.Popen(["nsenter", f"--net={self.ns}", str(exe), "--config",
                                      str(self.config)], stdout=self.logf, stderr=self.logf,
                                     env=env)
        wait_for_socket(self.proc, self.sock, self.log)
        return self

    def netns(self, *args, timeout=10):
        return subprocess.run(["nsenter", f"--net={self.ns}", *args], capture_output=True,
                              text=True, timeout=timeout)

    def get(self, path="/Procfile"):
        r = self.netns("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                       "Host: app.localhost", f"http://127.0.0.1:8080{path}")
        return r.stdout

    def routers(self):
        """The dyno-router processes running in the namespace."""
        mine = os.readlink(self.ns)
        found = []
        for p in Path("/proc").iterdir():
            if not p.name.isdigit():
                continue
            try:
                if ((p / "comm").read_text().strip() == "dyno-router"
                        and os.readlink(p / "ns" / "net") == mine and alive(int(p.name))):
                    found.append(int(p.name))
            except OSError:
                pass
        return found

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        self.logf.close()

    def cleanup(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
        self.sweep()
        self.holder.kill()
        self.holder.wait()


@pytest.fixture
def kept(tmp_path, dyno_bin):
    d = KeptDynod(tmp_path, dyno_bin)
    try:
        yield d
        # dynod and the router write there (the sanitizer build's reports too)
        log = d.log.read_text()
        assert "Sanitizer" not in log and "runtime error:" not in log, log[-3000:]
    finally:
        d.cleanup()


def deploy_web(d, tmp_path):
    slug = make_app(d, tmp_path, f"web: {WEB}\n")
    assert d.cli("apps:create", "app").returncode == 0
    r = d.cli("deploy", slug)
    assert r.returncode == 0, r.stderr
    assert d.cli("ps:scale", "web=1").returncode == 0
    d.wait(all_up(["web.1"]), what="web.1 up")
    answers(d)


def answers(d, timeout=15, path="/Procfile"):
    """Waits until the app answers 200 (for path) through the router."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = d.get(path)
        if last == "200":
            return
        time.sleep(0.1)
    pytest.fail(f"no 200 through the router (last {last!r}):\n" + d.log.read_text()[-3000:])


def test_dynod_starts_the_router_and_restarts_it_without_refusing(kept, tmp_path):
    d = kept.start()
    deploy_web(d, tmp_path)
    pid = d.router_pid()
    assert pid is not None and d.routers() == [pid]
    # dynod's child, in a session and process group of its own
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    assert int(stat[1]) == d.proc.pid  # ppid
    assert os.getsid(pid) == pid and os.getpgid(pid) == pid
    assert os.getsid(pid) != os.getsid(d.proc.pid)
    # its sockets are dynod's: fds 3 (router.listen) and 4 (admin)
    assert (d.state / "router.pid").read_text().split()[2:] == ["3", "4"]
    # kill -9 of the router twice while requests run (the second 10
    # requests after its restart: the back-off, 1 s, during which clients wait in
    # the backlog): none refused, every one answered
    time.sleep(1.1)  # the first router ran over a second: restarted at once
    r = d.netns(sys.executable, "-c", LOOP, "300", str(d.state / "router.pid"), "100,110",
                timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["errors"] == [], out["errors"]
    assert out["status"] == [200] * 300
    assert out["killed"][0] == pid and out["killed"][1] != pid
    new = d.router_pid()
    assert new not in (None, *out["killed"]) and d.routers() == [new]
    log = d.log.read_text()
    assert f"pid {pid} killed by KILL: restarting" in log
    assert "restarting in 1000 ms" in log, log[-3000:]
    assert d.stop() == 0
    assert d.routers() == [] and not (d.state / "router.pid").exists()


def test_router_outlives_dynod_and_is_adopted(kept, tmp_path):
    d = kept.start()
    deploy_web(d, tmp_path)
    pid = d.router_pid()
    assert pid is not None
    # kill -9 of dynod: the router goes on (the dyno too, for now)
    d.kill9()
    assert alive(pid) and d.get() == "200"
    # dynod again: the same router adopted, no second one, still answering
    d.start()
    assert "adopted pid %d" % pid in d.log.read_text()
    d.wait(all_up(["web.1"]), what="web.1 up again")
    answers(d)
    assert d.routers() == [pid] and d.router_pid() == pid
    # and watched as if started: a crash is restarted
    os.kill(pid, signal.SIGKILL)
    end = time.monotonic() + 10
    while time.monotonic() < end and d.router_pid() in (None, pid):
        time.sleep(0.05)
    new = d.router_pid()
    assert new not in (None, pid), d.log.read_text()[-2000:]
    answers(d)
    # SIGTERM to dynod: the router is stopped too, after the dynos
    assert d.stop() == 0
    assert d.routers() == [], d.routers()
    log = d.log.read_text()
    assert f"stopping pid {new}: SIGTERM" in log
    assert not (d.state / "router.pid").exists()


def test_router_external_is_not_started(tmp_path, dyno_bin):
    d = KeptDynod(tmp_path, dyno_bin)
    cfg = json.loads(d.config.read_text())
    cfg["router"] = {"external": True}
    d.config.write_text(json.dumps(cfg))
    try:
        d.start()
        assert d.routers() == [] and not (d.state / "router.pid").exists()
        assert d.get() == "000"  # nothing listens on 8080
        assert d.stop() == 0
    finally:
        d.cleanup()
