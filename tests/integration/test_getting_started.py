"""examples/getting-started on its own, under `dyno local`: / names the dyno,
/db says how to attach a database without DATABASE_URL, and with one (a
throwaway PostgreSQL cluster on a Unix socket) the release command creates
the table and /db counts the visits.

dyno local runs in a network namespace of its own, so its ports are its
own."""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import ROOT

APP = ROOT / "examples" / "getting-started"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
# the app's python3 is Debian's (with python3-psycopg2), as in a dyno
DEBIAN_PATH = dict(os.environ, PATH="/usr/bin:/bin")


class Local:
    """`dyno local [ARGS]` in examples/getting-started, in a network
    namespace of its own."""

    def __init__(self, dyno_bin, tmp_path, *args):
        self.out = tmp_path / f"local-{time.monotonic_ns()}.out"
        with open(self.out, "wb") as f:
            self.proc = subprocess.Popen(
                ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"',
                 str(dyno_bin), "local", *args], cwd=APP, stdout=f, stderr=subprocess.STDOUT,
                env=DEBIAN_PATH)

    def output(self):
        return self.out.read_text(errors="replace")

    def get(self, path, port=5006, timeout=15):
        end = time.monotonic() + timeout
        while True:
            r = subprocess.run(
                ["nsenter", f"--net=/proc/{self.proc.pid}/ns/net", "curl", "-s", "-m", "5",
                 "-w", "\n%{http_code}", f"http://127.0.0.1:{port}{path}"],
                capture_output=True, text=True, timeout=20)
            body, _, code = r.stdout.rpartition("\n")
            if code not in ("", "000") or time.monotonic() > end:
                return int(code or 0), body
            assert self.proc.poll() is None, self.output()
            time.sleep(0.1)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def test_web_without_a_database(dyno_bin, tmp_path):
    local = Local(dyno_bin, tmp_path)
    try:
        code, body = local.get("/")
        assert code == 200
        assert "Served by <b id=dyno>web.1</b>, release <b id=release>none</b>" in body
        code, body = local.get("/db")
        assert code == 200 and "dyno addons:create postgresql -a getting-started" in body
        assert local.get("/nope")[0] == 404
    finally:
        assert local.stop() == 0
    out = local.output()
    # a line per request, and no release process unless named
    assert re.search(r'web\.1 +\| 127\.0\.0\.1 "GET /db HTTP/1\.1" 200', out), out
    assert "release" not in out.replace("release <b", "")


@pytest.fixture
def postgres():
    """A throwaway cluster, postgres's, on a Unix socket only: its URL."""
    if not (PG_BIN / "initdb").exists():
        pytest.skip("postgresql-15 is not installed")
    if subprocess.run(["/usr/bin/python3", "-c", "import psycopg2"]).returncode != 0:
        pytest.skip("python3-psycopg2 is not installed")
    d = Path(tempfile.mkdtemp(prefix="dyno-pg-"))
    os.chmod(d, 0o755)
    shutil.chown(d, "postgres", "postgres")
    pg = ["runuser", "-u", "postgres", "--"]
    data = d / "data"
    try:
        subprocess.run(pg + [str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust"],
                       check=True, capture_output=True, timeout=120)
        subprocess.run(pg + [str(PG_BIN / "pg_ctl"), "-D", str(data), "-w", "-l",
                             str(d / "log"), "-o", f"-k {d} -c listen_addresses=''", "start"],
                       check=True, capture_output=True, timeout=120)
        yield f"postgresql://postgres@/postgres?host={d}"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(pg + [str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate",
                                 "stop"], capture_output=True, timeout=60)
        shutil.rmtree(d, ignore_errors=True)


def test_release_creates_the_table_and_db_counts_visits(dyno_bin, tmp_path, postgres):
    env = tmp_path / "db.env"
    env.write_text(f"DATABASE_URL={postgres}\n")
    r = subprocess.run([str(dyno_bin), "local", "release", "-e", str(env)], cwd=APP,
                       capture_output=True, text=True, timeout=60, env=DEBIAN_PATH)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "release: table visits ready" in r.stdout
    local = Local(dyno_bin, tmp_path, "web", "-e", str(env))
    try:
        for n in (1, 2):
            code, body = local.get("/db")
            assert code == 200, body
            assert f"<p id=count>{n} visit{'s' if n > 1 else ''}.</p>" in body
            assert body.count("by web.1</li>") == n
    finally:
        assert local.stop() == 0
