"""dynod with its state directory on a full filesystem (docs/operating.md,
"A full disk"): the state dir is a small tmpfs mounted here (unmounted
after, whatever happens), a file eats its space. Every change through the
API and the CLI (apps:create, config:set, ps:scale, deploy) is refused
with 507 naming the lack of space, and leaves nothing: no temporary file,
every state file parses, the state as before, dynod running. Once the
filler goes, the same changes succeed, and they are there after a restart
of dynod. test_dynod's Dynod (the API alone, no dyno runs); test_disk's
call, upload, small_slug and leftovers."""
import json
import os
import subprocess
import time

import pytest

from test_disk import call, leftovers, small_slug, upload
from test_dynod import Dynod
from test_router_keeper import kept  # noqa: F401 (kept: the fixture)
from test_supervise import all_up, app_pid, by_name
from test_survive import NAMES, backends, deploy, pids, record, wait_recorded

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mount needs root")

SIZE = 300 << 20  # an unpack wants 256 MiB free besides its size (docs/operating.md, "Disk")


@pytest.fixture
def tmpfs_state(tmp_path):
    """tmp_path/state, a tmpfs of SIZE of its own; unmounted after the
    fixtures that use it (the dynod that ran there is gone by then)."""
    state = tmp_path / "state"
    state.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0711",
                    f"dyno-fullfs-{os.getpid()}-{time.monotonic_ns()}", str(state)], check=True)
    try:
        yield state
    finally:
        if subprocess.run(["umount", str(state)]).returncode != 0:
            subprocess.run(["umount", "-l", str(state)])
        assert not os.path.ismount(state)


@pytest.fixture
def fullfs(tmpfs_state, tmp_path):
    d = Dynod(tmp_path)
    try:
        yield d
    finally:
        if d.proc is not None:
            d.proc.kill()
            d.proc.wait()


def cli(d, dyno_bin, *args):
    env = dict(os.environ, DYNO_API=d.sock, DYNO_APP="hello")
    return subprocess.run([str(dyno_bin), *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=60)


def fill(path, leave=0):
    """Writes path until the filesystem is full, then frees leave bytes."""
    with open(path, "wb", buffering=0) as f:
        for bs in (1 << 20, 4096, 1):
            try:
                while True:
                    f.write(b"\0" * bs)
            except OSError as e:
                assert e.errno == 28, e  # ENOSPC
        if leave:
            f.truncate(os.fstat(f.fileno()).st_size - leave)


def state_of(d):
    """What a user and the disk hold: the API's view of the app, and every
    state file (each must parse)."""
    files = {}
    for root, _, names in os.walk(d.state):
        for n in names:
            if n.endswith(".json"):
                p = os.path.join(root, n)
                files[os.path.relpath(p, d.state)] = json.loads(open(p).read())
    api = {p: call(d, "GET", p) for p in ("/apps", "/apps/hello", "/apps/hello/config-vars",
                                         "/apps/hello/releases", "/apps/hello/formation",
                                         "/apps/hello/domains")}
    for p, (status, _) in api.items():
        assert status == 200, (p, status)
    api["/apps"] = (200, sorted(a["name"] for a in api["/apps"][1]))
    return {"api": api, "files": files}


def refused(r, what):
    assert r.returncode == 1, (what, r.stdout, r.stderr)
    err = r.stderr.strip().splitlines()[-1]
    assert err.startswith("dyno: error: ") and "no space left on device" in err.lower(), err
    return err


def test_full_state_dir_refuses_changes_and_keeps_the_state(fullfs, tmp_path, dyno_bin):
    d = fullfs.start()
    src = tmp_path / "src"
    src.mkdir()
    (src / "Procfile").write_text("web: exec sleep 1000\n")
    assert cli(d, dyno_bin, "apps:create", "hello").returncode == 0
    for args in (("deploy", src), ("config:set", "A=1"), ("ps:scale", "web=1")):
        r = cli(d, dyno_bin, *args)
        assert r.returncode == 0, (args, r.stderr)
    before = state_of(d)
    filler = d.state / "filler"
    fill(filler)
    assert os.statvfs(d.state).f_bavail == 0

    # the CLI: each change refused, naming the lack of space
    (src / "new.txt").write_text("a new slug")
    printed = {}
    for args in (("apps:create", "other"), ("config:set", "B=2"), ("ps:scale", "web=3"),
                 ("deploy", src)):
        printed[args[0]] = refused(cli(d, dyno_bin, *args), args)
    # the API: 507, before anything is made
    slug = small_slug(tmp_path, 1)
    answers = {
        "POST /apps": call(d, "POST", "/apps", {"name": "other"}),
        "PATCH config-vars": call(d, "PATCH", "/apps/hello/config-vars", {"B": "2"}),
        "PATCH formation": call(d, "PATCH", "/apps/hello/formation/web", {"quantity": 2}),
        "POST slugs": upload(d, slug),
        "POST releases": call(d, "POST", "/apps/hello/releases",
                              {"slug": before["api"]["/apps/hello/releases"][1][0]["slug"]["id"]}),
        "POST builds": call(d, "POST", "/apps/hello/builds", slug.read_bytes()),
        "POST domains": call(d, "POST", "/apps/hello/domains", {"hostname": "www.example.com"}),
        "PATCH maintenance": call(d, "PATCH", "/apps/hello", {"maintenance": True}),
    }
    for what, (status, body) in answers.items():
        assert status == 507 and body["id"] == "insufficient_storage", (what, status, body)
        assert "no space left on device" in body["message"].lower(), (what, body)
        assert str(d.state) not in body["message"], body
    print("\n" + "\n".join(f"{k}: {v}" for k, v in printed.items()))
    print("\n".join(f"{k}: {s} {b['message']}" for k, (s, b) in answers.items()))

    # nothing half-written, nothing changed, dynod still there
    assert d.proc.poll() is None
    assert leftovers(d) == []
    assert state_of(d) == before
    assert call(d, "DELETE", "/apps/nope")[0] == 404  # reads and deletes still answer

    # an upload larger than what is left: refused as it is written, no trace
    filler.unlink()
    fill(filler, leave=2 << 20)
    big = tmp_path / "big"
    big.mkdir()
    (big / "Procfile").write_text("web: exec sleep 1000\n")
    (big / "blob").write_bytes(os.urandom(3 << 20))
    err = refused(cli(d, dyno_bin, "deploy", big), "deploy big")
    assert leftovers(d) == [] and state_of(d) == before, err
    print(f"deploy of 3 MiB with 2 MiB free: {err}")

    # space again: the same changes succeed
    filler.unlink()
    for args in (("apps:create", "other"), ("config:set", "B=2"), ("ps:scale", "web=3"),
                 ("deploy", src)):
        r = cli(d, dyno_bin, *args)
        assert r.returncode == 0, (args, r.stderr)
    after = state_of(d)
    assert after["api"]["/apps"][1] == ["hello", "other"]
    assert after["api"]["/apps/hello/config-vars"][1] == {"A": "1", "B": "2"}
    assert [f["quantity"] for f in after["api"]["/apps/hello/formation"][1]] == [3]
    assert len(after["api"]["/apps/hello/releases"][1]) == len(
        before["api"]["/apps/hello/releases"][1]) + 2  # B=2, the deploy
    # and after a restart of dynod
    assert d.stop() == 0
    d.start()
    assert state_of(d) == after
    assert d.stop() == 0
    log = d.log.read_text()
    assert "Sanitizer" not in log and "runtime error:" not in log, log[-3000:]


def test_full_state_dir_leaves_dynos_serving(tmpfs_state, kept, tmp_path):
    """Real dynos (test_router_keeper's kept dynod): with the state dir
    full they go on serving through the router, a crashed one restarts, a
    crashed dynod starts again there and re-adopts what was recorded, and
    routes.json and dynos.json catch up once there is room."""
    d = kept.start()
    before = deploy(d, tmp_path)
    filler = d.state / "filler"
    fill(filler)
    assert d.get() == "200"
    os.kill(app_pid(before["web.1"]), 9)
    ds_full = d.wait(lambda ds: all_up(NAMES)(ds) and by_name(ds)["web.1"]["pid"] != before["web.1"],
                     what="web.1 restarted on a full disk")
    for _ in range(20):
        assert d.get() == "200"
    assert {x["name"]: x["pid"] for x in record(d)["dynos"]} == before  # not rewritten
    r = d.cli("ps:scale", "web=3")
    assert r.returncode == 1 and "no space left on device" in r.stderr, r.stderr
    end = time.monotonic() + 5
    while "routes.json: write" not in d.log.read_text() and time.monotonic() < end:
        time.sleep(0.1)
    assert "routes.json: write" in d.log.read_text()
    assert "dynos.json: No space left on device" in d.log.read_text()
    # dynod crashes on the full disk: the next one starts there and
    # re-adopts what dynos.json recorded; web.1, started since the disk
    # filled, was not recorded: killed and started again
    d.kill9()
    d.start()
    gone = (before["web.1"], pids(ds_full)["web.1"])
    ds = d.wait(lambda ds: all_up(NAMES)(ds) and by_name(ds)["web.1"]["pid"] not in gone,
                what="web.1 started again")
    assert {n: p for n, p in pids(ds).items() if n != "web.1"} == {
        n: p for n, p in before.items() if n != "web.1"}
    log = d.log.read_text()
    assert f"re-adopted pid {before['web.2']}" in log and "web.1]: not re-adopted" in log
    assert d.get() == "200"
    # room again: the files say what runs, within a second or two
    filler.unlink()
    wait_recorded(d, NAMES)
    end = time.monotonic() + 5
    while pids(d.dynos()) != {x["name"]: x["pid"] for x in record(d)["dynos"]}:
        assert time.monotonic() < end, (d.dynos(), record(d))
        time.sleep(0.1)
    m = by_name(ds)
    end = time.monotonic() + 5
    while backends(d) != {"web.1": m["web.1"]["addr"], "web.2": m["web.2"]["addr"]}:
        assert time.monotonic() < end, (backends(d), m)
        time.sleep(0.1)
    assert leftovers(d) == []
    assert d.stop() == 0 and d.cgroups() == []

