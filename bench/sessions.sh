#!/usr/bin/env bash
# Memory and rate of N in-flight turns on long sessions, against a fake model
# with a 2 s latency per call.
#   bench/sessions.sh                    (Release build in build-bench, or $AGENTD_BIN)
#   N="500 2000" KIND="direct tool" MESSAGES=200 DURATION=20s bench/sessions.sh
# For each KIND and N: a fresh agentd (temp dir, loopback, access log off, 2
# loops, 4 workers) makes N sessions with one turn each (direct: "hello" -> one
# model call; tool: the catalog search, then a second model call), is stopped,
# and every session's messages are repeated in its database until it holds
# MESSAGES (default 200) — a long session without running the turns. Then
# agentd starts again and wrk (bench/turns.lua with TURN_SESSIONS, -c N) keeps
# one turn in flight on each session for DURATION, the model answering after
# 2 s: so every turn sends a full window of earlier messages (up to
# AGENTD_HISTORY_MAX_BYTES, passed through). agentd's VmRSS is sampled every
# 0.25 s. Columns: kind, N, window (mean bytes of stored JSON a session's
# window holds, at most AGENTD_HISTORY_MAX_BYTES), turns, turns/s, p50/p99 ms,
# errors, peak RSS MB, and RSS per in-flight turn above a new agentd's
# (its RSS before the run).
#   GROW=1 bench/sessions.sh: throughput on a database of 1 million sessions
#   against a nearly empty one instead (bench/sessions_grow.sh)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ -z "${GROW:-}" ] || exec bash "$root/bench/sessions_grow.sh"
sizes=${N:-500 2000}
kinds=${KIND:-direct tool}
messages=${MESSAGES:-200}
duration=${DURATION:-20s}
for tool in wrk curl python3; do
  command -v "$tool" >/dev/null || { echo "bench/sessions.sh: $tool is not installed" >&2; exit 1; }
done
if [ -n "${AGENTD_BIN:-}" ]; then
  bin=$AGENTD_BIN
else
  cmake -S "$root" -B "$root/build-bench" -DCMAKE_BUILD_TYPE=Release >/dev/null
  make -C "$root/build-bench" -j"$(nproc)" agentd >/dev/null
  bin=$root/build-bench/agentd
fi
largest=0
for n in $sizes; do [ "$n" -gt "$largest" ] && largest=$n; done
ulimit -n "$(ulimit -Hn)"
[ "$(ulimit -n)" -ge $((2 * largest + 400)) ] ||
  { echo "bench/sessions.sh: fd limit $(ulimit -n) < 2 x $largest + 400" >&2; exit 1; }

tmp=$(mktemp -d /tmp/agentd-bench-sessions.XXXXXX)
apid='' fpid='' spid=''
. "$root/bench/lib.sh"
cleanup() { set +e; stop_pid "$spid"; stop_pid "$apid"; stop_pid "$fpid"; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
start_agentd() { # data dir
  env -u AGENTD_BIN AGENTD_QUOTA_SESSIONS=0 AGENTD_HOST=127.0.0.1 AGENTD_PORT=$aport AGENTD_DATA_DIR="$1" AGENTD_ACCESS_LOG=off \
    AGENTD_WORKERS=4 AGENTD_THREADS=2 AGENTD_DRAIN_TIMEOUT=5s AGENTD_MAX_CONNECTIONS=$((largest + 100)) \
    AGENTD_LLM_URL="http://127.0.0.1:$fport/v1" AGENTD_LLM_MODEL=fake \
    "$bin" serve >>"$tmp/agentd.log" 2>&1 &
  apid=$!
  for _ in $(seq 100); do
    curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$aport/readyz" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench/sessions.sh: agentd did not become ready" >&2; cat "$tmp/agentd.log" >&2; exit 1
}

printf '%-6s %6s %8s %6s %8s %8s %8s %6s %7s %9s\n' kind N window turns turns/s p50_ms p99_ms errors rss_MB KB/turn
for kind in $kinds; do
  case $kind in
    direct) msg='hello' ;;
    tool) msg='[[tool:search_shopping_catalog {"query":"cookies"}]] find cookies' ;;
    *) echo "bench/sessions.sh: KIND is direct or tool" >&2; exit 2 ;;
  esac
  for n in $sizes; do
    data=$tmp/data-$kind-$n
    python3 "$root/bench/fake_llm_fast.py" --port 0 >"$tmp/fake.out" 2>"$tmp/fake.err" &
    fpid=$!
    for _ in $(seq 100); do fport=$(head -1 "$tmp/fake.out" 2>/dev/null || true); [ -n "$fport" ] && break; sleep 0.05; done
    aport=$(free_port)
    start_agentd "$data"
    python3 - "$n" "$msg" "$aport" >"$tmp/sessions" <<'PY'
import concurrent.futures, json, sys, urllib.request
n, msg, port = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def one(_):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/chat",
                                 data=json.dumps({"message": msg}).encode(),
                                 headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(req, timeout=60))["session_id"]
with concurrent.futures.ThreadPoolExecutor(32) as ex:
    for sid in ex.map(one, range(n)):
        print(sid)
PY
    stop_pid "$apid"; apid=
    python3 - "$data/agentd.db" "$messages" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
want = int(sys.argv[2])
for (s,) in db.execute("SELECT DISTINCT session_id FROM messages").fetchall():
    rows = db.execute("SELECT role, parts, created_at FROM messages WHERE session_id = ? "
                      "ORDER BY seq", (s,)).fetchall()
    seq, out = len(rows), []
    while seq < want:
        for r in rows:
            seq += 1
            out.append((s, seq, r[0], r[1], r[2]))
    db.executemany("INSERT INTO messages(session_id, seq, role, parts, created_at) "
                   "VALUES(?, ?, ?, ?, ?)", out)
db.commit()
PY
    window=$(python3 - "$data/agentd.db" "${AGENTD_HISTORY_MAX_BYTES:-65536}" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
cap = int(sys.argv[2])
tot = n = 0
for (s,) in db.execute("SELECT DISTINCT session_id FROM messages").fetchall():
    b = 0
    for (p,) in db.execute("SELECT parts FROM messages WHERE session_id = ? ORDER BY seq DESC "
                           "LIMIT 200", (s,)):
        if b + len(p) + 1 > cap:
            break
        b += len(p) + 1
    tot, n = tot + b, n + 1
print(tot // max(1, n))
PY
)
    start_agentd "$data"
    base=$(awk '/^VmRSS:/ { print $2 }' "/proc/$apid/status")
    : >"$tmp/rss"
    ( while kill -0 "$apid" 2>/dev/null; do
        awk '/^VmRSS:/ { print $2 }' "/proc/$apid/status" 2>/dev/null >>"$tmp/rss" || true; sleep 0.25
      done ) & spid=$!
    out=$(TURN_MESSAGE="$msg [[fault:latency ms=2000]]" TURN_SESSIONS="$tmp/sessions" TURN_THREADS=2 \
          wrk -t2 -c"$n" -d"$duration" --timeout 60s -s "$root/bench/turns.lua" \
          "http://127.0.0.1:$aport" 2>&1 || true)
    peak=$(sort -n "$tmp/rss" | tail -1)
    stop_pid "$spid"; spid=
    stop_pid "$apid"; apid=
    stop_pid "$fpid"; fpid=
    rm -rf "$data"
    res=$(grep '^RESULT' <<<"$out" || echo "RESULT ok=0 bad=0 turns_per_s=0 p50_ms=0 p99_ms=0 connect=0 read=0 write=0 timeout=0")
    val() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $res"; }
    errs=$(( $(val bad) + $(val connect) + $(val read) + $(val write) + $(val timeout) ))
    printf '%-6s %6s %8s %6s %8s %8s %8s %6s %7s %9s\n' "$kind" "$n" "$window" "$(val ok)" \
      "$(val turns_per_s)" "$(val p50_ms)" "$(val p99_ms)" "$errs" \
      "$(awk -v k="$peak" 'BEGIN { printf "%.0f", k / 1024 }')" \
      "$(awk -v p="$peak" -v b="$base" -v n="$n" 'BEGIN { printf "%.0f", (p - b) / n }')"
  done
done
