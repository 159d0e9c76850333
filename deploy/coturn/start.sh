#!/bin/sh
# Starts coturn with deploy/coturn/turnserver.conf plus the settings from the environment
# (compose.yaml passes them from .env). Runs in the official coturn image and in Debian's coturn.
set -eu
: "${TURN_SECRET:?TURN_SECRET is not set}"
: "${TURN_REALM:?TURN_REALM is not set}"
base=${TURN_BASE_CONFIG:-/etc/coturn/turnserver.conf}
run=${TURN_RUN_DIR:-/tmp}
conf=$run/turnserver.conf
umask 077
{
  cat "$base"
  echo "pidfile=$run/turnserver.pid"
  echo "userdb=$run/turndb"   # unused with use-auth-secret, but coturn opens it
  echo "static-auth-secret=$TURN_SECRET"
  echo "realm=$TURN_REALM"
  echo "listening-port=${TURN_PORT:-3478}"
  echo "min-port=${TURN_MIN_PORT:-49160}"
  echo "max-port=${TURN_MAX_PORT:-49260}"
  if [ -n "${TURN_LISTENING_IP:-}" ]; then echo "listening-ip=$TURN_LISTENING_IP"; fi
  # On a VPS behind 1:1 NAT (most clouds): PUBLIC or PUBLIC/PRIVATE.
  if [ -n "${TURN_EXTERNAL_IP:-}" ]; then echo "external-ip=$TURN_EXTERNAL_IP"; fi
  # Only for tests on one machine: let loopback peers through (never in production).
  if [ "${TURN_ALLOW_LOOPBACK_PEERS:-}" = 1 ]; then echo "allow-loopback-peers"; echo "allowed-peer-ip=127.0.0.1"; fi
} >"$conf"
exec turnserver -c "$conf"
