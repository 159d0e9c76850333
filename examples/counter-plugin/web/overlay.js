// The counter plugin's overlay module: draws `goal` elements (a title, a bar filling toward the target,
// "value / target") and follows the live value the plugin broadcasts. Loaded by /overlay and /preview.
//
//   {"type": "counter.values", "values": {"<element id>": 42, ...}}   on every (re)connect
//   {"type": "counter.changed", "id": "<element id>", "value": 43}    after every change
// (The overlay page replays messages that arrived before setup() finished, so the first counter.values is not lost.)

import { createGoal, drawGoal } from "./goal-view.js";

/** Live values by element id; an element without one shows its `props.value` (the start value). */
const live = new Map();

export default function setup(api) {
  const redraw = (id) => {
    const rec = api.elementRecord(id);
    if (rec && rec.type === "goal" && !rec.destroyed) drawGoal(rec, live.get(id));
  };

  api.registerElementType("goal", {
    create(el) {
      return createGoal(el);
    },
    update(rec, el) {
      rec.el = el; // the page sets it after update; drawGoal reads it now
      drawGoal(rec, live.get(el.id));
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
