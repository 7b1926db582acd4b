"""The state file's growth: config releases share their config vars by
content (schema_version 2 and on), dynod's memory stays bounded, a file of
schema_version 1 is migrated, and the API's objects keep their shape."""
import http.client
import json
import socket
import subprocess

from conftest import BUILD
from test_dynod import Dynod

ASAN = b"__asan_init" in (BUILD / "bin" / "dynod").read_bytes()
BIG = 1_000_000  # characters: the value of the incident (config_vars.max_size raised for it)


class UConn(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("dynod", timeout=60)
        self.unix_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(60)
        self.sock.connect(self.unix_path)


def api(sock, method, path, body=None):
    c = UConn(sock)
    try:
        data = json.dumps(body).encode() if body is not None else None
        hdr = {"Content-Type": "application/json"} if data is not None else {}
        c.request(method, path, body=data, headers=hdr)
        r = c.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        c.close()


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_config_releases_share_snapshots(tmp_path):
    d = Dynod(tmp_path, {"config_vars": {"max_size": "2M"}}).start()
    try:
        assert api(d.sock, "POST", "/apps", {"name": "big"})[0] == 201
        rss0 = rss_kib(d.proc.pid)
        st, _ = api(d.sock, "PATCH", "/apps/big/config-vars", {"BIG": "x" * BIG})
        assert st == 200
        # 39 more config releases, the big var unchanged: three distinct configs
        for i in range(39):
            st, cfg = api(d.sock, "PATCH", "/apps/big/config-vars",
                          {"SMALL": str(i % 2)} if i < 38 else {"SMALL": None})
            assert st == 200 and len(cfg["BIG"]) == BIG
        st, rels = api(d.sock, "GET", "/apps/big/releases")
        assert st == 200 and len(rels) == 40
        path = d.state / "apps" / "big" / "app.json"
        size = path.stat().st_size
        # one copy per distinct config ({BIG}, {BIG, SMALL=0}, {BIG, SMALL=1}),
        # not one per release (40 MB before)
        assert size < 3 * BIG + 100_000, size
        doc = json.loads(path.read_text())
        assert doc["schema_version"] == 3 and len(doc["configs"]) == 3
        # memory: the value is held about once, not 40 times (and not per
        # dump of a 40 MB file)
        grown = rss_kib(d.proc.pid) - rss0
        if not ASAN:  # its quarantine holds freed memory: 240 MB here
            assert grown < 24 * 1024, f"dynod grew {grown} KiB"
        # the API's objects keep their shape
        assert set(rels[0]) == {"version", "description", "status", "failure", "slug",
                                "created_at", "release_phase"}
        assert rels[0]["description"] == "Set BIG config vars" and rels[0]["slug"] is None
        assert rels[-1]["description"] == "Remove SMALL config vars"
        st, cfg = api(d.sock, "GET", "/apps/big/config-vars")
        assert st == 200 and cfg == {"BIG": "x" * BIG}
        st, one = api(d.sock, "GET", "/apps/big/releases/v2")
        assert st == 200 and one == rels[1]
    finally:
        assert d.stop() == 0, d.log.read_text()[-3000:]
    # restarted: the same objects
    d.start()
    try:
        st, rels2 = api(d.sock, "GET", "/apps/big/releases")
        assert rels2 == rels
        st, cfg = api(d.sock, "GET", "/apps/big/config-vars")
        assert cfg == {"BIG": "x" * BIG}
    finally:
        assert d.stop() == 0, d.log.read_text()[-3000:]


def test_migrates_schema_1(tmp_path):
    d = Dynod(tmp_path)
    app = d.state / "apps" / "old"
    app.mkdir(parents=True)
    rel = {"description": "Set A config vars", "status": "succeeded", "slug": None,
           "created_at": "2026-11-26T11:00:01Z", "process_types": None}
    v1 = {"schema_version": 1, "name": "old", "created_at": "2026-11-26T11:00:00Z",
          "uid": 200000, "formation": [],
          "releases": [dict(rel, version=1, config={"A": "a" * 5000}),
                       dict(rel, version=2, config={"A": "a" * 5000, "B": "b"},
                            description="Set B config vars"),
                       dict(rel, version=3, config={"A": "a" * 5000},
                            description="Remove B config vars")]}
    (app / "app.json").write_text(json.dumps(v1))
    d.start()
    try:
        doc = json.loads((app / "app.json").read_text())
        assert doc["schema_version"] == 3
        assert len(doc["configs"]) == 2
        assert [r["config_id"] for r in doc["releases"]][0] == doc["releases"][2]["config_id"]
        st, rels = api(d.sock, "GET", "/apps/old/releases")
        assert [r["description"] for r in rels] == [
            "Set A config vars", "Set B config vars", "Remove B config vars"]
        assert api(d.sock, "GET", "/apps/old/config-vars")[1] == {"A": "a" * 5000}
    finally:
        assert d.stop() == 0, d.log.read_text()[-3000:]
    # a file from a newer dynod is refused, named
    doc["schema_version"] = 4
    (app / "app.json").write_text(json.dumps(doc))
    r = subprocess.run([str(BUILD / "bin" / "dynod"), "--config", str(d.config)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert f"{app}/app.json: schema_version 4 is newer than this dynod reads" in r.stderr
    # and left as it was
    assert json.loads((app / "app.json").read_text())["schema_version"] == 4
