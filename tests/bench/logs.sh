#!/bin/bash
# Log intake benchmark: lines per second through dynod's intake with 100
# senders imitating dyno-init (tests/bench/logflood.c: non-blocking
# datagrams "TS app[web.N]: ...", waiting for POLLOUT on EAGAIN), 10 apps of
# 10 senders each, for SECONDS. A real dynod (DYNOD_NO_LAUNCHER=1: the API
# and the intake, no dyno; started twice, so that the second binds a sink
# for each app made by the first) in a private network namespace, whose
# net.unix.max_dgram_qlen is set to QLEN (the kernel's default is 10,
# systemd's 512): it bounds each sink's queue.
# Reports the senders' figures, then whether every app's last line reached
# its log, dynod's CPU time and its RSS.
# usage: tests/bench/logs.sh [SECONDS] [LINE_BYTES] [QLEN]   (default 5, 120, 10)
set -euo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-5}
LEN=${2:-120}
QLEN=${3:-10}
B=$(realpath "${DYNO_BUILD:-build}")
[ -x "$B/bin/dynod" ] && [ -x "$B/tests/bench/logflood" ] || {
	echo "logs.sh: build first ($B)" >&2
	exit 1
}
work=$(mktemp -d /tmp/dyno-bench-logs.XXXXXX)
trap 'rm -rf "$work"' EXIT
echo "{\"state_dir\": \"$work/state\", \"api_socket\": \"$work/api.sock\", \"api_group\": \"root\"," \
	"\"router\": {\"external\": true}}" >"$work/dynod.json"

timeout -k 5 $((SECS + 60)) unshare -n bash -s "$B" "$work" "$SECS" "$LEN" "$QLEN" <<'SH'
set -euo pipefail
B=$1 work=$2 SECS=$3 LEN=$4 QLEN=$5
ip link set lo up
echo "$QLEN" >/proc/sys/net/unix/max_dgram_qlen
export DYNOD_NO_LAUNCHER=1 DYNO_API=$work/api.sock
start() {
	"$B/bin/dynod" --config "$work/dynod.json" 2>>"$work/dynod.log" &
	pid=$!
	for _ in $(seq 100); do [ -S "$work/api.sock" ] && "$B/bin/dyno" apps >/dev/null 2>&1 && return; sleep 0.05; done
	echo "dynod did not start" >&2; cat "$work/dynod.log" >&2; exit 1
}
start
for a in $(seq 10); do "$B/bin/dyno" apps:create "bench$a" >/dev/null; done
kill -TERM $pid; wait $pid
start
sinks=()
for a in $(seq 10); do for _ in $(seq 10); do sinks+=("$work/state/sinks/bench$a/log.sock"); done; done
t0=$(awk '{print $14 + $15}' /proc/$pid/stat)
"$B/tests/bench/logflood" "$SECS" "$LEN" "${sinks[@]}"
sleep 0.5
t1=$(awk '{print $14 + $15}' /proc/$pid/stat)
ok=0
for a in $(seq 10); do
	"$B/bin/dyno" logs -n 1 -a "bench$a" | grep -q "app\[web" && ok=$((ok + 1))
done
echo "apps with lines: $ok/10; dynod cpu: $(( (t1 - t0) * 1000 / $(getconf CLK_TCK) )) ms;" \
	"rss: $(awk '/VmRSS/{print $2 " " $3}' /proc/$pid/status);" \
	"on disk: $(du -sh "$work/state/apps" | cut -f1)"
kill -TERM $pid; wait $pid
SH
