"""A bounded load loop through the router, for the tests that change what
runs under load (test_rollout.py): client threads inside a network
namespace of the test's own, half on keep-alive connections, half on a new
connection per request, each counting statuses and errors, until a stop
file appears or a bound (requests, seconds) is hit. The counts come back as
JSON."""
import json
import subprocess
import sys
import time
from pathlib import Path

# argv: host path threads max_requests max_seconds stop_file
LOAD = r"""
import http.client, json, os, sys, threading, time
host, path, nthreads = sys.argv[1], sys.argv[2], int(sys.argv[3])
max_requests, max_seconds, stop = int(sys.argv[4]), float(sys.argv[5]), sys.argv[6]
end = time.monotonic() + max_seconds
lock = threading.Lock()
out = {"status": {}, "errors": [], "requests": 0, "bodies": {}}
def note(status=None, error=None, body=None):
    with lock:
        out["requests"] += 1
        if error is not None:
            out["errors"].append(error)
        else:
            out["status"][str(status)] = out["status"].get(str(status), 0) + 1
            if body is not None:
                key = body[:64].decode(errors="replace")
                out["bodies"][key] = out["bodies"].get(key, 0) + 1
        return out["requests"] < max_requests
def run(keepalive):
    conn = None
    while time.monotonic() < end and not os.path.exists(stop):
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", 8080, timeout=10)
            conn.request("GET", path, headers={"Host": host})
            r = conn.getresponse()
            body = r.read()
            more = note(r.status, body=body)
            if not keepalive or r.will_close:
                conn.close()
                conn = None
        except Exception as e:
            more = note(error=f"{'keep-alive' if keepalive else 'new'}: {e!r}")
            if conn is not None:
                conn.close()
            conn = None
        if not more:
            break
threads = [threading.Thread(target=run, args=(i % 2 == 0,)) for i in range(nthreads)]
for t in threads:
    t.start()
for t in threads:
    t.join()
json.dump(out, sys.stdout)
"""


class Load:
    """The loop running in namespace ns (a /proc/PID/ns/net path)."""

    def __init__(self, ns, tmp_path, host="app.localhost", path="/Procfile", threads=4,
                 max_requests=200000, max_seconds=120):
        self.stop_file = Path(tmp_path) / f"load-stop-{time.monotonic_ns()}"
        self.proc = subprocess.Popen(
            ["nsenter", f"--net={ns}", sys.executable, "-c", LOAD, host, path, str(threads),
             str(max_requests), str(max_seconds), str(self.stop_file)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stop(self, timeout=30):
        """Stops the loop; its counts: {"status": {"200": n}, "errors": [...],
        "requests": n, "bodies": {first 64 bytes: n}}."""
        self.stop_file.touch()
        try:
            out, err = self.proc.communicate(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        assert self.proc.returncode == 0, err
        return json.loads(out)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
