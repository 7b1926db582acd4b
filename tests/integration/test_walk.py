"""The walk of docs/getting-started.md, by hand, on a clean state dir: a real
dynod (and its router) in a network namespace of the test's own
(test_router_keeper's `kept`), the CLI as a user types it, requests through
the router on 127.0.0.1:8080 with `Host: getting-started.localhost` from
inside that namespace, and `dyno local` last."""
import os
import re

import pytest

from conftest import ROOT
from test_getting_started import Local
from test_router_keeper import kept  # noqa: F401 (the fixture)
from test_supervise import all_up

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="dynos need root"),
              pytest.mark.heavy]

APP = "getting-started"
SERVED = re.compile(r"Served by <b id=dyno>([^<]+)</b>, release <b id=release>([^<]+)</b>")


def walk(d, *args):
    """`dyno ARGS`, after `export DYNO_APP=getting-started`."""
    r = d.cli(*args)
    assert r.returncode == 0, f"dyno {' '.join(map(str, args))}: {r.stdout}{r.stderr}"
    return r.stdout


def page(d, path="/"):
    """GET path through the router, as a browser asking for
    getting-started.localhost:8080: (status, body)."""
    r = d.netns("curl", "-s", "-m", "10", "-H", f"Host: {APP}.localhost", "-w", "\n%{http_code}",
                f"http://127.0.0.1:8080{path}", timeout=20)
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body


def served_by(d, want, most=60):
    """Requests / until the dynos in want have each served one (at most
    `most` requests): the dynos and releases seen, every answer a 200."""
    dynos, releases = set(), set()
    for _ in range(most):
        code, body = page(d)
        assert code == 200, body
        m = SERVED.search(body)
        assert m, body
        dynos.add(m.group(1))
        releases.add(m.group(2))
        if dynos >= want:
            break
    return dynos, releases


def test_the_getting_started_walk(kept, dyno_bin, tmp_path):  # noqa: F811
    d = kept.start()
    d.app = APP
    out = d.cli("apps:create", APP).stdout
    assert f"Creating {APP}... done" in out and f"http://{APP}.localhost:8080/" in out, out

    out = walk(d, "deploy", ROOT / "examples" / APP)
    assert "created v1" in out and "release: no DATABASE_URL, nothing to do" in out, out
    assert "done, v1" in out, out

    out = walk(d, "ps:scale", "web=2")
    assert "now running web at 2:standard-1x" in out, out
    d.wait(all_up(["web.1", "web.2"]), what="web.1 and web.2 up")
    assert served_by(d, {"web.1", "web.2"}) == ({"web.1", "web.2"}, {"v1"})
    code, body = page(d, "/db")
    assert code == 200 and f"dyno addons:create postgresql -a {APP}" in body, body

    out = walk(d, "ps:scale", "web=3")
    assert "now running web at 3:standard-1x" in out, out
    d.wait(all_up(["web.1", "web.2", "web.3"]), what="three web dynos up")
    assert served_by(d, {"web.1", "web.2", "web.3"}) == ({"web.1", "web.2", "web.3"}, {"v1"})

    code, body = page(d)
    assert "<p>Greeting: hello</p>" in body, body
    out = walk(d, "config:set", "GREETING=hi")
    assert "created v2" in out and "done, v2" in out, out
    assert walk(d, "config:get", "GREETING").strip() == "hi"
    # once config:set is done, every request is served by v2's dynos
    for _ in range(6):
        code, body = page(d)
        assert code == 200 and "<p>Greeting: hi</p>" in body, body
        assert SERVED.search(body).group(2) == "v2", body

    log = walk(d, "logs", "-n", "500")
    assert re.search(r'app\[web\.1\]: \S+ "GET / HTTP/1\.1" 200', log), log
    assert "dyno[web.1]: State changed from starting to up" in log, log
    assert re.search(r"router\[router\]: at=info method=GET path=\"/\" "
                     rf"host={APP}\.localhost .* dyno=web\.\d .*status=200", log), log

    assert d.stop() == 0, d.log.read_text()[-3000:]

    # the same app without the platform
    local = Local(dyno_bin, tmp_path)
    try:
        code, body = local.get("/")
        assert code == 200
        assert "Served by <b id=dyno>web.1</b>, release <b id=release>none</b>" in body, body
    finally:
        assert local.stop() == 0, local.output()
    assert "listening on port 5006 as web.1" in local.output(), local.output()
