#!/bin/bash
# Slug unpack benchmark: dyno slugs:unpack vs bsdtar -xzf on the same
# ~45 MB slug of ~5800 files, alternated in one run, each into a fresh
# directory on a private tmpfs (the set-up of docs/benchmarks.md).
# usage: tests/bench/unpack.sh [ROUNDS]   (default 7; needs root for the tmpfs)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-7}
scripts/install-deps bench
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null

work=$(mktemp -d /tmp/dyno-bench-unpack.XXXXXX)
cleanup() {
	umount "$work/fs" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/fs"
mount -t tmpfs -o size=2G tmpfs "$work/fs"

/usr/bin/python3 - "$work" "$ROUNDS" "$PWD/build/bin/dyno" <<'PY'
import os, random, shutil, statistics, subprocess, sys, tarfile, time
work, rounds, dyno = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rng = random.Random(42)
src = os.path.join(work, "src")
os.makedirs(src)
words = [("%x" % rng.getrandbits(24)) for _ in range(600)]
nfiles = 5800
for i in range(nfiles):
    d = os.path.join(src, "pkg%03d" % (i % 60), "mod%02d" % (i % 4))
    os.makedirs(d, exist_ok=True)
    size = int(rng.lognormvariate(9.4, 1.2))
    size = min(size, 2_000_000)
    if i % 16 == 0:  # binary-ish: compresses poorly
        data = rng.randbytes(size)
    else:            # source-ish text
        out, n = [], 0
        while n < size:
            w = rng.choice(words); out.append(w); n += len(w) + 1
        data = " ".join(out).encode()[:size]
    with open(os.path.join(d, "f%05d.dat" % i), "wb") as f:
        f.write(data)
with open(os.path.join(src, "Procfile"), "w") as f:
    f.write("web: ./server\n")
slug = os.path.join(work, "bench.tgz")
subprocess.run([dyno, "slugs:create", src, "-o", slug], check=True, capture_output=True)
shutil.rmtree(src)
with tarfile.open(slug) as tf:
    members = tf.getmembers()
unpacked = sum(m.size for m in members)
print(f"slug: {os.path.getsize(slug)/1e6:.1f} MB gzip, {len(members)} entries, "
      f"{unpacked/1e6:.1f} MB unpacked; target: tmpfs; rounds: {rounds}")

fs = os.path.join(work, "fs")
def run_dyno(dst):
    subprocess.run([dyno, "slugs:unpack", slug, dst], check=True, capture_output=True)
def run_bsdtar(dst):
    os.mkdir(dst)
    subprocess.run(["bsdtar", "-xzf", slug, "-C", dst], check=True, capture_output=True)
tools = [("dyno", run_dyno), ("bsdtar", run_bsdtar)]
times = {name: [] for name, _ in tools}
for r in range(rounds + 1):          # round 0 warms the page cache
    order = tools if r % 2 == 0 else tools[::-1]
    for name, fn in order:
        dst = os.path.join(fs, f"{name}-{r}")
        t0 = time.perf_counter()
        fn(dst)
        t = time.perf_counter() - t0
        if r > 0:
            times[name].append(t)
        shutil.rmtree(dst)
med = {n: statistics.median(v) for n, v in times.items()}
for n, v in times.items():
    print(f"{n:7s} median {med[n]*1000:7.1f} ms  min {min(v)*1000:7.1f}  max {max(v)*1000:7.1f}")
print(f"ratio dyno/bsdtar (median): {med['dyno']/med['bsdtar']:.3f}")
PY
