"""A tenant must not fill the host's disk or stall the API (docs/slugs.md,
"Disk"): slug checks and unpacks run off dynod's loop, an app's disk
budget refuses a zero bomb, unpacked trees nobody needs are removed, and
no error names a host path."""
import http.client
import json
import os
import shutil
import socket
import threading
import time

import pytest

import slugkit as sk
from test_dynod import Dynod


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path, timeout=120):
        super().__init__("dynod", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def call(d, method, path, body=None):
    c = UnixHTTP(d.sock)
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
    c.request(method, path, body=body)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, json.loads(data) if data.strip() else None


def timed_while(d, method, path, body=None):
    """Runs the request in a thread while GET /apps is asked again and
    again on another connection. Returns (status, answer, its duration,
    the GET latencies)."""
    out = {}

    def run():
        t0 = time.monotonic()
        out["r"] = call(d, method, path, body)
        out["t"] = time.monotonic() - t0

    th = threading.Thread(target=run)
    th.start()
    lat = []
    while th.is_alive():
        t0 = time.monotonic()
        status, _ = call(d, "GET", "/apps")
        lat.append(time.monotonic() - t0)
        assert status == 200
        time.sleep(0.01)
    th.join()
    return out["r"][0], out["r"][1], out["t"], lat


@pytest.fixture
def start(tmp_path):
    started = []

    def go(slugs=None):
        d = Dynod(tmp_path, {"slugs": slugs} if slugs else None).start()
        started.append(d)
        assert call(d, "POST", "/apps", {"name": "hello"})[0] == 201
        return d

    yield go
    for d in started:
        rc = d.stop()
        assert rc == 0, d.log.read_text()
        assert "LeakSanitizer" not in d.log.read_text()


def small_slug(tmp_path, n):
    """A small slug, different for each n."""
    return sk.build(tmp_path / f"s{n}.tgz", [
        sk.PROCFILE, sk.file("./app/n.txt", str(n).encode() * 1000)])


def upload(d, path):
    return call(d, "POST", "/apps/hello/slugs", path.read_bytes())


def trees(d):
    p = d.state / "apps" / "hello" / "slugs"
    return sorted(x.name for x in p.iterdir() if not x.name.startswith("."))


def leftovers(d):
    found = []
    for root, dirs, files in os.walk(d.state):
        found += [n for n in dirs + files if ".unpack-" in n or ".tmp-" in n]
    return found


def test_zero_bomb_refused_by_budget_api_answers_meanwhile(start, tmp_path):
    d = start({"app_disk_budget": "64M"})
    bomb = sk.zeros_bomb(tmp_path / "bomb.tgz", "./app/zeros", 1 << 30)
    assert bomb.stat().st_size < 2 << 20
    status, j, took, lat = timed_while(d, "POST", "/apps/hello/slugs", bomb.read_bytes())
    assert status == 422, j
    msg = j["message"]
    assert "would take app hello to 1.0 GiB, over its disk budget of 64 MiB " \
           "(slugs.app_disk_budget)" in msg, msg
    assert str(d.state) not in msg
    # the check read 1 GiB of zeros; the API answered all along
    assert len(lat) >= 3, (took, lat)
    assert max(lat) < took / 4, (took, max(lat))
    # nothing was kept, nothing half-written
    assert not list((d.state / "slugs").glob("*.slug"))
    assert leftovers(d) == []


def test_deploy_over_budget_refused_before_unpacking(start, tmp_path):
    d = start({"app_disk_budget": "64M", "keep_unpacked": 3})
    a = sk.zeros_bomb(tmp_path / "a.tgz", "./app/a", 40 << 20)
    b = sk.zeros_bomb(tmp_path / "b.tgz", "./app/b", 30 << 20)
    sa, ja = upload(d, a)
    sb, jb = upload(d, b)
    assert (sa, sb) == (201, 201), (ja, jb)
    assert call(d, "POST", "/apps/hello/releases", {"slug": ja["id"]})[0] == 201
    status, j = call(d, "POST", "/apps/hello/releases", {"slug": jb["id"]})
    assert status == 422, j
    assert "slug refused: unpacking it would take app hello to 70." in j["message"], j
    assert "over its disk budget of 64 MiB (slugs.app_disk_budget)" in j["message"]
    assert trees(d) == [ja["id"]]
    assert leftovers(d) == []
    # the app still runs its release: v1
    status, rels = call(d, "GET", "/apps/hello/releases")
    assert [r["version"] for r in rels] == [1]


def test_unpack_off_the_loop(start, tmp_path):
    d = start({"app_disk_budget": "4G"})
    bomb = sk.zeros_bomb(tmp_path / "bomb.tgz", "./app/zeros", 1 << 30)
    # the upload checks and unpacks it (one pass)
    status, j, took, lat = timed_while(d, "POST", "/apps/hello/slugs", bomb.read_bytes())
    assert status == 201, j
    assert (d.state / "apps" / "hello" / "slugs" / j["id"] / "zeros").stat().st_size == 1 << 30
    # writing 1 GiB took a while; GET /apps was answered throughout
    assert len(lat) >= 3, (took, lat)
    assert max(lat) < took / 4, (took, max(lat))
    print(f"upload (1 GiB unpack) {took:.3f}s; GET /apps meanwhile: {len(lat)} answers, "
          f"max {max(lat) * 1000:.1f} ms")
    # a deploy of a slug whose tree is gone unpacks it, off the loop too
    shutil.rmtree(d.state / "apps" / "hello" / "slugs" / j["id"])
    status, rel, took, lat = timed_while(d, "POST", "/apps/hello/releases", {"slug": j["id"]})
    assert status == 201, rel
    assert (d.state / "apps" / "hello" / "slugs" / j["id"] / "zeros").stat().st_size == 1 << 30
    assert len(lat) >= 3, (took, lat)
    assert max(lat) < took / 4, (took, max(lat))


def wait_trees(d, want, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if trees(d) == sorted(want):
            return
        time.sleep(0.05)
    assert trees(d) == sorted(want)


def test_old_trees_removed_rollback_to_kept_is_instant(start, tmp_path):
    d = start({"keep_unpacked": 2})
    ids = []
    for n in range(5):
        status, j = upload(d, small_slug(tmp_path, n))
        assert status == 201, j
        ids.append(j["id"])
        status, rel = call(d, "POST", "/apps/hello/releases", {"slug": j["id"]})
        assert status == 201, rel
        # the current tree and the two newest earlier ones
        wait_trees(d, ids[-3:])
    assert "removed 1 unpacked slugs the app keeps no more" in d.log.read_text()

    kept = d.state / "apps" / "hello" / "slugs" / ids[2]
    before = kept.stat()
    status, rel = call(d, "POST", "/apps/hello/releases", {"release": "v3"})
    assert status == 201, rel
    assert rel["slug"]["id"] == ids[2]
    after = kept.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    # v6 runs slug 2: kept are it, and slugs 4 and 3 (v5, v4)
    wait_trees(d, [ids[2], ids[3], ids[4]])

    # a rollback to a removed one unpacks it again
    status, rel = call(d, "POST", "/apps/hello/releases", {"release": "v1"})
    assert status == 201, rel
    wait_trees(d, [ids[0], ids[2], ids[4]])


def test_errors_name_no_host_path(start, tmp_path):
    d = start()
    # a slug refused by its checks: no temporary file's path in the message
    bad = sk.build(tmp_path / "bad.tgz", [sk.file("./app/x", b"x")])
    status, j = upload(d, bad)
    assert status == 422, j
    assert "no Procfile" in j["message"]
    assert str(d.state) not in j["message"], j

    # an internal failure: the app's slugs directory cannot be made
    status, j = upload(d, small_slug(tmp_path, 1))
    assert status == 201, j
    sd = d.state / "apps" / "hello" / "slugs"
    shutil.rmtree(sd)  # the upload's mark and the tree it unpacked
    sd.write_text("in the way")
    status, e = call(d, "POST", "/apps/hello/releases", {"slug": j["id"]})
    assert status == 500, e
    msg = e["message"]
    assert str(d.state) not in msg, msg
    assert msg == f"unpacking slug {j['id'][:7]} for app hello failed: Not a directory", msg
    # dynod's log has the details
    assert str(sd) in d.log.read_text()


def test_upload_unpacks_for_the_deploy(start, tmp_path):
    """The upload checks and unpacks the slug in one pass: its tree is there
    (the app's) as the upload answers, and the deploy uses it as it is."""
    d = start()
    status, j = upload(d, small_slug(tmp_path, 1))
    assert status == 201, j
    tree = d.state / "apps" / "hello" / "slugs" / j["id"]
    st = tree.stat()
    assert st.st_uid == 200000 and oct(st.st_mode & 0o7777) == "0o755"
    assert (tree / "n.txt").read_bytes() == b"1" * 1000
    assert (tree / "n.txt").stat().st_uid == 200000
    status, rel = call(d, "POST", "/apps/hello/releases", {"slug": j["id"]})
    assert status == 201, rel
    after = tree.stat()
    # not unpacked again: the same directory, untouched
    assert (after.st_ino, after.st_mtime_ns) == (st.st_ino, st.st_mtime_ns)
    assert leftovers(d) == []
    # a refused upload leaves no tree either
    bad = sk.build(tmp_path / "bad.tgz", [sk.PROCFILE, sk.file("./app/x", b"x"),
                                          sk.symlink("./app/l", "../../etc")])
    status, e = upload(d, bad)
    assert status == 422, e
    assert e["message"] == 'slug refused: refused entry "./app/l": link target ' \
                           '"../../etc" leaves app/', e
    assert trees(d) == [j["id"]]
    assert leftovers(d) == []


def test_upload_trees_give_way_to_a_deploy(start, tmp_path):
    """A tree an upload made counts against the budget as it holds disk,
    but never makes an upload or a deploy refused that would pass without
    it: a deploy that needs the room removes it (its slug stays stored)."""
    d = start({"app_disk_budget": "64M"})
    a = sk.zeros_bomb(tmp_path / "a.tgz", "./app/a", 40 << 20)
    b = sk.zeros_bomb(tmp_path / "b.tgz", "./app/b", 30 << 20)
    sa, ja = upload(d, a)
    assert sa == 201, ja
    assert trees(d) == [ja["id"]]
    # b fits the budget as the upload checks it, but not beside a's tree:
    # stored, not unpacked
    sb, jb = upload(d, b)
    assert sb == 201, jb
    assert trees(d) == [ja["id"]]
    status, rel = call(d, "POST", "/apps/hello/releases", {"slug": jb["id"]})
    assert status == 201, rel
    assert trees(d) == [jb["id"]]
    # a now is as before: 40 MiB beside b's release is over the budget
    status, e = call(d, "POST", "/apps/hello/releases", {"slug": ja["id"]})
    assert status == 422, e
    assert "slug refused: unpacking it would take app hello to 70." in e["message"], e
    assert leftovers(d) == []
