#!/usr/bin/env bash
# Turns/s and checkout flows/s for one box (SQLite) vs 1 and 2 replicas on
# PostgreSQL + Redis behind haproxy, and the failover time of a SIGKILLed replica.
#   bench/replicas.sh          (Release build in build-rel, or $AGENTD_BIN)
#   DURATION=10s CONNECTIONS=32 bench/replicas.sh
# Load: wrk with bench/turns.lua ("hello", a new session per turn, on the
# built-in offline model: no model latency, so the store is what is measured)
# and bench/checkout.lua (create + complete per flow), against agentd or
# haproxy started here on loopback (tests/e2e/agentd_harness.py: Server,
# PostgresServer, RedisServer, HaproxyServer). Failover: under a steady
# GET loop through haproxy, SIGKILL replica r0 and time (a) until haproxy
# marks it DOWN and (b) until a turn it was running (its model call hung,
# AGENTD_INSTANCE_DEAD_AFTER=2s) completes on r1. Everything shares the
# machine's cores with wrk, haproxy and PostgreSQL.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
command -v wrk >/dev/null || { echo "bench/replicas.sh: wrk is not installed" >&2; exit 1; }
if [ -z "${AGENTD_BIN:-}" ]; then
  cmake -S "$root" -B "$root/build-rel" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$root/build-rel" -j2 --target agentd >/dev/null
  export AGENTD_BIN=$root/build-rel/agentd
fi
exec /usr/bin/python3 "$root/bench/replicas.py"
