# A 0-ms model for the benches: nginx answering every POST with one fixed
# chat completion (`return 200`), far cheaper per call than a Python fake.
# Sourced: nginx_model_start TMPDIR -> sets nginx_model_port, nginx_model_pid.
# Direct turns only: the answer never calls a tool.
nginx_model_start() {
  local dir=$1/nginx-model
  mkdir -p "$dir/tmp"
  chmod 755 "$1" "$dir"
  nginx_model_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat >"$dir/nginx.conf" <<NGINX
worker_processes ${NGINX_WORKERS:-1};
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 20000; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $dir/tmp;
  client_body_buffer_size 64k;
  server {
    listen 127.0.0.1:$nginx_model_port backlog=4096;
    location / {
      default_type application/json;
      return 200 '{"id":"chatcmpl-nginx","object":"chat.completion","created":0,"model":"fake","choices":[{"index":0,"message":{"role":"assistant","content":"echo: hello"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":8,"total_tokens":18}}';
    }
  }
}
NGINX
  nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" &
  nginx_model_pid=$!
  for _ in $(seq 100); do
    curl -fsS -o /dev/null --max-time 1 -d '{}' "http://127.0.0.1:$nginx_model_port/v1/chat/completions" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench: nginx (the model) did not start" >&2; cat "$dir/error.log" >&2; return 1
}
