// The overlay page: keeps a socket to the engine, draws the active scene on a scaled stage and
// acknowledges each version once it is on screen.
//
// Extension points (plugins get them through setup(api), see boot() and docs/plugin-bundles.md):
//   on(type, handler)                 handle a socket event type ("tts.speak", ...); returns an unsubscribe function
//   registerElementType(type, r)      draw a scene element type; r = {create(el, ctx), update(rec, el, prev, ctx), placed?(rec, el, ctx), destroy?(rec)}
//   trackLoad(rec, promise)           the element counts as loading (hidden, version not acknowledged) until promise settles
//   send(message)                     send a JSON message to the engine over the socket
//   handleMessage(message)            feed one decoded message through the handlers (what the socket does)
//   applyScene(scene, version)        draw a scene (what `scene.full` does)
//   state / config                    read-only views for hooks

import { Backoff } from "./lib/backoff.js";
import { clamp, finite } from "./lib/util.js";
import { applyScenePatch } from "./lib/scene-patch.js";
import { createTextNode, updateText } from "./text-style.js";
import { elementTypes as declaredTypes, fetchListing, loadPlugins, onPluginStatus, pluginStatus, registrations } from "./lib/plugins.js";

/** Settings, filled by start() from the page URL. */
export const config = {
  debug: false,
  token: "",
  overlayId: "",
  /** "overlay" (/overlay) or "preview" (/preview). */
  mode: "overlay",
  /** ?webrtc_room= of the preview mode (used by a later feature). */
  webrtcRoom: "",
  /** How long new image/video media may take to load before it is shown anyway. */
  mediaTimeoutMs: 4000,
  backoffBaseMs: 500,
  backoffMaxMs: 10000,
  /** Application-level ping period, and how long without any frame before the socket counts as dead. */
  pingEveryMs: 15000,
  silenceLimitMs: 45000,
};

const internal = {
  connState: "idle", // idle | connecting | open | closed
  connectionId: "",
  /** Version on screen and acknowledged (0 until the first scene is shown). */
  version: 0,
  shown: false,
  /** Newest version handed to the DOM (may still be preloading media); -1 before the first scene. */
  appliedVersion: -1,
  /** The epoch of the versions held (engines' store identity); "" before the first frame. */
  epoch: "",
  /** Reconnects that were resumed from the version held (no full scene needed). */
  resumes: 0,
  scene: null,
  width: 1920,
  height: 1080,
  lastError: "",
  rttMs: null,
};

/** Read-only view of the page state (also `window.overlayState`). */
export const state = Object.freeze(Object.defineProperties({}, {
  connected: { enumerable: true, get: () => internal.connState === "open" },
  connection: { enumerable: true, get: () => internal.connState },
  version: { enumerable: true, get: () => internal.version },
  appliedVersion: { enumerable: true, get: () => internal.appliedVersion },
  overlayId: { enumerable: true, get: () => config.overlayId },
  mode: { enumerable: true, get: () => config.mode },
  elements: { enumerable: true, get: () => records.size },
  scene: { enumerable: true, get: () => internal.scene },
  epoch: { enumerable: true, get: () => internal.epoch },
  resumes: { enumerable: true, get: () => internal.resumes },
}));

// ---------------------------------------------------------------------------------------------
// Small helpers

function debugLog(...args) {
  if (config.debug) console.debug("[overlay]", ...args);
}

/** A bug in a handler or renderer: reported as a warning, never allowed to stop the page. */
function reportProblem(where, err) {
  internal.lastError = `${where}: ${err && err.message ? err.message : err}`;
  console.warn("[overlay]", where, err);
  updateDebug();
}

function randomId() {
  const bytes = new Uint8Array(6);
  (globalThis.crypto || window.crypto).getRandomValues(bytes);
  return "ov-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function resolveOverlayId(fromQuery) {
  if (fromQuery) return fromQuery.slice(0, 64);
  const key = "onionrp.overlay_id";
  try {
    const kept = window.localStorage.getItem(key);
    if (kept && /^[A-Za-z0-9._-]{1,64}$/.test(kept)) return kept;
    const made = randomId();
    window.localStorage.setItem(key, made);
    return made;
  } catch {
    return randomId(); // storage disabled: a fresh id per load
  }
}

/** Sets one style property only when it changes (the cache lives on the record). */
function setStyle(rec, property, value) {
  if (rec.styles[property] === value) return;
  rec.styles[property] = value;
  rec.node.style[property] = value;
}

/** Resolves after the browser has painted the current DOM (two animation frames), or after a short timeout
 *  when animation frames are throttled (hidden page). */
function afterPaint() {
  return new Promise((resolve) => {
    let done = false;
    const finish = () => {
      if (!done) {
        done = true;
        resolve();
      }
    };
    requestAnimationFrame(() => requestAnimationFrame(finish));
    setTimeout(finish, 500);
  });
}

// ---------------------------------------------------------------------------------------------
// Stage

let stage = null;

function ensureStage() {
  if (stage && stage.isConnected) return stage;
  stage = document.getElementById("stage");
  if (!stage) {
    stage = document.createElement("div");
    stage.id = "stage";
    stage.setAttribute("aria-hidden", "true");
    document.body.appendChild(stage);
  }
  return stage;
}

/** The stage element (for hooks that draw on it). */
export function getStage() {
  return ensureStage();
}

function fitStage() {
  const node = ensureStage();
  const w = internal.width;
  const h = internal.height;
  const vw = window.innerWidth || w;
  const vh = window.innerHeight || h;
  let scale = Math.min(vw / w, vh / h);
  if (!Number.isFinite(scale) || scale <= 0) scale = 1;
  const left = (vw - w * scale) / 2;
  const top = (vh - h * scale) / 2;
  node.style.width = `${w}px`;
  node.style.height = `${h}px`;
  node.style.transform = `translate(${left}px, ${top}px) scale(${scale})`;
}

// ---------------------------------------------------------------------------------------------
// Element renderers

/** type -> renderer. */
export const elementTypes = new Map();

/** Registers (or replaces) how an element type is drawn, and redraws the current scene with it; returns a function that removes it. */
export function registerElementType(type, renderer) {
  if (typeof type !== "string" || !renderer || typeof renderer.create !== "function") {
    throw new TypeError("registerElementType(type, {create, update, destroy})");
  }
  elementTypes.set(type, renderer);
  if (internal.scene) renderScene(internal.scene, internal.appliedVersion, false);
  return () => {
    if (elementTypes.get(type) !== renderer) return;
    elementTypes.delete(type);
    if (internal.scene) renderScene(internal.scene, internal.appliedVersion, false);
  };
}

/**
 * For renderers whose element loads asynchronously: the element stays hidden, and the scene's version is not
 * acknowledged, until `promise` settles or `timeoutMs` passes (then it is shown anyway). A rejection is reported
 * (debug box) and counts as done, like a media element that failed to load.
 * @param {object} rec  the record given to create/update
 * @param {Promise<unknown>} promise
 * @param {number} [timeoutMs]  default config.mediaTimeoutMs
 */
export function trackLoad(rec, promise, timeoutMs = config.mediaTimeoutMs) {
  rec.loading = true;
  const ready = new Promise((resolve) => {
    let timer = 0;
    const finish = (why, err) => {
      clearTimeout(timer);
      if (rec.ready !== ready) return resolve();
      if (why === "error") reportProblem(`loading ${rec.id}`, err);
      else if (why === "timeout") debugLog(`${rec.id} not loaded after ${timeoutMs} ms; showing it anyway`);
      rec.loading = false;
      rec.ready = null;
      if (!rec.destroyed && rec.el) placeCommon(rec, rec.el, rec.rank);
      resolve();
    };
    Promise.resolve(promise).then(() => finish("load"), (err) => finish("error", err));
    timer = setTimeout(() => finish("timeout"), timeoutMs);
  });
  rec.ready = ready;
  if (rec.node && rec.node.style) {
    rec.styles.visibility = "hidden";
    rec.node.style.visibility = "hidden";
  }
  return ready;
}

function mediaUrl(el) {
  if (typeof el.src === "string" && el.src) return el.src;
  if (typeof el.media === "string" && el.media) {
    const base = `/media/${encodeURIComponent(el.media)}`;
    // A media element cannot send headers; the overlay token rides in the query like on the socket.
    return config.token ? `${base}?token=${encodeURIComponent(config.token)}` : base;
  }
  return "";
}

/** Waits for `events` on `node` (or the timeout) and then shows the record. */
function preload(rec, events) {
  rec.loading = true;
  rec.ready = new Promise((resolve) => {
    let timer = 0;
    const finish = (why) => {
      clearTimeout(timer);
      for (const name of events) rec.node.removeEventListener(name, onEvent);
      if (why !== "load") debugLog(`media of ${rec.id} not loaded (${why}); showing it anyway`);
      rec.loading = false;
      rec.ready = null;
      if (!rec.destroyed && rec.el) placeCommon(rec, rec.el, rec.rank);
      resolve();
    };
    const onEvent = (event) => finish(event.type === "error" ? "error" : "load");
    for (const name of events) rec.node.addEventListener(name, onEvent);
    timer = setTimeout(() => finish("timeout"), config.mediaTimeoutMs);
  });
}

function tryPlay(rec) {
  const media = rec.node;
  let attempt;
  try {
    attempt = media.play();
  } catch {
    return;
  }
  if (!attempt || typeof attempt.catch !== "function") return;
  attempt.catch((err) => {
    if (rec.destroyed || !err) return;
    if (err.name === "NotAllowedError" && !media.muted) {
      // Autoplay with sound is blocked: play muted rather than not at all.
      media.muted = true;
      rec.autoMuted = true;
      debugLog(`autoplay with sound blocked for ${rec.id}; playing muted`);
      const again = media.play();
      if (again && again.catch) again.catch(() => {});
    }
    // AbortError (a pause or a new source interrupted play) and others: nothing to do.
  });
}

/** Applies src, loop, muted, volume, playing to a <video>/<audio> without reloading it. */
function syncMedia(rec, el) {
  const media = rec.node;
  const loop = el.loop === true;
  if (media.loop !== loop) media.loop = loop;
  // A hidden element is silent too: hiding keeps it playing (no restart on show) but nobody hears it.
  const muted = el.muted === true || el.visible === false;
  if (rec.muted !== muted) {
    rec.muted = muted;
    rec.autoMuted = false;
    media.muted = muted;
  }
  const volume = clamp(finite(el.volume, 1), 0, 1);
  if (rec.volume !== volume) {
    rec.volume = volume;
    media.volume = volume;
  }
  const playing = el.playing !== false;
  if (media.autoplay !== playing) media.autoplay = playing;
  const url = mediaUrl(el);
  if (url !== rec.url) {
    rec.url = url;
    if (url) media.src = url;
    else media.removeAttribute("src");
  }
  if (!playing) {
    if (!media.paused) media.pause();
  } else if (media.paused && !media.ended && rec.url) {
    tryPlay(rec);
  }
}

/** Videos that had to start muted get their sound back on the first user interaction (a normal browser tab). */
function restoreSound() {
  for (const rec of records.values()) {
    if (rec.autoMuted && rec.muted === false && rec.node instanceof HTMLMediaElement) {
      rec.autoMuted = false;
      rec.node.muted = false;
    }
  }
}

function createMedia(tag, el) {
  const node = document.createElement(tag);
  node.preload = "auto";
  node.controls = false;
  node.disableRemotePlayback = true;
  if (tag === "video") {
    node.playsInline = true;
    node.setAttribute("playsinline", "");
    node.disablePictureInPicture = true;
  }
  // Muted goes on before the source (set in update) so muted autoplay is allowed.
  node.muted = el.muted === true;
  return { node, url: null, muted: null, volume: null, autoMuted: false };
}

/** <video>/<audio>; `waitFor` names the events that end the preload (none: shown at once). */
const mediaRenderer = (tag, waitFor) => ({
  create(el) {
    return createMedia(tag, el);
  },
  mount(rec) {
    // Listeners go on before the source starts loading.
    if (waitFor) preload(rec, waitFor);
  },
  update(rec, el) {
    syncMedia(rec, el);
    const fit = ["contain", "cover", "fill"].includes(el.fit) ? el.fit : "contain";
    setStyle(rec, "objectFit", fit);
  },
});

elementTypes.set("video", mediaRenderer("video", ["loadeddata", "error"]));
elementTypes.set("audio", mediaRenderer("audio", null));

elementTypes.set("image", {
  create() {
    const node = document.createElement("img");
    node.alt = "";
    node.decoding = "async";
    node.draggable = false;
    return { node, url: null };
  },
  mount(rec) {
    preload(rec, ["load", "error"]);
  },
  update(rec, el) {
    const url = mediaUrl(el);
    if (url !== rec.url) {
      rec.url = url;
      if (url) rec.node.src = url;
      else rec.node.removeAttribute("src");
    }
    setStyle(rec, "objectFit", ["contain", "cover", "fill"].includes(el.fit) ? el.fit : "contain");
  },
});

elementTypes.set("text", {
  create() {
    return { node: createTextNode(), text: null };
  },
  // After the box is placed, so auto-fit measures the new size.
  placed(rec, el) {
    updateText(rec, el, setStyle);
  },
});

/** Elements of a type nobody draws: an empty hidden node, so a renderer registered later can take over. */
const unknownRenderer = {
  create(el) {
    const node = document.createElement("div");
    node.className = "ov-unknown";
    debugLog(`no renderer for element type '${el.type}' (${el.id}); not drawn`);
    return { node };
  },
  update() {},
};

// ---------------------------------------------------------------------------------------------
// Scene diffing

/** id -> record {id, type, node, renderer, el, rank, styles, loading, ready, destroyed, ...renderer fields}. */
const records = new Map();

/** The record of an element id (for hooks). */
export function elementRecord(id) {
  return records.get(id);
}

function placeCommon(rec, el, rank) {
  rec.el = el;
  rec.rank = rank;
  const x = finite(el.x, 0);
  const y = finite(el.y, 0);
  const w = Math.max(0, finite(el.width, 320));
  const h = Math.max(0, finite(el.height, 180));
  setStyle(rec, "left", `${x}px`);
  setStyle(rec, "top", `${y}px`);
  setStyle(rec, "width", `${w}px`);
  setStyle(rec, "height", `${h}px`);
  const rotation = finite(el.rotation, 0);
  setStyle(rec, "transform", rotation ? `rotate(${rotation}deg)` : "");
  setStyle(rec, "opacity", String(clamp(finite(el.opacity, 1), 0, 1)));
  setStyle(rec, "zIndex", String(rank));
  const shown = el.visible !== false && !rec.loading;
  setStyle(rec, "visibility", shown ? "visible" : "hidden");
}

function createRecord(el, renderer) {
  const made = renderer.create(el, api) || {};
  const node = made.node || document.createElement("div");
  const rec = Object.assign(made, {
    id: el.id, type: el.type, node, renderer, el: null, rank: 0, styles: {}, loading: false, ready: null, destroyed: false,
  });
  node.classList.add("ov-el");
  node.dataset.id = el.id;
  node.dataset.type = el.type;
  // Start hidden; placeCommon shows it (once loaded, for preloading types).
  node.style.visibility = "hidden";
  rec.styles.visibility = "hidden";
  if (typeof renderer.mount === "function") renderer.mount(rec, api);
  ensureStage().appendChild(node);
  return rec;
}

function destroyRecord(rec) {
  rec.destroyed = true;
  records.delete(rec.id);
  try {
    if (typeof rec.renderer.destroy === "function") rec.renderer.destroy(rec, api);
  } catch (err) {
    reportProblem(`destroying ${rec.id}`, err);
  }
  const node = rec.node;
  if (node instanceof HTMLMediaElement) {
    // Stop the download and the sound before dropping the node.
    try {
      node.pause();
      node.removeAttribute("src");
      node.load();
    } catch {
      /* already gone */
    }
  }
  node.remove();
}

let renderSeq = 0;

/** Draws `scene` (changing only what changed) and acknowledges `version` once it is on screen. */
export function applyScene(scene, version) {
  return renderScene(scene, version, true);
}

function renderScene(scene, version, acknowledge) {
  const seq = ++renderSeq;
  internal.scene = scene;
  internal.appliedVersion = version;
  const width = Math.round(finite(scene.width, 1920));
  const height = Math.round(finite(scene.height, 1080));
  if (width !== internal.width || height !== internal.height || !stage) {
    internal.width = width > 0 ? width : 1920;
    internal.height = height > 0 ? height : 1080;
    fitStage();
  }

  const list = Array.isArray(scene.elements) ? scene.elements : [];
  // Stacking: z first, then list order (later above). Expressed with z-index only: nodes are never moved in the DOM.
  const ordered = list
    .map((el, index) => ({ el, index }))
    .filter(({ el }) => el && typeof el === "object" && typeof el.id === "string" && el.id && typeof el.type === "string")
    .sort((a, b) => finite(a.el.z, 0) - finite(b.el.z, 0) || a.index - b.index);

  const seen = new Set();
  ordered.forEach(({ el }, position) => {
    if (seen.has(el.id)) return;
    seen.add(el.id);
    const renderer = elementTypes.get(el.type) || unknownRenderer;
    let rec = records.get(el.id);
    if (rec && (rec.type !== el.type || rec.renderer !== renderer)) {
      destroyRecord(rec);
      rec = undefined;
    }
    try {
      const previous = rec ? rec.el : null;
      if (!rec) {
        rec = createRecord(el, renderer);
        records.set(el.id, rec);
      }
      if (typeof renderer.update === "function") renderer.update(rec, el, previous, api);
      placeCommon(rec, el, position + 1);
      if (typeof renderer.placed === "function") renderer.placed(rec, el, api);
    } catch (err) {
      reportProblem(`drawing ${el.id}`, err);
    }
  });
  for (const rec of [...records.values()]) {
    if (!seen.has(rec.id)) destroyRecord(rec);
  }
  updateDebug();

  const pending = [...records.values()].filter((rec) => rec.loading && rec.ready).map((rec) => rec.ready);
  return Promise.all(pending)
    .then(afterPaint)
    .then(() => {
      if (seq !== renderSeq) return; // a newer version took over; it acknowledges itself
      if (acknowledge || internal.version !== version) {
        internal.version = version;
        internal.shown = true;
        acknowledgeVersion(version);
        window.dispatchEvent(new CustomEvent("overlay:applied", { detail: { version } }));
      }
      updateDebug();
    });
}

// ---------------------------------------------------------------------------------------------
// Socket events

/** event type -> Set of handlers (message, api). */
export const handlers = new Map();

/** Adds a handler of a socket event type; returns a function that removes it. */
export function on(type, handler) {
  if (!handlers.has(type)) handlers.set(type, new Set());
  handlers.get(type).add(handler);
  return () => handlers.get(type)?.delete(handler);
}

/** Messages received while plugins load: replayed to each plugin's handlers once its setup is done. */
const early = { messages: [], active: true, max: 500 };

/** Runs the handlers of one decoded message. Unknown types are ignored. */
export function handleMessage(message) {
  if (!message || typeof message !== "object" || typeof message.type !== "string") return;
  if (early.active) {
    early.messages.push(message);
    if (early.messages.length > early.max) early.messages.shift();
  }
  const set = handlers.get(message.type);
  if (!set || set.size === 0) {
    debugLog(`ignored event '${message.type}'`);
    return;
  }
  for (const handler of [...set]) {
    try {
      handler(message, api);
    } catch (err) {
      reportProblem(`handler of '${message.type}'`, err);
    }
  }
}

on("hello", (message) => {
  internal.connectionId = typeof message.connection_id === "string" ? message.connection_id : "";
  updateDebug();
});

on("scene.full", (message) => {
  if (message.active === false) return;
  const scene = message.scene;
  if (!scene || typeof scene !== "object") return;
  const version = finite(message.version, finite(scene._version, NaN));
  if (!Number.isFinite(version)) return;
  const first = !socketState.synced;
  socketState.synced = true;
  // Another epoch: the engines' store was reset and versions started over; its frame is the truth.
  const newEpoch = typeof message.epoch === "string" && message.epoch !== internal.epoch;
  if (typeof message.epoch === "string") internal.epoch = message.epoch;
  if (version > internal.appliedVersion || (newEpoch && version !== internal.appliedVersion)) {
    applyScene(scene, version);
  } else if (first && version < internal.appliedVersion) {
    // The first frame after (re)connecting is the server's truth; an older version means the engine was reset.
    debugLog(`engine is at version ${version}, below ours (${internal.appliedVersion}); resyncing`);
    applyScene(scene, version);
  } else if (first && internal.shown && version === internal.version) {
    // Already on screen: tell the (possibly restarted) engine again.
    acknowledgeVersion(version);
  }
});

on("scene.patch", (message) => {
  if (message.active === false) return;
  const version = finite(message.version, NaN);
  if (!Number.isFinite(version) || (message.epoch === internal.epoch && version <= internal.appliedVersion)) return;
  const scene = message.epoch === internal.epoch ? applyScenePatch(internal.scene, message) : null;
  if (!scene) {
    // Not on its base (a frame was lost, or another epoch): start over with the full scene.
    debugLog(`patch ${message.base_version} -> ${version} does not apply to version ${internal.appliedVersion}; resyncing`);
    internal.epoch = "";
    dropSocket();
    return;
  }
  socketState.synced = true;
  applyScene(scene, version);
});

on("scene.resumed", (message) => {
  // Reconnected and given exactly the versions missed (none when up to date).
  socketState.synced = true;
  internal.resumes += 1;
  debugLog(`resumed from version ${message.from}: ${message.replayed} version(s) replayed`);
  if (internal.shown && internal.version === internal.appliedVersion) acknowledgeVersion(internal.version);
  updateDebug();
});

on("pong", () => {
  if (socketState.pingSentAt) internal.rttMs = Math.round(performance.now() - socketState.pingSentAt);
  socketState.pingSentAt = 0;
  updateDebug();
});

on("error", (message) => {
  internal.lastError = `${message.code || "error"}: ${message.message || ""}`.slice(0, 200);
  debugLog("engine error", message);
  updateDebug();
});

// ---------------------------------------------------------------------------------------------
// Socket

const socketState = {
  ws: null,
  generation: 0,
  /** Reconnect delays; made in start() from config.backoffBaseMs / backoffMaxMs. */
  backoff: null,
  retryTimer: 0,
  pingTimer: 0,
  lastReceived: 0,
  pingSentAt: 0,
  synced: false,
};

function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const query = new URLSearchParams({ overlay_id: config.overlayId, patches: "1" });
  if (config.token) query.set("token", config.token);
  // The version held: the engine (this one or another behind the proxy) sends only what was missed.
  if (internal.epoch && internal.appliedVersion > 0) {
    query.set("since", String(internal.appliedVersion));
    query.set("epoch", internal.epoch);
  }
  return `${scheme}//${location.host}/ws/overlay?${query}`;
}

function setConnState(value) {
  if (internal.connState === value) return;
  internal.connState = value;
  updateDebug();
}

/** Sends a message over the socket; false when it is not open. */
export function send(message) {
  const ws = socketState.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) return false;
  try {
    ws.send(typeof message === "string" ? message : JSON.stringify(message));
    return true;
  } catch {
    return false;
  }
}

function acknowledgeVersion(version) {
  if (send({ type: "overlay.applied", version })) return;
  // Socket down: the HTTP fallback (the next connection's sync acknowledges again anyway).
  const headers = { "content-type": "application/json" };
  if (config.token) headers["x-overlay-token"] = config.token;
  fetch("/api/overlay/applied", {
    method: "POST",
    headers,
    body: JSON.stringify({ overlay_id: config.overlayId, version }),
    keepalive: true,
  }).catch(() => {});
}

function connect() {
  clearTimeout(socketState.retryTimer);
  const generation = ++socketState.generation;
  socketState.synced = false;
  setConnState("connecting");
  let ws;
  try {
    ws = new WebSocket(socketUrl());
  } catch (err) {
    debugLog("socket could not be created", err);
    scheduleReconnect();
    return;
  }
  socketState.ws = ws;
  const current = () => generation === socketState.generation;
  ws.onopen = () => {
    if (!current()) return;
    socketState.lastReceived = Date.now();
    setConnState("open");
  };
  ws.onmessage = (event) => {
    if (!current()) return;
    socketState.lastReceived = Date.now();
    socketState.backoff.reset();
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      debugLog("ignored a frame that is not JSON");
      return;
    }
    handleMessage(message);
  };
  ws.onerror = () => {
    // A close event follows; nothing else to do.
  };
  ws.onclose = (event) => {
    if (!current()) return;
    debugLog(`socket closed (${event.code}${event.reason ? ": " + event.reason : ""})`);
    socketState.ws = null;
    setConnState("closed");
    scheduleReconnect();
  };
}

function scheduleReconnect() {
  clearTimeout(socketState.retryTimer);
  const delay = socketState.backoff.next();
  debugLog(`reconnecting in ${Math.round(delay)} ms`);
  socketState.retryTimer = setTimeout(connect, delay);
}

/** Drops the current socket (ignoring its late events) and reconnects. */
function dropSocket() {
  const ws = socketState.ws;
  socketState.generation += 1;
  socketState.ws = null;
  if (ws) {
    try {
      ws.close();
    } catch {
      /* already closing */
    }
  }
  setConnState("closed");
  scheduleReconnect();
}

function watchdog() {
  const ws = socketState.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN) return;
  if (Date.now() - socketState.lastReceived > config.silenceLimitMs) {
    debugLog("no frame from the engine for too long; reconnecting");
    dropSocket();
    return;
  }
  socketState.pingSentAt = performance.now();
  send({ type: "ping" });
}

// ---------------------------------------------------------------------------------------------
// Debug box (?debug=1 only)

let debugBox = null;

function updateDebug() {
  if (!config.debug) return;
  if (!debugBox) {
    if (!document.body) return;
    debugBox = document.createElement("div");
    debugBox.id = "ov-debug";
    document.body.appendChild(debugBox);
  }
  const lines = [
    `${internal.connState}  ${config.overlayId}`,
    `version ${internal.version}${internal.appliedVersion > internal.version ? ` (drawing ${internal.appliedVersion})` : ""}  elements ${records.size}`,
  ];
  if (internal.rttMs !== null) lines.push(`rtt ${internal.rttMs} ms`);
  if (pluginStatus.loaded.length) lines.push(`plugins ${pluginStatus.loaded.join(", ")}`);
  for (const failure of pluginStatus.failed) lines.push(`plugin ${failure.name} failed: ${failure.error}`);
  if (internal.lastError) lines.push(internal.lastError);
  debugBox.dataset.state = internal.connState;
  debugBox.textContent = lines.join("\n");
}

// ---------------------------------------------------------------------------------------------
// Start

/** What handlers and renderers receive as their context. */
export const api = Object.freeze({
  config, state, on, send, handleMessage, applyScene, registerElementType, trackLoad, elementRecord, getStage,
});

/**
 * The api one plugin's overlay module receives (docs/plugin-bundles.md). What it registers is undone if its
 * setup fails; its socket handlers also get, in order, the messages that arrived before its setup finished.
 */
function pluginApi(info, listing) {
  const owned = registrations();
  const subscriptions = [];
  let live = false;
  const pluginOn = (type, handler) => {
    if (typeof type !== "string" || typeof handler !== "function") throw new TypeError("on(type, handler)");
    const entry = [type, handler];
    subscriptions.push(entry);
    const off = on(type, (message, ctx) => {
      if (live) handler(message, ctx);
    });
    return owned.track(() => {
      off();
      const at = subscriptions.indexOf(entry);
      if (at >= 0) subscriptions.splice(at, 1);
    });
  };
  const made = Object.freeze({
    plugin: info,
    config,
    state,
    /** What /api/plugins declares for element types: Map type -> {type, label, width, height, schema, plugin}. */
    elementTypes: declaredTypes(listing),
    on: pluginOn,
    send,
    registerElementType: (type, renderer) => owned.track(registerElementType(type, renderer)),
    trackLoad,
    getStage,
    elementRecord,
    debug: (...args) => {
      if (config.debug) console.debug(`[${info.name}]`, ...args);
    },
    dispose: () => owned.dispose(),
  });
  // Called by boot() once setup has finished: replays what arrived meanwhile, then goes live.
  goLive.set(made, () => {
    for (const message of early.messages) {
      for (const [type, handler] of [...subscriptions]) {
        if (type !== message.type) continue;
        try {
          handler(message, api);
        } catch (err) {
          reportProblem(`${info.name}: handler of '${type}'`, err);
        }
      }
    }
    live = true;
  });
  return made;
}

/** plugin api -> its go-live function. */
const goLive = new WeakMap();

/**
 * The page's entry point: starts the overlay at once (core element types draw, versions are acknowledged), then
 * loads the overlay modules of the plugins GET /api/plugins lists, in load order. A failing plugin is skipped
 * (listed in `window.onionPlugins` and in the ?debug=1 box); without /api/plugins only the core runs.
 * @returns {Promise<object>} the plugin status once all are loaded
 */
export async function boot(options = {}) {
  start(options);
  onPluginStatus(updateDebug);
  const listing = await fetchListing();
  const status = await loadPlugins("overlay", listing, (info) => pluginApi(info, listing), {
    afterSetup: (made) => goLive.get(made)?.(),
  });
  // Each plugin went live right after its own setup; nothing more to replay.
  early.active = false;
  early.messages = [];
  updateDebug();
  return status;
}

let started = false;

/** Reads the URL, exposes `window.overlayState` and connects. Safe to call once; later calls do nothing. */
export function start(options = {}) {
  if (started) return api;
  started = true;
  const params = new URLSearchParams(location.search);
  config.debug = params.get("debug") === "1";
  // The overlay token: ?overlay_token= (needed on /preview, whose ?token= is the room's viewer token), else ?token=.
  config.token = params.get("overlay_token") || params.get("token") || "";
  config.overlayId = resolveOverlayId(params.get("overlay_id"));
  config.mode = location.pathname.replace(/\/+$/, "") === "/preview" ? "preview" : "overlay";
  config.webrtcRoom = params.get("webrtc_room") || "";
  Object.assign(config, options);
  socketState.backoff = new Backoff({ baseMs: config.backoffBaseMs, maxMs: config.backoffMaxMs, maxAttempt: 20 });

  Object.defineProperty(window, "overlayState", { value: state, writable: false, configurable: false, enumerable: true });

  ensureStage();
  fitStage();
  window.addEventListener("resize", fitStage);
  for (const name of ["pointerdown", "keydown"]) window.addEventListener(name, restoreSound, { passive: true });
  window.addEventListener("online", () => {
    if (!socketState.ws) {
      socketState.backoff.reset();
      connect();
    }
  });
  socketState.pingTimer = setInterval(watchdog, config.pingEveryMs);
  updateDebug();
  connect();
  return api;
}
