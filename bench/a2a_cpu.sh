#!/usr/bin/env bash
# CPU per turn of one front on a FRESH agentd (new data dir, 0-ms fake
# model): utime+stime of the agentd process from /proc/<pid>/stat over a
# wrk run of bench/a2a.lua, divided by the turns it completed.
#   AGENTD_BIN=build-rel/agentd bench/a2a_cpu.sh a2a|chat|chat_key|tool
#   CONNECTIONS=64 DURATION=6s MODEL=fast|nginx
#   DATA_DIR=dir: run on that data directory (kept) instead of a fresh one,
#   e.g. a database grown first (bench/sessions_grow.sh)
# MODEL=nginx answers every model call from nginx (bench/nginx_model.sh,
# `return 200`): the model costs next to nothing, so more of the 2 cores go
# to agentd. tool (MODEL=nginx only): a /chat turn whose model calls the
# catalog search tool once (nginx_model.sh's tool mode: 2 model calls).
# Prints one line: mode, turns, turns/s, CPU ms per turn. Run modes and
# binaries alternately, several times: the machine's drift is large.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-a2a}
conns=${CONNECTIONS:-64}
duration=${DURATION:-6s}
bin=${AGENTD_BIN:-$root/build-bench/agentd}
tmp=$(mktemp -d /tmp/agentd-bench-cpu.XXXXXX)
apid='' fpid=''
. "$root/bench/lib.sh"
cleanup() { set +e; stop_pid "$apid"; stop_pid "$fpid"; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "${MODEL:-fast}" = nginx ]; then
  . "$root/bench/nginx_model.sh"
  nginx_model_start "$tmp" "$([ "$mode" = tool ] && echo tool || echo direct)"
  fpid=$nginx_model_pid fport=$nginx_model_port
else
  python3 "$root/bench/fake_llm_fast.py" --port 0 >"$tmp/fake.out" 2>"$tmp/fake.err" &
  fpid=$!
  for _ in $(seq 100); do fport=$(head -1 "$tmp/fake.out" 2>/dev/null || true); [ -n "$fport" ] && break; sleep 0.05; done
fi
[ -n "$fport" ] || { echo "bench/a2a_cpu.sh: the fake model did not start" >&2; exit 1; }
aport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
env -u AGENTD_BIN AGENTD_QUOTA_SESSIONS=0 AGENTD_QUOTA_IDEMPOTENCY_KEYS=0 AGENTD_HOST=127.0.0.1 AGENTD_PORT=$aport AGENTD_DATA_DIR="${DATA_DIR:-$tmp/data}" AGENTD_ACCESS_LOG=off \
  AGENTD_LLM_URL="http://127.0.0.1:$fport/v1" AGENTD_LLM_MODEL=fake \
  "$bin" serve >"$tmp/agentd.log" 2>&1 &
apid=$!
for _ in $(seq 100); do
  curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$aport/readyz" 2>/dev/null && break
  sleep 0.1
done
[ "$mode" != tool ] || nginx_model_calibrate "http://127.0.0.1:$aport"
ticks() { awk '{print $14 + $15}' "/proc/$apid/stat"; }
hz=$(getconf CLK_TCK)
t0=$(ticks)
# DURING="cmd": run beside the load with $AGENTD_PID and $AGENTD_PORT set
# (a profiler, a /metrics scrape), waited for after it
dpid=''
if [ -n "${DURING:-}" ]; then AGENTD_PID=$apid AGENTD_PORT=$aport bash -c "$DURING" & dpid=$!; fi
out=$(A2A_MODE=$mode wrk -t2 -c"$conns" -d"$duration" --timeout 30s \
        -s "$root/bench/a2a.lua" "http://127.0.0.1:$aport" 2>&1 || true)
t1=$(ticks)
[ -z "$dpid" ] || wait "$dpid" || true
line=$(grep '^RESULT' <<<"$out" || echo "RESULT ok=0 turns_per_s=0")
v() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" ${line#RESULT}"; }
ok=$(v ok)
awk -v m="$mode" -v ok="$ok" -v tps="$(v turns_per_s)" -v p99="$(v p99_ms)" -v d="$((t1 - t0))" -v hz="$hz" \
  'BEGIN { printf "%-8s turns=%s turns/s=%s p99_ms=%s cpu_ms_per_turn=%.3f\n", m, ok, tps, p99, (ok > 0 ? d * 1000 / hz / ok : 0) }'
