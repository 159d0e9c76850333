#!/bin/sh
# Starts Janus with deploy/janus/*.jcfg plus the settings from the environment (compose.yaml passes them from .env):
#   JANUS_API_SECRET, JANUS_ADMIN_SECRET, JANUS_ROOM_ADMIN_KEY (required; the web service gets the same values)
#   JANUS_RTP_MIN/JANUS_RTP_MAX   UDP ports for media (published on the host)
#   JANUS_PUBLIC_IP               the host's public address (1:1 NAT: advertised in Janus's candidates)
#   TURN_HOST/TURN_PORT/TURN_SECRET  coturn: Janus gets a TURN REST credential minted from the shared secret,
#                                 valid JANUS_TURN_TTL_DAYS (7); restart webrtc-node within that time
set -eu
: "${JANUS_API_SECRET:?JANUS_API_SECRET is not set}"
: "${JANUS_ADMIN_SECRET:?JANUS_ADMIN_SECRET is not set}"
: "${JANUS_ROOM_ADMIN_KEY:?JANUS_ROOM_ADMIN_KEY is not set}"
src=${JANUS_CONFIG_SOURCE:-/etc/onionrp-janus}
run=${JANUS_RUN_DIR:-/tmp/janus}
lib=${JANUS_LIB_DIR:-/usr/lib/x86_64-linux-gnu/janus}
umask 077
mkdir -p "$run/plugins" "$run/transports" "$run/none"
ln -sf "$lib/plugins/libjanus_videoroom.so" "$run/plugins/"
ln -sf "$lib/transports/libjanus_http.so" "$run/transports/"
nat=""
if [ -n "${JANUS_PUBLIC_IP:-}" ]; then nat="  nat_1_1_mapping = \"$JANUS_PUBLIC_IP\"
  keep_private_host = false"; fi
if [ -n "${TURN_SECRET:-}" ] && [ -n "${TURN_HOST:-}" ]; then
  expiry=$(( $(date +%s) + ${JANUS_TURN_TTL_DAYS:-7} * 86400 ))
  user="$expiry:janus"
  password=$(printf '%s' "$user" | openssl dgst -sha1 -hmac "$TURN_SECRET" -binary | openssl base64)
  nat="$nat
  turn_server = \"$TURN_HOST\"
  turn_port = ${TURN_PORT:-3478}
  turn_type = \"udp\"
  turn_user = \"$user\"
  turn_pwd = \"$password\""
fi
for file in janus.jcfg janus.transport.http.jcfg janus.plugin.videoroom.jcfg; do
  awk -v run="$run" -v api="$JANUS_API_SECRET" -v admin="$JANUS_ADMIN_SECRET" -v key="$JANUS_ROOM_ADMIN_KEY" \
      -v range="${JANUS_RTP_MIN:-20000}-${JANUS_RTP_MAX:-20099}" -v nat="$nat" '
    { gsub(/@RUN@/, run); gsub(/@API_SECRET@/, api); gsub(/@ADMIN_SECRET@/, admin); gsub(/@ROOM_ADMIN_KEY@/, key);
      gsub(/@RTP_RANGE@/, range); if ($0 == "@NAT@") { print nat; next } print }' "$src/$file" >"$run/$file"
done
exec janus -F "$run" -C "$run/janus.jcfg" -o
