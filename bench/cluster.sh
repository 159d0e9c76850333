#!/usr/bin/env bash
# Scale-out benchmark: the same fan-out load (bench/fanout: N overlay sockets, one saver PATCHing as fast as it can)
# against (a) one engine on the embedded store, (b) one engine on Redis, (c) three engines on one Redis behind nginx
# (round robin: sockets and saves spread over the engines). Prints the load generator's figures, the engines' and
# Redis' CPU seconds over the run, and the scene bytes per change with and without deltas (from /api/metrics/realtime).
#   bench/cluster.sh [seconds-per-run] [overlays-per-engine]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
per_engine=${2:-1000}
ulimit -n 65536 2>/dev/null || ulimit -n 8192

swift build -c release --product overlay-engine 2>&1 | grep -E "error|Build" | tail -1
FANOUT=${FANOUT:-bench/fanout/.build/release/fanout}   # another build of the load generator may be named here
if [[ "$FANOUT" == bench/fanout/.build/release/fanout ]]; then (cd bench/fanout && swift build -c release 2>&1 | grep -E "error|Build" | tail -1); fi

work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_seconds() { # utime+stime of a pid, in seconds
  awk -v hz="$(getconf CLK_TCK)" '{print ($14+$15)/hz}' "/proc/$1/stat"
}

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly yes --appendfsync always --dir "$work" >/dev/null &
redis=$!; pids+=("$redis")
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

start_engine() { # name backend -> prints "pid port"
  local dir="$work/$1" port; port=$(free_port); mkdir -p "$dir"
  cat > "$dir/overlay.yaml" <<YAML
storage:
  backend: $2
limits:
  rate:
    scene.save: {burst: 1000000, per_minute: 100000000}
plugins: []
YAML
  (cd "$dir" && REDIS_URL="redis://127.0.0.1:$redis_port/0" STREAMER_API_TOKEN=bench PORT=$port LOG_LEVEL=warning \
     exec "$OLDPWD/.build/release/overlay-engine" serve --config overlay.yaml) 2>"$dir/log" &
  local pid=$!
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
  echo "$pid $port"
}

bytes_per_change() { # port -> the scene bytes this engine built as full frames and sent instead (patches where smaller)
  curl -fs -H 'x-streamer-token: bench' "http://127.0.0.1:$1/api/metrics/realtime" | python3 -c '
import json, sys
r = json.load(sys.stdin)
print("scene_frame_bytes=%d scene_bytes_sent=%d" % (r["scene_frame_bytes"], r["scene_bytes_sent"]))'
}

run() { # label url clients engine-pids...
  local label=$1 url=$2 clients=$3; shift 3
  local before=() pid; for pid in "$@" "$redis"; do before+=("$(cpu_seconds "$pid")"); done
  echo "--- $label: $clients overlays"
  "$FANOUT" --url "$url" --clients "$clients" --seconds "$seconds" --token bench
  local i=0 line="cpu_seconds"; for pid in "$@" "$redis"; do
    line+=" $( [[ $pid == "$redis" ]] && echo redis || echo engine$i )=$(python3 -c "print(round($(cpu_seconds "$pid")-${before[$i]},2))")"; i=$((i+1)); done
  echo "$line"
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -sr); $seconds s of saving per run"

read -r e1 p1 < <(start_engine single-embedded embedded); pids+=("$e1")
run "one engine, embedded store" "http://127.0.0.1:$p1" "$per_engine" "$e1"
echo "bytes: $(bytes_per_change "$p1")"
kill "$e1"; wait "$e1" 2>/dev/null || true

read -r e2 p2 < <(start_engine single-redis redis); pids+=("$e2")
run "one engine, redis" "http://127.0.0.1:$p2" "$per_engine" "$e2"
echo "bytes: $(bytes_per_change "$p2")"
kill "$e2"; wait "$e2" 2>/dev/null || true

engines=(); ports=()
for n in 0 1 2; do read -r pid port < <(start_engine "cluster$n" redis); pids+=("$pid"); engines+=("$pid"); ports+=("$port"); done
nginx_port=$(free_port); mkdir -p "$work/nginx"
servers=""; for port in "${ports[@]}"; do servers+="server 127.0.0.1:$port;"; done
cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes 1; daemon off; pid $work/nginx/nginx.pid; error_log $work/nginx/error.log warn;
worker_rlimit_nofile 65536;
events { worker_connections 16384; }
http { access_log off; client_body_temp_path $work/nginx/b; proxy_temp_path $work/nginx/p; fastcgi_temp_path $work/nginx/f;
  uwsgi_temp_path $work/nginx/u; scgi_temp_path $work/nginx/s;
  upstream engines { $servers keepalive 64; }
  map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
  server { listen 127.0.0.1:$nginx_port;
    location / { proxy_pass http://engines; proxy_http_version 1.1; proxy_set_header Upgrade \$http_upgrade;
      proxy_set_header Connection \$connection_upgrade; proxy_read_timeout 3600s; } } }
NGINX
/usr/sbin/nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" & ngx=$!; pids+=("$ngx")
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$nginx_port/healthz" >/dev/null && break; sleep 0.1; done
run "three engines on one redis behind nginx" "http://127.0.0.1:$nginx_port" $((3 * per_engine)) "${engines[@]}" "$ngx"
for port in "${ports[@]}"; do echo "bytes engine :$port: $(bytes_per_change "$port")"; done
curl -fs -H 'x-streamer-token: bench' "http://127.0.0.1:${ports[0]}/api/metrics/realtime" | python3 -c '
import json,sys; r=json.load(sys.stdin); print("cluster:", json.dumps(r["cluster"]))'
