#!/usr/bin/env bash
# Issue #14's side-by-side: agentd against the official A2A JavaScript SDK
# server, one agent turn per request, a 0-ms model served by nginx
# (bench/nginx_model.sh), wrk -t2 -c$CONNECTIONS, a new context per request.
#   AGENTD_BIN=build-rel/agentd bench/sdk_compare.sh
#   ROUNDS=3 CONNECTIONS=50 DURATION=6s WARMUP=2s (the SDK server's); SDK_ONLY=1: the SDK server alone
# Each round runs, one after the other on the same 2 cores: agentd /chat and
# agentd A2A SendMessage (bench/a2a_cpu.sh, a fresh agentd and data dir each,
# every turn persisted), then the SDK server (bench/a2a_sdk_server.mjs:
# JsonRpcTransportHandler + DefaultRequestHandler + InMemoryTaskStore, nothing
# persisted) with the same SendMessage requests (bench/a2a.lua). Prints one
# line per run: turns/s, p99 and the server's CPU ms per turn.
# Needs node and tests/js/node_modules (scripts/install-deps installs both).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${ROUNDS:-3}
conns=${CONNECTIONS:-50}
duration=${DURATION:-6s}
export AGENTD_BIN=${AGENTD_BIN:-$root/build-rel/agentd}
for tool in wrk node curl; do
  command -v "$tool" >/dev/null || { echo "bench/sdk_compare.sh: $tool is not installed" >&2; exit 1; }
done
[ -d "$root/tests/js/node_modules/@a2a-js/sdk" ] ||
  { echo "bench/sdk_compare.sh: tests/js/node_modules is missing: run scripts/install-deps" >&2; exit 1; }

tmp=$(mktemp -d /tmp/agentd-bench-sdk.XXXXXX)
spid='' mpid=''
. "$root/bench/lib.sh"
cleanup() { set +e; stop_pid "$spid"; stop_pid "$mpid"; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

sdk_run() { # one wrk run against a fresh SDK server
  . "$root/bench/nginx_model.sh"
  nginx_model_start "$tmp/r$1" direct
  mpid=$nginx_model_pid
  node "$root/bench/a2a_sdk_server.mjs" 0 "http://127.0.0.1:$nginx_model_port/v1" >"$tmp/sdk.out" 2>"$tmp/sdk.err" &
  spid=$!
  local sport=''
  for _ in $(seq 100); do
    sport=$(sed -n 's/^ready //p' "$tmp/sdk.out" 2>/dev/null || true)
    [ -n "$sport" ] && break
    sleep 0.05
  done
  [ -n "$sport" ] || { echo "bench/sdk_compare.sh: the SDK server did not start" >&2; cat "$tmp/sdk.err" >&2; exit 1; }
  local t0 t1 out line
  # a warm-up first (V8 compiles the hot paths), as wrk's runs of agentd
  # need none
  wrk -t2 -c"$conns" -d"${WARMUP:-2s}" --timeout 30s -s "$root/bench/a2a.lua" \
    "http://127.0.0.1:$sport" >/dev/null 2>&1 || true
  t0=$(awk '{print $14 + $15}' "/proc/$spid/stat")
  out=$(A2A_MODE=a2a wrk -t2 -c"$conns" -d"$duration" --timeout 30s \
          -s "$root/bench/a2a.lua" "http://127.0.0.1:$sport" 2>&1 || true)
  t1=$(awk '{print $14 + $15}' "/proc/$spid/stat")
  line=$(grep '^RESULT' <<<"$out" || echo "RESULT ok=0 turns_per_s=0")
  grep '^FIRST_ERROR' <<<"$out" >&2 || true
  v() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" ${line#RESULT}"; }
  awk -v ok="$(v ok)" -v tps="$(v turns_per_s)" -v p99="$(v p99_ms)" -v d="$((t1 - t0))" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { printf "%-8s turns=%s turns/s=%s p99_ms=%s cpu_ms_per_turn=%.3f\n", "sdk", ok, tps, p99, (ok > 0 ? d * 1000 / hz / ok : 0) }'
  stop_pid "$spid"; spid=''
  stop_pid "$mpid"; mpid=''
}

echo "agentd $("$AGENTD_BIN" version 2>/dev/null || echo '?'), node $(node --version), @a2a-js/sdk $(node -p "require('$root/tests/js/node_modules/@a2a-js/sdk/package.json').version"), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
echo "wrk -t2 -c$conns -d$duration, bench/a2a.lua; nginx as the 0-ms model"
for r in $(seq "$rounds"); do
  echo "-- round $r (load $(cut -d' ' -f1 /proc/loadavg))"
  [ -n "${SDK_ONLY:-}" ] || MODEL=nginx CONNECTIONS=$conns DURATION=$duration bash "$root/bench/a2a_cpu.sh" chat
  [ -n "${SDK_ONLY:-}" ] || MODEL=nginx CONNECTIONS=$conns DURATION=$duration bash "$root/bench/a2a_cpu.sh" a2a
  sdk_run "$r"
done
