"""Shared fixtures: the dyno binary of the build under test, and a runner."""
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("DYNO_BUILD", ROOT / "build"))


def pytest_configure(config):
    # scripts/run-tests runs these once, against the normal build only
    # (`-m "not heavy"` for the sanitizer build): load loops, faults, the
    # demo, whole walks; they test behaviour, not memory errors
    config.addinivalue_line("markers", "heavy: a long suite run once, not under sanitizers")


@pytest.fixture(scope="session")
def dyno_bin():
    exe = BUILD / "bin" / "dyno"
    if not exe.exists():
        pytest.fail(f"{exe} is missing: build first (make build) or set DYNO_BUILD")
    return exe


@pytest.fixture
def dyno(dyno_bin):
    """Runs `dyno ARGS...`; returns the CompletedProcess (text, captured)."""

    def run(*args, cwd=None, timeout=120, env=None):
        return subprocess.run(
            [str(dyno_bin), *map(str, args)],
            capture_output=True,
            text=True,
            cwd=cwd,
            timeout=timeout,
            env=env,
        )

    return run


@pytest.fixture(scope="session")
def router_bin():
    exe = BUILD / "bin" / "dyno-router"
    if not exe.exists():
        pytest.fail(f"{exe} is missing: build first (make build) or set DYNO_BUILD")
    return exe


@pytest.fixture
def make_router(router_bin, tmp_path):
    """Starts dyno-router instances (routerkit.Router) in tmp_path; each is
    stopped by its PID at teardown, and must have exited cleanly."""
    from routerkit import Router

    started = []

    def start(**kw):
        d = tmp_path / f"router{len(started)}"
        d.mkdir()
        r = Router(router_bin, d, **kw)
        started.append(r)
        return r

    yield start
    for r in started:
        rc = r.stop()
        assert rc == 0, f"dyno-router exited {rc}: " + r.stderr_path.read_text()[-3000:]


@pytest.fixture
def make_backend():
    """Starts routerkit.Backend servers; all are stopped at teardown."""
    from routerkit import Backend

    started = []

    def start(handler=None):
        b = Backend(handler)
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()


def wait_for_socket(proc, sock_path, log_path, timeout=20):
    """Waits until a daemon started as proc accepts on the Unix socket
    sock_path; fails the test with its log if it exits or never accepts."""
    import socket
    import time

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args[0]} exited {proc.returncode}: {log_path.read_text()}")
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(sock_path))
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"no answer on {sock_path}: " + log_path.read_text())
