// Scene switcher: which scene is edited, which one is live (activate), create, delete, and the
// version history with restore.

import { describeError } from "../lib/api.js";
import { confirmDialog, notify, promptDialog } from "../lib/notices.js";
import { icon } from "./icons.js";
import { formatAgo, h } from "../lib/util.js";

export class SceneSwitcher {
  constructor(app, root) {
    this.app = app;
    this.root = root;
    this.scenes = [];
    this.active = "";
    this.select = h("select#scene-select", { "aria-label": "Scene being edited" });
    this.select.addEventListener("change", () => this.app.switchScene(this.select.value));
    this.liveBtn = h("button.btn.small#scene-activate", { type: "button", onclick: () => this.activate() }, "Go live");
    this.newBtn = h("button.btn.small#scene-new", { type: "button", title: "New scene", onclick: () => this.create() }, "New");
    this.historyBtn = h("button.btn.small#scene-history", { type: "button", title: "Version history", onclick: () => this.history() }, "History");
    this.deleteBtn = h("button.icon-btn#scene-delete", { type: "button", title: "Delete this scene", "aria-label": "Delete this scene", onclick: () => this.remove() }, icon("trash"));
    this.liveBadge = h("span.live-badge#live-badge", { title: "The scene the overlays show" });
    root.append(h("label.sr-only", { for: "scene-select" }, "Scene"), this.select, this.liveBadge, this.liveBtn, this.newBtn, this.historyBtn, this.deleteBtn);
  }

  async refresh() {
    try {
      const answer = await this.app.api.get("/api/scenes");
      this.scenes = Array.isArray(answer.scenes) ? answer.scenes : [];
      this.active = answer.active || this.active;
      this.render();
    } catch (err) {
      notify(`Could not list scenes: ${describeError(err)}`, { kind: "error", key: "scenes" });
    }
    return this.active;
  }

  setActive(name) {
    if (!name || name === this.active) return;
    this.active = name;
    if (!this.scenes.some((s) => s.name === name)) this.refresh();
    else this.render();
  }

  known(name) {
    return this.scenes.some((s) => s.name === name);
  }

  render() {
    const editing = this.app.sync.name;
    this.select.textContent = "";
    const names = this.scenes.map((s) => s.name);
    if (editing && !names.includes(editing)) names.push(editing);
    for (const name of names.sort()) {
      this.select.append(h("option", { value: name }, name === this.active ? `${name} (live)` : name));
    }
    this.select.value = editing;
    const live = editing && editing === this.active;
    this.liveBtn.hidden = !!live;
    this.liveBtn.classList.add("primary");
    this.liveBtn.title = `Show “${editing}” on the overlays`;
    // The live scene cannot be deleted: no icon for it at all.
    this.deleteBtn.hidden = !!live;
    this.deleteBtn.title = `Delete scene “${editing}”`;
    this.liveBadge.textContent = live ? "Live" : `Live: ${this.active}`;
    this.liveBadge.title = live ? "This scene is on the overlays" : `The overlays show “${this.active}”; you are editing “${editing}”`;
    this.liveBadge.classList.toggle("on", !!live);
  }

  async activate() {
    const name = this.app.sync.name;
    const previous = this.active;
    this.liveBtn.disabled = true;
    try {
      await this.app.sync.idle(4000);
      await this.app.api.post(`/api/scenes/${encodeURIComponent(name)}/activate`);
      this.active = name;
      this.render();
      notify(`“${name}” is live`, {
        kind: "ok",
        timeout: 6000,
        actions: previous && previous !== name ? [{ label: `Back to ${previous}`, run: () => this.activateName(previous) }] : [],
      });
    } catch (err) {
      notify(`Could not go live: ${describeError(err)}`, { kind: "error" });
    } finally {
      this.render();
    }
  }

  async activateName(name) {
    try {
      await this.app.api.post(`/api/scenes/${encodeURIComponent(name)}/activate`);
      this.active = name;
      this.render();
      notify(`“${name}” is live`, { kind: "ok" });
    } catch (err) {
      notify(`Could not switch: ${describeError(err)}`, { kind: "error" });
    }
  }

  async create() {
    const copy = h("input#new-scene-copy", { type: "checkbox" });
    const name = await promptDialog({
      title: "New scene",
      label: "Name",
      placeholder: "brb",
      confirmLabel: "Create",
      hint: "Letters, digits, '-', '_' or '.', up to 40.",
      extra: h("label.check", { for: "new-scene-copy" }, copy, h("span", `Start from a copy of “${this.app.sync.name}”`)),
      validate: (v) => {
        if (!/^[A-Za-z0-9._-]{1,40}$/.test(v)) return "Use letters, digits, '-', '_' or '.' (1-40)";
        if (this.known(v)) return `“${v}” already exists`;
        return "";
      },
    });
    if (!name) return;
    const base = this.app.sync.local;
    const body = { base_version: 0, elements: copy.checked && base ? base.elements : [], width: base ? base.width : 1920, height: base ? base.height : 1080 };
    try {
      await this.app.api.put(`/api/scenes/${encodeURIComponent(name)}`, { json: body });
      await this.refresh();
      await this.app.switchScene(name);
      notify(`Scene “${name}” created — not live until you press Go live`, { kind: "ok", timeout: 5000 });
    } catch (err) {
      notify(`Could not create “${name}”: ${describeError(err)}`, { kind: "error" });
    }
  }

  async remove() {
    const name = this.app.sync.name;
    if (name === this.active) return;
    const ok = await confirmDialog({ title: `Delete scene “${name}”?`, message: "Its elements and history are removed. This cannot be undone.", confirmLabel: "Delete scene", danger: true });
    if (!ok) return;
    try {
      await this.app.api.del(`/api/scenes/${encodeURIComponent(name)}`);
      await this.refresh();
      await this.app.switchScene(this.active);
      notify(`Deleted “${name}”`, { kind: "ok" });
    } catch (err) {
      notify(`Could not delete: ${describeError(err)}`, { kind: "error" });
    }
  }

  async history() {
    const name = this.app.sync.name;
    let answer;
    try {
      answer = await this.app.api.get("/api/scene/history", { query: { scene: name } });
    } catch (err) {
      notify(`No history: ${describeError(err)}`, { kind: "error" });
      return;
    }
    const versions = Array.isArray(answer.versions) ? answer.versions : [];
    const current = this.app.sync.version;
    const mine = (v) => !!v.by && v.by === this.app.me?.byTag;
    // The engine writes the row ("Alice moved 'Logo'"), the same for everyone; ours say "You".
    const row = (v) => {
      const summary = typeof v.summary === "string" && v.summary ? v.summary : `${v.by || "someone"} ${v.action}`;
      if (mine(v) && typeof v.by_name === "string" && summary.startsWith(v.by_name)) return `You${summary.slice(v.by_name.length)}`;
      return summary;
    };
    const retention = answer.retention || {};
    const days = Number(retention.max_age_seconds) / 86400;
    const age = !Number.isFinite(days) ? "" : days >= 1 ? ` from the last ${Math.round(days)} day${Math.round(days) === 1 ? "" : "s"}` : ` from the last ${Math.max(1, Math.round(days * 24))} h`;
    const rule = retention.max_versions
      ? `The engine keeps the latest ${retention.max_versions} changes${age}; a drag, a burst of nudges or typing in one field counts once. Older versions are deleted and cannot be restored.`
      : "Only the versions listed here can be restored.";
    const dialog = h("dialog.dialog.wide", { "aria-labelledby": "dialog-title" },
      h("form", { method: "dialog" },
        h("h2#dialog-title", `History of “${name}”`),
        h("p.small.muted#history-retention", `${rule} Restoring adds a new version with the old content; the versions after it stay listed.`),
        h("div.table-scroll.history-scroll",
          h("table.history",
            h("thead", h("tr", ["Change", "When", "Version", ""].map((t) => h("th", { scope: "col" }, t)))),
            h("tbody", versions.map((v) => h("tr", { class: v.version === current ? "current" : "", dataset: { version: String(v.version) }, title: `v${v.version} · ${v.elements} element${v.elements === 1 ? "" : "s"}` },
              h("td.history-what", h("span.history-summary", row(v)),
                v.saves > 1 ? h("span.small.muted", ` · ${v.saves} saves`) : null),
              h("td", { title: new Date(v.at).toLocaleString() }, formatAgo(v.at)),
              h("td", { title: `${v.elements} element${v.elements === 1 ? "" : "s"}` }, `v${v.version}`),
              h("td", v.version === current ? h("span.small.muted", "current")
                : h("button.btn.small", { type: "button", onclick: () => { dialog.close(); this.app.restoreVersion(v.version); } }, "Restore"))))))),
        h("div.dialog-actions", h("button.btn", { type: "submit", value: "close" }, "Close"))));
    dialog.addEventListener("close", () => dialog.remove());
    document.body.appendChild(dialog);
    dialog.showModal();
  }
}
