#!/usr/bin/env bash
# Scene fan-out and socket memory: for each overlay count, a fresh release engine pinned to one core and
# bench/fanout (N overlay WebSocket clients + one saver PATCHing as fast as each answer comes) on the other.
#   bench/perf.sh [seconds-per-run] [overlay counts...]        default: 10 s, 1 100 1000 10000
# Prints per count: saves/s, save->receive p50/p99, engine CPU µs per delivered frame (utime+stime from
# /proc/<pid>/stat over the saving window / frames received), engine RSS per connected socket, and RSS
# SETTLE seconds (default 8; the engine gives memory back every 5 s) after the clients disconnected.
# NO_BUILD=1 skips the builds; ENGINE_BIN=path measures another engine binary; PATCHES=1 has the clients take
# scene.patch frames (?patches=1, as the overlay page does) instead of the full scene.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
seconds=${1:-10}; shift || true
counts=("$@"); [[ ${#counts[@]} -gt 0 ]] || counts=(1 100 1000 10000)
settle=${SETTLE:-8}

build_engine
build_package fanout
work=$(mktemp -d)
trap 'stop_engine; rm -rf "$work"' EXIT
machine
echo "command: ${PATCHES:+PATCHES=1 }bench/perf.sh $seconds ${counts[*]}   (scene: 20 text elements, ${PATCHES:+clients take scene.patch, }LOG_LEVEL=${LOG_LEVEL:-info})"
rows=()
for n in "${counts[@]}"; do
  start_engine "$work"
  out=$(taskset -c "$LOAD_CPU" "$BENCH_BUILD/release/fanout" --url "$ENGINE_URL" --clients "$n" --seconds "$seconds" \
    --token bench --pid "$ENGINE_PID" --elements 20 ${PATCHES:+--patches} 2>"$work/fanout.err") || { cat "$work/fanout.err"; exit 1; }
  echo "$out" | grep -v '^RESULT'
  result=$(echo "$out" | grep '^RESULT')
  sleep "$settle"
  after=$(rss_kib "$ENGINE_PID")
  still=$(curl -fs "$ENGINE_URL/metrics" | awk '/^onionrp_ws_connections\{channel="overlay"\}/{print $2}')
  echo "  ${settle} s after the clients left: rss $((after / 1024)) MiB, overlay sockets the engine still counts: ${still:-?}"
  stop_engine
  rows+=("$result rss_after_disconnect_kib=$after")
  errors=$(grep -c . "$work/fanout.err" || true)
  [[ $errors -gt 0 ]] && echo "  ($errors client errors, first: $(head -1 "$work/fanout.err"))"
done

echo
printf '%s\n' "${rows[@]}"
echo
printf '%s\n' "${rows[@]}" | python3 "$ROOT/bench/perf_table.py"
