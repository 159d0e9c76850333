// Accessible tabs: buttons with role=tab inside a role=tablist, arrow keys move between them.

/**
 * Wires a tablist. Each tab has aria-controls naming its panel.
 * @returns {{show: (id: string) => void, current: () => string, onChange: (fn) => void}}
 */
export function tabs(list) {
  const buttons = [...list.querySelectorAll('[role="tab"]')];
  const listeners = [];
  const show = (panelId, focus = false) => {
    for (const button of buttons) {
      const selected = button.getAttribute("aria-controls") === panelId;
      button.setAttribute("aria-selected", String(selected));
      button.tabIndex = selected ? 0 : -1;
      const panel = document.getElementById(button.getAttribute("aria-controls"));
      if (panel) panel.hidden = !selected;
      if (selected && focus) button.focus();
    }
    for (const fn of listeners) fn(panelId);
  };
  for (const button of buttons) {
    button.addEventListener("click", () => show(button.getAttribute("aria-controls")));
    button.addEventListener("keydown", (event) => {
      const at = buttons.indexOf(button);
      let next = null;
      if (event.key === "ArrowRight") next = buttons[(at + 1) % buttons.length];
      if (event.key === "ArrowLeft") next = buttons[(at - 1 + buttons.length) % buttons.length];
      if (event.key === "Home") next = buttons[0];
      if (event.key === "End") next = buttons[buttons.length - 1];
      if (next) {
        event.preventDefault();
        show(next.getAttribute("aria-controls"), true);
      }
    });
  }
  const current = () => {
    const selected = buttons.find((b) => b.getAttribute("aria-selected") === "true");
    return selected ? selected.getAttribute("aria-controls") : "";
  };
  return { show, current, onChange: (fn) => listeners.push(fn) };
}
