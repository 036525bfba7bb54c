#!/usr/bin/env bash
# Instructions per GET /healthz, counted by valgrind's callgrind (a measure
# a busy shared machine does not move), with the access log off or on.
#   AGENTD_BIN=build/agentd bench/http_insns.sh [off|on]   (CONNECTIONS=8 DURATION=5s)
# agentd runs under callgrind, its counts zeroed after a 1-s wrk warm-up and
# dumped after the counted run (KEEP=file keeps the dump for
# callgrind_annotate); the access log goes to /dev/null. Prints: requests,
# instructions, per request. Compare builds with it, not with bench/http.sh.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${AGENTD_BIN:-$root/build/agentd}
log=${1:-off}
case $log in off|on) ;; *) echo "bench/http_insns.sh: off or on" >&2; exit 2 ;; esac
conns=${CONNECTIONS:-8}
duration=${DURATION:-5s}
tmp=$(mktemp -d /tmp/agentd-bench-hinsns.XXXXXX)
apid=''
stop_pid() {
  [ -n "$1" ] || return 0
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 300); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() { set +e; stop_pid "$apid"; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

aport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
env -u AGENTD_BIN AGENTD_HOST=127.0.0.1 AGENTD_PORT=$aport AGENTD_DATA_DIR="$tmp/data" \
  AGENTD_ACCESS_LOG=$log valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" \
  "$bin" serve >/dev/null 2>"$tmp/agentd.err" &
apid=$!
for _ in $(seq 600); do
  curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$aport/healthz" 2>/dev/null && break
  sleep 0.2
done
wrk -t1 -c"$conns" -d1s "http://127.0.0.1:$aport/healthz" >/dev/null 2>&1 || true
callgrind_control -z "$apid" >/dev/null
out=$(wrk -t1 -c"$conns" -d"$duration" "http://127.0.0.1:$aport/healthz" 2>&1 || true)
callgrind_control -d "$apid" >/dev/null
stop_pid "$apid"
apid=''
n=$(awk '/requests in/ { print $1 }' <<<"$out")
bad=$(awk '/Non-2xx/ { print $NF }' <<<"$out")
dump=$(ls "$tmp"/cg.out.* 2>/dev/null | head -1)
ir=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "${dump:-/dev/null}" | head -1)
[ -n "${n:-}" ] && [ "${n:-0}" -gt 0 ] && [ -z "${bad:-}" ] && [ -n "$ir" ] ||
  { echo "bench/http_insns.sh: no result (requests=${n:-?} non-2xx=${bad:-0})" >&2; exit 1; }
[ -z "${KEEP:-}" ] || cp "$dump" "$KEEP"
awk -v l="$log" -v n="$n" -v ir="$ir" 'BEGIN { printf "log=%s requests=%d instructions=%d per_request=%.0f\n", l, n, ir, ir / n }'
