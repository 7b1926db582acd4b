#!/bin/bash
# Scale benchmark: a real dynod (its own state dir, config, cgroup parent and
# uid range) in a private network namespace (`unshare -n`, lo up) runs one
# app whose web process is tests/bench/tiny-web (static, 0.0.0.0:$PORT).
#   to N up:  `dyno ps:scale web=N` started -> N web dynos `up` (GET
#             /apps/APP/dynos polled every 50 ms); also when the CLI returned
#   RSS:      dynod's VmRSS with 0 dynos and with N up, and per dyno
#   to 0:     `dyno ps:scale web=0` -> no dyno left
#   API:      GET /apps answered while the N start (one request every
#             10 ms from the scale to N up), and while they stop (web=0):
#             p50, p99, max
# Then dynod is stopped by its PID; no cgroup, veth or dyno process may be
# left (the script sweeps and fails if it had to).
# usage: tests/bench/scale.sh [N]   (default 50; root)
# Build: build-release/ when it holds a dynod, else $DYNO_BUILD, else build/.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-50}
if [ -x build-release/bin/dynod ] && [ -x build-release/tests/bench/tiny-web ]; then
	BUILD=$PWD/build-release
else
	BUILD=$(realpath "${DYNO_BUILD:-build}")
fi
for f in bin/dynod bin/dyno tests/bench/tiny-web; do
	[ -x "$BUILD/$f" ] || { echo "scale.sh: $BUILD/$f is missing: build first" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "scale.sh: needs root" >&2; exit 1; }
work=$(mktemp -d /tmp/dyno-bench-scale.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"

# the python below bounds every wait; timeout is the last resort
timeout -k 10 300 unshare -n sh -c 'ip link set lo up && exec /usr/bin/python3 - "$@"' \
	sh "$work" "$N" "$BUILD" <<'PY'
import http.client, json, os, shutil, socket, subprocess, sys, threading, time
sys.path.insert(0, "tests/bench")  # the script runs from the repo root
from benchkit import start_dynod, stop_dynod  # noqa: E402
work, n, build = sys.argv[1], int(sys.argv[2]), sys.argv[3]
dynod_exe = os.path.join(build, "bin/dynod")
dyno_exe = os.path.join(build, "bin/dyno")
sock = os.path.join(work, "api.sock")
state = os.path.join(work, "state")
parent = f"dyno-scale-{os.getpid()}-{int(time.time() * 1000) % 100000}"
first = 600000 + (os.getpid() % 500) * 400
cfg = {
    "state_dir": state, "api_socket": sock, "api_group": "root", "cgroup_parent": parent,
    "uids": {"first": first, "count": 200},
    # dynod's own cost is measured: no router under it (nothing here goes
    # through one)
    "router": {"external": True},
    "dyno": {"timeouts": {"boot": "20s", "stop": "1s"},
             "cooloff": {"first": "1s", "max": "4s", "reset_after": "5m"}},
    "sizes": {"standard-1x": {"memory": "512M", "pids": 256, "cpu": 1}},
}
conf = os.path.join(work, "dynod.json")
json.dump(cfg, open(conf, "w"))
log_path = os.path.join(work, "dynod.log")
env = dict(os.environ, DYNO_API=sock, DYNO_APP="scalebench")
env.pop("DYNOD_NO_LAUNCHER", None)


class UConn(http.client.HTTPConnection):
    def __init__(self):
        super().__init__("dynod", timeout=10)

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(10)
        self.sock.connect(sock)


def dynos():
    c = UConn()
    try:
        c.request("GET", "/apps/scalebench/dynos")
        r = c.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"GET dynos: {r.status} {body[:200]!r}")
        return json.loads(body)
    finally:
        c.close()


def api_latency(stop, out):
    """GET /apps every 10 ms until stop is set; each answer's seconds."""
    while not stop.is_set():
        t = time.monotonic()
        c = UConn()
        try:
            c.request("GET", "/apps")
            c.getresponse().read()
        finally:
            c.close()
        out.append(time.monotonic() - t)
        time.sleep(0.01)


def cli(*args):
    r = subprocess.run([dyno_exe, *args], capture_output=True, text=True, env=env, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"dyno {' '.join(args)}: {r.returncode} {r.stderr.strip()}")
    return r


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def wait_for(pred, timeout, what, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ds = dynos()
        if pred(ds):
            return ds
        time.sleep(step)
    raise RuntimeError(f"timed out ({timeout}s) waiting for {what}")


proc = None
seen_pids = set()
res = {}
ok = False
try:
    proc = start_dynod(dynod_exe, conf, sock, log_path, env)
    res["rss_start"] = rss_kib(proc.pid)
    slug = os.path.join(work, "src")
    os.makedirs(slug)
    shutil.copy(os.path.join(build, "tests/bench/tiny-web"), os.path.join(slug, "tiny-web"))
    open(os.path.join(slug, "Procfile"), "w").write("web: exec ./tiny-web\n")
    cli("apps:create", "scalebench")
    cli("slugs:create", slug, "-o", os.path.join(work, "slug.tgz"))
    cli("deploy", os.path.join(work, "slug.tgz"))  # the first deploy: web=1
    wait_for(lambda ds: len(ds) == 1 and ds[0]["state"] == "up", 30, "web.1 up")
    cli("ps:scale", "web=0")
    wait_for(lambda ds: ds == [], 30, "web=0")
    time.sleep(0.5)
    res["rss0"] = rss_kib(proc.pid)

    lat, stop = [], threading.Event()
    poller = threading.Thread(target=api_latency, args=(stop, lat), daemon=True)
    poller.start()
    t0 = time.monotonic()
    try:
        cli("ps:scale", f"web={n}")
        res["cli"] = time.monotonic() - t0
        end = t0 + 120
        while True:
            ds = dynos()
            for d in ds:
                if d.get("pid"):
                    seen_pids.add(d["pid"])
            up = sum(1 for d in ds if d["state"] == "up")
            if up == n and len(ds) == n:
                break
            if time.monotonic() > end:
                raise RuntimeError(f"{up}/{n} up after 120 s")
            time.sleep(0.05)
        res["up"] = time.monotonic() - t0
    finally:
        stop.set()
        poller.join()
    lat.sort()
    res["api"] = (len(lat), lat[len(lat) // 2], lat[min(len(lat) - 1, len(lat) * 99 // 100)],
                  lat[-1])
    time.sleep(0.5)
    res["rssn"] = rss_kib(proc.pid)

    lat, stop = [], threading.Event()
    poller = threading.Thread(target=api_latency, args=(stop, lat), daemon=True)
    poller.start()
    t0 = time.monotonic()
    try:
        cli("ps:scale", "web=0")
        wait_for(lambda ds: ds == [], 60, "scale to 0")
        res["down"] = time.monotonic() - t0
    finally:
        stop.set()
        poller.join()
    lat.sort()
    res["api_down"] = (len(lat), lat[len(lat) // 2],
                       lat[min(len(lat) - 1, len(lat) * 99 // 100)], lat[-1])
    ok = True
finally:
    left = stop_dynod(proc, parent, seen_pids)

if any(left.values()):
    print(f"scale.sh: left behind: {left}", file=sys.stderr)
    ok = False
if not ok:
    sys.stderr.write(open(log_path, errors="replace").read()[-3000:])
    sys.exit(1)
per = (res["rssn"] - res["rss0"]) / n
print(f"dynod {dynod_exe}, {n} web dynos of tests/bench/tiny-web, {os.cpu_count()} cpus")
print(f"{'measure':<34} {'value':>12}")
print(f"{'ps:scale web=%d CLI returned' % n:<34} {res['cli']:>10.2f} s")
print(f"{'ps:scale web=%d -> %d up' % (n, n):<34} {res['up']:>10.2f} s")
print(f"{'ps:scale web=0 -> 0 dynos':<34} {res['down']:>10.2f} s")
napi, p50, p99, worst = res["api"]
print(f"{'GET /apps during the scale (%d)' % napi:<34} p50 {p50 * 1000:.1f} ms, "
      f"p99 {p99 * 1000:.1f} ms, max {worst * 1000:.1f} ms")
napi, p50, p99, worst = res["api_down"]
print(f"{'GET /apps during web=0 (%d)' % napi:<34} p50 {p50 * 1000:.1f} ms, "
      f"p99 {p99 * 1000:.1f} ms, max {worst * 1000:.1f} ms")
print(f"{'dynod VmRSS at start':<34} {res['rss_start']:>8} KiB")
print(f"{'dynod VmRSS, 0 dynos':<34} {res['rss0']:>8} KiB")
print(f"{'dynod VmRSS, %d dynos up' % n:<34} {res['rssn']:>8} KiB")
print(f"{'RSS per dyno managed':<34} {per:>8.1f} KiB")
print("left behind: nothing (cgroups, veths, dyno processes)")
PY
