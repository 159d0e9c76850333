// Feedback: toasts (polite), sticky notices (conflicts, offline), and small modal dialogs.

import { h } from "./util.js";

let region = null;

/** A notice kind: info, ok, warn, error (success and warning are taken as ok and warn). */
export function noticeKind(kind) {
  return { success: "ok", warning: "warn" }[kind] || (["info", "ok", "warn", "error"].includes(kind) ? kind : "info");
}

function ensureRegion() {
  if (region && region.isConnected) return region;
  region = document.getElementById("notices");
  if (!region) {
    region = h("div#notices", { class: "notices", "aria-live": "polite", "aria-relevant": "additions" });
    document.body.appendChild(region);
  }
  return region;
}

/**
 * Shows a message.
 * @param {string} message
 * @param {object} [options]
 * @param {"info"|"ok"|"warn"|"error"|"conflict"} [options.kind]
 * @param {number} [options.timeout]  ms; 0 keeps it until dismissed
 * @param {string} [options.key]  a notice with the same key replaces the previous one
 * @param {{label: string, run: () => void}[]} [options.actions]
 * @returns {{close: () => void, node: HTMLElement}}
 */
export function notify(message, { kind = "info", timeout, key, actions = [], title } = {}) {
  const root = ensureRegion();
  if (key) for (const old of root.querySelectorAll(`[data-key="${CSS.escape(key)}"]`)) old.remove();
  const sticky = timeout === 0 || (timeout === undefined && (kind === "conflict" || kind === "error"));
  const close = () => {
    clearTimeout(timer);
    node.classList.add("leaving");
    setTimeout(() => node.remove(), 160);
  };
  const node = h(
    "div.notice",
    { class: `notice-${kind}`, role: kind === "error" || kind === "conflict" ? "alert" : "status", dataset: { key: key || "", kind } },
    h("div.notice-body", title ? h("strong", title) : null, h("span.notice-text", message)),
    actions.length
      ? h("div.notice-actions", actions.map((a) => h("button.btn.small", { type: "button", onclick: () => { close(); a.run(); } }, a.label)))
      : null,
    h("button.icon-btn.notice-close", { type: "button", "aria-label": "Dismiss", title: "Dismiss", onclick: close }, "×"),
  );
  root.appendChild(node);
  // At most four at once: the oldest passing ones make room.
  const passing = [...root.querySelectorAll(".notice")].filter((n) => !n.classList.contains("leaving") && !["conflict", "error"].includes(n.dataset.kind));
  while (root.querySelectorAll(".notice:not(.leaving)").length > 4 && passing.length) passing.shift().remove();
  const timer = sticky ? 0 : setTimeout(close, timeout ?? (kind === "warn" ? 6000 : 3500));
  return { close, node };
}

export function dismiss(key) {
  const root = ensureRegion();
  for (const old of root.querySelectorAll(`[data-key="${CSS.escape(key)}"]`)) old.remove();
}

/** A modal confirm; resolves true/false. Keyboard: Enter confirms, Escape cancels. */
export function confirmDialog({ title, message, confirmLabel = "OK", cancelLabel = "Cancel", danger = false, details = null }) {
  return new Promise((resolve) => {
    const dialog = h(
      "dialog.dialog",
      { "aria-labelledby": "dialog-title" },
      h(
        "form",
        { method: "dialog" },
        h("h2#dialog-title", title),
        message ? h("p", message) : null,
        details,
        h(
          "div.dialog-actions",
          h("button.btn", { type: "submit", value: "cancel" }, cancelLabel),
          h("button.btn", { type: "submit", value: "ok", class: danger ? "danger" : "primary", autofocus: true }, confirmLabel),
        ),
      ),
    );
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "ok");
      dialog.remove();
    });
    document.body.appendChild(dialog);
    dialog.showModal();
  });
}

/** A modal with one text field; resolves the trimmed value or null. `validate` returns an error text or "". */
export function promptDialog({ title, label, value = "", placeholder = "", confirmLabel = "OK", validate = () => "", hint = "", extra = null }) {
  return new Promise((resolve) => {
    const input = h("input#dialog-input", { type: "text", value, placeholder, autocomplete: "off", spellcheck: false, required: true });
    const error = h("p.field-error", { role: "alert" });
    const form = h(
      "form",
      { method: "dialog" },
      h("h2#dialog-title", title),
      h("label.field", { for: "dialog-input" }, h("span", label), input),
      hint ? h("p.muted.small", hint) : null,
      extra,
      error,
      h(
        "div.dialog-actions",
        h("button.btn", { type: "button", onclick: () => dialog.close("cancel") }, "Cancel"),
        h("button.btn.primary", { type: "submit", value: "ok" }, confirmLabel),
      ),
    );
    const dialog = h("dialog.dialog", { "aria-labelledby": "dialog-title" }, form);
    form.addEventListener("submit", (event) => {
      const problem = validate(input.value.trim());
      if (problem) {
        event.preventDefault();
        error.textContent = problem;
        input.focus();
      }
    });
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "ok" ? input.value.trim() : null);
      dialog.remove();
    });
    document.body.appendChild(dialog);
    dialog.showModal();
    input.select();
  });
}
