// The counter plugin's panel module: when a `goal` element is selected in /mod, its inspector shows the live
// value with -1 / +1 / +10 / Reset buttons that call the plugin's routes with the moderator's session, and the
// element's props as fields made from the schema in /api/plugins (a plugin's own inspector replaces the panel's
// schema form, so it edits them itself, through update()). Every open panel follows counter.changed, so two
// moderators see each other's presses. On the editor's stage a goal is drawn as the overlay draws it (goal-view.js).

import { createGoal, drawGoal } from "./goal-view.js";

/** Live values by element id, from the plugin's socket events and route answers. */
const live = new Map();

const STEPS = [
  { label: "−1", by: -1 },
  { label: "+1", by: 1 },
  { label: "+10", by: 10 },
];

export default function setup(api) {
  /** Inspector views: {id, output, target, shown}. A view that was on the page and left it is dropped. */
  const views = new Set();

  function show(id) {
    for (const view of [...views]) {
      if (view.id !== id || !live.has(id)) continue;
      view.output.textContent = `${live.get(id)} / ${view.target}`;
      view.output.dataset.value = String(live.get(id));
    }
    // render() fills its container before the panel puts it on the page: only a view seen there can leave.
    for (const view of [...views]) {
      if (view.output.isConnected) view.shown = true;
      else if (view.shown) views.delete(view);
    }
  }

  /** The editor's records of goal elements, by id (what addStagePreview's update receives). */
  const previews = new Map();

  function learn(id, value) {
    if (typeof id !== "string" || !Number.isFinite(value)) return;
    live.set(id, value);
    show(id);
    const rec = previews.get(id);
    if (rec && rec.node.isConnected) drawGoal(rec, value);
  }

  /** POST to one of the plugin's routes; the answer (and the broadcast) carry the new value. */
  async function change(id, action, body) {
    try {
      const answer = await api.request("POST", `/api/counter/${encodeURIComponent(id)}/${action}`, body);
      learn(answer.id, answer.value);
    } catch (err) {
      api.notice(`Goal ${id}: ${api.describeError ? api.describeError(err) : err.message || err}`, "error");
    }
  }

  /** One field per schema property (in x-order) that saves through `update({props: {...}})`; returns a refresh(el). */
  function propsForm(container, element, update) {
    const schema = api.elementTypes.get("goal")?.schema;
    const specs = schema && schema.properties ? schema.properties : {};
    const order = Array.isArray(schema && schema["x-order"]) ? schema["x-order"] : Object.keys(specs);
    const inputs = new Map();
    for (const name of order) {
      const spec = specs[name] || {};
      let input;
      if (Array.isArray(spec.enum)) {
        input = document.createElement("select");
        for (const value of spec.enum) input.append(new Option(value, value));
      } else {
        input = document.createElement("input");
        input.type = spec.type === "boolean" ? "checkbox" : spec.type === "integer" ? "number" : spec.format === "color" ? "color" : "text";
        if (spec.minimum !== undefined) input.min = spec.minimum;
        if (spec.maximum !== undefined) input.max = spec.maximum;
        if (spec.maxLength !== undefined) input.maxLength = spec.maxLength;
      }
      input.name = name;
      input.addEventListener("change", () => {
        const value = input.type === "checkbox" ? input.checked : input.type === "number" ? Number(input.value) : input.value;
        update({ props: { [name]: value } });
      });
      const label = document.createElement("label");
      label.className = "cp-panel-field";
      label.append(spec.title || name, input);
      container.appendChild(label);
      inputs.set(name, input);
    }
    const refresh = (el) => {
      const props = el.props || {};
      for (const [name, input] of inputs) {
        if (document.activeElement === input || props[name] === undefined) continue;
        if (input.type === "checkbox") input.checked = props[name] === true;
        else if (input.type === "color") input.value = /^#[0-9a-f]{6}$/i.test(props[name]) ? props[name] : "#ffcc00";
        else input.value = String(props[name]);
      }
    };
    refresh(element);
    return refresh;
  }

  api.addInspector("goal", {
    render(container, element, update) {
      const props = element.props || {};
      const wrap = document.createElement("div");
      wrap.className = "cp-panel";
      const label = document.createElement("span");
      label.className = "cp-panel-label";
      label.textContent = "Live value";
      const output = document.createElement("output");
      output.className = "cp-panel-value";
      output.setAttribute("aria-live", "polite");
      const buttons = document.createElement("div");
      buttons.className = "cp-panel-buttons";
      for (const step of STEPS) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "btn small";
        button.dataset.step = String(step.by);
        button.textContent = step.label;
        button.addEventListener("click", () => change(element.id, "increment", { by: step.by }));
        buttons.appendChild(button);
      }
      const reset = document.createElement("button");
      reset.type = "button";
      reset.className = "btn small";
      reset.dataset.action = "reset";
      reset.textContent = "Reset";
      reset.addEventListener("click", () => change(element.id, "reset", { value: 0 }));
      buttons.appendChild(reset);
      wrap.append(label, output, buttons);
      container.appendChild(wrap);

      const view = { id: element.id, output, target: Number.isFinite(props.target) ? props.target : 100, shown: false };
      views.add(view);
      const refresh = propsForm(container, element, update);
      if (!live.has(element.id) && Number.isFinite(props.value)) live.set(element.id, props.value);
      show(element.id);
      // The stored value may differ from the start value in props: ask the plugin.
      api.request("GET", `/api/counter/${encodeURIComponent(element.id)}`).then(
        (answer) => learn(answer.id, answer.value),
        () => {},
      );
      // Called with the element after every change of it (another moderator, undo, this form).
      return (el) => {
        view.target = Number.isFinite(el.props && el.props.target) ? el.props.target : 100;
        show(el.id);
        refresh(el);
      };
    },
  });

  api.addStagePreview("goal", {
    create(el) {
      const made = createGoal(el);
      drawGoal(made, live.get(el.id));
      return made;
    },
    update(rec, el) {
      rec.el = el;
      previews.set(el.id, rec);
      drawGoal(rec, live.get(el.id));
    },
    destroy(rec) {
      if (previews.get(rec.id) === rec) previews.delete(rec.id);
    },
  });

  api.on("counter.values", (message) => {
    for (const [id, value] of Object.entries(message && message.values ? message.values : {})) learn(id, value);
  });
  api.on("counter.changed", (message) => learn(message && message.id, message && message.value));
}
