#!/usr/bin/python3
"""Writes docs/performance.md (and its SVG plots, made with gnuplot) from
the JSON results `make bench` collected (tests/bench/run-all): one file per
benchmark in RESULTS_DIR, as each script writes it with BENCH_JSON=PATH.

usage: tests/bench/report.py RESULTS_DIR OUT_MD

A benchmark that failed or was not run is named in the report with the
reason its log gives; its section says so instead of showing old numbers.
Medians are over the rounds each script alternated between its subjects."""
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys

RESULTS, OUT = sys.argv[1], sys.argv[2]
PLOTS_DIR = os.path.join(os.path.dirname(OUT), "performance")
PLOTS_REL = "performance"


def load(name):
    p = os.path.join(RESULTS, name + ".json")
    try:
        with open(p) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def failure(name):
    """The last lines of a benchmark's log, when it left no results."""
    try:
        with open(os.path.join(RESULTS, name + ".log"), errors="replace") as f:
            lines = [ln.rstrip() for ln in f if ln.strip()]
        return lines[-6:]
    except OSError:
        return ["(not run)"]


def cmd_out(*args):
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=10)
        return (r.stdout or r.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def first_line(s):
    return s.splitlines()[0] if s else "(missing)"


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def pct(xs, p):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(len(xs) * p / 100))]


def mark(ok):
    return "**met**" if ok else "**missed**"


COLORS = ["#9400d3", "#009e73", "#56b4e9", "#e69f00", "#f0e442", "#0072b2", "#e51e10",
          "#000000", "#a0a0a0", "#8b4513", "#ff69b4", "#2e8b57"]


def plot(name, script, data, size="720,420"):
    """Runs gnuplot with script (data files: {name: rows}); returns the
    markdown image line, or a note when gnuplot is missing."""
    if not shutil.which("gnuplot"):
        return f"(plot {name}: gnuplot is missing: scripts/install-deps bench)\n"
    os.makedirs(PLOTS_DIR, exist_ok=True)
    files = {}
    for key, rows in data.items():
        path = os.path.join(RESULTS, f"{name}-{key}.dat")
        with open(path, "w") as f:
            for row in rows:
                f.write(" ".join(str(v) for v in row) + "\n")
        files[key] = path
    svg = os.path.join(PLOTS_DIR, name + ".svg")
    head = (f"set terminal svg size {size} dynamic font 'sans,11'\n"
            f"set output '{svg}'\nset grid\nset key top left\n")
    body = script.format(**files)
    r = subprocess.run(["gnuplot"], input=head + body, capture_output=True, text=True)
    if r.returncode != 0:
        return f"(plot {name} failed: {r.stderr.strip()[:200]})\n"
    return f"![{name}]({PLOTS_REL}/{name}.svg)\n"


out = []
w = out.append
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
commit = cmd_out("git", "rev-parse", "--short", "HEAD")
cpu = ""
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
except OSError:
    pass
mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
debian = first_line(cmd_out("cat", "/etc/debian_version"))
cgroup = ("v2 (unified)" if os.path.exists("/sys/fs/cgroup/cgroup.controllers")
          else "v1 controllers" + (" beside a v2 mount" if os.path.ismount("/sys/fs/cgroup/unified")
                                   else ""))

w("# Performance\n\n")
w("What `make bench` measured on this machine, written by `tests/bench/report.py`\n"
  "from the results of `tests/bench/run-all`. Every figure is a median of rounds\n"
  "alternated between the subjects compared, measured in the same run (the\n"
  "machine's speed drifts by 15-25% between runs; docs/benchmarks.md has the\n"
  "method of each benchmark). Run alone on the machine: the benchmarks use both\n"
  "cores.\n\n")
w("## Machine\n\n")
w("| | |\n|---|---|\n")
w(f"| when | {now}, dyno {commit or '(not a git tree)'} |\n")
w(f"| CPU | {os.cpu_count()} x {cpu} |\n")
w(f"| memory | {mem_gib:.1f} GiB |\n")
w(f"| kernel | {platform.release()}, Debian {debian}, cgroup {cgroup} |\n")
for tool, args in (("HAProxy", ["haproxy", "-v"]), ("nginx", ["nginx", "-v"]),
                   ("wrk", ["wrk", "--version"]), ("bsdtar", ["bsdtar", "--version"]),
                   ("bwrap", ["bwrap", "--version"]), ("crun", ["crun", "--version"]),
                   ("gnuplot", ["gnuplot", "--version"])):
    w(f"| {tool} | {first_line(cmd_out(*args))} |\n")
w("\n")

marks = []  # (what, met, figure)

# --- unpack
w("## Slug unpack\n\n`tests/bench/unpack.sh 7`: a gzip slug and the same content as zstd,\n"
  "unpacked into fresh directories on a private tmpfs, subjects rotated each round.\n\n")
u = load("unpack")
if u:
    m = u["meta"]
    w(f"Slug: {m['slug_bytes'] / 1e6:.1f} MB gzip, {m['slug_zst_bytes'] / 1e6:.1f} MB zstd, "
      f"{m['entries']} entries, {m['unpacked_bytes'] / 1e6:.1f} MB unpacked; "
      f"{m['rounds']} rounds; {m.get('bsdtar_version', '')}.\n\n")
    by = {}
    for r in u["results"]:
        by.setdefault(r["subject"], []).append(r["seconds"])
    ref = {"dyno gzip (ISA-L)": "bsdtar -xzf", "dyno gzip (zlib)": "bsdtar -xzf",
           "dyno zstd": "bsdtar zstd"}
    w("| subject | median | min | max | ratio to the peer |\n|---|---|---|---|---|\n")
    for s, v in by.items():
        ratio = (f"{med(v) / med(by[ref[s]]):.2f}x {ref[s]}" if s in ref and ref[s] in by
                 else "")
        w(f"| {s} | {med(v) * 1000:.0f} ms | {min(v) * 1000:.0f} ms | {max(v) * 1000:.0f} ms "
          f"| {ratio} |\n")
    if "dyno gzip (ISA-L)" in by and "bsdtar -xzf" in by:
        r = med(by["dyno gzip (ISA-L)"]) / med(by["bsdtar -xzf"])
        marks.append(("gzip unpack <= 0.5x bsdtar -xzf", r <= 0.5, f"{r:.2f}x"))
    w("\n")
else:
    w("Not measured: " + " / ".join(failure("unpack")) + "\n\n")

# --- spawn
w("## Isolated start\n\n`tests/bench/spawn.sh`: launcher started -> the command running "
  "(`tests/bench/stamp` prints the time), sequential starts; bursts are back to back "
  "in one process, as a scale-up.\n\n")
sp = load("spawn")
if sp:
    m = sp.get("meta", {})
    w(f"{m.get('runs', '?')} starts per subject and mode; cgroup {m.get('cgroup', '?')}.\n\n")
    w("| subject | mode | start p50 | p90 | p99 | cycle p50 |\n|---|---|---|---|---|---|\n")
    rows = {}
    for r in sp["results"]:
        st = r.get("start_ms") or []
        cy = r.get("cycle_ms") or []
        rows[(r["subject"], r["mode"])] = st
        w(f"| {r['subject']} | {r['mode']} | {med(st):.2f} ms | {pct(st, 90):.2f} ms | "
          f"{pct(st, 99):.2f} ms | {med(cy):.2f} ms |\n" if cy else
          f"| {r['subject']} | {r['mode']} | {med(st):.2f} ms | {pct(st, 90):.2f} ms | "
          f"{pct(st, 99):.2f} ms | |\n")
    w("\n")
    bw = [v for (s, mo), v in rows.items() if s.startswith("bwrap")]
    bw_med = min((med(v) for v in bw), default=float("nan"))
    for (s, mo), v in rows.items():
        if s.startswith("dyno") and "pool" in s and "no pool" not in s:
            if mo == "burst":
                marks.append((f"{s}, bursts <= 2 ms median", med(v) <= 2.0, f"{med(v):.2f} ms"))
            else:
                marks.append((f"{s}, {mo}, below bwrap --unshare-all ({bw_med:.2f} ms)",
                              med(v) < bw_med, f"{med(v):.2f} ms"))
    data = {}
    for i, ((s, mo), v) in enumerate(sorted(rows.items())):
        if mo == "burst" or not v:
            continue
        xs = sorted(v)
        data[f"s{i}"] = [[x, (k + 1) / len(xs)] for k, x in enumerate(xs)]
    if data:
        names = {f"s{i}": f"{s} ({mo})" for i, ((s, mo), v) in enumerate(sorted(rows.items()))}
        script = ("set xlabel 'start (ms), log scale'\nset ylabel 'fraction of starts'\n"
                  "set logscale x\nset key outside right\nplot " +
                  ", ".join(f"'{{{k}}}' using 1:2 with lines lw 2 lc rgb '{COLORS[i % len(COLORS)]}' "
                            f"title '{names[k]}'" for i, k in enumerate(data)) + "\n")
        w(plot("start-latency", script, data, size="960,440"))
        w("\nStart latency, distribution of every start (one at a time).\n\n")
else:
    w("Not measured: " + " / ".join(failure("spawn")) + "\n\n")

# --- density
w("## Density: 10 apps x 100 web dynos\n\n`tests/bench/density.sh 10 100`: a real dynod "
  "and its router in a private network namespace; the ten apps scaled to 100 at once; "
  "every dyno must answer its own name through the router.\n\n")
d = load("density")
if d:
    r = d["results"]
    total = r["apps"] * r["per_app"]
    p = r["per_dyno_kib"]
    w("| measure | value |\n|---|---|\n")
    w(f"| all {total} up, from the scale | {r['all_up_s']:.2f} s |\n")
    w(f"| answered through the router | {r['answered']} / {total} |\n")
    w(f"| CPU to all up | dynod {r['cpu_to_all_up_s']['dynod']:.1f} s, router "
      f"{r['cpu_to_all_up_s']['router']:.1f} s |\n")
    w(f"| back to 0 dynos / everything cleaned up | {r['all_down_s']:.1f} s / "
      f"{r['all_cleaned_s']:.1f} s |\n")
    w(f"| host memory per idle dyno (MemTotal - MemAvailable) | {p['host']:.0f} KiB |\n")
    w(f"| of which kernel slab | {p['kernel_slab']:.0f} KiB |\n")
    w(f"| the dyno's cgroup (its namespaces' kernel memory included) | {p['cgroup']:.0f} KiB |\n")
    w(f"| init + app (Pss) | {p['init_and_app_pss']:.0f} KiB |\n")
    w(f"| dynod per dyno | {p['dynod']:.1f} KiB |\n")
    w(f"| router per backend | {p['router_per_backend']:.1f} KiB |\n")
    w(f"| router per idle client connection | {r['router_per_idle_conn_kib']:.2f} KiB |\n")
    w(f"| kernel 'neighbor table overflow' messages | {r['neighbour_overflow']} |\n\n")
    marks.append(("1000 dynos up in < 10 s", r["all_up_s"] < 10 and r["answered"] == total,
                  f"{r['all_up_s']:.1f} s, {r['answered']} answering"))
    marks.append(("dynod <= 16 KiB per dyno", p["dynod"] <= 16, f"{p['dynod']:.1f} KiB"))
    curve = r.get("curve", [])
    if curve:
        w(plot("density-up", "set xlabel 'seconds since the scale'\n"
               "set ylabel 'dynos up'\nplot '{up}' using 1:2 with lines lw 2 title 'dynos up'\n",
               {"up": [[c[0], c[1]] for c in curve]}))
        w("\nDynos up over time during the scale-up.\n\n")
        pts = [[c[1], c[2] / 1024 / c[1], c[3] / c[1]] for c in curve if c[1] >= 20]
        if pts:
            w(plot("density-memory", "set xlabel 'dynos up'\nset ylabel 'MiB of host memory "
                   "per dyno'\nset y2label 'KiB of dynod per dyno'\nset y2tics\n"
                   "plot '{m}' using 1:2 with lines lw 2 title 'host per dyno (MiB)', "
                   "'{m}' using 1:3 axes x1y2 with lines lw 2 title 'dynod per dyno (KiB)'\n",
                   {"m": pts}))
            w("\nMemory per dyno as dynos grow (sampled while they start: the host's "
              "figure includes dynos still booting).\n\n")
else:
    w("Not measured: " + " / ".join(failure("density")) + "\n\n")

# --- router
w("## Router: one HTTP/1.1 keep-alive hop\n\n`tests/bench/router.sh`: dyno-router (its "
  "log line on) against HAProxy and nginx (logs off) and the backend direct; the proxy "
  "alone on CPU 0, wrk and the backends on CPU 1; targets rotated each round.\n\n")
ro = load("router")
if ro:
    m = ro.get("meta", {})
    w(f"{m.get('duration_s', '?')} s per run, {m.get('rounds', '?')} rounds; "
      f"{m.get('layout', '')}\n\n")
    by = {}
    for r in ro["results"]:
        by.setdefault((r["conns"], r["body_bytes"], r["target"]), []).append(r)
    w("| connections | body | target | req/s | p50 | p99 | p99.9 | CPU/request | errors |\n"
      "|---|---|---|---|---|---|---|---|---|\n")
    summary = {}
    for (c, b, t), rs in sorted(by.items()):
        s = {k: med([r[k] for r in rs if r.get(k) is not None]) for k in
             ("rps", "p50_ms", "p99_ms", "p999_ms", "cpu_us_per_req")}
        s["errors"] = sum(r.get("errors", 0) for r in rs)
        summary[(c, b, t)] = s
        w(f"| {c} | {b} B | {t} | {s['rps']:,.0f} | {s['p50_ms']:.2f} ms | {s['p99_ms']:.2f} ms | "
          f"{s['p999_ms']:.2f} ms | {s['cpu_us_per_req']:.1f} us | {s['errors']} |\n")
    w("\n")
    for (c, b, t), s in summary.items():
        if t != "dyno-router":
            continue
        peers = [summary.get((c, b, x)) for x in ("haproxy", "nginx")]
        peers = [x for x in peers if x]
        if not peers:
            continue
        best = max(peers, key=lambda x: x["rps"])
        ratio = s["rps"] / best["rps"] if best["rps"] else float("nan")
        if b <= 64 and c in (64, 1000):
            marks.append((f"router {c} conns: >= 1.3x the better peer's req/s", ratio >= 1.3,
                          f"{ratio:.2f}x"))
            low = min(x["p99_ms"] for x in peers)
            marks.append((f"router {c} conns: p99 <= the peers'", s["p99_ms"] <= low,
                          f"{s['p99_ms']:.2f} ms vs {low:.2f} ms"))
            marks.append((f"router {c} conns: <= 9 us CPU per request", s["cpu_us_per_req"] <= 9,
                          f"{s['cpu_us_per_req']:.1f} us"))
        if b >= 65536:
            marks.append((f"router {c} conns, {b // 1024} KiB: no slower than the better peer",
                          ratio >= 1.0, f"{ratio:.2f}x"))
    for c in sorted({k[0] for k in by}):
        data, titles = {}, {}
        for t in ("dyno-router", "haproxy", "nginx", "direct"):
            rs = by.get((c, min(k[1] for k in by), t))
            if not rs or not rs[0].get("percentiles"):
                continue
            keys = sorted(rs[0]["percentiles"], key=float)
            data[t.replace("-", "")] = [[float(k), med([r["percentiles"][k] for r in rs])]
                                        for k in keys]
            titles[t.replace("-", "")] = t
        if data:
            script = ("set xlabel 'percentile'\nset ylabel 'latency (ms), log scale'\n"
                      # x: log10(100 / (100 - p)) - log10(2), so that 50 is 0
                      "set logscale y\nset xtics ('50' 0, '90' 0.699, '99' 1.699, "
                      "'99.9' 2.699, '99.99' 3.699)\n"
                      "plot " + ", ".join(
                          f"'{{{k}}}' using (log10(100/(100-$1))-log10(2)):2 with linespoints "
                          f"lw 2 title '{titles[k]}'" for k in data) + "\n")
            w(plot(f"router-latency-{c}", script, data))
            w(f"\nLatency percentiles at {c} connection{'s' if c != 1 else ''}, small "
              "responses.\n\n")
else:
    w("Not measured: " + " / ".join(failure("router")) + "\n\n")

# --- deploy
w("## Deploy to serving\n\n`tests/bench/deploy.sh 4`: `dyno deploy` of a 42 MB slug "
  "to the first 200 from the new release through the router, on a real dynod.\n\n")
de = load("deploy")
if de:
    t = [r["first_200_s"] for r in de["results"]]
    c = [r["cli_s"] for r in de["results"]]
    w(f"| rounds | deploy -> first 200 | `dyno deploy` returned |\n|---|---|---|\n"
      f"| {len(t)} | {med(t):.3f} s (min {min(t):.3f}, max {max(t):.3f}) | {med(c):.3f} s |\n\n")
else:
    w("Not measured: " + " / ".join(failure("deploy")) + "\n\n")

# --- marks
w("## The marks\n\n| mark | this run | |\n|---|---|---|\n")
for what, ok, fig in marks:
    w(f"| {what} | {fig} | {mark(ok)} |\n")
w("\nWhat a missed mark's profile showed, and what is left, is in docs/benchmarks.md.\n")

os.makedirs(os.path.dirname(OUT) or ".", exist_ok=True)
with open(OUT, "w") as f:
    f.write("".join(out))
print(f"report.py: wrote {OUT} ({len(marks)} marks, "
      f"{sum(1 for m in marks if m[1])} met)")
