"""The CLI waits for what it asked (cli/release-wait.c): deploy, config:set,
config:unset, rollback and ps:restart follow the release phase (its output
shown) and the new web dynos up, then exit 0 with `done, vN`; or exit 1
naming what failed (the release command's status, a web dyno's crash and
its R-code). `--no-wait` returns once the release exists. dynod runs in a
network namespace of its own (test_supervise.py's Dynod: boot 3s)."""
import json
import os
import subprocess
import time

import pytest

from test_supervise import WEB, dynod, make_app  # noqa: F401 (dynod: the fixture)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="dynos need root")


def webs(dynod):
    """The web dynos serving (not those draining after a rollout)."""
    return [(d["name"], d["state"], d["release"]["version"], d["pid"])
            for d in dynod.dynos() if d["type"] == "web" and not d["stopping"]]


def deployed(dynod, tmp_path, procfile):
    """An app at v1 with web.1 up (waited for here too: each test looks at
    its own verb's wait)."""
    assert dynod.cli("apps:create", "app").returncode == 0
    r = dynod.cli("deploy", make_app(dynod, tmp_path, procfile))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.rstrip().endswith("done, v1"), r.stdout
    dynod.wait(lambda ds: [(d["name"], d["state"]) for d in ds] == [("web.1", "up")],
               what="v1 up")
    return webs(dynod)


def test_failed_release_exits_1_and_old_release_serves(dynod, tmp_path):
    before = deployed(dynod, tmp_path, f"web: {WEB}\n")
    bad = make_app(dynod, tmp_path, f"release: echo migrating; exit 3\nweb: {WEB}\n")
    r = dynod.cli("deploy", bad)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "migrating" in r.stdout
    assert "dyno: error: release v2 failed: release command exited with status 3" in r.stderr
    # the release phase is over when the CLI returns: no waiting here
    rels = json.loads(dynod.cli("releases", "--json").stdout)
    assert [(x["version"], x["status"]) for x in rels] == [(1, "succeeded"), (2, "failed")]
    assert rels[1]["failure"] == "release command exited with status 3"
    assert rels[0]["failure"] is None
    assert webs(dynod) == before  # untouched: same pid, same release
    out = dynod.cli("releases").stdout
    assert "Current: v1" in out and "failed" in out


def test_release_output_and_web_up(dynod, tmp_path):
    deployed(dynod, tmp_path, f"web: {WEB}\n")
    good = make_app(dynod, tmp_path,
                    f"release: echo migrating 1; sleep 1; echo migrated 2\nweb: {WEB}\n")
    r = dynod.cli("deploy", good)
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert "migrating 1\n" in out and "migrated 2\n" in out, out
    assert out.index("migrated 2") < out.index("done, v2"), out
    assert out.rstrip().endswith("done, v2"), out
    # returned once web is up: the new web.1 of v2 is up already
    assert [(n, s, v) for n, s, v, _ in webs(dynod)] == [("web.1", "up", 2)]


def test_config_set_and_unset_wait(dynod, tmp_path):
    before = deployed(dynod, tmp_path, f"web: {WEB}\n")
    r = dynod.cli("config:set", "FOO=bar")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.rstrip().endswith("done, v2"), r.stdout
    ws = webs(dynod)
    assert [(n, s, v) for n, s, v, _ in ws] == [("web.1", "up", 2)], ws
    assert ws[0][3] != before[0][3]
    r = dynod.cli("config:unset", "FOO")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.rstrip().endswith("done, v3"), r.stdout
    assert [(n, s, v) for n, s, v, _ in webs(dynod)] == [("web.1", "up", 3)]
    # a rollback and a restart wait too
    r = dynod.cli("rollback", "v1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.rstrip().endswith("done, v4"), r.stdout
    assert [(n, s, v) for n, s, v, _ in webs(dynod)] == [("web.1", "up", 4)]
    old = webs(dynod)[0][3]
    r = dynod.cli("ps:restart", "web")
    assert r.returncode == 0, r.stdout + r.stderr
    ws = webs(dynod)
    assert [(n, s) for n, s, _, _ in ws] == [("web.1", "up")] and ws[0][3] != old, ws


def test_web_never_binds_names_r10(dynod, tmp_path):
    deployed(dynod, tmp_path, f"web: {WEB}\n")
    start = time.monotonic()
    r = dynod.cli("config:set", "X=1")  # same slug: still binds
    assert r.returncode == 0, r.stderr
    bad = make_app(dynod, tmp_path, "web: exec sleep 1000\n")
    r = dynod.cli("deploy", bad)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "web.1 crashed: Error R10 (Boot timeout)" in r.stderr, r.stderr
    assert time.monotonic() - start < 40


def test_no_wait_returns_at_once(dynod, tmp_path):
    deployed(dynod, tmp_path, f"web: {WEB}\n")
    slow = make_app(dynod, tmp_path, f"release: sleep 5; exit 3\nweb: {WEB}\n")
    start = time.monotonic()
    r = dynod.cli("deploy", slow, "--no-wait")
    assert r.returncode == 0, r.stdout + r.stderr
    assert time.monotonic() - start < 4
    assert r.stdout.rstrip().endswith("done, v2 (pending)"), r.stdout
    start = time.monotonic()
    r = dynod.cli("config:set", "A=1", "--no-wait")
    assert r.returncode == 0 and time.monotonic() - start < 2, r.stdout + r.stderr
    # built on v2 (pending: its phase runs), rolling out on its own
    assert r.stdout.rstrip().endswith("done, v3 (pending)"), r.stdout


def test_a_terminal_sees_the_upload_and_the_rollout(dynod, tmp_path):
    """On a terminal (a pty from `script`): the bytes of the upload, then
    the fresh web dynos counted up, each on one line redrawn in place."""
    deployed(dynod, tmp_path, f"web: {WEB}\n")
    big = tmp_path / "big"
    big.mkdir()
    (big / "Procfile").write_text(f"web: {WEB}\n")
    (big / "blob").write_bytes(os.urandom(3 * 1024 * 1024))  # a few chunks to send
    slug = tmp_path / "big.tgz"
    assert dynod.cli("slugs:create", big, "-o", slug).returncode == 0
    env = dict(os.environ, DYNO_API=dynod.sock, DYNO_APP="app")
    r = subprocess.run(["script", "-qec", f"{dynod.dyno_bin} deploy {slug}", "/dev/null"],
                       capture_output=True, env=env, timeout=60)
    out = r.stdout.decode(errors="replace")  # bytes: a \r stays a \r
    assert r.returncode == 0, out + r.stderr.decode(errors="replace")
    assert "\r\x1b[KUploading slug... 256.0 KiB of 3.0 MiB (8%)" in out, repr(out)
    assert "3.0 MiB of 3.0 MiB (100%)" in out, repr(out)
    assert "\r\x1b[KUploading slug (3.0 MiB)... done, slug " in out, repr(out)
    assert "Waiting for web dynos: 1/1 up" in out, repr(out)
    assert out.rstrip().endswith("done, v2"), repr(out)
    # not a terminal: one plain line
    r = dynod.cli("deploy", slug)
    assert "\r" not in r.stdout and "Uploading slug (" in r.stdout, repr(r.stdout)
