"""dynod's core as a user drives it: a real dynod on a socket in tmp_path,
the real `dyno` CLI (DYNO_API) and `curl --unix-socket` on every endpoint."""
import json
import os
import signal
import socket
import stat
import subprocess
import tempfile
import time

import pytest

import slugkit as sk
from conftest import BUILD, ROOT, wait_for_socket

HELLO = ROOT / "examples" / "hello"


class Dynod:
    def __init__(self, tmp_path, extra=None):
        self.tmp = tmp_path
        self.state = tmp_path / "state"
        sock = tmp_path / "api.sock"
        if len(str(sock)) > 100:  # sun_path holds 108 bytes
            sock = tempfile.mkdtemp(prefix="dy-") + "/api.sock"
        self.sock = str(sock)
        cfg = {
            "state_dir": str(self.state),
            "api_socket": self.sock,
            "api_group": "root",
            # the API alone, no router: dynod would otherwise run one on
            # 127.0.0.1:18080 and :8081 of the host, where tests run side
            # by side (test_router_keeper.py runs it, in a netns of its own)
            "router": {"external": True, "listen": "127.0.0.1:18080",
                       "timeouts": {"connect": "1s", "first_byte": "2s",
                                    "idle": "2s", "request_head": "1s"}},
            "dyno": {"timeouts": {"boot": "5s", "stop": "1s"}},
        }
        cfg.update(extra or {})
        self.config = tmp_path / "dynod.json"
        self.config.write_text(json.dumps(cfg))
        self.proc = None
        self.log = tmp_path / "dynod.log"

    def start(self):
        exe = BUILD / "bin" / "dynod"
        if not exe.exists():
            pytest.fail(f"{exe} is missing: build first or set DYNO_BUILD")
        self.logf = open(self.log, "ab")
        # the API alone: no dyno runs (test_supervise.py runs them)
        env = dict(os.environ, DYNOD_NO_LAUNCHER="1")
        self.proc = subprocess.Popen([str(exe), "--config", str(self.config)],
                                     stdout=self.logf, stderr=self.logf, env=env)
        wait_for_socket(self.proc, self.sock, self.log)
        return self

    def stop(self):
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        self.logf.close()
        return rc


@pytest.fixture
def dynod(tmp_path):
    d = Dynod(tmp_path).start()
    yield d
    rc = d.stop()
    assert rc == 0, d.log.read_text()
    assert "LeakSanitizer" not in d.log.read_text()


@pytest.fixture
def cli(dyno_bin, dynod):
    env = dict(os.environ, DYNO_API=dynod.sock)
    env.pop("DYNO_APP", None)

    def run(*args, **kw):
        return subprocess.run([str(dyno_bin), *map(str, args)], capture_output=True,
                              text=True, env=dict(env, **kw.pop("env", {})), timeout=60, **kw)

    return run


@pytest.fixture
def curl(dynod):
    def run(method, path, data=None, data_file=None, headers=(), raw=False):
        args = ["curl", "-s", "--unix-socket", dynod.sock, "-X", method,
                "-w", "\n%{http_code}", "http://dynod" + path]
        for h in headers:
            args += ["-H", h]
        if data is not None:
            args += ["--data-binary", data if isinstance(data, str) else json.dumps(data)]
        if data_file is not None:
            args += ["--data-binary", "@" + str(data_file)]
        r = subprocess.run(args, capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
        body, _, code = r.stdout.rpartition(b"\n")
        if raw:
            return int(code), body
        return int(code), json.loads(body) if body.strip() else None

    return run


@pytest.fixture
def hello_slug(dyno, tmp_path):
    out = tmp_path / "hello.tgz"
    r = dyno("slugs:create", HELLO, "-o", out)
    assert r.returncode == 0, r.stderr
    return out


def slug_id(dyno, path):
    r = dyno("slugs:inspect", path, "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["id"]


def test_socket_mode_and_group(dynod):
    st = os.stat(dynod.sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert st.st_gid == 0


def test_apps_create_and_bad_names(cli):
    r = cli("apps:create", "hello")
    assert r.returncode == 0, r.stderr
    assert "http://hello.localhost:18080/" in r.stdout
    for bad in ("Hello", "ab", "1abc", "abc-", "a_b", "a" * 31, "a.b"):
        r = cli("apps:create", bad)
        assert r.returncode == 1, bad
        assert f'invalid app name "{bad}"' in r.stderr
        assert r.stderr.startswith("dyno: error: ")
    r = cli("apps:create", "hello")
    assert r.returncode == 1
    assert 'app "hello" already exists' in r.stderr
    assert cli("apps:create").returncode == 2
    r = cli("apps:create", "second-app")
    assert r.returncode == 0
    r = cli("apps", "--json")
    assert [a["name"] for a in json.loads(r.stdout)] == ["hello", "second-app"]
    r = cli("apps")
    assert r.stdout.split("\n")[1:3] == ["hello", "second-app"]
    r = cli("apps:info", "-a", "hello", "--json")
    info = json.loads(r.stdout)
    assert list(info) == ["name", "created_at", "web_url", "released_at", "maintenance",
                          "git_url"]
    assert info["released_at"] is None
    assert info["created_at"].endswith("Z")
    r = cli("apps:info", env={"DYNO_APP": "hello"})
    assert r.returncode == 0 and "=== hello" in r.stdout
    r = cli("apps:info", "-a", "nope")
    assert r.returncode == 1 and 'app "nope" not found' in r.stderr
    assert cli("apps:info").returncode == 2


def test_deploy_slug_scales_web(cli, curl, dyno, dynod, hello_slug):
    assert cli("apps:create", "hello").returncode == 0
    r = cli("deploy", hello_slug, "-a", "hello")
    assert r.returncode == 0, r.stderr
    assert "done, v1" in r.stdout
    sid = slug_id(dyno, hello_slug)
    rels = json.loads(cli("releases", "-a", "hello", "--json").stdout)
    assert len(rels) == 1
    assert rels[0]["version"] == 1
    assert rels[0]["description"] == f"Deploy {sid[:7]}"
    assert rels[0]["status"] == "succeeded"
    assert rels[0]["slug"] == {"id": sid}
    assert list(rels[0]) == ["version", "description", "status", "failure", "slug",
                             "created_at", "release_phase"]
    form = curl("GET", "/apps/hello/formation")[1]
    assert {f["type"]: f["quantity"] for f in form} == {"web": 1, "worker": 0}
    assert list(form[0]) == ["type", "quantity", "size", "command"]
    assert form[0]["size"] == "standard-1x"
    # unpacked once for the app, owned by its uid
    unpacked = dynod.state / "apps" / "hello" / "slugs" / sid
    assert (unpacked / "Procfile").exists()
    assert os.stat(unpacked).st_uid == 200000
    assert (dynod.state / "slugs" / f"{sid}.slug").exists()
    info = json.loads(cli("apps:info", "-a", "hello", "--json").stdout)
    assert info["released_at"] == rels[0]["created_at"]
    # a directory is packed first (zstd); web stays as scaled
    assert cli("ps:scale", "web=3", "-a", "hello").returncode == 0
    r = cli("deploy", HELLO, "-a", "hello")
    assert r.returncode == 0, r.stderr
    assert "Packing" in r.stdout and "(zstd)" in r.stdout and "done, v2" in r.stdout
    rels = json.loads(cli("releases", "-a", "hello", "--json").stdout)
    v2 = next(x for x in rels if x["version"] == 2)
    packed = dynod.state / "slugs" / f"{v2['slug']['id']}.slug"
    assert packed.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"  # deploy DIR packs zstd
    form = curl("GET", "/apps/hello/formation")[1]
    assert form[0]["quantity"] == 3


def test_deploy_refuses_bad_slugs(cli, tmp_path):
    assert cli("apps:create", "hello").returncode == 0
    bad = sk.build(tmp_path / "bad.tgz",
                   [sk.file("./app/Procfile", b"web: ./server\nnot a line\n")])
    r = cli("deploy", bad, "-a", "hello")
    assert r.returncode == 1
    assert "Procfile line 2" in r.stderr
    evil = sk.build(tmp_path / "evil.tgz",
                    [sk.PROCFILE, sk.file("./app/../../etc/x", b"x")])
    r = cli("deploy", evil, "-a", "hello")
    assert r.returncode == 1
    assert "refused entry" in r.stderr
    rel = sk.build(tmp_path / "rel.tgz",
                   [sk.file("./app/Procfile", b"web: ./s\nrelease: ./migrate\n")])
    r = cli("deploy", rel, "-a", "hello")
    assert r.returncode == 1
    assert "release process type" in r.stderr and "launcher" in r.stderr
    assert json.loads(cli("releases", "-a", "hello", "--json").stdout) == []
    r = cli("deploy", tmp_path / "missing.tgz", "-a", "hello")
    assert r.returncode == 1


def test_config_releases_rollback(cli, hello_slug):
    assert cli("apps:create", "hello").returncode == 0
    # config before any deploy: a release without slug
    r = cli("config:set", "EARLY=1", "-a", "hello")
    assert r.returncode == 0, r.stderr
    assert "v1" in r.stdout
    assert cli("deploy", hello_slug, "-a", "hello").returncode == 0
    r = cli("config:set", "FOO=bar", "URL=http://x/?a=b", "-a", "hello")
    assert r.returncode == 0, r.stderr
    assert "done, v3" in r.stdout
    assert cli("config:get", "FOO", "-a", "hello").stdout == "bar\n"
    assert cli("config:get", "URL", "-a", "hello").stdout == "http://x/?a=b\n"
    assert cli("-a", "hello", "config:get", "FOO").stdout == "bar\n"
    assert cli("config:get", "--app=hello", "FOO").stdout == "bar\n"
    assert cli("config:get", "NOPE", "-a", "hello").stdout == "\n"
    assert json.loads(cli("config", "-a", "hello", "--json").stdout) == {
        "EARLY": "1", "FOO": "bar", "URL": "http://x/?a=b"}
    r = cli("config", "-a", "hello")
    assert "=== hello Config Vars" in r.stdout and "FOO:" in r.stdout
    r = cli("config:unset", "FOO", "-a", "hello")
    assert r.returncode == 0 and "done, v4" in r.stdout
    r = cli("config:set", "1BAD=x", "-a", "hello")
    assert r.returncode == 1 and 'invalid config var name "1BAD"' in r.stderr
    assert cli("config:set", "NOEQUALS", "-a", "hello").returncode == 2
    rels = json.loads(cli("releases", "-a", "hello", "--json").stdout)
    assert [r_["description"] for r_ in rels][2:] == [
        "Set FOO, URL config vars", "Remove FOO config vars"]
    assert rels[0]["description"] == "Set EARLY config vars"
    assert rels[0]["slug"] is None
    r = cli("releases", "-a", "hello")
    assert "Current: v4" in r.stdout
    # rollback to v3 restores FOO; default target is the one before current
    r = cli("rollback", "v3", "-a", "hello")
    assert r.returncode == 0, r.stderr
    assert "done, v5" in r.stdout
    assert cli("config:get", "FOO", "-a", "hello").stdout == "bar\n"
    rels = json.loads(cli("releases", "-a", "hello", "--json").stdout)
    assert rels[-1]["description"] == "Rollback to v3"
    assert rels[-1]["slug"] == rels[1]["slug"]
    r = cli("rollback", "-a", "hello")
    assert r.returncode == 0 and "to v4" in r.stdout
    assert cli("config:get", "FOO", "-a", "hello").stdout == "\n"
    r = cli("rollback", "v1", "-a", "hello")
    assert r.returncode == 1 and "release v1 has no slug" in r.stderr
    r = cli("rollback", "v99", "-a", "hello")
    assert r.returncode == 1 and "release v99 of hello not found" in r.stderr
    assert cli("rollback", "vx", "-a", "hello").returncode == 2


def test_ps_scale_validation(cli, curl, hello_slug):
    assert cli("apps:create", "hello").returncode == 0
    r = cli("ps:scale", "web=1", "-a", "hello")
    assert r.returncode == 1 and "no release with a slug yet" in r.stderr
    assert cli("deploy", hello_slug, "-a", "hello").returncode == 0
    r = cli("ps:scale", "web=2:standard-2x", "worker=3", "-a", "hello")
    assert r.returncode == 0, r.stderr
    assert "web at 2:standard-2x, worker at 3:standard-1x" in r.stdout
    r = cli("ps:scale", "clock=1", "-a", "hello")
    assert r.returncode == 1
    assert 'no process type "clock"' in r.stderr and "(types: web, worker)" in r.stderr
    r = cli("ps:scale", "web=1:huge", "-a", "hello")
    assert r.returncode == 1 and 'unknown size "huge"' in r.stderr
    r = cli("ps:scale", "web=101", "-a", "hello")
    assert r.returncode == 1 and "0..100" in r.stderr
    r = cli("ps:scale", "worker=1", "release=1", "-a", "hello")
    assert r.returncode == 1
    for bad in ("web", "web=", "=1", "web=-1", "web=1:", "web=x"):
        assert cli("ps:scale", bad, "-a", "hello").returncode == 2, bad
    form = curl("GET", "/apps/hello/formation")[1]
    assert [(f["type"], f["quantity"], f["size"]) for f in form] == [
        ("web", 2, "standard-2x"), ("worker", 3, "standard-1x")]
    r = cli("ps", "-a", "hello")
    assert "=== web (standard-2x)" in r.stdout


def test_destroy_removes_everything(cli, dynod, dyno, hello_slug):
    assert cli("apps:create", "hello").returncode == 0
    assert cli("deploy", hello_slug, "-a", "hello").returncode == 0
    appdir = dynod.state / "apps" / "hello"
    assert (appdir / "app.json").exists()
    r = cli("apps:destroy", "-a", "hello")
    assert r.returncode == 2 and "--confirm hello" in r.stderr
    r = cli("apps:destroy", "-a", "hello", "--confirm", "other")
    assert r.returncode == 2
    r = cli("apps:destroy", "--confirm", "hello")
    assert r.returncode == 0, r.stderr
    assert not appdir.exists()
    assert json.loads(cli("apps", "--json").stdout) == []
    r = cli("apps:destroy", "--confirm", "hello")
    assert r.returncode == 1 and "not found" in r.stderr
    # the name can be used again, from scratch
    assert cli("apps:create", "hello").returncode == 0
    assert json.loads(cli("releases", "-a", "hello", "--json").stdout) == []


def test_every_endpoint_with_curl(curl, dyno, hello_slug, tmp_path):
    code, body = curl("GET", "/apps")
    assert (code, body) == (200, [])
    code, app = curl("POST", "/apps", {"name": "hello"})
    assert code == 201 and app["name"] == "hello"
    code, body = curl("GET", "/apps/hello")
    assert code == 200 and body == app
    code, slug = curl("POST", "/apps/hello/slugs", data_file=hello_slug,
                      headers=["Content-Type: application/octet-stream"])
    assert code == 201, slug
    assert list(slug) == ["id", "size", "process_types"]
    assert slug["id"] == slug_id(dyno, hello_slug)
    assert slug["size"] == hello_slug.stat().st_size
    assert set(slug["process_types"]) == {"web", "worker"}
    # chunked upload of the same slug
    code, slug2 = curl("POST", "/apps/hello/slugs", data_file=hello_slug,
                       headers=["Transfer-Encoding: chunked"])
    assert code == 201 and slug2 == slug
    code, rel = curl("POST", "/apps/hello/releases", {"slug": slug["id"]})
    assert code == 201 and rel["version"] == 1
    code, rels = curl("GET", "/apps/hello/releases")
    assert code == 200 and rels == [rel]
    assert curl("GET", "/apps/hello/releases/v1") == (200, rel)
    assert curl("GET", "/apps/hello/releases/1") == (200, rel)
    code, err = curl("GET", "/apps/hello/releases/v9")
    assert code == 404 and err["id"] == "not_found"
    code, form = curl("GET", "/apps/hello/formation")
    assert code == 200 and [f["type"] for f in form] == ["web", "worker"]
    code, form = curl("PATCH", "/apps/hello/formation",
                      {"updates": [{"type": "worker", "quantity": 2, "size": "standard-2x"}]})
    assert code == 200 and form[1]["quantity"] == 2 and form[1]["size"] == "standard-2x"
    code, f = curl("GET", "/apps/hello/formation/web")
    assert code == 200 and f["type"] == "web" and f["quantity"] == 1
    code, f = curl("PATCH", "/apps/hello/formation/web", {"quantity": 0})
    assert code == 200 and f["quantity"] == 0 and f["size"] == "standard-1x"
    code, err = curl("PATCH", "/apps/hello/formation/web", {"quantity": "many"})
    assert code == 422 and err["id"] == "invalid_params" and "quantity" in err["message"]
    code, err = curl("GET", "/apps/hello/formation/clock")
    assert code == 404
    code, cfg = curl("PATCH", "/apps/hello/config-vars", {"K": "V", "GONE": None})
    assert (code, cfg) == (200, {"K": "V"})
    assert curl("GET", "/apps/hello/config-vars") == (200, {"K": "V"})
    code, err = curl("PATCH", "/apps/hello/config-vars", {"K": 1})
    assert code == 422 and err["id"] == "invalid_params"
    code, rel = curl("POST", "/apps/hello/releases", {"release": "v1"})
    assert code == 201 and rel["description"] == "Rollback to v1" and rel["version"] == 3
    assert curl("GET", "/apps/hello/config-vars") == (200, {})
    # errors: ids and messages
    code, err = curl("GET", "/apps/nope")
    assert code == 404 and err == {"id": "not_found", "message": 'app "nope" not found'}
    code, err = curl("GET", "/nothing")
    assert code == 404 and err["id"] == "not_found"
    code, err = curl("POST", "/apps", "{not json")
    assert code == 400 and err["id"] == "bad_request" and "not JSON" in err["message"]
    code, err = curl("POST", "/apps", {"name": 5})
    assert code == 422 and err["id"] == "invalid_params"
    code, err = curl("POST", "/apps", {"name": "hello"})
    assert code == 409 and err["id"] == "conflict"
    code, err = curl("PUT", "/apps")
    assert code == 405 and err["id"] == "bad_request"
    code, err = curl("POST", "/apps/hello/releases", {"slug": "abc"})
    assert code == 422 and "invalid slug id" in err["message"]
    code, err = curl("POST", "/apps/hello/releases", {})
    assert code == 422
    code, err = curl("POST", "/apps/hello/releases", {"slug": "0" * 64})
    assert code == 404
    big = tmp_path / "big.json"
    big.write_text('{"name": "' + "x" * (1024 * 1024 + 10) + '"}')
    code, err = curl("POST", "/apps", data_file=big)
    assert code == 413 and "limit" in err["message"]
    code, err = curl("POST", "/apps/hello/slugs", "not a slug")
    assert code == 422 and err["id"] == "invalid_params"
    code, err = curl("GET", "/apps/hello/dynos")
    assert code == 501
    code, app2 = curl("DELETE", "/apps/hello")
    assert code == 200 and app2["name"] == "hello"
    assert curl("GET", "/apps") == (200, [])


def raw_request(sock_path, data, timeout=5):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(sock_path)
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # dynod refused early and closed; its answer is there to read
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            out += chunk
        return out


def test_keepalive_pipelining_and_slow_clients(dynod, cli):
    # a client that sends half a head and stalls holds no one up
    stalled = socket.socket(socket.AF_UNIX)
    stalled.connect(dynod.sock)
    stalled.sendall(b"POST /apps HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    half = socket.socket(socket.AF_UNIX)
    half.connect(dynod.sock)
    half.sendall(b"GET /apps HTTP/1.1\r\nHo")
    r = cli("apps:create", "hello")
    assert r.returncode == 0, r.stderr
    # two pipelined requests on one connection, answered in order
    out = raw_request(dynod.sock,
                      b"GET /apps/hello HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"GET /apps/nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert out.count(b"HTTP/1.1 ") == 2
    assert b"HTTP/1.1 404 Not Found\r\n" in out
    # HEAD: the GET's head, no body
    out = raw_request(dynod.sock,
                      b"HEAD /apps/hello HTTP/1.1\r\nHost: x\r\n\r\n"
                      b"GET /apps HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    first, _, rest = out.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 200 OK") and b"Content-Length: " in first
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n")
    # a malformed request gets 400 and a close
    out = raw_request(dynod.sock, b"GET /apps HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 ") and b"bad_request" in out
    out = raw_request(dynod.sock, b"GET /apps HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                                  b"Transfer-Encoding: chunked\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 ")
    stalled.close()
    half.close()
    assert cli("apps").returncode == 0


def test_many_pipelined_requests(dynod, cli):
    """More answers than the output high-water mark: reading pauses while
    they drain, then the requests left in the input are taken up again."""
    import threading
    assert cli("apps:create", "hello").returncode == 0
    n = 20000
    req = b"GET /apps/hello HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(dynod.sock)
        s.settimeout(30)
        t = threading.Thread(target=lambda: s.sendall(req * (n - 1) + req.replace(
            b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")))
        t.start()
        out = bytearray()
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            out += chunk
        t.join()
    assert out.count(b"HTTP/1.1 200 OK\r\n") == n
    assert len(out) > 1024 * 1024


def test_restart_keeps_state(tmp_path, dyno_bin, dyno, hello_slug):
    d = Dynod(tmp_path).start()
    env = dict(os.environ, DYNO_API=d.sock, DYNO_APP="hello")

    def cli(*args):
        return subprocess.run([str(dyno_bin), *map(str, args)], capture_output=True,
                              text=True, env=env, timeout=60)

    try:
        assert cli("apps:create", "hello").returncode == 0
        assert cli("deploy", hello_slug).returncode == 0
        assert cli("config:set", "A=1").returncode == 0
        assert cli("ps:scale", "worker=2:performance-m").returncode == 0
        before = {v: cli(v, "--json").stdout for v in ("apps", "releases", "config", "ps")}
        assert d.stop() == 0
        assert not os.path.exists(d.sock)
        d.start()
        after = {v: cli(v, "--json").stdout for v in ("apps", "releases", "config", "ps")}
        assert after == before
        # numbering goes on
        r = cli("config:set", "B=2")
        assert "done, v3" in r.stdout
        # the state file carries its schema version
        doc = json.loads((d.state / "apps" / "hello" / "app.json").read_text())
        assert doc["schema_version"] == 3
        assert stat.S_IMODE(os.stat(d.state / "apps" / "hello" / "app.json").st_mode) == 0o600
    finally:
        assert d.stop() == 0, d.log.read_text()
    # a state file of another schema version stops start-up, naming it
    p = d.state / "apps" / "hello" / "app.json"
    doc = json.loads(p.read_text())
    doc["schema_version"] = 99
    p.write_text(json.dumps(doc))
    exe = BUILD / "bin" / "dynod"
    r = subprocess.run([str(exe), "--config", str(d.config)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1
    assert "app.json: schema_version 99 is newer than this dynod reads" in r.stderr


def test_slug_upload_limit_and_expect(tmp_path, hello_slug):
    d = Dynod(tmp_path, {"slugs": {"max_compressed": "1M"}}).start()
    try:
        out = raw_request(d.sock, b"POST /apps HTTP/1.1\r\nHost: x\r\nContent-Length: 18\r\n"
                                  b"Connection: close\r\n\r\n"
                                  b'{"name": "hello"}\n')
        assert out.startswith(b"HTTP/1.1 201 ")
        # declared over the limit: refused before any byte of the body
        out = raw_request(d.sock, b"POST /apps/hello/slugs HTTP/1.1\r\nHost: x\r\n"
                                  b"Content-Length: 2000000\r\nExpect: 100-continue\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 413 ")
        assert b"over the limit of 1048576" in out and b"Connection: close" in out
        # chunked over the limit: refused as it arrives
        chunk = b"100000\r\n" + b"x" * 0x100000 + b"\r\n"
        out = raw_request(d.sock, b"POST /apps/hello/slugs HTTP/1.1\r\nHost: x\r\n"
                                  b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 2)
        assert out.startswith(b"HTTP/1.1 413 ")
        # Expect: 100-continue within the limit: 100 first, then the answer
        data = hello_slug.read_bytes()
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(d.sock)
            s.sendall(b"POST /apps/hello/slugs HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                      b"Expect: 100-continue\r\nConnection: close\r\n\r\n" % len(data))
            assert s.recv(4096) == b"HTTP/1.1 100 Continue\r\n\r\n"
            s.sendall(data)
            out = b""
            while chunk := s.recv(65536):
                out += chunk
        assert out.startswith(b"HTTP/1.1 201 ")
        # nothing of the refused uploads is left in the store (the kept
        # slug has its meta file beside it)
        sid = json.loads(out.partition(b"\r\n\r\n")[2])["id"]
        assert sorted(p.name for p in (d.state / "slugs").iterdir()) == [
            sid + ".meta", sid + ".slug"]
    finally:
        assert d.stop() == 0, d.log.read_text()


def test_missing_api_group_refused(tmp_path):
    d = Dynod(tmp_path, {"api_group": "no-such-group-x"})
    exe = BUILD / "bin" / "dynod"
    r = subprocess.run([str(exe), "--config", str(d.config)], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 1
    assert 'api_group "no-such-group-x": no such group' in r.stderr
    assert not os.path.exists(d.sock)


def test_cli_without_dynod(dyno, tmp_path):
    r = subprocess.run([str(BUILD / "bin" / "dyno"), "apps"], capture_output=True, text=True,
                       env=dict(os.environ, DYNO_API=str(tmp_path / "none.sock")))
    assert r.returncode == 1
    assert "cannot reach dynod at" in r.stderr


def test_help_lists_new_verbs(dyno):
    r = dyno("help")
    for verb in ("apps", "apps:create", "apps:info", "apps:destroy", "deploy", "ps",
                 "ps:scale", "config", "config:set", "config:get", "config:unset",
                 "releases", "rollback", "ps:restart", "ps:stop"):
        assert f"  {verb} " in r.stdout, verb


def fake_xdg_open(tmp_path):
    """A directory with an xdg-open that writes its arguments to marker."""
    marker = tmp_path / "xdg-opened"
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "xdg-open").write_text(f"#!/bin/sh\necho \"$@\" > {marker}\n")
    (fake / "xdg-open").chmod(0o755)
    return fake, marker


def test_open_prints_web_url(cli, tmp_path):
    assert cli("apps:create", "open-app").returncode == 0
    # a fake xdg-open on PATH: stdout is a pipe here, so it must not run
    fake, marker = fake_xdg_open(tmp_path)
    env = {"PATH": f"{fake}:{os.environ.get('PATH', '/usr/bin:/bin')}", "DISPLAY": ":0"}
    r = cli("open", "-a", "open-app", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "http://open-app.localhost:18080/\n"
    assert not marker.exists()
    r = cli("open", env=dict(env, DYNO_APP="open-app"))
    assert r.returncode == 0 and r.stdout == "http://open-app.localhost:18080/\n"
    r = cli("-a", "open-app", "open")
    assert r.returncode == 0 and "open-app.localhost" in r.stdout
    r = cli("open", "-a", "nope")
    assert r.returncode == 1 and 'app "nope" not found' in r.stderr
    assert cli("open").returncode == 2
    assert cli("open", "-a", "open-app", "extra").returncode == 2
    assert "  open " in cli("help").stdout
    assert "xdg-open" in cli("help", "open").stdout


def test_open_runs_xdg_open_on_a_desktop_terminal(cli, dyno_bin, dynod, tmp_path):
    from test_logs import read_pty
    assert cli("apps:create", "open-app").returncode == 0
    fake, marker = fake_xdg_open(tmp_path)
    env = dict(os.environ, DYNO_API=dynod.sock, PATH=f"{fake}:/usr/bin:/bin")
    for k in ("DISPLAY", "WAYLAND_DISPLAY"):
        env.pop(k, None)
    argv = [str(dyno_bin), "open", "-a", "open-app"]
    # a terminal but no display (ssh, a console): printed only
    rc, out = read_pty(argv, env)
    assert rc == 0 and out == b"http://open-app.localhost:18080/\r\n"
    assert not marker.exists()
    # a terminal on a desktop: printed and opened
    for display in ({"DISPLAY": ":0"}, {"WAYLAND_DISPLAY": "wayland-0"}):
        rc, out = read_pty(argv, dict(env, **display))
        assert rc == 0 and b"http://open-app.localhost:18080/" in out
        assert marker.read_text() == "http://open-app.localhost:18080/\n"
        marker.unlink()
    # xdg-open failing is dyno open failing
    (fake / "xdg-open").write_text("#!/bin/sh\nexit 3\n")
    rc, _ = read_pty(argv, dict(env, DISPLAY=":0"))
    assert rc == 1


def test_status_counts_what_the_log_intake_dropped(curl, dynod, cli):
    code, st = curl("GET", "/status")
    assert code == 200, st
    assert st["apps"] == 0 and st["version"]
    assert st["logs"] == {"lines": 0, "bad": 0, "unknown_app": 0, "lost": 0}
    assert cli("apps:create", "hello").returncode == 0
    # the router's socket: one line not in the format, one for no app
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(b"garbage", str(dynod.state / "log.sock"))
    s.sendto(b"nosuchapp 2026-12-06T05:00:00.000000+00:00 router[router]: at=info",
             str(dynod.state / "log.sock"))
    s.close()
    end = time.monotonic() + 5
    while time.monotonic() < end:
        code, st = curl("GET", "/status")
        if st["logs"]["bad"] and st["logs"]["unknown_app"]:
            break
        time.sleep(0.05)
    assert st["apps"] == 1
    assert st["logs"]["bad"] == 1 and st["logs"]["unknown_app"] == 1, st
    assert curl("POST", "/status")[0] == 405
