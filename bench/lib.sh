# Shared by bench/perf.sh and bench/http.sh: builds, a pinned release engine, /proc readings.
# Pinning: the engine (and the bare app) on core $ENGINE_CPU, load generators on core $LOAD_CPU.
ENGINE_CPU=${ENGINE_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ENGINE_BIN=${ENGINE_BIN:-$ROOT/.build/release/overlay-engine}

# Room for 20,000 sockets on each side (root may raise the hard limit; others keep theirs).
ulimit -Hn 65536 2>/dev/null || true
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

machine() {
  echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -sr), $(swift --version 2>/dev/null | head -1 | sed 's/ (.*//')"
  local built="git $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- Sources || echo '+dirty')"
  [[ $ENGINE_BIN == "$ROOT/.build/release/overlay-engine" ]] || built="built elsewhere"
  echo "engine: $ENGINE_BIN ($built), pinned to cpu $ENGINE_CPU; load on cpu $LOAD_CPU; load average $(cut -d' ' -f1-3 /proc/loadavg)"
}

build_engine() {
  [[ -n ${NO_BUILD:-} ]] && return
  (cd "$ROOT" && swift build -c release --product overlay-engine 2>&1 | grep -E "error|Build" | tail -1)
}

# The bench packages (fanout, bare) share one scratch folder, so NIO and Hummingbird are built once for both.
BENCH_BUILD=$ROOT/bench/fanout/.build
build_package() { # bench/<name>
  [[ -n ${NO_BUILD:-} ]] && return
  swift build -c release --package-path "$ROOT/bench/$1" --scratch-path "$BENCH_BUILD" 2>&1 | grep -E "error|Build" | tail -1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_engine <workdir>: sets ENGINE_PID and ENGINE_URL. LOG_LEVEL defaults to info, as `make run` serves;
# the log goes to <workdir>/engine.log (a real file, as a deployment's log would).
start_engine() {
  local work=$1 port
  port=$(free_port)
  cat > "$work/overlay.yaml" <<YAML
server:
  max_connections: 30000
limits:
  rate:
    scene.save: {burst: 1000000, per_minute: 100000000}
plugins: []
YAML
  (cd "$work" && STREAMER_API_TOKEN=bench PORT=$port LOG_LEVEL=${LOG_LEVEL:-info} WEB_DIR="$ROOT/web" \
    exec taskset -c "$ENGINE_CPU" "$ENGINE_BIN" serve --config overlay.yaml) >"$work/engine.log" 2>&1 &
  ENGINE_PID=$!
  ENGINE_URL=http://127.0.0.1:$port
  for _ in $(seq 200); do curl -fs "$ENGINE_URL/healthz" >/dev/null && return; sleep 0.05; done
  echo "engine did not start:"; cat "$work/engine.log"; exit 1
}

stop_engine() {
  [[ -n ${ENGINE_PID:-} ]] && kill "$ENGINE_PID" 2>/dev/null && wait "$ENGINE_PID" 2>/dev/null
  ENGINE_PID=
}

rss_kib() { awk '/VmRSS:/{print $2}' "/proc/$1/status"; }

# The 20-element scene both benchmarks use (~3 KB encoded): PUT as the active scene.
scene_body() { # <base_version>
  python3 - "$1" <<'PY'
import json, sys
elements = [{"id": f"bench-{i}", "type": "text", "text": f"Element {i}",
             "x": 20 * i, "y": 40 * i, "width": 420, "height": 48, "size": 32, "color": "#ffffff"}
            for i in range(20)]
print(json.dumps({"base_version": int(sys.argv[1]), "elements": elements}))
PY
}

put_scene() { # <url>
  local base
  base=$(curl -fs "$1/api/scene" | python3 -c 'import json,sys; print(json.load(sys.stdin)["_version"])')
  scene_body "$base" | curl -fs -X PUT -H "x-streamer-token: bench" -H "content-type: application/json" --data-binary @- "$1/api/scene" >/dev/null
}
