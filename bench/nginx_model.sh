# A 0-ms model for the benches: nginx answering every POST with one fixed
# chat completion (`return 200`), far cheaper per call than a Python fake.
# Sourced: nginx_model_start TMPDIR [direct|tool] -> sets nginx_model_port,
# nginx_model_pid. direct: the answer never calls a tool.
# tool: a turn's first call gets a search_shopping_catalog tool call, its
# second (the tool's result appended, so a longer body) the final text. nginx
# reads no body: a `map` on the request's Content-Length tells the two
# apart, with a threshold nginx_model_calibrate URL finds once agentd is up
# (one /chat turn while every call gets the tool call; its first two calls'
# lengths logged; the threshold halfway between; nginx reloaded).
# NGINX_MODEL_DELAY_MS=N (default 0): every answer after N ms, taken by the
# echo module's timer (`echo_sleep`, libnginx-mod-http-echo, a dependency of
# nginx-light; no worker is held), for turns.sh's slow phase (MODEL=nginx).
# GET /admin/nginx is stub_status (accepts / requests = new model
# connections per call; Writing = requests in flight, the pending answers).
nginx_model_conf() { # dir port mode threshold
  local dir=$1 port=$2 mode=$3 t=$4 final tool re
  final='{"id":"chatcmpl-nginx","object":"chat.completion","created":0,"model":"fake","choices":[{"index":0,"message":{"role":"assistant","content":"echo: hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":8,"total_tokens":18}}'
  tool='{"id":"chatcmpl-nginx","object":"chat.completion","created":0,"model":"fake","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"search_shopping_catalog","arguments":"{\\"query\\":\\"cookies\\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":10,"completion_tokens":8,"total_tokens":18}}'
  # a regex matching every decimal number >= t (t > 0): longer numbers, or
  # t's own length with a larger digit at the first place they differ
  re=$(python3 -c '
import sys
t = sys.argv[1]; n = len(t); alts = ["[1-9][0-9]{%d,}" % n, t]
for i, d in enumerate(t):
    if d != "9":
        alts.append(t[:i] + "[%d-9]" % (int(d) + 1) + ("[0-9]{%d}" % (n - i - 1) if i < n - 1 else ""))
print("^(" + "|".join(alts) + ")$")' "$t")
  local delay_ms=${NGINX_MODEL_DELAY_MS:-0} answer load=''
  if [ "$delay_ms" -gt 0 ]; then
    load='load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;'
    answer="echo_sleep $(awk -v m="$delay_ms" 'BEGIN { printf "%.3f", m / 1000 }'); echo -n \$model_reply;"
  else
    answer='return 200 $model_reply;'
  fi
  cat >"$dir/nginx.conf" <<NGINX
$load
worker_processes ${NGINX_WORKERS:-1};
worker_rlimit_nofile $(ulimit -Hn | sed 's/unlimited/1048576/');
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 20000; }
http {
  keepalive_requests 1000000;
  client_body_temp_path $dir/tmp;
  client_body_buffer_size 64k;
  log_format lengths '\$http_content_length';
  access_log $( [ "$mode" = calibrate ] && echo "$dir/lengths.log lengths" || echo off );
  map \$http_content_length \$model_reply {
    "~$re" '$final';
    default '$( [ "$mode" = direct ] && echo "$final" || echo "$tool" )';
  }
  server {
    listen 127.0.0.1:$port backlog=4096;
    location = /admin/nginx { stub_status; }
    location / {
      default_type application/json;
      $answer
    }
  }
}
NGINX
}

nginx_model_start() {
  local dir=$1/nginx-model mode=${2:-direct}
  mkdir -p "$dir/tmp"
  chmod 755 "$1" "$dir"
  nginx_model_dir=$dir
  nginx_model_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  # direct: every length gets the final text; tool: every length the tool
  # call until calibrated
  if [ "$mode" = tool ]; then
    nginx_model_conf "$dir" "$nginx_model_port" calibrate 999999999
  else
    nginx_model_conf "$dir" "$nginx_model_port" direct 1
  fi
  nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" &
  nginx_model_pid=$!
  for _ in $(seq 100); do
    curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$nginx_model_port/admin/nginx" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench: nginx (the model) did not start" >&2; cat "$dir/error.log" >&2; return 1
}

nginx_model_calibrate() { # agentd base URL (tool mode only)
  local dir=$nginx_model_dir l1 l2 t
  : >"$dir/lengths.log"
  curl -sS -o /dev/null --max-time 30 -H 'Content-Type: application/json' \
    -d '{"message":"find cookies"}' "$1/chat" || true
  # the probe's own '{}' is not in this log (truncated above)
  l1=$(sed -n 1p "$dir/lengths.log") l2=$(sed -n 2p "$dir/lengths.log")
  if [ -z "$l1" ] || [ -z "$l2" ] || [ "$l2" -le "$l1" ]; then
    echo "bench: nginx model calibration saw lengths '${l1:-}' '${l2:-}'" >&2; return 1
  fi
  t=$(( (l1 + l2) / 2 ))
  nginx_model_conf "$dir" "$nginx_model_port" tool "$t"
  kill -HUP "$nginx_model_pid"
  sleep 0.5
  local out
  out=$(curl -sS --max-time 30 -H 'Content-Type: application/json' -d '{"message":"find cookies"}' "$1/chat")
  grep -q '"answer":"echo: hello"' <<<"$out" || { echo "bench: nginx tool model: no final answer after the tool: $out" >&2; return 1; }
  echo "bench: nginx tool model: first call $l1 bytes, second $l2, threshold $t" >&2
}
