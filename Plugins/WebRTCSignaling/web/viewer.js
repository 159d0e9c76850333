// WebRTC viewer: one view of a camera room (RoomViewer), used by the overlay module (overlay.js: /preview and
// `webrtc` elements) and by the panel's editor thumbnails (panel.js).
//
// Each view opens WS /ws/webrtc/<room>/viewer?token=, answers the publisher's offers (one RTCPeerConnection per
// offer generation `pc_id`), reports `viewer.metrics` from getStats() every 2 s, asks the publisher for a new
// picture (`viewer.request-keyframe`) when frames stop, and reconnects with backoff. Tokens: the preview URL's
// token while it is valid for the room, otherwise a short-lived one from
// POST /api/webrtc/rooms/<room>/viewer-token (with the overlay token when the page has one).
//
// In `sfu` mode (`room.joined.mode`) the offers come from the media server through the same socket, so nothing
// changes here: a keyframe request makes the server ask the publisher for a keyframe, or subscribe this view again.
// `maxKbps` (element prop `max_kbps`, `/preview?webrtc_max_kbps=`) is sent as `viewer.settings`: the publisher caps
// this view's connection (p2p) or the server picks the simulcast layer that fits (sfu).
//
// Test/debug hook: window.overlayWebRTC = {views, preview} (read-only use).
//
// No import of the page core (only the shared /js/lib/ helpers): the page hands its settings over with configure().

import { Backoff } from "/js/lib/backoff.js";
import { parseRoomToken, ROOM_RE } from "./room-token.js";

export { parseRoomToken, ROOM_RE };

/** The page's settings: `debug`, and `token` (the overlay token, or the preview link's room token). */
let config = { debug: false, token: "" };

/** Uses `settings` (read on every use, so a live object such as the overlay's config) for debug logs and tokens. */
export function configure(settings) {
  if (settings && typeof settings === "object") config = settings;
}

const METRICS_EVERY_MS = 2000;
const WATCH_EVERY_MS = 1000;
/** Frames must advance within this long once connected, or a keyframe is requested. */
const FROZEN_AFTER_MS = 4000;
/** With a publisher present, a connection must be up within this long, or a new offer is requested. */
const NO_PICTURE_AFTER_MS = 6000;
const KEYFRAME_REQUEST_GAP_MS = 5000;

/** Every live view, for debugging and tests. */
const views = new Set();
/** Every live view, and the preview's (set by overlay.js). */
export const hook = { views, preview: null };
Object.defineProperty(window, "overlayWebRTC", { value: hook, configurable: true });

function debugLog(...args) {
  if (config.debug) console.debug("[webrtc]", ...args);
}

/** A status with the HTTP status attached. */
function httpError(what, response) {
  const error = new Error(`${what}: HTTP ${response.status}`);
  error.status = response.status;
  return error;
}

/** A short-lived viewer token from the overlay route. */
async function fetchViewerToken(room) {
  const headers = {};
  // The page's ?token= is the overlay token unless it is a room token (a preview link).
  if (config.token && !parseRoomToken(config.token)) headers["x-overlay-token"] = config.token;
  const response = await fetch(`/api/webrtc/rooms/${encodeURIComponent(room)}/viewer-token`, { method: "POST", headers });
  if (!response.ok) throw httpError("viewer token", response);
  const body = await response.json();
  if (!body || typeof body.token !== "string") throw new Error("viewer token: malformed answer");
  return body.token;
}

/** RTCConfiguration from GET /api/webrtc/config (TURN only comes with a valid token). */
async function fetchIceConfig(room, token) {
  try {
    const query = new URLSearchParams({ room, token });
    const response = await fetch(`/api/webrtc/config?${query}`, { cache: "no-store" });
    if (!response.ok) throw httpError("ice config", response);
    const body = await response.json();
    const iceServers = (Array.isArray(body.ice_servers) ? body.ice_servers : []).map((server) => {
      const entry = { urls: server.urls };
      if (server.username) entry.username = server.username;
      if (server.credential) entry.credential = server.credential;
      return entry;
    });
    return { iceServers, iceTransportPolicy: body.ice_transport_policy === "relay" ? "relay" : "all" };
  } catch (err) {
    debugLog("no ICE config; host candidates only", err);
    return { iceServers: [] };
  }
}

function finiteOrNull(value, scale = 1) {
  const number = Number(value) * scale;
  return Number.isFinite(number) && number >= 0 ? Math.round(number * 100) / 100 : null;
}

/** The figures `viewer.metrics` carries, from one getStats() report and the previous one (for rates). */
function viewerSample(report, previous, pc) {
  let inbound = null;
  let pair = null;
  let selectedPairId = null;
  report.forEach((stat) => {
    if (stat.type === "inbound-rtp" && (stat.kind || stat.mediaType) === "video") inbound = stat;
    if (stat.type === "transport" && stat.selectedCandidatePairId) selectedPairId = stat.selectedCandidatePairId;
  });
  if (selectedPairId) pair = report.get(selectedPairId) || null;
  if (!pair) {
    report.forEach((stat) => {
      if (stat.type === "candidate-pair" && stat.nominated && stat.state === "succeeded") pair = stat;
    });
  }
  const sample = { state: pc.connectionState };
  if (inbound) {
    const seconds = previous && previous.timestamp ? (inbound.timestamp - previous.timestamp) / 1000 : 0;
    let fps = inbound.framesPerSecond;
    if (fps === undefined && seconds > 0 && previous.framesDecoded !== undefined) {
      fps = (inbound.framesDecoded - previous.framesDecoded) / seconds;
    }
    sample.fps = finiteOrNull(fps ?? 0);
    sample.width = finiteOrNull(inbound.frameWidth);
    sample.height = finiteOrNull(inbound.frameHeight);
    if (seconds > 0 && previous.bytesReceived !== undefined) {
      sample.bitrate_kbps = finiteOrNull(((inbound.bytesReceived - previous.bytesReceived) * 8) / seconds / 1000);
    }
    const lost = Math.max(0, inbound.packetsLost || 0);
    const received = inbound.packetsReceived || 0;
    sample.packets_lost = lost;
    if (previous && previous.packetsReceived !== undefined) {
      const lostNow = Math.max(0, lost - Math.max(0, previous.packetsLost || 0));
      const receivedNow = Math.max(0, received - previous.packetsReceived);
      sample.packet_loss_pct = lostNow + receivedNow > 0 ? finiteOrNull((100 * lostNow) / (lostNow + receivedNow)) : 0;
    } else if (lost + received > 0) {
      sample.packet_loss_pct = finiteOrNull((100 * lost) / (lost + received));
    }
    sample.jitter_ms = finiteOrNull(inbound.jitter, 1000);
    sample.frames_dropped = finiteOrNull(inbound.framesDropped);
    sample.frames = finiteOrNull(inbound.framesDecoded);
    sample.freeze_count = finiteOrNull(inbound.freezeCount);
    const codec = inbound.codecId ? report.get(inbound.codecId) : null;
    if (codec && typeof codec.mimeType === "string" && /^[A-Za-z0-9/._-]{1,32}$/.test(codec.mimeType)) sample.codec = codec.mimeType;
  }
  if (pair && pair.currentRoundTripTime !== undefined) sample.rtt_ms = finiteOrNull(pair.currentRoundTripTime, 1000);
  for (const key of Object.keys(sample)) if (sample[key] === null) delete sample[key];
  return { sample, raw: inbound ? { ...inboundFields(inbound) } : null };
}

function inboundFields(stat) {
  return {
    timestamp: stat.timestamp, framesDecoded: stat.framesDecoded, bytesReceived: stat.bytesReceived,
    packetsLost: stat.packetsLost, packetsReceived: stat.packetsReceived,
  };
}

/** A <video> for a view: autoplaying, inline, filling its box. */
export function makeVideo(muted) {
  const video = document.createElement("video");
  video.autoplay = true;
  video.playsInline = true;
  video.setAttribute("playsinline", "");
  video.muted = muted;
  video.controls = false;
  video.disablePictureInPicture = true;
  video.disableRemotePlayback = true;
  Object.assign(video.style, { display: "block", width: "100%", height: "100%", objectFit: "contain", background: "transparent" });
  return video;
}

/** One view of a room: its signaling socket, its peer connection and its <video>. */
export class RoomViewer {
  /**
   * @param {string} room
   * @param {HTMLVideoElement} video
   * @param {{urlToken?: string, wantSound?: boolean, maxKbps?: number}} options
   */
  constructor(room, video, options = {}) {
    this.room = room;
    const maxKbps = Number(options.maxKbps);
    this.maxKbps = Number.isFinite(maxKbps) && maxKbps > 0 ? Math.min(50000, Math.round(maxKbps)) : 0;
    this.mode = "p2p";
    this.video = video;
    this.urlToken = options.urlToken || "";
    this.wantSound = options.wantSound === true;
    this.state = "idle"; // idle | connecting | waiting | negotiating | playing | error | stopped
    this.lastError = "";
    this.viewerId = "";
    this.publisherId = null;
    this.publisherPresent = false;
    this.ws = null;
    this.generation = 0;
    this.backoff = new Backoff({ baseMs: 500, maxMs: 8000, maxAttempt: 10 });
    this.stopped = true;
    this.ice = { iceServers: [] };
    this.pc = null;
    this.pcId = null;
    this.pendingRemote = new Map(); // pc_id -> [candidate]
    this.pendingLocal = null; // our candidates held until the answer is sent
    this.lastSeq = 0;
    this.timers = [];
    this.retryTimer = 0;
    this.prevStats = null;
    this.lastFrames = -1;
    this.framesMovedAt = 0;
    this.waitingSince = 0;
    this.lastKeyframeRequest = 0;
    this.firstFrameAt = 0;
    this.startedAt = 0;
    this.remoteMetrics = null;
    this.lastSample = null;
    this.reconnects = 0;
    this.pingEveryMs = 15000;
    this.lastPingAt = 0;
    /** Other <video> nodes showing this view's stream (a scene element of the preview's own room). */
    this.mirrors = new Set();
  }

  /** Sends this view's bitrate cap (nothing when it has none). */
  sendSettings() {
    if (this.maxKbps > 0) this.send({ type: "viewer.settings", max_bitrate_kbps: this.maxKbps });
  }

  /** Changes the most this view wants to receive (kbit/s; 0 = no limit). */
  setMaxBitrate(kbps) {
    const value = Number(kbps);
    this.maxKbps = Number.isFinite(value) && value > 0 ? Math.min(50000, Math.round(value)) : 0;
    this.send({ type: "viewer.settings", max_bitrate_kbps: this.maxKbps });
  }

  /** Shows this view's stream in `video` too, without a connection of its own. */
  addMirror(video) {
    this.mirrors.add(video);
    if (this.video.srcObject) this.showIn(video, this.video.srcObject);
  }

  removeMirror(video) {
    this.mirrors.delete(video);
    video.srcObject = null;
  }

  showIn(video, stream) {
    if (video.srcObject !== stream) video.srcObject = stream;
    const attempt = video.play();
    if (attempt && attempt.catch) attempt.catch(() => {});
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.startedAt = performance.now();
    views.add(this);
    this.timers.push(setInterval(() => this.watch(), WATCH_EVERY_MS));
    this.timers.push(setInterval(() => this.reportMetrics(), METRICS_EVERY_MS));
    this.connect();
  }

  stop() {
    this.stopped = true;
    this.state = "stopped";
    views.delete(this);
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    clearTimeout(this.retryTimer);
    this.generation += 1;
    if (this.ws) {
      try {
        this.ws.close(1000, "view removed");
      } catch {
        /* already closed */
      }
    }
    this.ws = null;
    this.closePeer();
    this.video.srcObject = null;
    for (const mirror of this.mirrors) mirror.srcObject = null;
  }

  send(message) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(message));
    return true;
  }

  async token() {
    const parsed = parseRoomToken(this.urlToken);
    if (parsed && parsed.role === "viewer" && parsed.room === this.room && parsed.expiresAt * 1000 > Date.now() + 2000) {
      return this.urlToken;
    }
    return fetchViewerToken(this.room);
  }

  async connect() {
    clearTimeout(this.retryTimer);
    const generation = ++this.generation;
    const current = () => generation === this.generation && !this.stopped;
    this.state = "connecting";
    let token;
    try {
      token = await this.token();
      this.ice = await fetchIceConfig(this.room, token);
    } catch (err) {
      if (!current()) return;
      this.fail(`${err.message || err}`, err.status === 403 || err.status === 401 ? 10000 : 0);
      return;
    }
    if (!current()) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    let ws;
    try {
      ws = new WebSocket(`${scheme}//${location.host}/ws/webrtc/${encodeURIComponent(this.room)}/viewer?token=${encodeURIComponent(token)}`);
    } catch (err) {
      this.fail(`socket: ${err.message || err}`);
      return;
    }
    this.ws = ws;
    ws.onmessage = (event) => {
      if (!current()) return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      try {
        this.onMessage(message);
      } catch (err) {
        console.warn("[webrtc]", "message handler", err);
      }
    };
    ws.onclose = (event) => {
      if (!current()) return;
      this.ws = null;
      this.closePeer();
      debugLog(`socket closed ${event.code} ${event.reason}`);
      if ((event.code === 4401 || event.code === 4403) && token === this.urlToken) this.urlToken = ""; // use the overlay route next
      this.fail(`closed ${event.code}${event.reason ? ": " + event.reason : ""}`, event.code === 4429 ? 5000 : 0);
    };
  }

  fail(why, minimumDelay = 0) {
    this.lastError = why;
    this.state = "error";
    if (this.stopped) return;
    const delay = Math.max(minimumDelay, this.backoff.next());
    debugLog(`${this.room}: ${why}; reconnecting in ${Math.round(delay)} ms`);
    this.reconnects += 1;
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  onMessage(message) {
    switch (message.type) {
      case "room.joined":
        this.backoff.reset();
        this.viewerId = message.viewer_id || "";
        this.publisherId = message.publisher_id || null;
        this.publisherPresent = !!this.publisherId;
        this.waitingSince = performance.now();
        this.lastSeq = 0;
        if (Number(message.ping_interval_seconds) > 0) this.pingEveryMs = Number(message.ping_interval_seconds) * 1000;
        this.state = this.publisherPresent ? "negotiating" : "waiting";
        this.mode = message.mode === "sfu" ? "sfu" : "p2p";
        if (this.mode === "sfu" || this.publisherPresent) this.sendSettings();
        break;
      case "room.state":
        if (typeof message.seq === "number") {
          if (message.seq <= this.lastSeq) return;
          this.lastSeq = message.seq;
        }
        if (!message.publisher) {
          this.publisherPresent = false;
          this.publisherId = null;
          this.closePeer();
          // No camera: show nothing (transparent in OBS) rather than a frozen last frame.
          this.video.srcObject = null;
          for (const mirror of this.mirrors) mirror.srcObject = null;
          this.state = "waiting";
        } else if (message.publisher_id !== this.publisherId) {
          // A new publisher: it sends fresh offers.
          this.closePeer();
          this.publisherPresent = true;
          this.publisherId = message.publisher_id;
          this.waitingSince = performance.now();
          this.state = "negotiating";
          if (this.mode === "p2p") this.sendSettings(); // the new publisher has not heard it
        }
        break;
      case "offer":
        this.onOffer(message).catch((err) => {
          console.warn("[webrtc]", "offer", err);
          this.requestKeyframe("offer-failed", true);
        });
        break;
      case "ice-candidate":
        this.onCandidate(message);
        break;
      case "publisher.metrics":
        this.remoteMetrics = message;
        break;
      case "error":
        debugLog("server error", message);
        break;
      default:
        break;
    }
  }

  createPeer(pcId) {
    this.closePeer();
    const pc = new RTCPeerConnection(this.ice);
    this.pc = pc;
    this.pcId = pcId;
    this.pendingLocal = [];
    this.prevStats = null;
    this.lastFrames = -1;
    this.framesMovedAt = performance.now();
    pc.ontrack = (event) => {
      if (pc !== this.pc) return;
      const stream = event.streams && event.streams[0] ? event.streams[0] : new MediaStream([event.track]);
      if (this.video.srcObject !== stream) this.video.srcObject = stream;
      this.play();
      for (const mirror of this.mirrors) this.showIn(mirror, stream);
    };
    pc.onicecandidate = (event) => {
      if (pc !== this.pc) return;
      const candidate = event.candidate ? event.candidate.toJSON() : null;
      if (this.pendingLocal) this.pendingLocal.push(candidate);
      else this.send({ type: "ice-candidate", pc_id: pcId, candidate });
    };
    pc.onconnectionstatechange = () => {
      if (pc !== this.pc) return;
      debugLog(`${this.room}: connection ${pc.connectionState}`);
      if (pc.connectionState === "failed") this.requestKeyframe("connection-failed", true);
    };
    return pc;
  }

  closePeer() {
    const pc = this.pc;
    this.pc = null;
    this.pcId = null;
    this.pendingLocal = null;
    if (pc) {
      try {
        pc.close();
      } catch {
        /* closed */
      }
    }
  }

  async onOffer(message) {
    if (typeof message.sdp !== "string") return;
    if (message.from && message.from !== this.publisherId) {
      this.publisherId = message.from;
      this.publisherPresent = true;
    }
    const pcId = message.pc_id ?? "0";
    let pc = this.pc;
    if (!pc || this.pcId !== pcId) pc = this.createPeer(pcId);
    this.state = "negotiating";
    await pc.setRemoteDescription({ type: "offer", sdp: message.sdp });
    if (pc !== this.pc) return;
    for (const candidate of this.pendingRemote.get(pcId) || []) {
      await pc.addIceCandidate(candidate).catch((err) => debugLog("candidate", err));
    }
    this.pendingRemote.clear();
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    if (pc !== this.pc) return;
    this.send({ type: "answer", pc_id: pcId, sdp: pc.localDescription.sdp });
    const held = this.pendingLocal || [];
    this.pendingLocal = null;
    for (const candidate of held) this.send({ type: "ice-candidate", pc_id: pcId, candidate });
  }

  onCandidate(message) {
    const pcId = message.pc_id ?? "0";
    const candidate = message.candidate === null || message.candidate === undefined ? null : message.candidate;
    const pc = this.pc;
    if (!pc || this.pcId !== pcId || !pc.remoteDescription) {
      // Not ours yet (the offer is still being applied): keep it for that connection, bounded.
      const list = this.pendingRemote.get(pcId) || [];
      if (list.length < 200) list.push(candidate);
      this.pendingRemote.set(pcId, list);
      if (this.pendingRemote.size > 4) this.pendingRemote.delete(this.pendingRemote.keys().next().value);
      return;
    }
    pc.addIceCandidate(candidate).catch((err) => debugLog("candidate", err));
  }

  play() {
    const video = this.video;
    if (!this.wantSound) video.muted = true;
    const attempt = video.play();
    if (attempt && attempt.catch) {
      attempt.catch((err) => {
        if (err && err.name === "NotAllowedError" && !video.muted) {
          video.muted = true; // autoplay with sound blocked: play muted rather than not at all
          video.play().catch(() => {});
        }
      });
    }
  }

  /** Asks the publisher for a new picture (it restarts this viewer's connection). */
  requestKeyframe(reason, force = false) {
    const now = performance.now();
    if (!force && now - this.lastKeyframeRequest < KEYFRAME_REQUEST_GAP_MS) return;
    if (!this.publisherPresent) return;
    if (this.send({ type: "viewer.request-keyframe", reason, pc_id: this.pcId })) {
      this.lastKeyframeRequest = now;
      this.waitingSince = now;
      debugLog(`${this.room}: keyframe requested (${reason})`);
    }
  }

  frames() {
    try {
      const quality = this.video.getVideoPlaybackQuality ? this.video.getVideoPlaybackQuality() : null;
      return quality ? quality.totalVideoFrames : -1;
    } catch {
      return -1;
    }
  }

  watch() {
    if (this.stopped || !this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    const now = performance.now();
    if (now - this.lastPingAt >= this.pingEveryMs) {
      this.lastPingAt = now;
      this.send({ type: "ping", ts: Date.now() });
    }
    if (!this.publisherPresent) return;
    const pc = this.pc;
    if (!pc || pc.connectionState !== "connected") {
      if (now - this.waitingSince > NO_PICTURE_AFTER_MS) this.requestKeyframe(pc ? "not-connected" : "no-offer");
      return;
    }
    const frames = this.frames();
    if (frames > this.lastFrames) {
      if (this.lastFrames <= 0 && frames > 0 && !this.firstFrameAt) this.firstFrameAt = now;
      this.lastFrames = frames;
      this.framesMovedAt = now;
      this.state = "playing";
      if (this.video.paused) this.play();
    } else if (now - this.framesMovedAt > FROZEN_AFTER_MS) {
      this.state = "negotiating";
      this.requestKeyframe("frozen");
      this.framesMovedAt = now;
    }
  }

  async reportMetrics() {
    const pc = this.pc;
    if (this.stopped || !pc || !this.ws) return;
    try {
      const report = await pc.getStats();
      if (pc !== this.pc) return;
      const { sample, raw } = viewerSample(report, this.prevStats, pc);
      this.prevStats = raw;
      this.lastSample = sample;
      this.send({ type: "viewer.metrics", ...sample });
    } catch (err) {
      debugLog("stats", err);
    }
  }
}
