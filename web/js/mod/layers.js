// The layer list: topmost first, select, show/hide, lock/unlock, drag (or Alt+arrows) to restack.

import { icon } from "./icons.js";
import { elementLabel, finite, h } from "../lib/util.js";


/** Elements in drawing order (bottom first), as the overlay stacks them: z, then list order. */
export function stackOrder(elements) {
  return elements
    .map((el, index) => ({ el, index }))
    .sort((a, b) => finite(a.el.z, 0) - finite(b.el.z, 0) || a.index - b.index)
    .map(({ el }) => el);
}

/**
 * Operations that put element `id` at `position` of the bottom-first stacking order `ids`
 * (position counted without the element itself): it takes the z of its new neighbour and is moved
 * right next to it in the list, so the overlay stacks it exactly there.
 */
export function restackOps(elements, id, position) {
  const order = stackOrder(elements).map((el) => el.id).filter((x) => x !== id);
  const target = Math.max(0, Math.min(position, order.length));
  if (stackOrder(elements).findIndex((el) => el.id === id) === target) return []; // already there
  const byId = new Map(elements.map((el) => [el.id, el]));
  const moving = byId.get(id);
  if (!moving) return [];
  const below = target > 0 ? byId.get(order[target - 1]) : null;
  const above = target < order.length ? byId.get(order[target]) : null;
  const ops = [];
  const z = below ? finite(below.z, 0) : above ? finite(above.z, 0) : finite(moving.z, 0);
  if (z !== finite(moving.z, 0)) ops.push({ op: "update", id, fields: { z } });
  const list = elements.map((el) => el.id).filter((x) => x !== id);
  let index;
  if (below && finite(below.z, 0) === z) index = list.indexOf(below.id) + 1;
  else if (above) index = list.indexOf(above.id);
  else index = list.length;
  const current = elements.findIndex((el) => el.id === id);
  if (index !== current || ops.length) ops.push({ op: "move", id, index });
  return ops;
}

export class LayerList {
  constructor(app, root) {
    this.app = app;
    this.root = root;
    this.list = h("ul.layers#layer-list", { "aria-label": "Layers, topmost first" });
    this.empty = h("p.muted.empty-hint", "No elements yet. Add text, an image or a video above, or drop a file on the stage.");
    this.count = h("span.count");
    root.append(this.list, this.empty);
    this.dragId = null;
    this.list.addEventListener("dragover", (e) => this.onDragOver(e));
    this.list.addEventListener("drop", (e) => this.onDrop(e));
    this.list.addEventListener("dragleave", (e) => {
      if (!this.list.contains(e.relatedTarget)) this.clearMarker();
    });
  }

  render() {
    const scene = this.app.sync.local;
    const elements = scene ? scene.elements : [];
    const top = stackOrder(elements).reverse();
    this.empty.hidden = elements.length > 0;
    const selected = this.app.selection.id;
    this.rows = this.rows || new Map();
    const seen = new Set();
    top.forEach((el, index) => {
      seen.add(el.id);
      let row = this.rows.get(el.id);
      if (!row) {
        row = this.createRow(el.id);
        this.rows.set(el.id, row);
      }
      this.updateRow(row, el, selected);
      // Rows are kept (a click is never lost to a redraw); only their order is fixed up.
      if (this.list.children[index] !== row.node) this.list.insertBefore(row.node, this.list.children[index] || null);
    });
    for (const [id, row] of [...this.rows]) {
      if (!seen.has(id)) {
        row.node.remove();
        this.rows.delete(id);
      }
    }
    this.count.textContent = String(elements.length);
  }

  createRow(id) {
    const row = { id, key: "" };
    row.icon = h("span.type-icon", { "aria-hidden": "true" });
    row.name = h("span.layer-name");
    row.select = h("button.layer-main", {
      type: "button",
      dataset: { role: "select" },
      onclick: () => this.app.select(id, { reveal: true }),
      onkeydown: (e) => this.onRowKey(e, id),
    }, row.icon, row.name);
    row.visible = h("button.icon-btn.toggle", {
      type: "button",
      dataset: { role: "visible" },
      onclick: () => {
        const el = this.app.sync.element(id);
        if (el) this.app.setField(id, "visible", el.visible === false);
      },
    });
    row.lock = h("button.icon-btn.toggle", {
      type: "button",
      dataset: { role: "lock" },
      onclick: () => {
        const el = this.app.sync.element(id);
        if (el) this.app.setField(id, "locked", el.locked !== true);
      },
    });
    row.node = h("li.layer", { dataset: { id }, draggable: "true" },
      h("span.grip", { "aria-hidden": "true", title: "Drag to restack" }, icon("grip", 14)), row.select, row.visible, row.lock);
    row.node.addEventListener("dragstart", (e) => {
      this.dragId = id;
      row.node.classList.add("dragging");
      e.dataTransfer.effectAllowed = "move";
      e.dataTransfer.setData("text/x-onionrp-layer", id);
    });
    row.node.addEventListener("dragend", () => {
      this.dragId = null;
      row.node.classList.remove("dragging");
      this.clearMarker();
    });
    return row;
  }

  updateRow(row, el, selected) {
    const label = elementLabel(el);
    const hidden = el.visible === false;
    const locked = el.locked === true;
    const isSelected = selected === el.id;
    row.node.classList.toggle("selected", isSelected);
    row.node.classList.toggle("is-hidden", hidden);
    row.select.setAttribute("aria-pressed", String(isSelected));
    const key = [label, el.type, hidden, locked].join("\u0000");
    if (row.key === key) return;
    row.key = key;
    row.icon.dataset.type = el.type;
    row.icon.replaceChildren(icon(el.type, 14));
    row.name.textContent = label;
    row.select.title = `${label} (${el.type}) — Alt+↑/↓ restacks`;
    row.visible.setAttribute("aria-pressed", String(!hidden));
    row.visible.setAttribute("aria-label", `${hidden ? "Show" : "Hide"} ${label}`);
    row.visible.title = hidden ? "Hidden — click to show (H)" : "Visible — click to hide (H)";
    row.visible.replaceChildren(icon(hidden ? "eyeOff" : "eye"));
    row.lock.setAttribute("aria-pressed", String(locked));
    row.lock.setAttribute("aria-label", `${locked ? "Unlock" : "Lock"} ${label}`);
    row.lock.title = locked ? "Locked — click to unlock (L)" : "Unlocked — click to lock (L)";
    row.lock.replaceChildren(icon(locked ? "lock" : "unlock"));
  }

  /** Row index (in the topmost-first list) where a drop at clientY lands. */
  dropIndex(clientY) {
    const rows = [...this.list.querySelectorAll("li.layer:not(.dragging)")];
    for (let i = 0; i < rows.length; i += 1) {
      const r = rows[i].getBoundingClientRect();
      if (clientY < r.top + r.height / 2) return i;
    }
    return rows.length;
  }

  onDragOver(event) {
    if (!this.dragId) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
    const index = this.dropIndex(event.clientY);
    this.clearMarker();
    const rows = [...this.list.querySelectorAll("li.layer:not(.dragging)")];
    if (rows[index]) rows[index].classList.add("drop-before");
    else if (rows.length) rows[rows.length - 1].classList.add("drop-after");
  }

  clearMarker() {
    for (const row of this.list.querySelectorAll(".drop-before, .drop-after")) row.classList.remove("drop-before", "drop-after");
  }

  onDrop(event) {
    if (!this.dragId) return;
    event.preventDefault();
    const id = this.dragId;
    const index = this.dropIndex(event.clientY);
    this.clearMarker();
    this.dragId = null;
    const others = this.app.sync.local.elements.length - 1;
    // Topmost-first index -> bottom-first position among the others.
    this.app.restack(id, others - index);
  }

  onRowKey(event, id) {
    const rows = [...this.list.querySelectorAll("li.layer")];
    const at = rows.findIndex((r) => r.dataset.id === id);
    if (event.altKey && (event.key === "ArrowUp" || event.key === "ArrowDown")) {
      event.preventDefault();
      event.stopPropagation();
      this.app.restackBy(id, event.key === "ArrowUp" ? 1 : -1);
      return;
    }
    if (event.key === "ArrowUp" || event.key === "ArrowDown") {
      event.preventDefault();
      event.stopPropagation();
      const next = rows[at + (event.key === "ArrowUp" ? -1 : 1)];
      if (next) {
        this.app.select(next.dataset.id);
        next.querySelector('[data-role="select"]').focus();
      }
    }
  }
}
