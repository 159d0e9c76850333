// Camera rooms: publisher/viewer state and the metrics matrix (fps, resolution, bitrate, loss,
// jitter, RTT, dropped frames) per peer, with live sparklines. Streamers (the dashboard) also get a
// button that copies a publisher link with a fresh token. Used by panel.js (Camera tab) and admin.js (card).

import { describeError } from "/js/lib/api.js";
import { drawSparkline } from "/js/lib/chart.js";
import { notify } from "/js/lib/notices.js";
import { copyText, finite, formatBitrate, h } from "/js/lib/util.js";

/** Which of the plugin's routes this engine serves, from a page's plugin api. */
export function cameraCaps(api) {
  return {
    camera: api.hasRoute("GET", "/api/webrtc/rooms"),
    cameraStats: api.hasRoute("GET", "/api/webrtc/rooms/{room}/stats"),
    cameraToken: api.hasRoute("POST", "/api/webrtc/token"),
  };
}

/** What CameraPanel needs, from a page's plugin api. */
export function cameraHost(api, { streamer, isVisible }) {
  return {
    api: {
      get: (path) => api.request("GET", path),
      post: (path, options = {}) => api.request("POST", path, options.json),
    },
    caps: cameraCaps(api),
    streamer,
    isVisible,
  };
}

const HISTORY = 60;

function pick(obj, keys) {
  if (!obj || typeof obj !== "object") return undefined;
  for (const key of keys) {
    const value = obj[key];
    if (value !== undefined && value !== null && value !== "") return value;
  }
  return undefined;
}

/** One peer's metrics in one shape, whatever names the plugin used. */
export function normalizeMetrics(raw) {
  const m = raw && typeof raw === "object" ? (raw.metrics && typeof raw.metrics === "object" ? { ...raw, ...raw.metrics } : raw) : {};
  const num = (keys) => {
    const v = pick(m, keys);
    const n = Number(v);
    return v === undefined || !Number.isFinite(n) ? null : n;
  };
  let bitrate = num(["bitrate", "bitrate_bps", "bps", "bits_per_second"]);
  const kbps = num(["bitrate_kbps", "kbps"]);
  if (bitrate === null && kbps !== null) bitrate = kbps * 1000;
  let loss = num(["packet_loss", "packet_loss_pct", "loss_pct", "loss", "packets_lost_pct", "packet_loss_percent"]);
  const fraction = num(["fraction_lost", "loss_fraction"]);
  if (loss === null && fraction !== null) loss = fraction * 100;
  let resolution = pick(m, ["resolution"]);
  const width = num(["width", "frame_width", "frameWidth"]);
  const height = num(["height", "frame_height", "frameHeight"]);
  if (!resolution && width && height) resolution = `${width}×${height}`;
  if (resolution && typeof resolution === "object") resolution = `${resolution.width}×${resolution.height}`;
  return {
    fps: num(["fps", "frames_per_second", "framesPerSecond", "frame_rate"]),
    bitrate,
    loss,
    jitter: num(["jitter_ms", "jitter"]),
    rtt: num(["rtt_ms", "rtt", "round_trip_time_ms", "round_trip_time"]),
    dropped: num(["frames_dropped", "dropped_frames", "framesDropped"]),
    resolution: resolution ? String(resolution) : null,
    at: pick(m, ["ts", "at", "timestamp", "updated_at", "server_ts"]) ?? null,
  };
}

/** Peers of a stats answer: [{id, role, metrics, history}]. */
export function normalizeStats(stats) {
  const peers = [];
  const add = (raw, role, fallbackId) => {
    if (!raw || typeof raw !== "object") return;
    const id = String(pick(raw, ["peer_id", "id", "peer", "connection_id"]) ?? fallbackId);
    const history = Array.isArray(raw.history) ? raw.history.map(normalizeMetrics) : [];
    peers.push({ id, role: raw.role || role, metrics: normalizeMetrics(pick(raw, ["latest", "metrics", "last"]) || raw), history });
  };
  const publisher = stats && stats.publisher;
  if (publisher && typeof publisher === "object") add(publisher, "publisher", "publisher");
  const viewers = stats && stats.viewers;
  if (Array.isArray(viewers)) viewers.forEach((v, i) => add(v, "viewer", `viewer-${i + 1}`));
  for (const key of ["peers", "latest", "metrics"]) {
    const value = stats && stats[key];
    if (Array.isArray(value)) value.forEach((p, i) => add(p, p && p.role ? p.role : "peer", `${key}-${i + 1}`));
    else if (value && typeof value === "object" && !("fps" in value)) {
      for (const [id, p] of Object.entries(value)) {
        if (p && typeof p === "object" && !peers.some((x) => x.id === id)) add({ peer_id: id, ...p }, p.role || (id.includes("pub") ? "publisher" : "peer"), id);
      }
    }
  }
  // A room-level history list: [{peer_id?, ...metrics}]
  if (stats && Array.isArray(stats.history)) {
    for (const sample of stats.history) {
      const id = sample && (sample.peer_id || sample.peer);
      const target = (id && peers.find((p) => p.id === String(id))) || peers[0];
      if (target) target.history.push(normalizeMetrics(sample));
    }
  }
  const viewerCount = Array.isArray(viewers) ? viewers.length : Number.isFinite(Number(viewers)) ? Number(viewers) : peers.filter((p) => p.role === "viewer").length;
  const hasPublisher = publisher === true || (publisher && typeof publisher === "object" && publisher.connected !== false) || typeof publisher === "string";
  return { peers, viewerCount, hasPublisher: !!hasPublisher, messages: (stats && (stats.messages_by_type || stats.messages || stats.message_counts)) || null };
}

function roomName(room) {
  if (typeof room === "string") return room;
  return String(pick(room, ["room", "name", "id"]) ?? "");
}

export class CameraPanel {
  /**
   * @param {object} app  {api, caps, streamer: boolean, isVisible(): boolean} (cameraHost())
   * @param {HTMLElement} root
   */
  constructor(app, root) {
    this.app = app;
    this.root = root;
    this.rooms = [];
    this.stats = new Map(); // room -> normalized stats
    this.samples = new Map(); // room/peer -> [{fps, bitrate, loss, rtt}]
    this.timer = 0;
    this.failures = 0;
  }

  init() {
    this.root.textContent = "";
    this.available = true;
    this.list = h("div.rooms#camera-rooms");
    this.note = h("p.small.muted#camera-note");
    const parts = [];
    if (this.app.streamer && this.app.caps.cameraToken) {
      const input = h("input#camera-new-room", { type: "text", placeholder: "room name, e.g. cam1", autocomplete: "off", spellcheck: false });
      parts.push(h("form.row.gap.new-room", {
        onsubmit: (e) => {
          e.preventDefault();
          const room = input.value.trim();
          if (!/^[A-Za-z0-9._-]{1,64}$/.test(room)) {
            notify("A room name is letters, digits, '-', '_' or '.'", { kind: "warn" });
            return;
          }
          this.copyPublisherLink(room);
        },
      }, h("label.sr-only", { for: "camera-new-room" }, "Room for a publisher link"), input,
      h("button.btn.small.primary", { type: "submit" }, "Copy publisher link")));
    }
    this.root.append(...parts, this.note, this.list);
    this.tick();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  async tick() {
    clearTimeout(this.timer);
    if (this.stopped || !this.available) return;
    const visible = this.app.isVisible();
    if (visible) await this.refresh();
    if (this.stopped) return;
    const delay = visible ? (this.failures ? Math.min(15000, 2000 * 2 ** this.failures) : 2000) : 4000;
    this.timer = setTimeout(() => this.tick(), delay);
  }

  async refresh() {
    try {
      const answer = await this.app.api.get("/api/webrtc/rooms");
      this.rooms = Array.isArray(answer.rooms) ? answer.rooms : [];
      this.failures = 0;
      this.note.textContent = this.rooms.length ? "" : "No camera rooms yet. A room appears when a publisher or viewer connects.";
      if (this.app.caps.cameraStats) {
        await Promise.all(this.rooms.map((room) => this.loadStats(roomName(room))));
      }
      this.render();
    } catch (err) {
      this.failures += 1;
      this.note.textContent = `Camera stats unavailable: ${describeError(err)}`;
    }
  }

  async loadStats(room) {
    if (!room) return;
    try {
      const raw = await this.app.api.get(`/api/webrtc/rooms/${encodeURIComponent(room)}/stats`);
      const stats = normalizeStats(raw);
      this.stats.set(room, stats);
      for (const peer of stats.peers) {
        const key = `${room}/${peer.id}`;
        let list = this.samples.get(key);
        if (!list) {
          // Seed from the plugin's own short history.
          list = peer.history.slice(-HISTORY).map((m) => ({ fps: m.fps, bitrate: m.bitrate, loss: m.loss, rtt: m.rtt }));
          this.samples.set(key, list);
        }
        list.push({ fps: peer.metrics.fps, bitrate: peer.metrics.bitrate, loss: peer.metrics.loss, rtt: peer.metrics.rtt });
        if (list.length > HISTORY) list.splice(0, list.length - HISTORY);
      }
    } catch {
      this.stats.delete(room);
    }
  }

  render() {
    const open = new Set([...this.list.querySelectorAll("details[open]")].map((d) => d.dataset.room));
    const fresh = !this.list.children.length;
    this.list.textContent = "";
    for (const room of this.rooms) {
      const name = roomName(room);
      if (!name) continue;
      const stats = this.stats.get(name);
      const publisherLive = stats ? stats.hasPublisher : !!pick(room, ["publisher", "publisher_connected", "has_publisher"]);
      const viewers = stats ? stats.viewerCount : finite(pick(room, ["viewers", "viewer_count"]), 0);
      const card = h("details.room-card", { dataset: { room: name }, open: fresh || open.has(name) },
        h("summary",
          h("strong.room-name", name),
          h("span.pill", { class: publisherLive ? "ok" : "off" }, publisherLive ? "publisher live" : "no publisher"),
          h("span.small.muted", `${Array.isArray(viewers) ? viewers.length : viewers} viewer${viewers === 1 ? "" : "s"}`),
          this.app.streamer && this.app.caps.cameraToken
            ? h("button.btn.small.copy-link", { type: "button", onclick: (e) => { e.preventDefault(); this.copyPublisherLink(name); } }, "Copy publisher link")
            : null),
        stats ? this.matrix(name, stats) : h("p.small.muted", "No metrics yet."));
      this.list.append(card);
    }
    for (const canvas of this.list.querySelectorAll("canvas[data-key]")) {
      const list = this.samples.get(canvas.dataset.key) || [];
      const metric = canvas.dataset.metric;
      drawSparkline(canvas, list.map((s) => s[metric]), {
        color: { fps: "#4cc38a", bitrate: "#6aa8ff", loss: "#ff6b6b", rtt: "#f0a23b" }[metric],
        max: metric === "loss" ? Math.max(5, ...list.map((s) => s.loss || 0)) : null,
      });
    }
  }

  matrix(room, stats) {
    if (!stats.peers.length) return h("p.small.muted", "No peers connected.");
    const fmt = (v, unit, digits = 0) => (v === null || v === undefined ? "–" : `${Number(v).toFixed(digits)}${unit}`);
    const warn = (metric, v) => {
      if (v === null || v === undefined) return "";
      if (metric === "loss") return v >= 5 ? "bad" : v >= 1 ? "warn" : "";
      if (metric === "rtt") return v >= 300 ? "bad" : v >= 150 ? "warn" : "";
      if (metric === "fps") return v < 15 ? "bad" : v < 25 ? "warn" : "";
      return "";
    };
    const table = h("table.metrics",
      h("thead", h("tr", ["Peer", "FPS", "Resolution", "Bitrate", "Loss", "Jitter", "RTT", "Dropped"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", stats.peers.map((p) => h("tr",
        h("th", { scope: "row" }, h("span.role", p.role), " ", h("span.small.muted", p.id)),
        h("td", { class: warn("fps", p.metrics.fps) }, fmt(p.metrics.fps, "")),
        h("td", p.metrics.resolution || "–"),
        h("td", formatBitrate(p.metrics.bitrate)),
        h("td", { class: warn("loss", p.metrics.loss) }, fmt(p.metrics.loss, " %", 1)),
        h("td", fmt(p.metrics.jitter, " ms")),
        h("td", { class: warn("rtt", p.metrics.rtt) }, fmt(p.metrics.rtt, " ms")),
        h("td", fmt(p.metrics.dropped, ""))))));
    const main = stats.peers.find((p) => p.role === "publisher") || stats.peers[0];
    const key = `${room}/${main.id}`;
    const charts = h("div.sparks", [["fps", "FPS"], ["bitrate", "Bitrate"], ["loss", "Loss %"], ["rtt", "RTT ms"]].map(([metric, label]) =>
      h("figure.spark", h("figcaption.small.muted", `${label} · ${main.role}`),
        h("canvas", { width: 140, height: 34, dataset: { key, metric }, role: "img", "aria-label": `${label} of ${main.id}, last ${HISTORY} samples` }))));
    const messages = stats.messages && typeof stats.messages === "object"
      ? h("p.small.muted", "Messages: ", Object.entries(stats.messages).map(([k, v]) => `${k} ${v}`).join(" · "))
      : null;
    return h("div.room-body", h("div.table-scroll", table), charts, messages);
  }

  async copyPublisherLink(room) {
    try {
      const answer = await this.app.api.post("/api/webrtc/token", { json: { room, role: "publisher" } });
      let url = answer.public_url || answer.url || `/publish?room=${encodeURIComponent(room)}&token=${encodeURIComponent(answer.token)}`;
      if (url.startsWith("/")) url = location.origin + url;
      const ok = await copyText(url);
      notify(ok ? `Publisher link for “${room}” copied (valid until ${answer.expires_at ? new Date(answer.expires_at).toLocaleTimeString() : "it expires"})` : `Copy this publisher link: ${url}`,
        { kind: ok ? "ok" : "info", timeout: ok ? 4000 : 0 });
    } catch (err) {
      notify(`No publisher link: ${describeError(err)}`, { kind: "error" });
    }
  }
}
