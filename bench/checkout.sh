#!/usr/bin/env bash
# Complete UCP checkout flows per second over REST, on SQLite.
#   bench/checkout.sh          (Release build in build-rel, or $AGENTD_BIN)
#   DURATION=20s CONNECTIONS=50 THREADS=2 WORKERS=4 ACCESS_LOG=on bench/checkout.sh
# One flow = POST /checkout-sessions with everything in one request (items,
# buyer, address, shipping option, payment instrument) -> 201, then
# POST /checkout-sessions/{id}/complete with the mock handler's success_token
# -> 200 (stock taken, order written). Driven by wrk + bench/checkout.lua on
# CONNECTIONS keep-alive connections against agentd started here on a free
# loopback port, in a temp dir, selling from a catalog with huge stock.
# Prints flows/s, flow latency p50/p90/p99 (create sent -> complete answered)
# and per-request p50/p99, and agentd's CPU per flow (utime+stime from
# /proc/<pid>/stat over the measured run, divided by its flows: the number
# to compare on a shared machine, where flows/s drifts). Everything it starts is stopped on exit; wrk
# shares the machine's cores with the server under test. Target: >= 1000.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
duration=${DURATION:-20s}
conns=${CONNECTIONS:-50}
threads=${THREADS:-2}
workers=${WORKERS:-4}
access_log=${ACCESS_LOG:-on}
warmup=${WARMUP:-2s}

for tool in wrk curl; do
  command -v "$tool" >/dev/null || { echo "bench/checkout.sh: $tool is not installed" >&2; exit 1; }
done

if [ -n "${AGENTD_BIN:-}" ]; then
  bin=$AGENTD_BIN
else
  cmake -S "$root" -B "$root/build-rel" -DCMAKE_BUILD_TYPE=Release >/dev/null
  make -C "$root/build-rel" -j"$(nproc)" agentd >/dev/null
  bin=$root/build-rel/agentd
fi
[ -x "$bin" ] || { echo "bench/checkout.sh: no agentd binary at $bin" >&2; exit 1; }

tmp=$(mktemp -d /tmp/agentd-bench-checkout.XXXXXX)
pid=
cleanup() {
  set +e
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
env -u AGENTD_BIN AGENTD_HOST=127.0.0.1 AGENTD_PORT=$port AGENTD_DATA_DIR="$tmp/data" AGENTD_CATALOG="$root/bench/checkout_catalog.json" \
  AGENTD_WORKERS=$workers AGENTD_ACCESS_LOG=$access_log AGENTD_LOG_LEVEL=warn \
  "$bin" serve >"$tmp/agentd.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$port/readyz" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/agentd.log" >&2; exit 1; }
  sleep 0.1
done
curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" || { echo "agentd not ready" >&2; exit 1; }

echo "agentd $("$bin" --version 2>/dev/null | head -1 || true) on 127.0.0.1:$port, workers=$workers," \
     "access_log=$access_log, db sync=normal (default), $(nproc) cores shared with wrk"
echo "wrk: $threads threads, $conns connections, $duration (after a $warmup warm-up)"
wrk -t"$threads" -c"$conns" -d"$warmup" -s "$root/bench/checkout.lua" "http://127.0.0.1:$port" >/dev/null
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
t0=$(ticks)
out=$(wrk -t"$threads" -c"$conns" -d"$duration" -s "$root/bench/checkout.lua" \
          "http://127.0.0.1:$port")
t1=$(ticks)
res=$(grep '^RESULT' <<<"$out" || true)
[ -n "$res" ] || { echo "$out" >&2; exit 1; }
grep '^FIRST_ERROR' <<<"$out" >&2 || true
val() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $res"; }
printf 'flows/s      %s   (%s complete flows in %ss; %s requests/s)\n' \
  "$(val flows_per_s)" "$(val flows)" "$(val seconds)" "$(val requests_per_s)"
printf 'flow latency p50 %s ms   p90 %s ms   p99 %s ms   (create sent -> complete answered)\n' \
  "$(val flow_p50_ms)" "$(val flow_p90_ms)" "$(val flow_p99_ms)"
printf 'request latency p50 %s ms   p99 %s ms\n' "$(val req_p50_ms)" "$(val req_p99_ms)"
awk -v f="$(val flows)" -v d="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" \
  'BEGIN { printf "cpu ms per flow %.3f   (agentd utime+stime %.2f s)\n", (f > 0 ? d * 1000 / hz / f : 0), d / hz }'
printf 'errors: %s non-2xx, %s socket\n' "$(val errors)" "$(val socket_errors)"
db="$tmp/data/agentd.db"
if command -v sqlite3 >/dev/null; then
  echo "store: $(sqlite3 "$db" 'select count(*) from orders') orders," \
       "$(sqlite3 "$db" 'select count(*) from checkouts') checkouts," \
       "db $(du -sh "$tmp/data" | cut -f1)"
fi
