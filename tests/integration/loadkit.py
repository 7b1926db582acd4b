"""A bounded load through the router, for the tests that change or break
something while requests run (test_rollout.py, test_push.py,
test_survive.py, test_faults.py).

Load runs LOAD in a Python subprocess inside a network namespace of the
test's own (`nsenter --net`): client threads, some keeping one connection
alive across requests, some opening a new connection per request, each
counting the statuses it got, the bodies, and the requests that failed
(no answer: refused, reset, closed, timed out) with their time, until the
stop file exists or a bound (seconds, requests) is hit. stop() returns a
Result."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

# An app that prints one line per request to stdout (so that `dyno logs`
# has something of each) and answers with its dyno's name, keep-alive.
APP = r"""
import http.server, os, sys
DYNO = os.environ.get("DYNO", "?").encode()

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16  # head and body in one write (no Nagle wait between them)
    disable_nagle_algorithm = True

    def do_GET(self):
        print("served " + self.path, flush=True)
        body = DYNO + b"\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), H).serve_forever()
"""
APP_WEB = "exec python3 app.py"

# argv: stop file, bound in seconds, bound in requests (all clients),
# keep-alive clients, new-connection clients, host, path (each request
# adds i=N), pause between two requests of a client (seconds), the start
# (time.monotonic() of the test: the same clock in every process of the
# host, so that failures line up with faults). Prints one JSON object: per
# client, its statuses, bodies (first 64 bytes) and failures ({"t": seconds
# since the start, "error": ..., "reused": whether the connection had served
# a request before}), and the number of connects refused.
LOAD = r"""
import json, os, socket, sys, threading, time
stop, max_seconds, max_requests = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
nka, nnew, host, path = int(sys.argv[4]), int(sys.argv[5]), sys.argv[6].encode(), sys.argv[7].encode()
pause, t0 = float(sys.argv[8]), float(sys.argv[9])
sep = b"&" if b"?" in path else b"?"
lock = threading.Lock()
total = [0]

def read_response(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the response" if not data else "closed in the head")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    fields = {k.strip().lower(): v.strip() for k, _, v in (l.partition(b":") for l in lines[1:])}
    n = int(fields.get(b"content-length", b"0"))
    while len(body) < n:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the body")
        body += chunk
    return status, body, fields.get(b"connection", b"").lower() == b"close"

def more():
    with lock:
        total[0] += 1
        return total[0] <= max_requests

def client(keep, out):
    s, used, n = None, False, 0
    while not os.path.exists(stop) and time.monotonic() - t0 < max_seconds and more():
        n += 1
        try:
            if s is None:
                try:
                    s = socket.create_connection(("127.0.0.1", 8080), timeout=10)
                except ConnectionRefusedError:
                    out["refused"] += 1
                    raise
                used = False
            close = b"" if keep else b"Connection: close\r\n"
            s.sendall(b"GET %s%si=%d HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (path, sep, n, host, close))
            status, body, closing = read_response(s)
            out["status"][str(status)] = out["status"].get(str(status), 0) + 1
            key = body[:64].decode(errors="replace")
            out["bodies"][key] = out["bodies"].get(key, 0) + 1
            used = True
            if closing or not keep:
                s.close()
                s = None
        except Exception as e:
            out["failed"].append({"t": round(time.monotonic() - t0, 3), "error": repr(e),
                                  "reused": used})
            if s is not None:
                s.close()
            s = None
            time.sleep(0.01)
        if pause:
            time.sleep(pause)
    if s is not None:
        s.close()

clients = [{"keep": i < nka, "status": {}, "bodies": {}, "failed": [], "refused": 0}
           for i in range(nka + nnew)]
threads = [threading.Thread(target=client, args=(c["keep"], c)) for c in clients]
for t in threads:
    t.start()
for t in threads:
    t.join()
json.dump({"clients": clients, "seconds": round(time.monotonic() - t0, 2)}, sys.stdout)
"""


class Load:
    """LOAD in the background in the network namespace ns (a
    /proc/PID/ns/net path). Each request is a line of a logging app's log
    (1,500 kept per read of `dyno logs`): a pause keeps a long fault's
    lines in reach."""

    def __init__(self, ns, tmp_path, path="/", host="app.localhost", keep_alive=2, new=2,
                 max_seconds=120, max_requests=200000, pause=0.0):
        self.stop_file = Path(tmp_path) / f"load-stop-{time.monotonic_ns()}"
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            ["nsenter", f"--net={ns}", sys.executable, "-c", LOAD, str(self.stop_file),
             str(max_seconds), str(max_requests), str(keep_alive), str(new), host, path,
             str(pause), repr(self.t0)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def since(self):
        """Seconds since the load started (to place a fault in its times)."""
        return time.monotonic() - self.t0

    def stop(self, timeout=30):
        """Stops the clients; what they counted (a Result)."""
        self.stop_file.touch()
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail("the load did not stop")
        assert self.proc.returncode == 0, err
        return Result(json.loads(out))

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Result:
    """The counts of a load: status (all clients), ok (200s), other (the
    other statuses), bodies, failed (each failure, with its time), errors
    (each failure as a line), refused, requests (answered or failed)."""

    def __init__(self, raw):
        self.raw = raw
        self.clients = raw["clients"]
        self.status, self.bodies = {}, {}
        for c in self.clients:
            for k, v in c["status"].items():
                self.status[k] = self.status.get(k, 0) + v
            for k, v in c["bodies"].items():
                self.bodies[k] = self.bodies.get(k, 0) + v
        self.ok = self.status.get("200", 0)
        self.other = {k: v for k, v in self.status.items() if k != "200"}
        self.failed = [f for c in self.clients for f in c["failed"]]
        self.errors = [f"{'keep-alive' if c['keep'] else 'new'}: {f['error']}"
                       for c in self.clients for f in c["failed"]]
        self.refused = sum(c["refused"] for c in self.clients)
        self.requests = sum(self.status.values()) + len(self.failed)

    def line(self, what):
        """One line of a report: what, requests ok, failed (no answer),
        answered other than 200, refused."""
        return (f"{what:<28} ok {self.ok:>6}  failed {len(self.failed):>3}  "
                f"non-200 {sum(self.other.values()):>3} {self.other or ''}  "
                f"refused {self.refused}")

    def __repr__(self):
        return json.dumps(self.raw)[:4000]


def get(d, path):
    """GET path through the router in d's namespace: (status, body)."""
    r = d.netns("curl", "-s", "-w", "\n%{http_code}", "-H", "Host: app.localhost",
                f"http://127.0.0.1:8080{path}")
    body, _, code = r.stdout.rpartition("\n")
    return code, body


def wait_logged(d, text, timeout=10):
    """Until `dyno logs` shows an app line with text; returns the line."""
    end = time.monotonic() + timeout
    out = ""
    while time.monotonic() < end:
        out = d.cli("logs", "-n", "1500", "--source", "app").stdout
        for line in out.splitlines():
            if text in line and "app[" in line:
                return line
        time.sleep(0.1)
    pytest.fail(f"{text!r} never reached the app's log: {out[-2000:]}")
