"""dyno-router against real backends on 127.0.0.1: routing, proxying,
headers, rejections, H-codes, health checks, logs, metrics, robustness."""
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

from routerkit import Conn, app, closed_port, get, recv_all, reply, slow_chunks_handler, wait_for

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


# ---- 2. proxying ----

def test_keepalive_pool_reuses_dyno_connection(one):
    r, b = one
    ports = set()
    for _ in range(3):
        resp = get(r.port)  # a new client connection each time
        ports.add(json.loads(resp.body)["peer_port"])
    assert len(ports) == 1
    assert len(b.requests) == 3
    assert "connection" not in b.requests[0]["h"]


def test_keepalive_off_per_app(make_router, make_backend):
    b = make_backend()
    r = make_router()
    r.reload([app("hello", [("web.1", b.addr, False)], keepalive=False)])
    ports = {json.loads(get(r.port).body)["peer_port"] for _ in range(3)}
    assert len(ports) == 3
    assert b.requests[0]["h"]["connection"] == "close"


def test_client_keepalive_and_pipelining_in_order(one):
    r, b = one
    c = Conn(r.port)
    c.send(b"".join(f"GET /p{i} HTTP/1.1\r\nHost: hello.localhost\r\n\r\n".encode()
                    for i in range(5)))
    paths = [json.loads(c.response().body)["path"] for _ in range(5)]
    assert paths == [f"/p{i}" for i in range(5)]
    c.close()


def test_request_bodies_length_and_chunked(one):
    r, b = one
    big = os.urandom(1 << 20)
    resp = get(r.port, method="POST", body=big)
    assert json.loads(resp.body)["body_len"] == len(big)
    c = Conn(r.port)
    c.request(method="POST", headers=[("Transfer-Encoding", "chunked")])
    for i in range(20):
        chunk = bytes([65 + i]) * (1000 * (i + 1))
        c.send(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
    c.send(b"0\r\n\r\n")
    resp = c.response()
    assert resp.status == 200
    assert json.loads(resp.body)["body_len"] == sum(1000 * (i + 1) for i in range(20))
    assert b.requests[-1]["body"][:1000] == b"A" * 1000
    c.close()


def chunked_handler(s, req):
    s.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    for i in range(10):
        s.sendall(b"5\r\nhello\r\n")
        time.sleep(0.005)
    s.sendall(b"0\r\nX-Trailer: 1\r\n\r\n")
    return True


def test_chunked_response_streams_and_http10_dechunked(make_router, make_backend):
    b = make_backend(chunked_handler)
    r = make_router()
    r.reload([app("hello", [("web.1", b.addr, False)])])
    c = Conn(r.port)
    c.request()
    resp = c.response()
    assert resp.header("transfer-encoding") == "chunked"
    assert resp.body == b"hello" * 10
    c.request()  # the client connection stays usable
    assert c.response().body == b"hello" * 10
    c.close()
    # HTTP/1.0 cannot take chunked: the data alone, then the close
    c = Conn(r.port)
    c.request(version="HTTP/1.0")
    resp = c.response()
    assert resp.status == 200
    assert resp.header("transfer-encoding") is None
    assert resp.header("connection") == "close"
    assert resp.body == b"hello" * 10
    c.close()


def test_large_response_streams_with_bounded_buffers(make_router, make_backend):
    payload = os.urandom(8 << 20)

    def big(s, req):
        reply(s, 200, payload)
        return True

    b = make_backend(big)
    r = make_router()
    r.reload([app("hello", [("web.1", b.addr, False)])])
    c = Conn(r.port)
    c.request()
    status, _, headers, _ = c.read_head()
    time.sleep(0.3)  # a slow reader: the router must stop reading the dyno
    got = c.buf
    while len(got) < len(payload):
        d = c.s.recv(1 << 20)
        assert d
        got += d
    assert got == payload
    c.close()


def test_long_bodies_and_short_ones_share_a_pooled_connection(make_router, make_backend):
    # a body past 16 KiB is read in larger pieces (a grown buffer, given back
    # when the dyno connection returns to the pool): bodies of every size
    # stay whole, in order, over one dyno connection
    sizes = {"/a": 200_000, "/b": 6, "/c": 65536, "/d": 16385, "/e": 0}
    bodies = {p: os.urandom(n) for p, n in sizes.items()}

    def handler(s, req):
        reply(s, 200, bodies[req["path"]])
        return True

    b = make_backend(handler)
    r = make_router()
    r.reload([app("hello", [("web.1", b.addr, False)])])
    c = Conn(r.port)
    for path in ["/a", "/b", "/c", "/a", "/d", "/e", "/c", "/b"]:
        c.request(path=path)
        resp = c.response()
        assert resp.status == 200 and resp.body == bodies[path], path
    c.close()
    assert len({q["peer"] for q in b.requests}) == 1


def test_http10_client(one):
    r, b = one
    c = Conn(r.port)
    c.request(version="HTTP/1.0", host=None, path="http://hello.localhost/x")
    resp = c.response()
    assert resp.status == 200
    assert resp.header("connection") == "close"
    assert c.closed()
    assert b.requests[0]["h"]["host"] == "hello.localhost"  # HTTP/1.1 needs a Host
    # a 1.0 client asking for keep-alive keeps its connection
    c = Conn(r.port)
    c.request(version="HTTP/1.0", headers=[("Connection", "keep-alive")])
    resp = c.response()
    assert resp.header("connection") == "keep-alive"
    c.request(version="HTTP/1.0", headers=[("Connection", "keep-alive")])
    assert c.response().status == 200
    c.close()
    assert json.loads(resp.body)["version"] == "HTTP/1.1"


def test_expect_100_continue_answered_by_router(one):
    r, b = one
    c = Conn(r.port)
    c.send(b"POST / HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: 5\r\n"
           b"Expect: 100-continue\r\n\r\n")
    interim = c.response()
    assert interim.status == 100
    assert b.requests == []
    c.send(b"hello")
    resp = c.response()
    assert resp.status == 200
    assert json.loads(resp.body)["body_len"] == 5
    assert "expect" not in b.requests[0]["h"]
    c.close()


def ws_handler(s, req):
    assert req["h"]["upgrade"] == "websocket"
    s.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
              b"Connection: Upgrade\r\n\r\n")
    while True:
        d = s.recv(65536)
        if not d:
            break
        s.sendall(d.upper())
    s.close()
    return False


def test_websocket_upgrade_tunnel(make_router, make_backend):
    b = make_backend(ws_handler)
    r = make_router()
    r.reload([app("hello", [("web.1", b.addr, False)])])
    c = Conn(r.port)
    c.request(headers=[("Connection", "Upgrade"), ("Upgrade", "websocket")])
    resp = c.response()
    assert resp.status == 101
    assert resp.header("upgrade") == "websocket"
    for word in (b"abc", b"hello tunnel" * 1000):
        c.send(word)
        got = b""
        while len(got) < len(word):
            got += c.s.recv(65536)
        assert got == word.upper()
    c.s.shutdown(socket.SHUT_WR)
    assert c.closed()
    r.wait_line(r"status=101 ")


# ---- 3. headers, rejections, limits ----

def test_added_headers(one):
    r, b = one
    resp = get(r.port, headers=[("X-Forwarded-For", "10.0.0.1"), ("Via", "1.0 other"),
                                ("X-Request-Id", "a" * 24), ("Connection", "X-Secret"),
                                ("X-Secret", "1"), ("Keep-Alive", "timeout=5")])
    h = dict(json.loads(resp.body)["headers"])
    assert h["x-forwarded-for"] == "10.0.0.1, 127.0.0.1"
    assert h["x-forwarded-proto"] == "http"
    assert h["x-forwarded-port"] == str(r.port)
    assert abs(int(h["x-request-start"]) - time.time() * 1000) < 5000
    assert h["x-request-id"] == "a" * 24
    assert h["via"] == "1.0 other, 1.1 dyno-router"
    assert "x-secret" not in h and "keep-alive" not in h
    r.wait_line(r'request_id=a{24} fwd="10\.0\.0\.1, 127\.0\.0\.1"')
    # a bad request id is replaced by a UUID
    resp = get(r.port, headers=[("X-Request-Id", "short")])
    rid = dict(json.loads(resp.body)["headers"])["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", rid)


BAD = [
    (b"GET / HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: 3\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: 3\r\n"
     b"Content-Length: 4\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: -1\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: hello.localhost\r\nTransfer-Encoding: foo, chunked\r\n\r\n",
     501),
    (b"GET / HTTP/1.1\r\nHost: hello.localhost\r\nX-A: 1\r\n  folded\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: hello.localhost\r\nX-A : 1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: hello.localhost\r\nno colon here\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: hello.localhost\r\nHost: hello.localhost\r\n\r\n", 400),
    (b"GET http://other.localhost/ HTTP/1.1\r\nHost: hello.localhost\r\n\r\n", 400),
    (b"CONNECT hello.localhost:443 HTTP/1.1\r\nHost: hello.localhost:443\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: hello.localhost\r\nX-A: a\x00b\r\n\r\n", 400),
    (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    (b"GET / HTTP/1.1\r\nHost: " + b"a" * 9000 + b"\r\n\r\n", 431),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: hello.localhost\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nHost: hello.localhost\r\n" + b"X-A: aaaaaaaaaa\r\n" * 1001 + b"\r\n",
     431),
    (b"GET / HTTP/1.1\r\nHost: hello.localhost\r\n" + (b"X-A: " + b"a" * 8000 + b"\r\n") * 9
     + b"\r\n", 431),
    (b"POST / HTTP/1.1\r\nHost: hello.localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"zz\r\n", 400),
]


@pytest.mark.parametrize("raw,status", BAD, ids=range(len(BAD)))
def test_rejections_before_forwarding(one, raw, status):
    r, b = one
    c = Conn(r.port)
    try:
        c.send(raw)
    except (BrokenPipeError, ConnectionResetError):
        pass
    resp = c.response()
    assert resp.status == status
    assert resp.header("connection") == "close"
    c.close()
    time.sleep(0.05)
    if status != 400 or b"zz" not in raw:
        assert b.requests == []
    r.wait_line(rf'status={status} ')


def test_http09_is_closed(one):
    r, b = one
    c = Conn(r.port)
    c.send(b"GET /\r\n")
    assert c.closed()
    assert c.buf == b""


def test_head_timeout_408(one):
    r, b = one
    c = Conn(r.port)
    t0 = time.monotonic()
    c.send(b"GET / HTTP/1.1\r\nHost: hello")
    resp = c.response()
    assert resp.status == 408
    assert 0.4 < time.monotonic() - t0 < 2
    assert b.requests == []
    r.wait_line(r'desc="Request head timeout" .*status=408 ')


# ---- 4. balancing, retries, H-codes ----

def test_power_of_two_choices_spreads(make_router, make_backend):
    bs = [make_backend() for _ in range(3)]
    r = make_router()
    r.reload([app("hello", [(f"web.{i + 1}", b.addr, False) for i, b in enumerate(bs)])])
    for _ in range(60):
        assert get(r.port).status == 200
    counts = [len(b.requests) for b in bs]
    assert sum(counts) == 60 and min(counts) > 0, counts


def test_connect_refused_skips_and_retries(make_router, make_backend):
    b = make_backend()
    dead = f"127.0.0.1:{closed_port()}"
    r = make_router(health={"interval": "10s"})
    r.reload([app("hello", [("web.1", dead, False), ("web.2", b.addr, False)])])
    for _ in range(10):
        resp = get(r.port)
        assert resp.status == 200
    assert len(b.requests) == 10
    # tried at most once: skipped for 5 s after the failure
    r.wait_line(r"event=health app=hello dyno=web\.1 .*state=down "
                r"reason=\"passive: connect: Connection refused\"")
    lines = [ln for ln in r.lines() if "event=health" in ln]
    assert len(lines) == 1


def test_h21_all_refused(make_router):
    r = make_router()
    r.reload([app("hello", [("web.1", f"127.0.0.1:{closed_port()}", False),
                            ("web.2", f"127.0.0.1:{closed_port()}", False)])])
    resp = get(r.port)
    assert resp.status == 503
    assert resp.body == b"Application error\n"
    r.wait_line(r'at=error code=H21 desc="Backend connection refused" method=GET path="/" '
                r'host=hello\.localhost .* dyno=web\.\d .*status=503 ')


def full_listener():
    """A listener whose accept queue is full: connects to it hang."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(0)
    fillers = []
    for _ in range(3):
        f = socket.socket()
        f.setblocking(False)
        try:
            f.connect(s.getsockname())
        except BlockingIOError:
            pass
        fillers.append(f)
    time.sleep(0.1)
    return s, fillers


def test_h19_connect_timeout(make_router):
    s, fillers = full_listener()
    r = make_router()
    try:
        r.reload([app("hello", [("web.1", "127.0.0.1:%d" % s.getsockname()[1], False)])])
        t0 = time.monotonic()
        resp = get(r.port)
        assert resp.status == 503
        assert 0.25 < time.monotonic() - t0 < 2
        r.wait_line(r'at=error code=H19 desc="Backend connection timeout" .*dyno=web\.1 '
                    r'.*status=503 ')
    finally:
        for f in fillers:
            f.close()
        s.close()


def test_h12_request_timeout(make_router, make_backend):
    b = make_backend(lambda s, req: time.sleep(1.5))
    r = make_router()
    r.reload([app("hello", [("web.1", b.addr, False)])])
    t0 = time.monotonic()
    resp = get(r.port)
    assert resp.status == 503
    assert 0.45 < time.monotonic() - t0 < 1.4
    r.wait_line(r'at=error code=H12 desc="Request timeout" method=GET .*dyno=web\.1 '
                r'.*status=503 ')


def test_h13_closed_without_response(make_router, make_backend):
    b = make_backend(lambda s, req: False)
    r = make_router()
    r.reload([app("hello", [("web.1", b.addr, False)])])
    assert get(r.port).status == 503
    r.wait_line(r'at=error code=H13 desc="Connection closed without response" .*status=503 ')


def reset_mid_response(s, req):
    s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000)
    time.sleep(0.05)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()
    return False


def test_h18_dyno_resets_mid_response(make_router, make_backend):
    b = make_backend(reset_mid_response)
    r = make_router()
    r.reload([app("hello", [("web.1", b.addr, False)])])
    c = Conn(r.port)
    c.request()
    status, _, _, _ = c.read_head()
    assert status == 200
    assert c.closed()
    assert len(c.buf) < 100000
    r.wait_line(r'at=error code=H18 desc="Server Request Interrupted" .*status=503 ')
    # the router is fine afterwards
    b.handler = lambda s, req: reply(s, 200, b"ok")
    assert get(r.port).status == 200


@pytest.mark.parametrize("state,code,desc", [
    ("crashed", "H10", "App crashed"),
    ("no-web", "H14", "No web processes running"),
    ("maintenance", "H80", "Maintenance mode"),
])
def test_app_states(make_router, make_backend, state, code, desc):
    b = make_backend()
    r = make_router()
    r.reload([app("hello", [("web.1", b.addr, False)], state=state)])
    resp = get(r.port)
    assert resp.status == 503
    r.wait_line(rf'at=error code={code} desc="{desc}" method=GET path="/" .*status=503 ')
    assert b.requests == []


def test_h14_no_backends(make_router, make_backend):
    r = make_router()
    b = make_backend()
    r.reload([app("hello", [])])
    assert get(r.port).status == 503
    r.reload([app("hello", [("web.1", b.addr, True)])])  # draining only
    assert get(r.port).status == 503
    assert wait_for(lambda: len([ln for ln in r.lines() if "code=H14" in ln]) == 2)


def test_h15_idle_dyno(make_router, make_backend):
    def stall(s, req):
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        time.sleep(2)
        return False

    b = make_backend(stall)
    r = make_router()
    r.reload([app("hello", [("web.1", b.addr, False)])])
    c = Conn(r.port)
    c.request()
    assert c.read_head()[0] == 200
    assert c.closed(timeout=3)
    r.wait_line(r'at=error code=H15 desc="Idle connection" .*status=503 ')


def test_h27_client_gives_up_mid_body(one):
    r, b = one
    c = Conn(r.port)
    c.send(b"POST / HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: 100\r\n\r\nabc")
    time.sleep(0.1)
    c.close()
    r.wait_line(r'at=error code=H27 desc="Client Request Interrupted" method=POST .*status=499 ')


def test_stale_pooled_connection_is_retried(make_router, make_backend):
    def once(s, req):
        reply(s, 200, b"ok")
        s.shutdown(socket.SHUT_RDWR)  # the dyno drops keep-alive connections
        return False

    b = make_backend(once)
    r = make_router()
    r.reload([app("hello", [("web.1", b.addr, False)])])
    for _ in range(5):
        assert get(r.port).status == 200
        time.sleep(0.02)


def test_dead_pooled_connection_is_retried_on_another_pooled_one(make_router, make_backend):
    """A dyno's app dies with a request in flight on a reused connection
    (test_faults.py kills one): the router retries it on the next pooled
    connection, which is writable already, and must send it there at once
    (it used to wait for another event: the client's timeout)."""
    died = []

    def handler(s, req):
        if req["path"] == "/slow":
            time.sleep(0.3)
        elif req["path"] == "/die" and not died:
            died.append(1)
            return False  # closed, no answer
        reply(s, 200, b"ok")
        return True

    b = make_backend(handler)
    r = make_router(timeouts={"first_byte": "20s"})
    r.reload([app("hello", [("web.1", b.addr, False)])])
    # two requests at once: two connections to the dyno, pooled after
    slow = [threading.Thread(target=lambda: get(r.port, "/slow")) for _ in range(2)]
    for t in slow:
        t.start()
    for t in slow:
        t.join()
    assert len({q["peer"] for q in b.requests}) == 2
    t0 = time.monotonic()
    res = get(r.port, "/die")  # the client waits 5 s at most
    assert res.status == 200 and time.monotonic() - t0 < 1, res.status
    assert died and len({q["peer"] for q in b.requests}) == 2  # no new connection


def _h11_or_head(c, timeout):
    """The status of the head c gets within timeout (None: none came)."""
    c.s.settimeout(timeout)
    try:
        return c.read_head()[0]
    except (socket.timeout, EOFError, ConnectionResetError):
        return None


def test_slow_app_costs_its_own_app_only(make_router, make_backend):
    """A backend that holds its connections (a chunk every 2 s) and 30
    clients on its app: 4 requests reach the dyno (max_inflight_per_dyno),
    4 wait (queue_per_dyno) and get H11 after router.timeouts.connect, the
    connections past max_connections_per_app (20) and the requests past the
    queue get H11 at once, the dyno sees 4 requests only; app B meanwhile
    answers every request at once."""
    slow = make_backend(handler=slow_chunks_handler(chunks=3, every=2.0))
    fast = make_backend()
    r = make_router(timeouts={"connect": "1s", "first_byte": "5s", "idle": "10s"},
                    limits={"max_inflight_per_dyno": 4, "queue_per_dyno": 4,
                            "max_connections_per_app": 20})
    r.reload([app("slowapp", [("web.1", slow.addr, False)]),
              app("fastapp", [("web.1", fast.addr, False)])])
    conns = []
    try:
        t0 = time.monotonic()
        for _ in range(30):
            c = Conn(r.port)
            c.request(host="slowapp.localhost")
            conns.append(c)
            time.sleep(0.01)  # in order: the first four reach the dyno
        # app B is served while A holds its dyno
        for i in range(10):
            t = time.monotonic()
            resp = get(r.port, path=f"/b{i}", host="fastapp.localhost")
            assert resp.status == 200
            assert time.monotonic() - t < 1.0
        statuses = [_h11_or_head(c, 3.0) for c in conns]
        assert time.monotonic() - t0 < 6.0
        assert statuses[:4] == [200] * 4, statuses
        assert statuses[4:] == [503] * 26, statuses
        assert len(slow.requests) == 4
        assert len(fast.requests) == 10
        r.wait_line(r'at=error code=H11 desc="Backlog too deep: too many connections for the app" '
                    r'method=GET path="/" host=slowapp\.localhost .* status=503 ')
        r.wait_line(r'code=H11 desc="Backlog too deep: every dyno busy, its queue full" ')
        r.wait_line(r'code=H11 desc="Backlog too deep: no dyno freed in time" ')
        # a log line may reach the file a little after its answer (the
        # lines are flushed after the loop's round): wait for it, bounded
        end = time.monotonic() + 5
        while (sum(1 for line in r.lines() if "code=H11" in line) < 26
               and time.monotonic() < end):
            time.sleep(0.05)
        assert sum(1 for line in r.lines() if "code=H11" in line) == 26
        assert 'dyno_router_errors_total{code="H11"} 26' in r.metrics()
    finally:
        for c in conns:
            c.close()
        slow.stop()


def test_fd_floor_refuses_the_app_over_its_share(make_router, make_backend):
    """With 200 fds, one app's held requests stop at its share once free
    fds fall to the floor (64): the other app is still served."""
    import resource

    def low_nofile():
        resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))
    slow = make_backend(handler=slow_chunks_handler(chunks=2, every=2.0))
    fast = make_backend()
    r = make_router(timeouts={"connect": "1s", "first_byte": "5s", "idle": "10s"},
                    preexec_fn=low_nofile)
    assert "open files limit 200, 64 kept free from any one app" in r.stderr_path.read_text()
    r.reload([app("slowapp", [("web.1", slow.addr, False)]),
              app("fastapp", [("web.1", fast.addr, False)])])
    keep = Conn(r.port)  # app B holds a connection: two apps share the fds
    keep.request(host="fastapp.localhost")
    assert keep.response().status == 200
    conns = []
    try:
        for _ in range(90):
            c = Conn(r.port)
            c.request(host="slowapp.localhost")
            conns.append(c)
            time.sleep(0.005)
        for i in range(5):
            resp = get(r.port, path=f"/b{i}", host="fastapp.localhost")
            assert resp.status == 200
        statuses = [_h11_or_head(c, 3.0) for c in conns]
        assert statuses.count(503) > 20, statuses
        assert 200 in statuses
        r.wait_line(r'code=H11 desc="Backlog too deep: file descriptors low, the app over its share" ')
    finally:
        keep.close()
        for c in conns:
            c.close()
        slow.stop()


# ---- 5. health checks ----

def test_active_tcp_check_fall_and_rise(make_router, make_backend):
    b = make_backend()
    port = b.port
    good = make_backend()
    r = make_router()
    r.reload([app("hello", [("web.1", b.addr, False), ("web.2", good.addr, False)])])
    b.stop()
    r.wait_line(r'at=warning event=health app=hello dyno=web\.1 addr=127\.0\.0\.1:\d+ '
                r'state=down reason="connect: Connection refused"')
    n = len(good.requests)
    for _ in range(5):
        assert get(r.port).status == 200
    assert len(good.requests) == n + 5
    assert re.search(r'dyno_router_backend_up\{app="hello",dyno="web\.1",addr="[^"]+"\} 0',
                     r.metrics())
    # back on the same port: rises after 2 good checks, logged once
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(16)
    try:
        r.wait_line(r'at=info event=health app=hello dyno=web\.1 .*state=up '
                    r'reason="tcp connect ok"')
        time.sleep(0.3)
        health = [ln for ln in r.lines() if "event=health" in ln]
        assert len(health) == 2, health
    finally:
        s.close()


def test_http_health_path(make_router, make_backend):
    state = {"code": 200}

    def h(s, req):
        if req["path"] == "/health":
            assert req["h"]["user-agent"] == "dyno-router-health"
            reply(s, state["code"], b"x")
            return False
        reply(s, 200, b"app")
        return True

    b = make_backend(h)
    r = make_router()
    r.reload([app("hello", [("web.1", b.addr, False)], health_path="/health")])
    assert wait_for(lambda: any(q["path"] == "/health" for q in b.requests))
    state["code"] = 500
    r.wait_line(r'event=health app=hello dyno=web\.1 .*state=down reason="GET /health: 500"')
    resp = get(r.port)
    assert resp.status == 503  # the only dyno is down
    state["code"] = 204
    r.wait_line(r'event=health app=hello dyno=web\.1 .*state=up reason="GET /health: 204"')
    assert get(r.port).status == 200


# ---- 6. logs and metrics ----

def test_log_intake_and_drops(make_router, make_backend, tmp_path):
    b = make_backend()
    path = str(tmp_path / "intake.sock")
    r = make_router(log_socket=path)
    r.reload([app("hello", [("web.1", b.addr, False)])])
    assert get(r.port).status == 200  # dynod away: dropped, counted
    r.wait_line(LOG_OK)
    assert wait_for(lambda: "dyno_router_log_lines_dropped_total 1" in r.metrics())
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(3)
    try:
        time.sleep(1.1)  # the router retries the intake once a second
        assert get(r.port, path="/x").status == 200
        d = s.recv(65536).decode()
        assert re.match(r"hello \d{4}-\d\d-\d\dT[\d:.]+\+00:00 router\[router\]: at=info "
                        r"method=GET path=\"/x\" host=hello\.localhost .*status=200 ", d), d
        assert not d.endswith("\n")
        assert "dyno_router_log_lines_sent_total 1" in r.metrics()
    finally:
        s.close()


def test_metrics(make_router, make_backend):
    b = make_backend()
    r = make_router()
    r.reload([app("hello", [("web.1", b.addr, False)])])
    for _ in range(3):
        get(r.port)
    get(r.port, host="nope")
    r.reload([app("hello", [("web.1", b.addr, False)], state="crashed")])
    get(r.port)
    m = r.metrics()
    assert "dyno_router_requests_total 5" in m
    assert 'dyno_router_responses_total{status="200"} 3' in m
    assert 'dyno_router_responses_total{status="404"} 1' in m
    assert 'dyno_router_errors_total{code="H10"} 1' in m
    assert 'dyno_router_request_duration_seconds_bucket{le="+Inf"} 5' in m
    assert "dyno_router_request_duration_seconds_count 5" in m
    assert re.search(r'dyno_router_backend_up\{app="hello",dyno="web\.1",addr="127\.0\.0\.1:\d+"\} 1', m)
    assert re.search(r'dyno_router_backend_requests_total\{app="hello",dyno="web\.1",.*\} 3', m)
    assert re.search(r'dyno_router_backend_idle_connections\{app="hello",dyno="web\.1",.*\} 1', m)
    s = socket.create_connection(("127.0.0.1", r.admin_port))
    s.sendall(b"GET /nope HTTP/1.1\r\nHost: a\r\n\r\n")
    assert recv_all(s).startswith(b"HTTP/1.1 404 ")
    s.close()


# ---- 7. robustness ----

def test_slowloris_gets_408(one):
    r, b = one
    conns = [Conn(r.port) for _ in range(20)]
    t0 = time.monotonic()
    for i in range(4):
        for c in conns:
            c.send(b"GET / HTTP/1.1\r\nX-Slow: aaaa"[i * 8:(i + 1) * 8] or b"a")
        time.sleep(0.1)
    for c in conns:
        assert c.response().status == 408
        c.close()
    assert time.monotonic() - t0 < 3
    assert get(r.port).status == 200


def test_half_closed_client_gets_its_response(make_router, make_backend):
    def slow(s, req):
        time.sleep(0.1)
        reply(s, 200, b"late\n")
        return True

    b = make_backend(slow)
    r = make_router()
    r.reload([app("hello", [("web.1", b.addr, False)])])
    c = Conn(r.port)
    c.request()
    c.s.shutdown(socket.SHUT_WR)
    resp = c.response()
    assert (resp.status, resp.body) == (200, b"late\n")
    assert c.closed()


def test_oversize_response_head_is_502(make_router, make_backend):
    def huge(s, req):
        s.sendall(b"HTTP/1.1 200 OK\r\n" + b"X-A: aaaaaaaa\r\n" * 6000 + b"\r\n")
        return False

    b = make_backend(huge)
    r = make_router()
    r.reload([app("hello", [("web.1", b.addr, False)])])
    assert get(r.port).status == 502
    r.wait_line(r'code=H17 desc="Poorly formatted HTTP response" .*status=502 ')


def test_bad_response_is_502(make_router, make_backend):
    b = make_backend(lambda s, req: s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
                                              b"Transfer-Encoding: chunked\r\n\r\n"))
    r = make_router()
    r.reload([app("hello", [("web.1", b.addr, False)])])
    assert get(r.port).status == 502


def test_ten_thousand_idle_connections(make_router, make_backend):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 10300:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < 10300")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    b = make_backend()
    r = make_router(timeouts={"idle": "30s"})
    r.reload([app("hello", [("web.1", b.addr, False)])])
    socks = []
    try:
        for _ in range(10000):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", r.port))
            except BlockingIOError:
                pass
            socks.append(s)
        assert wait_for(lambda: "dyno_router_client_connections 10000" in r.metrics(),
                        timeout=20)
        t0 = time.monotonic()
        for _ in range(20):
            assert get(r.port).status == 200
        assert time.monotonic() - t0 < 5
    finally:
        for s in socks:
            s.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert wait_for(lambda: "dyno_router_client_connections 0" in r.metrics(), timeout=10)


def test_sigterm_finishes_requests_in_flight(make_router, make_backend):
    started = threading.Event()

    def slow(s, req):
        started.set()
        time.sleep(0.3)
        reply(s, 200, b"finished\n")
        return True

    b = make_backend(slow)
    r = make_router()
    r.reload([app("hello", [("web.1", b.addr, False)])])
    idle = Conn(r.port)
    c = Conn(r.port)
    c.request()
    assert started.wait(3)
    r.proc.terminate()
    resp = c.response()
    assert (resp.status, resp.body) == (200, b"finished\n")
    assert resp.header("connection") == "close"
    assert idle.closed()
    assert r.proc.wait(timeout=5) == 0


def test_idle_keepalive_client_closed_quietly_after_idle(one):
    r, b = one
    c = Conn(r.port)
    c.request()
    assert c.response().status == 200
    t0 = time.monotonic()
    assert c.closed(timeout=3)
    assert 0.6 < time.monotonic() - t0 < 2  # idle: 700ms, not request_head
    assert c.buf == b""


def test_h28_client_idle_during_body(one):
    r, b = one
    c = Conn(r.port)
    c.send(b"POST / HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: 10\r\n\r\nabc")
    assert c.closed(timeout=3)
    r.wait_line(r'at=error code=H28 desc="Client Connection Idle" method=POST .*status=499 ')


def test_head_and_bodyless_responses(make_router, make_backend):
    def h(s, req):
        if req["path"] == "/204":
            s.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
        elif req["path"] == "/304":
            s.sendall(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n")
        else:
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
                      + (b"" if req["method"] == "HEAD" else b"hello"))
        return True

    b = make_backend(h)
    r = make_router()
    r.reload([app("hello", [("web.1", b.addr, False)])])
    c = Conn(r.port)
    c.request(method="HEAD")
    resp = c.response("HEAD")
    assert (resp.status, resp.header("content-length")) == (200, "5")
    for path, status in (("/204", 204), ("/304", 304), ("/", 200)):
        c.request(path=path)
        resp = c.response()
        assert resp.status == status
    assert resp.body == b"hello"
    c.close()


def test_response_until_close(make_router, make_backend):
    def h(s, req):
        s.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end")
        return False

    b = make_backend(h)
    r = make_router()
    r.reload([app("hello", [("web.1", b.addr, False)])])
    c = Conn(r.port)
    c.request()
    resp = c.response()
    assert (resp.status, resp.body) == (200, b"until the end")
    assert resp.header("connection") == "close"
    r.wait_line(r'at=info method=GET .*status=200 bytes=\d+ ')


def test_garbage_both_ways_never_breaks_the_router(make_router, make_backend):
    """Mutated requests from clients and mutated responses from the dyno,
    from a fixed seed; the router answers or closes, and stays up (the
    sanitizer build turns any memory error into a failure at exit)."""
    import random
    rnd = random.Random(1234)
    good_req = (b"POST /p?q=1 HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: 5\r\n"
                b"X-Request-Id: abcdefghijabcdefghij\r\n\r\nhello")
    good_chunked = (b"POST / HTTP/1.1\r\nHost: hello.localhost\r\nTransfer-Encoding: chunked\r\n"
                    b"\r\n5\r\nhello\r\n0\r\n\r\n")
    good_resp = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"5\r\nhello\r\n0\r\n\r\n")

    def mutate(data):
        data = bytearray(data)
        for _ in range(rnd.randint(1, 4)):
            op = rnd.randint(0, 3)
            i = rnd.randrange(len(data))
            if op == 0:
                data[i] = rnd.randrange(256)
            elif op == 1:
                del data[i:i + rnd.randint(1, 8)]
            elif op == 2:
                data[i:i] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 8)))
            else:
                data[i:i] = data[rnd.randrange(len(data)):][:rnd.randint(1, 40)]
            if not data:
                data = bytearray(b"x")
        return bytes(data)

    responses = [mutate(good_resp) for _ in range(150)]

    def h(s, req):
        s.sendall(responses[len(b.requests) % len(responses)])
        return False

    b = make_backend(h)
    r = make_router(timeouts={"first_byte": "200ms", "idle": "200ms", "request_head": "200ms"})
    r.reload([app("hello", [("web.1", b.addr, False)])])
    t0 = time.monotonic()
    for i in range(150):
        c = Conn(r.port, timeout=2)
        try:
            c.send(mutate(good_req if i % 2 else good_chunked))
            c.s.shutdown(socket.SHUT_WR)
            recv_all(c.s, timeout=2)
        except OSError:
            pass
        finally:
            c.close()
    assert time.monotonic() - t0 < 60
    b.handler = lambda s, req: reply(s, 200, b"fine")
    assert get(r.port).status == 200


def test_idle_client_gives_buffers_back_and_is_served_again(make_router, make_backend):
    b = make_backend()
    r = make_router(timeouts={"request_head": "200ms", "idle": "3s"})
    r.reload([app("hello", [("web.1", b.addr, False)])])
    c = Conn(r.port)
    for _ in range(3):
        c.request(path="/again")
        resp = c.response()
        assert resp.status == 200
        time.sleep(0.4)  # past request_head: the buffers were freed
    c.close()


def test_sighup_reload_and_routes_flag(make_router, make_backend, tmp_path):
    b = make_backend()
    routes = tmp_path / "elsewhere.json"
    routes.write_text(json.dumps({"version": 7, "apps": [app("hello", [("web.1", b.addr, False)])]}))
    r = make_router(extra_args=["--routes", str(routes)])
    assert get(r.port).status == 200
    r.proc.send_signal(signal.SIGHUP)
    assert wait_for(lambda: r.stderr_path.read_text().count("routes version 7 loaded") == 2)
    assert "dyno_router_routes_version 7" in r.metrics()


def test_bad_config_and_usage(router_bin, tmp_path):
    import subprocess
    cfg = tmp_path / "bad.json"
    cfg.write_text('{"router": {"timeouts": {"connect": "5x"}}}')
    p = subprocess.run([str(router_bin), "--config", str(cfg)], capture_output=True, text=True,
                       timeout=10)
    assert p.returncode == 1
    assert "dyno-router: error: " in p.stderr and "router.timeouts.connect" in p.stderr
    p = subprocess.run([str(router_bin), "--nope"], capture_output=True, text=True, timeout=10)
    assert p.returncode == 2
    assert "usage: dyno-router" in p.stderr


# ---- under dynod: a state dir made later, a stdout nobody reads ----

def start_raw(router_bin, tmp_path, state, stdout):
    """A router on 127.0.0.1:0 for state dir state; returns (proc, port,
    admin port, stderr path)."""
    cfg = tmp_path / "raw.json"
    cfg.write_text(json.dumps({"state_dir": str(state), "domain": "localhost"}))
    err = tmp_path / "raw.err"
    p = subprocess.Popen([str(router_bin), "--config", str(cfg), "--admin", "127.0.0.1:0",
                          "--listen", "127.0.0.1:0", "--log-socket", "none"],
                         stdout=stdout, stderr=open(err, "wb"), start_new_session=True)
    ports = wait_for(lambda: re.findall(r"listening on port (\d+)", err.read_text())[:2]
                     if err.read_text().count("listening on port") >= 2 or p.poll() is not None
                     else None, timeout=5)
    assert p.poll() is None and ports, err.read_text()
    return p, int(ports[0]), int(ports[1]), err


def stop_raw(p):
    p.send_signal(signal.SIGTERM)
    try:
        assert p.wait(timeout=15) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def write_routes(state, apps):
    tmp = state / "routes.json.tmp"
    tmp.write_text(json.dumps({"version": 1, "apps": apps}))
    os.rename(tmp, state / "routes.json")


def test_missing_state_dir_is_waited_for(router_bin, make_backend, tmp_path):
    """Started before dynod made its state dir, the router waits for it
    (logged once) instead of exiting, and serves the routes written there."""
    b = make_backend()
    state = tmp_path / "later" / "state"
    p, port, _, err = start_raw(router_bin, tmp_path, state, subprocess.DEVNULL)
    try:
        time.sleep(0.7)  # a few retries
        assert p.poll() is None
        assert err.read_text().count("is missing: waiting for it") == 1, err.read_text()
        state.mkdir(parents=True)
        write_routes(state, [app("hello", [("web.1", b.addr, False)])])
        assert wait_for(lambda: get(port).status == 200, timeout=5), err.read_text()
    finally:
        stop_raw(p)


def test_stdout_nobody_reads_never_blocks(router_bin, make_backend, tmp_path):
    """A pipe nobody reads on stdout (64 KiB fill in ~250 lines): requests
    go on being answered, the lines that would block are counted."""
    b = make_backend()
    write_routes(tmp_path, [app("hello", [("web.1", b.addr, False)])])
    r, w = os.pipe()
    try:
        p, port, admin, err = start_raw(router_bin, tmp_path, tmp_path, w)
        os.close(w)
        try:
            assert wait_for(lambda: get(port).status == 200, timeout=5)
            for _ in range(600):
                assert get(port).status == 200
            s = socket.create_connection(("127.0.0.1", admin), timeout=3)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: admin\r\n\r\n")
            m = recv_all(s).decode()
            s.close()
            dropped = int(re.search(r"dyno_router_stdout_lines_dropped_total (\d+)", m).group(1))
            assert dropped > 0
        finally:
            stop_raw(p)
    finally:
        os.close(r)
