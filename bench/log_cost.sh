#!/usr/bin/env bash
# The access log's cost as counts rather than rates (the machine is shared,
# req/s is noise): for agentd with AGENTD_ACCESS_LOG=off and =on (stdout to
# /dev/null), a fixed wrk load on GET /healthz, then write-family syscalls
# (/proc/PID/io syscw) and CPU time (utime+stime) per request.
#   AGENTD_BIN=build/agentd DURATION=4s bench/log_cost.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${AGENTD_BIN:-$root/build/agentd}
dur=${DURATION:-4s}
tmp=$(mktemp -d /tmp/agentd-bench-logcost.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
tck=$(getconf CLK_TCK)
for log in off on; do
  port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  env -u AGENTD_BIN AGENTD_HOST=127.0.0.1 AGENTD_PORT=$port AGENTD_ACCESS_LOG=$log \
    AGENTD_DATA_DIR="$tmp/d-$log" "$bin" serve > /dev/null 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  w0=$(awk '/syscw/ {print $2}' /proc/$pid/io)
  c0=$(awk '{print $14 + $15}' /proc/$pid/stat)
  n=$(wrk -t2 -c50 -d"$dur" "http://127.0.0.1:$port/healthz" | awk '/requests in/ {print $1}')
  w1=$(awk '/syscw/ {print $2}' /proc/$pid/io)
  c1=$(awk '{print $14 + $15}' /proc/$pid/stat)
  awk -v l="$log" -v n="$n" -v w=$((w1 - w0)) -v c=$((c1 - c0)) -v t="$tck" 'BEGIN {
    printf "access log %-3s  %8d requests  %.3f write syscalls/request  %.2f us CPU/request\n",
           l, n, w / n, c / t * 1e6 / n }'
  kill -TERM $pid; wait $pid 2>/dev/null || true
done
