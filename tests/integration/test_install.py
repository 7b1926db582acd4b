"""make install (scripts/install; docs/operating.md, "Install"): into a
DESTDIR, the binaries run, the unit verifies with systemd-analyze,
/etc/dyno/dynod.json loads and is kept when present, the installed dynod
finds its helpers (dyno-router, dyno-init) in the installed tree, not in
the build, and a restart as the unit does it (its KillSignal to dynod
alone, then dynod again) keeps the dyno and the router."""
import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import BUILD, ROOT
from test_router_keeper import KeptDynod, answers
from test_supervise import WEB, alive, all_up, make_app

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="dynos need root")

PREFIX = "/usr/local"
FILES = {
    "usr/local/sbin/dynod": 0o755,
    "usr/local/bin/dyno": 0o755,
    "usr/local/bin/dyno-router": 0o755,
    "usr/local/bin/dyno-init": 0o755,
    "usr/local/bin/dyno-build": 0o755,
    "usr/local/bin/dyno-build-pack": 0o755,
    **{f"usr/local/lib/dyno/buildpacks/{bp}/bin/{s}": 0o755
       for bp in ("python", "nodejs", "procfile") for s in ("detect", "compile", "release")},
    "usr/local/lib/systemd/system/dynod.service": 0o644,
    "etc/dyno/dynod.json": 0o644,
}


def make_install(destdir):
    env = dict(os.environ, BUILD=str(BUILD))
    env.pop("MAKEFLAGS", None)
    return subprocess.run(["make", "-s", "install", f"DESTDIR={destdir}", f"PREFIX={PREFIX}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module")
def installed():
    """One make install into a temporary DESTDIR: (root, its output)."""
    root = Path(tempfile.mkdtemp(prefix="dyno-install-"))
    try:
        r = make_install(root)
        assert r.returncode == 0, r.stdout + r.stderr
        yield root, r.stdout
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_installs_the_files_and_the_binaries_run(installed):
    root, out = installed
    found = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert found == sorted(FILES), found
    for f, mode in FILES.items():
        assert stat.S_IMODE((root / f).stat().st_mode) == mode, f
        # the built-in buildpacks: one line for their directory
        line = f if "/buildpacks/" not in f else "usr/local/lib/dyno/buildpacks"
        assert f"installed {root}/{line}" in out, out
    # under DESTDIR no group is made; the output says how
    assert "groupadd --system dyno" in out, out
    r = subprocess.run([root / "usr/local/bin/dyno", "version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("dyno "), r.stdout + r.stderr
    r = subprocess.run([root / "usr/local/sbin/dynod", "--version"], capture_output=True,
                       text=True)
    assert r.returncode == 0 and r.stdout.startswith("dynod "), r.stdout + r.stderr


def test_the_configuration_is_kept_when_present(tmp_path):
    root = tmp_path / "root"
    r = make_install(root)
    assert r.returncode == 0, r.stdout + r.stderr
    conf = root / "etc/dyno/dynod.json"
    assert json.loads(conf.read_text()) == json.loads((ROOT / "configs/dynod.json").read_text())
    conf.write_text('{"domain": "example.test"}\n')
    r = make_install(root)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"kept {conf}" in r.stdout, r.stdout
    assert conf.read_text() == '{"domain": "example.test"}\n'


# make install twice without DESTDIR, as on a host, in a mount namespace of
# its own where /etc and /usr/local are overlays whose writes land in $1:
# the host's own stay untouched. Then the group as the installed host sees it.
ON_A_HOST = r"""
set -e
for d in etc usr/local; do
    mkdir -p "$1/$d/upper" "$1/$d/work"
    mount -t overlay overlay -o "lowerdir=/$d,upperdir=$1/$d/upper,workdir=$1/$d/work" "/$d"
done
groupdel dyno 2>/dev/null || true
make -s install
make -s install
echo "group: $(getent group dyno | cut -d: -f1)"
"""


def test_an_install_on_the_host_creates_the_group_once(tmp_path):
    env = dict(os.environ, BUILD=str(BUILD))
    env.pop("MAKEFLAGS", None)
    r = subprocess.run(["unshare", "-m", "sh", "-c", ON_A_HOST, "sh", tmp_path], cwd=ROOT,
                       capture_output=True, text=True, timeout=600, env=env)
    if r.returncode != 0 and "overlay" in r.stderr and "installed" not in r.stdout:
        pytest.skip("no overlayfs here to install over /etc and /usr/local: " + r.stderr)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("created group dyno") == 1, r.stdout
    assert "group dyno exists" in r.stdout and "group: dyno" in r.stdout, r.stdout
    assert "installed /usr/local/sbin/dynod" in r.stdout, r.stdout
    assert "kept /etc/dyno/dynod.json" in r.stdout, r.stdout
    assert "DESTDIR" not in r.stdout  # the hint of an install into one
    etc = tmp_path / "etc/upper"
    assert (etc / "dyno/dynod.json").is_file() and "\ndyno:" in "\n" + (etc / "group").read_text()
    assert (tmp_path / "usr/local/upper/sbin/dynod").is_file()


def unit_lines(text):
    lines = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            lines.setdefault(k, []).append(v)
    return lines


def test_the_unit_keeps_the_dynos_and_verifies(installed):
    root, _ = installed
    unit = root / "usr/local/lib/systemd/system/dynod.service"
    lines = unit_lines(unit.read_text())
    assert lines["ExecStart"] == [f"{PREFIX}/sbin/dynod --config /etc/dyno/dynod.json"]
    # only dynod is signalled on stop and restart: the dynos and the router
    # run on, and the next dynod re-adopts them
    assert lines["KillMode"] == ["process"]
    assert lines["KillSignal"] == ["SIGQUIT"]
    assert lines["Delegate"] == ["yes"]
    assert lines["Restart"] == ["on-failure"]
    assert lines["RuntimeDirectory"] == ["dyno"]  # /run/dyno/api.sock
    assert "ExecReload" not in lines
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is missing (scripts/install-deps test installs systemd)")
    # verify with ExecStart resolvable: the installed tree over /usr/local in
    # a mount namespace of its own (--root=DESTDIR would need the host's
    # sysinit.target and the like under DESTDIR too)
    r = subprocess.run(["unshare", "-m", "sh", "-c",
                        'mount --bind "$1" /usr/local && exec systemd-analyze verify "$2"', "sh",
                        root / "usr/local", f"{PREFIX}/lib/systemd/system/dynod.service"],
                       capture_output=True, text=True, timeout=60)
    # a bad line is only a warning: none may be printed
    assert r.returncode == 0 and r.stderr == "" and r.stdout == "", r.stdout + r.stderr


class InstalledDynod(KeptDynod):
    """The installed dynod and CLI, on the installed dynod.json with the
    test's state dir, API socket, group, cgroup parent and uids; in a
    network namespace that outlives it, as a host's does across restarts."""

    def __init__(self, tmp_path, root):
        super().__init__(tmp_path, root / "usr/local/bin/dyno")
        conf = json.loads((root / "etc/dyno/dynod.json").read_text())
        mine = json.loads(self.config.read_text())
        for k in ("state_dir", "api_socket", "api_group", "cgroup_parent", "uids"):
            conf[k] = mine[k]
        self.config.write_text(json.dumps(conf))
        self.exe = root / "usr/local/sbin/dynod"


def test_the_installed_dynod_finds_its_helpers_and_a_restart_keeps_the_dynos(installed,
                                                                              tmp_path):
    root, _ = installed
    kill_signal = unit_lines((root / "usr/local/lib/systemd/system/dynod.service")
                             .read_text())["KillSignal"][0]
    d = InstalledDynod(tmp_path, root)
    try:
        d.start()
        assert d.curl("GET", "/apps") == (200, [])
        router = d.router_pid()
        assert router is not None, d.log.read_text()
        assert os.readlink(f"/proc/{router}/exe") == str(root / "usr/local/bin/dyno-router")
        slug = make_app(d, tmp_path, f"web: {WEB}\n")
        assert d.cli("apps:create", "app").returncode == 0
        r = d.cli("deploy", slug)
        assert r.returncode == 0, r.stdout + r.stderr
        web = d.wait(all_up(["web.1"]), timeout=30, what="web.1 up")[0]
        # the dyno's PID 1 is the installed dyno-init
        assert os.readlink(f"/proc/{web['pid']}/exe") == str(root / "usr/local/bin/dyno-init")
        answers(d)

        # systemctl restart: the unit's KillSignal to dynod alone, then the
        # same ExecStart; the dyno and the router serve on, re-adopted
        d.proc.send_signal(getattr(signal, kill_signal))
        assert d.proc.wait(timeout=30) == 0, d.log.read_text()[-3000:]
        d.proc = None
        d.logf.close()
        assert alive(web["pid"]) and d.router_pid() == router
        assert d.get() == "200"
        d.start()
        web2 = d.wait(all_up(["web.1"]), timeout=30, what="web.1 re-adopted")[0]
        assert web2["pid"] == web["pid"] and d.router_pid() == router
        log = d.log.read_text()
        assert "dyno[web.1]: re-adopted pid" in log and f"adopted pid {router}" in log, log
        answers(d)

        assert d.stop() == 0, d.log.read_text()[-3000:]
        assert d.router_pid() is None and d.cgroups() == []
    finally:
        d.cleanup()
