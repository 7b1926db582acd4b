"""Helpers for the dyno-router tests: a running router, backends on
127.0.0.1 (port 0), raw HTTP/1.1 clients, log line polling."""
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path


def wait_for(pred, timeout=3.0, step=0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


class Router:
    """A dyno-router on 127.0.0.1:0 with short timeouts, its config and
    routes.json in a temporary state directory."""

    def __init__(self, exe, tmp: Path, timeouts=None, health=None, extra_args=(), env=None,
                 pass_fds=(), listen=True, log_socket=None, preexec_fn=None, limits=None):
        self.exe = exe
        self.dir = tmp
        self.routes_path = tmp / "routes.json"
        t = {"connect": "300ms", "first_byte": "500ms", "idle": "700ms", "request_head": "500ms"}
        t.update(timeouts or {})
        h = {"interval": "100ms", "rise": 2, "fall": 2}
        h.update(health or {})
        cfg = {"state_dir": str(tmp), "domain": "localhost",
               "router": {"timeouts": t, "health": h}}
        # router.max_inflight_per_dyno, queue_per_dyno, max_connections_per_app
        cfg["router"].update(limits or {})
        (tmp / "dynod.json").write_text(json.dumps(cfg))
        if not self.routes_path.exists():
            self.write_routes([])
        self.stdout_path = tmp / "router.out"
        self.stderr_path = tmp / "router.err"
        args = [str(exe), "--config", str(tmp / "dynod.json"), "--admin", "127.0.0.1:0"]
        if listen:
            args += ["--listen", "127.0.0.1:0"]
        if log_socket is not None:
            args += ["--log-socket", log_socket]
        args += list(extra_args)
        self.proc = subprocess.Popen(args, stdout=open(self.stdout_path, "wb"),
                                     stderr=open(self.stderr_path, "wb"), env=env,
                                     pass_fds=pass_fds, start_new_session=True,
                                     preexec_fn=preexec_fn)
        ports = wait_for(self._ports, timeout=5)
        if not ports:
            self.stop()
            raise RuntimeError("router did not start: " + self.stderr_path.read_text())
        self.port, self.admin_port = ports

    def _ports(self):
        err = self.stderr_path.read_text()
        m = re.search(r"listening on port (\d+)", err)
        a = re.search(r"admin listening on port (\d+)", err)
        if m and a:
            return int(m.group(1)), int(a.group(1))
        if self.proc.poll() is not None:
            raise RuntimeError("router exited: " + err)
        return None

    def write_routes(self, apps, version=None):
        """Replaces routes.json atomically (as dynod does)."""
        self.version = getattr(self, "version", 0) + 1 if version is None else version
        tmp = self.routes_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version": self.version, "apps": apps}))
        os.rename(tmp, self.routes_path)

    def reload(self, apps):
        """Writes routes and waits until the router has loaded them."""
        self.write_routes(apps)
        v = self.version
        assert wait_for(lambda: f"routes version {v} loaded" in self.stderr_path.read_text()), \
            self.stderr_path.read_text()

    def lines(self):
        return self.stdout_path.read_text(errors="replace").splitlines()

    def wait_line(self, pattern, timeout=3.0):
        """The first stdout line matching the regex pattern."""
        rx = re.compile(pattern)

        def find():
            for line in self.lines():
                if rx.search(line):
                    return line
            return None
        line = wait_for(find, timeout=timeout)
        assert line, f"no log line matches {pattern!r}:\n" + "\n".join(self.lines()[-20:])
        return line

    def metrics(self):
        s = socket.create_connection(("127.0.0.1", self.admin_port), timeout=3)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: admin\r\n\r\n")
        data = recv_all(s)
        s.close()
        return data.decode()

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def app(name, backends, hosts=(), state="up", keepalive=True, health_path=None):
    return {"name": name, "hosts": list(hosts), "state": state, "keepalive": keepalive,
            "health_path": health_path,
            "backends": [{"dyno": d, "addr": a, "draining": dr} for d, a, dr in backends]}


def recv_all(s, timeout=5.0):
    s.settimeout(timeout)
    out = b""
    while True:
        try:
            d = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not d:
            break
        out += d
    return out


class Response:
    def __init__(self, status, reason, headers, body, raw_head):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (lower name, value)
        self.body = body
        self.raw_head = raw_head

    def header(self, name):
        for n, v in self.headers:
            if n == name.lower():
                return v
        return None

    def all(self, name):
        return [v for n, v in self.headers if n == name.lower()]


class Conn:
    """A raw HTTP/1.1 client connection that reads responses one by one."""

    def __init__(self, port, timeout=5.0):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def request(self, method="GET", path="/", host="hello.localhost", headers=(), body=b"",
                version="HTTP/1.1"):
        h = f"{method} {path} {version}\r\n"
        if host is not None:
            h += f"Host: {host}\r\n"
        for k, v in headers:
            h += f"{k}: {v}\r\n"
        if body and not any(k.lower() in ("content-length", "transfer-encoding")
                            for k, _ in headers):
            h += f"Content-Length: {len(body)}\r\n"
        self.send(h.encode() + b"\r\n" + body)

    def _fill(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError("connection closed")
        self.buf += d

    def read_head(self):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        ver, status, *reason = lines[0].split(" ", 2)
        headers = []
        for line in lines[1:]:
            n, v = line.split(":", 1)
            headers.append((n.strip().lower(), v.strip()))
        return int(status), (reason[0] if reason else ""), headers, head

    def response(self, method="GET"):
        """Reads one response (skipping nothing: 1xx come back as such)."""
        status, reason, headers, head = self.read_head()
        r = Response(status, reason, headers, b"", head)
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return r
        te = r.header("transfer-encoding")
        cl = r.header("content-length")
        if te and "chunked" in te.lower():
            body = b""
            while True:
                while b"\r\n" not in self.buf:
                    self._fill()
                line, self.buf = self.buf.split(b"\r\n", 1)
                size = int(line.split(b";")[0], 16)
                while len(self.buf) < size + 2:
                    self._fill()
                if size == 0:
                    # trailers, then the empty line
                    while not self.buf.startswith(b"\r\n"):
                        while b"\r\n" not in self.buf:
                            self._fill()
                        if self.buf.startswith(b"\r\n"):
                            break
                        t, self.buf = self.buf.split(b"\r\n", 1)
                        n, v = t.decode("latin-1").split(":", 1)
                        r.headers.append((n.strip().lower(), v.strip()))
                    self.buf = self.buf[2:]
                    break
                body += self.buf[:size]
                self.buf = self.buf[size + 2:]
            r.body = body
        elif cl is not None:
            n = int(cl)
            while len(self.buf) < n:
                self._fill()
            r.body, self.buf = self.buf[:n], self.buf[n:]
        else:
            while True:
                try:
                    self._fill()
                except (EOFError, ConnectionResetError):
                    break
            r.body, self.buf = self.buf, b""
        return r

    def closed(self, timeout=3.0):
        """True when the peer closes (EOF or reset) within timeout."""
        self.s.settimeout(timeout)
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    return True
                self.buf += d
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.s.close()


def get(port, path="/", host="hello.localhost", **kw):
    c = Conn(port)
    try:
        c.request(path=path, host=host, **kw)
        return c.response(kw.get("method", "GET"))
    finally:
        c.close()


class Backend:
    """A threaded HTTP/1.1 backend on 127.0.0.1:0. handler(conn, req)
    answers one request; req is a dict (method, path, version, headers,
    body, peer). The default handler answers 200 with a JSON echo of the
    request. Every request is recorded in .requests."""

    def __init__(self, handler=None, name="web"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"
        self.handler = handler or echo_handler
        self.requests = []
        self.conns = []
        self.stopped = False
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopped:
            try:
                s, peer = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(s)
            threading.Thread(target=self._serve, args=(s, peer), daemon=True).start()

    def _serve(self, s, peer):
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = s.recv(65536)
                    if not d:
                        return
                    buf += d
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, path, version = lines[0].split(" ")
                headers = []
                for line in lines[1:]:
                    n, v = line.split(":", 1)
                    headers.append((n.strip().lower(), v.strip()))
                hd = dict(headers)
                body = b""
                if "content-length" in hd:
                    n = int(hd["content-length"])
                    while len(buf) < n:
                        d = s.recv(65536)
                        if not d:
                            return
                        buf += d
                    body, buf = buf[:n], buf[n:]
                elif "chunked" in hd.get("transfer-encoding", ""):
                    while True:
                        while b"\r\n" not in buf:
                            buf += s.recv(65536)
                        line, buf = buf.split(b"\r\n", 1)
                        size = int(line.split(b";")[0], 16)
                        while len(buf) < size + 2:
                            buf += s.recv(65536)
                        body += buf[:size]
                        buf = buf[size + 2:]
                        if size == 0:
                            break
                req = {"method": method, "path": path, "version": version, "headers": headers,
                       "h": hd, "body": body, "peer": peer, "sock": s}
                with self.lock:
                    self.requests.append(req)
                keep = self.handler(s, req)
                if keep is False or hd.get("connection", "").lower() == "close":
                    s.close()
                    return
        except OSError:
            return

    def stop(self):
        self.stopped = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        with self.lock:
            for c in self.conns:
                try:
                    c.close()
                except OSError:
                    pass


def reply(s, status=200, body=b"ok\n", headers=(), reason="OK"):
    h = f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\n"
    for k, v in headers:
        h += f"{k}: {v}\r\n"
    s.sendall(h.encode() + b"\r\n" + body)


def echo_handler(s, req):
    body = json.dumps({"method": req["method"], "path": req["path"], "version": req["version"],
                       "headers": req["headers"], "body_len": len(req["body"]),
                       "peer_port": req["peer"][1]}).encode()
    reply(s, 200, body, [("Content-Type", "application/json")])
    return True


def slow_chunks_handler(chunks=3, every=2.0):
    """A backend handler that holds its connection: a chunked 200, one
    chunk every `every` seconds, `chunks` of them, then the end."""
    def handler(s, req):
        try:
            s.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(chunks):
                s.sendall(b"1\r\nx\r\n")
                time.sleep(every)
            s.sendall(b"0\r\n\r\n")
        except OSError:
            return False
        return True
    return handler


def closed_port():
    """A port on 127.0.0.1 where nothing listens."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p
