"""The PostgreSQL add-on, embedded (docs/addons.md): a real dynod with real
dynos in a network namespace held by a process of the test's own
(test_router_keeper's KeptDynod), so that dynod can be killed and started
again there. Its cluster is Debian's postgresql-15, run as postgres; the
apps' web processes use the host's python3 and psycopg2 (dynos see the
host's /usr). Every test stops the PostgreSQL it started (by the PID of
postmaster.pid) and removes its socket directory, even on failure."""
import hashlib
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

import pytest

from test_router_keeper import KeptDynod
from test_supervise import all_up, alive, make_app

PG_BIN = Path("/usr/lib/postgresql/15/bin")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="dynos need root"),
    pytest.mark.skipif(not (PG_BIN / "postgres").exists(), reason="postgresql-15 is not installed"),
    pytest.mark.heavy,
]

# The web process: each request adds a row and answers the count.
APP_PY = r'''
import http.server, os, psycopg2
URL = os.environ.get("DATABASE_URL", "")
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            c = psycopg2.connect(URL, connect_timeout=5)
            with c, c.cursor() as cur:
                cur.execute("CREATE TABLE IF NOT EXISTS hits (id serial PRIMARY KEY)")
                cur.execute("INSERT INTO hits DEFAULT VALUES")
                cur.execute("SELECT count(*) FROM hits")
                body, code = str(cur.fetchone()[0]).encode(), 200
            c.close()
        except Exception as e:
            body, code = repr(e).encode(), 500
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), H).serve_forever()
'''

# A one-off's probe: can this dyno open the database of URL?
PROBE_PY = r'''
import sys, time, psycopg2
t = time.monotonic()
try:
    psycopg2.connect(sys.argv[1], connect_timeout=3).close()
    print("connected")
except Exception as e:
    print("failed after %.1f s: %s" % (time.monotonic() - t, str(e).strip()))
'''

URL_RE = re.compile(r"postgres://(postgresql-[a-z]+-\d{5}):([A-Za-z0-9_-]{32,})"
                    r"@10\.213\.0\.1:5433/(postgresql-[a-z]+-\d{5})\?sslmode=require")


class PgDynod(KeptDynod):
    """A state dir of its own under a directory only root may enter
    (0700, as a clone under /root): postgres reaches its data all the same
    (the programs see it bound under their socket directory)."""

    def __init__(self, tmp_path, dyno_bin):
        super().__init__(tmp_path, dyno_bin)
        self.top = Path(tempfile.mkdtemp(prefix="dypg-"))
        assert self.top.stat().st_mode & 0o777 == 0o700
        self.state = self.top / "state"
        cfg = json.loads(self.config.read_text())
        cfg["state_dir"] = str(self.state)
        self.config.write_text(json.dumps(cfg))

    @property
    def data(self):
        return self.state / "addons" / "postgresql"

    @property
    def sockdir(self):
        h = hashlib.sha256(str(self.state).encode()).hexdigest()[:12]
        return Path(f"/run/dyno-pg-{h}")

    def pg_pid(self):
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            return None
        return pid if comm == "postgres" and alive(pid) else None

    def get(self, app="app", path="/"):
        r = self.netns("curl", "-s", "-m", "10", "-w", "\n%{http_code}", "-H",
                       f"Host: {app}.localhost", f"http://127.0.0.1:8080{path}", timeout=15)
        body, _, code = r.stdout.rpartition("\n")
        return code, body

    def sql(self, q, db="postgres"):
        r = subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "psql"), "-X", "-A",
                            "-t", "-h", str(self.sockdir), "-p", "5433", "-d", db, "-c", q],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, r.stderr
        return r.stdout.split()

    def psql(self, url, q):
        """psql on url from the host (inside the namespace)."""
        return self.netns(str(PG_BIN / "psql"), "-X", "-A", "-t", url, "-c", q, timeout=20)

    def stop_pg(self):
        pid = self.pg_pid()
        if pid:
            os.kill(pid, signal.SIGINT)  # fast shutdown
            end = time.monotonic() + 15
            while alive(pid) and time.monotonic() < end:
                time.sleep(0.1)
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.sockdir, ignore_errors=True)


@pytest.fixture
def pgd(tmp_path, dyno_bin):
    d = PgDynod(tmp_path, dyno_bin)
    try:
        yield d
        # dynod writes there (the sanitizer build's reports too)
        log = d.log.read_text()
        assert "Sanitizer" not in log and "runtime error:" not in log, log[-3000:]
    finally:
        try:
            if d.proc is not None:
                d.kill9()  # first: a dynod would start the server again
            d.stop_pg()
        finally:
            d.cleanup()
            shutil.rmtree(d.top, ignore_errors=True)


def counts(d, app="app", timeout=20):
    """The row count the app's web dyno answers, once it answers 200."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = d.get(app)
        if last[0] == "200":
            return int(last[1])
        time.sleep(0.3)
    raise AssertionError(f"{app} never answered 200: {last}")


def deploy(d, tmp_path, app, web):
    slug = make_app(d, tmp_path, "web: exec python3 app.py\n", name=app,
                    files={"app.py": APP_PY, "probe.py": PROBE_PY})
    assert d.cli("apps:create", app).returncode == 0
    r = d.cli("deploy", slug, "-a", app)
    assert r.returncode == 0, r.stderr
    if not web:
        assert d.cli("ps:scale", "web=0", "-a", app).returncode == 0


def probe(d, app, url):
    r = d.cli("run", "-a", app, "--", "python3", "probe.py", url)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def pg_psql_tls(d, app):
    """pg:psql from the host: its role, and whether the connection is TLS."""
    return subprocess.run(["nsenter", f"--net={d.ns}", str(d.dyno_bin), "pg:psql", "-a", app,
                           "-c", "SELECT current_user, ssl FROM pg_stat_ssl, hits "
                                 "WHERE pid = pg_backend_pid() LIMIT 1"],
                          capture_output=True, text=True, timeout=30,
                          env=dict(os.environ, DYNO_API=d.sock))


def test_addon_database_lives_across_restarts_and_only_its_app_reaches_it(pgd, tmp_path):
    d = pgd.start()
    deploy(d, tmp_path, "app", web=True)
    d.wait(all_up(["web.1"]), what="web.1 up")
    # no add-on yet: the app's dyno has no DATABASE_URL
    assert d.get()[0] == "500"

    # refused at once, nothing made
    code, body = d.curl("POST", "/apps/app/addons")
    assert code == 400
    r = subprocess.run(["curl", "-s", "--unix-socket", d.sock, "-X", "POST", "-d",
                        '{"service": "redis"}', "-w", "\n%{http_code}",
                        "http://dynod/apps/app/addons"], capture_output=True, text=True)
    assert r.stdout.endswith("\n422") and "postgresql" in r.stdout
    assert d.curl("GET", "/apps/app/addons/postgresql-nope-00000")[0] == 404
    assert not d.data.exists()

    t = time.monotonic()
    r = d.cli("addons:create", "postgresql", "-a", "app")
    assert r.returncode == 0, r.stderr
    assert "attached as DATABASE_URL" in r.stdout and "done, v2" in r.stdout, r.stdout
    print(f"addons:create (initdb, certificate, start, rollout): {time.monotonic() - t:.1f} s")
    url = d.cli("config:get", "DATABASE_URL", "-a", "app").stdout.strip()
    m = URL_RE.fullmatch(url)
    assert m and m.group(1) == m.group(3), url
    name = m.group(1)
    r = d.cli("releases", "-a", "app")
    assert f"Attach DATABASE (@ref:{name})" in r.stdout, r.stdout
    # the cluster: postgres's, 0700; TLS only
    st = d.data.stat()
    assert st.st_mode & 0o777 == 0o700 and st.st_uid == pwd.getpwnam("postgres").pw_uid
    assert (d.data / "server.crt").exists()
    hba = [ln for ln in (d.data / "pg_hba.conf").read_text().splitlines()
           if ln.strip() and not ln.startswith("#")]
    assert hba == ["local all postgres peer", "hostssl sameuser all 0.0.0.0/0 scram-sha-256"]
    r = d.psql(url.replace("sslmode=require", "sslmode=disable"), "SELECT 1")
    assert r.returncode != 0 and "no pg_hba.conf entry" in r.stderr, r.stderr
    # only on the gateway address (and its socket): not on the host's others
    r = d.netns("ss", "-Hltn", "sport", "= :5433")
    assert [ln.split()[3] for ln in r.stdout.splitlines()] == ["10.213.0.1:5433"], r.stdout
    # the gateway's link, from dynod's start-up; only dynos and the host reach it
    assert "10.213.0.1/32" in d.netns("ip", "-o", "addr", "show", "dev", "dyno-gw").stdout
    r = d.netns("nft", "list", "chain", "inet", "dyno", "input")
    assert 'ip daddr 10.213.0.1 iifname != "lo" drop' in r.stdout, r.stdout

    # the rows grow across requests, a restart, a kill -9 of dynod
    assert counts(d) == 1
    assert counts(d) == 2
    r = d.cli("ps:restart", "-a", "app")
    assert r.returncode == 0, r.stderr
    assert counts(d) == 3
    pid = d.pg_pid()
    assert pid
    d.kill9()
    assert counts(d) == 4  # dynod is away: the dyno and the database serve on
    # as a create cut short by the kill would leave: no record names them
    orphan = "postgresql-orphan-12345"
    d.sql(f'CREATE ROLE "{orphan}" LOGIN')
    d.sql(f'CREATE DATABASE "{orphan}" OWNER "{orphan}"')
    d.start()
    assert d.pg_pid() == pid
    assert f"re-adopting PostgreSQL (pid {pid})" in d.log.read_text()
    assert counts(d) == 5
    end = time.monotonic() + 10
    while orphan in d.sql("SELECT datname FROM pg_database") and time.monotonic() < end:
        time.sleep(0.2)
    assert orphan not in d.sql("SELECT datname FROM pg_database")
    assert orphan not in d.sql("SELECT rolname FROM pg_roles")
    assert name in d.sql("SELECT datname FROM pg_database")

    # an app without an add-on cannot reach the port, in bounded time
    deploy(d, tmp_path, "other", web=False)
    t = time.monotonic()
    out = probe(d, "other", url)
    assert out.startswith("failed after") and "timeout" in out, out
    assert time.monotonic() - t < 30
    # a one-off of the app itself can
    assert probe(d, "app", url) == "connected"

    # app b's role reaches its own database only
    deploy(d, tmp_path, "app-b", web=False)
    assert d.cli("addons:create", "postgresql", "-a", "app-b").returncode == 0
    url_b = d.cli("config:get", "DATABASE_URL", "-a", "app-b").stdout.strip()
    name_b = URL_RE.fullmatch(url_b).group(1)
    assert name_b != name
    r = d.psql(url_b, "SELECT current_user")
    assert r.returncode == 0 and r.stdout.strip() == name_b, r.stderr
    r = d.psql(url_b.replace(f"/{name_b}?", f"/{name}?"), "SELECT 1")
    assert r.returncode != 0 and "no pg_hba.conf entry" in r.stderr, r.stderr
    # and even a way around pg_hba.conf meets CONNECT revoked from PUBLIC
    assert d.sql(f"SELECT has_database_privilege('{name_b}', '{name}', 'CONNECT')") == ["f"]
    assert d.sql(f"SELECT rolconnlimit FROM pg_roles WHERE rolname = '{name}'") == ["20"]

    # pg:psql: from the host, as the app's role, over TLS
    r = pg_psql_tls(d, "app")
    assert r.returncode == 0 and name in r.stdout and " t" in r.stdout, r.stdout + r.stderr

    # pg:info, addons, addons:info
    r = d.cli("pg:info", "-a", "app")
    assert r.returncode == 0 and "Tables:      1" in r.stdout and "PG Version:  15." in r.stdout
    r = d.cli("addons", "-a", "app")
    assert name in r.stdout and "DATABASE_URL" in r.stdout
    assert d.cli("addons:info", name, "-a", "app").returncode == 0

    # backups: capture, more rows, restore (all of it back), download
    r = d.cli("pg:backups:capture", "-a", "app")
    assert r.returncode == 0 and "done, b001" in r.stdout, r.stdout + r.stderr
    dump = d.data.parent / "backups" / name / "b001.dump"
    assert dump.stat().st_mode & 0o777 == 0o600 and dump.stat().st_uid == 0
    assert counts(d) == 6  # after the capture
    r = d.cli("pg:backups", "-a", "app")
    assert re.search(r"^b001 .* DATABASE$", r.stdout, re.M), r.stdout
    assert d.cli("pg:backups:restore", "-a", "app").returncode == 1  # no --confirm
    r = d.cli("pg:backups:restore", "b001", "-a", "app", "--confirm", "app")
    assert r.returncode == 0 and "b001 restored" in r.stdout, r.stdout + r.stderr
    assert counts(d) == 6  # 5 rows back, then this request's
    r = d.cli("pg:backups:restore", "b009", "-a", "app", "--confirm", "app")
    assert r.returncode == 1 and "no backup b009" in r.stderr, r.stderr
    out = tmp_path / "latest.dump"
    r = d.cli("pg:backups:download", "-o", out, "-a", "app")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == dump.read_bytes()
    r = subprocess.run([str(PG_BIN / "pg_restore"), "--list", str(out)], capture_output=True,
                       text=True)
    assert r.returncode == 0 and "TABLE public hits" in r.stdout, r.stdout + r.stderr

    # addons:destroy: confirmed, it drops the database and role, unsets the var
    assert d.cli("addons:destroy", name, "-a", "app").returncode == 1
    r = d.cli("addons:destroy", name, "-a", "app", "--confirm", "app")
    assert r.returncode == 0, r.stderr
    assert d.cli("config:get", "DATABASE_URL", "-a", "app").stdout.strip() == ""
    assert f"Detach DATABASE (@ref:{name})" in d.cli("releases", "-a", "app").stdout
    assert name not in d.sql("SELECT datname FROM pg_database")
    assert name not in d.sql("SELECT rolname FROM pg_roles")
    assert not dump.parent.exists()  # its backups went with it
    # apps:destroy drops the app's databases
    assert d.cli("apps:destroy", "-a", "app-b", "--confirm", "app-b").returncode == 0
    end = time.monotonic() + 10
    while name_b in d.sql("SELECT datname FROM pg_database") and time.monotonic() < end:
        time.sleep(0.2)
    assert name_b not in d.sql("SELECT datname FROM pg_database")

    # SIGTERM of dynod stops the cluster
    pid = d.pg_pid()
    assert pid
    assert d.stop() == 0
    assert not alive(pid)
    assert not d.sockdir.exists()


def test_failed_create_leaves_nothing(pgd):
    d = pgd
    cfg = json.loads(d.config.read_text())
    cfg["config_vars"] = {"max_size": "1K"}
    cfg.setdefault("addons", {}).setdefault("postgresql", {})["connections_per_database"] = 2
    d.config.write_text(json.dumps(cfg))
    d.start()
    assert d.cli("apps:create", "app").returncode == 0
    # the var would take the app's config vars over config_vars.max_size
    assert d.cli("config:set", "BIG=" + "x" * 950, "-a", "app").returncode == 0
    r = d.cli("addons:create", "postgresql", "-a", "app")
    assert r.returncode == 1 and "config_vars.max_size" in r.stderr, r.stderr
    assert "add-on not created" in r.stderr
    assert d.curl("GET", "/apps/app/addons") == (200, [])
    assert "DATABASE_URL" not in d.cli("config", "-a", "app").stdout
    end = time.monotonic() + 10  # the drop runs after the answer
    while time.monotonic() < end and any(
            n.startswith("postgresql-") for n in d.sql("SELECT rolname FROM pg_roles")):
        time.sleep(0.2)
    assert not [n for n in d.sql("SELECT datname FROM pg_database") if n.startswith("postgresql-")]
    assert not [n for n in d.sql("SELECT rolname FROM pg_roles") if n.startswith("postgresql-")]
    # a bad --as is refused before anything is made
    r = d.cli("addons:create", "postgresql", "--as", "bad-name", "-a", "app")
    assert r.returncode == 1 and "[A-Z0-9_]" in r.stderr, r.stderr
    assert d.cli("config:unset", "BIG", "-a", "app").returncode == 0
    r = d.cli("addons:create", "postgresql", "--as", "ANALYTICS", "-a", "app")
    assert r.returncode == 0 and "attached as ANALYTICS_URL" in r.stdout, r.stdout + r.stderr
    # the same name again, an unknown service: refused, nothing made
    before = d.sql("SELECT count(*) FROM pg_database")
    r = d.cli("addons:create", "postgresql", "--as", "ANALYTICS", "-a", "app")
    assert r.returncode == 1 and "ANALYTICS" in r.stderr, r.stderr
    r = d.cli("addons:create", "redis", "-a", "app")
    assert r.returncode == 1 and "redis" in r.stderr, r.stderr
    assert d.sql("SELECT count(*) FROM pg_database") == before
    assert len(d.curl("GET", "/apps/app/addons")[1]) == 1
    # the role's connection limit (2 here) holds: a third is refused
    url = d.cli("config:get", "ANALYTICS_URL", "-a", "app").stdout.strip()
    r = d.netns("/usr/bin/python3", "-c", (
        "import sys, psycopg2\n"
        "held = [psycopg2.connect(sys.argv[1]) for _ in range(2)]\n"
        "try:\n"
        "    psycopg2.connect(sys.argv[1]); print('third connected')\n"
        "except psycopg2.OperationalError as e:\n"
        "    print('refused:', e)\n"), url, timeout=30)
    assert "too many connections for role" in r.stdout, r.stdout + r.stderr

    # an apps:destroy cut short by a kill: the record of an app that is
    # gone, its database still there; the next dynod drops both
    d.kill9()
    ghost = "postgresql-ghost-00001"
    d.sql(f'CREATE ROLE "{ghost}" LOGIN')
    d.sql(f'CREATE DATABASE "{ghost}" OWNER "{ghost}"')
    records = d.state / "addons" / "addons.json"
    doc = json.loads(records.read_text())
    doc["addons"].append({"app": "gone-app", "name": ghost, "var": "DATABASE",
                          "created_at": "2026-01-01T00:00:00Z", "url": "postgres://x"})
    records.write_text(json.dumps(doc))
    d.start()
    end = time.monotonic() + 10
    while ghost in d.sql("SELECT datname FROM pg_database") and time.monotonic() < end:
        time.sleep(0.2)
    assert ghost not in d.sql("SELECT datname FROM pg_database")
    assert ghost not in d.sql("SELECT rolname FROM pg_roles")
    assert [a["app"] for a in json.loads(records.read_text())["addons"]] == ["app"]

    pid = d.pg_pid()
    assert d.stop() == 0 and not alive(pid)


class ExternalPg:
    """A PostgreSQL 15 cluster of the test's own, the operator's server of
    external mode: made with initdb as postgres under a mktemp directory,
    a self-signed certificate, a superuser `admin` with a password; it
    listens on 10.99.0.1:5432, an address the test puts on the namespace's
    `lo` (not the gateway, and no 127.0.0.1: a DNAT to loopback would take
    route_localnet), and on a Unix socket in its directory, which the test
    uses as root (trust)."""

    ADDR, PORT = "10.99.0.1", 5432
    PASSWORD = "s3cret:/@pass"  # %-escaped in the URL

    def __init__(self, d, addr=None):
        self.d = d
        self.ADDR = addr or self.ADDR
        self.ns = d.ns  # where it listens
        self.top = Path(tempfile.mkdtemp(prefix="dypgx-"))
        self.data = self.top / "data"
        self.pid = None
        pg = pwd.getpwnam("postgres")
        os.chown(self.top, pg.pw_uid, pg.pw_gid)
        pwfile = self.top / "pw"
        pwfile.write_text(self.PASSWORD + "\n")
        os.chown(pwfile, pg.pw_uid, pg.pw_gid)
        self.as_pg(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "admin", "--pwfile",
                   str(pwfile), "-E", "UTF8", "--no-locale", "--auth-local=trust",
                   "--auth-host=scram-sha-256")
        pwfile.unlink()
        self.as_pg("/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                   "2", "-subj", f"/CN={self.ADDR}", "-keyout", str(self.data / "server.key"),
                   "-out", str(self.data / "server.crt"))
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(f"ssl = on\nlisten_addresses = '{self.ADDR}'\nport = {self.PORT}\n"
                    f"unix_socket_directories = '{self.top}'\n"
                    "password_encryption = 'scram-sha-256'\n")
        (self.data / "pg_hba.conf").write_text(
            "local all all trust\nhostssl all all 0.0.0.0/0 scram-sha-256\n")

    def as_pg(self, *argv, netns=False):
        pre = ["nsenter", f"--net={self.ns}"] if netns else []
        r = subprocess.run(pre + ["runuser", "-u", "postgres", "--", *argv], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        return r

    def start(self):
        if self.ns == self.d.ns:
            self.d.netns("ip", "addr", "add", f"{self.ADDR}/32", "dev", "lo")
        self.as_pg(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.top / "log"),
                   "-w", "-s", "start", netns=True)
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])

    def url(self):
        pw = urllib.parse.quote(self.PASSWORD, safe="")
        return f"postgres://admin:{pw}@{self.ADDR}:{self.PORT}/postgres?sslmode=require"

    def sql(self, q, db="postgres"):
        r = subprocess.run([str(PG_BIN / "psql"), "-X", "-A", "-t", "-h", str(self.top), "-p",
                            str(self.PORT), "-U", "admin", "-d", db, "-c", q],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, r.stderr
        return r.stdout.split()

    def stop(self):
        if self.pid and alive(self.pid):
            os.kill(self.pid, signal.SIGINT)
            end = time.monotonic() + 15
            while alive(self.pid) and time.monotonic() < end:
                time.sleep(0.1)
            if alive(self.pid):
                os.kill(self.pid, signal.SIGKILL)
        shutil.rmtree(self.top, ignore_errors=True)


def test_external_server_reached_through_the_gateway(pgd, tmp_path):
    d = pgd
    ext = ExternalPg(d)
    try:
        external_mode(d, ext, tmp_path)
    finally:
        ext.stop()


def external_mode(d, ext, tmp_path):
    cfg = json.loads(d.config.read_text())
    # a host that does not resolve: dynod starts, logs it, and a create
    # fails naming it
    cfg["addons"] = {"postgresql": {"mode": "external",
                                    "url": "postgres://admin:x@no-such-host.invalid/postgres"}}
    d.config.write_text(json.dumps(cfg))
    d.start()
    assert d.cli("apps:create", "first").returncode == 0
    r = d.cli("addons:create", "postgresql", "-a", "first")
    assert r.returncode == 1 and "host no-such-host.invalid" in r.stderr, r.stderr
    assert "no-such-host.invalid" in d.log.read_text()
    assert d.curl("GET", "/apps/first/addons") == (200, [])
    assert d.stop() == 0
    cfg["addons"] = {"postgresql": {"mode": "external", "url": ext.url()}}
    d.config.write_text(json.dumps(cfg))
    d.start()
    # the forward: a DNAT of the gateway's port, for the dynos and the host
    r = d.netns("nft", "list", "table", "ip", "dyno-pg")
    assert ("dnat to 10.99.0.1:5432" in r.stdout
            and 'iifname "dy-*" ip daddr 10.213.0.1 tcp dport 5433' in r.stdout), r.stdout
    deploy(d, tmp_path, "app", web=True)
    d.wait(all_up(["web.1"]), what="web.1 up")

    # the server is not up yet: refused, naming it, nothing made
    r = d.cli("addons:create", "postgresql", "-a", "app")
    assert r.returncode == 1 and "10.99.0.1:5432" in r.stderr, r.stderr
    assert d.curl("GET", "/apps/app/addons") == (200, [])
    assert "DATABASE_URL" not in d.cli("config", "-a", "app").stdout

    ext.start()
    r = d.cli("addons:create", "postgresql", "-a", "app")
    assert r.returncode == 0 and "attached as DATABASE_URL" in r.stdout, r.stdout + r.stderr
    url = d.cli("config:get", "DATABASE_URL", "-a", "app").stdout.strip()
    m = URL_RE.fullmatch(url)  # the gateway's address and port, TLS
    assert m and m.group(1) == m.group(3), url
    name = m.group(1)
    # on the operator's server: the database, its role (scram, the limit),
    # CONNECT revoked from PUBLIC
    assert name in ext.sql("SELECT datname FROM pg_database")
    assert ext.sql(f"SELECT rolconnlimit, left(rolpassword, 14) FROM pg_authid "
                   f"WHERE rolname = '{name}'") == ["20|SCRAM-SHA-256$"]
    assert ext.sql(f"SELECT pg_get_userbyid(datdba) FROM pg_database "
                   f"WHERE datname = '{name}'") == [name]
    assert ext.sql(f"SELECT has_database_privilege('public', '{name}', 'CONNECT')") == ["f"]

    # the app's dyno reaches it through the gateway: the rows grow
    assert counts(d) == 1
    assert counts(d) == 2
    # dynod away (kill -9) and back: the forward serves on, then is redone
    d.kill9()
    assert counts(d) == 3
    d.start()
    assert counts(d) == 4
    assert "the gateway's 10.213.0.1:5433 forwarded to it" in d.log.read_text()
    # a one-off of the app connects; an app without an add-on cannot
    assert probe(d, "app", url) == "connected"
    deploy(d, tmp_path, "other", web=False)
    out = probe(d, "other", url)
    assert out.startswith("failed after") and "timeout" in out, out

    # pg:psql from the host (the forward's output rule), over TLS
    r = pg_psql_tls(d, "app")
    assert r.returncode == 0 and name in r.stdout and " t" in r.stdout, r.stdout + r.stderr
    r = d.cli("pg:info", "-a", "app")
    assert r.returncode == 0 and "Plan:        external" in r.stdout, r.stdout + r.stderr
    assert "Tables:      1" in r.stdout and "PG Version:  15." in r.stdout, r.stdout

    # backups against the operator's server
    r = d.cli("pg:backups:capture", "-a", "app")
    assert r.returncode == 0 and "done, b001" in r.stdout, r.stdout + r.stderr
    assert counts(d) == 5
    r = d.cli("pg:backups:restore", "b001", "-a", "app", "--confirm", "app")
    assert r.returncode == 0, r.stdout + r.stderr
    assert counts(d) == 5  # 4 rows back, then this request's

    # no password on any process's command line: dynod's clients are gone,
    # and dynod never ran a cluster of its own
    assert not d.data.exists() and not d.sockdir.exists()
    for p in Path("/proc").iterdir():
        try:
            cmd = (p / "cmdline").read_bytes()
        except OSError:
            continue
        assert str(d.state).encode() not in cmd or not cmd.startswith(b"/usr/lib/postgresql")
        assert b"s3cret" not in cmd

    # addons:destroy drops the database and the role on the server
    r = d.cli("addons:destroy", name, "-a", "app", "--confirm", "app")
    assert r.returncode == 0, r.stderr
    assert name not in ext.sql("SELECT datname FROM pg_database")
    assert name not in ext.sql("SELECT rolname FROM pg_roles")
    assert d.cli("config:get", "DATABASE_URL", "-a", "app").stdout.strip() == ""

    # SIGTERM of dynod removes the forward
    assert d.stop() == 0
    r = d.netns("nft", "list", "table", "ip", "dyno-pg")
    assert r.returncode != 0, r.stdout
    assert alive(ext.pid)  # the operator's server is not dynod's to stop

    # a server without TLS, an administrator's URL that does not require
    # it: the dynos' URL does not ask for it either
    ext.sql("ALTER SYSTEM SET ssl = off")
    (ext.data / "pg_hba.conf").write_text(
        "local all all trust\nhost all all 0.0.0.0/0 scram-sha-256\n")
    ext.sql("SELECT pg_reload_conf()")
    cfg["addons"]["postgresql"]["url"] = ext.url().split("?")[0]
    d.config.write_text(json.dumps(cfg))
    d.start()
    r = d.cli("addons:create", "postgresql", "-a", "app")
    assert r.returncode == 0, r.stdout + r.stderr
    url = d.cli("config:get", "DATABASE_URL", "-a", "app").stdout.strip()
    assert "@10.213.0.1:5433/" in url and "sslmode" not in url, url
    assert counts(d) == 1
    assert d.stop() == 0
    assert d.netns("nft", "list", "table", "ip", "dyno-pg").returncode != 0


def test_external_server_on_another_machine(pgd, tmp_path):
    """The server elsewhere: in a namespace of its own behind a veth
    (10.99.1.2; the host's side 10.99.1.1): the dynos' connections are
    forwarded (ip_forward on in dynod's namespace) and masqueraded."""
    d = pgd
    far = subprocess.Popen(["unshare", "-n", "sh", "-c", "ip link set lo up && exec sleep 600"])
    ext = None
    try:
        far_ns = f"/proc/{far.pid}/ns/net"
        end = time.monotonic() + 5
        while os.readlink(far_ns) == os.readlink("/proc/self/ns/net"):
            assert time.monotonic() < end
            time.sleep(0.02)
        for cmd in (["ip", "link", "add", "xpg0", "type", "veth", "peer", "name", "xpg1", "netns",
                     str(far.pid)],
                    ["ip", "addr", "add", "10.99.1.1/24", "dev", "xpg0"],
                    ["ip", "link", "set", "xpg0", "up"],
                    ["sysctl", "-qw", "net.ipv4.ip_forward=1"]):
            r = d.netns(*cmd)
            assert r.returncode == 0, r.stderr
        for cmd in (["ip", "addr", "add", "10.99.1.2/24", "dev", "xpg1"],
                    ["ip", "link", "set", "xpg1", "up"]):
            r = subprocess.run(["nsenter", f"--net={far_ns}", *cmd], capture_output=True,
                               text=True)
            assert r.returncode == 0, r.stderr
        ext = ExternalPg(d, addr="10.99.1.2")
        ext.ns = far_ns
        ext.start()
        cfg = json.loads(d.config.read_text())
        cfg["addons"] = {"postgresql": {"mode": "external", "url": ext.url()}}
        d.config.write_text(json.dumps(cfg))
        d.start()
        deploy(d, tmp_path, "app", web=True)
        r = d.cli("addons:create", "postgresql", "-a", "app")
        assert r.returncode == 0, r.stdout + r.stderr
        url = d.cli("config:get", "DATABASE_URL", "-a", "app").stdout.strip()
        name = URL_RE.fullmatch(url).group(1)
        assert counts(d) == 1 and counts(d) == 2
        deploy(d, tmp_path, "other", web=False)
        out = probe(d, "other", url)
        assert out.startswith("failed after") and "timeout" in out, out
        r = pg_psql_tls(d, "app")
        assert r.returncode == 0 and name in r.stdout and " t" in r.stdout, r.stdout + r.stderr
        # the server sees the host's address (masqueraded)
        r = d.netns(str(PG_BIN / "psql"), "-X", "-A", "-t", url, "-c",
                    "SELECT inet_client_addr()", timeout=20)
        assert r.stdout.strip() == "10.99.1.1", r.stdout + r.stderr
        r = d.cli("addons:destroy", name, "-a", "app", "--confirm", "app")
        assert r.returncode == 0, r.stderr
        assert name not in ext.sql("SELECT rolname FROM pg_roles")
        assert d.stop() == 0
        assert d.netns("nft", "list", "table", "ip", "dyno-pg").returncode != 0
    finally:
        if ext:
            ext.stop()
        far.kill()
        far.wait()
