#!/usr/bin/env bash
# Agent turns through POST /chat against a fake OpenAI-compatible model.
#   bench/turns.sh          (Release build in build-bench, or $AGENTD_BIN)
#   SIZES="1000 2000 4000 8000 10000" TOOL_SIZES="1000 4000 10000" DURATION=20s \
#   LATENCY_MS=2000 FAKE=fast|test MODEL=fake|nginx LOOPS=2 WORKERS=16 bench/turns.sh
#   SESSION_CONNECTIONS=64 SESSION_WARMUP=15s bench/turns.sh   (phase 3 below)
# Every turn is a new session (POST /chat without session_id), except in
# phase 3. Two messages:
#   direct: "hello"                   -> one model call, the model answers;
#   tool:   "[[tool:search_shopping_catalog {...}]] find cookies"
#           -> the model calls the catalog search tool (run on a worker), then
#              a second model call answers from its result.
# Phases, each against a fresh agentd (temp dir, free loopback port, SQLite
# sync normal, access log off) and a fresh fake model:
#   1. model latency 0 ms, FAST_CONNECTIONS (64; 0 skips it) connections,
#      FAST_DURATION: turns/s and turn latency p50/p90/p99, direct and tool;
#   2. model latency LATENCY_MS (2000, per model call) with N concurrent
#      connections for each N in SIZES (direct) and TOOL_SIZES (tool): every
#      connection always has one turn in flight, so N turns are in flight.
#      agentd's VmRSS, threads and fds are sampled every 0.25 s (peak and
#      the kernel's VmHWM reported), with agentd_turns_in_flight and the
#      fake's pending answers as evidence that N turns were really waiting;
#   3. long sessions, model latency 0 ms, SESSION_CONNECTIONS (64; 0 skips
#      it) connections over 2 x as many sessions made before the run (each
#      turn goes on the next of its thread's sessions, so every session's
#      history grows): SESSION_WARMUP (15 s, not reported) grows them to
#      hundreds of messages, past the 200 a turn sends to the model, then
#      FAST_DURATION is measured ("hist" in the notes: the sessions' mean
#      message count at the end).
# Each in-flight turn can hold two fds in agentd (the client's socket and, while
# its model call runs, the model's), so RLIMIT_NOFILE bounds N. The script
# tries to raise the hard limit to what the largest size needs (root with
# CAP_SYS_RESOURCE only), then raises `ulimit -n` to the hard limit. A size
# whose 2 N + 400 fds do not fit runs with agentd's model connections capped
# (AGENTD_LLM_MAX_CONNECTIONS = (limit - N - 400) / LOOPS per loop thread): a
# model call past the cap waits inside libcurl for a free connection, so all N
# turns are still in flight and the fds stay under the limit ("cap=" in the
# notes; sizes where that leaves under 64 per loop are skipped). Closing the
# client's connection after sending would not help: agentd keeps a client's
# socket until its turn answers (libevent does not read a connection whose
# request is being handled, so it never sees the close). AGENTD_MAX_CONNECTIONS
# is raised to N + 100 where N passes its default (10 000).
# The fake model is bench/fake_llm_fast.py (one asyncio loop, FAKE=fast) or
# the test suite's thread-per-connection tests/fake_llm/fake_llm.py (FAKE=test).
# MODEL=nginx answers every model call from nginx instead (bench/nginx_model.sh:
# one worker process, the fixed "echo: hello" completion, after LATENCY_MS in
# the slow phase by the echo module's echo_sleep, at once in the 0-ms phase):
# about a tenth of the Python fake's CPU per call, so agentd gets the core the
# fake took. Direct rows only (nginx reads no body, so it cannot follow a
# turn's tool call; tool rows and phase 3 are skipped); fakeq is the peak of
# nginx's stub_status "Writing" (requests being answered), fCPU% nginx's
# worker, conn/call its accepts / requests.
# The load client is wrk + bench/turns.lua (-t2, -c N, keep-alive). wrk, the
# fake and agentd share the machine's cores. Everything it starts is stopped
# on exit; each run is bounded by DURATION plus a drain of a few seconds
# (whole script, defaults: about 5 minutes).
# Columns: turns = turns answered 200 with an "answer"; turns/s = turns / (last
# answer - first request); p50..max = wrk's turn latency; errors = non-200 +
# socket errors + timeouts; rss_MB = peak sampled VmRSS, hwm_MB = VmHWM; thr,
# fds = most seen; inflt = peak agentd_turns_in_flight; fakeq = the fake's peak
# of answers waiting on their delay; aCPU%, fCPU% = agentd's and the fake's CPU
# in % of one core; host% = the whole machine busy; conn/call = new model
# connections per model call (1.00 = no keep-alive reuse).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
sizes=${SIZES-1000 2000 4000 8000 10000}
tool_sizes=${TOOL_SIZES-1000 4000 10000}
duration=${DURATION:-20s}
fast_duration=${FAST_DURATION:-10s}
fast_conns=${FAST_CONNECTIONS:-64}
latency_ms=${LATENCY_MS:-2000}
fake=${FAKE:-fast}
model=${MODEL:-fake}
wrk_threads=${THREADS:-2}
workers=${WORKERS:-16}
loops=${LOOPS:-2}
rss_target_mb=${RSS_TARGET_MB:-300}

for tool in wrk curl python3; do
  command -v "$tool" >/dev/null || { echo "bench/turns.sh: $tool is not installed" >&2; exit 1; }
done
case $fake in
  fast) fake_py=$root/bench/fake_llm_fast.py ;;
  test) fake_py=$root/tests/fake_llm/fake_llm.py ;;
  *) echo "bench/turns.sh: FAKE must be fast or test" >&2; exit 2 ;;
esac
case $model in
  fake) ;;
  nginx) command -v nginx >/dev/null || { echo "bench/turns.sh: nginx is not installed" >&2; exit 1; }
         . "$root/bench/nginx_model.sh"; fake_py="nginx (bench/nginx_model.sh)" ;;
  *) echo "bench/turns.sh: MODEL must be fake or nginx" >&2; exit 2 ;;
esac

if [ -n "${AGENTD_BIN:-}" ]; then
  bin=$AGENTD_BIN
else
  cmake -S "$root" -B "$root/build-bench" -DCMAKE_BUILD_TYPE=Release >/dev/null
  make -C "$root/build-bench" -j"$(nproc)" agentd >/dev/null
  bin=$root/build-bench/agentd
fi
[ -x "$bin" ] || { echo "bench/turns.sh: no agentd binary at $bin" >&2; exit 1; }

# every process started from here inherits the raised limit
largest=0
for n in $sizes $tool_sizes; do [ "$n" -gt "$largest" ] && largest=$n; done
want=$((2 * largest + 400))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then
  ulimit -Hn "$want" 2>/dev/null || true # needs CAP_SYS_RESOURCE; else keep the hard limit
  hard=$(ulimit -Hn)
fi
[ "$hard" = unlimited ] && hard=1048576
ulimit -n "$hard"
fd_limit=$(ulimit -n)

tmp=$(mktemp -d /tmp/agentd-bench-turns.XXXXXX)
apid='' fpid='' spid='' fwpid=''
stop_pid() { # pid: TERM, wait up to 10 s, KILL
  [ -n "$1" ] || return 0
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  set +e
  stop_pid "$spid"; stop_pid "$apid"; stop_pid "$fpid"
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start_fake() { # [delay ms: MODEL=nginx only]
  if [ "$model" = nginx ]; then
    NGINX_MODEL_DELAY_MS=${1:-0} nginx_model_start "$tmp" direct >/dev/null
    fpid=$nginx_model_pid fport=$nginx_model_port
    # the worker, whose CPU is the model's (the master only waits)
    for _ in $(seq 50); do fwpid=$(pgrep -P "$fpid" | head -1 || true); [ -n "$fwpid" ] && break; sleep 0.05; done
    return 0
  fi
  fwpid=''
  : >"$tmp/fake.out"
  python3 "$fake_py" --port 0 >"$tmp/fake.out" 2>"$tmp/fake.err" &
  fpid=$!
  for _ in $(seq 100); do
    fport=$(head -1 "$tmp/fake.out" 2>/dev/null || true)
    [ -n "$fport" ] && return 0
    sleep 0.05
  done
  echo "bench/turns.sh: the fake model did not start" >&2; cat "$tmp/fake.err" >&2; exit 1
}

run_n=0
start_agentd() { # [model connection cap per loop] [client connection cap]
  run_n=$((run_n + 1))
  aport=$(free_port)
  env -u AGENTD_BIN AGENTD_QUOTA_SESSIONS=0 AGENTD_QUOTA_IDEMPOTENCY_KEYS=0 AGENTD_HOST=127.0.0.1 AGENTD_PORT=$aport AGENTD_DATA_DIR="$tmp/data-$run_n" \
    AGENTD_ACCESS_LOG=off AGENTD_LOG_LEVEL=info AGENTD_DRAIN_TIMEOUT=5s AGENTD_WORKERS=$workers \
    AGENTD_THREADS=$loops AGENTD_LLM_MAX_CONNECTIONS="${1:-0}" AGENTD_MAX_CONNECTIONS="${2:-10000}" \
    AGENTD_LLM_URL="http://127.0.0.1:$fport/v1" AGENTD_LLM_MODEL=fake \
    "$bin" serve >"$tmp/agentd-$run_n.log" 2>&1 &
  apid=$!
  for _ in $(seq 100); do
    curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$aport/readyz" 2>/dev/null && return 0
    kill -0 "$apid" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench/turns.sh: agentd did not become ready" >&2; cat "$tmp/agentd-$run_n.log" >&2; exit 1
}

metric() { # name -> value from agentd's /metrics (empty if unreachable); never fails
  { curl -fsS --max-time 2 "http://127.0.0.1:$aport/metrics" 2>/dev/null || true; } |
    awk -v n="$1" '$1 == n && !v { v = $2 } END { if (v != "") print v }'
}

# samples "rss_kb threads fds" of agentd, and its turns in flight, every 0.25 s
sampler() {
  local i=0
  while kill -0 "$apid" 2>/dev/null; do
    local rss thr fds
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$apid/status" 2>/dev/null || true)
    thr=$(awk '/^Threads:/ { print $2 }' "/proc/$apid/status" 2>/dev/null || true)
    fds=$(find "/proc/$apid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    [ -n "$rss" ] && echo "$rss $thr $fds" >>"$tmp/samples"
    if [ $((i % 4)) -eq 0 ]; then metric agentd_turns_in_flight >>"$tmp/inflight" || true; fi
    if [ "$model" = nginx ] && [ $((i % 4)) -eq 2 ]; then
      curl -fsS --max-time 2 "http://127.0.0.1:$fport/admin/nginx" 2>/dev/null |
        awk '/Writing/ { print $4 - 1 }' >>"$tmp/pending" || true
    fi
    i=$((i + 1))
    sleep 0.25
  done
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
host_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9, $5 + $6 }' /proc/stat; } # total idle

# phase 3: makes 2 x conns sessions, then grows their histories (wrk for
# $session_warmup on them, not reported); sets $sessions_file
grow_sessions() { # message conns
  local msg=$1 conns=$2 i
  sessions_file=$tmp/sessions
  : >"$sessions_file"
  for i in $(seq $((2 * conns))); do
    curl -fsS --max-time 10 -H 'Content-Type: application/json' -d '{"message":"hello"}' \
      "http://127.0.0.1:$aport/chat" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["session_id"])' >>"$sessions_file"
  done
  TURN_MESSAGE=$msg TURN_SESSIONS=$sessions_file TURN_THREADS=$wrk_threads \
    wrk -t"$wrk_threads" -c"$conns" -d"$session_warmup" --timeout 60s \
    -s "$root/bench/turns.lua" "http://127.0.0.1:$aport" >/dev/null 2>&1 || true
  for _ in $(seq 60); do # the turns wrk left behind finish before the measured run
    [ "$(metric agentd_turns_in_flight)" = 0 ] && break; sleep 0.25
  done
}

# the sessions' mean message count (phase 3's note), from agentd's database
mean_history() {
  python3 - "$tmp/data-$run_n/agentd.db" <<'PY' 2>/dev/null || echo '?'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=5)
n, s = db.execute("SELECT count(DISTINCT session_id), count(*) FROM messages").fetchone()
print(round(s / max(1, n)))
PY
}

# one run: label message conns duration -> appends a row to $tmp/rows
# (with $sessions set, on long sessions: phase 3)
run() {
  local label=$1 msg=$2 conns=$3 dur=$4 delay=${5:-0}
  if [ "$model" = nginx ] && { [ "$label" != direct ] || [ -n "${sessions:-}" ]; }; then
    echo "skip $label$([ -n "${sessions:-}" ] && echo ' (long sessions)') N=$conns: MODEL=nginx answers direct turns only" | tee -a "$tmp/rows"
    return 0
  fi
  local cap=0 maxconn=10000
  if [ $((2 * conns + 400)) -gt "$fd_limit" ]; then
    cap=$(( (fd_limit - conns - 400) / loops ))
    if [ "$cap" -lt 64 ]; then
      echo "skip $label N=$conns: needs ~$((conns + 400 + 64 * loops)) fds even with model connections capped, the limit is $fd_limit" | tee -a "$tmp/rows"
      return 0
    fi
  fi
  [ $((conns + 100)) -gt "$maxconn" ] && maxconn=$((conns + 100))
  start_fake "$delay"
  start_agentd "$cap" "$maxconn"
  : >"$tmp/samples"; : >"$tmp/inflight"; : >"$tmp/pending"
  local sess_env=() hist=''
  if [ -n "${sessions:-}" ]; then
    grow_sessions "$msg" "$conns"
    sess_env=(TURN_SESSIONS="$sessions_file" TURN_THREADS="$wrk_threads")
  fi
  sampler & spid=$!
  local a0 f0 t0 t1 out res
  local h0 h1
  local fcpid=${fwpid:-$fpid}
  a0=$(cpu_ticks "$apid"); f0=$(cpu_ticks "$fcpid"); h0=$(host_ticks); t0=$(date +%s.%N)
  out=$(env TURN_MESSAGE="$msg" "${sess_env[@]}" wrk -t"$wrk_threads" -c"$conns" -d"$dur" \
          --timeout 60s -s "$root/bench/turns.lua" "http://127.0.0.1:$aport" 2>&1) || true
  t1=$(date +%s.%N); h1=$(host_ticks)
  local acpu fcpu hcpu
  hcpu=$(awk -v a="$h0" -v b="$h1" 'BEGIN { split(a, x, " "); split(b, y, " ");
           t = y[1] - x[1]; printf "%.0f", (t > 0 ? 100 * (1 - (y[2] - x[2]) / t) : 0) }')
  acpu=$(awk -v a="$a0" -v b="$(cpu_ticks "$apid")" -v s="$t0" -v e="$t1" -v hz="$(getconf CLK_TCK)" \
           'BEGIN { printf "%.0f", 100 * (b - a) / hz / (e - s) }')
  fcpu=$(awk -v a="$f0" -v b="$(cpu_ticks "$fcpid")" -v s="$t0" -v e="$t1" -v hz="$(getconf CLK_TCK)" \
           'BEGIN { printf "%.0f", 100 * (b - a) / hz / (e - s) }')
  echo "$out" >>"$tmp/wrk.txt"
  res=$(grep '^RESULT' <<<"$out" || true)
  if [ -z "$res" ]; then
    echo "bench/turns.sh: wrk failed for $label N=$conns:" >&2; echo "$out" >&2
    res="RESULT ok=0 bad=0 codes=wrk_failed seconds=0 turns_per_s=0 p50_ms=0 p90_ms=0 p99_ms=0 max_ms=0 connect=0 read=0 write=0 timeout=0"
  fi
  # the fake's peak of answers waiting on their delay, and new model
  # connections per model call (1.00 = no keep-alive reuse at all)
  local fake_pending=- conn_per_call=-
  if [ "$model" = fake ] && [ "$fake" = fast ]; then
    read -r fake_pending conn_per_call < <(curl -fsS --max-time 2 "http://127.0.0.1:$fport/admin/stats" 2>/dev/null |
      python3 -c 'import json,sys; s=json.load(sys.stdin); print(s["peak_pending"], "%.2f" % (s["accepted"] / max(1, s["requests"])))' ||
      echo '? ?')
  elif [ "$model" = nginx ]; then
    fake_pending=$(sort -g "$tmp/pending" | tail -1)
    conn_per_call=$(curl -fsS --max-time 2 "http://127.0.0.1:$fport/admin/nginx" 2>/dev/null |
      awk 'p { printf "%.2f", $1 / ($3 > 0 ? $3 : 1); exit } /accepts/ { p = 1 }' || echo '?')
  fi
  # let the turns wrk left behind finish (the server owns them), then stop
  local left
  for _ in $(seq 60); do
    left=$(metric agentd_turns_in_flight); [ "${left:-0}" = 0 ] && break; sleep 0.25
  done
  local hwm alive=yes
  hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$apid/status" 2>/dev/null || echo 0)
  [ -n "${sessions:-}" ] && hist=" hist=$(mean_history)"
  kill -0 "$apid" 2>/dev/null || alive=DIED
  stop_pid "$spid"; spid=
  stop_pid "$apid"; apid=
  stop_pid "$fpid"; fpid=
  local peak inflight warns
  # peak RSS, and the most threads and fds seen (the sampler runs until agentd
  # stops, so fds fall during the drain while RSS stays)
  peak=$(awk '$1 > r { r = $1 } $2 > t { t = $2 } $3 > f { f = $3 } END { print r + 0, t + 0, f + 0 }' \
           "$tmp/samples")
  inflight=$(sort -g "$tmp/inflight" | tail -1)
  # the startup notice that the fd limit is below 2 x AGENTD_MAX_CONNECTIONS
  # is expected here (the header says why); every other warning counts
  grep -v '"msg":"open-file limit' "$tmp/agentd-$run_n.log" >"$tmp/agentd-$run_n.warn" || true
  warns=$(grep -c '"level":"\(warn\|error\)"' "$tmp/agentd-$run_n.warn" || true)
  val() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $res"; }
  local errs
  errs=$(( $(val bad) + $(val connect) + $(val read) + $(val write) + $(val timeout) ))
  printf '%-7s %6s %5s %8s %8s %8s %8s %8s %6s %7s %7s %4s %6s %6s %5s %5s %4s %5s %s\n' \
    "$label" "$conns" "$(val ok)" "$(val turns_per_s)" "$(val p50_ms)" "$(val p90_ms)" \
    "$(val p99_ms)" "$(val max_ms)" "$errs" "$(awk -v k="${peak%% *}" 'BEGIN { printf "%.0f", k / 1024 }')" \
    "$(awk -v k="$hwm" 'BEGIN { printf "%.0f", k / 1024 }')" "$(cut -d' ' -f2 <<<"$peak")" \
    "$(cut -d' ' -f3 <<<"$peak")" "${inflight:-?}" "$fake_pending" "$acpu" "$fcpu" "$hcpu" \
    "$alive$hist conn/call=$conn_per_call warn/err_lines=$warns codes=$(val codes) c/r/w/t=$(val connect)/$(val read)/$(val write)/$(val timeout)$([ "$cap" -gt 0 ] && echo " cap=$cap/loop")" \
    | tee -a "$tmp/rows-$phase"
  grep '^FIRST_ERROR' <<<"$out" | head -1 | tee -a "$tmp/rows" || true
  if [ "$errs" -gt 0 ] || [ "$warns" -gt 0 ]; then
    # the kinds of warnings, without their time and request id
    grep '"level":"\(warn\|error\)"' "$tmp/agentd-$run_n.warn" |
      sed -e 's/"ts":"[^"]*",//' -e 's/"request_id":"[^"]*",//' | cut -c1-200 | sort | uniq -c |
      sort -rn | head -3 | sed 's/^ */  agentd log: /' | tee -a "$tmp/rows" || true
  fi
}

direct='hello'
tool='[[tool:search_shopping_catalog {"query":"cookies"}]] find cookies'
slow="[[fault:latency ms=$latency_ms]]"

echo "agentd $("$bin" version 2>/dev/null | cut -d' ' -f2- || true), $(nproc) cores shared by agentd ($loops loop threads," \
     "$workers workers), the fake model and wrk; Linux $(uname -r); fd limit $fd_limit per process" \
     "(hard limit $(ulimit -Hn); $want wanted for 2 x $largest + 400)"
echo "fake model: $fake_py; load: wrk -t$wrk_threads -c N --timeout 60s + bench/turns.lua; new session per turn"
echo "direct = 1 model call; tool = model -> search_shopping_catalog -> model (2 model calls, each with the latency)"
hdr() {
  printf '%-7s %6s %5s %8s %8s %8s %8s %8s %6s %7s %7s %4s %6s %6s %5s %5s %4s %5s %s\n' \
    kind N turns turns/s p50_ms p90_ms p99_ms max_ms errors rss_MB hwm_MB thr fds inflt fakeq aCPU% fCPU% host% notes
}
if [ "$fast_conns" -gt 0 ]; then
  phase=fast
  echo
  echo "== model latency 0 ms, $fast_conns connections, $fast_duration =="
  hdr
  run direct "$direct" "$fast_conns" "$fast_duration"
  run tool "$tool" "$fast_conns" "$fast_duration"
fi
session_conns=${SESSION_CONNECTIONS:-64}
session_warmup=${SESSION_WARMUP:-15s}
if [ "$session_conns" -gt 0 ]; then
  phase=session
  sessions=1
  echo
  echo "== long sessions: model latency 0 ms, $session_conns connections on $((2 * session_conns)) sessions," \
       "grown for $session_warmup, then $fast_duration =="
  hdr
  run direct "$direct" "$session_conns" "$fast_duration"
  run tool "$tool" "$session_conns" "$fast_duration"
  sessions=
fi
phase=slow
echo
echo "== model latency $latency_ms ms per call, N connections = N turns in flight, $duration each =="
hdr
for n in $sizes; do run direct "$direct $slow" "$n" "$duration" "$latency_ms"; done
for n in $tool_sizes; do run tool "$tool $slow" "$n" "$duration" "$latency_ms"; done

# the target: the largest direct size that ran, at the slow latency
last=$(awk '$1 == "direct" { row = $0 } END { print row }' "$tmp/rows-slow" 2>/dev/null || true)
if [ -n "$last" ]; then
  read -r _ n _ _ _ _ _ _ e rss hwm _ <<<"$last"
  peak_mb=$(( rss > hwm ? rss : hwm ))
  verdict=$(awk -v e="$e" -v m="$peak_mb" -v t="$rss_target_mb" 'BEGIN { print (e == 0 && m < t) ? "met" : "MISSED" }')
  echo
  echo "target at $latency_ms ms, N=$n in flight (the largest direct size run; the issue asks 10 000):" \
       "0 errors and peak RSS < $rss_target_mb MB -> errors $e, peak RSS $peak_mb MB: $verdict"
fi
