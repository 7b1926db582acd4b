"""Custom domains and maintenance mode through the router (docs/cli.md,
"domains", "maintenance"; runtime/manager/manager.c mgr_domain_add()):
a hostname routes to one app only, never one under the platform's domain;
maintenance answers H80 while the dynos keep running, and both survive a
restart of dynod."""
import json
import os

import pytest

from test_router_keeper import answers, kept  # noqa: F401 (the fixture)
from test_supervise import WEB, all_up, make_app

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="dynos need root")


def get(d, host, path="/Procfile"):
    r = d.netns("curl", "-s", "-w", "\n%{http_code}", "-H", f"Host: {host}",
                f"http://127.0.0.1:8080{path}")
    body, _, code = r.stdout.rpartition("\n")
    return code, body


def test_domains_and_maintenance(kept, tmp_path):  # noqa: F811
    d = kept.start()
    slug = make_app(d, tmp_path, f"web: {WEB}\n")
    assert d.cli("apps:create", "app").returncode == 0
    assert d.cli("deploy", slug).returncode == 0
    d.wait(all_up(["web.1"]), what="web.1 up")
    answers(d)

    assert get(d, "www.example.com")[0] == "404"
    r = d.cli("domains:add", "WWW.Example.com")
    assert r.returncode == 0 and r.stdout == "Adding WWW.Example.com to app... done\n", r
    assert get(d, "www.example.com")[0] == "200"
    doms = json.loads(d.cli("domains", "--json").stdout)
    assert doms == [{"hostname": "app.localhost", "kind": "default"},
                    {"hostname": "www.example.com", "kind": "custom"}]
    assert d.cli("domains").stdout == ("=== app Default Domain\napp.localhost\n\n"
                                       "=== app Custom Domains\nwww.example.com\n")
    # one app per hostname; the platform's names are every app's own
    assert d.cli("apps:create", "other").returncode == 0
    r = d.cli("domains:add", "www.example.com", "-a", "other")
    assert r.returncode == 1
    assert "domain www.example.com is in use by another app" in r.stderr, r.stderr
    r = d.cli("domains:add", "other.localhost", "-a", "app")
    assert r.returncode == 1 and "under the platform's domain localhost" in r.stderr
    for bad in ("nodot", "a..b", "a-.example.com", "a_b.example.com"):
        r = d.cli("domains:add", bad)
        assert r.returncode == 1 and "is not a DNS name" in r.stderr, (bad, r.stderr)
    assert d.cli("domains:add", "a/b").returncode == 2

    # maintenance: H80 for every host of the app, the dyno untouched
    pid = d.dynos()[0]["pid"]
    assert d.cli("maintenance").stdout == "off\n"
    r = d.cli("maintenance:on")
    assert r.returncode == 0, r.stderr
    assert d.cli("maintenance").stdout == "on\n"
    d.wait(lambda ds: get(d, "app.localhost")[0] == "503", what="H80")
    code, body = get(d, "www.example.com")
    assert code == "503" and "maintenance" in body.lower(), body
    assert d.dynos()[0]["pid"] == pid

    # both kept across a restart of dynod
    d.kill9()
    d.start()
    d.wait(all_up(["web.1"]), what="web.1 re-adopted")
    assert get(d, "www.example.com")[0] == "503"
    assert d.cli("maintenance:off").returncode == 0
    d.wait(lambda ds: get(d, "www.example.com")[0] == "200", what="served again")
    log = d.cli("logs").stdout
    assert "dyno[api]: Maintenance mode on" in log and "Maintenance mode off" in log, log

    r = d.cli("domains:remove", "www.example.com")
    assert r.returncode == 0, r.stderr
    assert get(d, "www.example.com")[0] == "404"
    r = d.cli("domains:remove", "www.example.com")
    assert r.returncode == 1 and "app has no domain www.example.com" in r.stderr
