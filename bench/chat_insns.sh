#!/usr/bin/env bash
# Instructions per direct turn of one front (/chat; chat_key: /chat with a unique
# Idempotency-Key each, the retry safety A2A's messageId gives; A2A SendMessage; tool:
# a /chat turn with one catalog search tool step, 2 model calls), or per UCP
# checkout flow, counted by valgrind's callgrind: a measure that a busy
# shared machine does not move (CPU time does, by ±15 %).
#   AGENTD_BIN=build/agentd bench/chat_insns.sh [chat|chat_key|a2a|tool|checkout]   (CONNECTIONS=16 DURATION=10s)
# agentd runs under callgrind (all threads, serialised by valgrind) with
# nginx as the model (bench/nginx_model.sh); the counts are zeroed before
# and dumped after wrk runs bench/a2a.lua in that mode (KEEP=file keeps the
# dump for callgrind_annotate). Prints: turns, instructions, per turn.
# checkout: no model; bench/checkout.sh's catalog and bench/checkout.lua
# (a flow = create with everything, then complete); per flow divides by the
# completed flows (the few creates still waiting for their completion at the
# end count in the instructions: CONNECTIONS=4 keeps that under 1 %).
# Valgrind runs agentd ~50x slower, so group commits are larger than in a
# real run: compare two builds with this, not with bench/a2a_cpu.sh.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin=${AGENTD_BIN:-$root/build/agentd}
mode=${1:-chat}
case $mode in chat|chat_key|a2a|tool|checkout) ;; *) echo "bench/chat_insns.sh: mode chat, chat_key, a2a, tool or checkout" >&2; exit 2 ;; esac
conns=${CONNECTIONS:-16}
duration=${DURATION:-10s}
tmp=$(mktemp -d /tmp/agentd-bench-insns.XXXXXX)
apid='' fpid=''
stop_pid() {
  [ -n "$1" ] || return 0
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 300); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() { set +e; stop_pid "$apid"; stop_pid "$fpid"; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

aport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
if [ "$mode" = checkout ]; then
  script=$root/bench/checkout.lua
  env -u AGENTD_BIN AGENTD_HOST=127.0.0.1 AGENTD_PORT="$aport" AGENTD_DATA_DIR="$tmp/data" \
    AGENTD_CATALOG="$root/bench/checkout_catalog.json" AGENTD_WORKERS="${WORKERS:-16}" \
    AGENTD_ACCESS_LOG=off AGENTD_LOG_LEVEL=warn \
    valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" \
    "$bin" serve >"$tmp/agentd.log" 2>&1 &
  apid=$!
else
  script=$root/bench/a2a.lua
  . "$root/bench/nginx_model.sh"
  nginx_model_start "$tmp" "$([ "$mode" = tool ] && echo tool || echo direct)"
  fpid=$nginx_model_pid fport=$nginx_model_port
  env -u AGENTD_BIN AGENTD_QUOTA_SESSIONS=0 AGENTD_QUOTA_IDEMPOTENCY_KEYS=0 AGENTD_HOST=127.0.0.1 \
    AGENTD_PORT="$aport" AGENTD_DATA_DIR="$tmp/data" AGENTD_ACCESS_LOG=off \
    AGENTD_LLM_URL="http://127.0.0.1:$fport/v1" AGENTD_LLM_MODEL=fake \
    valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" \
    "$bin" serve >"$tmp/agentd.log" 2>&1 &
  apid=$!
fi
for _ in $(seq 600); do
  curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$aport/readyz" 2>/dev/null && break
  sleep 0.2
done
[ "$mode" != tool ] || nginx_model_calibrate "http://127.0.0.1:$aport"
# warm up (statement caches, first pages), then count
A2A_MODE=$mode wrk -t1 -c"$conns" -d2s --timeout 30s -s "$script" "http://127.0.0.1:$aport" >/dev/null 2>&1 || true
callgrind_control -z "$apid" >/dev/null 2>&1
out=$(A2A_MODE=$mode wrk -t1 -c"$conns" -d"$duration" --timeout 30s \
        -s "$script" "http://127.0.0.1:$aport" 2>&1 || true)
callgrind_control -d "$apid" >/dev/null 2>&1
stop_pid "$apid"
apid=''
if [ "$mode" = checkout ]; then
  ok=$(sed -n 's/^RESULT flows=\([0-9]*\).*/\1/p' <<<"$out")
else
  ok=$(sed -n 's/^RESULT ok=\([0-9]*\).*/\1/p' <<<"$out")
fi
dump=$(ls "$tmp"/cg.out.* 2>/dev/null | head -1)
ir=$(sed -n 's/^summary: *\([0-9]*\).*/\1/p' "${dump:-/dev/null}" | head -1)
[ -n "${ok:-}" ] && [ "${ok:-0}" -gt 0 ] && [ -n "$ir" ] || { echo "bench/chat_insns.sh: no result (turns=${ok:-?})" >&2; exit 1; }
[ -z "${KEEP:-}" ] || cp "$dump" "$KEEP"
unit=turn; [ "$mode" != checkout ] || unit=flow
awk -v m="$mode" -v u="$unit" -v ok="$ok" -v ir="$ir" 'BEGIN { printf "%s %ss=%d instructions=%d per_%s=%.0f\n", m, u, ok, ir, u, ir / ok }'
