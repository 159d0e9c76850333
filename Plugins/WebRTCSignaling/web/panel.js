// The webrtc-signaling plugin's panel module (docs/plugin-bundles.md): the Camera tab (rooms and their
// metrics), the "Camera" entry of the Add menu (asks for the room), and a live thumbnail of each `webrtc`
// element on the editor's stage (the overlay's own viewer, muted).

import { promptDialog } from "/js/lib/notices.js";
import { h } from "/js/lib/util.js";
import { CameraPanel, cameraCaps, cameraHost } from "./camera.js";
import { ROOM_RE } from "./room-token.js";
import { RoomViewer } from "./viewer.js";

/** How long a stage preview waits for its room to stay the same before it connects. */
const START_AFTER_MS = 1000;

/** The room of a `webrtc` element: `props.room` (where the engine keeps it), else the older top-level `room`. */
export function roomOf(el) {
  const props = el && el.props && typeof el.props === "object" ? el.props : null;
  const room = props && typeof props.room === "string" ? props.room : el && el.room;
  return typeof room === "string" ? room : "";
}

/** Asks for a room name; resolves it, or null when cancelled. */
function askRoom(title, value = "") {
  return promptDialog({
    title,
    label: "WebRTC room",
    value,
    placeholder: "cam1",
    confirmLabel: "Add",
    validate: (v) => (ROOM_RE.test(v) ? "" : "Letters, digits, '-' or '_' (at most 64)"),
  });
}

/**
 * The editor's stage preview of a `webrtc` element: a live thumbnail once the room has a publisher, else the
 * room's name and state. Viewer tokens come from the overlay route, so with an overlay token configured the
 * box keeps its name only.
 */
const stagePreview = {
  create() {
    const video = h("video.ed-camera", { muted: true, playsInline: true, autoplay: true, disablePictureInPicture: true });
    video.muted = true;
    const label = h("span.ed-camera-label");
    return { node: h("div.ov-webrtc", video, label), video, label, room: null, viewer: null, timer: 0, startTimer: 0 };
  },
  update(rec, el) {
    const room = roomOf(el);
    if (rec.room !== room) {
      rec.room = room;
      stopViewer(rec);
      // While a room name is being typed, each keystroke is a new room; a new element is not saved yet. The view
      // starts once the room stays put and its save has reached the engine, which hands out viewer tokens only
      // for rooms in the scene.
      clearTimeout(rec.startTimer);
      rec.label.textContent = `camera: ${room}`;
      rec.startTimer = setTimeout(() => startViewer(rec, room), START_AFTER_MS);
    }
    const fit = el.props && el.props.fit !== undefined ? el.props.fit : el.fit;
    rec.video.style.objectFit = ["contain", "cover", "fill"].includes(fit) ? fit : "cover";
  },
  destroy(rec) {
    clearTimeout(rec.startTimer);
    stopViewer(rec);
  },
};

function startViewer(rec, room) {
  const show = (state) => {
    const playing = state === "playing";
    rec.node.classList.toggle("ed-camera-live", playing);
    rec.label.textContent = playing ? "" : `camera: ${room}${state === "waiting" ? " · no publisher yet" : state === "error" ? " · no preview" : ""}`;
  };
  show("idle");
  if (!ROOM_RE.test(room) || typeof RTCPeerConnection === "undefined") return;
  const viewer = new RoomViewer(room, rec.video, { wantSound: false });
  rec.viewer = viewer;
  viewer.start();
  rec.timer = setInterval(() => show(viewer.state), 1000);
}

function stopViewer(rec) {
  clearInterval(rec.timer);
  rec.timer = 0;
  if (rec.viewer) rec.viewer.stop();
  rec.viewer = null;
}

/**
 * A Room field for `webrtc` elements, used only when the engine lists no schema for the type (an older engine);
 * otherwise the panel draws the schema's fields.
 */
const roomInspector = {
  render(container, element, update) {
    const error = h("span.field-error#insp-room-error");
    const input = h("input#insp-room", { type: "text", autocomplete: "off", spellcheck: false, maxlength: 64 });
    input.value = roomOf(element);
    const commit = () => {
      const room = input.value.trim();
      if (!ROOM_RE.test(room)) {
        input.setAttribute("aria-invalid", "true");
        error.textContent = "Letters, digits, '-' or '_'";
        return;
      }
      input.removeAttribute("aria-invalid");
      error.textContent = "";
      update({ props: { room } }, { debounce: 0 });
    };
    input.addEventListener("change", commit);
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        commit();
      }
    });
    container.append(h("div.field", h("label", { for: "insp-room" }, "Room"), input, error));
    return (el) => {
      if (document.activeElement !== input) input.value = roomOf(el);
    };
  },
};

/**
 * Registers the Camera tab, the Add entry, the stage preview and (for older engines) the room inspector.
 * @param {object} api  the panel's plugin api
 */
export default function setup(api) {
  api.addElementEntry({
    type: "webrtc",
    label: "Camera",
    async create() {
      const room = await askRoom("Add camera");
      return room ? { props: { room }, width: 640, height: 360 } : null;
    },
  });
  api.addStagePreview("webrtc", stagePreview);
  if (!api.elementTypes.get("webrtc")?.schema) api.addInspector("webrtc", roomInspector);

  if (!cameraCaps(api).camera) return;
  let tab = null;
  let panel = null;
  tab = api.addTab({
    id: "camera",
    label: "Camera",
    render(container) {
      panel = new CameraPanel(cameraHost(api, { streamer: false, isVisible: () => tab !== null && tab.visible() }), container);
    },
    onShow: () => panel && panel.tick(),
  });
  panel.init();
}
