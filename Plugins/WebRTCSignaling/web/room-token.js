// Room names and the clear fields of room tokens, for the plugin's pages: the viewer (overlay, /preview, the
// panel's thumbnails) and /publish. The format is this plugin's (RoomTokens.swift), so it lives here rather than
// in the core's /js/lib/. A page reads a token only to choose and explain; the engine checks the signature.

/** A room name: 1–64 of [A-Za-z0-9_-] (RoomName.isValid). */
export const ROOM_RE = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * The fields of a `v1.<role>.<room>.<expiry>.<id>.<signature>` token as written, unchecked (`expiresAt` may be
 * NaN, `room` may not be a room name); null for anything else. /publish uses it to say what is wrong with a link.
 */
export function readRoomToken(token) {
  if (typeof token !== "string") return null;
  const parts = token.split(".");
  if (parts.length !== 6 || parts[0] !== "v1") return null;
  return { role: parts[1], room: parts[2], expiresAt: Number(parts[3]) };
}

/** The clear fields of a well-formed room token (a room name, a numeric expiry); null for anything else. */
export function parseRoomToken(token) {
  const fields = readRoomToken(token);
  if (!fields || !ROOM_RE.test(fields.room) || !Number.isFinite(fields.expiresAt)) return null;
  return fields;
}
