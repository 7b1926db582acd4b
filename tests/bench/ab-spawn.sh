#!/bin/bash
# A/B of dyno starts between builds, alternated so that the host's drift
# (a shared VM's speed moves by the hour) hits both alike:
#   tests/bench/ab-spawn.sh [-r ROUNDS] [-n N] [-m burst|repeat] BUILD_DIR...
#   burst:  `dyno-launch --burst N -- sleep 600`: N dynos started back to
#           back and staying up (a scale-up), start median per round
#   repeat: `dyno-launch --repeat N -- /app/stamp`: one at a time (each
#           torn down before the next), start median per round
# Prints per build the median of the rounds' medians and each round's.
# Root; each round in its own network namespace (`unshare -n`, lo up).
# Build an older commit for comparison with e.g.
#   git worktree add --detach /tmp/ab-old REV && meson setup /tmp/ab-old/build /tmp/ab-old
set -euo pipefail
rounds=5 n=40 mode=burst
while getopts r:n:m: o; do
	case $o in
	r) rounds=$OPTARG ;;
	n) n=$OPTARG ;;
	m) mode=$OPTARG ;;
	*) exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || { echo "usage: $0 [-r ROUNDS] [-n N] [-m burst|repeat] BUILD_DIR..." >&2; exit 2; }
here=$(cd "$(dirname "$0")/../.." && pwd)
for b in "$@"; do
	ninja -C "$b" bin/dyno-launch bin/dyno-init tests/bench/stamp >/dev/null
done
work=$(mktemp -d /tmp/dyno-ab.XXXXXX)
parent=dyno-ab-$$
cleanup() {
	rm -rf "$work"
	for d in /sys/fs/cgroup/*/"$parent"; do rmdir "$d" 2>/dev/null || true; done
}
trap cleanup EXIT
chmod 755 "$work"
mkdir "$work/slug"
cp "$1/tests/bench/stamp" "$work/slug/"
chown -R 29999:29999 "$work/slug"
case $mode in
burst) args=(--grace 1 --burst "$n" -- "sleep 600") ;;
repeat) args=(--repeat "$n" -- /app/stamp) ;;
*) echo "mode: burst or repeat" >&2; exit 2 ;;
esac
for r in $(seq "$rounds"); do
	for b in "$@"; do
		out=$(unshare -n sh -c 'ip link set lo up; exec "$@"' sh "$b/bin/dyno-launch" \
			--slug-dir "$work/slug" --uid 29999 --name ab.1 --id "ab$$-$r" \
			--cgroup-parent "$parent" "${args[@]}" 2>/dev/null | tail -1)
		echo "$b $(echo "$out" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["start_median_us"])')"
	done
done | /usr/bin/python3 -c '
import collections, statistics, sys
d = collections.defaultdict(list)
for line in sys.stdin:
    b, us = line.split()
    d[b].append(int(us))
for b, v in d.items():
    print(f"{b}: median of {len(v)} rounds {statistics.median(v) / 1000:.2f} ms, rounds (us) {v}")
'
