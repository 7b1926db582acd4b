"""Platform API requests whose answer waits, on a slug job off the loop or
on the app's state file becoming durable (docs/api.md, "Protocol"): in
order with what is pipelined behind them, when their client goes, when
their app is destroyed, and when dynod stops meanwhile. Run under ASan
(DYNO_BUILD=build-asan) these catch use-after-frees, not only wrong
answers."""
import json
import os
import shutil
import signal
import socket
import time

import pytest

import slugkit as sk
from test_disk import call, trees
from test_dynod import Dynod

BIG = 1_000_000  # characters: a config var under the 1 MiB body limit


def request(method, path, body=None, close=False):
    data = b"" if body is None else json.dumps(body).encode()
    head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\n"
    if close:
        head += "Connection: close\r\n"
    return head.encode() + b"\r\n" + data


def responses(sock_path, data, timeout=60, heads=()):
    """Sends data (pipelined requests) on one connection and reads until
    dynod closes it. Returns [(status, json body), ...] in order; the
    answers at the indexes in heads are to HEAD requests (no body)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(sock_path)
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return parse(out, heads)


def parse(out, heads=()):
    res = []
    while out:
        head, _, rest = out.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        n = 0
        for ln in lines[1:]:
            k, _, v = ln.partition(b":")
            if k.strip().lower() == b"content-length":
                n = int(v)
        if len(res) in heads:
            n = 0
        res.append((status, json.loads(rest[:n]) if n else None))
        out = rest[n:]
    return res


def clean_log(d):
    log = d.log.read_text()
    for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:", "ThreadSanitizer"):
        assert bad not in log, log
    return log


@pytest.fixture
def dynod(tmp_path):
    d = Dynod(tmp_path).start()
    yield d
    rc = d.stop()
    assert rc == 0, d.log.read_text()
    clean_log(d)


def upload(d, path):
    status, j = call(d, "POST", "/apps/hello/slugs", path.read_bytes())
    assert status == 201, j
    return j["id"]


def drop_tree(d, sid, app="hello"):
    """Removes the tree the upload of sid made for app (as the clean-up
    does for an old release's), so that a deploy of it unpacks it."""
    shutil.rmtree(d.state / "apps" / app / "slugs" / sid)


def test_delete_pipelined_behind_a_change_waiting_for_the_disk(dynod):
    """The DELETE is read once the PATCH is answered, when its write has
    landed; taking it up inside the state writer's report freed the
    writer's entry under it."""
    for round_ in range(3):
        assert call(dynod, "POST", "/apps", {"name": "hello"})[0] == 201
        res = responses(dynod.sock,
                        request("PATCH", "/apps/hello/config-vars", {"A": str(round_)}) +
                        request("PATCH", "/apps/hello/config-vars", {"B": "2"}) +
                        request("DELETE", "/apps/hello") +
                        request("GET", "/apps", close=True))
        assert [s for s, _ in res] == [200, 200, 200, 200], res
        assert res[1][1] == {"A": str(round_), "B": "2"}
        assert res[2][1]["name"] == "hello"
        assert res[3][1] == []
    assert call(dynod, "GET", "/apps") == (200, [])


def test_get_pipelined_behind_a_deploy(dynod, tmp_path):
    """A deploy waits for its unpack, then for its write; the GET behind it
    is answered after it, and sees the release."""
    assert call(dynod, "POST", "/apps", {"name": "hello"})[0] == 201
    sid = upload(dynod, sk.build(tmp_path / "s.tgz", [sk.PROCFILE]))
    res = responses(dynod.sock,
                    request("POST", "/apps/hello/releases", {"slug": sid}) +
                    request("HEAD", "/apps/hello/releases") +
                    request("PATCH", "/apps/hello/formation/web", {"quantity": 2}) +
                    request("GET", "/apps/hello/releases", close=True), heads=(1,))
    assert [s for s, _ in res] == [201, 200, 200, 200], res
    assert res[0][1]["version"] == 1
    assert res[1][1] is None  # HEAD: no body
    assert res[2][1]["quantity"] == 2
    assert [r["version"] for r in res[3][1]] == [1]


def test_client_gone_mid_unpack(dynod, tmp_path):
    """The deploy is made all the same; its connection goes quietly."""
    assert call(dynod, "POST", "/apps", {"name": "hello"})[0] == 201
    sid = upload(dynod, sk.zeros_bomb(tmp_path / "z.tgz", "./app/zeros", 256 << 20))
    drop_tree(dynod, sid)
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(dynod.sock)
        s.sendall(request("POST", "/apps/hello/releases", {"slug": sid}) +
                  request("GET", "/apps"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, rels = call(dynod, "GET", "/apps/hello/releases")
        if rels:
            break
        time.sleep(0.05)
    assert [r["version"] for r in rels] == [1]
    assert trees(dynod) == [sid]


def test_failed_write_answers_500_without_host_path(dynod):
    """The change is kept (and retried); the answer names the app and the
    errno text, not the state directory."""
    assert call(dynod, "POST", "/apps", {"name": "hello"})[0] == 201
    assert call(dynod, "PATCH", "/apps/hello/config-vars", {"A": "1"})[0] == 200
    # the writer holds the app's directory open: removed, no write can land
    shutil.rmtree(dynod.state / "apps" / "hello")
    status, j = call(dynod, "PATCH", "/apps/hello/config-vars", {"B": "2"})
    assert status == 500, j
    assert j["id"] == "internal_error"
    assert str(dynod.state) not in j["message"], j
    assert "app hello" in j["message"] and "No such file or directory" in j["message"], j
    assert call(dynod, "GET", "/apps/hello/config-vars") == (200, {"A": "1", "B": "2"})
    assert "retrying in 1 s" in dynod.log.read_text()


def wait_unpacking(d, app="hello", timeout=20):
    """Until the unpack's temporary tree is there."""
    slugs = d.state / "apps" / app / "slugs"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if slugs.exists() and any(".unpack-" in p.name for p in slugs.iterdir()):
            return
        time.sleep(0.01)
    raise AssertionError("the unpack did not start")


@pytest.mark.parametrize("when", ["queued", "unpacking"])
def test_app_destroyed_mid_unpack(dynod, tmp_path, when):
    """404 "destroyed meanwhile" whatever the unpack met on the way, and
    nothing of the app is left on disk once it is done: not its grave, not
    a slugs directory the unpack made again after the destroy."""
    import threading
    assert call(dynod, "POST", "/apps", {"name": "hello"})[0] == 201
    bomb = sk.zeros_bomb(tmp_path / "z.tgz", "./app/zeros", 1 << 30)
    sid = upload(dynod, bomb)
    drop_tree(dynod, sid)
    blockers = []
    if when == "queued":
        # the pool's three threads unpack for other apps: hello's job is
        # started (its copies taken) but waits for a thread, and runs
        # after the destroy
        for n in range(3):
            assert call(dynod, "POST", "/apps", {"name": f"other{n}"})[0] == 201
            assert call(dynod, "POST", f"/apps/other{n}/slugs", bomb.read_bytes())[0] == 201
            drop_tree(dynod, sid, f"other{n}")
            t = threading.Thread(target=call, args=(dynod, "POST", f"/apps/other{n}/releases",
                                                    {"slug": sid}))
            t.start()
            blockers.append(t)
        time.sleep(0.05)
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(120)
        s.connect(dynod.sock)
        s.sendall(request("POST", "/apps/hello/releases", {"slug": sid}, close=True))
        if when == "unpacking":
            wait_unpacking(dynod)
        else:
            time.sleep(0.1)
        assert call(dynod, "DELETE", "/apps/hello")[0] == 200
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    for t in blockers:
        t.join()
    [(status, j)] = parse(out)
    assert status == 404, j
    assert j["message"] == "app hello was destroyed meanwhile", j
    apps = dynod.state / "apps"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(p.startswith("hello") for p in os.listdir(apps)):
        time.sleep(0.05)
    assert not [p for p in os.listdir(apps) if p.startswith("hello")], os.listdir(apps)
    # a new app of the name starts empty
    assert call(dynod, "POST", "/apps", {"name": "hello"})[0] == 201
    assert not (apps / "hello" / "slugs").exists() or trees(dynod) == []
    clean_log(dynod)


def test_sigterm_with_unpacks_and_writes_pending(tmp_path):
    """dynod stops cleanly: the running unpack is interrupted and answered,
    what is pipelined behind it is not started, and the changes waiting
    for the disk are written before it exits."""
    d = Dynod(tmp_path, {"config_vars": {"max_size": "2M"}}).start()
    try:
        assert call(d, "POST", "/apps", {"name": "hello"})[0] == 201
        assert call(d, "POST", "/apps", {"name": "other"})[0] == 201
        sid = upload(d, sk.zeros_bomb(tmp_path / "z.tgz", "./app/zeros", 1 << 30))
        drop_tree(d, sid)
        dep = socket.socket(socket.AF_UNIX)
        dep.settimeout(60)
        dep.connect(d.sock)
        dep.sendall(request("POST", "/apps/hello/releases", {"slug": sid}) +
                    request("POST", "/apps/hello/releases", {"slug": sid}) +
                    request("GET", "/apps", close=True))
        wait_unpacking(d)
        # a change of 1 MB whose write is in flight or queued at SIGTERM
        big = socket.socket(socket.AF_UNIX)
        big.connect(d.sock)
        big.sendall(request("PATCH", "/apps/other/config-vars", {"BIG": "x" * BIG}))
        time.sleep(0.05)
        d.proc.send_signal(signal.SIGTERM)
        rc = d.proc.wait(timeout=60)
        d.proc = None
        d.logf.close()
        assert rc == 0, d.log.read_text()
        out = b""
        while chunk := dep.recv(65536):
            out += chunk
        dep.close()
        big.close()
        res = parse(out)
        # the first deploy was interrupted and says so; nothing after it ran
        assert len(res) == 1, res
        assert res[0][0] == 500, res
        assert res[0][1]["message"] == (f"unpacking slug {sid[:7]} for app hello was "
                                        "interrupted: dynod is stopping"), res
        clean_log(d)
        doc = json.loads((d.state / "apps" / "other" / "app.json").read_text())
        cfgs = list(doc["configs"].values())
        assert any(c.get("BIG") == "x" * BIG for c in cfgs)
        doc = json.loads((d.state / "apps" / "hello" / "app.json").read_text())
        assert doc["releases"] == []
    finally:
        if d.proc:
            d.stop()
