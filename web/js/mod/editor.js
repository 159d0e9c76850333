// The stage: draws the edited scene the way /overlay does (same geometry, stacking, opacity, text
// styles), scaled to fit, and lets the moderator move, resize and nudge elements with snapping.

import { icon } from "./icons.js";
import { clamp, finite, h, round } from "../lib/util.js";
import { createTextNode, updateText } from "../text-style.js";

const SNAP_PX = 7; // screen pixels
const DRAG_THRESHOLD_PX = 3;
const HANDLES = ["nw", "n", "ne", "e", "se", "s", "sw", "w"];

export class StageEditor {
  /**
   * @param {object} app  {sync, selection, resolveMedia(el) -> {url, missing}}
   * @param {HTMLElement} wrap  the container the stage fits into
   */
  constructor(app, wrap) {
    this.app = app;
    this.sync = app.sync;
    this.wrap = wrap;
    this.records = new Map();
    this.scale = 1;
    this.width = 1920;
    this.height = 1080;
    this.gesture = null;
    this.gestureSeq = 0;
    this.snapping = true;

    this.stage = h("div.ed-stage", { "aria-hidden": "true" });
    this.guides = h("div.ed-guides", { "aria-hidden": "true" });
    this.selBox = h("div.ed-sel", { hidden: true, "aria-hidden": "true" },
      h("div.ed-sel-label"),
      HANDLES.map((name) => h("div.ed-handle", { dataset: { handle: name } })));
    this.frame = h("div.stage-frame#stage-frame", {
      tabindex: "0",
      role: "application",
      "aria-label": "Scene stage. Click an element to select it, drag to move, arrow keys nudge (Shift: 10 px).",
      "aria-describedby": "stage-status",
    }, this.stage, this.guides, this.selBox);
    this.status = h("div.sr-only#stage-status", { "aria-live": "polite" });
    wrap.append(this.frame, this.status);

    this.frame.addEventListener("pointerdown", (e) => this.onPointerDown(e));
    this.frame.addEventListener("pointermove", (e) => this.onPointerMove(e));
    this.frame.addEventListener("pointerup", (e) => this.onPointerUp(e, false));
    this.frame.addEventListener("pointercancel", (e) => this.onPointerUp(e, true));
    this.frame.addEventListener("lostpointercapture", (e) => {
      if (this.gesture && this.gesture.pointerId === e.pointerId) this.onPointerUp(e, false);
    });
    this.frame.addEventListener("dragstart", (e) => e.preventDefault());
    // Double-click a text to edit it in the inspector.
    this.frame.addEventListener("dblclick", (e) => {
      const node = e.target.closest(".ed-el") || (e.target.closest(".ed-sel") && this.records.get(this.app.selection.id)?.node);
      if (node && node.dataset.type === "text") this.app.editText(node.dataset.id);
    });
    new ResizeObserver(() => this.fit()).observe(wrap);
    this.sync.addEventListener("reset", () => this.cancelGesture(false));
  }

  // ------------------------------------------------------------------------------------------
  // Layout

  fit() {
    const rect = this.wrap.getBoundingClientRect();
    const pad = rect.width < 500 ? 6 : 16;
    const w = Math.max(50, rect.width - pad * 2);
    const hgt = Math.max(50, rect.height - pad * 2);
    const scale = Math.min(w / this.width, hgt / this.height);
    this.scale = Number.isFinite(scale) && scale > 0 ? scale : 0.5;
    const fw = this.width * this.scale;
    const fh = this.height * this.scale;
    Object.assign(this.frame.style, {
      width: `${fw}px`,
      height: `${fh}px`,
      left: `${(rect.width - fw) / 2}px`,
      top: `${(rect.height - fh) / 2}px`,
    });
    Object.assign(this.stage.style, { width: `${this.width}px`, height: `${this.height}px`, transform: `scale(${this.scale})` });
    this.stage.style.setProperty("--inv", String(1 / this.scale));
    this.drawSelection();
  }

  /** Stage coordinates of a pointer event. */
  toStage(event) {
    const rect = this.frame.getBoundingClientRect();
    return { x: (event.clientX - rect.left) / this.scale, y: (event.clientY - rect.top) / this.scale };
  }

  // ------------------------------------------------------------------------------------------
  // Drawing

  /** The element as shown: the scene's, with the geometry of a gesture in progress on top. */
  shown(el) {
    const g = this.gesture;
    if (g && g.active && g.id === el.id && g.current) return { ...el, ...g.current };
    return el;
  }

  render() {
    const scene = this.sync.local;
    if (!scene) return;
    const width = Math.round(finite(scene.width, 1920));
    const height = Math.round(finite(scene.height, 1080));
    if (width !== this.width || height !== this.height) {
      this.width = width;
      this.height = height;
      this.fit();
    }
    const ordered = scene.elements
      .map((el, index) => ({ el, index }))
      .sort((a, b) => finite(a.el.z, 0) - finite(b.el.z, 0) || a.index - b.index);
    const seen = new Set();
    ordered.forEach(({ el }, rank) => {
      seen.add(el.id);
      let rec = this.records.get(el.id);
      // A plugin's preview registered (or removed) since the element was drawn: drawn again with it.
      if (rec && (rec.type !== el.type || (rec.preview || null) !== this.previewOf(el.type))) {
        this.destroy(rec);
        rec = null;
      }
      if (!rec) {
        rec = this.create(el);
        this.records.set(el.id, rec);
      }
      this.update(rec, this.shown(el), rank + 1);
    });
    for (const rec of [...this.records.values()]) if (!seen.has(rec.id)) this.destroy(rec);
    // A gesture on an element that disappeared (removed by someone else) ends.
    if (this.gesture && !seen.has(this.gesture.id)) this.cancelGesture(false);
    this.drawSelection();
  }

  create(el) {
    let node;
    const rec = { id: el.id, type: el.type, url: null, text: null, styles: {} };
    switch (el.type) {
      case "image":
        node = h("img", { alt: "", draggable: false, decoding: "async" });
        break;
      case "video":
        // Always muted here: the editor shows the picture; the sound is the overlay's.
        node = h("video", { muted: true, playsInline: true, preload: "auto", disablePictureInPicture: true });
        node.muted = true;
        break;
      case "audio":
        node = h("div.ed-audio", icon("audio", 28), h("span.ed-audio-name"));
        break;
      case "text":
        node = createTextNode();
        break;
      default: {
        // Plugin element types: the plugin's stage preview (addStagePreview), else a labelled box.
        const preview = this.previewOf(el.type);
        if (preview) {
          try {
            const made = preview.create(el) || {};
            node = made.node instanceof HTMLElement ? made.node : h("div.ed-unknown");
            Object.assign(rec, made, { id: el.id, type: el.type, styles: {} });
            rec.preview = preview;
          } catch (err) {
            console.warn(`[editor] preview of '${el.type}'`, err);
            node = null;
          }
        }
        if (!node) {
          const declared = this.app.ext ? this.app.ext.declared.get(el.type) : null;
          node = h("div.ed-unknown", h("span", declared ? declared.label : el.type));
        }
      }
    }
    node.classList.add("ov-el", "ed-el");
    node.dataset.id = el.id;
    node.dataset.type = el.type;
    rec.node = node;
    this.stage.appendChild(node);
    return rec;
  }

  /** The stage preview a plugin registered for a type, or null. */
  previewOf(type) {
    return (this.app.ext && this.app.ext.previews.get(type)) || null;
  }

  destroy(rec) {
    this.records.delete(rec.id);
    if (rec.preview && typeof rec.preview.destroy === "function") {
      try {
        rec.preview.destroy(rec);
      } catch (err) {
        console.warn(`[editor] preview of '${rec.type}'`, err);
      }
    }
    if (rec.node instanceof HTMLMediaElement) {
      try {
        rec.node.pause();
        rec.node.removeAttribute("src");
        rec.node.load();
      } catch {
        /* gone */
      }
    }
    rec.node.remove();
  }

  setStyle(rec, key, value) {
    if (rec.styles[key] === value) return;
    rec.styles[key] = value;
    rec.node.style[key] = value;
  }

  update(rec, el, rank) {
    const node = rec.node;
    if (el.type === "image" || el.type === "video") {
      const { url, missing } = this.app.resolveMedia(el);
      node.classList.toggle("ed-missing", missing || !url);
      if (url !== rec.url) {
        rec.url = url;
        if (url) node.src = url;
        else node.removeAttribute("src");
      }
      this.setStyle(rec, "objectFit", ["contain", "cover", "fill"].includes(el.fit) ? el.fit : "contain");
      if (el.type === "video" && url) {
        if (node.loop !== (el.loop === true)) node.loop = el.loop === true;
        const playing = el.playing !== false;
        if (playing && node.paused) node.play().catch(() => {});
        if (!playing && !node.paused) node.pause();
      }
    } else if (el.type === "audio") {
      const label = el.name || el.media || el.src || "audio";
      if (rec.text !== label) {
        rec.text = label;
        node.querySelector(".ed-audio-name").textContent = label;
      }
    } else if (rec.preview && typeof rec.preview.update === "function") {
      try {
        rec.preview.update(rec, el);
      } catch (err) {
        console.warn(`[editor] preview of '${el.type}'`, err);
      }
    }
    this.setStyle(rec, "left", `${finite(el.x, 0)}px`);
    this.setStyle(rec, "top", `${finite(el.y, 0)}px`);
    this.setStyle(rec, "width", `${Math.max(0, finite(el.width, 320))}px`);
    this.setStyle(rec, "height", `${Math.max(0, finite(el.height, 180))}px`);
    const rotation = finite(el.rotation, 0);
    this.setStyle(rec, "transform", rotation ? `rotate(${rotation}deg)` : "");
    this.setStyle(rec, "opacity", String(clamp(finite(el.opacity, 1), 0, 1)));
    this.setStyle(rec, "zIndex", String(rank));
    this.setStyle(rec, "visibility", el.visible === false ? "hidden" : "visible");
    // Text after its box, so auto-fit measures the new size (drawn like the overlay: text-style.js).
    if (el.type === "text") updateText(rec, el, (r, key, value) => this.setStyle(r, key, value));
    node.classList.toggle("ed-locked", el.locked === true);
    node.classList.toggle("ed-selected", this.app.selection.id === el.id);
  }

  /** The selection frame and handles, in screen pixels (constant size whatever the scale). */
  drawSelection() {
    const id = this.app.selection.id;
    const raw = id ? this.sync.element(id) : null;
    for (const rec of this.records.values()) rec.node.classList.toggle("ed-selected", rec.id === id);
    if (!raw) {
      this.selBox.hidden = true;
      return;
    }
    const el = this.shown(raw);
    const s = this.scale;
    this.selBox.hidden = false;
    Object.assign(this.selBox.style, {
      left: `${finite(el.x, 0) * s}px`,
      top: `${finite(el.y, 0) * s}px`,
      width: `${Math.max(0, finite(el.width, 0)) * s}px`,
      height: `${Math.max(0, finite(el.height, 0)) * s}px`,
      transform: finite(el.rotation, 0) ? `rotate(${finite(el.rotation, 0)}deg)` : "",
    });
    this.selBox.classList.toggle("locked", el.locked === true);
    this.selBox.classList.toggle("hidden-el", el.visible === false);
    const label = this.selBox.querySelector(".ed-sel-label");
    const g = this.gesture;
    if (g && g.active) {
      label.textContent = g.kind === "move" ? `${Math.round(el.x)}, ${Math.round(el.y)}` : `${Math.round(el.width)} × ${Math.round(el.height)}`;
    } else {
      label.textContent = `${el.locked ? "locked · " : ""}${el.visible === false ? "hidden · " : ""}${Math.round(el.width)} × ${Math.round(el.height)}`;
    }
  }

  // ------------------------------------------------------------------------------------------
  // Pointer gestures

  onPointerDown(event) {
    if (this.gesture && event.pointerId !== this.gesture.pointerId) {
      this.beginPinch(event);
      return;
    }
    if (event.button !== 0) return;
    this.frame.focus({ preventScroll: true });
    const handle = event.target.closest(".ed-handle");
    const selectedId = this.app.selection.id;
    if (handle && selectedId) {
      const el = this.sync.element(selectedId);
      if (el && !el.locked) this.begin(event, "resize", el, handle.dataset.handle);
      event.preventDefault();
      return;
    }
    let id = null;
    if (event.target.closest(".ed-sel") && selectedId) id = selectedId;
    else {
      const node = event.target.closest(".ed-el");
      id = node ? node.dataset.id : null;
    }
    if (!id) {
      this.app.select(null);
      return;
    }
    if (id !== selectedId) this.app.select(id, { reveal: true });
    const el = this.sync.element(id);
    if (el && !el.locked) this.begin(event, "move", el);
    else if (el && el.locked) this.announce(`${el.name || el.id} is locked`);
    event.preventDefault();
  }

  begin(event, kind, el, handle = null) {
    this.gesture = {
      kind,
      id: el.id,
      handle,
      pointerId: event.pointerId,
      startX: event.clientX,
      startY: event.clientY,
      lastX: event.clientX,
      lastY: event.clientY,
      box: { x: finite(el.x, 0), y: finite(el.y, 0), width: finite(el.width, 0), height: finite(el.height, 0) },
      rotation: finite(el.rotation, 0),
      active: false,
      current: null,
      group: `${kind}:${el.id}:${++this.gestureSeq}`,
      targets: this.snapTargets(el.id),
    };
    try {
      this.frame.setPointerCapture(event.pointerId);
    } catch {
      /* synthetic pointer */
    }
  }

  snapTargets(exceptId) {
    const xs = [0, this.width / 2, this.width];
    const ys = [0, this.height / 2, this.height];
    for (const el of this.sync.local ? this.sync.local.elements : []) {
      if (el.id === exceptId || el.visible === false || finite(el.rotation, 0) !== 0) continue;
      const x = finite(el.x, 0);
      const y = finite(el.y, 0);
      const w = finite(el.width, 0);
      const hh = finite(el.height, 0);
      xs.push(x, x + w / 2, x + w);
      ys.push(y, y + hh / 2, y + hh);
    }
    return { xs, ys };
  }

  /** Best snap of any of `points` onto `targets` within the threshold: {delta, target} or null. */
  snap(points, targets) {
    const limit = SNAP_PX / this.scale;
    let best = null;
    for (const p of points) {
      for (const t of targets) {
        const d = t - p;
        if (Math.abs(d) <= limit && (!best || Math.abs(d) < Math.abs(best.delta))) best = { delta: d, target: t };
      }
    }
    return best;
  }

  /**
   * A second finger on the stage while one drags the selected element turns the drag into a pinch:
   * the element scales about its centre with the distance between the fingers (one gesture, one
   * history entry).
   */
  beginPinch(event) {
    const g = this.gesture;
    if (!g || g.kind !== "move" || event.pointerType !== "touch" || g.pinch) return false;
    const el = this.sync.element(g.id);
    if (!el || el.locked) return false;
    const shown = { ...el, ...(g.current || {}) };
    g.pinch = {
      pointerId: event.pointerId,
      x: event.clientX,
      y: event.clientY,
      distance: Math.max(10, Math.hypot(event.clientX - g.lastX, event.clientY - g.lastY)),
      box: { x: finite(shown.x, 0), y: finite(shown.y, 0), width: finite(shown.width, 1), height: finite(shown.height, 1) },
    };
    if (!g.active) {
      g.active = true;
      this.sync.hold(g.id);
      this.frame.classList.add("dragging");
    }
    try {
      this.frame.setPointerCapture(event.pointerId);
    } catch {
      /* synthetic pointer */
    }
    event.preventDefault();
    return true;
  }

  pinchMove(event) {
    const g = this.gesture;
    const p = g.pinch;
    if (event.pointerId === p.pointerId) {
      p.x = event.clientX;
      p.y = event.clientY;
    } else {
      g.lastX = event.clientX;
      g.lastY = event.clientY;
    }
    const factor = Math.max(0.05, Math.min(20, Math.hypot(p.x - g.lastX, p.y - g.lastY) / p.distance));
    const width = Math.max(1, Math.round(p.box.width * factor));
    const height = Math.max(1, Math.round(p.box.height * factor));
    const next = {
      x: Math.round(p.box.x + (p.box.width - width) / 2),
      y: Math.round(p.box.y + (p.box.height - height) / 2),
      width,
      height,
    };
    g.current = next;
    this.sync.update(g.id, next, { group: g.group });
  }

  onPointerMove(event) {
    const g = this.gesture;
    if (g && g.pinch && (event.pointerId === g.pinch.pointerId || event.pointerId === g.pointerId)) {
      this.pinchMove(event);
      return;
    }
    if (!g || event.pointerId !== g.pointerId) return;
    g.lastX = event.clientX;
    g.lastY = event.clientY;
    const sdx = event.clientX - g.startX;
    const sdy = event.clientY - g.startY;
    if (!g.active) {
      if (Math.hypot(sdx, sdy) < DRAG_THRESHOLD_PX) return;
      g.active = true;
      this.sync.hold(g.id);
      this.frame.classList.add("dragging");
    }
    const dx = sdx / this.scale;
    const dy = sdy / this.scale;
    const snapping = this.snapping && !event.altKey;
    const guides = [];
    let next;
    if (g.kind === "move") {
      let x = g.box.x + dx;
      let y = g.box.y + dy;
      if (event.shiftKey) {
        if (Math.abs(dx) > Math.abs(dy)) y = g.box.y;
        else x = g.box.x;
      }
      if (snapping && g.rotation === 0) {
        const sx = this.snap([x, x + g.box.width / 2, x + g.box.width], g.targets.xs);
        const sy = this.snap([y, y + g.box.height / 2, y + g.box.height], g.targets.ys);
        if (sx) {
          x += sx.delta;
          guides.push({ axis: "x", at: sx.target });
        }
        if (sy) {
          y += sy.delta;
          guides.push({ axis: "y", at: sy.target });
        }
      }
      next = { x: Math.round(x), y: Math.round(y) };
    } else {
      next = this.resized(g, dx, dy, event.shiftKey, snapping, guides);
    }
    g.current = next;
    this.drawGuides(guides);
    this.sync.update(g.id, next, { group: g.group });
  }

  resized(g, dx, dy, keepRatio, snapping, guides) {
    const { x, y, width: w, height: hh } = g.box;
    const rad = (g.rotation * Math.PI) / 180;
    const cos = Math.cos(rad);
    const sin = Math.sin(rad);
    // Pointer delta in the element's own (unrotated) frame.
    const lx = dx * cos + dy * sin;
    const ly = -dx * sin + dy * cos;
    let left = -w / 2;
    let right = w / 2;
    let top = -hh / 2;
    let bottom = hh / 2;
    const hd = g.handle;
    if (hd.includes("e")) right += lx;
    if (hd.includes("w")) left += lx;
    if (hd.includes("s")) bottom += ly;
    if (hd.includes("n")) top += ly;
    const cx = x + w / 2;
    const cy = y + hh / 2;
    if (snapping && g.rotation === 0) {
      const snapEdge = (value, targets, axis) => {
        const s = this.snap([value], targets);
        if (!s) return value;
        guides.push({ axis, at: s.target });
        return value + s.delta;
      };
      if (hd.includes("e")) right = snapEdge(cx + right, g.targets.xs, "x") - cx;
      if (hd.includes("w")) left = snapEdge(cx + left, g.targets.xs, "x") - cx;
      if (hd.includes("s")) bottom = snapEdge(cy + bottom, g.targets.ys, "y") - cy;
      if (hd.includes("n")) top = snapEdge(cy + top, g.targets.ys, "y") - cy;
    }
    const min = 4;
    if (right - left < min) {
      if (hd.includes("w")) left = right - min;
      else right = left + min;
    }
    if (bottom - top < min) {
      if (hd.includes("n")) top = bottom - min;
      else bottom = top + min;
    }
    if (keepRatio && w > 0 && hh > 0) {
      const ratio = w / hh;
      let nw = right - left;
      let nh = bottom - top;
      const horizontal = hd.includes("e") || hd.includes("w");
      const vertical = hd.includes("n") || hd.includes("s");
      if (horizontal && vertical) {
        const factor = Math.abs(nw / w - 1) >= Math.abs(nh / hh - 1) ? nw / w : nh / hh;
        nw = w * factor;
        nh = hh * factor;
        if (hd.includes("w")) left = right - nw;
        else right = left + nw;
        if (hd.includes("n")) top = bottom - nh;
        else bottom = top + nh;
      } else if (horizontal) {
        nh = nw / ratio;
        top = -nh / 2;
        bottom = nh / 2;
      } else {
        nw = nh * ratio;
        left = -nw / 2;
        right = nw / 2;
      }
      guides.length = 0;
    }
    const nw = right - left;
    const nh = bottom - top;
    const mx = (left + right) / 2;
    const my = (top + bottom) / 2;
    const wx = cx + mx * cos - my * sin;
    const wy = cy + mx * sin + my * cos;
    return { x: Math.round(wx - nw / 2), y: Math.round(wy - nh / 2), width: Math.max(1, Math.round(nw)), height: Math.max(1, Math.round(nh)) };
  }

  onPointerUp(event, cancelled) {
    const g = this.gesture;
    if (!g || (event.pointerId !== g.pointerId && !(g.pinch && event.pointerId === g.pinch.pointerId))) return;
    if (g.pinch) {
      try {
        if (this.frame.hasPointerCapture(g.pinch.pointerId)) this.frame.releasePointerCapture(g.pinch.pointerId);
      } catch {
        /* released */
      }
    }
    this.gesture = null;
    try {
      if (this.frame.hasPointerCapture(event.pointerId)) this.frame.releasePointerCapture(event.pointerId);
    } catch {
      /* released */
    }
    this.frame.classList.remove("dragging");
    this.drawGuides([]);
    if (!g.active) return;
    const final = cancelled ? { x: g.box.x, y: g.box.y, width: g.box.width, height: g.box.height } : g.current;
    // The final save of the gesture: sent even when the last move already went, so the release is confirmed.
    if (final) this.sync.finalUpdate(g.id, final, { group: g.group });
    this.sync.release(g.id);
    this.sync.flushSoon();
    this.drawSelection();
    if (final) this.announce(g.kind === "move" && !g.pinch ? `Moved to ${final.x}, ${final.y}` : `Resized to ${final.width} × ${final.height}`);
  }

  /** Ends a gesture without saving more (a conflict replaced the scene, or the element vanished). */
  cancelGesture() {
    const g = this.gesture;
    if (!g) return;
    this.gesture = null;
    this.sync.release(g.id);
    this.frame.classList.remove("dragging");
    this.drawGuides([]);
    try {
      if (this.frame.hasPointerCapture(g.pointerId)) this.frame.releasePointerCapture(g.pointerId);
    } catch {
      /* released */
    }
  }

  /** Escape during a drag puts the element back. */
  abortGesture() {
    const g = this.gesture;
    if (!g || !g.active) return false;
    this.onPointerUp({ pointerId: g.pointerId }, true);
    return true;
  }

  drawGuides(guides) {
    this.guides.textContent = "";
    for (const g of guides) {
      const line = h("div.ed-guide", { class: g.axis === "x" ? "v" : "h" });
      if (g.axis === "x") line.style.left = `${round(g.at * this.scale, 1)}px`;
      else line.style.top = `${round(g.at * this.scale, 1)}px`;
      this.guides.appendChild(line);
    }
  }

  announce(text) {
    this.status.textContent = text;
  }

  // ------------------------------------------------------------------------------------------
  // Keyboard

  /** Moves the selected element by (dx, dy) stage pixels. */
  nudge(dx, dy) {
    const id = this.app.selection.id;
    const el = id ? this.sync.element(id) : null;
    if (!el) return false;
    if (el.locked) {
      this.announce(`${el.name || el.id} is locked`);
      return true;
    }
    const x = Math.round(finite(el.x, 0) + dx);
    const y = Math.round(finite(el.y, 0) + dy);
    this.sync.update(id, { x, y }, { group: `nudge:${id}` });
    this.announce(`${x}, ${y}`);
    return true;
  }

  /** Centre of the visible stage, for new elements. */
  center() {
    return { x: this.width / 2, y: this.height / 2 };
  }
}
