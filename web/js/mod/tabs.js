// Accessible tabs: buttons with role=tab inside a role=tablist, arrow keys move between them. Tabs can be added
// later (plugins' tabs) and removed again.

/**
 * Wires a tablist. Each tab has aria-controls naming its panel.
 * @returns {{show: (id: string) => void, current: () => string, onChange: (fn) => void,
 *            add: (button: HTMLElement, panel: HTMLElement) => void, remove: (panelId: string) => void}}
 */
export function tabs(list) {
  const listeners = [];
  const buttons = () => [...list.querySelectorAll('[role="tab"]')];
  const show = (panelId, focus = false) => {
    for (const button of buttons()) {
      const selected = button.getAttribute("aria-controls") === panelId;
      button.setAttribute("aria-selected", String(selected));
      button.tabIndex = selected ? 0 : -1;
      const panel = document.getElementById(button.getAttribute("aria-controls"));
      if (panel) panel.hidden = !selected;
      if (selected && focus) button.focus();
    }
    for (const fn of listeners) fn(panelId);
  };
  list.addEventListener("click", (event) => {
    const button = event.target instanceof Element ? event.target.closest('[role="tab"]') : null;
    if (button && list.contains(button)) show(button.getAttribute("aria-controls"));
  });
  list.addEventListener("keydown", (event) => {
    const button = event.target instanceof Element ? event.target.closest('[role="tab"]') : null;
    if (!button) return;
    const all = buttons();
    const at = all.indexOf(button);
    let next = null;
    if (event.key === "ArrowRight") next = all[(at + 1) % all.length];
    if (event.key === "ArrowLeft") next = all[(at - 1 + all.length) % all.length];
    if (event.key === "Home") next = all[0];
    if (event.key === "End") next = all[all.length - 1];
    if (next) {
      event.preventDefault();
      show(next.getAttribute("aria-controls"), true);
    }
  });
  const current = () => {
    const selected = buttons().find((b) => b.getAttribute("aria-selected") === "true");
    return selected ? selected.getAttribute("aria-controls") : "";
  };
  /** Appends a tab (not selected) and its panel (placed after the last panel of this list). */
  const add = (button, panel, container) => {
    button.setAttribute("role", "tab");
    button.setAttribute("aria-selected", "false");
    button.tabIndex = -1;
    panel.hidden = true;
    list.append(button);
    container.append(panel);
  };
  /** Removes a tab and its panel; the first tab is shown if it was the current one. */
  const remove = (panelId) => {
    const wasCurrent = current() === panelId;
    for (const button of buttons()) if (button.getAttribute("aria-controls") === panelId) button.remove();
    document.getElementById(panelId)?.remove();
    const first = buttons()[0];
    if (wasCurrent && first) show(first.getAttribute("aria-controls"));
  };
  return { show, current, onChange: (fn) => listeners.push(fn), add, remove };
}
