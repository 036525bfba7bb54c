# Shared by the bench scripts (sourced): stop_pid PID stops a process this
# script started, TERM first, KILL after 10 s, and reaps it; no PID, no-op.
stop_pid() {
  [ -n "$1" ] || return 0
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
