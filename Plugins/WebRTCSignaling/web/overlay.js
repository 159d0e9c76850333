// The webrtc-signaling plugin's overlay module (docs/plugin-bundles.md): the overlay calls setup(api).
//
// - /preview?webrtc_room=<room>&token=<viewer token>: the room's stream fills the stage, under the scene.
// - A scene element {type: "webrtc", props: {room: "<room>"}}: the room's stream inside the element's box
//   (older scenes keep `room` at the top level; both are read).

import { ROOM_RE } from "./room-token.js";
import { configure, hook, makeVideo, RoomViewer } from "./viewer.js";

/** A property of a `webrtc` element: from `props` (the engine moves it there), else the top level. */
function prop(el, name) {
  const props = el.props && typeof el.props === "object" ? el.props : null;
  return props && props[name] !== undefined ? props[name] : el[name];
}

/**
 * Preview mode: the room's stream fills the stage, under the scene's elements.
 * @param {object} config  the overlay's config (mode, webrtcRoom, token)
 * @param {HTMLElement} stage
 */
function startPreview(config, stage) {
  if (config.mode !== "preview" || !config.webrtcRoom) return;
  const room = config.webrtcRoom;
  if (!ROOM_RE.test(room)) {
    console.warn("[webrtc]", `webrtc_room '${room}' is not a valid room name`);
    return;
  }
  const params = new URLSearchParams(location.search);
  const video = makeVideo(params.get("webrtc_audio") !== "1");
  video.className = "ov-webrtc-preview";
  video.dataset.room = room;
  Object.assign(video.style, { position: "absolute", left: "0", top: "0", zIndex: "0" });
  stage.appendChild(video);
  const viewer = new RoomViewer(room, video, { urlToken: config.token, wantSound: params.get("webrtc_audio") === "1",
                                              maxKbps: Number(params.get("webrtc_max_kbps")) || 0 });
  hook.preview = viewer;
  viewer.start();
}

/** Stops an element's own view, or detaches it from the preview's. */
function release(rec) {
  if (rec.viewer) rec.viewer.stop();
  rec.viewer = null;
  if (rec.mirrorOf) rec.mirrorOf.removeMirror(rec.video);
  rec.mirrorOf = null;
}

/**
 * Registers the `webrtc` element type and starts the preview view on /preview.
 * @param {object} api  the overlay's plugin api
 */
export default function setup(api) {
  const config = api.config;
  configure(config);
  startPreview(config, api.getStage());

  // Scene element type "webrtc": props {room, fit?, muted?}
  api.registerElementType("webrtc", {
    create() {
      const node = document.createElement("div");
      node.className = "ov-webrtc-live";
      node.style.overflow = "hidden";
      const video = makeVideo(true);
      node.appendChild(video);
      return { node, video, viewer: null, mirrorOf: null, room: null, fit: null };
    },
    update(rec, el) {
      const rawRoom = prop(el, "room");
      const room = typeof rawRoom === "string" ? rawRoom : "";
      const wantSound = prop(el, "muted") === false;
      if (room !== rec.room || (rec.viewer && rec.viewer.wantSound !== wantSound)) {
        release(rec);
        rec.room = room;
        if (ROOM_RE.test(room)) {
          if (hook.preview && hook.preview.room === room && !hook.preview.stopped) {
            // The preview already receives this room: show its stream here too (one connection per page and room).
            rec.mirrorOf = hook.preview;
            hook.preview.addMirror(rec.video);
          } else {
            const usePageToken = config.mode === "preview" && config.webrtcRoom === room;
            const maxKbps = Number(prop(el, "max_kbps")) || 0;
            rec.viewer = new RoomViewer(room, rec.video, { urlToken: usePageToken ? config.token : "", wantSound, maxKbps });
            rec.viewer.start();
          }
        }
      }
      const rawFit = prop(el, "fit");
      const fit = ["contain", "cover", "fill"].includes(rawFit) ? rawFit : "cover";
      if (rec.fit !== fit) {
        rec.fit = fit;
        rec.video.style.objectFit = fit;
      }
    },
    destroy(rec) {
      release(rec);
    },
  });
}
