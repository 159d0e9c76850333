// The streamer dashboard (/admin): moderator keys and sessions, the OBS overlay URL, plugins,
// realtime metrics, and the cards plugins add (addCard; the camera card is the webrtc-signaling plugin's).
// The streamer token is entered once per tab (sessionStorage) and sent as x-streamer-token.

import { ApiError, createApi, describeError, loadCapabilities } from "./lib/api.js";
import { confirmDialog, noticeKind, notify } from "./lib/notices.js";
import { $, copyText, formatAgo, formatDuration, formatRemaining, h, storage } from "./lib/util.js";
import { loadPlugins, onPluginStatus, pluginStatus, registrations } from "./lib/plugins.js";

const TOKEN_KEY = "onionrp.admin.token";
const tabStore = storage("session");
let token = tabStore.get(TOKEN_KEY) || "";
let locked = false;

const api = createApi({
  headers: () => ({ "x-streamer-token": token }),
  onUnauthorized: () => lock("The streamer token was refused (changed or wrong). Enter it again."),
});

function lock(message) {
  if (locked) return;
  locked = true;
  tabStore.remove(TOKEN_KEY);
  token = "";
  $("#dashboard").hidden = true;
  showGate(message);
}

function showGate(message = "") {
  const gate = $("#gate");
  gate.hidden = false;
  const out = $("#token-message");
  out.textContent = message;
  out.dataset.kind = message ? "warn" : "";
  $("#streamer-token").focus();
}

function setupGate() {
  const form = $("#token-form");
  const input = $("#streamer-token");
  const out = $("#token-message");
  const button = $("#token-submit");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = input.value.trim();
    if (!value) {
      out.textContent = "Paste your streamer token.";
      out.dataset.kind = "warn";
      return;
    }
    button.disabled = true;
    out.textContent = "Checking…";
    out.dataset.kind = "info";
    const probe = createApi({ headers: () => ({ "x-streamer-token": value }) });
    try {
      await probe.get("/api/moderator-keys");
      token = value;
      tabStore.set(TOKEN_KEY, value);
      input.value = "";
      out.textContent = "";
      $("#gate").hidden = true;
      locked = false;
      openDashboard();
    } catch (err) {
      out.textContent = err instanceof ApiError && (err.status === 401 || err.status === 403)
        ? "That is not the streamer token of this engine."
        : describeError(err);
      out.dataset.kind = "error";
      input.select();
    } finally {
      button.disabled = false;
    }
  });
}

// ---------------------------------------------------------------------------------------------

let started = false;
const timers = [];

async function openDashboard() {
  $("#dashboard").hidden = false;
  document.title = "Streamer dashboard · OnionRP Dock";
  if (started) {
    refreshKeys();
    refreshSessions();
    return;
  }
  started = true;
  const overlayUrl = `${location.origin}/overlay`;
  $("#overlay-url").value = overlayUrl;
  $("#mod-url").textContent = `${location.origin}/mod`;
  $("#copy-overlay").addEventListener("click", async () => {
    const ok = await copyText(overlayUrl);
    notify(ok ? "Overlay URL copied — paste it into an OBS browser source" : "Select the URL and copy it", { kind: ok ? "ok" : "warn" });
    if (!ok) $("#overlay-url").select();
  });
  $("#forget-token").addEventListener("click", () => {
    locked = false;
    lock("Locked. Enter the token to open the dashboard again.");
  });
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    generateKey();
  });

  const caps = await loadCapabilities(api);
  renderPlugins(caps.listing);
  onPluginStatus(() => renderPlugins(caps.listing));
  loadPlugins("admin", caps.listing, (info) => adminApi(info, caps)).then(() => {
    document.body.dataset.plugins = "ready";
  });

  refreshKeys();
  refreshSessions();
  refreshRealtime();
  timers.push(setInterval(() => !locked && refreshKeys(), 5000));
  timers.push(setInterval(() => !locked && refreshSessions(), 5000));
  timers.push(setInterval(() => !locked && !document.hidden && refreshRealtime(), 2000));
  timers.push(setInterval(tickCountdowns, 1000));
  document.body.dataset.ready = "true";
}

// ---- plugins' cards ---------------------------------------------------------------------------

const CARD_ID = /^[a-z][a-z0-9-]{0,39}$/;

/**
 * The api one plugin's dashboard module receives (docs/plugin-bundles.md).
 * @param {{name: string, version: string, base: string}} info
 * @param {{has: (method: string, path: string) => boolean}} caps
 */
function adminApi(info, caps) {
  const owned = registrations();
  return Object.freeze({
    plugin: info,
    role: "streamer",
    /** Adds a card to the dashboard: {id, title, span? (1-12 columns, default 6), render(container)}. */
    addCard({ id, title, span = 6, render } = {}) {
      if (!CARD_ID.test(String(id))) throw new TypeError(`addCard: id '${id}' must be lower-case letters, digits and '-'`);
      if (typeof render !== "function") throw new TypeError("addCard: render(container) is required");
      if (document.getElementById(`${id}-card`)) throw new Error(`addCard: a card '${id}' exists already`);
      const width = [4, 5, 6, 7, 8, 12].includes(Number(span)) ? Number(span) : 6;
      const container = h("div", { id });
      const card = h(`section.card.span-${width}`, { id: `${id}-card`, "aria-labelledby": `${id}-title`, dataset: { plugin: info.name } },
        h("h2", { id: `${id}-title` }, String(title || id)), container);
      $("#dash").append(card);
      owned.track(() => card.remove());
      render(container);
      return { card, container, remove: () => card.remove() };
    },
    /** Calls one of the engine's routes with the streamer token; body is sent as JSON (URLSearchParams: a form). */
    request(method, path, body, options = {}) {
      const init = { ...options };
      if (body instanceof URLSearchParams) init.form = body;
      else if (body !== undefined && body !== null) init.json = body;
      return api.request(String(method).toUpperCase(), path, init);
    },
    upload: (path, file, onProgress) => api.upload(path, file, onProgress),
    hasRoute: (method, path) => caps.has(String(method).toUpperCase(), path),
    describeError,
    notice: (message, kind = "info", options = {}) => notify(String(message), { kind: noticeKind(kind), ...options }),
    /** False while the dashboard is locked (token forgotten or refused): pause polling then. */
    active: () => !locked,
    dispose: () => owned.dispose(),
  });
}

// ---- keys ------------------------------------------------------------------------------------

let lastKey = null;

async function generateKey() {
  const button = $("#generate-key");
  const label = $("#key-label").value.trim();
  const streamerId = $("#key-streamer").value.trim();
  button.disabled = true;
  button.textContent = "Generating…";
  try {
    const form = {};
    if (label) form.label = label;
    if (streamerId) form.streamer_id = streamerId;
    const answer = await api.post("/api/moderator-keys/generate", { form });
    lastKey = answer;
    renderKey(answer);
    refreshKeys();
    $("#key-label").value = "";
  } catch (err) {
    notify(`No key: ${describeError(err)}`, { kind: "error" });
  } finally {
    button.disabled = false;
    button.textContent = "Generate key";
  }
}

function renderKey(answer) {
  const link = `${location.origin}/mod#key=${encodeURIComponent(answer.key)}`;
  const copy = (text, what) => async () => {
    const ok = await copyText(text);
    notify(ok ? `${what} copied` : `Could not copy; select it by hand`, { kind: ok ? "ok" : "warn", timeout: 2000 });
  };
  const box = h("div.key-box",
    h("div.row.between",
      h("span.small", answer.label ? `Key for ${answer.label}` : "New key"),
      h("span.small.muted", "expires in ", h("strong#key-ttl", { dataset: { expires: answer.expires_at } }, formatRemaining(answer.expires_at)),
        ` (TTL ${formatDuration(answer.ttl_seconds)})`)),
    h("code.key-value#key-value", answer.key),
    h("div.row.gap",
      h("button.btn.small.primary#copy-key", { type: "button", onclick: copy(answer.key, "Key") }, "Copy key"),
      h("button.btn.small#copy-link", { type: "button", onclick: copy(link, "Login link"), title: link }, "Copy login link")),
    h("p.small.muted", "Shown once: the engine keeps only its fingerprint."));
  const out = $("#key-result");
  out.textContent = "";
  out.append(box);
}

function tickCountdowns() {
  for (const node of document.querySelectorAll("[data-expires]")) {
    const text = formatRemaining(node.dataset.expires);
    if (node.textContent !== text) node.textContent = text;
    node.classList.toggle("bad", text === "expired");
  }
}

async function refreshKeys() {
  try {
    const answer = await api.get("/api/moderator-keys");
    const keys = Array.isArray(answer.keys) ? answer.keys : [];
    $("#keys-count").textContent = `${keys.length}`;
    const table = $("#keys-table");
    table.textContent = "";
    if (!keys.length) {
      table.append(h("tbody", h("tr", h("td.muted", "No unused keys."))));
      return;
    }
    table.append(
      h("thead", h("tr", ["Label", "Streamer", "Created", "Expires in", ""].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", keys.map((k) => h("tr", { dataset: { id: k.id } },
        h("td", k.label || h("span.muted", "–")),
        h("td", k.streamer_id || h("span.muted", "–")),
        h("td", formatAgo(k.created_at)),
        h("td", h("span", { dataset: { expires: k.expires_at } }, formatRemaining(k.expires_at))),
        h("td", h("button.btn.small.danger", { type: "button", "aria-label": `Revoke key ${k.label || k.id.slice(0, 8)}`, onclick: () => revokeKey(k) }, "Revoke"))))),
    );
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) $("#keys-count").textContent = describeError(err);
  }
}

async function revokeKey(k) {
  try {
    await api.del(`/api/moderator-keys/${encodeURIComponent(k.id)}`);
    notify(`Key ${k.label ? `for ${k.label} ` : ""}revoked`, { kind: "ok" });
    if (lastKey && lastKey.id === k.id) $("#key-result").textContent = "";
  } catch (err) {
    notify(`Could not revoke: ${describeError(err)}`, { kind: "error" });
  }
  refreshKeys();
}

async function refreshSessions() {
  try {
    const answer = await api.get("/api/moderator-sessions");
    const sessions = Array.isArray(answer.sessions) ? answer.sessions : [];
    $("#sessions-count").textContent = `${sessions.length}`;
    const table = $("#sessions-table");
    table.textContent = "";
    if (!sessions.length) {
      table.append(h("tbody", h("tr", h("td.muted", "No moderator is logged in."))));
      return;
    }
    table.append(
      h("thead", h("tr", ["Moderator", "Since", "Idle expiry", ""].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", sessions.map((s) => h("tr", { dataset: { id: s.id } },
        h("td", s.label || h("span.muted", s.id.slice(0, 8))),
        h("td", formatAgo(s.created_at)),
        h("td", h("span", { dataset: { expires: s.expires_at } }, formatRemaining(s.expires_at))),
        h("td", h("button.btn.small.danger", { type: "button", "aria-label": `Log out ${s.label || s.id.slice(0, 8)}`, onclick: () => revokeSession(s) }, "Log out"))))),
    );
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) $("#sessions-count").textContent = describeError(err);
  }
}

async function revokeSession(s) {
  const ok = await confirmDialog({
    title: `Log out ${s.label || "this moderator"}?`,
    message: "Their panel closes at once. They need a new key to come back.",
    confirmLabel: "Log out",
    danger: true,
  });
  if (!ok) return;
  try {
    await api.del(`/api/moderator-sessions/${encodeURIComponent(s.id)}`);
    notify(`${s.label || "Moderator"} logged out`, { kind: "ok" });
  } catch (err) {
    notify(`Could not log out: ${describeError(err)}`, { kind: "error" });
  }
  refreshSessions();
}

// ---- plugins and realtime ---------------------------------------------------------------------

function renderPlugins(listing) {
  const plugins = Array.isArray(listing.plugins) ? listing.plugins : [];
  $("#engine-version").textContent = listing.engine_version ? `engine ${listing.engine_version}` : "";
  const table = $("#plugins-table");
  table.textContent = "";
  if (!plugins.length) {
    table.append(h("tbody", h("tr", h("td.muted", "No plugins loaded."))));
    return;
  }
  table.append(
    h("thead", h("tr", ["Plugin", "Version", "API", "Routes", "Page"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", plugins.map((p) => {
      // What this dashboard made of the plugin's admin module.
      const failure = pluginStatus.failed.find((f) => f.name === p.name);
      const page = failure ? h("span.bad", { title: failure.error }, "failed")
        : pluginStatus.loaded.includes(p.name) ? h("span", "loaded") : h("span.muted", "–");
      return h("tr", { dataset: { plugin: p.name } },
        h("td", h("strong", p.name), p.summary ? h("div.small.muted", { style: { whiteSpace: "normal" } }, p.summary) : null),
        h("td", p.version || "–"),
        h("td", p.api_version || "–"),
        h("td", String(Array.isArray(p.routes) ? p.routes.length : 0)),
        h("td.plugin-page", page));
    })),
  );
}

async function refreshRealtime() {
  const root = $("#realtime");
  let m;
  try {
    m = await api.get("/api/metrics/realtime");
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 401)) $("#rt-updated").textContent = `unavailable: ${describeError(err)}`;
    return;
  }
  $("#rt-updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  const lat = m.ack_latency_ms || {};
  // Overlays that connect late are timed from the scene sent to them on connect, reported apart.
  const late = m.late_join_latency_ms || {};
  const tile = (value, label) => h("div.tile", h("div.value", value ?? "–"), h("div.label", label));
  const overlays = Array.isArray(m.overlays) ? m.overlays : [];
  root.textContent = "";
  root.append(
    h("div.tiles",
      tile(m.overlays_connected, "overlays connected"),
      tile(m.moderators_connected, "moderators online"),
      tile(m.active_scene, "live scene"),
      tile(m.latest_version != null ? `v${m.latest_version}` : "–", "latest version"),
      tile(lat.p50 != null ? `${Math.round(lat.p50)} ms` : "–", "apply p50 (live edits)"),
      tile(lat.p95 != null ? `${Math.round(lat.p95)} ms` : "–", "apply p95 (live edits)"),
      tile(late.p95 != null ? `${Math.round(late.p95)} ms` : "–", `first draw p95 (${m.late_joins_total ?? 0} joins)`),
      tile(m.saves_last_minute, `saves last minute (${m.saves_total ?? 0} total)`)),
    h("div.table-scroll", h("table.data#overlays-table",
      h("thead", h("tr", ["Overlay", "State", "Shows", "Lag", "Last ack", "Apply time"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", overlays.length ? overlays.map((o) => h("tr",
        h("td", h("code", o.overlay_id)),
        h("td", o.connected ? h("span.pill.ok", `connected${o.connections > 1 ? ` ×${o.connections}` : ""}`) : h("span.pill", "gone")),
        h("td", o.applied_version != null ? `v${o.applied_version}` : "–"),
        h("td", { class: o.lag_versions > 0 ? "bad" : "" }, o.lag_versions ?? "–"),
        h("td", o.last_ack_ms_ago != null ? `${formatDuration(o.last_ack_ms_ago / 1000)} ago` : "–"),
        h("td", o.last_latency_ms != null ? `${Math.round(o.last_latency_ms)} ms${o.last_latency_kind === "late_join" ? " (on connect)" : ""}` : "–")))
        : h("tr", h("td.muted", { colspan: 6 }, "No overlay has connected yet. Add the overlay URL to OBS."))))));
  const summary = $("#overlay-summary");
  summary.textContent = "";
  const live = overlays.filter((o) => o.connected);
  summary.append(live.length
    ? h("span", { style: { color: "var(--ok)" } }, `● ${live.length} overlay${live.length === 1 ? "" : "s"} connected, showing scene “${m.active_scene}”`)
    : h("span.muted", "○ No overlay connected right now."));
}

// ---------------------------------------------------------------------------------------------

setupGate();
if (token) openDashboard();
else showGate();
