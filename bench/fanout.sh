#!/usr/bin/env bash
# Scene fan-out benchmark: a release engine on loopback, and a separate load generator with
# N overlay WebSocket clients (1, 100, 1000 by default) while one saver PATCHes as fast as it can.
#   bench/fanout.sh [seconds-per-run] [client counts...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}; shift || true
counts=("${@:-1 100 1000}")
[[ $# -gt 0 ]] && counts=("$@") || counts=(1 100 1000)
ulimit -n 65536 2>/dev/null || ulimit -n 4096

swift build -c release --product overlay-engine 2>&1 | grep -E "error|Compiling|Build" | tail -1
(cd bench/fanout && swift build -c release 2>&1 | grep -E "error|Build" | tail -1)

work=$(mktemp -d)
trap 'kill $engine 2>/dev/null || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/overlay.yaml" <<YAML
limits:
  rate:
    scene.save: {burst: 1000000, per_minute: 100000000}
plugins: []
YAML
(cd "$work" && STREAMER_API_TOKEN=bench PORT=$port LOG_LEVEL=warning exec "$OLDPWD/.build/release/overlay-engine" serve --config overlay.yaml) 2>"${ENGINE_LOG:-/dev/null}" &
engine=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(uname -sr)"
for n in "${counts[@]}"; do
  bench/fanout/.build/release/fanout --url "http://127.0.0.1:$port" --clients "$n" --seconds "$seconds" --token bench --pid "$engine"
done
