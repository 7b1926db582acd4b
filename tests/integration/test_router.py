"""dyno-router against real backends on 127.0.0.1: routing, proxying,
headers, rejections, H-codes, health checks, logs, metrics, robustness."""
import json
import os
import re
import socket
import threading
import time

import pytest

from routerkit import Conn, app, closed_port, get, recv_all, reply, wait_for

LOG_OK = (r"router\[router\]: at=info method=GET path=\"/\" host=hello\.localhost "
          r"request_id=[0-9a-f-]{36} fwd=\"127\.0\.0\.1\" dyno=web\.1 connect=\d+ms "
          r"service=\d+ms status=200 bytes=\d+ protocol=http$")
TS = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00 "


@pytest.fixture
def one(make_router, make_backend):
    """A router with app hello on one echo backend."""
    b = make_backend()
    r = make_router()
    r.reload([app("hello", [("web.1", b.addr, False)], hosts=["www.example.com"])])
    return r, b


# ---- 1. listeners, routing, live routes ----

def test_routes_by_host_and_logs_one_line(one):
    r, b = one
    resp = get(r.port)
    assert resp.status == 200
    assert json.loads(resp.body)["path"] == "/"
    line = r.wait_line(LOG_OK)
    assert re.match(TS, line)


def test_custom_domain_and_case_and_port(one):
    r, b = one
    assert get(r.port, host="www.example.com").status == 200
    assert get(r.port, host="WWW.Example.COM:8080").status == 200
    assert get(r.port, host="hello.localhost.").status == 200


def test_unknown_host_404(one):
    r, b = one
    resp = get(r.port, host="nope.localhost")
    assert resp.status == 404
    assert resp.body == b"No such app\n"
    r.wait_line(r'at=error desc="No such app" method=GET path="/" host=nope\.localhost .* '
                r'dyno= connect=0ms service=0ms status=404 ')
    assert b.requests == []


def test_reload_live_keeps_connections(make_router, make_backend):
    b1, b2 = make_backend(), make_backend()
    r = make_router()
    r.reload([app("hello", [("web.1", b1.addr, False)])])
    c = Conn(r.port)
    c.request()
    assert c.response().status == 200
    r.reload([app("hello", [("web.1", b1.addr, False)]),
              app("other", [("web.1", b2.addr, False)], hosts=["other.example"])])
    # the connection opened before the reload still serves
    c.request()
    assert c.response().status == 200
    c.close()
    assert get(r.port, host="other.example").status == 200
    assert len(b2.requests) == 1
    # a broken routes.json keeps the table in use
    r.routes_path.write_text("{not json")
    assert wait_for(lambda: "routes not reloaded" in r.stderr_path.read_text())
    assert get(r.port, host="other.example").status == 200
    assert "dyno_router_routes_reload_errors_total 1" in r.metrics()


def test_draining_backend_finishes_its_request(make_router, make_backend):
    started = threading.Event()

    def slow(s, req):
        if req["path"] == "/slow":
            started.set()
            time.sleep(0.3)
        reply(s, 200, b"done\n")

    b1, b2 = make_backend(slow), make_backend()
    r = make_router()
    r.reload([app("hello", [("web.1", b1.addr, False)])])
    c = Conn(r.port)
    c.request(path="/slow")
    assert started.wait(3)
    r.reload([app("hello", [("web.1", b1.addr, True), ("web.2", b2.addr, False)])])
    resp = c.response()
    assert (resp.status, resp.body) == (200, b"done\n")
    c.close()
    for _ in range(10):
        assert get(r.port).status == 200
    assert len(b1.requests) == 1 and len(b2.requests) == 10
    r.wait_line(r'path="/slow" .* dyno=web\.1 .*status=200')


def test_backend_removed_on_reload(make_router, make_backend):
    b1, b2 = make_backend(), make_backend()
    r = make_router()
    r.reload([app("hello", [("web.1", b1.addr, False), ("web.2", b2.addr, False)])])
    for _ in range(6):
        assert get(r.port).status == 200
    r.reload([app("hello", [("web.2", b2.addr, False)])])
    n1 = len(b1.requests)
    for _ in range(6):
        assert get(r.port).status == 200
    assert len(b1.requests) == n1


def test_inherited_listener(make_router, make_backend):
    """dynod hands its listening socket over as fd 3 (LISTEN_FDS=1, as
    systemd socket activation): no --listen, no bind."""
    b = make_backend()
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(64)
    port = ls.getsockname()[1]
    fd = ls.fileno()
    env = dict(os.environ, LISTEN_FDS="1")
    r = make_router(listen=False, env=env, pass_fds=(3, fd),
                    preexec_fn=lambda: os.dup2(fd, 3))
    ls.close()
    assert r.port == port
    r.reload([app("hello", [("web.1", b.addr, False)])])
    assert get(port).status == 200
