#!/bin/bash
# Isolated start benchmark: dyno vs crun run vs bwrap --unshare-all vs
# fork+exec, each starting tests/bench/stamp (prints CLOCK_REALTIME).
#   start:  launcher started -> the command running (stamp's time - t0)
#   cycle:  launcher started -> launcher exited, teardown included
#   cycles/s: sequential full cycles per second
# crun is also started 50 ms apart (a cold v1 cgroup attach, see below).
# dyno also reports its own split (dyno-launch --repeat, in one process as
# dynod would run it): launch_start() -> exec'd, and teardown (stop +
# cgroup/veth/rules removal) separately.
# usage: tests/bench/spawn.sh [RUNS]   (default 100; root; BUILD=build dir)
# Runs in a private mount + network namespace (`unshare -m -n`, lo up), in
# which /sys/fs/cgroup/unified is unmounted for crun (see docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-100}
BUILD=${BUILD:-build}
[ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" >/dev/null
ninja -C "$BUILD" >/dev/null
for t in crun bwrap unshare; do
	command -v $t >/dev/null || { echo "spawn.sh: $t is missing" >&2; exit 1; }
done
work=$(mktemp -d /tmp/dyno-bench-spawn.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"

unshare -m -n sh -c '
ip link set lo up
umount /sys/fs/cgroup/unified 2>/dev/null || true
exec /usr/bin/python3 - "$@"' sh "$work" "$RUNS" "$PWD/$BUILD" <<'PY'
import json, os, shutil, socket, statistics, subprocess, sys, time
work, runs, build = sys.argv[1], int(sys.argv[2]), sys.argv[3]
stamp = os.path.join(build, "tests/bench/stamp")
launch = os.path.join(build, "bin/dyno-launch")
uid = 29999

slug = os.path.join(work, "slug")
os.makedirs(slug)
shutil.copy(stamp, os.path.join(slug, "stamp"))
for p in (slug, os.path.join(slug, "stamp")):
    os.chown(p, uid, uid)

# crun bundle: a root with the static stamp only; v1 cgroup limits as a
# standard-1x dyno's
bundle = os.path.join(work, "bundle")
os.makedirs(os.path.join(bundle, "rootfs"))
shutil.copy(stamp, os.path.join(bundle, "rootfs", "stamp"))
subprocess.run(["crun", "spec"], cwd=bundle, check=True)
spec = json.load(open(os.path.join(bundle, "config.json")))
spec["process"]["args"] = ["/stamp"]
spec["process"]["terminal"] = False
spec["root"] = {"path": "rootfs", "readonly": True}
spec["linux"]["resources"] = {"memory": {"limit": 1 << 30}, "pids": {"limit": 256},
                              "cpu": {"shares": 1024}}
json.dump(spec, open(os.path.join(bundle, "config.json"), "w"))

os.makedirs(os.path.join(work, "sink"))  # the sink alone in its directory
sink_path = os.path.join(work, "sink", "log.sock")
sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sink.bind(sink_path)
sink.settimeout(5)

def dyno_cmd(i):
    return [launch, "--slug-dir", slug, "--uid", str(uid), "--name", "bench.1",
            "--id", f"bench-{os.getpid()}-{i}", "--log-sock", sink_path,
            "--cgroup-parent", f"dyno-bench-{os.getpid()}", "--", "/app/stamp"]

tools = {
    "fork+exec": lambda i: [stamp],
    "bwrap --unshare-all": lambda i: ["bwrap", "--unshare-all", "--ro-bind", "/", "/",
                                      "--proc", "/proc", "--dev", "/dev", stamp],
    "crun run (v1 cgroup)": lambda i: ["crun", "run", "--bundle", bundle,
                                       f"bench-{os.getpid()}-{i}"],
    "dyno (dyno-launch)": dyno_cmd,
}

def one(name, i):
    t0 = time.time_ns()
    p = subprocess.Popen(tools[name](i), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate()
    t1 = time.time_ns()
    if p.returncode != 0:
        raise SystemExit(f"{name}: exit {p.returncode}: {err.decode()[-500:]}")
    if name.startswith("dyno"):
        line = sink.recv(4096).decode()
        ts = int(line.rsplit(": ", 1)[1])
    else:
        ts = int(out.split()[0])
    return (ts - t0) / 1e6, (t1 - t0) / 1e6

print(f"{runs} sequential runs each, medians; host: {os.cpu_count()} cpus, "
      f"kernel {os.uname().release}")
print(f"{'launcher':24} {'start ms':>9} {'cycle ms':>9} {'exit+teardown ms':>17} {'cycles/s':>9}")
for name in tools:
    for i in range(3):  # warm up
        one(name, f"w{i}")
    starts, cycles = [], []
    t0 = time.monotonic()
    for i in range(runs):
        s, c = one(name, i)
        starts.append(s)
        cycles.append(c)
    total = time.monotonic() - t0
    s, c = statistics.median(starts), statistics.median(cycles)
    print(f"{name:24} {s:9.2f} {c:9.2f} {c - s:17.2f} {runs / total:9.1f}")

# Moving a task into a v1 cgroup waits for an RCU grace period unless
# another move happened in the last ~20 ms: back-to-back crun runs stay
# warm, starts seconds apart (as dynod's) do not. crun, 50 ms apart:
starts = []
for i in range(min(runs, 30)):
    time.sleep(0.05)
    starts.append(one("crun run (v1 cgroup)", f"gap{i}")[0])
print(f"{'crun, runs 50 ms apart':24} {statistics.median(starts):9.2f}")

r = subprocess.run([launch, "--slug-dir", slug, "--uid", str(uid), "--name", "bench.1",
                    "--id", f"bench-{os.getpid()}-r", "--cgroup-parent",
                    f"dyno-bench-{os.getpid()}", "--repeat", str(runs), "--", "/app/stamp"],
                   capture_output=True, text=True, check=True)
b = json.loads(r.stdout.splitlines()[-1])
print(f"dyno in-process (launch_start -> exec'd, as dynod): start {b['start_median_us']/1000:.2f} ms,"
      f" teardown {b['teardown_median_us']/1000:.2f} ms, {b['cycles_per_s']:.1f} cycles/s")
# a scale-up: dynos that stay up (teardown after all of them), and dynos
# whose command exits at once (their network namespaces are torn down by
# the kernel's workers while the next ones start, on the same 2 cores)
for label, cmd in (("staying up", "sleep 600"), ("exiting at once", "/app/stamp")):
    r = subprocess.run([launch, "--slug-dir", slug, "--uid", str(uid), "--name", "bench.1",
                        "--id", f"bench-{os.getpid()}-b", "--cgroup-parent",
                        f"dyno-bench-{os.getpid()}", "--grace", "1", "--burst",
                        str(min(runs, 50)), "--", cmd], capture_output=True, text=True,
                       check=True)
    b = json.loads(r.stdout.splitlines()[-1])
    print(f"dyno burst of {b['runs']}, {label} (back to back, teardown after all, as a "
          f"scale-up): start {b['start_median_us']/1000:.2f} ms median, "
          f"{b['start_max_us']/1000:.2f} ms max, all up in {b['all_started_us']/1000:.0f} ms, "
          f"teardown {b['teardown_per_dyno_us']/1000:.2f} ms per dyno")
for c in ("memory", "pids", "cpu"):
    try:
        os.rmdir(f"/sys/fs/cgroup/{c}/dyno-bench-{os.getpid()}")
    except OSError:
        pass
PY
