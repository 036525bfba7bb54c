#!/usr/bin/env bash
# Direct /chat turns on a database holding 1 million sessions against the
# same on a nearly empty one (issue #14: throughput flat within ±10 % as the
# database grows). Run through bench/sessions.sh GROW=1 or directly.
#   AGENTD_BIN=build-rel/agentd SESSIONS=1000000 ROUNDS=3 bench/sessions_grow.sh
#   (CONNECTIONS=50 DURATION=6s SEED_DURATION=4s; KEEP=dir keeps the grown
#   database there and reuses it on the next run)
# 1. Seed: a fresh agentd (nginx as the 0-ms model) runs SEED_DURATION of
#    new-session turns; its database is the small one.
# 2. Grow: a copy of it gets copies of every session with its messages,
#    events, turn, checkpoints and audit rows, under ids whose clock part is
#    set back (copy k: an id's first 4 hex digits after its prefix become
#    0100+k, i.e. years earlier, each copy in its own id range), times set
#    back k minutes and expiry kept (no sweeper deletes them mid-run), until
#    it holds SESSIONS sessions. New turns append after all of them, as on a
#    server whose database grew over time.
# 3. ROUNDS rounds, each a run on a fresh copy of the small database then
#    one on the grown one (bench/a2a_cpu.sh chat, DATA_DIR=): turns/s, p99,
#    agentd CPU per turn. Compare within a round: the machine drifts.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
want=${SESSIONS:-1000000}
rounds=${ROUNDS:-3}
bin=${AGENTD_BIN:-$root/build-bench/agentd}
for tool in wrk nginx sqlite3; do
  command -v "$tool" >/dev/null || { echo "bench/sessions_grow.sh: $tool is not installed" >&2; exit 1; }
done
[ -x "$bin" ] || { echo "bench/sessions_grow.sh: no agentd at $bin (set AGENTD_BIN)" >&2; exit 1; }
tmp=$(mktemp -d /tmp/agentd-bench-grow.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
big=${KEEP:-$tmp/big}
export AGENTD_BIN=$bin MODEL=nginx CONNECTIONS=${CONNECTIONS:-50} DURATION=${DURATION:-6s}
# copy K of the id in column C: its prefix_ kept, its first 4 clock digits
# replaced by 0100+K
copy_id() { echo "substr($1, 1, instr($1, '_')) || printf('%04x', $((256 + $2))) || substr($1, instr($1, '_') + 5)"; }
count() { sqlite3 "$1/agentd.db" 'SELECT count(*) FROM sessions'; }

mkdir -p "$tmp/seed"
DURATION=${SEED_DURATION:-4s} DATA_DIR=$tmp/seed bash "$root/bench/a2a_cpu.sh" chat >/dev/null
seed=$(count "$tmp/seed")
[ "$seed" -gt 0 ] || { echo "bench/sessions_grow.sh: the seed run made no session" >&2; exit 1; }

if [ ! -f "$big/agentd.db" ]; then
  mkdir -p "$big"
  cp "$tmp/seed/agentd.db" "$big/agentd.db"
  copies=$(( (want + seed - 1) / seed - 1 ))
  start=$(date +%s)
  {
    echo 'PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; PRAGMA foreign_keys=OFF;'
    echo "ATTACH '$tmp/seed/agentd.db' AS s;"
    for k in $(seq "$copies"); do
      sid=$(copy_id session_id "$k") id=$(copy_id id "$k")
      tid=$(copy_id turn_id "$k") tgt=$(copy_id target "$k")
      back=$((k * 60000))
      cat <<SQL
BEGIN;
INSERT INTO sessions SELECT $id, owner, context, created_at - $back, updated_at - $back, expires_at FROM s.sessions;
INSERT INTO messages SELECT $sid, seq, role, parts, created_at - $back FROM s.messages;
INSERT INTO turns SELECT $id, $sid, state, created_at - $back, updated_at - $back, interrupt_requested, instance, input, prompt_tokens, completion_tokens, cost_usd, calls FROM s.turns;
INSERT INTO events SELECT $sid, seq, CASE WHEN turn_id IS NULL THEN NULL ELSE $tid END, type, data, created_at - $back FROM s.events;
INSERT INTO checkpoints SELECT $tid, step, kind, payload, created_at - $back FROM s.checkpoints;
INSERT INTO audit (ts, principal, action, target, request_id, outcome, count) SELECT ts - $back, principal, action, $tgt, request_id, outcome, count FROM s.audit;
COMMIT;
SQL
    done
    echo "PRAGMA wal_checkpoint(TRUNCATE);"
  } | sqlite3 "$big/agentd.db" >/dev/null
  echo "grown: $(count "$big") sessions from $seed in $(( $(date +%s) - start )) s, $(du -m "$big/agentd.db" | cut -f1) MB"
fi
printf '%-6s %-22s %s\n' round database result
for r in $(seq "$rounds"); do
  rm -rf "$tmp/small"; mkdir -p "$tmp/small"; cp "$tmp/seed/agentd.db" "$tmp/small/agentd.db"
  n=$(count "$tmp/small")
  printf '%-6s %-22s %s\n' "$r" "$n sessions" "$(DATA_DIR=$tmp/small bash "$root/bench/a2a_cpu.sh" chat)"
  n=$(count "$big")
  printf '%-6s %-22s %s\n' "$r" "$n sessions" "$(DATA_DIR=$big bash "$root/bench/a2a_cpu.sh" chat)"
done
