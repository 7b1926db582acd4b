#!/bin/bash
# The router benchmark of docs/benchmarks.md: wrk against the backend directly,
# dyno-router (its log line on), HAProxy and nginx, each proxy alone on
# CPU 0, wrk and the two backends on CPU 1. Rounds rotate the order of the
# targets; the table gives medians of req/s, p50, p99 and the CPU time per
# request of the process under test (utime+stime from /proc/PID/stat).
#
# usage: tests/bench/router.sh [-d SECONDS] [-r ROUNDS] [-c CONNECTIONS]
# env:   DYNO_BUILD (default: build), PORT_BASE (default 19100),
#        DYNO_BUILD_B: a second build whose dyno-router joins the rounds as
#        "router-B" (an A/B of two builds, alternated with the peers)
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${DYNO_BUILD:-build}
DURATION=8
ROUNDS=3
CONNS=64
WARMUP=2
while getopts d:r:c: o; do
	case $o in
	d) DURATION=$OPTARG ;;
	r) ROUNDS=$OPTARG ;;
	c) CONNS=$OPTARG ;;
	*) echo "usage: $0 [-d SECONDS] [-r ROUNDS] [-c CONNECTIONS]" >&2; exit 2 ;;
	esac
done
for tool in wrk haproxy nginx taskset; do
	command -v $tool >/dev/null || { echo "router.sh: $tool missing (scripts/install-deps bench)" >&2; exit 1; }
done
[ -x "$BUILD/bin/dyno-router" ] && [ -x "$BUILD/tests/bench/echo-backend" ] ||
	{ echo "router.sh: build $BUILD first" >&2; exit 1; }

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

# dyno-router
cat >"$WORK/dynod.json" <<EOF
{"state_dir": "$WORK", "router": {"listen": "127.0.0.1:$ROUTER", "admin_listen": "127.0.0.1:$ADMIN"}}
EOF
cat >"$WORK/routes.json" <<EOF
{"version": 1, "apps": [{"name": "bench", "hosts": [], "state": "up", "keepalive": true,
 "health_path": null, "backends": [
  {"dyno": "web.1", "addr": "127.0.0.1:$B1", "draining": false},
  {"dyno": "web.2", "addr": "127.0.0.1:$B2", "draining": false}]}]}
EOF
# stdout (the router log lines) goes to a file in tmpfs, as to journald or
# a pipe: on this VM's ext4 /tmp, writeback of the ~600 MB a run writes adds
# stalls that belong to the disk, not to the router. The log intake is
# absent, so lines are also dropped and counted there, as when dynod is away.
LOGDIR=$(mktemp -d /dev/shm/dyno-bench.XXXXXX)
taskset -c 0 "$BUILD/bin/dyno-router" --config "$WORK/dynod.json" >"$LOGDIR/router.log" 2>"$WORK/router.err" &
PIDS+=($!); ROUTER_PID=$!
if [ -n "$BUILD_B" ]; then
	mkdir "$WORK/b"
	sed "s/$ROUTER/$ROUTER_B/; s/$ADMIN/$ADMIN_B/; s#\"state_dir\": \"$WORK\"#\"state_dir\": \"$WORK/b\"#" \
		"$WORK/dynod.json" >"$WORK/b/dynod.json"
	cp "$WORK/routes.json" "$WORK/b/routes.json"
	taskset -c 0 "$BUILD_B/bin/dyno-router" --config "$WORK/b/dynod.json" >"$LOGDIR/router-b.log" \
		2>"$WORK/router-b.err" &
	PIDS+=($!); ROUTER_B_PID=$!
fi

# HAProxy 2.6
cat >"$WORK/haproxy.cfg" <<EOF
global
	nbthread 1
	maxconn 4000
defaults
	mode http
	timeout connect 5s
	timeout client 60s
	timeout server 60s
	option http-keep-alive
	http-reuse safe
frontend fe
	bind 127.0.0.1:$HAPROXY
	default_backend be
backend be
	balance roundrobin
	server s1 127.0.0.1:$B1
	server s2 127.0.0.1:$B2
EOF
taskset -c 0 haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
PIDS+=($!); HAPROXY_PID=$!

# nginx 1.22: one process (no master) so that its CPU time is one /proc entry
mkdir -p "$WORK/nginx/logs"
cat >"$WORK/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
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
		keepalive 128;
		keepalive_requests 1000000;
	}
	server {
		listen 127.0.0.1:$NGINX;
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

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
to_ms() { # wrk prints 512.00us, 1.20ms, 1.01s
	awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'
}
TICK=$(getconf CLK_TCK)

run_one() { # name port pid
	local name=$1 port=$2 pid=$3
	taskset -c 1 wrk -t1 -c"$CONNS" -d"${WARMUP}s" -H "Host: bench.localhost" "http://127.0.0.1:$port/" >/dev/null
	local c0; c0=$(cpu_ticks "$pid")
	local out; out=$(taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -H "Host: bench.localhost" "http://127.0.0.1:$port/")
	local c1; c1=$(cpu_ticks "$pid")
	local rps reqs p50 p99 errs
	rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
	reqs=$(awk '/requests in/ {print $1}' <<<"$out")
	p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
	p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
	errs=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
	local cpu_us; cpu_us=$(awk -v d=$((c1 - c0)) -v t="$TICK" -v n="$reqs" 'BEGIN { printf "%.2f", d / t * 1e6 / n }')
	echo "$name $rps $p50 $p99 $cpu_us" >>"$WORK/results"
	[ -z "$errs" ] || echo "  $name: $errs" >&2
	printf '  %-12s %10s req/s  p50 %7s ms  p99 %7s ms  cpu %6s us/req\n' "$name" "$rps" "$p50" "$p99" "$cpu_us" >&2
}

targets=("direct $B1 $BACKEND_PID" "dyno-router $ROUTER $ROUTER_PID" "haproxy $HAPROXY $HAPROXY_PID" "nginx $NGINX $NGINX_PID")
names=(direct dyno-router haproxy nginx)
if [ -n "$BUILD_B" ]; then
	targets+=("router-B $ROUTER_B $ROUTER_B_PID")
	names+=(router-B)
	echo "dyno-router: $BUILD, router-B: $BUILD_B" >&2
fi
for ((round = 0; round < ROUNDS; round++)); do
	echo "round $((round + 1))/$ROUNDS" >&2
	for ((k = 0; k < ${#targets[@]}; k++)); do
		t=${targets[$(((k + round) % ${#targets[@]}))]}
		# shellcheck disable=SC2086
		run_one $t
	done
done

lines=$(wc -l <"$LOGDIR/router.log")
echo
echo "wrk -t1 -c$CONNS -d${DURATION}s --latency, ${WARMUP}s warm-up, $ROUNDS rounds (medians); proxies on CPU 0, wrk + backends on CPU 1"
echo "dyno-router wrote $lines log lines"
echo
echo "| target | req/s | p50 ms | p99 ms | CPU per request |"
echo "|---|---|---|---|---|"
median() { # name column
	awk -v n="$1" -v c="$2" '$1 == n {print $c}' "$WORK/results" | sort -n |
		awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'
}
for name in "${names[@]}"; do
	printf '| %s | %.0f | %.3f | %.3f | %.2f us%s |\n' "$name" "$(median $name 2)" "$(median $name 3)" \
		"$(median $name 4)" "$(median $name 5)" "$([ $name = direct ] && echo ' (backend)')"
done
