#!/usr/bin/env bash
# The HTTP path against the framework's ceiling: the release engine and bench/bare (a bare Hummingbird app
# serving the same bytes) both pinned to core $ENGINE_CPU, wrk (Debian) pinned to core $LOAD_CPU with 50
# connections, alternating engine / bare for each path, ROUNDS times; prints the median req/s and the median of the rounds' ratios.
# Beside req/s it reads each server's CPU time (user + system, /proc/<pid>/stat) over each run and prints the CPU per
# request (both servers saturate their core, so it is about 1 / req/s: a check that the load generator kept up).
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

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tick=$(getconf CLK_TCK)
rate() { # <url> <pid> -> "req/s cpu-µs-per-request"
  local before after out
  before=$(cpu_ticks "$2")
  out=$(taskset -c "$LOAD_CPU" wrk -t1 -c50 -d"${seconds}s" "$1")
  after=$(cpu_ticks "$2")
  awk -v b="$before" -v a="$after" -v t="$tick" '/requests in/{n=$1} /Requests\/sec/{r=$2} END {printf "%s %.2f\n", r, (a - b) * 1e6 / t / n}' <<<"$out"
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Each round runs the engine and then the bare app back to back; the ratio printed is the median of the rounds'
# ratios (neighbours on the machine change its speed from one minute to the next, less from one run to the next).
pair_ratios() { # "<a1> <a2> ..." "<b1> <b2> ..." -> median of 100*a_i/b_i
  paste -d' ' <(tr ' ' '\n' <<<"$1") <(tr ' ' '\n' <<<"$2") | awk '{print 100 * $1 / $2}' | sort -g |
    awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
}
declare -A results
for path in /healthz /api/scene; do
  engine=(); barev=(); engine_cpu=(); bare_cpu=()
  for round in $(seq "$rounds"); do
    # Which one runs first alternates, so neither always gets the quieter half of a round.
    if ((round % 2)); then
      read -r r c <<<"$(rate "$ENGINE_URL$path" "$ENGINE_PID")"; engine+=("$r"); engine_cpu+=("$c")
      read -r r c <<<"$(rate "$BARE_URL$path" "$bare")"; barev+=("$r"); bare_cpu+=("$c")
    else
      read -r r c <<<"$(rate "$BARE_URL$path" "$bare")"; barev+=("$r"); bare_cpu+=("$c")
      read -r r c <<<"$(rate "$ENGINE_URL$path" "$ENGINE_PID")"; engine+=("$r"); engine_cpu+=("$c")
    fi
  done
  results[$path]="$(median "${engine[@]}") $(median "${barev[@]}") $(pair_ratios "${engine[*]}" "${barev[*]}") $(median "${engine_cpu[@]}") $(median "${bare_cpu[@]}") $(pair_ratios "${bare_cpu[*]}" "${engine_cpu[*]}") ${engine[*]} / ${barev[*]}"
done
echo
echo "| path | engine req/s | bare Hummingbird req/s | ratio | engine CPU/request | bare CPU/request | CPU ratio (bare/engine) | (engine / bare runs) |"
echo "|---|---:|---:|---:|---:|---:|---:|---|"
for path in /healthz /api/scene; do
  read -r e b ratio ec bc cratio rest <<<"${results[$path]}"
  printf '| `GET %s` | %.0f | %.0f | %.1f %% | %.1f µs | %.1f µs | %.1f %% | %s |\n' "$path" "$e" "$b" "$ratio" "$ec" "$bc" "$cratio" "$rest"
done
