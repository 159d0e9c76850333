#!/usr/bin/env bash
# Installs what the engine needs on Debian/Ubuntu, skipping what is already there.
#   scripts/install-deps.sh          build and run dependencies
#   scripts/install-deps.sh --test   also what the tests need (redis-server, nginx, chromium, espeak-ng, Python packages)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(pkg-config libssl-dev libhiredis-dev libyaml-dev)
if [[ "${1:-}" == "--test" ]]; then
  packages+=(redis-server nginx chromium chromium-driver espeak-ng sox python3-pip janus)
fi

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo_cmd=()
  if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v swift >/dev/null; then
  echo "swift is not on PATH: install the Swift 6 toolchain (swift.org) first" >&2
  exit 1
fi

if [[ "${1:-}" == "--test" ]]; then
  if ! python3 -c "import pytest, requests, websockets, selenium" 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check -r Tests/requirements.txt
  fi
fi
