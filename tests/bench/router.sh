#!/bin/bash
# The router benchmark of docs/benchmarks.md: wrk against the backend directly,
# dyno-router (its log line on), HAProxy and nginx, at several connection
# counts and response sizes. Each proxy alone on CPU 0, wrk and the two
# backends on CPU 1, all in a private network namespace whose listen
# backlogs are raised (net.core.somaxconn is per namespace: the host's stays
# as it is). Rounds rotate the order of the targets; the table gives medians
# of req/s, p50, p99, p99.9 and the CPU time per request of the process
# under test (utime+stime from /proc/PID/stat over the requests it served).
#
# usage: tests/bench/router.sh [-d SECONDS] [-w WARMUP] [-r ROUNDS]
#                              [-c CONNS[,CONNS..]] [-s BYTES[,BYTES..]]
#        defaults: -d 3 -w 1 -r 3 -c 1,64,1000 -s 6,65536: 72 runs of 3 s,
#        a 1 s warm-up before the first round of each, ~4 min in all
# env:   DYNO_BUILD (default: build), PORT_BASE (default 19100),
#        DYNO_BUILD_B: a second build whose dyno-router joins the rounds as
#        "router-B" (an A/B of two builds, alternated with the peers),
#        BENCH_JSON=PATH: also write the results there as JSON.
set -euo pipefail
SELF=$(readlink -f "$0")
[ -z "${BENCH_JSON:-}" ] || BENCH_JSON=$(readlink -m "$BENCH_JSON")
cd "$(dirname "$SELF")/../.."
BUILD=${DYNO_BUILD:-build}
DURATION=3
WARMUP=1
ROUNDS=3
CONNS_LIST=1,64,1000
SIZES=6,65536
usage() {
	echo "usage: $0 [-d SECONDS] [-w WARMUP] [-r ROUNDS] [-c CONNS,..] [-s BYTES,..]" >&2
	exit 2
}
ARGS=("$@")
while getopts d:w:r:c:s: o; do
	case $o in
	d) DURATION=$OPTARG ;;
	w) WARMUP=$OPTARG ;;
	r) ROUNDS=$OPTARG ;;
	c) CONNS_LIST=$OPTARG ;;
	s) SIZES=$OPTARG ;;
	*) usage ;;
	esac
done
IFS=, read -ra CONNS_ALL <<<"$CONNS_LIST"
IFS=, read -ra SIZES_ALL <<<"$SIZES"
for v in "$DURATION" "$WARMUP" "$ROUNDS" "${CONNS_ALL[@]}" "${SIZES_ALL[@]}"; do
	[[ $v =~ ^[0-9]+$ ]] || { echo "router.sh: not a whole number: '$v'" >&2; usage; }
done
for s in "${SIZES_ALL[@]}"; do
	((s >= 1 && s <= 1048576)) || { echo "router.sh: body size $s outside 1..1048576 (echo-backend)" >&2; exit 2; }
done
for tool in wrk haproxy nginx taskset unshare ip sysctl; do
	command -v $tool >/dev/null || { echo "router.sh: $tool missing (scripts/install-deps bench)" >&2; exit 1; }
done
[ -x "$BUILD/bin/dyno-router" ] && [ -x "$BUILD/tests/bench/echo-backend" ] ||
	{ echo "router.sh: build $BUILD first" >&2; exit 1; }

# A private network namespace: its own loopback and its own
# net.core.somaxconn / tcp_max_syn_backlog, raised so 1000 connections
# opened at once are all queued, not dropped (a dropped SYN is retried after
# a second: the 1 s "p99" of an unsound setup).
if [ -z "${DYNO_BENCH_NETNS:-}" ]; then
	exec env DYNO_BENCH_NETNS=1 unshare -n -- "$SELF" "${ARGS[@]}"
fi
ip link set lo up
sysctl -qw net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535 \
	net.ipv4.ip_local_port_range="1024 65535"
# Every process started here inherits the hard limit on open files: a proxy
# holds two per client (1000 clients: 2000+, past the usual soft 1024).
ulimit -n "$(ulimit -Hn)"
NOFILE=$(ulimit -n)
maxc=0
for c in "${CONNS_ALL[@]}"; do ((c > maxc)) && maxc=$c; done
((NOFILE > 2 * maxc + 100)) ||
	{ echo "router.sh: open files limit $NOFILE is too low for $maxc connections" >&2; exit 1; }

P=${PORT_BASE:-19100}
B1=$((P + 1)) B2=$((P + 2)) ROUTER=$((P + 10)) ADMIN=$((P + 11)) HAPROXY=$((P + 20)) NGINX=$((P + 30))
ROUTER_B=$((P + 40)) ADMIN_B=$((P + 41))
BUILD_B=${DYNO_BUILD_B:-}
[ -z "$BUILD_B" ] || [ -x "$BUILD_B/bin/dyno-router" ] ||
	{ echo "router.sh: no $BUILD_B/bin/dyno-router" >&2; exit 1; }
WORK=$(mktemp -d /tmp/dyno-bench.XXXXXX)
PIDS=()
cleanup() {
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK" "${LOGDIR:-}"
}
trap cleanup EXIT

taskset -c 1 "$BUILD/tests/bench/echo-backend" $B1 & PIDS+=($!); BACKEND_PID=$!
taskset -c 1 "$BUILD/tests/bench/echo-backend" $B2 & PIDS+=($!)

# dyno-router. Its per-dyno bounds (docs/router.md, "Limits") are raised
# for the benchmark: by default two dynos take 50 requests each in flight
# and 50 more each in their queues, and the 201st of 1000 clients gets H11
# and a closed connection. HAProxy and nginx here have no such bound.
cat >"$WORK/dynod.json" <<EOF
{"state_dir": "$WORK", "router": {"listen": "127.0.0.1:$ROUTER", "admin_listen": "127.0.0.1:$ADMIN",
 "max_inflight_per_dyno": 1000, "queue_per_dyno": 1000}}
EOF
cat >"$WORK/routes.json" <<EOF
{"version": 1, "apps": [{"name": "bench", "hosts": [], "state": "up", "keepalive": true,
 "health_path": null, "backends": [
  {"dyno": "web.1", "addr": "127.0.0.1:$B1", "draining": false},
  {"dyno": "web.2", "addr": "127.0.0.1:$B2", "draining": false}]}]}
EOF
# stdout (the router log lines) goes to a file in tmpfs, as to journald or
# a pipe: on this VM's ext4 /tmp, writeback of the ~600 MB a run writes adds
# stalls that belong to the disk, not to the router. It is opened for
# appending, so it can be emptied between runs. The log intake is absent, so
# lines are also dropped and counted there, as when dynod is away.
LOGDIR=$(mktemp -d /dev/shm/dyno-bench.XXXXXX)
taskset -c 0 "$BUILD/bin/dyno-router" --config "$WORK/dynod.json" >>"$LOGDIR/router.log" 2>"$WORK/router.err" &
PIDS+=($!); ROUTER_PID=$!
if [ -n "$BUILD_B" ]; then
	mkdir "$WORK/b"
	sed "s/$ROUTER/$ROUTER_B/; s/$ADMIN/$ADMIN_B/; s#\"state_dir\": \"$WORK\"#\"state_dir\": \"$WORK/b\"#" \
		"$WORK/dynod.json" >"$WORK/b/dynod.json"
	cp "$WORK/routes.json" "$WORK/b/routes.json"
	taskset -c 0 "$BUILD_B/bin/dyno-router" --config "$WORK/b/dynod.json" >>"$LOGDIR/router-b.log" \
		2>"$WORK/router-b.err" &
	PIDS+=($!); ROUTER_B_PID=$!
fi

# HAProxy 2.6: maxconn bounds each frontend too (and the listen backlog,
# given explicitly here)
cat >"$WORK/haproxy.cfg" <<EOF
global
	nbthread 1
	maxconn 8000
defaults
	mode http
	maxconn 8000
	timeout connect 5s
	timeout client 60s
	timeout server 60s
	option http-keep-alive
	http-reuse safe
frontend fe
	bind 127.0.0.1:$HAPROXY backlog 65535
	default_backend be
backend be
	balance roundrobin
	server s1 127.0.0.1:$B1
	server s2 127.0.0.1:$B2
EOF
taskset -c 0 haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
PIDS+=($!); HAPROXY_PID=$!

# nginx 1.22: one process (no master) so that its CPU time is one /proc
# entry. Its listen backlog defaults to 511 and its worker_connections to
# 512 (clients and upstream connections together): both raised.
mkdir -p "$WORK/nginx/logs"
cat >"$WORK/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile $NOFILE;
error_log $WORK/nginx/logs/error.log;
pid $WORK/nginx/nginx.pid;
events { worker_connections 10000; }
http {
	access_log off;
	keepalive_requests 1000000;
	client_body_temp_path $WORK/nginx/body;
	proxy_temp_path $WORK/nginx/proxy;
	upstream be {
		server 127.0.0.1:$B1;
		server 127.0.0.1:$B2;
		keepalive 1024;
		keepalive_requests 1000000;
	}
	server {
		listen 127.0.0.1:$NGINX backlog=65535;
		location / {
			proxy_pass http://be;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
	}
}
EOF
taskset -c 0 nginx -p "$WORK/nginx" -c "$WORK/nginx.conf" >"$WORK/nginx.out" 2>&1 &
PIDS+=($!); NGINX_PID=$!

sleep 1
for port in $B1 $ROUTER $HAPROXY $NGINX ${BUILD_B:+$ROUTER_B}; do
	curl -sf -o /dev/null -H "Host: bench.localhost" "http://127.0.0.1:$port/" ||
		{ echo "router.sh: nothing answers on port $port" >&2; cat "$WORK"/*.err "$WORK"/*.log >&2; exit 1; }
done

# wrk's done() prints the numbers the table and the JSON need: latency
# percentiles (microseconds) and the error counts.
cat >"$WORK/report.lua" <<'EOF'
done = function(summary, latency, requests)
	local e = summary.errors
	io.write(string.format("BENCH requests %d duration_us %d errors %d\n", summary.requests,
		summary.duration, e.connect + e.read + e.write + e.status + e.timeout))
	io.write(string.format("BENCH errors_by connect=%d read=%d write=%d status=%d timeout=%d\n",
		e.connect, e.read, e.write, e.status, e.timeout))
	for _, p in ipairs({50, 75, 90, 99, 99.9, 99.99}) do
		io.write(string.format("BENCH pct %g %d\n", p, latency:percentile(p)))
	end
end
EOF

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)
WRK=(taskset -c 1 wrk -t1 --timeout 10s -H "Host: bench.localhost")

run_one() { # name port pid conns size round
	local name=$1 port=$2 pid=$3 conns=$4 size=$5 round=$6 path=/
	[ "$size" = 6 ] || path=/$size
	local url=http://127.0.0.1:$port$path
	# a warm-up in the first round of each combination: the proxy's pool
	# of backend connections and its buffers stay from one round to the
	# next (each measured run still opens its connections afresh)
	[ "$round" != 1 ] || [ "$WARMUP" = 0 ] || "${WRK[@]}" -c"$conns" -d"${WARMUP}s" "$url" >/dev/null
	case $name in
	dyno-router) : >"$LOGDIR/router.log" ;;
	router-B) : >"$LOGDIR/router-b.log" ;;
	esac
	local c0; c0=$(cpu_ticks "$pid")
	local out; out=$("${WRK[@]}" -c"$conns" -d"${DURATION}s" -s "$WORK/report.lua" "$url")
	local c1; c1=$(cpu_ticks "$pid")
	local reqs dur errs by pct rps cpu_us logged=
	read -r reqs dur errs < <(awk '$1 == "BENCH" && $2 == "requests" {print $3, $5, $7}' <<<"$out")
	[ "${reqs:-0}" -gt 0 ] ||
		{ echo "router.sh: $name answered nothing ($conns connections, $size bytes): $out" >&2; exit 1; }
	by=$(awk '$2 == "errors_by" {print $3, $4, $5, $6, $7}' <<<"$out")
	# p50 p75 p90 p99 p99.9 p99.99 in ms
	pct=$(awk '$2 == "pct" {printf "%.3f ", $4 / 1000}' <<<"$out")
	rps=$(awk -v n="$reqs" -v d="$dur" 'BEGIN { printf "%.0f", n / (d / 1e6) }')
	cpu_us=$(awk -v d=$((c1 - c0)) -v t="$TICK" -v n="$reqs" 'BEGIN { printf "%.2f", d / t * 1e6 / n }')
	case $name in
	dyno-router) logged=$(wc -l <"$LOGDIR/router.log") ;;
	router-B) logged=$(wc -l <"$LOGDIR/router-b.log") ;;
	esac
	# name conns size round rps cpu errors p50 p75 p90 p99 p99.9 p99.99
	echo "$name $conns $size $round $rps $cpu_us $errs $pct" >>"$WORK/results"
	# shellcheck disable=SC2086 # the percentiles, one word each
	set -- $pct
	printf '  %-12s %5s conns %6s B %8s req/s  p50 %7s  p99 %7s  p99.9 %7s ms  cpu %6s us/req%s%s\n' \
		"$name" "$conns" "$size" "$rps" "$1" "$4" "$5" "$cpu_us" \
		"$([ "$errs" = 0 ] || echo "  errors $errs: $by")" "${logged:+  ($logged log lines)}" >&2
}

targets=("direct $B1 $BACKEND_PID" "dyno-router $ROUTER $ROUTER_PID" "haproxy $HAPROXY $HAPROXY_PID" "nginx $NGINX $NGINX_PID")
names=(direct dyno-router haproxy nginx)
if [ -n "$BUILD_B" ]; then
	targets+=("router-B $ROUTER_B $ROUTER_B_PID")
	names+=(router-B)
	echo "dyno-router: $BUILD, router-B: $BUILD_B" >&2
fi
START=$SECONDS
for conns in "${CONNS_ALL[@]}"; do
	for size in "${SIZES_ALL[@]}"; do
		for ((round = 0; round < ROUNDS; round++)); do
			echo "$conns connections, $size-byte bodies, round $((round + 1))/$ROUNDS" >&2
			for ((k = 0; k < ${#targets[@]}; k++)); do
				t=${targets[$(((k + round) % ${#targets[@]}))]}
				# shellcheck disable=SC2086
				run_one $t "$conns" "$size" $((round + 1))
			done
		done
	done
done

LAYOUT="proxy alone on CPU 0; wrk -t1 and two echo-backends on CPU 1; private netns, somaxconn 65535, open files $NOFILE"
echo
echo "wrk -t1 -d${DURATION}s (a ${WARMUP}s warm-up before round 1), $ROUNDS rounds (medians), $((SECONDS - START)) s in all"
echo "$LAYOUT; dyno-router with its log line on"
echo
echo "| conns | body | target | req/s | p50 ms | p99 ms | p99.9 ms | CPU per request | errors |"
echo "|---|---|---|---|---|---|---|---|---|"
median() { # name conns size column
	awk -v n="$1" -v c="$2" -v s="$3" -v k="$4" '$1 == n && $2 == c && $3 == s {print $k}' "$WORK/results" |
		sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'
}
for conns in "${CONNS_ALL[@]}"; do
	for size in "${SIZES_ALL[@]}"; do
		for name in "${names[@]}"; do
			errs=$(awk -v n="$name" -v c="$conns" -v s="$size" '$1 == n && $2 == c && $3 == s {e += $7} END {print e + 0}' "$WORK/results")
			printf '| %s | %s | %s | %.0f | %.3f | %.3f | %.3f | %.2f us%s | %s |\n' "$conns" "$size" "$name" \
				"$(median $name $conns $size 5)" "$(median $name $conns $size 8)" \
				"$(median $name $conns $size 11)" "$(median $name $conns $size 12)" \
				"$(median $name $conns $size 6)" "$([ $name = direct ] && echo ' (backend)')" "$errs"
		done
	done
done

# dyno-router against the better peer of each combination (medians)
echo
echo "| conns | body | dyno-router / better peer: req/s | p99 | CPU per request |"
echo "|---|---|---|---|---|"
for conns in "${CONNS_ALL[@]}"; do
	for size in "${SIZES_ALL[@]}"; do
		read -r dr dp dc < <(echo "$(median dyno-router $conns $size 5) $(median dyno-router $conns $size 11) $(median dyno-router $conns $size 6)")
		read -r hr hp hc < <(echo "$(median haproxy $conns $size 5) $(median haproxy $conns $size 11) $(median haproxy $conns $size 6)")
		read -r nr np nc < <(echo "$(median nginx $conns $size 5) $(median nginx $conns $size 11) $(median nginx $conns $size 6)")
		awk -v c="$conns" -v s="$size" -v dr="$dr" -v dp="$dp" -v dc="$dc" -v hr="$hr" -v hp="$hp" \
			-v hc="$hc" -v nr="$nr" -v np="$np" -v nc="$nc" 'BEGIN {
			if (hr >= nr) { peer = "haproxy"; r = hr; p = hp; u = hc } else { peer = "nginx"; r = nr; p = np; u = nc }
			printf "| %s | %s | %.2fx (%s) | %.3f vs %.3f ms | %.2f vs %.2f us |\n", c, s, dr / r, peer, dp, p, dc, u
		}'
	done
done

if [ -n "${BENCH_JSON:-}" ]; then
	META_HAPROXY=$(haproxy -v | awk 'NR == 1 {print $3}') META_NGINX=$(nginx -v 2>&1 | sed 's#.*nginx/##') \
	META_WRK=$(wrk -v 2>&1 | awk 'NR == 1 {print $2}') META_LAYOUT="$LAYOUT" \
	DURATION=$DURATION ROUNDS=$ROUNDS WARMUP=$WARMUP \
		/usr/bin/python3 - "$WORK/results" "$BENCH_JSON" <<'EOF'
import json, os, sys
rows = []
for line in open(sys.argv[1]):
    f = line.split()
    pct = dict(zip(["50", "75", "90", "99", "99.9", "99.99"], map(float, f[7:13])))
    rows.append({"target": f[0], "conns": int(f[1]), "body_bytes": int(f[2]), "round": int(f[3]),
                 "rps": float(f[4]), "p50_ms": pct["50"], "p99_ms": pct["99"], "p999_ms": pct["99.9"],
                 "cpu_us_per_req": float(f[5]), "errors": int(f[6]), "percentiles": pct})
e = os.environ
meta = {"duration_s": int(e["DURATION"]), "warmup_s": int(e["WARMUP"]), "rounds": int(e["ROUNDS"]),
        "layout": e["META_LAYOUT"], "haproxy": e["META_HAPROXY"], "nginx": e["META_NGINX"], "wrk": e["META_WRK"]}
with open(sys.argv[2], "w") as out:
    json.dump({"bench": "router", "meta": meta, "results": rows}, out, indent=1)
    out.write("\n")
EOF
	echo "router.sh: results in $BENCH_JSON" >&2
fi
