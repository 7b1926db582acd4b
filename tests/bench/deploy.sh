#!/bin/bash
# Deploy benchmark: from the start of `dyno deploy FILE` to the first 200
# through the router from the new release. A real dynod (its own state dir,
# config, cgroup parent and uid range; the router it starts on 8080) runs in
# a private network namespace (`unshare -n`, lo up). The app: a web process
# `python3 -m http.server` plus ~40 MB of files, half random (stored as is
# by gzip), half text, so that each slug is a ~40 MB tgz that unpacks to
# ~70 MB. Each round deploys a distinct slug (a file round-N differs) with
# `dyno deploy` and polls `GET / Host: bench.localhost` on 127.0.0.1:8080
# every 5 ms from a thread; the round ends at the first 200 whose body (the
# directory listing of /app) names round-N.
# Rounds run in passes of at most 4: each pass starts dynod on a fresh
# state dir, deploys once (the first deploy, which scales web to 1: not
# counted), then redeploys; dynod is stopped by its PID at the end of the
# pass and no cgroup, veth or dyno process may be left (the script sweeps
# and fails if it had to). With several builds (before/after), their passes
# alternate, so that the host's drift hits them alike; each build's median
# is printed.
# BENCH_JSON=PATH also writes every counted round there as JSON.
# usage: tests/bench/deploy.sh [ROUNDS [BUILD...]]   (default 7 rounds a
#        build; BUILD: a build dir, default $DYNO_BUILD, else build/; root)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-7}
shift || true
[ $# -gt 0 ] || set -- "${DYNO_BUILD:-build}"
builds=()
for b in "$@"; do
	b=$(realpath "$b")
	for f in bin/dynod bin/dyno bin/dyno-router; do
		[ -x "$b/$f" ] || { echo "deploy.sh: $b/$f is missing: build first" >&2; exit 1; }
	done
	builds+=("$b")
done
[ "$(id -u)" = 0 ] || { echo "deploy.sh: needs root" >&2; exit 1; }
work=$(mktemp -d /tmp/dyno-bench-deploy.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"

# the python below bounds every wait; timeout is the last resort
timeout -k 10 1800 unshare -n sh -c 'ip link set lo up && exec /usr/bin/python3 - "$@"' \
	sh "$work" "$ROUNDS" "${builds[@]}" <<'PY'
import json, os, random, re, shutil, socket, statistics, subprocess, sys, threading, time
sys.path.insert(0, "tests/bench")  # the script runs from the repo root
from benchkit import start_dynod, stop_dynod  # noqa: E402
work, rounds, builds = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
PASS = 4  # counted rounds a pass
sock = os.path.join(work, "api.sock")
state = os.path.join(work, "state")
parent = f"dyno-deploy-{os.getpid()}-{int(time.time() * 1000) % 100000}"
first = 700000 + (os.getpid() % 500) * 400
APP = "bench"
cfg = {
    "state_dir": state, "api_socket": sock, "api_group": "root", "cgroup_parent": parent,
    "uids": {"first": first, "count": 50},
    "dyno": {"timeouts": {"boot": "20s", "stop": "1s", "drain": "200ms"},
             "cooloff": {"first": "1s", "max": "4s", "reset_after": "5m"}},
    "sizes": {"standard-1x": {"memory": "512M", "pids": 256, "cpu": 1}},
}
conf = os.path.join(work, "dynod.json")
json.dump(cfg, open(conf, "w"))
log_path = os.path.join(work, "dynod.log")
env = dict(os.environ, DYNO_API=sock, DYNO_APP=APP)
env.pop("DYNOD_NO_LAUNCHER", None)
dyno_exe = os.path.join(builds[0], "bin/dyno")


def cli(*args, timeout=120):
    r = subprocess.run([dyno_exe, *args], capture_output=True, text=True, env=env,
                       timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"dyno {' '.join(args)}: {r.returncode} {r.stderr.strip()}")
    return r


def get_root():
    """GET / through the router: (status, body), (0, b"") when refused."""
    try:
        with socket.create_connection(("127.0.0.1", 8080), timeout=2) as s:
            s.sendall(f"GET / HTTP/1.1\r\nHost: {APP}.localhost\r\n"
                      "Connection: close\r\n\r\n".encode())
            data = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                data += b
    except OSError:
        return 0, b""
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return (int(m.group(1)) if m else 0), data


def dyno_pids():
    try:
        ds = json.loads(cli("ps", "--json").stdout)
    except Exception:
        return set()
    return {d["pid"] for d in ds if d.get("pid")}


# the app: ~20 MB random, ~20 MB text (a different file per round)
rng = random.Random(7)
src = os.path.join(work, "src")
os.makedirs(os.path.join(src, "data"))
open(os.path.join(src, "Procfile"), "w").write(
    "web: exec python3 -m http.server $PORT --bind 0.0.0.0\n")
for i in range(20):
    with open(os.path.join(src, "data", f"blob{i:02d}.bin"), "wb") as f:
        f.write(os.urandom(1 << 20))
words = [("%x" % rng.getrandbits(28)).encode() for _ in range(4000)]
for i in range(50):
    out = bytearray()
    while len(out) < 1 << 20:
        out += b" ".join(rng.choices(words, k=64)) + b"\n"
    open(os.path.join(src, "data", f"text{i:02d}.txt"), "wb").write(out)
slugs = []
for n in range(min(rounds, PASS) + 1):
    for old in os.listdir(src):
        if old.startswith("round-"):
            os.unlink(os.path.join(src, old))
    open(os.path.join(src, f"round-{n}"), "w").write(f"{n}\n")
    path = os.path.join(work, f"slug{n}.tgz")
    cli("slugs:create", src, "-o", path)
    slugs.append(path)
slug_mb = os.path.getsize(slugs[0]) / 1e6
unpacked_mb = sum(os.path.getsize(os.path.join(dp, f))
                  for dp, _, fs in os.walk(src) for f in fs) / 1e6



def deploy_round(n, path):
    """Deploys path (round n's slug); returns (to the first 200 from it,
    to the CLI's return), in seconds."""
    want = f"round-{n}".encode()
    seen, stop, got = threading.Event(), threading.Event(), {}

    def poll():
        while not stop.is_set():
            status, body = get_root()
            if status == 200 and want in body:
                got["t"] = time.monotonic()
                seen.set()
                return
            time.sleep(0.005)

    t0 = time.monotonic()
    th = threading.Thread(target=poll, daemon=True)
    th.start()
    try:
        cli("deploy", path, "-a", APP)
        t_cli = time.monotonic() - t0
        if not seen.wait(30):
            raise RuntimeError(f"round {n}: no 200 from round-{n} within 30 s")
    finally:
        stop.set()
        th.join()
    return got["t"] - t0, t_cli


def run_pass(build, count):
    """A fresh dynod of build: the first deploy, then count redeploys."""
    global dyno_exe
    dyno_exe = os.path.join(build, "bin/dyno")
    shutil.rmtree(state, ignore_errors=True)
    proc, pids, out = None, set(), []
    try:
        proc = start_dynod(os.path.join(build, "bin/dynod"), conf, sock, log_path, env)
        cli("apps:create", APP)
        for n in range(count + 1):
            took, t_cli = deploy_round(n, slugs[n])
            pids |= dyno_pids()
            print(f"{build}: round {n}: deploy CLI {t_cli:.3f} s, first 200 {took:.3f} s"
                  + (" (first deploy: not counted)" if n == 0 else ""), flush=True)
            if n > 0:
                out.append((took, t_cli))
            time.sleep(0.5)  # the old dyno drains and stops
    finally:
        left = stop_dynod(proc, parent, pids)
        if any(left.values()):
            raise RuntimeError(f"left behind: {left}")
    return out


results = {b: [] for b in builds}
ok = False
try:
    while any(len(r) < rounds for r in results.values()):
        for b in builds:
            if len(results[b]) < rounds:
                results[b] += run_pass(b, min(PASS, rounds - len(results[b])))
    ok = True
finally:
    if not ok:
        try:
            sys.stderr.write(open(log_path, errors="replace").read()[-3000:])
        except OSError:
            pass
print(f"slug {slug_mb:.1f} MB gzip, {unpacked_mb:.1f} MB unpacked; {os.cpu_count()} cpus")
for b in builds:
    times = [t for t, _ in results[b]]
    cli_times = [c for _, c in results[b]]
    print(f"{b}: dyno deploy -> first 200 through the router, median of {len(times)}: "
          f"{statistics.median(times):.3f} s (min {min(times):.3f}, max {max(times):.3f}); "
          f"dyno deploy returned, median {statistics.median(cli_times):.3f} s")
print("left behind: nothing (cgroups, veths, dyno processes)")
if os.environ.get("BENCH_JSON"):
    json.dump({"bench": "deploy", "meta": {"slug_mb": slug_mb, "unpacked_mb": unpacked_mb},
               "results": [{"build": b, "round": i + 1, "first_200_s": t, "cli_s": c}
                           for b in builds for i, (t, c) in enumerate(results[b])]},
              open(os.environ["BENCH_JSON"], "w"), indent=1)
PY
