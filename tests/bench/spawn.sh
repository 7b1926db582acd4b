#!/bin/bash
# Isolated start benchmark: dyno (with and without its warm pool) vs crun
# run vs bwrap --unshare-all vs fork+exec, each starting tests/bench/stamp
# (prints CLOCK_REALTIME).
#   start:  launcher started -> the command running (stamp's time - t0)
#   cycle:  launcher started -> launcher exited, teardown included
# Subjects, each back to back and 50 ms apart (a cold v1 cgroup attach,
# see docs/benchmarks.md), fork+exec back to back only:
#   fork+exec, bwrap --unshare-all, crun run (v1 cgroup): a process per run;
#   dyno-launch (no pool): a dyno-launch process per run (its start has no
#     pool to take from: a pool lives in a long-running launcher);
#   dyno (no pool), dyno (pool): one dyno-launch --repeat, as dynod runs
#     the launcher: t0 is launch_start()'s call (dyno-launch prints it), the
#     pool (--pool 2) refilled between runs; "exec'd" is launch_start()
#     returning (the command has exec'd);
#   bursts: dyno-launch --burst (back to back, teardown after all, as a
#     scale-up), without and with a pool as large as the burst.
# usage: tests/bench/spawn.sh [RUNS]   (default 100; root; BUILD=build dir;
#        BENCH_JSON=PATH also writes every sample as JSON)
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
exec /usr/bin/python3 - "$@"' sh "$work" "$RUNS" "$PWD/$BUILD" "${BENCH_JSON:-}" <<'PY'
import json, os, shutil, socket, statistics, subprocess, sys, threading, time
work, runs, build, json_path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
stamp = os.path.join(build, "tests/bench/stamp")
launch = os.path.join(build, "bin/dyno-launch")
uid = 29999
parent = f"dyno-bench-{os.getpid()}"
BURST = 8
apart = min(runs, 30)  # runs 50 ms apart

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
sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
sink.settimeout(5)


def next_stamp():
    """The next stamp the sink gets: init also sends its own lines
    ("dyno[bench.1]: Process exited with status 0"), skipped."""
    while True:
        line = sink.recv(4096).decode().strip()
        for ln in line.splitlines():
            tail = ln.rsplit(": ", 1)[-1]
            if " app[" in ln and tail.isdigit():
                return int(tail)


def dyno_args(id_, *extra):
    return [launch, "--slug-dir", slug, "--uid", str(uid), "--name", "bench.1", "--id", id_,
            "--log-sock", sink_path, "--cgroup-parent", parent, *extra]


tools = {
    "fork+exec": lambda i: [stamp],
    "bwrap --unshare-all": lambda i: ["bwrap", "--unshare-all", "--ro-bind", "/", "/",
                                      "--proc", "/proc", "--dev", "/dev", stamp],
    "crun run (v1 cgroup)": lambda i: ["crun", "run", "--bundle", bundle,
                                       f"bench-{os.getpid()}-{i}"],
    "dyno-launch (no pool)": lambda i: dyno_args(f"bench-{os.getpid()}-{i}", "--",
                                                 "/app/stamp"),
}


def one(name, i):
    t0 = time.time_ns()
    p = subprocess.Popen(tools[name](i), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate()
    t1 = time.time_ns()
    if p.returncode != 0:
        raise SystemExit(f"{name}: exit {p.returncode}: {err.decode()[-500:]}")
    ts = next_stamp() if name.startswith("dyno") else int(out.split()[0])
    return (ts - t0) / 1e6, (t1 - t0) / 1e6


results = []


def record(subject, mode, starts, cycles, **extra):
    results.append({"subject": subject, "mode": mode, "start_ms": starts, "cycle_ms": cycles,
                    **extra})
    s = statistics.median(starts)
    c = statistics.median(cycles) if cycles else float("nan")
    more = "".join(f", {k} {statistics.median(v):.2f}" for k, v in extra.items())
    print(f"{subject:24} {mode:13} {s:9.2f} {c:9.2f} {max(starts):9.2f}{more}", flush=True)


def by_process(name, gap):
    for i in range(3):  # warm up
        one(name, f"w{i}")
    starts, cycles = [], []
    for i in range(runs if not gap else apart):
        if gap:
            time.sleep(gap)
        s, c = one(name, f"{'g' if gap else ''}{i}")
        starts.append(s)
        cycles.append(c)
    return starts, cycles


def in_process(pool, gap):
    """dyno-launch --repeat: t0 of each launch_start() call, matched with
    the stamps its runs send, one after the other."""
    n = runs if not gap else apart
    extra = ["--repeat", str(n)]
    if gap:
        extra += ["--gap", str(int(gap * 1000))]
    if pool:
        extra += ["--pool", str(pool)]
    stamps = []

    def collect():
        while len(stamps) < n:
            try:
                stamps.append(next_stamp())
            except socket.timeout:
                return
    th = threading.Thread(target=collect)
    th.start()
    r = subprocess.run(dyno_args(f"bench-{os.getpid()}-r{pool}{'g' if gap else ''}", *extra,
                                 "--", "/app/stamp"), capture_output=True, text=True)
    th.join()
    if r.returncode != 0 or len(stamps) != n:
        raise SystemExit(f"dyno-launch --repeat: exit {r.returncode}, {len(stamps)} of {n} "
                         f"stamps: {r.stderr[-500:]}")
    b = json.loads(r.stdout.splitlines()[-1])
    starts = [(s - t0) / 1e6 for s, t0 in zip(stamps, b["t0_ns"])]
    return starts, [c / 1000 for c in b["cycle_us"]], [e / 1000 for e in b["start_us"]]


def burst(pool, cmd="sleep 600"):
    extra = ["--grace", "1", "--burst", str(BURST)] + (["--pool", str(pool)] if pool else [])
    r = subprocess.run(dyno_args(f"bench-{os.getpid()}-b{pool}", *extra, "--", cmd),
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"dyno-launch --burst: exit {r.returncode}: {r.stderr[-500:]}")
    ev = [json.loads(x) for x in r.stdout.splitlines()]
    samples = next(e for e in ev if e["event"] == "burst_samples")
    pooled = sum("-pool-" in i for i in samples["ids"])
    return [s / 1000 for s in samples["start_us"]], pooled


cg = "v2" if not os.path.isdir("/sys/fs/cgroup/memory") else "v1"
print(f"{runs} runs back to back, {apart} runs 50 ms apart, bursts of {BURST}; host: "
      f"{os.cpu_count()} cpus, kernel {os.uname().release}, cgroup {cg}; medians (ms)")
print(f"{'subject':24} {'mode':13} {'start':>9} {'cycle':>9} {'max start':>9}")
for name in tools:
    record(name, "back-to-back", *by_process(name, 0))
    # moving a task into a v1 cgroup waits for an RCU grace period unless
    # another move happened in the last ~20 ms: runs seconds apart (as
    # dynod's) do not have a warm one
    if name != "fork+exec":
        record(name, "50ms apart", *by_process(name, 0.05))
for label, pool in (("dyno (no pool)", 0), ("dyno (pool)", 2)):
    for mode, gap in (("back-to-back", 0), ("50ms apart", 0.05)):
        s, c, e = in_process(pool, gap)
        record(label, mode, s, c, exec_ms=e)
for label, pool in (("dyno (no pool)", 0), ("dyno (pool)", BURST)):
    s, pooled = burst(pool)
    record(label, "burst", s, [], pooled=[pooled])
for c in ("memory", "pids", "cpu"):
    try:
        os.rmdir(f"/sys/fs/cgroup/{c}/{parent}")
    except OSError:
        pass
if json_path:
    meta = {"runs": runs, "runs_apart": apart, "burst": BURST,
            "kernel": os.uname().release, "cgroup": cg, "cpus": os.cpu_count()}
    with open(json_path, "w") as f:
        json.dump({"bench": "spawn", "meta": meta, "results": results}, f)
    print(f"wrote {json_path}")
PY
