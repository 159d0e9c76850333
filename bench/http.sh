#!/usr/bin/env bash
# The HTTP path against the framework's ceiling: the release engine and bench/bare (a bare Hummingbird app
# serving the same bytes) both pinned to core $ENGINE_CPU, wrk (Debian) pinned to core $LOAD_CPU with 50
# connections, alternating engine / bare for each path, ROUNDS times; prints the median req/s and the ratios.
#   bench/http.sh [seconds-per-run]          default 10 s; ROUNDS (default 3); NO_BUILD=1 skips the builds
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
seconds=${1:-10}
rounds=${ROUNDS:-3}
command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
build_engine
build_package bare
work=$(mktemp -d)
trap 'stop_engine; [[ -n ${bare:-} ]] && kill $bare 2>/dev/null; rm -rf "$work"' EXIT
machine
start_engine "$work"
put_scene "$ENGINE_URL"
curl -fs "$ENGINE_URL/api/scene" -o "$work/scene.json"
bare_port=$(free_port)
taskset -c "$ENGINE_CPU" "$BENCH_BUILD/release/bare" "$bare_port" "$work/scene.json" >"$work/bare.log" 2>&1 &
bare=$!
BARE_URL=http://127.0.0.1:$bare_port
for _ in $(seq 200); do curl -fs "$BARE_URL/healthz" >/dev/null && break; sleep 0.05; done
echo "command: bench/http.sh $seconds   (wrk -t1 -c50 -d${seconds}s, $rounds rounds, median; scene $(stat -c %s "$work/scene.json") bytes, LOG_LEVEL=${LOG_LEVEL:-info})"

rate() { # <url> -> req/s
  taskset -c "$LOAD_CPU" wrk -t1 -c50 -d"${seconds}s" "$1" | awk '/Requests\/sec/{print $2}'
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

declare -A results
for path in /healthz /api/scene; do
  engine=(); barev=()
  for _ in $(seq "$rounds"); do
    engine+=("$(rate "$ENGINE_URL$path")")
    barev+=("$(rate "$BARE_URL$path")")
  done
  results[$path]="$(median "${engine[@]}") $(median "${barev[@]}") ${engine[*]} / ${barev[*]}"
done
echo
echo "| path | engine req/s | bare Hummingbird req/s | ratio | (engine / bare runs) |"
echo "|---|---:|---:|---:|---|"
for path in /healthz /api/scene; do
  read -r e b rest <<<"${results[$path]}"
  printf '| `GET %s` | %.0f | %.0f | %.1f %% | %s |\n' "$path" "$e" "$b" "$(echo "100 * $e / $b" | bc -l)" "$rest"
done
