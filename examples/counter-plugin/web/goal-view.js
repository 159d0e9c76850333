// The goal bar's DOM and drawing, shared by the overlay renderer (overlay.js) and the panel's stage preview
// (panel.js): page modules of a bundle import each other by relative path from /plugins/counter/.

function clamp(value, low, high) {
  return Math.min(high, Math.max(low, value));
}

function whole(value, fallback) {
  const number = Number(value);
  return Number.isFinite(number) ? Math.round(number) : fallback;
}

/** The element's props with the schema's defaults (the engine fills them in; an old scene may lack them). */
export function propsOf(el) {
  const props = el && el.props && typeof el.props === "object" ? el.props : {};
  return {
    title: typeof props.title === "string" ? props.title : "Follower goal",
    value: Math.max(0, whole(props.value, 0)),
    target: Math.max(1, whole(props.target, 100)),
    color: typeof props.color === "string" ? props.color : "#ffcc00",
    style: ["bar", "slim", "pill"].includes(props.style) ? props.style : "bar",
    animate: props.animate !== false,
  };
}

function part(tag, className, parent) {
  const node = document.createElement(tag);
  node.className = className;
  parent.appendChild(node);
  return node;
}

/** The nodes of one goal bar: `{node, title, count, fill, first, shown}`, what a renderer's create() returns. */
export function createGoal(el) {
  const node = document.createElement("div");
  node.className = "cp-goal";
  const head = part("div", "cp-head", node);
  const title = part("span", "cp-title", head);
  const count = part("span", "cp-count", head);
  const track = part("div", "cp-track", node);
  const fill = part("div", "cp-fill", track);
  return { node, title, count, fill, first: el, shown: null };
}

/** Draws a record from its element (`rec.el`, else the one it was created with) and the live value, if known. */
export function drawGoal(rec, liveValue) {
  const props = propsOf(rec.el || rec.first);
  const value = Number.isFinite(liveValue) ? liveValue : props.value;
  const share = clamp(value / props.target, 0, 1);
  rec.node.dataset.style = props.style;
  rec.node.dataset.value = String(value);
  rec.node.classList.toggle("cp-animate", props.animate);
  rec.node.classList.toggle("cp-done", value >= props.target);
  rec.node.style.setProperty("--cp-color", props.color);
  rec.title.textContent = props.title;
  rec.count.textContent = `${value} / ${props.target}`;
  rec.fill.style.width = `${(share * 100).toFixed(2)}%`;
  if (props.animate && rec.shown !== null && value > rec.shown) {
    // A short pulse on every rise; restarted by removing the class for one frame.
    rec.node.classList.remove("cp-bump");
    requestAnimationFrame(() => rec.node.classList.add("cp-bump"));
  }
  rec.shown = value;
}
