#!/bin/bash
# State-write benchmark: how long one tenant's config changes hold dynod's
# loop. A real dynod (DYNOD_NO_LAUNCHER=1: the API alone, no dyno runs) on a
# Unix socket in a temp dir; app A sets a config var N times through the
# API (PATCH /apps/A/config-vars, a distinct value of KIB KiB each time,
# one keep-alive connection), while app B's GET /apps/B/config-vars is
# timed in a loop on another connection until A is done.
# Reports p50/p99/max of B's GETs and of A's PATCHes, the size of A's
# app.json and dynod's VmRSS/VmHWM at the end.
# usage: tests/bench/state.sh [N] [KIB]   (default 200 and 30)
# Builds: $DYNO_BUILD (default build/), then $DYNO_BUILD_B when set (each
# with its own dynod and state dir, one after the other). The state dir is
# made under $TMPDIR (default /tmp): put it on the disk whose fsync you
# mean to measure, not a tmpfs.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-200}
KIB=${2:-30}
builds=("$(realpath "${DYNO_BUILD:-build}")")
[ -n "${DYNO_BUILD_B:-}" ] && builds+=("$(realpath "$DYNO_BUILD_B")")
for b in "${builds[@]}"; do
	[ -x "$b/bin/dynod" ] || { echo "state.sh: $b/bin/dynod is missing: build first" >&2; exit 1; }
done
work=$(mktemp -d "${TMPDIR:-/tmp}/dyno-bench-state.XXXXXX")
trap 'rm -rf "$work"' EXIT

# the python below bounds every wait (60 s per build); timeout is the last resort
timeout -k 10 $((150 * ${#builds[@]})) /usr/bin/python3 - "$work" "$N" "$KIB" "${builds[@]}" <<'PY'
import http.client, json, os, signal, socket, subprocess, sys, threading, time
work, n, kib, builds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
DEADLINE = 60.0  # seconds of config changes per build, at most


class UConn(http.client.HTTPConnection):
    def __init__(self, sock):
        super().__init__("dynod", timeout=30)
        self.path = sock

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(30)
        self.sock.connect(self.path)


def call(c, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    hdr = {"Content-Type": "application/json"} if data is not None else {}
    t = time.monotonic()
    c.request(method, path, body=data, headers=hdr)
    r = c.getresponse()
    text = r.read()
    dt = time.monotonic() - t
    if r.status >= 300:
        raise SystemExit(f"{method} {path}: {r.status} {text[:200]!r}")
    return dt


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] * 1000 if xs else float("nan")


def proc_kib(pid, key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def run(build, idx):
    d = os.path.join(work, f"b{idx}")
    os.mkdir(d)
    sock = os.path.join(d, "api.sock")
    cfg = {"state_dir": os.path.join(d, "state"), "api_socket": sock, "api_group": "root",
           # no router under dynod: it would bind 18080 and 8081 of the host
           "router": {"external": True, "listen": "127.0.0.1:18080"}}
    json.dump(cfg, open(os.path.join(d, "dynod.json"), "w"))
    log = open(os.path.join(d, "dynod.log"), "wb")
    env = dict(os.environ, DYNOD_NO_LAUNCHER="1")
    p = subprocess.Popen([os.path.join(build, "bin/dynod"), "--config",
                          os.path.join(d, "dynod.json")], stdout=log, stderr=log, env=env)
    try:
        for _ in range(200):
            if os.path.exists(sock):
                try:
                    UConn(sock).connect()
                    break
                except OSError:
                    pass
            if p.poll() is not None:
                raise SystemExit(f"dynod exited {p.returncode}: " +
                                 open(os.path.join(d, "dynod.log")).read()[-2000:])
            time.sleep(0.05)
        ca, cb = UConn(sock), UConn(sock)
        call(ca, "POST", "/apps", {"name": "app-a"})
        call(ca, "POST", "/apps", {"name": "app-b"})
        call(cb, "PATCH", "/apps/app-b/config-vars", {"SMALL": "1"})
        done = threading.Event()
        gets = []

        def reader():
            while not done.is_set():
                gets.append(call(cb, "GET", "/apps/app-b/config-vars"))

        t = threading.Thread(target=reader)
        t.start()
        sets = []
        start = time.monotonic()
        pad = "v" * (kib * 1024 - 16)
        try:
            for i in range(n):
                if time.monotonic() - start > DEADLINE:
                    break
                sets.append(call(ca, "PATCH", "/apps/app-a/config-vars",
                                 {"BIG": f"{i:08d}" + pad}))
        finally:
            done.set()
            t.join(timeout=35)
        wall = time.monotonic() - start
        size = os.path.getsize(os.path.join(d, "state/apps/app-a/app.json"))
        rss, hwm = proc_kib(p.pid, "VmRSS"), proc_kib(p.pid, "VmHWM")
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    print(f"{build}: {len(sets)} config:set of {kib} KiB in {wall:.1f} s")
    print(f"  B GET config-vars  n={len(gets)} p50={pct(gets, .5):.2f} ms "
          f"p99={pct(gets, .99):.2f} ms max={pct(gets, 1):.2f} ms")
    print(f"  A PATCH config-vars n={len(sets)} p50={pct(sets, .5):.2f} ms "
          f"p99={pct(sets, .99):.2f} ms max={pct(sets, 1):.2f} ms")
    print(f"  A app.json {size / 1e6:.2f} MB; dynod VmRSS {rss / 1024:.1f} MiB, "
          f"VmHWM {hwm / 1024:.1f} MiB", flush=True)


for i, b in enumerate(builds):
    run(b, i)
PY
