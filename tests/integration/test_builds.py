"""Builds through Heroku's buildpack API (docs/builds.md; runtime/manager/
builds.c, runtime/builder/dyno-build, buildpacks/): a git push builds in a
build dyno (the app's uid, no caps, its own netns, no egress), the output
streams back to the pusher, the slug is packed inside the dyno and
released; failed builds refuse the push and the old release serves on."""
import json
import os
import re
import subprocess
import time

import pytest

from test_push import commit, git, remote, version
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


def python_app(tmp_path, name="src", procfile="web: python3 app.py\n", extra=None):
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


def repo(tmp_path, name, files):
    """A git work tree of files (name -> text), committed on main."""
    src = tmp_path / name
    src.mkdir()
    git(src, "init", "-q", "-b", "main")
    for k, v in files.items():
        (src / k).parent.mkdir(parents=True, exist_ok=True)
        (src / k).write_text(v)
    git(src, "add", "-A")
    git(src, "commit", "-q", "-m", name)
    return src


def push(src, check=True):
    r = git(src, "push", "dyno", "main", check=False, timeout=300)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def get_until(d, path, ok, timeout=20):
    """curl through the router until ok(body) or the timeout: the body."""
    end = time.monotonic() + timeout
    while True:
        r = d.netns("curl", "-s", "-w", " %{http_code}", "-H", "Host: app.localhost",
                    f"http://127.0.0.1:8080{path}")
        if ok(r.stdout) or time.monotonic() > end:
            return r.stdout
        time.sleep(0.2)


def builds(d):
    r = d.cli("builds", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_python_push_builds_and_serves(kept, tmp_path):  # noqa: F811
    d = kept.start()
    assert d.cli("apps:create", "app").returncode == 0
    src = python_app(tmp_path, extra={".slugignore": "secret.txt\n", "secret.txt": "no\n"})
    remote(d, src)
    r = push(src)
    out = r.stderr
    print(out)
    assert "remote: -----> Python app detected" in out, out
    assert "The stack already satisfies every requirement" in out, out
    assert "remote: -----> Released v1" in out and "remote: done, v1" in out, out
    answers(d)
    assert version(d) == "one\n"
    assert get_until(d, "/secret.txt", lambda b: True).endswith(" 404")  # .slugignore
    bs = builds(d)
    assert len(bs) == 1 and bs[0]["status"] == "succeeded", bs
    assert bs[0]["release"] == {"version": 1} and bs[0]["slug"]["id"], bs
    sha = git(src, "rev-parse", "HEAD").stdout.strip()
    assert bs[0]["source_blob"]["version"] == sha
    r = d.cli("builds:output", bs[0]["id"])
    assert r.returncode == 0 and "Python app detected" in r.stdout, r
    # builds:create DIR: as a push, from a directory (no commit)
    (src / "version.txt").write_text("dir\n")
    r = d.cli("builds:create", src)
    assert r.returncode == 0, r.stderr
    assert "-----> Python app detected" in r.stdout and "done, v2" in r.stdout, r.stdout
    assert version(d) == "dir\n"
    bs = builds(d)
    assert len(bs) == 2 and bs[1]["source_blob"]["version"] is None, bs
    code, one = d.curl("GET", f"/apps/app/builds/{bs[1]['id']}")
    assert code == 200 and one["release"] == {"version": 2}, one
    code, _ = d.curl("GET", "/apps/app/builds/00000000-0000-4000-8000-000000000000")
    assert code == 404
    # the build's work directory is gone, its output and object kept
    end = time.monotonic() + 10
    while len(list((d.state / "builds" / "app").iterdir())) > 4 and time.monotonic() < end:
        time.sleep(0.1)
    left = sorted(p.name for p in (d.state / "builds" / "app").iterdir())
    assert left == sorted(b["id"] + s for b in bs for s in (".json", ".log")), left

    # the build succeeds, the rollout does not: the push is refused, v2
    # serves on
    commit(src, "three\n", procfile="web: exit 3\n")
    r = push(src, check=False)
    assert r.returncode != 0, r.stderr
    assert "remote: -----> Released v3" in r.stderr, r.stderr
    assert re.search(r"release v3 failed: web\.\d+ crashed", r.stderr), r.stderr
    assert "[remote rejected] main -> main" in r.stderr
    assert version(d) == "dir\n"


def buildpack(tmp_path, name, detect="echo Custom", compile_="echo compiled",
              release="echo '--- {}'", missing=()):
    """A buildpack directory of bash scripts (bin/detect, compile, release)."""
    bp = tmp_path / name
    (bp / "bin").mkdir(parents=True)
    for script, body in (("detect", detect), ("compile", compile_), ("release", release)):
        if script in missing:
            continue
        p = bp / "bin" / script
        p.write_text(f"#!/bin/bash\n{body}\n")
        p.chmod(0o755)
    bp.chmod(0o755)
    tmp_path.chmod(0o755)
    return bp


def test_failed_compile_cache_and_custom_buildpacks(kept, tmp_path):  # noqa: F811
    d = kept.start()
    assert d.cli("apps:create", "app").returncode == 0
    src = python_app(tmp_path)
    remote(d, src)
    push(src)
    answers(d)
    assert version(d) == "one\n"

    # a custom buildpack by path: used instead of the built-ins; its
    # compile writes the cache, prints its isolation; its release gives
    # a worker type the Procfile lacks
    bp = buildpack(tmp_path, "bp", compile_="""\
echo "-----> custom compile"
grep -E '^(Uid|Gid|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status \
  | sed 's/^/       /'
echo "       ifaces: $(awk -F: 'NR > 2 {gsub(/ /, "", $1); print $1}' /proc/net/dev | sort | tr '\\n' ' ')"
echo "       env: $(ls "$3" | tr '\\n' ' ')"
if [ -f "$2/seen" ]; then echo "       cache: $(cat "$2/seen")"; fi
date +%s%N > "$2/seen"
echo made > "$1/made.txt"
""", release="printf 'default_process_types:\\n  worker: sleep 1000\\n'")
    assert d.cli("config:set", "SECRET=s3").returncode == 0
    r = d.cli("buildpacks:set", bp)
    assert r.returncode == 0 and str(bp) in r.stdout, r
    assert str(bp) in d.cli("buildpacks").stdout
    sha2 = commit(src, "two\n")
    r = push(src)
    out = r.stderr
    print(out)
    assert "remote: -----> Custom app detected" in out and "custom compile" in out, out
    assert "Python app detected" not in out
    assert "cache:" not in out  # the first build with this buildpack: empty
    assert "env: SECRET" in out, out
    assert "Default types for buildpack -> worker" in out, out
    # isolated as a web dyno: the app's uid, no capabilities, seccomp, no
    # egress (no default route)
    uid = json.loads(d.cli("apps:info", "--json").stdout).get("uid")
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert f"{cap}:\t0000000000000000" in out, (cap, out)
    assert "NoNewPrivs:\t1" in out and "Seccomp:\t2" in out, out
    assert "Uid:\t0\t" not in out, out
    if uid:
        assert f"Uid:\t{uid}\t{uid}\t{uid}\t{uid}" in out, out
    assert "ifaces: eth0 lo" in out, out
    answers(d)
    assert version(d) == "two\n"
    rels = json.loads(d.cli("releases", "--json").stdout)
    assert rels[-1]["description"] == f"Deploy {sha2[:7]}", rels

    # the second build sees what the first wrote to the cache
    commit(src, "three\n")
    out = push(src).stderr
    assert "remote:        cache: " in out, out
    # builds:cache:purge empties it
    assert d.cli("builds:cache:purge").returncode == 0
    commit(src, "four\n")
    out = push(src).stderr
    assert "cache: " not in out, out
    assert version(d) == "four\n"

    # a compile that exits 1: the push is refused with its output, the
    # current release serves on, main does not move
    bad = buildpack(tmp_path, "bad", compile_="echo 'compiling...'; echo 'oops: broken' >&2; exit 1")
    assert d.cli("buildpacks:set", bad).returncode == 0
    before = git(remote(d, src), "rev-parse", "main").stdout.strip()
    commit(src, "five\n")
    r = push(src, check=False)
    assert r.returncode != 0, r.stderr
    assert "remote: oops: broken" in r.stderr, r.stderr
    assert "bin/compile exited with status 1" in r.stderr, r.stderr
    assert "[remote rejected] main -> main (pre-receive hook declined)" in r.stderr
    assert git(remote(d, src), "rev-parse", "main").stdout.strip() == before
    assert version(d) == "four\n"
    bs = builds(d)
    assert bs[-1]["status"] == "failed" and bs[-1]["release"] is None, bs[-1]
    assert bs[-1]["failure"] == f"buildpack {bad}: bin/compile exited with status 1", bs[-1]

    # a bad bin/release YAML: a clear error naming the line
    yml = buildpack(tmp_path, "yml", release="echo 'default_process_types: [web]'")
    assert d.cli("buildpacks:set", yml).returncode == 0
    r = push(src, check=False)
    assert r.returncode != 0
    assert "line 1: default_process_types: expected a mapping of type: command" in r.stderr, \
        r.stderr

    # a buildpack without bin/detect: a clear error
    nodetect = buildpack(tmp_path, "nodetect", missing=("detect",))
    assert d.cli("buildpacks:set", nodetect).returncode == 0
    r = push(src, check=False)
    assert r.returncode != 0
    assert f"buildpack {nodetect} has no bin/detect" in r.stderr, r.stderr
    assert version(d) == "four\n"

    # a git URL: cloned inside the build dyno, which has no egress here
    url = "https://git.example.invalid/buildpack.git#v1"
    r = d.cli("buildpacks:set", url)
    assert r.returncode == 0 and url in r.stdout, r
    t0 = time.monotonic()
    r = push(src, check=False)
    print(f"git URL without egress: refused in {time.monotonic() - t0:.1f} s")
    assert r.returncode != 0
    assert "-----> Fetching buildpack https://git.example.invalid/buildpack.git (v1)" \
        in r.stderr, r.stderr
    assert "git clone failed: this build dyno has no egress" in r.stderr, r.stderr
    r = d.cli("buildpacks:set", "ftp://x/y")
    assert r.returncode != 0 and "expected an absolute path on this host or a git URL" \
        in r.stderr, r.stderr

    # cleared: the built-ins detect again
    assert d.cli("buildpacks:clear").returncode == 0
    out = push(src).stderr
    assert "remote: -----> Python app detected" in out, out
    assert version(d) == "five\n"


DJANGO = {
    "manage.py": """\
import os, sys
if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "site1.settings")
    from django.core.management import execute_from_command_line
    execute_from_command_line(sys.argv)
""",
    "site1/__init__.py": "",
    "site1/settings.py": """\
from pathlib import Path
BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "test"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["django.contrib.staticfiles"]
# as Heroku's getting-started app: WhiteNoise serves the collected files
MIDDLEWARE = ["whitenoise.middleware.WhiteNoiseMiddleware"]
ROOT_URLCONF = "site1.urls"
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "assets"]
DATABASES = {}
""",
    "site1/urls.py": """\
from django.http import HttpResponse
from django.urls import re_path
urlpatterns = [
    re_path(r"^$", lambda r: HttpResponse("django\\n")),
]
""",
    "site1/wsgi.py": """\
import os
from django.core.wsgi import get_wsgi_application
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "site1.settings")
application = get_wsgi_application()
""",
    "assets/app.css": "body { color: teal }\n",
    # satisfied by the stack (Debian's python3-django, python3-whitenoise,
    # gunicorn): no index is reachable from the build dyno
    "requirements.txt": "Django>=3.2\nwhitenoise\ngunicorn\n",
}


def push_new_app(kept, tmp_path, name, files):  # noqa: F811
    """dynod started, app created, files pushed: (dynod, the push's output)."""
    d = kept.start()
    assert d.cli("apps:create", "app").returncode == 0
    src = repo(tmp_path, name, files)
    remote(d, src)
    out = push(src).stderr
    print(out)
    return d, out


def test_django_collects_static_files(kept, tmp_path):  # noqa: F811
    d, out = push_new_app(kept, tmp_path, "dj", DJANGO)
    assert "remote: -----> Python app detected" in out, out
    assert "python manage.py collectstatic --noinput" in out, out
    assert "static file copied" in out or "static files copied" in out, out
    assert "The stack already satisfies every requirement" in out, out
    # no Procfile: web is bin/release's default, gunicorn as on Heroku
    assert "Default types for buildpack -> web" in out, out
    web = next(x for x in d.dynos() if x["type"] == "web")
    assert web["command"].startswith("gunicorn site1.wsgi"), web
    body = get_until(d, "/static/app.css", lambda b: b.endswith(" 200"))
    assert body == "body { color: teal }\n 200", body
    assert get_until(d, "/", lambda b: b.endswith(" 200")) == "django\n 200"


def test_nodejs_builds_offline(kept, tmp_path):  # noqa: F811
    d, out = push_new_app(kept, tmp_path, "node", {
        "package.json": json.dumps({
            "name": "web", "version": "1.0.0", "private": True,
            "dependencies": {"greet": "file:lib/greet"},
            "scripts": {"build": "node build.js", "start": "node server.js"}}),
        # a local dependency: installed offline, no registry
        "lib/greet/package.json": json.dumps({"name": "greet", "version": "1.0.0",
                                              "main": "index.js"}),
        "lib/greet/index.js": "module.exports = (s) => 'greet: ' + s;\n",
        "build.js": "require('fs').writeFileSync('built.txt', 'built by npm run build\\n')\n",
        "server.js": "const fs = require('fs'), greet = require('greet');\n"
                     "require('http').createServer((q, s) => "
                     "s.end(greet(fs.readFileSync('built.txt'))))"
                     ".listen(process.env.PORT, '0.0.0.0');\n"})
    assert "remote: -----> Node.js app detected" in out, out
    assert "npm install" in out and "npm run build" in out, out
    assert "Default types for buildpack -> web" in out, out
    body = get_until(d, "/", lambda b: b.endswith(" 200"))
    assert body == "greet: built by npm run build\n 200", body


def test_a_build_past_its_timeout_is_stopped(kept, tmp_path):  # noqa: F811
    cfg = json.loads(kept.config.read_text())
    cfg["dyno"]["timeouts"]["build"] = "2s"
    kept.config.write_text(json.dumps(cfg))
    d = kept.start()
    assert d.cli("apps:create", "app").returncode == 0
    slow = buildpack(tmp_path, "slow", compile_="echo 'compiling slowly'; exec sleep 600")
    assert d.cli("buildpacks:set", slow).returncode == 0
    src = python_app(tmp_path)
    remote(d, src)
    t0 = time.monotonic()
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_COMMITTER_NAME="t", HOME="/nonexistent")
    p = subprocess.Popen(["git", "push", "dyno", "main"], cwd=src, env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # one build per app at a time: a second is refused while it runs
    end = time.monotonic() + 10
    while not [x for x in d.dynos() if x["name"].startswith("build.")]:
        assert time.monotonic() < end, "no build dyno"
        time.sleep(0.1)
    other = d.cli("builds:create", src)
    assert other.returncode != 0 and "a build of app is running" in other.stderr, other
    out, err = p.communicate(timeout=60)
    r = subprocess.CompletedProcess(p.args, p.returncode, out, err)
    took = time.monotonic() - t0
    assert r.returncode != 0 and took < 30, (took, r.stderr)
    assert "compiling slowly" in r.stderr, r.stderr
    assert "the build took longer than dyno.timeouts.build (2 s)" in r.stderr, r.stderr
    assert not [x for x in d.dynos() if x["name"].startswith("build.")]
    assert builds(d)[-1]["status"] == "failed"


def test_a_build_past_the_slug_limits_is_refused(kept, tmp_path):  # noqa: F811
    """A compile that writes more than the slug limits allow: the push is
    refused naming the limit, the release before serves on."""
    d = kept
    cfg = json.loads(d.config.read_text())
    cfg["slugs"] = {"max_compressed": "16M", "max_unpacked": "64M"}
    d.config.write_text(json.dumps(cfg))
    d.start()
    assert d.cli("apps:create", "app").returncode == 0
    src = python_app(tmp_path)
    remote(d, src)
    push(src)
    assert get_until(d, "/", lambda b: b.endswith(" 200")).endswith(" 200")
    big = buildpack(tmp_path, "big", compile_='head -c 24000000 /dev/urandom > "$1/big.bin"')
    assert d.cli("buildpacks:set", big).returncode == 0
    (src / "app.py").write_text((src / "app.py").read_text() + "\n# again\n")
    git(src, "commit", "-q", "-am", "again")
    r = push(src, check=False)
    assert r.returncode != 0, r.stderr
    assert "the slug is over slugs.max_compressed" in r.stderr, r.stderr
    assert len([b for b in builds(d) if b["status"] == "failed"]) == 1
    assert get_until(d, "/", lambda b: b.endswith(" 200")).endswith(" 200")
    rels = json.loads(d.cli("releases", "--json").stdout)
    assert len(rels) == 1
