// The page-side plugin loader: /overlay, /mod and /admin read GET /api/plugins and, in load order, load each
// plugin's module for the page (docs/plugin-bundles.md). A module that fails to load, throws or takes too long is
// isolated: logged with its name, listed in `window.onionPlugins.failed`, and whatever it registered is undone.
//
//   const listing = await fetchListing();                       // {plugins: []} when /api/plugins fails
//   await loadPlugins("panel", listing, (plugin) => pageApi);   // pageApi: what setup(api) receives
//
// A module is `export default function setup(api)` (possibly async). The api a page builds may carry
// `dispose()`: the loader calls it when the plugin fails, so a half-set-up plugin leaves nothing behind.

/** How long a module may take to load, and then its setup to finish. */
export const PLUGIN_TIMEOUT_MS = 5000;

/** What the page's plugins did: names loaded, and {name, error} of those that failed (also `window.onionPlugins`). */
export const pluginStatus = { loaded: [], failed: [], ready: false };
if (typeof window !== "undefined" && !window.onionPlugins) {
  Object.defineProperty(window, "onionPlugins", { value: pluginStatus, configurable: true, enumerable: true });
}

const listeners = new Set();

/** Calls `handler(status)` whenever a plugin loads or fails, and once all are done; returns an unsubscribe function. */
export function onPluginStatus(handler) {
  listeners.add(handler);
  return () => listeners.delete(handler);
}

function changed() {
  for (const handler of [...listeners]) {
    try {
      handler(pluginStatus);
    } catch (err) {
      console.warn("[plugins] status listener", err);
    }
  }
}

/**
 * GET /api/plugins. Never throws: when the engine does not answer, the page runs with its core features only.
 * @param {Record<string,string>} [headers]  e.g. the streamer token (adds each library's `file`)
 * @returns {Promise<{plugins: object[], ok: boolean}>}
 */
export async function fetchListing(headers = {}) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), PLUGIN_TIMEOUT_MS);
  try {
    const response = await fetch("/api/plugins", { headers: { accept: "application/json", ...headers }, signal: controller.signal, cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const body = await response.json();
    return { ...body, plugins: Array.isArray(body && body.plugins) ? body.plugins : [], ok: true };
  } catch (err) {
    console.warn("[plugins] /api/plugins unavailable; core features only:", err && err.message ? err.message : err);
    return { plugins: [], ok: false };
  } finally {
    clearTimeout(timer);
  }
}

/** `{module, styles}` of one plugin for a page ("overlay", "panel", "admin"), or null. */
export function webEntry(plugin, page) {
  const web = plugin && plugin.web && typeof plugin.web === "object" ? plugin.web : null;
  const entry = web && web[page];
  if (!entry || typeof entry !== "object" || typeof entry.module !== "string" || !entry.module) return null;
  return { module: entry.module, styles: Array.isArray(entry.styles) ? entry.styles.filter((s) => typeof s === "string" && s) : [] };
}

/** What a plugin module receives as `api.plugin`. */
export function pluginInfo(plugin) {
  const base = plugin.web && typeof plugin.web.base === "string" ? plugin.web.base : `/plugins/${plugin.name}/`;
  return Object.freeze({ name: String(plugin.name || ""), version: String(plugin.version || ""), base });
}

/**
 * Every element type the plugins declare, by type: {type, label, width, height, schema, plugin}.
 * Accepts the older listing shape too (`element_types: ["webrtc"]`, no schema).
 */
export function elementTypes(listing) {
  const types = new Map();
  for (const plugin of listing && Array.isArray(listing.plugins) ? listing.plugins : []) {
    for (const raw of Array.isArray(plugin.element_types) ? plugin.element_types : []) {
      const entry = typeof raw === "string" ? { type: raw } : raw;
      if (!entry || typeof entry.type !== "string" || !entry.type || types.has(entry.type)) continue;
      types.set(entry.type, {
        type: entry.type,
        label: typeof entry.label === "string" && entry.label ? entry.label : entry.type,
        width: Number(entry.width) > 0 ? Number(entry.width) : null,
        height: Number(entry.height) > 0 ? Number(entry.height) : null,
        schema: entry.schema && typeof entry.schema === "object" ? entry.schema : null,
        plugin: plugin.name,
      });
    }
  }
  return types;
}

/** Rejects with a timeout error after `ms`. */
function within(promise, ms, what) {
  let timer = 0;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${Math.round(ms / 1000)} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function addStyles(plugin, styles) {
  return styles.map((href) => {
    const link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = href;
    link.dataset.plugin = plugin.name;
    document.head.appendChild(link);
    return link;
  });
}

/**
 * Loads the modules of `page` in load order. Imports start together; setups run one after the other.
 * @param {"overlay"|"panel"|"admin"} page
 * @param {{plugins: object[]}} listing  from fetchListing()
 * @param {(info: {name, version, base}, plugin: object) => object} makeApi  the api object one plugin receives
 * @param {{timeoutMs?: number, afterSetup?: (api: object) => void}} [options]  afterSetup runs right after a
 *   plugin's setup succeeded (before the next plugin's)
 * @returns {Promise<typeof pluginStatus>}
 */
export async function loadPlugins(page, listing, makeApi, { timeoutMs = PLUGIN_TIMEOUT_MS, afterSetup = null } = {}) {
  const wanted = [];
  for (const plugin of listing && Array.isArray(listing.plugins) ? listing.plugins : []) {
    const entry = webEntry(plugin, page);
    if (!entry || typeof plugin.name !== "string") continue;
    const links = addStyles(plugin, entry.styles);
    // Started at once: a slow module does not hold the others' downloads back.
    const loading = within(import(entry.module), timeoutMs, "loading");
    loading.catch(() => {}); // awaited below, in order
    wanted.push({ plugin, entry, links, loading });
  }
  for (const { plugin, links, loading } of wanted) {
    const info = pluginInfo(plugin);
    let api = null;
    try {
      const module = await loading;
      const setup = module && module.default;
      if (typeof setup !== "function") throw new Error("the module has no default export setup(api)");
      api = makeApi(info, plugin);
      await within(Promise.resolve().then(() => setup(api)), timeoutMs, "setup");
      if (afterSetup) afterSetup(api);
      pluginStatus.loaded.push(info.name);
    } catch (err) {
      const error = err && err.message ? err.message : String(err);
      console.error(`[plugins] ${info.name}: its ${page} module failed and is not used: ${error}`);
      pluginStatus.failed.push({ name: info.name, error });
      for (const link of links) link.remove();
      try {
        if (api && typeof api.dispose === "function") api.dispose();
      } catch (problem) {
        console.warn(`[plugins] ${info.name}: undoing its registrations`, problem);
      }
    }
    changed();
  }
  pluginStatus.ready = true;
  changed();
  if (typeof window !== "undefined") window.dispatchEvent(new CustomEvent("onion:plugins", { detail: pluginStatus }));
  return pluginStatus;
}

/**
 * Adds stylesheets a module needs unless the page has them already (the engine adds the `styles` a plugin
 * declares; this covers a module used before its declaration lists them).
 * @param {...(string|URL)} hrefs  e.g. new URL("./panel.css", import.meta.url)
 */
export function useStyles(...hrefs) {
  for (const raw of hrefs) {
    const href = new URL(String(raw), location.href).href;
    if ([...document.querySelectorAll('link[rel="stylesheet"]')].some((link) => link.href === href)) continue;
    const link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = href;
    document.head.appendChild(link);
  }
}

/**
 * A registry of undo functions for one plugin's api: `track(fn)` keeps fn (returning it), `dispose()` runs them all
 * (newest first) and makes later registrations no-ops.
 */
export function registrations() {
  const undo = [];
  let disposed = false;
  return {
    get disposed() {
      return disposed;
    },
    track(fn) {
      if (disposed) {
        fn();
        return () => {};
      }
      undo.push(fn);
      return fn;
    },
    dispose() {
      disposed = true;
      while (undo.length) {
        try {
          undo.pop()();
        } catch (err) {
          console.warn("[plugins] undo", err);
        }
      }
    },
  };
}
