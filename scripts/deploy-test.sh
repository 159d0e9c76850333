#!/usr/bin/env bash
# deploy-test: builds the real Dockerfile and runs compose.yaml with rootful podman on this machine
# (no Docker engine, no registry), then tests the stack through nginx on 127.0.0.1
# (Tests/deploy/test_stack.py). Also runs the fast native nginx/coturn config test first.
#
# Nothing can be pulled here, so the images the Dockerfile and compose.yaml name are stood in for,
# here only (never in the Dockerfile):
#   debian:bookworm, debian:bookworm-slim  mmdebstrap --variant=minbase of this machine's apt sources
#   swift:6.3-bookworm                      debian:bookworm + the host's Swift toolchain; git reads
#                                           github.com from the read-only mounted package mirror
#   nginx / redis / coturn images           debian:bookworm-slim + Debian's nginx, redis-server, coturn
# Images are cached in podman's storage; DEPLOY_TEST_FRESH=1 removes them first (a from-scratch run).
#
#   scripts/deploy-test.sh            everything
#   KEEP_STACK=1 scripts/deploy-test.sh   leave the stack running afterwards
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${DEPLOY_TEST_WORK:-/var/tmp/onionrp-deploy}
mkdir -p "$WORK"
START=$(date +%s)
log() { printf '[deploy-test +%4ss] %s\n' "$(( $(date +%s) - START ))" "$*"; }
die() { log "FAILED: $*"; exit 1; }

# The image names that the Dockerfile and compose.yaml use (kept in one place: read them from the files).
SWIFT_IMAGE=$(sed -n 's/^ARG SWIFT_IMAGE=//p' Dockerfile)
RUNTIME_IMAGE=$(sed -n 's/^ARG RUNTIME_IMAGE=//p' Dockerfile)
image_default() { sed -n "s/.*\${$1:-\([^}]*\)}.*/\1/p" compose.yaml | head -1; }
NGINX_IMAGE=$(image_default NGINX_IMAGE)
REDIS_IMAGE=$(image_default REDIS_IMAGE)
COTURN_IMAGE=$(image_default COTURN_IMAGE)
DOCK_IMAGE=$(image_default DOCK_IMAGE)
qualify() { case "$1" in */*/*) echo "$1";; */*) echo "docker.io/$1";; *) echo "docker.io/library/$1";; esac; }

# ------------------------------------------------------------------ packages
need=(podman buildah runc slirp4netns uidmap catatonit mmdebstrap coturn nginx-light iptables netavark aardvark-dns openssl)
missing=()
for package in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
# nginx from another flavour (nginx, nginx-full) is as good as nginx-light for the native test.
if [[ " ${missing[*]} " == *" nginx-light "* ]] && command -v nginx >/dev/null; then
  missing=("${missing[@]/nginx-light}")
fi
missing=($(printf '%s\n' "${missing[@]}" | sed '/^$/d'))
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian's nginx/coturn packages would start their services: only the tests start them, on loopback.
  own_policy=""
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; own_policy=1
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$WORK/apt.log" 2>&1 || { tail -30 "$WORK/apt.log"; die "apt-get install"; }
  if [[ -n "$own_policy" ]]; then rm -f /usr/sbin/policy-rc.d; fi
fi
if ! python3 -c 'import podman_compose' 2>/dev/null && ! command -v podman-compose >/dev/null; then
  log "pip install podman-compose"
  python3 -m pip install --quiet --disable-pip-version-check podman-compose
fi
python3 -c 'import pytest, requests, websockets, yaml' 2>/dev/null \
  || python3 -m pip install --quiet --disable-pip-version-check "pytest>=8" "requests>=2.31" "websockets>=13" pyyaml

# ------------------------------------------------------------------ podman
# Our own containers.conf (CONTAINERS_CONF) instead of editing the system's: runc (crun refuses this
# machine's hybrid cgroups) and default ulimits that root may set here.
cat >"$WORK/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
CONF
export CONTAINERS_CONF="$WORK/containers.conf"
podman info >/dev/null || die "podman does not work here"

if [[ "${DEPLOY_TEST_FRESH:-}" == 1 ]]; then
  log "DEPLOY_TEST_FRESH=1: removing cached images"
  podman rmi -f "$(qualify "$DOCK_IMAGE")" "$(qualify "$NGINX_IMAGE")" "$(qualify "$REDIS_IMAGE")" "$(qualify "$COTURN_IMAGE")" \
    "$(qualify "$SWIFT_IMAGE")" "$(qualify "$RUNTIME_IMAGE")" docker.io/library/debian:bookworm >/dev/null 2>&1 || true
  podman image prune -f >/dev/null 2>&1 || true
  rm -f "$WORK/rootfs.tar"
fi

# ------------------------------------------------------------------ stand-in base images
if ! podman image exists docker.io/library/debian:bookworm; then
  sources=$( (grep -l '^URIs:.*debian\|^deb .*debian' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null || true) | head -1)
  [[ -n "$sources" ]] || die "no Debian apt source found on this machine"
  log "mmdebstrap bookworm minbase from $sources"
  rm -f "$WORK/rootfs.tar"
  mmdebstrap --variant=minbase --quiet bookworm "$WORK/rootfs.tar" "$sources"
  podman import --quiet --change 'CMD ["bash"]' "$WORK/rootfs.tar" docker.io/library/debian:bookworm >/dev/null
  rm -f "$WORK/rootfs.tar"
fi
podman tag docker.io/library/debian:bookworm docker.io/library/debian:bookworm-slim
[[ "$(qualify "$RUNTIME_IMAGE")" == docker.io/library/debian:bookworm* ]] || podman tag docker.io/library/debian:bookworm "$(qualify "$RUNTIME_IMAGE")"

# The folder git reads github.com addresses from (url.<folder>.insteadOf https://github.com/).
PACKAGES=$( (git config --get-regexp '^url\..*\.insteadof$' 'https://github.com/' || true) | sed -n 's/^url\.\(.*\)\.insteadof .*/\1/p' | head -1)
PACKAGES=${PACKAGES%/}
[[ -n "$PACKAGES" && -d "$PACKAGES" ]] || die "git has no url.<folder>.insteadOf https://github.com/ pointing at a package mirror"
SWIFT_BIN=$(readlink -f "$(command -v swift)")
SWIFT_TOOLCHAIN=$(dirname "$(dirname "$(dirname "$SWIFT_BIN")")")   # <toolchain>/usr/bin/swift -> <toolchain>

if ! podman image exists "$(qualify "$SWIFT_IMAGE")"; then
  log "stand-in $SWIFT_IMAGE from $SWIFT_TOOLCHAIN (packages from $PACKAGES)"
  ctr=$(buildah from --quiet docker.io/library/debian:bookworm)
  # What the official swift:*-bookworm image installs next to the toolchain.
  buildah run --network host "$ctr" sh -c 'export DEBIAN_FRONTEND=noninteractive; apt-get update -qq &&
    apt-get install -y -qq --no-install-recommends binutils git ca-certificates gnupg2 libc6-dev libcurl4-openssl-dev \
      libedit2 libgcc-12-dev libpython3.11 libsqlite3-0 libstdc++-12-dev libxml2-dev libncurses6 libz3-4 pkg-config \
      tzdata zlib1g-dev unzip >/dev/null && rm -rf /var/lib/apt/lists/*'
  mnt=$(buildah mount "$ctr")
  # The toolchain goes to /usr as in the official image; editors' and debuggers' parts are left out.
  tar -C "$SWIFT_TOOLCHAIN" --exclude='usr/bin/lldb*' --exclude='usr/lib/liblldb*' --exclude=usr/bin/sourcekit-lsp \
      --exclude=usr/bin/clangd --exclude=usr/bin/docc --exclude='usr/lib/libsourcekitdInProc*' --exclude=usr/lib/swift_static \
      -cf - usr | tar -C "$mnt" --keep-directory-symlink -xf -
  buildah umount "$ctr" >/dev/null
  buildah run "$ctr" git config --system "url.$PACKAGES/.insteadOf" https://github.com/
  buildah run "$ctr" swift --version
  buildah commit --quiet --rm "$ctr" "$(qualify "$SWIFT_IMAGE")" >/dev/null
fi

for image in "$NGINX_IMAGE" "$REDIS_IMAGE" "$COTURN_IMAGE"; do
  if ! podman image exists "$(qualify "$image")"; then
    if ! podman image exists localhost/onionrp-deploy-services:standin; then
      log "stand-in service image (Debian nginx, redis-server, coturn)"
      ctr=$(buildah from --quiet docker.io/library/debian:bookworm-slim)
      buildah run --network host "$ctr" sh -c 'export DEBIAN_FRONTEND=noninteractive;
        printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d;
        apt-get update -qq && apt-get install -y -qq --no-install-recommends nginx-light redis-server coturn >/dev/null &&
        rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d /etc/nginx/sites-enabled/* && mkdir -p /data'
      buildah commit --quiet --rm "$ctr" localhost/onionrp-deploy-services:standin >/dev/null
    fi
    podman tag localhost/onionrp-deploy-services:standin "$(qualify "$image")"
  fi
done
log "base images ready"

# ------------------------------------------------------------------ the real image
build_started=$(date +%s)
log "podman build (the Dockerfile as is) -> $DOCK_IMAGE"
timeout 2700 podman build --quiet --format docker --network host -v "$PACKAGES:$PACKAGES:ro" -t "$(qualify "$DOCK_IMAGE")" . >"$WORK/build.log" 2>&1 \
  || { tail -60 "$WORK/build.log"; die "podman build (log: $WORK/build.log)"; }
build_seconds=$(( $(date +%s) - build_started ))
size=$(podman image inspect --format '{{.Size}}' "$(qualify "$DOCK_IMAGE")")
log "image built in ${build_seconds}s, $(( size / 1000000 )) MB"
echo "$build_seconds $size" >"$WORK/image-figures"

# ------------------------------------------------------------------ tests
# Whatever happens (a failure, a time-out), leave no container or volume of the test project behind.
project=onionrp-deploy-test
cleanup() {
  if [[ "${KEEP_STACK:-}" == 1 ]]; then return; fi
  for _ in 1 2; do   # dependents first: a second pass removes what the first could not
    podman ps -a -q --filter "label=io.podman.compose.project=$project" | xargs -r podman rm -f -t 5 >/dev/null 2>&1 || true
  done
  podman volume ls -q --filter "label=io.podman.compose.project=$project" | xargs -r podman volume rm -f >/dev/null 2>&1 || true
}
trap cleanup EXIT
log "pytest Tests/deploy"
export DEPLOY_TEST_WORK="$WORK" DEPLOY_TEST_IMAGE="$(qualify "$DOCK_IMAGE")"
rm -f "$WORK/stack-figures.json"
timeout 1200 python3 -m pytest -q -p no:cacheprovider Tests/deploy ${PYTEST_ARGS:-} || die "pytest Tests/deploy"
log "figures: image build ${build_seconds}s, image $(( size / 1000000 )) MB, stack $(cat "$WORK/stack-figures.json" 2>/dev/null | tr -d '\n ')"
log "deploy-test passed"
