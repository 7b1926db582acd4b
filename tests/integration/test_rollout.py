"""Releases without downtime (docs/design.md, "Releases without downtime";
runtime/manager/rollout.c): while a bounded load loop runs through the
router (keep-alive and new connections, tests/integration/loadkit.py), a
deploy, a config:set, a rollback and a ps:restart each replace the web
dynos, and a deploy whose web never boots is aborted: every response is a
200, and the aborted deploy exits 1 naming R10 while the release before it
serves on. Run with -s to see the counts."""
import json
import os
import re
import subprocess
import time

import pytest

from loadkit import Load
from test_router_keeper import answers, kept  # noqa: F401 (the fixture)
from test_supervise import WEB, all_up, make_app

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="dynos need root"),
              pytest.mark.heavy]


def serving(d):
    """The web dynos that take requests (not those draining)."""
    return sorted((x["name"], x["state"], x["release"]["version"]) for x in d.dynos()
                  if x["type"] == "web" and not x["stopping"])


def test_changes_under_load_fail_no_request(kept, tmp_path):  # noqa: F811
    d = kept.start()
    one = make_app(d, tmp_path, f"web: {WEB}\n", files={"version.txt": "one\n"})
    two = make_app(d, tmp_path, f"web: {WEB}\n", files={"version.txt": "two\n"})
    bad = make_app(d, tmp_path, "web: exec sleep 1000\n", files={"version.txt": "bad\n"})
    assert d.cli("apps:create", "app").returncode == 0
    assert d.cli("deploy", one).returncode == 0
    assert d.cli("ps:scale", "web=2").returncode == 0
    d.wait(all_up(["web.1", "web.2"]), what="web.1 and web.2 up")
    answers(d)

    load = Load(d.ns, tmp_path, path="/version.txt")
    try:
        steps = []

        def step(*args, ok=True):
            r = d.cli(*args)
            steps.append((args[0], r.returncode))
            assert (r.returncode == 0) == ok, r.stdout + r.stderr
            # the old dynos drain (500 ms here) while the load goes on
            d.wait(lambda ds: len([x for x in ds if x["type"] == "web"]) == 2, timeout=15,
                   what="the replaced dynos gone")
            return r

        step("deploy", two)
        assert serving(d) == [("web.1", "up", 2), ("web.2", "up", 2)]
        step("config:set", "FOO=bar")
        step("rollback")  # to v2: two, without FOO
        before = {x["name"]: x["pid"] for x in d.dynos()}
        step("ps:restart")
        after = {x["name"]: x["pid"] for x in d.dynos()}
        assert set(before.values()).isdisjoint(after.values())
        r = step("deploy", bad, ok=False)
        # the fresh dynos start side by side (dyno.start_threads): the
        # first to time out aborts the rollout, whichever it is
        assert re.search(r"release v5 failed: web\.[12] crashed: Error R10 \(Boot timeout\)",
                         r.stderr), r.stderr
    finally:
        out = load.stop()
    print(f"\nrollouts under load: {steps}: {out.requests} requests, "
          f"status {out.status}, {len(out.errors)} errors, bodies {out.bodies}")
    assert out.errors == [], out.errors[:10]
    assert list(out.status) == ["200"], out.status
    # both releases served, the one that never booted never did
    assert set(out.bodies) == {"one\n", "two\n"}, out.bodies
    assert out.requests > 100

    rels = json.loads(d.cli("releases", "--json").stdout)
    assert [(r["version"], r["status"]) for r in rels] == [
        (1, "succeeded"), (2, "succeeded"), (3, "succeeded"), (4, "succeeded"),
        (5, "failed")]
    assert re.fullmatch(r"web\.[12] crashed: Error R10 \(Boot timeout\)", rels[-1]["failure"]), rels
    # v4 (the rollback) serves on
    assert serving(d) == [("web.1", "up", 4), ("web.2", "up", 4)]
    assert d.get("/version.txt") == "200"


def test_a_change_during_a_rollout_builds_on_it(kept, tmp_path):  # noqa: F811
    """A config:set while a deploy rolls out: its release holds the new slug
    and supersedes the rollout; nothing is lost."""
    d = kept.start()
    one = make_app(d, tmp_path, f"web: {WEB}\n", files={"version.txt": "one\n"})
    slow = make_app(d, tmp_path, f"web: sleep 1; {WEB}\n", files={"version.txt": "two\n"})
    assert d.cli("apps:create", "app").returncode == 0
    assert d.cli("deploy", one).returncode == 0
    d.wait(all_up(["web.1"]), what="web.1 up")
    assert d.cli("deploy", slow, "--no-wait").returncode == 0  # v2, rolling out
    r = d.cli("config:set", "FOO=bar")  # v3 on v2's slug
    assert r.returncode == 0, r.stdout + r.stderr
    rels = json.loads(d.cli("releases", "--json").stdout)
    assert [(x["version"], x["status"]) for x in rels] == [
        (1, "succeeded"), (2, "failed"), (3, "succeeded")], rels
    assert rels[1]["failure"] == "superseded by v3 before its rollout ended"
    assert rels[2]["slug"] == rels[1]["slug"]
    assert serving(d) == [("web.1", "up", 3)]
    assert json.loads(d.cli("config", "--json").stdout) == {"FOO": "bar"}


SLOW_APP = r'''
import http.server, os, time
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/slow":
            time.sleep(2)
        body = ("done " + self.path + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), H).serve_forever()
'''


def test_a_drain_ends_when_its_requests_have(kept, tmp_path):  # noqa: F811
    """dyno.timeouts.drain 20 s, a request of 2 s in flight on the old dyno
    during a config:set: it finishes (200), and the old dyno stops once the
    router has nothing of it in flight, long before the 20 s."""
    d = kept
    cfg = json.loads(d.config.read_text())
    cfg["dyno"]["timeouts"]["drain"] = "20s"
    d.config.write_text(json.dumps(cfg))
    d.start()
    slug = make_app(d, tmp_path, "web: exec python3 app.py\n", files={"app.py": SLOW_APP})
    assert d.cli("apps:create", "app").returncode == 0
    assert d.cli("deploy", slug).returncode == 0
    d.wait(all_up(["web.1"]), what="web.1 up")
    answers(d, path="/")
    old = d.dynos()[0]["pid"]
    slow = subprocess.Popen(["nsenter", f"--net={d.ns}", "curl", "-s", "-w", " %{http_code}",
                             "-H", "Host: app.localhost", "http://127.0.0.1:8080/slow"],
                            stdout=subprocess.PIPE, text=True)
    time.sleep(0.3)  # in flight on the old web.1
    r = d.cli("config:set", "X=1")
    assert r.returncode == 0, r.stdout + r.stderr
    switched = time.monotonic()
    d.wait(lambda ds: old not in [x["pid"] for x in ds], timeout=15, what="old web.1 gone")
    gone = time.monotonic() - switched
    out, _ = slow.communicate(timeout=20)
    assert out == "done /slow\n 200", out
    print(f"\nold web.1 gone {gone:.2f} s after the switch (drain 20 s)")
    assert gone < 8, gone
    log = d.cli("logs", "--dyno", "web.1").stdout
    assert "Drained: no request in flight" in log, log
