#!/usr/bin/env bash
# Descriptors and memory for N turns in flight, HTTP/2 vs HTTP/1.1 to the
# model (issue #14 item 3): agentd -> a TLS model (h2 by ALPN; a certificate
# made here, trusted through AGENTD_LLM_CA_BUNDLE) answering after DELAY_MS.
# MODEL=node (default): bench/h2_model.js, node's own http2 server, which
# holds 10 000 streams cheaply; MODEL=nginx: nginx 1.22 (TLS, h2) proxying to
# bench/fake_llm_fast.py (one upstream connection per waiting call). For each
# of MODES (auto = HTTP/2, off = HTTP/1.1) wrk keeps N /chat turns in flight
# for DURATION s (3 x the delay); mid-run it counts agentd's open
# descriptors, its TCP connections to the model and VmRSS; the result line
# adds wrk's turns/s, p50/p99 and errors (bench/turns.lua), and MODEL=node
# the model's connections accepted and peak waiting calls.
#   N=1000 DELAY_MS=3000 AGENTD_BIN=build/agentd bench/llm_fds.sh
#   N=10000 DELAY_MS=2000 MODES=auto bench/llm_fds.sh
#   HEAPTRACK=/tmp/ht N=2000 DELAY_MS=2000 MODES=auto bench/llm_fds.sh
#     runs agentd under heaptrack (output /tmp/ht.*.zst; its fds and RSS
#     figures are then heaptrack's, not agentd's)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${N:-1000}
delay=${DELAY_MS:-3000}
model_kind=${MODEL:-node}
modes=${MODES:-auto off}
duration=${DURATION:-$(( delay * 3 / 1000 ))}
bin=${AGENTD_BIN:-$root/build/agentd}
tmp=$(mktemp -d /tmp/agentd-bench-fds.XXXXXX)
chmod 755 "$tmp"
pids=()
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout "$tmp/key.pem" -out "$tmp/cert.pem" \
  -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null
if [ "$model_kind" = node ]; then
  node "$root/bench/h2_model.js" --port 0 --delay-ms "$delay" --cert "$tmp/cert.pem" --key "$tmp/key.pem" \
    > "$tmp/model.out" 2> "$tmp/model.err" &
  pids+=($!)
  for _ in $(seq 50); do [ -s "$tmp/model.out" ] && break; sleep 0.1; done
  nport=$(head -1 "$tmp/model.out")
  model_desc="node $(node --version) http2 (TLS)"
else
  python3 -u "$root/bench/fake_llm_fast.py" --port 0 --delay-ms "$delay" > "$tmp/fake.out" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do [ -s "$tmp/fake.out" ] && break; sleep 0.1; done
  fport=$(head -1 "$tmp/fake.out")
  nport=$(free_port)
  cat > "$tmp/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $tmp/nginx.pid;
error_log $tmp/nginx-error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 16000; }
http {
  access_log off;
  client_body_temp_path $tmp/body;
  proxy_temp_path $tmp/proxy;
  http2_max_concurrent_streams 1000;
  keepalive_requests 1000000;
  upstream fake { server 127.0.0.1:$fport; keepalive 2000; }
  server {
    listen 127.0.0.1:$nport ssl http2;
    ssl_certificate $tmp/cert.pem;
    ssl_certificate_key $tmp/key.pem;
    location / { proxy_pass http://fake; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGINX
  nginx -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/nginx-error.log" &
  pids+=($!)
  sleep 1
  model_desc="nginx $(nginx -v 2>&1 | cut -d/ -f2) (TLS)"
fi

echo "N=$n turns in flight, model ${delay} ms behind $model_desc, $(curl --version | head -1 | cut -d' ' -f1-3)"
for mode in $modes; do
  aport=$(free_port)
  env -u AGENTD_BIN AGENTD_QUOTA_SESSIONS=0 AGENTD_QUOTA_IDEMPOTENCY_KEYS=0 AGENTD_HOST=127.0.0.1 AGENTD_PORT=$aport AGENTD_DATA_DIR="$tmp/data-$mode" AGENTD_ACCESS_LOG=off \
    AGENTD_THREADS=2 AGENTD_MAX_CONNECTIONS=$((n + 100)) AGENTD_DRAIN_TIMEOUT=2s \
    AGENTD_LLM_URL="https://127.0.0.1:$nport/v1" AGENTD_LLM_MODEL=fake AGENTD_LLM_HTTP2=$mode \
    AGENTD_LLM_CA_BUNDLE="$tmp/cert.pem" AGENTD_LLM_TIMEOUT=60s \
    ${HEAPTRACK:+heaptrack -o "$HEAPTRACK-$mode"} "$bin" serve > "$tmp/agentd-$mode.log" 2>&1 &
  apid=$!
  pids+=($apid)
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$aport/readyz" >/dev/null && break; sleep 0.1; done
  base_fds=$(ls /proc/$apid/fd | wc -l)
  wrk -t2 -c"$n" -d"${duration}s" --timeout 60s -s "$root/bench/turns.lua" \
    "http://127.0.0.1:$aport/chat" > "$tmp/wrk-$mode.txt" 2>&1 &
  wpid=$!
  sleep $(( duration / 2 + 1 ))
  fds=$(ls /proc/$apid/fd | wc -l)
  model=$(ss -tnp state established "( dport = :$nport )" 2>/dev/null | grep -c "pid=$apid," || true)
  rss=$(awk '/VmRSS/ {print $2}' /proc/$apid/status)
  wait $wpid || true
  turns=$(grep -m1 '^RESULT' "$tmp/wrk-$mode.txt" | sed 's/^RESULT //' || true)
  mstats=""
  [ "$model_kind" = node ] && mstats=$(curl -sk --http2 "https://127.0.0.1:$nport/admin/stats" || true)
  printf 'HTTP2=%-4s  idle fds %4d  in flight: fds %5d, model connections %5d, RSS %6d KiB\n  wrk: %s\n  model: %s\n' \
    "$mode" "$base_fds" "$fds" "$model" "$rss" "$turns" "$mstats"
  if [ -n "${HEAPTRACK:-}" ]; then # agentd is heaptrack's child: stop it, heaptrack writes its file
    for c in $(pgrep -P $apid); do kill -TERM "$c"; done
  else
    kill -TERM $apid
  fi
  wait $apid 2>/dev/null || true
done
