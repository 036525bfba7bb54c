#!/usr/bin/env bash
# A2A SendMessage beside POST /chat, in the same run, against a 0-ms fake
# model (bench/fake_llm_fast.py): turns/s and latency p50/p99 of each.
#   bench/a2a.sh          (Release build in build-bench, or $AGENTD_BIN)
#   CONNECTIONS=64 DURATION=10s ROUNDS=2 bench/a2a.sh
# Each turn is a new session (chat; chat_key adds a unique Idempotency-Key,
# the retry safety A2A's messageId gives) / a new context (A2A 1.0, a unique
# messageId each). The three are measured in turn, ROUNDS times each,
# against one agentd (access log off, SQLite sync normal), so drift in the
# machine shows in both. wrk, the fake and agentd share the machine's cores.
# Everything started is stopped on exit; about ROUNDS x 3 x DURATION.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
conns=${CONNECTIONS:-64}
duration=${DURATION:-10s}
rounds=${ROUNDS:-2}

for tool in wrk curl python3; do
  command -v "$tool" >/dev/null || { echo "bench/a2a.sh: $tool is not installed" >&2; exit 1; }
done
if [ -n "${AGENTD_BIN:-}" ]; then
  bin=$AGENTD_BIN
else
  cmake -S "$root" -B "$root/build-bench" -DCMAKE_BUILD_TYPE=Release >/dev/null
  make -C "$root/build-bench" -j"$(nproc)" agentd >/dev/null
  bin=$root/build-bench/agentd
fi

tmp=$(mktemp -d /tmp/agentd-bench-a2a.XXXXXX)
apid='' fpid=''
. "$root/bench/lib.sh"
cleanup() { set +e; stop_pid "$apid"; stop_pid "$fpid"; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

python3 "$root/bench/fake_llm_fast.py" --port 0 >"$tmp/fake.out" 2>"$tmp/fake.err" &
fpid=$!
for _ in $(seq 100); do fport=$(head -1 "$tmp/fake.out" 2>/dev/null || true); [ -n "$fport" ] && break; sleep 0.05; done
[ -n "$fport" ] || { echo "bench/a2a.sh: the fake model did not start" >&2; exit 1; }
aport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# AGENTD_BIN is this script's, and agentd refuses an AGENTD_* it does not
# know; the per-principal quotas would end a long run in 429s
env -u AGENTD_BIN AGENTD_QUOTA_SESSIONS=0 AGENTD_QUOTA_IDEMPOTENCY_KEYS=0 \
  AGENTD_HOST=127.0.0.1 AGENTD_PORT=$aport AGENTD_DATA_DIR="$tmp/data" AGENTD_ACCESS_LOG=off \
  AGENTD_LLM_URL="http://127.0.0.1:$fport/v1" AGENTD_LLM_MODEL=fake \
  "$bin" serve >"$tmp/agentd.log" 2>&1 &
apid=$!
for _ in $(seq 100); do
  curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$aport/readyz" 2>/dev/null && break
  sleep 0.1
done

echo "bench/a2a.sh: $("$bin" version 2>/dev/null | head -1 || echo '?'), $conns connections, $duration per run, 0-ms model"
printf '%-8s %-5s %8s %10s %8s %8s %7s\n' front round turns turns/s p50_ms p99_ms errors
for r in $(seq "$rounds"); do
  for mode in chat chat_key a2a; do
    out=$(A2A_MODE=$mode wrk -t2 -c"$conns" -d"$duration" --timeout 30s \
            -s "$root/bench/a2a.lua" "http://127.0.0.1:$aport" 2>&1 || true)
    line=$(grep '^RESULT' <<<"$out" || echo "RESULT ok=0 bad=0 turns_per_s=0 p50_ms=0 p99_ms=0 errors=?")
    v() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" ${line#RESULT}"; }
    printf '%-8s %-5s %8s %10s %8s %8s %7s\n' "$mode" "$r" "$(v ok)" "$(v turns_per_s)" \
      "$(v p50_ms)" "$(v p99_ms)" "$(v errors)"
    grep '^FIRST_ERROR' <<<"$out" | head -1 || true
  done
done
