"""Builds through Heroku's buildpack API (docs/builds.md; runtime/manager/
builds.c, runtime/builder/dyno-build, buildpacks/): a git push builds in a
build dyno (the app's uid, no caps, its own netns, no egress), the output
streams back to the pusher, the slug is packed inside the dyno and
released; failed builds refuse the push and the old release serves on."""
import json
import os
import subprocess
import time

import pytest

from test_push import commit, git, remote, version, work_tree  # noqa: F401
from test_router_keeper import answers, kept  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="dynos need root"),
              pytest.mark.heavy]

# a stdlib web app; psycopg2 is the stack's (python3-psycopg2, install-deps)
APP_PY = """\
import http.server, os
class H(http.server.SimpleHTTPRequestHandler):
    pass
import psycopg2  # the stack's: the venv sees it
http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), H).serve_forever()
"""


def python_app(tmp_path, name="src", procfile="web: python app.py\n", extra=None):
    src = tmp_path / name
    src.mkdir()
    git(src, "init", "-q", "-b", "main")
    (src / "Procfile").write_text(procfile)
    (src / "app.py").write_text(APP_PY)
    (src / "requirements.txt").write_text("psycopg2>=2.8\n")
    (src / "version.txt").write_text("one\n")
    for k, v in (extra or {}).items():
        p = src / k
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(v)
        if k.startswith("bin/") or "/bin/" in k:
            p.chmod(0o755)
    git(src, "add", "-A")
    git(src, "commit", "-q", "-m", "one")
    return src


def push(src, check=True):
    r = git(src, "push", "dyno", "main", check=False, timeout=300)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def builds(d):
    r = d.cli("builds", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_python_push_builds_and_serves(kept, tmp_path):  # noqa: F811
    d = kept.start()
    assert d.cli("apps:create", "app").returncode == 0
    src = python_app(tmp_path)
    remote(d, src)
    r = push(src)
    out = r.stderr
    print(out)
    assert "remote: -----> Python app detected" in out, out
    assert "The stack already satisfies every requirement" in out, out
    assert "remote: -----> Released v1" in out and "remote: done, v1" in out, out
    answers(d)
    assert version(d) == "one\n"
    bs = builds(d)
    assert len(bs) == 1 and bs[0]["status"] == "succeeded", bs
    assert bs[0]["release"] == {"version": 1} and bs[0]["slug"]["id"], bs
    sha = git(src, "rev-parse", "HEAD").stdout.strip()
    assert bs[0]["source_blob"]["version"] == sha
    r = d.cli("builds:output", bs[0]["id"])
    assert r.returncode == 0 and "Python app detected" in r.stdout, r
    # the build's work directory is gone, its output and object kept
    end = time.monotonic() + 10
    while len(list((d.state / "builds" / "app").iterdir())) > 2 and time.monotonic() < end:
        time.sleep(0.1)
    left = sorted(p.name for p in (d.state / "builds" / "app").iterdir())
    assert left == sorted([bs[0]["id"] + ".json", bs[0]["id"] + ".log"]), left
