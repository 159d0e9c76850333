// The media plugin's panel module: the Media tab of the moderator panel. Upload (button or drag-and-drop, on
// the tab or on the stage, a progress bar per file), thumbnails, type and size, delete (with the engine's
// in-use warning), and add to the scene in one click. Live: files uploaded or deleted by other moderators
// appear and disappear (socket `media.added` / `media.removed`). It is also the panel's media source: "Add
// image/video" picks from the library, and the editor knows which media ids exist.
//
// image/video/audio elements stay core element types (drawn by the overlay and the editor without this module).

import { describeError } from "/js/lib/api.js";
import { confirmDialog, notify } from "/js/lib/notices.js";
import { icon } from "/js/mod/icons.js";
import { formatAgo, formatBytes, h, syncList } from "/js/lib/util.js";

/**
 * Adds the Media tab, the library as the panel's media source and uploads by dropping files on the stage.
 * @param {object} api  the panel's plugin api
 */
export default function setup(api) {
  if (!api.hasRoute("GET", "/api/media") || !api.hasRoute("POST", "/api/media")) return;
  api.addTab({
    id: "media",
    label: "Media",
    side: "left",
    render(container) {
      const library = new MediaLibrary(api, container);
      library.init();
      api.addMediaSource({ pick: (kind) => library.pick(kind), known: (id) => library.known(id) });
      library.bindDrop(api.stage.element, (item, event) => api.scene.addMedia(item, api.stage.toScene(event.clientX, event.clientY)));
      api.onReconnect(() => library.load());
    },
  });
}


export class MediaLibrary {
  constructor(api, root) {
    this.api = api;
    this.root = root;
    this.items = new Map(); // id -> media, newest first by created_at
    this.available = false;
    this.loaded = false;
    this.totalBytes = null;
    this.quotaBytes = null;
    this.uploads = new Set();
  }

  init() {
    this.root.textContent = "";
    this.available = true;
    this.fileInput = h("input.sr-only#media-file", { type: "file", multiple: true, accept: "image/*,video/*,audio/*", tabindex: "-1" });
    this.fileInput.addEventListener("change", () => {
      this.uploadFiles([...this.fileInput.files]);
      this.fileInput.value = "";
    });
    this.uploadList = h("ul.uploads#upload-list", { "aria-label": "Uploads", "aria-live": "polite" });
    this.grid = h("ul.media-grid#media-grid", { "aria-label": "Media library" });
    this.quota = h("div.quota#media-quota");
    this.filter = h("select#media-filter", { "aria-label": "Show" },
      h("option", { value: "" }, "All"), h("option", { value: "image" }, "Images"), h("option", { value: "video" }, "Videos"),
      h("option", { value: "audio" }, "Audio"));
    this.filter.addEventListener("change", () => this.render());
    this.drop = h("div.dropzone#media-drop",
      h("button.btn.primary#media-upload", { type: "button", onclick: () => this.fileInput.click() }, "Upload files…"),
      h("span.muted.small", "or drop images, videos, audio here"));
    this.root.append(this.drop, this.fileInput, this.uploadList, h("div.row.between", this.quota, this.filter), this.grid);
    this.bindDrop(this.root, null);
    this.api.on("media.added", (m) => {
      if (m.media && m.media.id) {
        this.add(m.media);
        this.render();
      }
    });
    this.api.on("media.removed", (m) => {
      if (m.id && this.items.delete(m.id)) {
        this.render();
        this.api.scene.redraw();
      }
    });
    this.load();
  }

  async load() {
    try {
      const answer = await this.api.request("GET", "/api/media");
      this.items.clear();
      for (const item of Array.isArray(answer.media) ? answer.media : []) this.add(item);
      this.totalBytes = answer.total_bytes ?? null;
      this.quotaBytes = answer.quota_bytes ?? null;
      this.loaded = true;
      this.render();
      this.api.scene.redraw();
    } catch (err) {
      this.grid.textContent = "";
      this.grid.append(h("li.muted", `Could not load the library: ${describeError(err)}`));
    }
  }

  add(item) {
    const had = this.items.has(item.id);
    this.items.set(item.id, { ...(this.items.get(item.id) || {}), ...item });
    if (!had && this.totalBytes !== null) this.totalBytes += Number(item.size) || 0;
    if (!had) this.api.scene.redraw();
  }

  /** Is this media id known? null while the library is not loaded (or not available). */
  known(id) {
    if (!this.available || !this.loaded) return null;
    return this.items.has(id);
  }

  sorted() {
    return [...this.items.values()].sort((a, b) => String(b.created_at || "").localeCompare(String(a.created_at || "")));
  }

  render() {
    if (!this.available) return;
    const kind = this.filter.value;
    const items = this.sorted().filter((m) => !kind || m.kind === kind);
    syncList(this.grid, items, (item) => item.id, (item) => this.card(item), (node, item) => {
      const age = node.querySelector(".media-age");
      if (age) age.textContent = this.metaText(item);
    });
    if (!items.length) {
      this.grid.append(h("li.muted.empty-hint", this.items.size ? "Nothing of this kind." : "No media yet. Upload a file to start."));
    }
    if (this.quotaBytes) {
      const used = this.totalBytes ?? 0;
      const share = Math.min(1, used / this.quotaBytes);
      this.quota.textContent = "";
      this.quota.append(
        h("span.small.muted", `${formatBytes(used)} of ${formatBytes(this.quotaBytes)}`),
        h("progress", { max: 1, value: share, "aria-label": "Storage used" }),
      );
    } else {
      this.quota.textContent = `${this.items.size} file${this.items.size === 1 ? "" : "s"}`;
    }
  }

  thumb(item) {
    const url = item.url || `/media/${encodeURIComponent(item.id)}`;
    if (item.kind === "image") return h("img.thumb", { src: url, alt: "", loading: "lazy", draggable: false });
    if (item.kind === "video") {
      // First frame: metadata only, then a seek to 0.1 s (the fragment) paints it.
      const video = h("video.thumb", { muted: true, preload: "metadata", playsInline: true, src: `${url}#t=0.1` });
      video.muted = true;
      return video;
    }
    return h("div.thumb.audio-thumb", { "aria-hidden": "true" }, icon("audio", 28));
  }

  metaText(item) {
    const dims = item.width && item.height ? ` · ${item.width}×${item.height}` : "";
    return `${formatBytes(item.size)}${dims} · ${formatAgo(item.created_at)}`;
  }

  card(item) {
    const name = item.original_name || item.id;
    return h("li.media-card", { dataset: { id: item.id, kind: item.kind } },
      h("div.thumb-wrap", this.thumb(item), h("span.kind-badge", { title: item.mime || item.kind }, item.kind)),
      h("div.media-meta",
        h("span.media-name", { title: name }, name),
        h("span.small.muted.media-age", this.metaText(item))),
      h("div.media-actions",
        h("button.btn.small.primary", { type: "button", dataset: { action: "add" }, "aria-label": `Add ${name} to the scene`, onclick: () => this.api.scene.addMedia(item) }, "Add"),
        h("button.btn.small.danger", { type: "button", dataset: { action: "delete" }, "aria-label": `Delete ${name}`, onclick: () => this.remove(item) }, "Delete")),
    );
  }

  // ------------------------------------------------------------------------------------------
  // Upload

  /** Makes `target` accept dropped files; `onDone(item, event)` runs per uploaded file. */
  bindDrop(target, onDone) {
    let depth = 0;
    const hasFiles = (e) => e.dataTransfer && [...e.dataTransfer.types].includes("Files");
    target.addEventListener("dragenter", (e) => {
      if (!hasFiles(e)) return;
      depth += 1;
      target.classList.add("drop-active");
    });
    target.addEventListener("dragleave", (e) => {
      if (!hasFiles(e)) return;
      depth = Math.max(0, depth - 1);
      if (!depth) target.classList.remove("drop-active");
    });
    target.addEventListener("dragover", (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      e.dataTransfer.dropEffect = "copy";
    });
    target.addEventListener("drop", (e) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      depth = 0;
      target.classList.remove("drop-active");
      this.uploadFiles([...e.dataTransfer.files], onDone ? (item) => onDone(item, e) : null);
    });
  }

  uploadFiles(files, onDone = null) {
    for (const file of files) this.uploadOne(file, onDone);
  }

  uploadOne(file, onDone) {
    const bar = h("progress", { max: 1, value: 0, "aria-label": `Uploading ${file.name}` });
    const pct = h("span.small.pct", "0%");
    const status = h("span.small.muted.upload-status", formatBytes(file.size));
    const cancel = h("button.icon-btn", { type: "button", "aria-label": `Cancel ${file.name}`, title: "Cancel" }, "×");
    const row = h("li.upload", { dataset: { state: "uploading" } }, h("span.upload-name", { title: file.name }, file.name), bar, pct, status, cancel);
    this.uploadList.append(row);
    const job = this.api.upload("/api/media", file, (share) => {
      bar.value = share;
      pct.textContent = `${Math.round(share * 100)}%`;
    });
    this.uploads.add(job);
    cancel.addEventListener("click", () => job.abort());
    job.promise.then(
      (answer) => {
        // The plugin answers {media: {...}, duplicate}; a flat media object is accepted too.
        const item = answer && answer.media && typeof answer.media === "object" ? { ...answer.media, duplicate: answer.duplicate } : answer;
        row.dataset.state = "done";
        bar.value = 1;
        pct.textContent = "100%";
        status.textContent = item.duplicate ? "already in the library" : "uploaded";
        cancel.remove();
        this.add(item);
        this.render();
        if (onDone) onDone(item);
        setTimeout(() => row.remove(), 4000);
      },
      (err) => {
        row.dataset.state = "error";
        status.textContent = describeError(err);
        status.classList.remove("muted");
        cancel.textContent = "×";
        cancel.onclick = () => row.remove();
        if (err.code !== "aborted") notify(`${file.name}: ${describeError(err)}`, { kind: "error", timeout: 6000 });
        else setTimeout(() => row.remove(), 1500);
      },
    ).finally(() => this.uploads.delete(job));
  }

  // ------------------------------------------------------------------------------------------
  // Delete

  async remove(item, force = false) {
    const name = item.original_name || item.id;
    if (!force) {
      const ok = await confirmDialog({ title: "Delete media?", message: `“${name}” will be removed from the library.`, confirmLabel: "Delete", danger: true });
      if (!ok) return;
    }
    try {
      await this.api.request("DELETE", `/api/media/${encodeURIComponent(item.id)}`, null, { query: force ? { force: "true" } : undefined });
      this.items.delete(item.id);
      if (this.totalBytes !== null) this.totalBytes = Math.max(0, this.totalBytes - (Number(item.size) || 0));
      this.render();
      this.api.scene.redraw();
      notify(`Deleted “${name}”`, { kind: "ok" });
    } catch (err) {
      if (err.status === 409 && err.code === "media_in_use" && !force) {
        const users = Array.isArray(err.details.elements) ? err.details.elements : [];
        const again = await confirmDialog({
          title: "This file is in use",
          message: `“${name}” is used by ${users.length || "some"} element${users.length === 1 ? "" : "s"}. Deleting it leaves them empty on the overlay.`,
          details: users.length ? h("ul.in-use", users.slice(0, 12).map((u) => h("li", h("code", u)))) : null,
          confirmLabel: "Delete anyway",
          danger: true,
        });
        if (again) await this.remove(item, true);
        return;
      }
      notify(`Could not delete “${name}”: ${describeError(err)}`, { kind: "error" });
    }
  }

  /** A picker for "Add image/video": library items of `kind`, or a URL. Resolves {media}|{src}|null. */
  pick(kind) {
    return new Promise((resolve) => {
      const url = h("input#pick-url", { type: "text", placeholder: "https://… or /path/file", autocomplete: "off", spellcheck: false });
      const error = h("p.field-error", { role: "alert" });
      const items = this.available ? this.sorted().filter((m) => m.kind === kind) : [];
      let chosen = null;
      const grid = h("ul.pick-grid", items.map((item) => h("li",
        h("button.pick-item", {
          type: "button",
          "aria-label": item.original_name || item.id,
          onclick: () => {
            chosen = { media: item.id, item };
            dialog.close("ok");
          },
        }, this.thumb(item), h("span.small", item.original_name || item.id)))));
      const form = h("form", { method: "dialog" },
        h("h2#dialog-title", `Add ${kind}`),
        this.available
          ? items.length ? h("div", h("p.small.muted", "From the library:"), grid) : h("p.small.muted", `No ${kind}s in the library yet — upload one in the Media tab, or use a URL.`)
          : null,
        h("label.field", { for: "pick-url" }, h("span", "Or a URL"), url),
        error,
        h("div.dialog-actions",
          h("button.btn", { type: "button", onclick: () => dialog.close("cancel") }, "Cancel"),
          h("button.btn.primary", { type: "submit", value: "url" }, "Add URL")));
      const dialog = h("dialog.dialog.wide", { "aria-labelledby": "dialog-title" }, form);
      form.addEventListener("submit", (e) => {
        const value = url.value.trim();
        if (!/^(https?:\/\/|\/)/i.test(value)) {
          e.preventDefault();
          error.textContent = "Enter an http(s) URL or a path starting with /";
          url.focus();
          return;
        }
        chosen = { src: value };
      });
      dialog.addEventListener("close", () => {
        resolve(dialog.returnValue === "cancel" ? null : chosen);
        dialog.remove();
      });
      document.body.appendChild(dialog);
      dialog.showModal();
      (grid.querySelector("button") || url).focus();
    });
  }
}
