"""Supervision (runtime/manager/supervisor.c): a real dynod runs real dynos. dynod
runs in a private network namespace made here (`unshare -n`, then `ip link
set lo up`; never `ip netns exec`, which remounts /sys), so its veths and
nftables rules never touch the host's network; its dynos live under a cgroup
parent of their own (cgroup_parent), uids come from a range of their
own, state and socket in tmp_path. Short timeouts: boot 3s, stop 1s,
cool-off 1s doubling to 4s. Every test stops dynod by its PID and sweeps
what is left, even on failure."""
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import BUILD, wait_for_socket

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="dynos need root")

VETH = re.compile(r"dy-[0-9a-f]{12}")
CONTROLLERS = ("memory", "pids", "cpu")

WEB = "exec python3 -m http.server $PORT --bind 0.0.0.0"
WORKER = "exec sleep 1000"


class Dynod:
    def __init__(self, tmp_path, dyno_bin, pool=0):
        self.tmp = tmp_path
        self.state = tmp_path / "state"
        sock = tmp_path / "api.sock"
        if len(str(sock)) > 100:
            sock = Path(tempfile.mkdtemp(prefix="dy-")) / "api.sock"
        self.sock = str(sock)
        self.parent = f"dyno-sup-{os.getpid()}-{int(time.time() * 1000) % 100000}"
        first = 400000 + (os.getpid() % 500) * 200
        cfg = {
            "state_dir": str(self.state),
            "api_socket": self.sock,
            "api_group": "root",
            "cgroup_parent": self.parent,
            "uids": {"first": first, "count": 100},
            # the warm pool's entries are dyno cgroups and veths of their
            # own: off unless a test asks (test_pool_*)
            "dyno": {"timeouts": {"boot": "3s", "stop": "1s", "drain": "500ms"},
                     "cooloff": {"first": "1s", "max": "4s", "reset_after": "5m"},
                     "pool": {"size": pool}},
            "sizes": {"standard-1x": {"memory": "512M", "pids": 256, "cpu": 1},
                      "tiny": {"memory": "32M", "pids": 64, "cpu": 1}},
        }
        self.config = tmp_path / "dynod.json"
        self.config.write_text(json.dumps(cfg))
        self.log = tmp_path / "dynod.log"
        self.dyno_bin = dyno_bin
        self.exe = BUILD / "bin" / "dynod"
        self.app = "app"  # DYNO_APP of cli()
        self.proc = None

    def start(self, netns=None):
        """netns: a network namespace's path to run in (a dynod after
        another's crash, in its namespace), else a fresh one."""
        exe = self.exe
        env = dict(os.environ)
        env.pop("DYNOD_NO_LAUNCHER", None)
        self.logf = open(self.log, "ab")
        # unshare (or nsenter) and sh exec: the PID is dynod's
        enter = ["nsenter", f"--net={netns}"] if netns else ["unshare", "-n"]
        self.proc = subprocess.Popen(
            [*enter, "sh", "-c", 'ip link set lo up && exec "$0" "$@"', str(exe),
             "--config", str(self.config)], stdout=self.logf, stderr=self.logf, env=env)
        wait_for_socket(self.proc, self.sock, self.log)
        return self

    def stop(self, timeout=30):
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        self.logf.close()
        return rc

    def netns(self, *args):
        return subprocess.run(["nsenter", f"--net=/proc/{self.proc.pid}/ns/net", *args],
                              capture_output=True, text=True, timeout=10)

    def cli(self, *args):
        env = dict(os.environ, DYNO_API=self.sock, DYNO_APP=self.app)
        return subprocess.run([str(self.dyno_bin), *map(str, args)], capture_output=True,
                              text=True, env=env, timeout=60)

    def curl(self, method, path):
        r = subprocess.run(["curl", "-s", "--unix-socket", self.sock, "-X", method,
                            "-w", "\n%{http_code}", "http://dynod" + path],
                           capture_output=True, text=True, timeout=30)
        body, _, code = r.stdout.rpartition("\n")
        return int(code), json.loads(body) if body.strip() else None

    def dynos(self):
        r = self.cli("ps", "--json")
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def routes(self):
        """routes.json once settled: dynod writes it at most every 20 ms,
        the changes of a burst at the gap's end (docs/router.md)."""
        path = self.state / "routes.json"
        last = json.loads(path.read_text())
        end = time.monotonic() + 5
        while time.monotonic() < end:
            time.sleep(0.1)
            now = json.loads(path.read_text())
            if now["version"] == last["version"]:
                return now
            last = now
        return last

    def wait(self, pred, timeout=15, what="condition"):
        end = time.monotonic() + timeout
        last = None
        while time.monotonic() < end:
            last = self.dynos()
            if pred(last):
                return last
            time.sleep(0.1)
        pytest.fail(f"timed out waiting for {what}: {last}\n" + self.log.read_text()[-3000:])

    def cgroups(self):
        """The dyno cgroups left under the parent, per controller."""
        left = []
        for c in CONTROLLERS:
            p = Path("/sys/fs/cgroup", c, self.parent)
            if p.is_dir():
                left += [f"{c}/{d.name}" for d in p.iterdir() if d.is_dir()]
        return left

    def router_pid(self):
        """The router dynod runs (state/router.pid) while it runs: pid,
        start time and comm as dynod checks them; None when gone."""
        try:
            pid, start = (self.state / "router.pid").read_text().split()[:2]
            st = Path(f"/proc/{pid}/stat").read_text()
        except (OSError, ValueError):
            return None
        comm = st[st.index("(") + 1:st.rindex(")")]
        fields = st[st.rindex(")") + 2:].split()
        if comm != "dyno-router" or fields[19] != start or fields[0] == "Z":
            return None
        return int(pid)

    def kill_and_sweep(self):
        """After a test, passed or not: dynod killed if it still runs,
        what it left swept."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        self.sweep()

    def sweep(self):
        # the router outlives a dynod killed with SIGKILL (its own session)
        pid = self.router_pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        for c in CONTROLLERS:
            p = Path("/sys/fs/cgroup", c, self.parent)
            if not p.is_dir():
                continue
            for d in p.iterdir():
                if d.is_dir():
                    for pid in (d / "cgroup.procs").read_text().split():
                        try:
                            os.kill(int(pid), signal.SIGKILL)
                        except ProcessLookupError:
                            pass
            time.sleep(0.2)
            for d in p.iterdir():
                if d.is_dir():
                    try:
                        d.rmdir()
                    except OSError:
                        pass
            try:
                p.rmdir()
            except OSError:
                pass


@pytest.fixture
def dynod(tmp_path, dyno_bin):
    d = Dynod(tmp_path, dyno_bin)
    try:
        yield d.start()
        rc = d.stop()
        assert rc == 0, d.log.read_text()[-3000:]
        assert d.cgroups() == [], d.cgroups()
        log = d.log.read_text()
        assert "Sanitizer" not in log and "runtime error:" not in log, log[-3000:]
    finally:
        if d.proc is not None:
            d.proc.kill()
            d.proc.wait()
        d.sweep()


def make_app(dynod, tmp_path, procfile, name="app", files=None):
    src = tmp_path / f"src-{name}-{time.monotonic_ns()}"
    src.mkdir()
    (src / "Procfile").write_text(procfile)
    for k, v in (files or {}).items():
        (src / k).write_text(v)
    out = tmp_path / f"{src.name}.tgz"
    r = dynod.cli("slugs:create", src, "-o", out)
    assert r.returncode == 0, r.stderr
    return out


def app_pid(init_pid):
    """The app's process: the child of the dyno's init."""
    kids = Path(f"/proc/{init_pid}/task/{init_pid}/children").read_text().split()
    return int(kids[0])


def environ(pid):
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(x.decode().split("=", 1) for x in raw if b"=" in x)


def status(pid):
    try:
        return Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None


def alive(pid):
    """Running: not gone, not a zombie waiting for its new parent."""
    st = status(pid)
    return st is not None and "State:\tZ" not in st


def by_name(dynos):
    return {d["name"]: d for d in dynos}


def all_up(names):
    def pred(ds):
        m = by_name(ds)
        return all(n in m and m[n]["state"] == "up" for n in names) and len(ds) == len(names)
    return pred


def test_formation_crash_config_rollback_destroy(dynod, tmp_path):
    slug = make_app(dynod, tmp_path, f"web: {WEB}\nworker: {WORKER}\n")
    assert dynod.cli("apps:create", "app").returncode == 0
    r = dynod.cli("deploy", slug)
    assert r.returncode == 0, r.stderr
    assert dynod.cli("ps:scale", "web=2", "worker=1").returncode == 0
    ds = dynod.wait(all_up(["web.1", "web.2", "worker.1"]), what="three dynos up")
    for d in ds:
        assert d["release"] == {"version": 1} and d["size"] == "standard-1x"
        assert set(d) >= {"name", "type", "state", "command", "size", "release", "addr",
                          "created_at", "updated_at"}
    m = by_name(ds)
    assert m["worker.1"]["addr"] is None and m["web.1"]["addr"].endswith(":5000")
    # routes.json: two web backends, up
    routes = dynod.routes()
    app = next(a for a in routes["apps"] if a["name"] == "app")
    assert app["state"] == "up" and app["hosts"] == ["app.localhost"]
    assert sorted(b["dyno"] for b in app["backends"]) == ["web.1", "web.2"]
    assert all(not b["draining"] for b in app["backends"])
    assert {b["addr"] for b in app["backends"]} == {m["web.1"]["addr"], m["web.2"]["addr"]}
    # the web dyno answers at its address, from dynod's network namespace
    r = dynod.netns("curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                    f"http://{m['web.1']['addr']}/Procfile")
    assert r.stdout == "200", r
    env = environ(app_pid(m["web.1"]["pid"]))
    assert env["PORT"] == "5000" and env["DYNO"] == "web.1"
    assert env["HEROKU_RELEASE_VERSION"] == "v1"
    code, one = dynod.curl("GET", "/apps/app/dynos/web.1")
    assert code == 200 and one == m["web.1"] | {"updated_at": one["updated_at"]}
    code, err = dynod.curl("GET", "/apps/app/dynos/web.9")
    assert code == 404 and err["id"] == "not_found"
    assert dynod.curl("POST", "/apps/app/dynos/web.1/actions/nope")[0] == 404
    assert dynod.curl("PUT", "/apps/app/dynos")[0] == 405
    # ps shows them
    r = dynod.cli("ps")
    assert "web.1: up" in r.stdout and "worker.1: up" in r.stdout, r.stdout
    # shaped as heroku ps: the type's header, a line per dyno with its age
    assert re.search(r"^=== web \(standard-1x\): `[^`]+` \(2\)$", r.stdout, re.M), r.stdout
    assert re.search(r"^web\.1: up \d{4}/\d\d/\d\d \d\d:\d\d:\d\d \+0000 "
                     r"\(~ \d+[smhd] ago\)$", r.stdout, re.M), r.stdout

    # a crash: restarted at once, then after 1s, then 2s
    for n in range(3):
        pid = by_name(dynod.dynos())["worker.1"]["pid"]
        os.kill(app_pid(pid), signal.SIGKILL)
        dynod.wait(lambda ds: by_name(ds)["worker.1"]["pid"] not in (0, pid) and
                   by_name(ds)["worker.1"]["state"] == "up", timeout=10, what="restart")
    log = dynod.log.read_text()
    assert "dyno[worker.1]: State changed from up to crashed" in log
    assert "dyno[worker.1]: State changed from crashed to starting" in log
    assert "restarting in 1 s" in log and "restarting in 2 s" in log

    # config:set: a new release, every dyno replaced, with the new env; the
    # release's number is the platform's, a config var does not change it
    r = dynod.cli("config:set", "GREETING=hi", "HEROKU_RELEASE_VERSION=v99")
    assert r.returncode == 0, r.stderr
    ds = dynod.wait(lambda ds: all_up(["web.1", "web.2", "worker.1"])(ds) and
                    all(d["release"]["version"] == 2 for d in ds), what="v2 dynos")
    for d in ds:
        env = environ(app_pid(d["pid"]))
        assert env["GREETING"] == "hi" and env["HEROKU_RELEASE_VERSION"] == "v2"
    # rollback to v1: v3, without the var
    assert dynod.cli("rollback", "v1").returncode == 0
    ds = dynod.wait(lambda ds: all_up(["web.1", "web.2", "worker.1"])(ds) and
                    all(d["release"]["version"] == 3 for d in ds), what="v3 dynos")
    for d in ds:
        assert "GREETING" not in environ(app_pid(d["pid"]))

    # restart one, stop one: both come back with new processes
    old = by_name(ds)
    r = dynod.cli("ps:restart", "web.1")
    assert r.returncode == 0, r.stdout + r.stderr + dynod.log.read_text()[-4000:]
    assert dynod.cli("ps:stop", "worker.1").returncode == 0
    dynod.wait(lambda ds: all_up(["web.1", "web.2", "worker.1"])(ds) and
               by_name(ds)["web.1"]["pid"] != old["web.1"]["pid"] and
               by_name(ds)["worker.1"]["pid"] != old["worker.1"]["pid"] and
               by_name(ds)["web.2"]["pid"] == old["web.2"]["pid"], what="restart")
    r = dynod.cli("ps:restart", "clock")
    assert r.returncode == 1 and "no dyno clock" in r.stderr

    # scale down: the dyno goes, its backend too
    assert dynod.cli("ps:scale", "web=1").returncode == 0
    dynod.wait(all_up(["web.1", "worker.1"]), what="scale down")
    app = next(a for a in dynod.routes()["apps"] if a["name"] == "app")
    assert [b["dyno"] for b in app["backends"]] == ["web.1"]

    # web scaled to 0: no-web
    assert dynod.cli("ps:scale", "web=0").returncode == 0
    dynod.wait(all_up(["worker.1"]), what="web scaled to 0")
    app = next(a for a in dynod.routes()["apps"] if a["name"] == "app")
    assert app["state"] == "no-web" and app["backends"] == []

    # destroy leaves nothing
    pids = [d["pid"] for d in dynod.dynos()]
    r = dynod.cli("apps:destroy", "--confirm", "app")
    assert r.returncode == 0, r.stderr
    end = time.monotonic() + 10
    while time.monotonic() < end and (dynod.cgroups() or
                                      any(Path(f"/proc/{p}").exists() for p in pids)):
        time.sleep(0.1)
    assert dynod.cgroups() == []
    assert not any(Path(f"/proc/{p}").exists() for p in pids)
    links = dynod.netns("ip", "-o", "link").stdout
    assert not VETH.search(links), links
    rules = dynod.netns("nft", "list", "ruleset").stdout
    assert "dy-*" in rules and not VETH.search(rules), rules
    assert dynod.routes()["apps"] == []


def test_boot_timeout_and_failed_release(dynod, tmp_path):
    slug = make_app(dynod, tmp_path, "web: exec sleep 1000\n")
    assert dynod.cli("apps:create", "app").returncode == 0
    # --no-wait: the release as it goes (test_wait.py has the CLI's wait)
    assert dynod.cli("deploy", slug, "--no-wait").returncode == 0
    # the web dyno never comes up: the rollout aborts, the release fails
    # naming why, and nothing is left running
    end = time.monotonic() + 12
    while time.monotonic() < end:
        rels = json.loads(dynod.cli("releases", "--json").stdout)
        if rels[-1]["status"] != "pending":
            break
        time.sleep(0.1)
    assert rels[-1]["status"] == "failed", rels
    assert rels[-1]["failure"] == "web.1 crashed: Error R10 (Boot timeout)"
    dynod.wait(lambda ds: ds == [], what="the aborted web.1 gone")
    log = dynod.log.read_text()
    assert "dyno[web.1]: Error R10 (Boot timeout)" in log
    assert "dyno[web.1]: State changed from starting to crashed" in log
    app = next(a for a in dynod.routes()["apps"] if a["name"] == "app")
    assert app["backends"] == []

    # a good release, then one whose release phase fails: v2 keeps serving
    good = make_app(dynod, tmp_path, f"release: exit 0\nweb: {WEB}\n")
    assert dynod.cli("deploy", good, "--no-wait").returncode == 0
    dynod.wait(lambda ds: [(d["name"], d["state"], d["release"]["version"]) for d in ds] ==
               [("web.1", "up", 2)], what="v2 up")
    bad = make_app(dynod, tmp_path, f"release: echo migrating; exit 3\nweb: {WEB}\n")
    assert dynod.cli("deploy", bad, "--no-wait").returncode == 0
    end = time.monotonic() + 10
    rels = []
    while time.monotonic() < end:
        rels = json.loads(dynod.cli("releases", "--json").stdout)
        if rels[-1]["status"] != "pending":
            break
        time.sleep(0.1)
    assert [r["status"] for r in rels] == ["failed", "succeeded", "failed"], rels
    ds = dynod.dynos()
    assert [(d["name"], d["state"], d["release"]["version"]) for d in ds] == [("web.1", "up", 2)]
    assert "dyno[release.2]: Process exited with status 3" in dynod.log.read_text()


def test_sigterm_stops_every_dyno(tmp_path, dyno_bin):
    d = Dynod(tmp_path, dyno_bin)
    try:
        d.start()
        # a worker that ignores SIGTERM: killed after the 1s grace (R12)
        slug = make_app(d, tmp_path, "web: trap '' TERM; exec python3 -m http.server $PORT\n"
                        "worker: trap '' TERM; while true; do sleep 0.1; done\n")
        assert d.cli("apps:create", "app").returncode == 0
        assert d.cli("deploy", slug).returncode == 0
        assert d.cli("ps:scale", "worker=1").returncode == 0
        # bound to 0.0.0.0 by default: up
        ds = d.wait(all_up(["web.1", "worker.1"]), what="two dynos up")
        # restart web.1: a fresh one starts beside it; the old one serves
        # until the fresh one is up, then drains and stops
        old1 = by_name(ds)["web.1"]["pid"]
        # --no-wait: the instant after the restart (the CLI waits otherwise)
        assert d.cli("ps:restart", "web.1", "--no-wait").returncode == 0
        app = next(a for a in d.routes()["apps"] if a["name"] == "app")
        assert [(b["dyno"], b["draining"]) for b in app["backends"]] == [("web.1", False)]
        ds = d.wait(lambda ds: all_up(["web.1", "worker.1"])(ds) and len(ds) == 2 and
                    by_name(ds)["web.1"]["pid"] != old1, what="web.1 replaced")
        assert not alive(old1)
        app = next(a for a in d.routes()["apps"] if a["name"] == "app")
        assert [(b["dyno"], b["draining"]) for b in app["backends"]] == [("web.1", False)]
        pids = [x["pid"] for x in ds]
        t = time.monotonic()
        assert d.stop() == 0
        assert time.monotonic() - t < 10
        assert d.cgroups() == []
        assert not any(Path(f"/proc/{p}").exists() for p in pids)
        log = d.log.read_text()
        assert "dyno[worker.1]: Error R12 (Exit timeout)" in log
        assert "dyno[web.1]: State changed from up to down" in log
        # started again: the formation comes back
        d.start()
        ds = d.wait(all_up(["web.1", "worker.1"]), what="dynos back after restart")
        # kill -9: the dynos outlive dynod; not re-adopted yet, the next
        # dynod kills and sweeps them, then starts the formation afresh
        old = [x["pid"] for x in ds]
        d.proc.kill()
        d.proc.wait()
        d.proc = None
        d.logf.close()
        assert all(Path(f"/proc/{p}").exists() for p in old)
        d.start()
        ds = d.wait(all_up(["web.1", "worker.1"]), what="dynos after kill -9")
        assert not any(alive(p) for p in old), [status(p) for p in old]
        assert len(d.cgroups()) == 2 * len(CONTROLLERS)
        assert d.stop() == 0
        log = d.log.read_text()
        assert "Sanitizer" not in log and "runtime error:" not in log, log[-3000:]
        assert d.cgroups() == []
    finally:
        if d.proc is not None:
            d.proc.kill()
            d.proc.wait()
        d.sweep()


def test_oom_is_r15_and_a_crash(dynod, tmp_path):
    # tiny is 32M (kernel limit 64M): 200M of touched memory is an OOM kill
    # of the whole dyno
    # hog: 48M, over the quota, under the kernel limit: R14, runs on
    slug = make_app(dynod, tmp_path, "worker: exec python3 -c 'import time; a = b\"x\" * "
                    "(200 << 20); time.sleep(100)'\nweb: " + WEB + "\n"
                    "hog: exec python3 -c 'import time; a = b\"x\" * (48 << 20); "
                    "time.sleep(100)'\n")
    assert dynod.cli("apps:create", "app").returncode == 0
    assert dynod.cli("deploy", slug).returncode == 0
    assert dynod.cli("ps:scale", "web=0", "worker=1:tiny", "hog=1:tiny").returncode == 0
    end = time.monotonic() + 20
    while time.monotonic() < end and not ("Error R15" in dynod.log.read_text() and
                                          "Error R14" in dynod.log.read_text()):
        time.sleep(0.1)
    assert "dyno[hog.1]: Error R14 (Memory quota exceeded)" in dynod.log.read_text()
    assert by_name(dynod.dynos())["hog.1"]["state"] == "up"
    assert dynod.cli("ps:scale", "hog=0").returncode == 0
    log = dynod.log.read_text()
    assert "dyno[worker.1]: Error R15 (Memory quota vastly exceeded)" in log, log[-3000:]
    assert "dyno[worker.1]: State changed from up to crashed" in log
    assert dynod.cli("ps:scale", "worker=0").returncode == 0
    dynod.wait(lambda ds: ds == [], what="worker gone")


def test_destroy_waits_for_the_grace(dynod, tmp_path):
    """apps:destroy answers at once; the app's files go once its last dyno
    has exited (a web dyno that ignores SIGTERM: after the 1s grace)."""
    slug = make_app(dynod, tmp_path, "web: trap '' TERM; exec python3 -m http.server $PORT\n")
    assert dynod.cli("apps:create", "app").returncode == 0
    assert dynod.cli("deploy", slug).returncode == 0
    ds = dynod.wait(all_up(["web.1"]), what="web.1 up")
    pids = [d["pid"] for d in ds]
    appdir = dynod.state / "apps" / "app"
    assert appdir.is_dir()
    r = dynod.cli("apps:destroy", "--confirm", "app")
    assert r.returncode == 0, r.stderr
    # gone from the API at once; the dyno is in its grace, its files stay
    assert dynod.cli("apps:info").returncode == 1
    assert not (appdir / "app.json").exists()
    graves = list((dynod.state / "apps").glob("app.gone-*"))
    assert any(alive(p) for p in pids) and len(graves) == 1, graves
    end = time.monotonic() + 5
    while time.monotonic() < end and (dynod.cgroups() or any(alive(p) for p in pids) or
                                      list((dynod.state / "apps").iterdir())):
        time.sleep(0.05)
    assert not any(alive(p) for p in pids)
    assert dynod.cgroups() == []
    assert list((dynod.state / "apps").iterdir()) == []
    links = dynod.netns("ip", "-o", "link").stdout
    assert not VETH.search(links), links
    assert "dyno[web.1]: Error R12 (Exit timeout)" in dynod.log.read_text()


def test_one_dynod_per_cgroup_parent_and_its_own_leftovers(tmp_path, dyno_bin):
    """A second dynod on a cgroup parent in use is refused, naming the
    first; the parent is capped at the host's total minus host_reserve; a
    dynod of another state dir leaves a dead dynod's dynos alone, and the
    dead one's own dynod sweeps them."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = Dynod(tmp_path / "a", dyno_bin)
    b = Dynod(tmp_path / "b", dyno_bin)
    b.parent = a.parent
    cfg = json.loads(b.config.read_text())
    cfg["cgroup_parent"] = a.parent
    b.config.write_text(json.dumps(cfg))
    try:
        a.start()
        slug = make_app(a, tmp_path, f"worker: {WORKER}\n")
        assert a.cli("apps:create", "app").returncode == 0
        assert a.cli("deploy", slug).returncode == 0
        assert a.cli("ps:scale", "worker=1").returncode == 0
        a.wait(lambda ds: any(d["state"] == "up" for d in ds), what="worker up")

        # the parent's caps: the host's total minus host_reserve (1G, 4096)
        pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
        pids_max = Path("/sys/fs/cgroup/pids", a.parent, "pids.max").read_text().strip()
        assert pids_max == str(pid_max - 4096)
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        mem = Path("/sys/fs/cgroup/memory", a.parent, "memory.limit_in_bytes")
        if mem.exists():
            page = os.sysconf("SC_PAGE_SIZE")
            assert int(mem.read_text()) == (total - (1 << 30)) // page * page

        # a second dynod on the parent: refused before it touches anything
        r = subprocess.run([str(BUILD / "bin" / "dynod"), "--config", str(b.config)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1
        assert r.stderr.startswith(
            f"dynod: error: cgroup_parent {a.parent} is in use by another dynod "
            f"(pid {a.proc.pid}: "), r.stderr
        assert not os.path.exists(b.sock)
        assert any(d["state"] == "up" for d in a.dynos())

        # a dies hard: its dyno lives on; b (another state dir) takes the
        # parent and leaves a's dyno alone
        left = a.cgroups()
        assert left
        a.proc.kill()
        a.proc.wait()
        a.proc = None
        a.logf.close()
        cg = Path("/sys/fs/cgroup/pids", a.parent,
                  next(c for c in left if c.startswith("pids/")).split("/", 1)[1])
        procs = (cg / "cgroup.procs").read_text().split()
        assert procs
        b.start()
        time.sleep(0.5)
        assert cg.is_dir()
        assert all(alive(int(p)) for p in procs), "b killed a's dyno"
        assert b.stop() == 0, b.log.read_text()[-3000:]
        assert all(alive(int(p)) for p in procs)

        # a again: its own leftovers are swept, its formation starts afresh
        a.start()
        end = time.monotonic() + 10
        while time.monotonic() < end and any(alive(int(p)) for p in procs):
            time.sleep(0.1)
        assert not any(alive(int(p)) for p in procs)
        assert "swept 1 dynos left by a previous dynod" in a.log.read_text()
        a.wait(lambda ds: any(d["state"] == "up" for d in ds), what="worker up again")
        assert a.stop() == 0, a.log.read_text()[-3000:]
        assert a.cgroups() == [], a.cgroups()
    finally:
        for d in (a, b):
            if d.proc is not None:
                d.proc.kill()
                d.proc.wait()
        a.sweep()


def api_get_seconds(sock_path, path="/apps"):
    """One GET over dynod's API socket: the seconds to its whole answer."""
    t = time.monotonic()
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30)
        s.connect(sock_path)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: dynod\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    return time.monotonic() - t


def test_scale_leaves_the_api_free_and_a_scale_down_mid_start_leaves_nothing(dynod, tmp_path):
    """Starts run off dynod's loop (docs/architecture.md, "Work off the
    loop"): while web scales to 20 the API answers at once, and web=0 sent
    while the starts are in flight stops every fresh dyno as its start ends:
    no dyno, cgroup or veth left."""
    src_listen = BUILD / "tests" / "bench" / "tiny-web"
    # the static web process of the bench boots in a millisecond
    src = tmp_path / "src-listen"
    src.mkdir()
    (src / "Procfile").write_text("web: exec ./tiny-web\n")
    (src / "tiny-web").write_bytes(src_listen.read_bytes())
    (src / "tiny-web").chmod(0o755)
    slug = tmp_path / "listen.tgz"
    r = dynod.cli("slugs:create", src, "-o", slug)
    assert r.returncode == 0, r.stderr
    assert dynod.cli("apps:create", "app").returncode == 0
    assert dynod.cli("deploy", slug).returncode == 0
    dynod.wait(all_up(["web.1"]), what="web.1 up")

    names = [f"web.{i}" for i in range(1, 21)]
    # GET /apps every 10 ms from just before the scale until all are up:
    # the scale's own request returns once its starts are queued
    lat, stop = [], threading.Event()

    def poll():
        while not stop.is_set():
            lat.append(api_get_seconds(dynod.sock))
            time.sleep(0.01)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    time.sleep(0.05)
    t0 = time.monotonic()
    try:
        r = dynod.cli("ps:scale", "web=20")
        assert r.returncode == 0, r.stderr
        dynod.wait(all_up(names), timeout=60, what="web.1..20 up")
    finally:
        stop.set()
        poller.join()
    duration = time.monotonic() - t0
    # inline, each start held the loop 5-20 ms (more under ASan): 20 of
    # them in the scale's callback; off the loop a GET waits for no start
    bound = min(0.1, duration / 5)
    assert lat and max(lat) < bound, (max(lat), duration, len(lat), sorted(lat)[-5:])

    assert dynod.cli("ps:scale", "web=0").returncode == 0
    dynod.wait(lambda ds: ds == [], what="web=0")
    # web=0 while the 20 starts are in flight
    assert dynod.cli("ps:scale", "web=20").returncode == 0
    assert dynod.cli("ps:scale", "web=0").returncode == 0
    dynod.wait(lambda ds: ds == [], what="web=0 during the starts")
    end = time.monotonic() + 10
    while time.monotonic() < end and dynod.cgroups():
        time.sleep(0.05)
    assert dynod.cgroups() == []
    links = dynod.netns("ip", "-o", "link").stdout
    assert not VETH.search(links), links
    # dynod's SIGTERM while the starts are in flight: each stops as its
    # start ends, then dynod exits
    assert dynod.cli("ps:scale", "web=20").returncode == 0
    assert dynod.stop() == 0, dynod.log.read_text()[-3000:]
    assert dynod.cgroups() == []
    log = dynod.log.read_text()
    assert "Sanitizer" not in log and "runtime error:" not in log, log[-3000:]


def pool_cgroups(d):
    """The pool entries' cgroups under d's parent (pids hierarchy): {name:
    pids}; a dyno taken from the pool keeps its entry's name."""
    p = Path("/sys/fs/cgroup/pids", d.parent)
    if not p.is_dir():
        return {}
    return {c.name: (c / "cgroup.procs").read_text().split() for c in p.iterdir()
            if c.is_dir() and "pool-" in c.name}


def test_pool_serves_starts_and_a_crashed_dynods_pool_is_swept(tmp_path, dyno_bin):
    # dyno.pool.size 2: dynos are taken from prepared entries (their ids
    # are the entries'); dynod's kill -9 leaves its waiting entries, which
    # end with it, and the next dynod sweeps them: no cgroup, veth, chain
    # or process of theirs is left
    d = Dynod(tmp_path, dyno_bin, pool=2)
    netns_fd = None
    try:
        d.start()
        end = time.monotonic() + 20
        while time.monotonic() < end and len(pool_cgroups(d)) < 2:
            time.sleep(0.05)
        assert len(pool_cgroups(d)) == 2, d.log.read_text()[-3000:]
        slug = make_app(d, tmp_path, f"web: {WEB}\nworker: {WORKER}\n")
        assert d.cli("apps:create", "app").returncode == 0
        assert d.cli("deploy", slug).returncode == 0
        assert d.cli("ps:scale", "worker=1").returncode == 0
        ds = d.wait(all_up(["web.1", "worker.1"]), what="pooled dynos up")
        # each dyno's init sits in a pool entry's cgroup, its hostname the id
        taken = {}
        for x in ds:
            cg = next(ln for ln in Path(f"/proc/{x['pid']}/cgroup").read_text().splitlines()
                      if ":pids:" in ln).rsplit("/", 1)[1]
            taken[x["name"]] = cg
        assert all("pool-" in cg for cg in taken.values()), taken
        assert len(set(taken.values())) == 2, taken
        assert d.netns("nsenter", f"--uts=/proc/{ds[0]['pid']}/ns/uts", "hostname") \
            .stdout.strip() == taken[ds[0]["name"]]
        # refilled: two entries wait besides the two dynos
        end = time.monotonic() + 20
        while time.monotonic() < end and len(pool_cgroups(d)) < 4:
            time.sleep(0.05)
        waiting = {n: p for n, p in pool_cgroups(d).items() if n not in taken.values()}
        assert len(waiting) == 2, pool_cgroups(d)
        veths = {n: "dy-" + hashlib.sha256(n.encode()).hexdigest()[:12] for n in waiting}
        # an entry's cgroup comes before its veth: wait for its preparation
        end = time.monotonic() + 20
        while True:
            links = d.netns("ip", "-o", "link").stdout
            if all(v in links for v in veths.values()) or time.monotonic() > end:
                break
            time.sleep(0.05)
        assert all(v in links for v in veths.values()), (veths, links)

        # kill -9; the next dynod runs in the same network namespace, as on
        # a host
        netns_fd = os.open(f"/proc/{d.proc.pid}/ns/net", os.O_RDONLY)
        d.proc.kill()
        d.proc.wait()
        d.proc = None
        d.logf.close()
        d.start(netns=f"/proc/{os.getpid()}/fd/{netns_fd}")
        d.wait(all_up(["web.1", "worker.1"]), what="dynos after kill -9")
        end = time.monotonic() + 10
        while time.monotonic() < end and any(n in pool_cgroups(d) for n in waiting):
            time.sleep(0.1)
        assert not any(n in pool_cgroups(d) for n in waiting), pool_cgroups(d)
        assert not any(alive(int(p)) for ps in waiting.values() for p in ps)
        links = d.netns("ip", "-o", "link").stdout
        chains = d.netns("nft", "list", "chains").stdout
        for v in veths.values():
            assert v not in links, links
            assert f"d-{v[3:]} " not in chains, chains
        assert "swept" in d.log.read_text()
        assert d.stop() == 0, d.log.read_text()[-3000:]
        assert d.cgroups() == [], d.cgroups()
        log = d.log.read_text()
        assert "Sanitizer" not in log and "runtime error:" not in log, log[-3000:]
    finally:
        d.kill_and_sweep()
        if netns_fd is not None:
            os.close(netns_fd)
