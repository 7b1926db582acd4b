#!/bin/bash
# Density benchmark: APPS apps x PER web dynos of tests/bench/tiny-web (a
# static HTTP server answering "$DYNO"), all up at once, each answering
# through the router. A real dynod (its own state dir, config, cgroup
# parent, uid range) and the router it starts, in a private network
# namespace (`unshare -n`, lo up).
#   to all up:  the APPS `ps:scale web=PER` sent at once -> every dyno `up`
#               (GET /apps/APP/dynos polled every 250 ms; the count over
#               time is kept for the report's plot)
#   answering:  per app, GETs through the router (Host: APP.localhost, one
#               keep-alive connection) until each of its PER dynos has
#               answered its own name
#   memory:     host (MemTotal - MemAvailable) per idle dyno, the dynos'
#               cgroups (memory.usage_in_bytes of the parent: kernel memory
#               of their namespaces included), init + app (Pss), dynod's
#               VmRSS per dyno, the router's VmRSS per backend and per idle
#               client connection (1000 connections opened, nothing sent)
#   to 0:       every app `ps:scale web=0` -> no dyno left
# dynod is stopped by its PID; no cgroup, veth or dyno process may be left.
# usage: tests/bench/density.sh [APPS [PER]]   (default 10 100; root)
# env: DYNO_BUILD (default build), BENCH_JSON=PATH (write the results)
set -euo pipefail
cd "$(dirname "$0")/../.."
APPS=${1:-10}
PER=${2:-100}
BUILD=$(realpath "${DYNO_BUILD:-build}")
for f in bin/dynod bin/dyno bin/dyno-router tests/bench/tiny-web; do
	[ -x "$BUILD/$f" ] || { echo "density.sh: $BUILD/$f is missing: build first" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "density.sh: needs root" >&2; exit 1; }
work=$(mktemp -d /tmp/dyno-bench-density.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"

# the python below bounds every wait; timeout is the last resort
timeout -k 10 600 unshare -n sh -c 'ip link set lo up && exec /usr/bin/python3 - "$@"' \
	sh "$work" "$APPS" "$PER" "$BUILD" "${BENCH_JSON:-}" <<'PY'
import http.client, json, os, re, shutil, socket, subprocess, sys, threading, time
sys.path.insert(0, "tests/bench")  # the script runs from the repo root
from benchkit import cgroups, start_dynod, stop_dynod  # noqa: E402
work, napps, per, build, json_out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    sys.argv[4], sys.argv[5]
total = napps * per
sock = os.path.join(work, "api.sock")
state = os.path.join(work, "state")
parent = f"dyno-density-{os.getpid()}-{int(time.time() * 1000) % 100000}"
first = 800000 + (os.getpid() % 500) * 400
ROUTER = 18080
cfg = {
    "state_dir": state, "api_socket": sock, "api_group": "root", "cgroup_parent": parent,
    "uids": {"first": first, "count": napps + 10},
    "router": {"listen": [f"127.0.0.1:{ROUTER}"], "admin_listen": "127.0.0.1:18081"},
    "dyno": {"timeouts": {"boot": "60s", "stop": "2s", "drain": "200ms"},
             "cooloff": {"first": "1s", "max": "4s", "reset_after": "5m"}},
    "sizes": {"standard-1x": {"memory": "512M", "pids": 256, "cpu": 1}},
}
conf = os.path.join(work, "dynod.json")
json.dump(cfg, open(conf, "w"))
log_path = os.path.join(work, "dynod.log")
env = dict(os.environ, DYNO_API=sock)
env.pop("DYNOD_NO_LAUNCHER", None)
dyno_exe = os.path.join(build, "bin/dyno")
apps = [f"dens{i}" for i in range(napps)]


class UConn(http.client.HTTPConnection):
    def __init__(self):
        super().__init__("dynod", timeout=30)

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.settimeout(30)
        self.sock.connect(sock)


def dynos(app):
    c = UConn()
    try:
        c.request("GET", f"/apps/{app}/dynos")
        r = c.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"GET dynos of {app}: {r.status} {body[:200]!r}")
        return json.loads(body)
    finally:
        c.close()


def cli(*args, timeout=120):
    r = subprocess.run([dyno_exe, *args], capture_output=True, text=True, env=env,
                       timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"dyno {' '.join(args)}: {r.returncode} {r.stderr.strip()}")
    return r


def status_kib(pid, key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def cpu_s(pid):
    """utime + stime of pid, seconds."""
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def loop_cpu_s(pid):
    """utime + stime of pid's main thread (dynod's loop), seconds."""
    f = open(f"/proc/{pid}/task/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def meminfo():
    m = {}
    for line in open("/proc/meminfo"):
        k, v = line.split(":")
        m[k] = int(v.split()[0])
    return m


def host_used_kib():
    m = meminfo()
    return m["MemTotal"] - m["MemAvailable"]


def cgroup_usage():
    for p in (f"/sys/fs/cgroup/memory/{parent}/memory.usage_in_bytes",
              f"/sys/fs/cgroup/{parent}/memory.current"):
        try:
            return int(open(p).read())
        except OSError:
            pass
    return 0


def pss_kib(pids):
    t = 0
    for p in pids:
        try:
            for line in open(f"/proc/{p}/smaps_rollup"):
                if line.startswith("Pss:"):
                    t += int(line.split()[1])
        except OSError:
            pass
    return t


def cgroup_pids():
    pids = []
    base = f"/sys/fs/cgroup/pids/{parent}"
    if not os.path.isdir(base):
        base = f"/sys/fs/cgroup/{parent}"
    for root, _, files in os.walk(base):
        if "cgroup.procs" in files and root != base:
            pids += [int(x) for x in open(os.path.join(root, "cgroup.procs")).read().split()]
    return pids


def router_pid():
    txt = open(os.path.join(state, "router.pid")).read()
    return int(re.search(r"\d+", txt).group(0))


def settle():
    """Lets the kernel's deferred work (RCU frees, netns set-up) finish."""
    time.sleep(3)


def answer_all(app, deadline):
    """GET / through the router until each of the app's dynos answered;
    the set of names seen."""
    seen = set()
    c = None
    while len(seen) < per and time.monotonic() < deadline:
        try:
            if c is None:
                c = socket.create_connection(("127.0.0.1", ROUTER), timeout=5)
                f = c.makefile("rb")
            c.sendall(f"GET / HTTP/1.1\r\nHost: {app}.localhost\r\n\r\n".encode())
            status = f.readline()
            length = 0
            while True:
                h = f.readline()
                if h in (b"\r\n", b""):
                    break
                if h.lower().startswith(b"content-length:"):
                    length = int(h.split(b":")[1])
            body = f.read(length)
            if status.startswith(b"HTTP/1.1 200"):
                seen.add(body.decode().strip())
            else:
                time.sleep(0.05)
        except OSError:
            if c is not None:
                c.close()
            c = None
            time.sleep(0.1)
    if c is not None:
        c.close()
    return seen


def overflows():
    kmsg = subprocess.run(["dmesg"], capture_output=True, text=True).stdout
    return kmsg.count("neighbor table overflow")


proc = None
seen_pids = set()
res = {"apps": napps, "per_app": per}
overflow0 = overflows()
ok = False
try:
    proc = start_dynod(os.path.join(build, "bin/dynod"), conf, sock, log_path, env)
    src = os.path.join(work, "src")
    os.makedirs(src)
    shutil.copy(os.path.join(build, "tests/bench/tiny-web"), os.path.join(src, "tiny-web"))
    open(os.path.join(src, "Procfile"), "w").write("web: exec ./tiny-web\n")
    slug = os.path.join(work, "slug.tgz")
    cli("slugs:create", src, "-o", slug)
    for a in apps:
        cli("apps:create", a)
        cli("deploy", slug, "-a", a)  # the first deploy: web=1
    for a in apps:
        cli("ps:scale", "web=0", "-a", a)
    end = time.monotonic() + 60
    while any(dynos(a) for a in apps):
        if time.monotonic() > end:
            raise RuntimeError("web=0 not reached")
        time.sleep(0.1)
    settle()
    rpid = router_pid()
    base = {"host": host_used_kib(), "cgroup": cgroup_usage(),
            "dynod": status_kib(proc.pid, "VmRSS"), "router": status_kib(rpid, "VmRSS"),
            "slab": meminfo()["Slab"]}

    # every app scaled at once; the count of dynos up over time
    cpu0 = (cpu_s(proc.pid), cpu_s(rpid), loop_cpu_s(proc.pid))
    curve = []
    t0 = time.monotonic()
    errs = []

    def scale(a):
        try:
            cli("ps:scale", f"web={per}", "-a", a)
        except Exception as e:  # noqa: BLE001
            errs.append(str(e))
    threads = [threading.Thread(target=scale, args=(a,)) for a in apps]
    for t in threads:
        t.start()
    end = t0 + 180
    while True:
        up = 0
        for a in apps:
            for d in dynos(a):
                if d.get("pid"):
                    seen_pids.add(d["pid"])
                up += d["state"] == "up"
        t = time.monotonic() - t0
        curve.append([round(t, 3), up, host_used_kib() - base["host"],
                      status_kib(proc.pid, "VmRSS") - base["dynod"]])
        if up == total:
            break
        if errs:
            raise RuntimeError("; ".join(errs))
        if time.monotonic() > end:
            raise RuntimeError(f"{up}/{total} up after 180 s")
        time.sleep(0.25)  # the polls cost dynod too: not too often
    res["all_up_s"] = curve[-1][0]
    res["cpu_to_all_up_s"] = {"dynod": cpu_s(proc.pid) - cpu0[0], "router": cpu_s(rpid) - cpu0[1],
                              "dynod_loop": loop_cpu_s(proc.pid) - cpu0[2]}
    for t in threads:
        t.join()

    # each dyno answers through the router
    deadline = time.monotonic() + 60
    t1 = time.monotonic()
    answered = {a: len(answer_all(a, deadline)) for a in apps}
    res["answered"] = sum(answered.values())
    res["answer_check_s"] = time.monotonic() - t1
    res["answered_per_app"] = answered

    settle()
    pids = cgroup_pids()
    m = {"host": host_used_kib(), "cgroup": cgroup_usage(),
         "dynod": status_kib(proc.pid, "VmRSS"), "router": status_kib(rpid, "VmRSS"),
         "slab": meminfo()["Slab"], "pss": pss_kib(pids), "processes": len(pids)}
    res["per_dyno_kib"] = {
        "host": (m["host"] - base["host"]) / total,
        "kernel_slab": (m["slab"] - base["slab"]) / total,
        "cgroup": (m["cgroup"] - base["cgroup"]) / 1024 / total,
        "init_and_app_pss": m["pss"] / total,
        "dynod": (m["dynod"] - base["dynod"]) / total,
        "router_per_backend": (m["router"] - base["router"]) / total,
    }
    res["processes"] = m["processes"]
    res["dynod_rss_kib"] = m["dynod"]
    res["router_rss_kib"] = m["router"]

    # the router's memory per idle client connection
    before = status_kib(rpid, "VmRSS")
    conns = []
    for _ in range(1000):
        conns.append(socket.create_connection(("127.0.0.1", ROUTER), timeout=5))
    time.sleep(1)
    res["router_per_idle_conn_kib"] = (status_kib(rpid, "VmRSS") - before) / len(conns)
    for c in conns:
        c.close()

    t0 = time.monotonic()
    for a in apps:
        cli("ps:scale", "web=0", "-a", a)
    end = t0 + 180
    while any(dynos(a) for a in apps):
        if time.monotonic() > end:
            raise RuntimeError("web=0 not reached in 180 s")
        time.sleep(0.2)
    res["all_down_s"] = time.monotonic() - t0
    # the clean-ups (veths, rules, cgroups) trail the dynos' exits
    # (the warm pool's prepared entries stay: they are no dyno's)
    while [c for c in cgroups(parent) if "-pool-" not in c]:
        if time.monotonic() > end:
            raise RuntimeError("clean-ups not done 180 s after web=0")
        time.sleep(0.2)
    res["all_cleaned_s"] = time.monotonic() - t0
    res["curve"] = curve
    ok = True
finally:
    left = stop_dynod(proc, parent, seen_pids)
    res["neighbour_overflow"] = overflows() - overflow0

if any(left.values()):
    print(f"density.sh: left behind: {left}", file=sys.stderr)
    ok = False
if not ok:
    sys.stderr.write(open(log_path, errors="replace").read()[-3000:])
    sys.exit(1)
p = res["per_dyno_kib"]
print(f"{napps} apps x {per} web dynos of tests/bench/tiny-web, {os.cpu_count()} cpus, "
      f"kernel {os.uname().release}")
print(f"all {total} up {res['all_up_s']:.2f} s after the scale; "
      f"{res['answered']}/{total} answered through the router "
      f"(checked in {res['answer_check_s']:.1f} s); back to 0 in {res['all_down_s']:.1f} s, "
      f"cleaned up in {res['all_cleaned_s']:.1f} s")
print(f"CPU to all up: dynod {res['cpu_to_all_up_s']['dynod']:.2f} s (its loop "
      f"{res['cpu_to_all_up_s']['dynod_loop']:.2f} s; the rest: start threads, the pool's, "
      f"nftables rules), router {res['cpu_to_all_up_s']['router']:.2f} s")
print(f"per idle dyno: host {p['host']:.0f} KiB (kernel slab {p['kernel_slab']:.0f}), "
      f"its cgroup {p['cgroup']:.0f} KiB, init+app Pss {p['init_and_app_pss']:.0f} KiB, "
      f"dynod {p['dynod']:.1f} KiB, router {p['router_per_backend']:.1f} KiB per backend")
print(f"router: {res['router_per_idle_conn_kib']:.2f} KiB per idle client connection; "
      f"dynod RSS {res['dynod_rss_kib']} KiB, router RSS {res['router_rss_kib']} KiB with "
      f"{total} dynos")
print(f"kernel: {res['neighbour_overflow']} 'neighbor table overflow' messages meanwhile")
print("left behind: nothing (cgroups, veths, dyno processes)")
if json_out:
    json.dump({"bench": "density", "meta": {"kernel": os.uname().release,
                                            "cpus": os.cpu_count()}, "results": res},
              open(json_out, "w"), indent=1)
PY
