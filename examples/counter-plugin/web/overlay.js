// The counter plugin's overlay module: draws `goal` elements (a title, a bar filling toward the target,
// "value / target") and follows the live value the plugin broadcasts. Loaded by /overlay and /preview.
//
//   {"type": "counter.values", "values": {"<element id>": 42, ...}}   on every (re)connect
//   {"type": "counter.changed", "id": "<element id>", "value": 43}    after every change
// (The overlay page replays messages that arrived before setup() finished, so the first counter.values is not lost.)

/** Live values by element id; an element without one shows its `props.value` (the start value). */
const live = new Map();

function clamp(value, low, high) {
  return Math.min(high, Math.max(low, value));
}

function whole(value, fallback) {
  const number = Number(value);
  return Number.isFinite(number) ? Math.round(number) : fallback;
}

/** The element's props with the schema's defaults (the engine fills them in; an old scene may lack them). */
function propsOf(el) {
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

/** Draws one record from its element and the live value. */
function draw(rec) {
  const props = propsOf(rec.el || rec.first);
  const value = live.has(rec.id) ? live.get(rec.id) : props.value;
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

export default function setup(api) {
  const redraw = (id) => {
    const rec = api.elementRecord(id);
    if (rec && rec.type === "goal" && !rec.destroyed) draw(rec);
  };

  api.registerElementType("goal", {
    create(el) {
      const node = document.createElement("div");
      node.className = "cp-goal";
      const head = part("div", "cp-head", node);
      const title = part("span", "cp-title", head);
      const count = part("span", "cp-count", head);
      const track = part("div", "cp-track", node);
      const fill = part("div", "cp-fill", track);
      return { node, title, count, fill, first: el, shown: null };
    },
    update(rec, el) {
      rec.el = el; // the engine sets it after update; draw reads it now
      draw(rec);
    },
  });

  api.on("counter.values", (message) => {
    const values = message && typeof message.values === "object" && message.values ? message.values : {};
    for (const [id, value] of Object.entries(values)) {
      if (Number.isFinite(value)) {
        live.set(id, value);
        redraw(id);
      }
    }
  });

  api.on("counter.changed", (message) => {
    if (!message || typeof message.id !== "string" || !Number.isFinite(message.value)) return;
    live.set(message.id, message.value);
    redraw(message.id);
  });
}
