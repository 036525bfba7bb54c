#!/usr/bin/env bash
# Serving-core throughput: agentd's GET /healthz against nginx serving the same
# 18-byte body from a file, both on loopback, under the same wrk load.
#   bench/http.sh            (Release build in build-rel, or $AGENTD_BIN)
#   DURATION=10s CONNECTIONS=100 THREADS=2 ROUNDS=3 WARMUP=2s bench/http.sh
# Targets: agentd with the access log off, agentd with the access log on (to
# /dev/null), nginx with access_log off. ROUNDS interleaved rounds of one wrk
# run per target; prints the median req/s and p99 (with their range), errors,
# and the ratio to nginx. Everything it starts is stopped on exit. wrk shares
# the machine's cores with the server under test.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
duration=${DURATION:-10s}
conns=${CONNECTIONS:-100}
threads=${THREADS:-2}
warmup=${WARMUP:-2s}
rounds=${ROUNDS:-3}

for tool in wrk nginx curl; do
  command -v "$tool" >/dev/null || { echo "bench/http.sh: $tool is not installed" >&2; exit 1; }
done

if [ -n "${AGENTD_BIN:-}" ]; then
  bin=$AGENTD_BIN
else
  cmake -S "$root" -B "$root/build-rel" -DCMAKE_BUILD_TYPE=Release >/dev/null
  make -C "$root/build-rel" -j"$(nproc)" agentd >/dev/null
  bin=$root/build-rel/agentd
fi
[ -x "$bin" ] || { echo "bench/http.sh: no agentd binary at $bin" >&2; exit 1; }

tmp=$(mktemp -d /tmp/agentd-bench-http.XXXXXX)
chmod 755 "$tmp"                      # nginx workers run unprivileged
pids=()

cleanup() {
  set +e
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_up() { # url
  for _ in $(seq 100); do
    curl -fsS -o /dev/null --max-time 1 "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "bench/http.sh: $1 did not come up" >&2
  return 1
}

# one wrk run -> "rps p99_ms errors"
run_wrk() { # url label
  local out
  out=$(wrk -t"$threads" -c"$conns" -d"$duration" --latency "$1")
  echo "$out" >> "$tmp/wrk-$2.txt"
  awk '
    function ms(v) {
      if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
      if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
      if (v ~ /s$/)  return substr(v, 1, length(v) - 1) * 1000
      return v + 0
    }
    /Requests\/sec:/ { rps = $2 }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx or 3xx responses:/ { err += $NF }
    /Socket errors:/ { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) err += $i + 0 }
    END { printf "%.0f %.3f %d\n", rps, p99, err }' <<<"$out"
}

median() { tr ' ' '\n' <<<"$1" | grep . | sort -g |
  awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
span() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo "-" hi }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

start_agentd() { # access_log -> sets port
  port=$(free_port)
  # env -u: agentd refuses unknown AGENTD_* variables, AGENTD_BIN included
  env -u AGENTD_BIN AGENTD_HOST=127.0.0.1 AGENTD_PORT=$port AGENTD_ACCESS_LOG=$1 AGENTD_DATA_DIR=$tmp/data-$1 \
    "$bin" serve >/dev/null 2>"$tmp/agentd-$1.err" &
  pids+=($!)
  wait_up "http://127.0.0.1:$port/healthz"
}

# ---- the three servers (an idle one costs nothing; wrk hits one at a time) ----
start_agentd off; port_off=$port
start_agentd on; port_on=$port
declare -A pid=([off]=${pids[0]} [on]=${pids[1]})

nport=$(free_port)
mkdir -p "$tmp/www" "$tmp/ngx"
printf '%s' '{"status":"alive"}' > "$tmp/www/healthz"
chmod 755 "$tmp/www"; chmod 644 "$tmp/www/healthz"
cat > "$tmp/nginx.conf" <<NGINX
worker_processes 2;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nodelay on;
  open_file_cache max=16;
  keepalive_requests 1000000;
  client_body_temp_path $tmp/ngx/body;
  proxy_temp_path $tmp/ngx/proxy;
  fastcgi_temp_path $tmp/ngx/fastcgi;
  uwsgi_temp_path $tmp/ngx/uwsgi;
  scgi_temp_path $tmp/ngx/scgi;
  server {
    listen 127.0.0.1:$nport;
    root $tmp/www;
    location = /healthz { default_type application/json; }
  }
}
NGINX
nginx -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/nginx-error.log" &
pids+=($!)
pid[nginx]=$!
wait_up "http://127.0.0.1:$nport/healthz"

declare -A url=([off]="http://127.0.0.1:$port_off/healthz" [on]="http://127.0.0.1:$port_on/healthz"
                [nginx]="http://127.0.0.1:$nport/healthz")
for t in off on nginx; do
  body=$(curl -fsS "${url[$t]}")
  [ "$body" = '{"status":"alive"}' ] || { echo "bench/http.sh: ${url[$t]} serves '$body'" >&2; exit 1; }
done

# ---- rounds, interleaved so drift and noise hit all three alike ----
declare -A rps p99 err
for t in off on nginx; do
  wrk -t"$threads" -c"$conns" -d"$warmup" "${url[$t]}" >/dev/null
done
for _ in $(seq "$rounds"); do
  for t in off on nginx; do
    read -r a b c < <(run_wrk "${url[$t]}" "$t")
    if ! kill -0 "${pid[$t]}" 2>/dev/null; then
      wait "${pid[$t]}" && rc=0 || rc=$?
      echo "bench/http.sh: the '$t' server (pid ${pid[$t]}) died during the run, exit $rc" >&2
      cat "$tmp/agentd-$t.err" "$tmp/nginx-error.log" 2>/dev/null | tail -20 >&2
      exit 1
    fi
    rps[$t]="${rps[$t]:-} $a"
    p99[$t]="${p99[$t]:-} $b"
    err[$t]=$(( ${err[$t]:-0} + c ))
  done
done

# ---- report ----
n_rps=$(median "${rps[nginx]}")
echo "agentd $("$bin" version | cut -d' ' -f2-), nginx $(nginx -v 2>&1 | cut -d/ -f2), $(nproc) cores, Linux $(uname -r)"
echo "wrk -t$threads -c$conns -d$duration --latency; $rounds interleaved rounds after a $warmup warm-up each; loopback; GET /healthz (18-byte body)"
echo "median of the rounds [range]"
printf '%-34s %22s %20s %7s %6s\n' server req/s p99_ms errors ratio
row() { # label key
  printf '%-34s %22s %20s %7s %6s\n' "$1" "$(printf %.0f "$(median "${rps[$2]}")") [$(span "${rps[$2]}")]" \
    "$(printf %.2f "$(median "${p99[$2]}")") [$(span "${p99[$2]}")]" "${err[$2]}" \
    "$(ratio "$(median "${rps[$2]}")" "$n_rps")"
}
row "agentd, access log off" off
row "agentd, access log on (/dev/null)" on
row "nginx, access_log off" nginx
ok=$(awk -v r="$(ratio "$(median "${rps[off]}")" "$n_rps")" -v p="$(median "${p99[off]}")" \
  -v e="${err[off]}" 'BEGIN { print (r >= 0.5 && p < 5 && e == 0) ? "met" : "MISSED" }')
echo "target (agentd, access log off, medians): ratio >= 0.5, p99 < 5 ms, no errors: $ok"
