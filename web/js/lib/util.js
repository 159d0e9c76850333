// Small DOM and formatting helpers shared by the moderator panel and the streamer dashboard.

/**
 * Creates an element: h("button.primary", {type: "button", onclick}, "Save").
 * Attributes starting with "on" become listeners; `dataset`/`style` objects are merged; children may be
 * strings, nodes, arrays, null or false.
 */
export function h(tag, attrs, ...children) {
  const match = /^([a-z0-9-]*)((?:[.#][\w-]+)*)$/i.exec(tag) || [tag, tag, ""];
  const node = document.createElement(match[1] || "div");
  for (const part of match[2].match(/[.#][\w-]+/g) || []) {
    if (part[0] === "#") node.id = part.slice(1);
    else node.classList.add(part.slice(1));
  }
  if (attrs !== undefined && attrs !== null && (typeof attrs !== "object" || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null) continue;
    if (value === false) {
      if (key in node && !key.startsWith("on")) node[key] = false;
      continue;
    }
    if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "style" && typeof value === "object") Object.assign(node.style, value);
    else if (key === "class") {
      for (const name of String(value).split(/\s+/).filter(Boolean)) node.classList.add(name);
    }
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the children of `node`. */
export function replaceChildren(node, ...children) {
  node.textContent = "";
  append(node, children);
  return node;
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

export function finite(value, fallback) {
  const number = Number(value);
  return Number.isFinite(number) ? number : fallback;
}

export function clamp(value, low, high) {
  return Math.min(high, Math.max(low, value));
}

export function round(value, digits = 0) {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

export function formatBytes(bytes) {
  const n = finite(bytes, 0);
  if (n < 1024) return `${n} B`;
  const units = ["KB", "MB", "GB", "TB"];
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value < 10 ? value.toFixed(1) : Math.round(value)} ${units[unit]}`;
}

export function formatBitrate(bps) {
  const n = finite(bps, NaN);
  if (!Number.isFinite(n)) return "–";
  if (n >= 1e6) return `${(n / 1e6).toFixed(n >= 1e7 ? 0 : 1)} Mb/s`;
  if (n >= 1e3) return `${Math.round(n / 1e3)} kb/s`;
  return `${Math.round(n)} b/s`;
}

/** "12:04:33" for a date/epoch-ms/ISO string. */
export function formatClock(value) {
  const date = toDate(value);
  return date ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }) : "–";
}

export function toDate(value) {
  if (value === null || value === undefined || value === "") return null;
  const date = typeof value === "number" ? new Date(value) : new Date(String(value));
  return Number.isNaN(date.getTime()) ? null : date;
}

/** "4:59", "1 h 02 min", "expired" for the time left until `value`. */
export function formatRemaining(value, now = Date.now()) {
  const date = toDate(value);
  if (!date) return "–";
  let seconds = Math.round((date.getTime() - now) / 1000);
  if (seconds <= 0) return "expired";
  const hours = Math.floor(seconds / 3600);
  seconds -= hours * 3600;
  const minutes = Math.floor(seconds / 60);
  seconds -= minutes * 60;
  if (hours > 0) return `${hours} h ${String(minutes).padStart(2, "0")} min`;
  return `${minutes}:${String(seconds).padStart(2, "0")}`;
}

/** "just now", "3 min ago", or the clock time. */
export function formatAgo(value, now = Date.now()) {
  const date = toDate(value);
  if (!date) return "–";
  const seconds = Math.round((now - date.getTime()) / 1000);
  if (seconds < 10) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  return formatClock(date);
}

export function formatDuration(seconds) {
  const n = Math.max(0, Math.round(finite(seconds, 0)));
  if (n < 120) return `${n} s`;
  if (n < 7200) return `${Math.round(n / 60)} min`;
  return `${round(n / 3600, 1)} h`;
}

/** Storage that never throws (private mode, disabled storage). */
export function storage(kind = "local") {
  let store = null;
  try {
    store = kind === "session" ? window.sessionStorage : window.localStorage;
  } catch {
    store = null;
  }
  const memory = new Map();
  return {
    get(key) {
      try {
        return store ? store.getItem(key) : memory.get(key) ?? null;
      } catch {
        return memory.get(key) ?? null;
      }
    },
    set(key, value) {
      memory.set(key, value);
      try {
        store?.setItem(key, value);
      } catch {
        /* quota or disabled: memory only */
      }
    },
    remove(key) {
      memory.delete(key);
      try {
        store?.removeItem(key);
      } catch {
        /* ignore */
      }
    },
    getJSON(key, fallback = null) {
      const text = this.get(key);
      if (!text) return fallback;
      try {
        return JSON.parse(text);
      } catch {
        return fallback;
      }
    },
    setJSON(key, value) {
      this.set(key, JSON.stringify(value));
    },
  };
}

/** Copies text; falls back to a hidden textarea where the async clipboard is not allowed (plain http). */
export async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    /* fall through */
  }
  const area = h("textarea", { readonly: true, style: { position: "fixed", left: "-9999px", top: "0" } });
  area.value = text;
  document.body.appendChild(area);
  area.select();
  let ok = false;
  try {
    ok = document.execCommand("copy");
  } catch {
    ok = false;
  }
  area.remove();
  return ok;
}

export function randomId(prefix = "el") {
  const bytes = new Uint8Array(4);
  crypto.getRandomValues(bytes);
  return `${prefix}-${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

export function deepEqual(a, b) {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== "object") return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => deepEqual(a[k], b[k]));
}

export const clone = (value) => (value === undefined ? undefined : JSON.parse(JSON.stringify(value)));

/** True when a keyboard event comes from a place that types text. */
export function isTyping(event) {
  const t = event.target;
  if (!t || !(t instanceof Element)) return false;
  if (t.isContentEditable) return true;
  if (t.tagName === "TEXTAREA" || t.tagName === "SELECT") return true;
  if (t.tagName === "INPUT") {
    return !["button", "checkbox", "radio", "range", "color", "file", "submit", "reset"].includes(t.type);
  }
  return false;
}

/** Calls `fn` every `ms` while `isActive()`; returns a stop function. The first call happens at once. */
export function poll(fn, ms, isActive = () => true) {
  let timer = 0;
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    if (isActive()) {
      try {
        await fn();
      } catch {
        /* the callee reports its own problems */
      }
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Pluralises "1 change", "2 changes". */
export function plural(n, word, many = `${word}s`) {
  return `${n} ${n === 1 ? word : many}`;
}

export function elementLabel(el) {
  if (!el) return "";
  if (el.name) return el.name;
  if (el.type === "text" && el.text) return el.text.replace(/\s+/g, " ").slice(0, 40) || el.id;
  // Plugin element types: the type and the first short text property (a camera's room, a counter's title).
  const props = el.props && typeof el.props === "object" ? el.props : null;
  const named = props ? Object.values(props).find((v) => typeof v === "string" && v && v.length <= 40 && !v.startsWith("#")) : null;
  if (named) return `${el.type} ${named}`;
  if (typeof el.room === "string" && el.room) return `${el.type} ${el.room}`;
  return el.id;
}

/**
 * Keeps `container`'s children in step with `items` without recreating what is already there
 * (a click on a row is never lost to a redraw). Children without `data-key` (placeholders) are removed.
 * @param {HTMLElement} container
 * @param {any[]} items
 * @param {(item) => string} keyOf
 * @param {(item) => HTMLElement} create
 * @param {(node: HTMLElement, item) => void} [update]
 */
export function syncList(container, items, keyOf, create, update = () => {}) {
  const existing = new Map();
  for (const child of [...container.children]) {
    if (child.dataset.key) existing.set(child.dataset.key, child);
    else child.remove();
  }
  items.forEach((item, index) => {
    const key = String(keyOf(item));
    let node = existing.get(key);
    if (node) existing.delete(key);
    else {
      node = create(item);
      node.dataset.key = key;
    }
    update(node, item);
    if (container.children[index] !== node) container.insertBefore(node, container.children[index] || null);
  });
  for (const node of existing.values()) node.remove();
}
