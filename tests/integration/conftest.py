"""Shared fixtures: the dyno binary of the build under test, and a runner."""
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("DYNO_BUILD", ROOT / "build"))


@pytest.fixture(scope="session")
def dyno_bin():
    exe = BUILD / "cli" / "dyno"
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
