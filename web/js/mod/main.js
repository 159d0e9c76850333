// The moderator panel (/mod): login with a one-time key, then the scene editor with layers,
// inspector and the health strip, all live over /ws/moderator. Plugins add the rest (tabs such as media,
// TTS and camera, Add entries, inspectors) through their panel modules (./plugin-api.js).

import { ApiError, createApi, describeError, loadCapabilities } from "../lib/api.js";
import { StageEditor } from "./editor.js";
import { HealthStrip } from "./health.js";
import { Inspector } from "./inspector.js";
import { LayerList, restackOps, stackOrder } from "./layers.js";
import { confirmDialog, dismiss, notify, promptDialog } from "../lib/notices.js";
import { PanelExtensions, panelApi } from "./plugin-api.js";
import { SceneSync } from "./scene-sync.js";
import { applyScenePatch } from "../lib/scene-patch.js";
import { SceneSwitcher } from "./scenes.js";
import { ModeratorSocket } from "./socket.js";
import { tabs } from "./tabs.js";
import { $, clone, elementLabel, finite, h, isTyping, plural, randomId, storage } from "../lib/util.js";
import { loadPlugins, pluginStatus } from "../lib/plugins.js";

const SESSION_KEY = "onionrp.mod.session";
const FLASH_KEY = "onionrp.mod.flash";
const UNSAVED_KEY = "onionrp.mod.unsaved";
const local = storage("local");
const flash = storage("session");

// ---------------------------------------------------------------------------------------------
// Login

function storedSession() {
  const saved = local.getJSON(SESSION_KEY, null);
  if (!saved || typeof saved.session !== "string" || !saved.session) return null;
  return saved;
}

/** Leaves the app for the login view with a message (session expired, revoked, logged out). */
function backToLogin(message, kind = "warn") {
  local.remove(SESSION_KEY);
  flash.setJSON(FLASH_KEY, { message, kind });
  location.replace("/mod");
}

function showLogin() {
  $("#app").hidden = true;
  const view = $("#login-view");
  view.hidden = false;
  const form = $("#login-form");
  const input = $("#login-key");
  const message = $("#login-message");
  const button = $("#login-submit");
  const note = flash.getJSON(FLASH_KEY, null);
  flash.remove(FLASH_KEY);
  if (note && note.message) {
    message.textContent = note.message;
    message.dataset.kind = note.kind || "warn";
  }
  // A login link fills the key in: on load, and when it is opened in this tab while it shows the
  // login (only the fragment changes: no reload, a `hashchange`). The link's key replaces whatever
  // the field held, so a stale text is never sent (and never counts as a failed try).
  const fillFromLink = () => {
    const fromLink = keyFromLink();
    if (!fromLink) return false;
    input.value = fromLink;
    history.replaceState(null, "", "/mod");
    message.textContent = "Key filled in from your link. Press Log in.";
    message.dataset.kind = "info";
    button.focus();
    return true;
  };
  fillFromLink();
  loginLinkHandler = () => {
    if (!view.hidden) fillFromLink();
  };
  const api = createApi();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) {
      message.textContent = "Paste the key your streamer gave you.";
      message.dataset.kind = "warn";
      input.focus();
      return;
    }
    if (button.disabled) return; // one try at a time
    button.disabled = true;
    button.textContent = "Logging in…";
    message.textContent = "";
    try {
      const answer = await api.post("/api/moderator-keys/consume", { form: { key }, public: true });
      local.setJSON(SESSION_KEY, {
        session: answer.session,
        session_id: answer.session_id,
        expires_at: answer.expires_at,
        ttl_seconds: answer.ttl_seconds,
      });
      input.value = "";
      view.hidden = true;
      startApp(storedSession(), { fresh: true });
    } catch (err) {
      let text = describeError(err);
      if (err instanceof ApiError && err.status === 401) {
        text = "This key does not work: it was already used, has expired, or was mistyped. A key works once — ask your streamer for a new one.";
      } else if (err instanceof ApiError && err.status === 429) {
        text = `${describeError(err)}. Too many failed keys from this address.`;
      } else if (err instanceof ApiError && err.network) {
        text = "Cannot reach the engine. Check your connection and try again.";
      }
      message.textContent = text;
      message.dataset.kind = "error";
      input.focus();
      input.select();
    } finally {
      button.disabled = false;
      button.textContent = "Log in";
    }
  }, { once: false });
  (input.value ? button : input).focus();
}

// ---------------------------------------------------------------------------------------------
// The app

async function startApp(saved, { fresh = false } = {}) {
  let unauthorized = false;
  const onUnauthorized = () => {
    if (unauthorized) return;
    unauthorized = true;
    keepUnsaved(app.sync);
    backToLogin("Your moderator session has expired or was revoked. Ask your streamer for a new key.");
  };
  const app = {
    session: saved.session,
    me: null,
    caps: null,
    selection: { id: null },
  };
  app.api = createApi({
    headers: () => ({ "x-moderator-session": app.session }),
    onUnauthorized,
    onNetwork: (online) => {
      if (online && app.sync && !app.sync.online && app.socket.state === "open") app.sync.resync();
    },
  });

  // Check the kept session before showing anything.
  try {
    const me = await app.api.get("/api/moderator/me");
    app.me = { ...me, byTag: me.id ? `moderator:${me.id}` : "" };
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return; // onUnauthorized took over
    if (!fresh && err instanceof ApiError && err.network) {
      // Offline at start: still show the app; it resyncs when the engine answers.
      app.me = { label: saved.label || "moderator" };
    } else if (!(err instanceof ApiError && err.network)) {
      app.me = { label: "moderator" };
    }
  }

  $("#login-view").hidden = true;
  $("#app").hidden = false;
  document.title = "Mod panel · OnionRP Dock";
  $("#me-label").textContent = app.me?.label || "moderator";
  $("#me-label").title = app.me?.expires_at ? `Session until ${new Date(app.me.expires_at).toLocaleString()}` : "";

  app.caps = await loadCapabilities(app.api);
  app.socket = new ModeratorSocket({ session: () => app.session, onAuthFailed: onUnauthorized });
  app.sync = new SceneSync({ api: app.api });
  const sync = app.sync;

  // -- helpers used by the modules -------------------------------------------------------------
  const rightTabs = tabs($("#right-tabs"));
  const leftTabs = tabs($("#left-tabs"));
  // On phones the right side is a bottom sheet: a tab (or the toggle) opens it; on wider screens
  // the class does nothing.
  const sheet = $("#sheet");
  const sheetToggle = $("#sheet-toggle");
  app.openSheet = (open) => {
    // Open, it fills the screen below the stage, so the element being edited stays in sight.
    const stageBottom = document.querySelector("main.workspace > .center").getBoundingClientRect().bottom;
    sheet.style.setProperty("--sheet-h", `${Math.round(Math.max(220, window.innerHeight - Math.max(0, stageBottom)))}px`);
    sheet.classList.toggle("open", open);
    sheetToggle.setAttribute("aria-expanded", String(open));
    sheetToggle.setAttribute("aria-label", open ? "Close the panel" : "Open the panel");
  };
  sheetToggle.addEventListener("click", () => app.openSheet(!sheet.classList.contains("open")));
  $("#right-tabs").addEventListener("click", (event) => {
    if (event.target instanceof Element && event.target.closest('[role="tab"]')) app.openSheet(true);
  });
  app.leftTabs = leftTabs;
  app.rightTabs = rightTabs;
  app.leftSide = $("#left-side");
  app.rightSide = sheet;
  app.stageWrap = $("#stage-wrap");
  app.ext = new PanelExtensions(app.caps.listing);

  app.select = (id, { reveal = false } = {}) => {
    const changed = app.selection.id !== id;
    app.selection.id = id;
    if (reveal && id && rightTabs.current() !== "tab-props") rightTabs.show("tab-props");
    if (changed) {
      inspector.render();
      layers.render();
    }
    editor.drawSelection();
  };
  /** A shallow patch of an element; `props` is merged into its props (plugin element types). */
  app.updateElement = (id, patch, options = {}) => {
    const el = sync.element(id);
    if (!el || !patch || typeof patch !== "object") return;
    const fields = { ...patch };
    if (fields.props && typeof fields.props === "object") fields.props = { ...(el.props || {}), ...fields.props };
    sync.update(id, fields, { group: options.group || `plugin:${id}`, debounce: options.debounce ?? 0 });
  };
  app.setField = (id, field, value) => {
    const el = sync.element(id);
    if (!el) return;
    sync.update(id, { [field]: value }, { group: `toggle:${id}:${field}` });
  };
  app.restack = (id, position) => {
    const ops = restackOps(sync.local.elements, id, position);
    if (ops.length) sync.queue(ops, { group: `restack:${id}` });
  };
  app.restackBy = (id, delta) => {
    if (!id) return;
    const order = stackOrder(sync.local.elements).map((el) => el.id);
    const at = order.indexOf(id);
    const target = Math.max(0, Math.min(order.length - 1, at + delta));
    if (target !== at) app.restack(id, target);
  };
  // New elements go on top of the stack: above the highest z (and last in the list among equals).
  const topZ = () => (sync.local.elements.length ? Math.max(...sync.local.elements.map((el) => finite(el.z, 0))) + 1 : 0);
  app.addElement = (element, { select = true } = {}) => {
    const full = { z: topZ(), x: 0, y: 0, width: 320, height: 180, ...element };
    sync.queue([{ op: "add", element: full }], { group: `add:${full.id}` });
    if (select) app.select(full.id, { reveal: true });
    return full;
  };
  app.editText = (id) => {
    app.select(id, { reveal: true });
    rightTabs.show("tab-props");
    app.openSheet(true);
    setTimeout(() => {
      const field = $("#insp-text");
      if (field) {
        field.focus();
        field.select();
      }
    }, 0);
  };
  app.addText = () => {
    const c = editor.center();
    // Readable over gameplay from the start: a box wide enough for a sentence, a bundled bold font,
    // a dark outline and shadow, and auto-fit so a longer text shrinks instead of overflowing.
    const el = app.addElement({ id: randomId("text"), type: "text", text: "New text", x: Math.round(c.x - 450), y: Math.round(c.y - 80),
      width: 900, height: 160, size: 72, font: "Inter", color: "#ffffff", align: "center", valign: "middle", autofit: true,
      stroke: "#000000", stroke_width: 3, shadow: "#000000b3", shadow_blur: 8, shadow_x: 0, shadow_y: 4 });
    app.editText(el.id);
  };
  const fitted = (w, h2) => {
    const stage = sync.local;
    let width = finite(w, 0) || 640;
    let height = finite(h2, 0) || 360;
    const factor = Math.min(1, (stage.width * 0.6) / width, (stage.height * 0.6) / height);
    width = Math.round(width * factor);
    height = Math.round(height * factor);
    return { width, height, x: Math.round((stage.width - width) / 2), y: Math.round((stage.height - height) / 2) };
  };
  app.addMedia = (item, at = null) => {
    if (!sync.local) return;
    const kind = item.kind === "video" || item.kind === "audio" ? item.kind : "image";
    const box = kind === "audio" ? { width: 320, height: 80, x: 40, y: 40 } : fitted(item.width, item.height);
    if (at) {
      box.x = Math.round(at.x - box.width / 2);
      box.y = Math.round(at.y - box.height / 2);
    }
    const element = { id: randomId(kind), type: kind, media: item.id, name: (item.original_name || "").slice(0, 60) || undefined, ...box };
    if (kind !== "image") Object.assign(element, { loop: kind === "video", muted: false, volume: 1, playing: true });
    if (kind !== "audio") element.fit = "contain";
    app.addElement(element);
    notify(`Added “${element.name || element.id}” to ${sync.name}`, { kind: "ok", timeout: 2000 });
  };
  /** Image or video: from the media source a plugin offers (a library), else a URL. */
  app.addPicked = async (kind) => {
    const source = app.ext.mediaSource;
    let choice = null;
    if (source) {
      choice = await source.pick(kind);
    } else {
      const src = await promptDialog({
        title: `Add ${kind}`,
        label: "URL",
        placeholder: "https://… or /path/file",
        confirmLabel: "Add",
        validate: (v) => (/^(https?:\/\/|\/)/i.test(v) ? "" : "Enter an http(s) URL or a path starting with /"),
      });
      if (src) choice = { src };
    }
    if (!choice) return;
    if (choice.item) {
      app.addMedia(choice.item);
      return;
    }
    const box = fitted(640, 360);
    const element = { id: randomId(kind), type: kind, src: choice.src, fit: "contain", ...box };
    if (kind === "video") Object.assign(element, { loop: true, muted: false, volume: 1, playing: true });
    app.addElement(element);
  };
  /** An Add-menu entry of a plugin element type: its create() gives the element's fields (null: cancelled). */
  app.addFromEntry = async (entry) => {
    if (!sync.local) return;
    let partial;
    try {
      partial = await entry.create();
    } catch (err) {
      notify(`${entry.label}: ${describeError(err)}`, { kind: "error" });
      return;
    }
    if (!partial || typeof partial !== "object") return;
    // create() gives the new element's props, or {props, width?, height?, name?, ...} with other fields too.
    if (partial.props === undefined) partial = { props: partial };
    const declared = app.ext.declared.get(entry.type);
    const box = fitted(partial.width ?? declared?.width ?? 320, partial.height ?? declared?.height ?? 180);
    const props = { ...app.ext.defaults(entry.type), ...(partial.props || {}) };
    const element = { id: randomId(entry.type), type: entry.type, ...box, ...partial };
    if (Object.keys(props).length || declared?.schema) element.props = props;
    else delete element.props;
    app.addElement(element);
  };
  /** Scene coordinates of a point on screen, or null outside the stage. */
  app.toScene = (clientX, clientY) => {
    const rect = editor.frame.getBoundingClientRect();
    const inside = clientX >= rect.left && clientX <= rect.right && clientY >= rect.top && clientY <= rect.bottom;
    return inside ? { x: (clientX - rect.left) / editor.scale, y: (clientY - rect.top) / editor.scale } : null;
  };
  app.duplicateSelected = () => {
    const el = app.selection.id ? sync.element(app.selection.id) : null;
    if (!el) return;
    const copy = clone(el);
    copy.id = randomId(el.type);
    copy.x = finite(el.x, 0) + 20;
    copy.y = finite(el.y, 0) + 20;
    if (el.name) copy.name = `${el.name} copy`.slice(0, 200);
    delete copy.locked;
    const index = sync.local.elements.findIndex((e) => e.id === el.id) + 1;
    sync.queue([{ op: "add", element: copy, index }], { group: `add:${copy.id}` });
    app.select(copy.id, { reveal: true });
    notify(`Duplicated “${elementLabel(el)}”`, { kind: "ok", timeout: 1500 });
  };
  app.deleteSelected = () => {
    const el = app.selection.id ? sync.element(app.selection.id) : null;
    if (!el) return;
    if (el.locked) {
      notify(`“${elementLabel(el)}” is locked. Unlock it first (L).`, { kind: "warn", timeout: 3000 });
      return;
    }
    sync.queue([{ op: "remove", id: el.id }], { group: `remove:${el.id}` });
    app.select(null);
    notify(`Deleted “${elementLabel(el)}”`, { kind: "info", timeout: 5000, key: "deleted", actions: [{ label: "Undo", run: () => app.undo() }] });
  };
  app.alignSelected = (mode) => {
    const el = app.selection.id ? sync.element(app.selection.id) : null;
    if (!el || el.locked) return;
    const stage = sync.local;
    if (mode === "center") {
      sync.update(el.id, { x: Math.round((stage.width - finite(el.width, 0)) / 2), y: Math.round((stage.height - finite(el.height, 0)) / 2) }, { group: `align:${el.id}` });
    } else {
      sync.update(el.id, { x: 0, y: 0, width: stage.width, height: stage.height, rotation: 0 }, { group: `align:${el.id}` });
    }
  };
  app.undo = async () => runHistory("undo");
  app.redo = async () => runHistory("redo");
  app.restoreVersion = async (version) => {
    try {
      await sync.restore(version);
      notify(`Restored version ${version} (now v${sync.version})`, { kind: "ok" });
    } catch (err) {
      notify(`Could not restore: ${describeError(err)}`, { kind: "error" });
    }
  };
  async function runHistory(kind) {
    if (kind === "undo" ? !sync.canUndo : !sync.canRedo) {
      notify(kind === "undo" ? "Nothing to undo" : "Nothing to redo", { kind: "info", timeout: 1500, key: "history" });
      return;
    }
    try {
      const done = await sync[kind]();
      if (done) notify(`${kind === "undo" ? "Undone" : "Redone"} — scene back to v${done.version} (now v${sync.version})`, { kind: "ok", timeout: 2000, key: "history" });
    } catch (err) {
      notify(`${kind === "undo" ? "Undo" : "Redo"} failed: ${describeError(err)}`, { kind: "error", key: "history" });
    }
  }
  app.switchScene = async (name) => {
    if (!name || name === sync.name) return;
    if (sync.pendingCount) {
      const saved = await sync.idle(4000);
      if (!saved) {
        notify("Your changes are not saved yet (offline?); stay on this scene until they are.", { kind: "warn" });
        scenes.render();
        return;
      }
    }
    try {
      await sync.load(name);
      app.select(null);
      scenes.render();
    } catch (err) {
      notify(`Could not open “${name}”: ${describeError(err)}`, { kind: "error" });
      scenes.render();
    }
  };
  app.resolveMedia = (el) => {
    if (el.src) return { url: el.src, missing: false };
    if (!el.media) return { url: "", missing: true };
    const source = app.ext.mediaSource;
    const known = source && typeof source.known === "function" ? source.known(el.media) : null;
    if (known === true) return { url: `/media/${encodeURIComponent(el.media)}`, missing: false };
    return { url: "", missing: known === false };
  };
  app.onMediaChanged = () => {
    if (editor) editor.render();
  };

  // -- modules ---------------------------------------------------------------------------------
  const scenes = new SceneSwitcher(app, $("#scene-bar"));
  const editor = new StageEditor(app, $("#stage-wrap"));
  const layers = new LayerList(app, $("#layers"));
  const inspector = new Inspector(app, $("#inspector"));
  const health = new HealthStrip(app, $("#health"));
  app.editor = editor;
  $("#layer-count").replaceWith(layers.count);
  layers.count.id = "layer-count";
  layers.count.className = "count";

  // -- plugins: their Add entries, stage previews and inspectors -----------------------------------
  const addBar = $("#tab-layers .add-bar");
  const renderAddEntries = () => {
    for (const old of addBar.querySelectorAll("[data-entry]")) old.remove();
    const used = new Set([...addBar.querySelectorAll("button[id]")].map((b) => b.id));
    for (const entry of app.ext.entries) {
      const id = used.has(`add-${entry.type}`) ? null : `add-${entry.type}`;
      if (id) used.add(id);
      addBar.append(h("button.btn.small", {
        id, type: "button", "aria-label": `Add ${entry.label.toLowerCase()}`, dataset: { entry: entry.key, plugin: entry.plugin || "" },
        onclick: () => app.addFromEntry(entry),
      }, entry.label));
    }
  };
  renderAddEntries();
  app.ext.addEventListener("changed", (event) => {
    if (event.detail === "entries") renderAddEntries();
    else if (event.detail === "inspectors") inspector.render({ force: true, rebuild: true });
    else editor.render();
  });

  // -- scene sync -> views -----------------------------------------------------------------------
  let renderQueued = false;
  sync.addEventListener("change", (event) => {
    const reason = event.detail.reason;
    const force = ["conflict", "load", "refused", "exclusive"].includes(reason);
    if (app.selection.id && !sync.element(app.selection.id)) app.selection.id = null;
    // Pointer moves render at once (the element follows the pointer); the lists on the next frame.
    editor.render();
    if (!renderQueued) {
      renderQueued = true;
      requestAnimationFrame(() => {
        renderQueued = false;
        layers.render();
        inspector.render({ force });
      });
      // Background windows get no animation frames: render anyway soon.
      setTimeout(() => {
        if (renderQueued) {
          renderQueued = false;
          layers.render();
          inspector.render({ force });
        }
      }, 120);
    }
  });
  const saveState = $("#save-state");
  const versionLabel = $("#scene-version");
  const banner = $("#offline-banner");
  const renderStatus = () => {
    const state = sync.saveState;
    const count = sync.pendingCount;
    saveState.dataset.state = state;
    const text = {
      saved: "Saved",
      pending: "Unsaved…",
      saving: "Saving…",
      offline: count ? `Offline · ${plural(count, "change")} kept` : "Offline",
      error: `Not saved: ${sync.lastError}`,
    }[state];
    saveState.textContent = text;
    saveState.title = state === "saved" && sync.savedAt ? `Last saved ${new Date(sync.savedAt).toLocaleTimeString()}` : text;
    versionLabel.textContent = `v${sync.version}`;
    document.title = `${count ? "• " : ""}${sync.name || "Mod panel"} · OnionRP Dock mod`;
    versionLabel.title = `Scene “${sync.name}” version ${sync.version}`;
    $("#undo").disabled = !sync.canUndo;
    $("#redo").disabled = !sync.canRedo;
    const offline = state === "offline" || app.socket.state === "closed";
    banner.hidden = !offline;
    if (offline) {
      bannerText.textContent = count
        ? `${plural(count, "unsaved change")} kept here; sent when the connection is back.`
        : "Live updates paused; reconnecting…";
    }
  };
  const bannerText = h("span");
  banner.append(h("strong", "Offline. "), bannerText, " ",
    h("button.btn.small#reconnect-now", { type: "button", onclick: () => app.socket.reconnectNow() }, "Reconnect now"));
  sync.addEventListener("status", renderStatus);
  sync.addEventListener("history", renderStatus);
  sync.addEventListener("conflict", (event) => {
    notify(event.detail.message, { kind: "conflict", key: "conflict", title: "Conflict — ", timeout: 0 });
  });
  sync.addEventListener("error", (event) => {
    const { message, transient, field, element } = event.detail;
    const where = field && element ? ` (${element}: ${field})` : "";
    notify(`${message}${message.includes(field || "\u0000") ? "" : where}`, { kind: transient ? "warn" : "error", key: "save-error", timeout: transient ? 4000 : 8000 });
    if (field && element) inspector.serverError(element, field, message);
  });
  sync.addEventListener("saved", () => dismiss("save-error"));
  sync.addEventListener("missing", async () => {
    notify(`Scene “${sync.name}” was deleted by someone else; showing the live scene.`, { kind: "warn" });
    await scenes.refresh();
    sync.pending = [];
    app.switchScene(scenes.active);
  });

  // -- socket ------------------------------------------------------------------------------------
  app.socket.on("scene.full", (message) => {
    const scene = message.scene;
    if (!scene || typeof scene.name !== "string") return;
    if (message.active === true) scenes.setActive(scene.name);
    else if (!scenes.known(scene.name)) scenes.refresh();
    sync.receive(scene);
  });
  // Deltas: applied to the scene being edited when it is at their base; otherwise the scene is fetched.
  app.socket.on("scene.patch", (message) => {
    const name = message.patch && message.patch.name;
    if (typeof name !== "string") return;
    if (message.active === true) scenes.setActive(name);
    else if (!scenes.known(name)) scenes.refresh();
    if (name !== sync.name || !sync.server || message.version <= sync.server._version) return;
    const scene = applyScenePatch(sync.server, message);
    if (scene) sync.receive(scene);
    else sync.resync();
  });
  app.socket.onState((state, detail) => {
    if (state === "open") {
      if (detail.reconnected) {
        dismiss("offline");
        sync.resync();
        scenes.refresh();
        notify("Back online", { kind: "ok", timeout: 2000, key: "online" });
      }
    } else if (state === "closed") {
      sync.setOnline(false);
    }
    renderStatus();
  });

  // -- plugin panel modules (in load order; the panel works meanwhile and without them) ---------------
  loadPlugins("panel", app.caps.listing, (info) => panelApi(app, app.ext, info)).then(() => {
    document.body.dataset.plugins = "ready";
  });

  // -- first load ------------------------------------------------------------------------------
  try {
    const active = await scenes.refresh();
    await sync.load(active || "main");
    scenes.render();
  } catch (err) {
    notify(`Could not load the scene: ${describeError(err)}`, { kind: "error" });
  }
  app.socket.connect();
  health.start();
  renderStatus();
  offerUnsaved(app);

  // -- controls --------------------------------------------------------------------------------
  $("#undo").addEventListener("click", () => app.undo());
  $("#redo").addEventListener("click", () => app.redo());
  $("#add-text").addEventListener("click", () => app.addText());
  $("#add-image").addEventListener("click", () => app.addPicked("image"));
  $("#add-video").addEventListener("click", () => app.addPicked("video"));
  const snapToggle = $("#snap-toggle");
  snapToggle.addEventListener("change", () => {
    editor.snapping = snapToggle.checked;
  });
  $("#open-overlay").href = "/overlay";
  $("#shortcuts-btn").addEventListener("click", () => showShortcuts());
  $("#logout").addEventListener("click", async () => {
    if (sync.pendingCount) {
      const ok = await confirmDialog({ title: "Log out with unsaved changes?", message: `${plural(sync.pendingCount, "change")} ${sync.pendingCount === 1 ? "is" : "are"} not saved yet and will be lost.`, confirmLabel: "Log out", danger: true });
      if (!ok) return;
    }
    // Our own logout closes the socket with 4401 and fails later calls: not an "expired" session.
    unauthorized = true;
    app.socket.stop();
    health.stop();
    try {
      await app.api.post("/api/moderator/logout");
    } catch {
      /* ended either way */
    }
    backToLogin("You are logged out. Your key was used up; ask your streamer for a new one to come back.", "info");
  });

  document.addEventListener("keydown", (event) => onKey(event));
  window.addEventListener("beforeunload", (event) => {
    if (sync.pendingCount && !unauthorized) {
      event.preventDefault();
      event.returnValue = "";
    }
  });

  function onKey(event) {
    if (document.querySelector("dialog[open]")) return;
    const mod = event.ctrlKey || event.metaKey;
    const typing = isTyping(event);
    const key = event.key;
    if (mod && !typing && (key === "z" || key === "Z")) {
      event.preventDefault();
      if (event.shiftKey) app.redo();
      else app.undo();
      return;
    }
    if (mod && !typing && (key === "y" || key === "Y")) {
      event.preventDefault();
      app.redo();
      return;
    }
    if (typing) {
      if (key === "Escape" && event.target instanceof HTMLElement) event.target.blur();
      return;
    }
    if (mod && (key === "d" || key === "D")) {
      event.preventDefault();
      app.duplicateSelected();
      return;
    }
    if (mod || event.altKey) return;
    const step = event.shiftKey ? 10 : 1;
    const arrows = { ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, -step], ArrowDown: [0, step] };
    if (arrows[key] && app.selection.id) {
      // Sliders, selects and tabs use the arrows themselves.
      if (event.target instanceof HTMLElement && event.target.closest('input, select, textarea, [role="tablist"]')) return;
      event.preventDefault();
      editor.nudge(...arrows[key]);
      return;
    }
    if ((key === "Delete" || key === "Backspace") && app.selection.id) {
      event.preventDefault();
      app.deleteSelected();
      return;
    }
    if (key === "Escape") {
      if (!editor.abortGesture()) app.select(null);
      return;
    }
    const el = app.selection.id ? sync.element(app.selection.id) : null;
    if ((key === "h" || key === "H") && el) app.setField(el.id, "visible", el.visible === false);
    else if ((key === "l" || key === "L") && el) app.setField(el.id, "locked", el.locked !== true);
    else if (key === "]" && el) app.restackBy(el.id, 1);
    else if (key === "[" && el) app.restackBy(el.id, -1);
    else if (key === "?") showShortcuts();
  }

  // For tests and support: a read-only view of the panel state (like window.overlayState).
  Object.defineProperty(window, "modPanel", {
    configurable: true,
    value: Object.freeze({
      get version() { return sync.version; },
      get scene() { return sync.name; },
      get saveState() { return sync.saveState; },
      get pending() { return sync.pendingCount; },
      get connection() { return app.socket.state; },
      get selected() { return app.selection.id; },
      get plugins() { return { loaded: [...pluginStatus.loaded], failed: pluginStatus.failed.map((f) => ({ ...f })), ready: pluginStatus.ready }; },
      element: (id) => clone(sync.element(id)),
    }),
  });
  document.body.dataset.ready = "true";
}

/** Keeps edits that could not be saved because the session ended, to offer them after the next login. */
function keepUnsaved(sync) {
  if (!sync || !sync.pendingCount) return;
  const ops = [...(sync.inflight ? sync.inflight.ops : []), ...sync.pending].map(({ final, ...op }) => op);
  local.setJSON(UNSAVED_KEY, { scene: sync.name, ops, at: Date.now() });
}

function offerUnsaved(app) {
  const kept = local.getJSON(UNSAVED_KEY, null);
  local.remove(UNSAVED_KEY);
  if (!kept || !Array.isArray(kept.ops) || !kept.ops.length || Date.now() - kept.at > 24 * 3600 * 1000) return;
  notify(`${plural(kept.ops.length, "change")} to “${kept.scene}” from your last session ${kept.ops.length === 1 ? "was" : "were"} not saved when it ended.`, {
    kind: "warn",
    timeout: 0,
    key: "unsaved",
    actions: [
      {
        label: "Apply now",
        run: async () => {
          if (kept.scene !== app.sync.name) await app.switchScene(kept.scene);
          if (kept.scene !== app.sync.name) return;
          const ids = new Set(app.sync.local.elements.map((el) => el.id));
          const ops = kept.ops.filter((op) => (op.op === "add" ? !ids.has(op.element.id) : op.op === "reorder" || ids.has(op.id)));
          app.sync.queue(ops, { group: "recovered" });
          notify(`Re-applied ${plural(ops.length, "change")}`, { kind: "ok" });
        },
      },
      { label: "Discard", run: () => {} },
    ],
  });
}

function showShortcuts() {
  const rows = [
    ["Click / drag", "select / move an element"], ["Drag a handle", "resize (Shift keeps the aspect ratio)"],
    ["Alt while dragging", "no snapping"], ["Shift while moving", "move along one axis"],
    ["← ↑ → ↓", "nudge 1 px"], ["Shift + arrows", "nudge 10 px"], ["Delete / Backspace", "delete"],
    ["Ctrl + D", "duplicate"], ["Ctrl + Z", "undo"], ["Ctrl + Shift + Z, Ctrl + Y", "redo"],
    ["H / L", "hide-show / lock-unlock"], ["[ / ]", "send backward / bring forward"],
    ["Alt + ↑/↓ in Layers", "restack"], ["Esc", "cancel a drag, deselect"],
  ];
  const dialog = h("dialog.dialog", { "aria-labelledby": "dialog-title" },
    h("form", { method: "dialog" },
      h("h2#dialog-title", "Keyboard shortcuts"),
      h("table.shortcuts", h("tbody", rows.map(([k, v]) => h("tr", h("th", { scope: "row" }, h("kbd", k)), h("td", v))))),
      h("div.dialog-actions", h("button.btn.primary", { type: "submit", autofocus: true }, "Close"))));
  dialog.addEventListener("close", () => dialog.remove());
  document.body.appendChild(dialog);
  dialog.showModal();
}

// ---------------------------------------------------------------------------------------------

function keyFromLink() {
  const key = new URLSearchParams(location.hash.slice(1)).get("key");
  return key ? key.trim() : "";
}

/** What a login link opened in this tab does: set by the login view; the app's own below. */
let loginLinkHandler = null;
window.addEventListener("hashchange", () => {
  if (!keyFromLink()) return;
  if (loginLinkHandler && !$("#login-view").hidden) {
    loginLinkHandler();
    return;
  }
  if (!$("#app").hidden) {
    // Already logged in: the key is left unused (it still works once, elsewhere).
    history.replaceState(null, "", "/mod");
    notify("You are already logged in here, so the key from that link was not used: it still works once, in another browser.", { kind: "info", timeout: 8000, key: "login-link" });
  }
});

const saved = storedSession();
if (saved && !keyFromLink()) startApp(saved);
else showLogin();
