// What plugins add to the moderator panel, and the api their panel module's setup(api) receives
// (docs/plugin-bundles.md). The core modules (editor, inspector, add bar) read the registries here; nothing in the
// core names a plugin.

import { describeError } from "../lib/api.js";
import { noticeKind, notify } from "../lib/notices.js";
import { h } from "../lib/util.js";
import { elementTypes, registrations } from "../lib/plugins.js";

/** Element types the core draws and inspects itself. */
export const CORE_TYPES = new Set(["text", "image", "video", "audio"]);

const ID_RE = /^[a-z][a-z0-9-]{0,39}$/;

/** Registries filled by plugins; `changed` fires "entries", "previews", "inspectors" or "media" when one changes. */
export class PanelExtensions extends EventTarget {
  /** @param {{plugins: object[]}} listing  GET /api/plugins */
  constructor(listing) {
    super();
    /** type -> {type, label, width, height, schema, plugin}: what /api/plugins declares. */
    this.declared = elementTypes(listing);
    /** type -> {render(container, element, update), plugin} */
    this.inspectors = new Map();
    /** type -> editor stage renderer {create(el), update?(rec, el), destroy?(rec)} */
    this.previews = new Map();
    /** Add-menu entries in order: {key, type, label, create(), plugin, auto} */
    this.entries = [];
    /** {pick(kind), known(id)} from a plugin (the media library), or null. */
    this.mediaSource = null;
    // Every declared type with a schema gets an Add entry until its plugin registers its own.
    for (const declared of this.declared.values()) {
      if (declared.schema && !CORE_TYPES.has(declared.type)) {
        this.entries.push({ key: `auto:${declared.type}`, type: declared.type, label: declared.label, create: () => ({}), plugin: declared.plugin, auto: true });
      }
    }
  }

  emit(what) {
    this.dispatchEvent(new CustomEvent("changed", { detail: what }));
  }

  /** Default props of a declared type: each property's `default`. */
  defaults(type) {
    const schema = this.declared.get(type)?.schema;
    const props = {};
    for (const [name, spec] of Object.entries(schema && schema.properties ? schema.properties : {})) {
      if (spec && spec.default !== undefined) props[name] = spec.default;
    }
    return props;
  }
}

/** `container` in a <fieldset> with a legend, for plugin inspectors. */
function group(legend, container) {
  return h("fieldset.group.plugin-inspector", h("legend", legend), container);
}

/**
 * The api one plugin's panel module receives.
 * @param {object} app  the panel (api, socket, sync, select, addElement, addMedia, leftTabs, rightTabs, ...)
 * @param {PanelExtensions} ext
 * @param {{name: string, version: string, base: string}} info
 */
export function panelApi(app, ext, info) {
  const owned = registrations();
  const tabHandles = [];

  function addTab({ id, label, side = "right", render, onShow, onHide } = {}) {
    if (!ID_RE.test(String(id))) throw new TypeError(`addTab: id '${id}' must be lower-case letters, digits and '-'`);
    if (typeof render !== "function") throw new TypeError("addTab: render(container) is required");
    if (document.getElementById(`tab-${id}`)) throw new Error(`addTab: a tab '${id}' exists already`);
    const tabs = side === "left" ? app.leftTabs : app.rightTabs;
    const button = h("button", { id: `tab-btn-${id}`, type: "button", "aria-controls": `tab-${id}`, dataset: { plugin: info.name } }, String(label || id));
    const container = h("div", { id, class: id });
    const panel = h("section.tabpanel", { id: `tab-${id}`, role: "tabpanel", "aria-labelledby": `tab-btn-${id}` }, container);
    tabs.add(button, panel, side === "left" ? app.leftSide : app.rightSide);
    let shown = false;
    tabs.onChange((current) => {
      const now = current === `tab-${id}` && panel.isConnected;
      if (now === shown) return;
      shown = now;
      try {
        if (now && onShow) onShow();
        if (!now && onHide) onHide();
      } catch (err) {
        console.warn(`[${info.name}] tab ${id}`, err);
      }
    });
    const handle = {
      id,
      container,
      /** Selects this tab (and opens the sheet on phones). */
      show: () => {
        tabs.show(`tab-${id}`);
        if (side !== "left") app.openSheet(true);
      },
      /** Is the tab on screen (selected, page visible)? */
      visible: () => !document.hidden && tabs.current() === `tab-${id}`,
      remove: () => tabs.remove(`tab-${id}`),
    };
    owned.track(handle.remove);
    tabHandles.push(handle);
    render(container);
    return handle;
  }

  function addInspector(type, { render } = {}) {
    if (typeof type !== "string" || typeof render !== "function") throw new TypeError("addInspector(type, {render(container, element, update)})");
    const entry = { render, plugin: info.name };
    ext.inspectors.set(type, entry);
    ext.emit("inspectors");
    return owned.track(() => {
      if (ext.inspectors.get(type) === entry) ext.inspectors.delete(type);
      ext.emit("inspectors");
    });
  }

  function addElementEntry({ type, label, create } = {}) {
    if (typeof type !== "string" || !type || typeof create !== "function") throw new TypeError("addElementEntry({type, label, create()})");
    const entry = { key: `${info.name}:${type}:${ext.entries.length}`, type, label: String(label || ext.declared.get(type)?.label || type), create, plugin: info.name };
    // A plugin's own entry replaces the one made from the schema.
    const auto = ext.entries.findIndex((e) => e.auto && e.type === type);
    const removed = auto >= 0 ? ext.entries.splice(auto, 1, entry)[0] : null;
    if (!removed) ext.entries.push(entry);
    ext.emit("entries");
    return owned.track(() => {
      const at = ext.entries.indexOf(entry);
      if (at >= 0) ext.entries.splice(at, 1, ...(removed ? [removed] : []));
      ext.emit("entries");
    });
  }

  function addStagePreview(type, renderer) {
    if (typeof type !== "string" || !renderer || typeof renderer.create !== "function") throw new TypeError("addStagePreview(type, {create(el), update?, destroy?})");
    ext.previews.set(type, renderer);
    ext.emit("previews");
    return owned.track(() => {
      if (ext.previews.get(type) === renderer) ext.previews.delete(type);
      ext.emit("previews");
    });
  }

  function addMediaSource(source) {
    if (!source || typeof source.pick !== "function") throw new TypeError("addMediaSource({pick(kind), known(id)})");
    ext.mediaSource = source;
    ext.emit("media");
    return owned.track(() => {
      if (ext.mediaSource === source) ext.mediaSource = null;
      ext.emit("media");
    });
  }

  async function request(method, path, body, options = {}) {
    const init = { ...options };
    if (body instanceof URLSearchParams) init.form = body;
    else if (body !== undefined && body !== null) init.json = body;
    return app.api.request(String(method).toUpperCase(), path, init);
  }

  return Object.freeze({
    plugin: info,
    role: "moderator",
    elementTypes: ext.declared,
    addTab,
    addInspector,
    addElementEntry,
    addStagePreview,
    addMediaSource,
    request,
    upload: (path, file, onProgress) => app.api.upload(path, file, onProgress),
    hasRoute: (method, path) => app.caps.has(String(method).toUpperCase(), path),
    describeError,
    notice: (message, kind = "info", options = {}) => notify(String(message), { kind: noticeKind(kind), ...options }),
    on: (type, handler) => owned.track(app.socket.on(type, handler)),
    /** Calls handler() each time the moderator socket is back after a drop (reload what may have changed). */
    onReconnect: (handler) => owned.track(app.socket.onState((state, detail) => {
      if (state === "open" && detail && detail.reconnected) handler();
    })),
    scene: Object.freeze({
      element: (id) => app.sync.element(id),
      elements: () => (app.sync.local ? app.sync.local.elements : []),
      /** Adds an element (id, type required); it goes on top and is selected. */
      add: (element, options) => app.addElement(element, options),
      /** Shallow patch; `props` is merged into the element's props. */
      update: (id, patch, options) => app.updateElement(id, patch, options),
      addMedia: (item, at) => app.addMedia(item, at),
      select: (id) => app.select(id, { reveal: true }),
      selected: () => app.selection.id,
      redraw: () => app.onMediaChanged(),
    }),
    stage: Object.freeze({
      element: app.stageWrap,
      /** Scene coordinates of a point on screen, or null outside the stage. */
      toScene: (clientX, clientY) => app.toScene(clientX, clientY),
    }),
    dispose: () => owned.dispose(),
  });
}

export { group as inspectorGroup };
