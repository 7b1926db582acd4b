#!/bin/bash
# Slug unpack benchmark: dyno slugs:unpack vs bsdtar on the same ~45 MB
# slug of ~5800 files, as .tgz and as .tar.zst, the subjects alternated
# (rotated) each round, each into a fresh directory on a private tmpfs (the
# set-up of docs/benchmarks.md): dyno gzip (ISA-L), dyno gzip with the zlib
# fallback (DYNO_GUNZIP=zlib), bsdtar -xzf, dyno zstd, bsdtar on the zstd.
# usage: tests/bench/unpack.sh [ROUNDS]   (default 7; needs root for the tmpfs)
# BENCH_JSON=PATH also writes the results as JSON there (docs/benchmarks.md).
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
import json, os, random, shutil, statistics, subprocess, sys, tarfile, time
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
zslug = os.path.join(work, "bench.tar.zst")
subprocess.run([dyno, "slugs:create", src, "-o", slug, "--compression", "gzip"],
               check=True, capture_output=True)
subprocess.run([dyno, "slugs:create", src, "-o", zslug, "--compression", "zstd"],
               check=True, capture_output=True)
shutil.rmtree(src)
with tarfile.open(slug) as tf:
    members = tf.getmembers()
unpacked = sum(m.size for m in members)
slug_bytes, zst_bytes = os.path.getsize(slug), os.path.getsize(zslug)
bsdtar_version = subprocess.run(["bsdtar", "--version"], check=True, capture_output=True,
                                text=True).stdout.strip()
print(f"slug: {slug_bytes/1e6:.1f} MB gzip ({zst_bytes/1e6:.1f} MB zstd), {len(members)} "
      f"entries, {unpacked/1e6:.1f} MB unpacked; target: tmpfs; rounds: {rounds}")
print(bsdtar_version)

fs = os.path.join(work, "fs")
zlib_env = dict(os.environ, DYNO_GUNZIP="zlib")
isal_env = {k: v for k, v in os.environ.items() if k != "DYNO_GUNZIP"}
def dyno_unpack(file, env):
    def run(dst):
        subprocess.run([dyno, "slugs:unpack", file, dst], check=True, capture_output=True,
                       env=env)
    return run
def bsdtar(flags, file):
    def run(dst):
        os.mkdir(dst)
        subprocess.run(["bsdtar", flags, file, "-C", dst], check=True, capture_output=True)
    return run
tools = [("dyno gzip (ISA-L)", dyno_unpack(slug, isal_env)),
         ("dyno gzip (zlib)", dyno_unpack(slug, zlib_env)),
         ("bsdtar -xzf", bsdtar("-xzf", slug)),
         ("dyno zstd", dyno_unpack(zslug, isal_env)),
         ("bsdtar zstd", bsdtar("-xf", zslug))]
times = {name: [] for name, _ in tools}
results = []
for r in range(rounds + 1):          # round 0 warms the page cache
    k = r % len(tools)
    order = tools[k:] + tools[:k]    # each subject takes each place in turn
    for i, (name, fn) in enumerate(order):
        dst = os.path.join(fs, f"s{i}-{r}")
        t0 = time.perf_counter()
        fn(dst)
        t = time.perf_counter() - t0
        if r > 0:
            times[name].append(t)
            results.append({"subject": name, "round": r, "seconds": round(t, 4)})
        shutil.rmtree(dst)
med = {n: statistics.median(v) for n, v in times.items()}
for n, v in times.items():
    print(f"{n:18s} median {med[n]*1000:7.1f} ms  min {min(v)*1000:7.1f}  max {max(v)*1000:7.1f}")
print(f"ratio dyno gzip (ISA-L)/bsdtar -xzf (median): "
      f"{med['dyno gzip (ISA-L)']/med['bsdtar -xzf']:.3f}")
print(f"ratio dyno gzip (zlib)/bsdtar -xzf (median): "
      f"{med['dyno gzip (zlib)']/med['bsdtar -xzf']:.3f}")
print(f"ratio dyno zstd/bsdtar zstd (median): {med['dyno zstd']/med['bsdtar zstd']:.3f}")
out = os.environ.get("BENCH_JSON")
if out:
    doc = {"bench": "unpack",
           "meta": {"slug_bytes": slug_bytes, "slug_zst_bytes": zst_bytes,
                    "entries": len(members), "unpacked_bytes": unpacked, "target": "tmpfs",
                    "rounds": rounds, "bsdtar_version": bsdtar_version},
           "results": results}
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
PY
