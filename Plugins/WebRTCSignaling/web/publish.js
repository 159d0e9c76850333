// The camera page: /publish?room=<room>&token=<publisher token>[&source=camera|screen][&audio=0]
//
// Captures the camera (getUserMedia) or the screen (getDisplayMedia, needs a click), joins
// WS /ws/webrtc/<room>/publisher?token= and keeps one RTCPeerConnection per viewer listed in `room.state`:
// it sends each viewer an `offer` (with a `pc_id` naming that connection generation) and trickles ICE
// candidates; it answers `viewer.request-keyframe` by restarting that viewer's connection (a fresh encoder
// starts with a keyframe). Every 2 s it sends `publisher.metrics` from getStats(). The socket reconnects with
// backoff, except when the token is refused (get a new link) or another publisher replaced this one.
//
// Two media paths, chosen by the server (`room.joined.mode`): `p2p` (above) and `sfu`, where the page keeps one
// RTCPeerConnection to the media server (Janus, behind the engine): its offer goes `to: "sfu"`, the answer comes back
// `from: "sfu"`, and the server subscribes every viewer; with `simulcast` it sends three layers (full, 1/2, 1/4 size).
// Quality presets (`room.joined.presets`, `?preset=` or the Quality menu) set the capture size/rate and the encoder's
// bitrate; a viewer's `viewer.settings` (p2p) caps the bitrate of its own connection.
//
// Test/debug hook: window.publisherState (read-only use).

import { Backoff } from "/js/lib/backoff.js";
import { readRoomToken, ROOM_RE } from "./room-token.js";

const METRICS_EVERY_MS = 2000;
const RESTART_GAP_MS = 3000;
const RESTART_MIN_MS = 1000;
const DISCONNECTED_GRACE_MS = 4000;

const params = new URLSearchParams(location.search);
const room = params.get("room") || "";
const token = params.get("token") || "";
const withAudio = params.get("audio") !== "0";

const $ = (id) => document.getElementById(id);

/** Page state, also exposed as window.publisherState. */
const state = {
  room,
  socket: "idle", // idle | connecting | open | closed | stopped
  publisherId: "",
  viewers: [],
  source: "",
  live: false,
  error: "",
  lastMetrics: null,
  stopReason: "",
  reconnects: 0,
  mode: "p2p", // p2p | sfu (from room.joined)
  preset: params.get("preset") || "",
  presets: {},
  simulcast: false,
};
Object.defineProperty(window, "publisherState", { value: state, configurable: true });

/** viewer id -> {pc, pcId, pendingLocal, pendingRemote, restartedAt, disconnectTimer, prevStats, sample} */
const peers = new Map();
let stream = null; // the MediaStream being sent
let micTrack = null;
let ws = null;
let generation = 0;
const backoff = new Backoff({ baseMs: 500, maxMs: 10000, maxAttempt: 10 });
let retryTimer = 0;
let pingTimer = 0;
let pcCounter = 0;
let lastSeq = 0;
let iceConfig = { iceServers: [] };
let stopped = false;
/** viewer id -> the most that viewer wants (kbit/s; p2p `viewer.settings`). */
const viewerCaps = new Map();
let viewerDefaultKbps = 0;

function setStatus(text, level = "info") {
  const node = $("status");
  node.textContent = text;
  node.dataset.level = level;
}

/** Why this page's link cannot publish, in words, or "" when it can. */
function linkProblem(parsed) {
  if (!room || !token) return "This link is incomplete: it needs both room and token. Ask the streamer for the publisher link again (Camera in /admin).";
  if (!ROOM_RE.test(room)) return `“${room}” is not a room name. Ask the streamer for the publisher link again.`;
  if (!parsed || !Number.isFinite(parsed.expiresAt)) return "This link's token is damaged (cut off or changed). Copy the whole publisher link again from /admin.";
  if (parsed.role !== "publisher") return "This token is for watching, not for sending a camera. Ask the streamer for a publisher link.";
  if (parsed.room !== room) return `This token is for room “${parsed.room}”, not “${room}”. Copy the whole publisher link again.`;
  if (parsed.expiresAt * 1000 < Date.now()) return `This link expired on ${new Date(parsed.expiresAt * 1000).toLocaleString()}. Ask the streamer for a new one.`;
  return "";
}

function send(message) {
  if (!ws || ws.readyState !== WebSocket.OPEN) return false;
  ws.send(JSON.stringify(message));
  return true;
}

// ---------------------------------------------------------------------------------------------
// Media

async function getCamera() {
  const video = { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } };
  try {
    return await navigator.mediaDevices.getUserMedia({ video, audio: withAudio });
  } catch (err) {
    if (!withAudio) throw err;
    // No microphone (or it was refused): the camera alone.
    return navigator.mediaDevices.getUserMedia({ video, audio: false });
  }
}

async function useSource(kind) {
  let next;
  try {
    next = kind === "screen"
      ? await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 30 } }, audio: false })
      : await getCamera();
  } catch (err) {
    state.error = `${kind}: ${err.name || ""} ${err.message || err}`.trim();
    setStatus(`Cannot use the ${kind}: ${err.message || err.name || err}`, "bad");
    return false;
  }
  const videoTrack = next.getVideoTracks()[0];
  if (!videoTrack) {
    setStatus(`The ${kind} gave no video`, "bad");
    return false;
  }
  videoTrack.contentHint = kind === "screen" ? "detail" : "motion";
  const nextMic = next.getAudioTracks()[0] || null;
  if (nextMic) {
    if (micTrack) micTrack.stop();
    micTrack = nextMic;
    micTrack.enabled = $("toggle-mic").getAttribute("aria-pressed") !== "false";
  }
  const old = stream;
  stream = new MediaStream([videoTrack, ...(micTrack ? [micTrack] : [])]);
  state.source = kind;
  $("local").srcObject = stream;
  $("use-camera").classList.toggle("active", kind === "camera");
  $("use-screen").classList.toggle("active", kind === "screen");
  videoTrack.addEventListener("ended", () => {
    if (stream && stream.getVideoTracks()[0] === videoTrack && kind === "screen") {
      setStatus("Screen sharing ended; back to the camera");
      useSource("camera");
    }
  });
  // Swap the video track in every live connection (no renegotiation needed); new viewers get the new stream.
  for (const peer of peers.values()) {
    for (const sender of peer.pc.getSenders()) {
      if (sender.track && sender.track.kind === "video") sender.replaceTrack(videoTrack).catch(() => restartPeer(peer.id, "source"));
      else if (!sender.track && peer.videoSender === sender) sender.replaceTrack(videoTrack).catch(() => {});
    }
  }
  if (old) for (const track of old.getVideoTracks()) if (track !== videoTrack) track.stop();
  return true;
}

// ---------------------------------------------------------------------------------------------
// Quality presets

/** The preset in force ({width, height, fps, bitrate_kbps}), or null before the server listed them. */
function currentPreset() {
  return state.presets[state.preset] || null;
}

/** The bitrate a connection may use: the preset's, capped by what its viewer asked for (p2p). */
function bitrateFor(id) {
  const preset = currentPreset();
  let kbps = preset ? preset.bitrate_kbps : 0;
  const cap = viewerCaps.get(id) || viewerDefaultKbps;
  if (id !== "sfu" && cap > 0) kbps = kbps > 0 ? Math.min(kbps, cap) : cap;
  return kbps;
}

/** Sets the encoder's bitrate(s) of one connection; simulcast layers get 1/8, 1/3 and all of it. */
async function applyBitrate(peer) {
  const kbps = bitrateFor(peer.id);
  const sender = peer.videoSender;
  if (!sender || !kbps) return;
  try {
    const parameters = sender.getParameters();
    if (!parameters.encodings || !parameters.encodings.length) return;
    const shares = { l: 1 / 8, m: 1 / 3, h: 1 };
    for (const encoding of parameters.encodings) {
      encoding.maxBitrate = Math.round(kbps * 1000 * (encoding.rid ? shares[encoding.rid] || 1 : 1));
    }
    await sender.setParameters(parameters);
  } catch (err) {
    console.debug("[publish]", "bitrate", err);
  }
}

/** Capture size and rate of the preset, then every connection's bitrate. */
async function applyPreset() {
  const preset = currentPreset();
  if (!preset || !stream) return;
  const track = stream.getVideoTracks()[0];
  if (track && state.source === "camera") {
    try {
      await track.applyConstraints({ width: { ideal: preset.width }, height: { ideal: preset.height }, frameRate: { ideal: preset.fps } });
    } catch (err) {
      console.debug("[publish]", "constraints", err);
    }
  }
  for (const peer of peers.values()) applyBitrate(peer);
}

function renderPresets() {
  const select = $("preset");
  if (!select) return;
  const names = Object.keys(state.presets);
  select.replaceChildren(...names.map((name) => {
    const option = document.createElement("option");
    const p = state.presets[name];
    option.value = name;
    option.textContent = `${name} (${p.width}×${p.height} ${p.fps} fps, ${p.bitrate_kbps} kbit/s)`;
    return option;
  }));
  select.value = state.preset;
  select.hidden = names.length === 0;
}

async function choosePreset(name) {
  if (!state.presets[name] || name === state.preset) return;
  state.preset = name;
  await applyPreset();
  // Through the SFU the media server's bitrate cap comes with the offer: renegotiate the one connection.
  if (state.mode === "sfu" && peers.has("sfu")) startPeer("sfu");
}

// ---------------------------------------------------------------------------------------------
// Peer connections, one per viewer (p2p) or one to the media server (sfu)

function closePeer(id) {
  const peer = peers.get(id);
  if (!peer) return;
  peers.delete(id);
  clearTimeout(peer.disconnectTimer);
  try {
    peer.pc.close();
  } catch {
    /* closed */
  }
}

async function startPeer(id) {
  closePeer(id);
  if (!stream) return;
  pcCounter += 1;
  const pcId = `${state.publisherId || "p"}:${pcCounter}`;
  const pc = new RTCPeerConnection(iceConfig);
  const peer = { id, pc, pcId, pendingLocal: [], pendingRemote: [], restartedAt: performance.now(), disconnectTimer: 0,
                 prevStats: null, sample: null, videoSender: null };
  peers.set(id, peer);
  const preset = currentPreset();
  // Three layers need 540 lines or more (below that Chrome sends fewer layers than were asked for).
  const layered = id === "sfu" && state.simulcast && (!preset || preset.height >= 540);
  for (const track of stream.getTracks()) {
    if (track.kind === "video" && layered) {
      // Three simulcast layers; the media server forwards to each viewer the one that fits.
      const transceiver = pc.addTransceiver(track, { direction: "sendonly", streams: [stream], sendEncodings: [
        // Highest first: Janus numbers the layers from the order of the rids (substream 2 = h, 0 = l).
        { rid: "h", scaleResolutionDownBy: 1 }, { rid: "m", scaleResolutionDownBy: 2 }, { rid: "l", scaleResolutionDownBy: 4 }] });
      peer.videoSender = transceiver.sender;
      continue;
    }
    const sender = pc.addTrack(track, stream);
    if (track.kind === "video") peer.videoSender = sender;
  }
  applyBitrate(peer);
  pc.onicecandidate = (event) => {
    if (peers.get(id) !== peer) return;
    const candidate = event.candidate ? event.candidate.toJSON() : null;
    if (peer.pendingLocal) peer.pendingLocal.push(candidate);
    else send({ type: "ice-candidate", to: id, pc_id: pcId, candidate });
  };
  pc.onconnectionstatechange = () => {
    if (peers.get(id) !== peer) return;
    const now = pc.connectionState;
    clearTimeout(peer.disconnectTimer);
    if (now === "failed") {
      peer.disconnectTimer = setTimeout(() => restartPeer(id, "failed"), 1000);
    } else if (now === "disconnected") {
      peer.disconnectTimer = setTimeout(() => {
        if (peers.get(id) === peer && pc.connectionState === "disconnected") restartPeer(id, "disconnected");
      }, DISCONNECTED_GRACE_MS);
    }
    renderPeers();
  };
  try {
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    if (peers.get(id) !== peer) return;
    send({ type: "offer", to: id, pc_id: pcId, sdp: pc.localDescription.sdp, ...(state.preset ? { preset: state.preset } : {}) });
    const held = peer.pendingLocal;
    peer.pendingLocal = null;
    for (const candidate of held) send({ type: "ice-candidate", to: id, pc_id: pcId, candidate });
  } catch (err) {
    console.warn("[publish]", "offer for", id, err);
    closePeer(id);
  }
  renderPeers();
}

/**
 * A new connection for one viewer (it asked for a keyframe, or the old connection failed). A request that names an
 * older connection (`pcId`) is stale: that one was already replaced. A connected connection is restarted at most once
 * per RESTART_MIN_MS, one still negotiating at most once per RESTART_GAP_MS (duplicate requests while it comes up).
 */
function restartPeer(id, why, pcId) {
  if (!state.viewers.includes(id) && !(id === "sfu" && state.mode === "sfu")) return;
  const peer = peers.get(id);
  if (peer) {
    if (pcId && pcId !== peer.pcId) {
      console.debug("[publish]", `ignored ${why} for ${id}: connection ${pcId} was already replaced by ${peer.pcId}`);
      return;
    }
    const gap = peer.pc.connectionState === "connected" ? RESTART_MIN_MS : RESTART_GAP_MS;
    if (performance.now() - peer.restartedAt < gap) {
      console.debug("[publish]", `ignored ${why} for ${id}: connection restarted less than ${gap} ms ago`);
      return;
    }
  }
  console.debug("[publish]", `restarting the connection of ${id} (${why})`);
  startPeer(id);
}

async function onAnswer(message) {
  const peer = peers.get(message.from);
  if (!peer || peer.pcId !== message.pc_id || typeof message.sdp !== "string") return;
  try {
    await peer.pc.setRemoteDescription({ type: "answer", sdp: message.sdp });
    const held = peer.pendingRemote;
    peer.pendingRemote = null;
    for (const candidate of held || []) await peer.pc.addIceCandidate(candidate).catch(() => {});
    applyBitrate(peer);
  } catch (err) {
    console.warn("[publish]", "answer from", message.from, err);
    restartPeer(message.from, "bad-answer");
  }
}

function onCandidate(message) {
  const peer = peers.get(message.from);
  if (!peer || peer.pcId !== message.pc_id) return;
  const candidate = message.candidate ?? null;
  if (peer.pendingRemote) {
    if (peer.pendingRemote.length < 200) peer.pendingRemote.push(candidate);
    return;
  }
  peer.pc.addIceCandidate(candidate).catch(() => {});
}

/** Makes the connections match the room's viewer list. */
function reconcile(viewerIds) {
  state.viewers = viewerIds;
  for (const id of viewerCaps.keys()) if (!viewerIds.includes(id)) viewerCaps.delete(id);
  if (state.mode === "sfu") {
    // One connection to the media server, whatever the number of viewers.
    for (const id of [...peers.keys()]) if (id !== "sfu") closePeer(id);
    if (!peers.has("sfu")) startPeer("sfu");
  } else {
    for (const id of [...peers.keys()]) if (!viewerIds.includes(id)) closePeer(id);
    for (const id of viewerIds) if (!peers.has(id)) startPeer(id);
  }
  $("viewer-count").textContent = String(viewerIds.length);
  renderPeers();
}

// ---------------------------------------------------------------------------------------------
// Metrics

function num(value, scale = 1) {
  const number = Number(value) * scale;
  return Number.isFinite(number) && number >= 0 ? Math.round(number * 100) / 100 : undefined;
}

async function peerSample(peer) {
  const report = await peer.pc.getStats();
  let outbound = null;
  let remote = null;
  let source = null;
  let pair = null;
  let pairId = null;
  let bytesSent = 0;
  let framesEncoded = 0;
  report.forEach((stat) => {
    const kind = stat.kind || stat.mediaType;
    if (stat.type === "outbound-rtp" && kind === "video") {
      // Simulcast: one outbound-rtp per layer; the bitrate is their sum, the figures the largest layer's.
      bytesSent += stat.bytesSent || 0;
      framesEncoded = Math.max(framesEncoded, stat.framesEncoded || 0);
      if (!outbound || (stat.frameWidth || 0) > (outbound.frameWidth || 0)) outbound = stat;
    }
    if (stat.type === "remote-inbound-rtp" && kind === "video") remote = stat;
    if (stat.type === "media-source" && kind === "video") source = stat;
    if (stat.type === "transport" && stat.selectedCandidatePairId) pairId = stat.selectedCandidatePairId;
  });
  if (pairId) pair = report.get(pairId) || null;
  const prev = peer.prevStats;
  const sample = { state: peer.pc.connectionState };
  if (outbound) {
    const seconds = prev ? (outbound.timestamp - prev.timestamp) / 1000 : 0;
    let fps = outbound.framesPerSecond;
    if (fps === undefined && seconds > 0) fps = (framesEncoded - prev.framesEncoded) / seconds;
    sample.fps = num(fps ?? 0);
    sample.width = num(outbound.frameWidth);
    sample.height = num(outbound.frameHeight);
    if (seconds > 0) sample.bitrate_kbps = num(((bytesSent - prev.bytesSent) * 8) / seconds / 1000);
    sample.frames = num(framesEncoded);
    if (source && source.frames !== undefined && outbound.framesEncoded !== undefined) {
      sample.frames_dropped = num(Math.max(0, source.frames - outbound.framesEncoded));
    }
    if (typeof outbound.qualityLimitationReason === "string") sample.quality_limitation = outbound.qualityLimitationReason;
    const codec = outbound.codecId ? report.get(outbound.codecId) : null;
    if (codec && /^[A-Za-z0-9/._-]{1,32}$/.test(codec.mimeType || "")) sample.codec = codec.mimeType;
    peer.prevStats = { timestamp: outbound.timestamp, bytesSent, framesEncoded };
  }
  if (remote) {
    sample.packets_lost = num(Math.max(0, remote.packetsLost || 0));
    if (remote.fractionLost !== undefined) sample.packet_loss_pct = num(Math.min(1, Math.max(0, remote.fractionLost)), 100);
    sample.jitter_ms = num(remote.jitter, 1000);
    if (remote.roundTripTime !== undefined) sample.rtt_ms = num(remote.roundTripTime, 1000);
  }
  if (sample.rtt_ms === undefined && pair && pair.currentRoundTripTime !== undefined) sample.rtt_ms = num(pair.currentRoundTripTime, 1000);
  for (const key of Object.keys(sample)) if (sample[key] === undefined) delete sample[key];
  return { sample, captureFps: source ? num(source.framesPerSecond) : undefined };
}

async function reportMetrics() {
  if (!ws || ws.readyState !== WebSocket.OPEN || !stream) return;
  const list = [];
  let captureFps;
  for (const peer of [...peers.values()]) {
    try {
      const { sample, captureFps: fps } = await peerSample(peer);
      peer.sample = sample;
      if (fps !== undefined) captureFps = Math.max(captureFps ?? 0, fps);
      list.push({ viewer_id: peer.id, ...sample });
    } catch {
      /* a connection closed while reading */
    }
  }
  const settings = stream.getVideoTracks()[0]?.getSettings() || {};
  const summary = { state: list.some((p) => p.state === "connected") ? "connected" : "idle" };
  const fpsValues = list.map((p) => p.fps).filter((v) => v !== undefined);
  const fps = captureFps ?? (fpsValues.length ? Math.max(...fpsValues) : undefined);
  if (fps !== undefined) summary.fps = fps;
  const width = num(settings.width);
  const height = num(settings.height);
  if (width !== undefined) summary.width = width;
  if (height !== undefined) summary.height = height;
  const sum = (key) => list.reduce((total, p) => total + (p[key] || 0), 0);
  const max = (key) => {
    const values = list.map((p) => p[key]).filter((v) => v !== undefined);
    return values.length ? Math.max(...values) : undefined;
  };
  if (list.length) {
    summary.bitrate_kbps = num(sum("bitrate_kbps"));
    summary.frames_dropped = num(sum("frames_dropped"));
    for (const key of ["packet_loss_pct", "jitter_ms", "rtt_ms"]) {
      const value = max(key);
      if (value !== undefined) summary[key] = value;
    }
  }
  const message = { type: "publisher.metrics", source: state.source, ...summary, peers: list };
  state.lastMetrics = message;
  send(message);
  renderPeers();
}

function renderPeers() {
  const rows = $("peer-rows");
  const fragment = document.createDocumentFragment();
  for (const id of state.mode === "sfu" ? ["sfu", ...state.viewers] : state.viewers) {
    const peer = peers.get(id);
    const sample = (peer && peer.sample) || {};
    const row = document.createElement("tr");
    const cells = [id, peer ? peer.pc.connectionState : "—", sample.fps, sample.width ? `${sample.width}×${sample.height}` : "",
                   sample.bitrate_kbps, sample.packet_loss_pct, sample.rtt_ms, sample.jitter_ms];
    for (const value of cells) {
      const cell = document.createElement("td");
      cell.textContent = value === undefined || value === null ? "" : String(value);
      row.appendChild(cell);
    }
    fragment.appendChild(row);
  }
  rows.replaceChildren(fragment);
  const live = state.socket === "open" && [...peers.values()].some((p) => p.pc.connectionState === "connected");
  state.live = live;
  $("live-badge").hidden = !live;
}

// ---------------------------------------------------------------------------------------------
// Signaling socket

async function loadIceConfig() {
  try {
    const query = new URLSearchParams({ room, token });
    const response = await fetch(`/api/webrtc/config?${query}`, { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const body = await response.json();
    iceConfig = {
      iceServers: (body.ice_servers || []).map((s) => ({ urls: s.urls, ...(s.username ? { username: s.username, credential: s.credential } : {}) })),
      iceTransportPolicy: body.ice_transport_policy === "relay" ? "relay" : "all",
    };
  } catch (err) {
    console.warn("[publish]", "ICE config unavailable; host candidates only", err);
  }
}

function onMessage(message) {
  switch (message.type) {
    case "room.joined":
      backoff.reset();
      state.publisherId = message.peer_id;
      lastSeq = 0;
      state.mode = message.mode === "sfu" ? "sfu" : "p2p";
      state.simulcast = message.simulcast === true;
      viewerDefaultKbps = Number(message.viewer_max_bitrate_kbps) || 0;
      if (message.presets && typeof message.presets === "object") {
        state.presets = message.presets;
        if (!state.presets[state.preset]) state.preset = state.presets[message.default_preset] ? message.default_preset : Object.keys(state.presets)[0] || "";
        renderPresets();
        applyPreset();
      }
      setStatus(`Live in room ${room}`, "ok");
      clearInterval(pingTimer);
      pingTimer = setInterval(() => send({ type: "ping", ts: Date.now() }), Math.max(5, Number(message.ping_interval_seconds) || 15) * 1000);
      break;
    case "room.state":
      if (typeof message.seq === "number") {
        if (message.seq <= lastSeq) return;
        lastSeq = message.seq;
      }
      reconcile(Array.isArray(message.viewers) ? message.viewers.filter((v) => typeof v === "string") : []);
      break;
    case "answer":
      onAnswer(message);
      break;
    case "ice-candidate":
      onCandidate(message);
      break;
    case "viewer.request-keyframe":
      restartPeer(message.from, `request: ${message.reason || "keyframe"}`, typeof message.pc_id === "string" ? message.pc_id : null);
      break;
    case "viewer.settings":
      // p2p: a viewer caps its own connection.
      if (typeof message.from === "string" && Number.isFinite(Number(message.max_bitrate_kbps))) {
        viewerCaps.set(message.from, Number(message.max_bitrate_kbps));
        const peer = peers.get(message.from);
        if (peer) applyBitrate(peer);
      }
      break;
    case "error":
      console.warn("[publish]", "server error", message.code, message.message);
      if (message.code === "sfu_unavailable" && message.event === "offer" && state.mode === "sfu") {
        setStatus("The media server did not take the stream; retrying…", "bad");
        setTimeout(() => restartPeer("sfu", "sfu-error"), RESTART_GAP_MS + 500);
      }
      break;
    default:
      break;
  }
}

async function connect() {
  clearTimeout(retryTimer);
  if (stopped) return;
  const mine = ++generation;
  state.socket = "connecting";
  await loadIceConfig();
  if (mine !== generation || stopped) return;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  ws = new WebSocket(`${scheme}//${location.host}/ws/webrtc/${encodeURIComponent(room)}/publisher?token=${encodeURIComponent(token)}`);
  ws.onopen = () => {
    if (mine === generation) state.socket = "open";
  };
  ws.onmessage = (event) => {
    if (mine !== generation) return;
    try {
      onMessage(JSON.parse(event.data));
    } catch (err) {
      console.warn("[publish]", err);
    }
  };
  ws.onclose = (event) => {
    if (mine !== generation) return;
    ws = null;
    state.socket = "closed";
    clearInterval(pingTimer);
    for (const id of [...peers.keys()]) closePeer(id);
    state.viewers = [];
    renderPeers();
    const reason = event.reason ? `: ${event.reason}` : "";
    if (event.code === 4401 || event.code === 4403 || event.code === 4400) {
      state.stopReason = `refused ${event.code}`;
      setStatus(`The link was refused (${event.code}${reason}). Ask for a new camera link.`, "bad");
      return;
    }
    if (event.code === 4410) {
      state.stopReason = "replaced";
      setStatus("Another camera page took over this room. Press Start to take it back.", "bad");
      $("toggle-live").textContent = "Start";
      stopped = true;
      return;
    }
    const delay = Math.max(event.code === 4409 || event.code === 4429 ? 3000 : 0, backoff.next());
    state.reconnects += 1;
    setStatus(`Disconnected (${event.code}${reason}); reconnecting in ${Math.round(delay / 1000)} s`, "bad");
    retryTimer = setTimeout(connect, delay);
  };
}

function stop() {
  stopped = true;
  generation += 1;
  clearTimeout(retryTimer);
  clearInterval(pingTimer);
  if (ws) ws.close(1000, "stopped");
  ws = null;
  state.socket = "stopped";
  for (const id of [...peers.keys()]) closePeer(id);
  state.viewers = [];
  renderPeers();
  setStatus("Stopped");
  $("toggle-live").textContent = "Start";
}

function resume() {
  stopped = false;
  backoff.reset();
  state.stopReason = "";
  $("toggle-live").textContent = "Stop";
  setStatus("Connecting…");
  connect();
}

// ---------------------------------------------------------------------------------------------
// Start

async function main() {
  $("room-name").textContent = room;
  const parsed = readRoomToken(token);
  const problem = linkProblem(parsed);
  if (problem) {
    setStatus(problem, "bad");
    state.stopReason = "bad link";
    // Nothing here can work with this link: no camera buttons, no viewers table, no "valid until ?".
    $("controls").hidden = true;
    $("viewers-card").hidden = true;
    $("local").closest("section").hidden = true;
    return;
  }
  $("token-expiry").textContent = new Date(parsed.expiresAt * 1000).toLocaleString();
  $("use-camera").addEventListener("click", () => useSource("camera"));
  $("use-screen").addEventListener("click", () => useSource("screen"));
  $("toggle-mic").addEventListener("click", (event) => {
    const on = event.currentTarget.getAttribute("aria-pressed") === "false";
    event.currentTarget.setAttribute("aria-pressed", String(on));
    event.currentTarget.textContent = on ? "Mic on" : "Mic off";
    if (micTrack) micTrack.enabled = on;
  });
  $("toggle-live").addEventListener("click", () => (stopped ? resume() : stop()));
  $("preset").addEventListener("change", (event) => choosePreset(event.currentTarget.value));
  setInterval(reportMetrics, METRICS_EVERY_MS);

  setStatus("Asking for the camera…");
  const wanted = params.get("source") === "screen" ? "screen" : "camera";
  // Screen capture needs a click; start with the camera and let the button switch.
  if (!(await useSource(wanted === "screen" ? "camera" : wanted))) return;
  if (wanted === "screen") setStatus("Press Screen to share the screen");
  else setStatus("Connecting…");
  connect();
}

main();
