"""What keeps tenants apart on the host (docs/operating.md): modes of the
state directory, bounds on what one app can take. A real dynod, driven
through the CLI as an operator's scripts drive it."""
import json
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import BUILD, ROOT
from test_dynod import Dynod

HELLO = ROOT / "examples" / "hello"
NOBODY = 65534


def as_nobody(*cmd):
    """Runs cmd as an unprivileged host user (uid/gid 65534, no groups)."""
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                           "--clear-groups", *cmd], capture_output=True, text=True,
                          timeout=30)


@pytest.fixture
def open_tmp():
    """A directory every host user can traverse, as /var/lib is: pytest's
    own tmp_path is 0700 and would hide the state dir's modes."""
    d = Path(tempfile.mkdtemp(prefix="dyno-tenants-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_unprivileged_user_reads_no_tenant_file(open_tmp, dyno_bin):
    d = Dynod(open_tmp).start()
    try:
        env = dict(os.environ, DYNO_API=d.sock)
        run = lambda *a: subprocess.run([str(dyno_bin), *map(str, a)], capture_output=True,
                                        text=True, env=env, timeout=60)
        assert run("apps:create", "hello").returncode == 0
        r = run("deploy", HELLO, "-a", "hello")
        assert r.returncode == 0, r.stderr
        assert run("config:set", "SECRET=hunter2", "-a", "hello").returncode == 0

        state = d.state
        slugs = list((state / "slugs").glob("*.slug"))
        assert len(slugs) == 1
        # the unpacked trees (hidden files are the app's upload marks)
        unpacked = [p for p in (state / "apps" / "hello" / "slugs").iterdir()
                    if not p.name.startswith(".")]
        assert len(unpacked) == 1
        procfile = unpacked[0] / "Procfile"
        assert procfile.exists()

        assert stat.S_IMODE(os.stat(state).st_mode) == 0o711
        assert stat.S_IMODE(os.stat(state / "apps").st_mode) == 0o711
        assert stat.S_IMODE(os.stat(state / "apps" / "hello").st_mode) == 0o700
        assert stat.S_IMODE(os.stat(state / "slugs").st_mode) == 0o700
        assert stat.S_IMODE(os.stat(slugs[0]).st_mode) == 0o600

        # every file a tenant owns is out of reach of another host user:
        # the config vars, the stored slug, the unpacked code
        for path in (state / "apps" / "hello" / "app.json", slugs[0], procfile):
            r = as_nobody("cat", str(path))
            assert r.returncode != 0 and "Permission denied" in r.stderr, (path, r)
        for path in (state, state / "apps", state / "slugs"):
            r = as_nobody("ls", str(path))
            assert r.returncode != 0 and "Permission denied" in r.stderr, (path, r)
        # a sanity check of the harness: nobody reads what is open to all
        ok = open_tmp / "open.txt"
        ok.write_text("x")
        assert as_nobody("cat", str(ok)).returncode == 0
    finally:
        assert d.stop() == 0, d.log.read_text()


def test_older_state_dir_modes_are_fixed_at_start(open_tmp):
    """A state dir made by an older dynod (0755 everywhere) is tightened
    when dynod starts."""
    state = open_tmp / "state"
    (state / "apps" / "old").mkdir(parents=True)
    (state / "slugs").mkdir()
    for p in (state, state / "apps", state / "apps" / "old", state / "slugs"):
        p.chmod(0o755)
    (state / "apps" / "old" / "app.json").write_text(json.dumps(
        {"schema_version": 1, "name": "old", "created_at": "2026-01-01T00:00:00Z",
         "uid": 200000, "releases": [], "formation": []}))
    d = Dynod(open_tmp).start()
    try:
        assert stat.S_IMODE(os.stat(state).st_mode) == 0o711
        assert stat.S_IMODE(os.stat(state / "apps").st_mode) == 0o711
        assert stat.S_IMODE(os.stat(state / "apps" / "old").st_mode) == 0o700
        assert stat.S_IMODE(os.stat(state / "slugs").st_mode) == 0o700
    finally:
        assert d.stop() == 0, d.log.read_text()


def test_second_dynod_on_a_state_dir_refused(tmp_path):
    """One dynod per state dir: a second one refuses to start, naming the
    first, and leaves the first's state and uploads alone."""
    first = Dynod(tmp_path).start()
    try:
        other = tmp_path / "other"
        other.mkdir()
        second = Dynod(other)
        # the same state dir, its own socket
        cfg = json.loads(second.config.read_text())
        cfg["state_dir"] = str(first.state)
        second.config.write_text(json.dumps(cfg))
        r = subprocess.run([str(BUILD / "bin" / "dynod"), "--config", str(second.config)],
                           capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, DYNOD_NO_LAUNCHER="1"))
        assert r.returncode == 1
        want = (f"dynod: error: state_dir {first.state} is in use by another dynod "
                f"(pid {first.proc.pid}: {BUILD / 'bin' / 'dynod'} --config {first.config})")
        assert r.stderr.strip() == want
        assert not os.path.exists(second.sock)
    finally:
        assert first.stop() == 0, first.log.read_text()
    # once the first is gone, the state dir is free again
    again = Dynod(tmp_path).start()
    assert again.stop() == 0
