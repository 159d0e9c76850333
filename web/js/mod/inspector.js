// The property inspector of the selected element: geometry, appearance, text, media playback, and for plugin
// element types either the plugin's own inspector (addInspector) or fields made from the type's JSON schema.
// Every control saves through the scene sync (typing is debounced; Enter or leaving the field saves at once).

import { CORE_TYPES } from "./plugin-api.js";
import { elementLabel, h } from "../lib/util.js";
import { FONTS } from "../text-style.js";

/** "#rgb", "#rgba", "#rrggbb", "#rrggbbaa" or a basic name, as the engine accepts. */
export function isColor(text) {
  if (/^#([0-9a-f]{3}|[0-9a-f]{4}|[0-9a-f]{6}|[0-9a-f]{8})$/i.test(text)) return true;
  return ["transparent", "white", "black", "red", "green", "blue", "yellow", "orange", "purple", "gray", "grey"].includes(text);
}

/** Marks a field as refused, with the reason in its error line (read by screen readers through aria-describedby). */
function showProblem(input, error, message) {
  input.setAttribute("aria-invalid", "true");
  input.setAttribute("aria-describedby", error.id);
  error.textContent = message;
}

/** Clears what showProblem() set. */
function clearProblem(input, error) {
  input.removeAttribute("aria-invalid");
  error.textContent = "";
}

/** "#rrggbb" part of a colour for <input type=color>, and its alpha suffix. */
function splitColor(text) {
  const named = { white: "#ffffff", black: "#000000", red: "#ff0000", green: "#008000", blue: "#0000ff", yellow: "#ffff00",
    orange: "#ffa500", purple: "#800080", gray: "#808080", grey: "#808080", transparent: "#000000" };
  if (!text) return { hex: "#000000", alpha: "" };
  if (named[text]) return { hex: named[text], alpha: text === "transparent" ? "00" : "" };
  let body = text.replace("#", "");
  if (body.length === 3 || body.length === 4) body = [...body].map((c) => c + c).join("");
  return { hex: `#${body.slice(0, 6)}`, alpha: body.slice(6, 8) };
}

export class Inspector {
  constructor(app, root) {
    this.app = app;
    this.root = root;
    this.fields = new Map();
    this.currentId = null;
    this.currentType = null;
  }

  render({ force = false, rebuild = false } = {}) {
    if (rebuild) this.currentId = null;
    const id = this.app.selection.id;
    const el = id ? this.app.sync.element(id) : null;
    if (!el) {
      this.currentId = null;
      this.root.textContent = "";
      this.root.append(
        h("div.empty-state",
          h("p", "Nothing selected."),
          h("p.muted.small", "Click an element on the stage or in Layers. Arrow keys nudge, Shift+arrows by 10 px, Delete removes, Ctrl+D duplicates.")),
      );
      return;
    }
    if (el.id !== this.currentId || el.type !== this.currentType) {
      this.build(el);
      this.currentId = el.id;
      this.currentType = el.type;
    }
    this.fill(el, force);
  }

  /** One labelled control bound to a field. */
  control(el, field, { label, type = "number", min, max, step, options, parse, format, debounce, wide, unit, hint } = {}) {
    const id = `insp-${field}`;
    let input;
    if (type === "select") {
      input = h("select", { id }, options.map(([value, text]) => h("option", { value }, text)));
    } else if (type === "textarea") {
      input = h("textarea", { id, rows: 3, spellcheck: true, maxlength: 2000 });
    } else if (type === "checkbox") {
      input = h("input", { id, type: "checkbox" });
    } else {
      input = h("input", { id, type, min, max, step, autocomplete: "off", spellcheck: false });
    }
    const error = h("span.field-error", { id: `${id}-error` });
    const binding = { field, input, parse, format, type, error };
    this.fields.set(field, binding);
    const commit = (final) => {
      const raw = type === "checkbox" ? input.checked : input.value;
      let value;
      try {
        value = parse ? parse(raw) : raw;
      } catch (problem) {
        showProblem(input, error, problem.message);
        return;
      }
      clearProblem(input, error);
      const current = this.app.sync.element(this.currentId);
      if (!current) return;
      if ((current[field] ?? null) === (value ?? null)) {
        if (final) this.app.sync.flushSoon();
        return;
      }
      this.app.sync.update(this.currentId, { [field]: value }, {
        group: `field:${this.currentId}:${field}`,
        debounce: final ? 0 : debounce ?? (type === "textarea" || type === "text" ? 400 : 200),
      });
    };
    const live = type === "checkbox" || type === "select" || type === "range" || type === "color";
    input.addEventListener("input", () => commit(live));
    input.addEventListener("change", () => commit(true));
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && type !== "textarea") {
        commit(true);
        e.preventDefault();
      }
      if (e.key === "Enter" && type === "textarea" && (e.ctrlKey || e.metaKey)) commit(true);
    });
    if (type === "checkbox") {
      return h("label.check", { for: id }, input, h("span", label));
    }
    return h("div.field", { class: wide ? "wide" : "" },
      h("label", { for: id }, label, unit ? h("span.unit", ` ${unit}`) : null),
      input,
      hint ? h("span.muted.small", hint) : null,
      error);
  }

  number(min, max, { integer = false } = {}) {
    return (raw) => {
      if (String(raw).trim() === "") throw new Error("Enter a number");
      const n = Number(raw);
      if (!Number.isFinite(n)) throw new Error("Enter a number");
      if (n < min || n > max) throw new Error(`Between ${min} and ${max}`);
      return integer ? Math.round(n) : Math.round(n * 100) / 100;
    };
  }

  /** A colour text field with a swatch picker (the swatch keeps the alpha typed in the text). */
  colorControl(field, label, { allowNone = false } = {}) {
    const id = `insp-${field}`;
    const text = h("input", { id, type: "text", autocomplete: "off", spellcheck: false, placeholder: allowNone ? "none" : "#ffffff", maxlength: 32 });
    const swatch = h("input", { type: "color", "aria-label": `${label} picker`, tabindex: "0" });
    const error = h("span.field-error", { id: `${id}-error` });
    const parse = (raw) => {
      const value = raw.trim();
      if (!value && allowNone) return null;
      if (!isColor(value)) throw new Error("#rgb, #rrggbb, #rrggbbaa or a basic colour name");
      return value;
    };
    const binding = { field, input: text, parse, type: "color-text", swatch, error };
    this.fields.set(field, binding);
    const commit = (raw, final) => {
      let value;
      try {
        value = parse(raw);
      } catch (problem) {
        showProblem(text, error, problem.message);
        return;
      }
      clearProblem(text, error);
      const current = this.app.sync.element(this.currentId);
      if (!current || (current[field] ?? null) === value) return;
      this.app.sync.update(this.currentId, { [field]: value }, { group: `field:${this.currentId}:${field}`, debounce: final ? 0 : 300 });
    };
    text.addEventListener("input", () => commit(text.value, false));
    text.addEventListener("change", () => commit(text.value, true));
    swatch.addEventListener("input", () => {
      const { alpha } = splitColor(text.value.trim());
      text.value = swatch.value + alpha;
      commit(text.value, false);
    });
    swatch.addEventListener("change", () => commit(text.value, true));
    return h("div.field.color-field",
      h("label", { for: id }, label),
      h("div.color-row", swatch, text),
      error);
  }

  build(el) {
    this.fields.clear();
    const geometry = h("fieldset.group",
      h("legend", "Position & size"),
      h("div.grid2",
        this.control(el, "x", { label: "X", step: 1, parse: this.number(-100000, 100000), unit: "px" }),
        this.control(el, "y", { label: "Y", step: 1, parse: this.number(-100000, 100000), unit: "px" }),
        this.control(el, "width", { label: "Width", step: 1, min: 0, parse: this.number(0, 100000), unit: "px" }),
        this.control(el, "height", { label: "Height", step: 1, min: 0, parse: this.number(0, 100000), unit: "px" }),
        this.control(el, "rotation", { label: "Rotation", step: 1, parse: this.number(-3600, 3600), unit: "°" }),
        this.control(el, "z", { label: "Layer (z)", step: 1, parse: this.number(-100000, 100000, { integer: true }) }),
      ),
      h("div.row.gap",
        h("button.btn.small", { type: "button", onclick: () => this.app.alignSelected("center") }, "Centre"),
        h("button.btn.small", { type: "button", onclick: () => this.app.alignSelected("fill") }, "Fill stage"),
        h("button.btn.small", { type: "button", title: "Bring forward (])", onclick: () => this.app.restackBy(this.currentId, 1) }, "Forward"),
        h("button.btn.small", { type: "button", title: "Send backward ([)", onclick: () => this.app.restackBy(this.currentId, -1) }, "Backward"),
      ),
    );
    const opacityRange = this.control(el, "opacity", { label: "Opacity", type: "range", min: 0, max: 1, step: 0.01, parse: this.number(0, 1) });
    const appearance = h("fieldset.group",
      h("legend", "Appearance"),
      opacityRange,
      h("div.row.gap",
        this.control(el, "visible", { label: "Visible", type: "checkbox" }),
        this.control(el, "locked", { label: "Locked", type: "checkbox" }),
      ),
    );
    const sections = [];
    if (el.type === "text") {
      sections.push(h("fieldset.group",
        h("legend", "Text"),
        this.control(el, "text", { label: "Text", type: "textarea", parse: (v) => v, wide: true }),
        h("div.grid2",
          this.control(el, "font", { label: "Font", type: "select", options: FONTS.map((f) => [f.value, f.label]), parse: (v) => v || null }),
          this.control(el, "size", { label: "Size", step: 1, min: 1, parse: this.number(1, 2000), unit: "px" }),
          this.control(el, "align", { label: "Align", type: "select", options: [["left", "Left"], ["center", "Centre"], ["right", "Right"]] }),
          this.control(el, "valign", { label: "Vertical", type: "select", options: [["top", "Top"], ["middle", "Middle"], ["bottom", "Bottom"]] }),
        ),
        this.control(el, "autofit", { label: "Shrink to fit the box", type: "checkbox" }),
        h("div.grid2",
          this.colorControl("color", "Colour"),
          this.colorControl("background", "Background", { allowNone: true }),
          this.colorControl("stroke", "Outline", { allowNone: true }),
          this.control(el, "stroke_width", { label: "Outline width", step: 1, min: 0, parse: this.number(0, 50), unit: "px" }),
          this.colorControl("shadow", "Shadow", { allowNone: true }),
          this.control(el, "shadow_blur", { label: "Shadow blur", step: 1, min: 0, parse: this.number(0, 200), unit: "px" }),
          this.control(el, "shadow_x", { label: "Shadow X", step: 1, parse: this.number(-200, 200), unit: "px" }),
          this.control(el, "shadow_y", { label: "Shadow Y", step: 1, parse: this.number(-200, 200), unit: "px" }),
        ),
      ));
    }
    if (el.type === "image" || el.type === "video" || el.type === "audio") {
      const media = [];
      media.push(h("p.small.muted.source", "Source: ", h("code", el.media ? `media ${el.media}` : el.src || "–")));
      if (el.type !== "audio") {
        media.push(this.control(el, "fit", { label: "Fit", type: "select", options: [["contain", "Contain"], ["cover", "Cover"], ["fill", "Stretch"]] }));
      }
      if (el.type !== "image") {
        this.playButton = h("button.btn.small#insp-play", { type: "button", onclick: () => this.togglePlay() }, "Pause");
        media.push(h("div.row.gap", this.playButton,
          this.control(el, "loop", { label: "Loop", type: "checkbox" }),
          this.control(el, "muted", { label: "Muted", type: "checkbox" })));
        media.push(this.control(el, "volume", { label: "Volume", type: "range", min: 0, max: 1, step: 0.01, parse: this.number(0, 1) }));
      }
      sections.push(h("fieldset.group", h("legend", el.type === "image" ? "Image" : el.type === "video" ? "Video" : "Audio"), media));
    }
    this.custom = null;
    this.serverProblem = null;
    if (!CORE_TYPES.has(el.type)) {
      const section = this.pluginSection(el);
      if (section) sections.push(section);
    }
    const header = h("div.insp-head",
      h("div.insp-title", h("span.type-badge", el.type), h("span.insp-name")),
      h("div.row.gap",
        h("button.btn.small", { type: "button", title: "Duplicate (Ctrl+D)", onclick: () => this.app.duplicateSelected() }, "Duplicate"),
        h("button.btn.small.danger", { type: "button", title: "Delete (Del)", onclick: () => this.app.deleteSelected() }, "Delete"),
      ),
    );
    const name = this.control(el, "name", { label: "Name", type: "text", parse: (v) => v.trim().slice(0, 200) || null, wide: true });
    this.root.textContent = "";
    this.root.append(header, h("fieldset.group", name, h("p.small.muted", "id ", h("code", el.id))), geometry, appearance, ...sections);
  }

  fill(el, force) {
    const focused = document.activeElement;
    const header = this.root.querySelector(".insp-name");
    if (header) header.textContent = elementLabel(el);
    const locked = el.locked === true;
    for (const binding of this.fields.values()) {
      const { field, input, type } = binding;
      if (binding.prop) {
        if ((input === focused && !force) || (input.getAttribute("aria-invalid") === "true" && !force)) continue;
        this.fillProp(binding, el);
        continue;
      }
      const value = el[field];
      if (["x", "y", "width", "height", "rotation"].includes(field)) input.disabled = locked;
      if (input === focused && !force) continue;
      if (input.getAttribute("aria-invalid") === "true" && !force) continue;
      if (type === "checkbox") {
        input.checked = field === "visible" ? value !== false : value === true;
      } else if (type === "color-text") {
        input.value = value ?? "";
        binding.swatch.value = splitColor(value || (field === "color" ? "#ffffff" : "#000000")).hex;
        clearProblem(input, binding.error);
      } else {
        let shown = value;
        if (field === "opacity") shown = value ?? 1;
        if (field === "volume") shown = value ?? 1;
        if (field === "fit") shown = value || "contain";
        if (field === "align") shown = value || "left";
        if (field === "valign") shown = value || "top";
        if (field === "font") {
          shown = value || "";
          // A family typed elsewhere (API, older scenes) is kept as an option of its own.
          if (shown && ![...input.options].some((o) => o.value === shown)) input.append(h("option", { value: shown }, shown));
        }
        if (field === "stroke_width") shown = value ?? 0;
        if (field === "shadow_blur") shown = value ?? 6;
        if (field === "shadow_x" || field === "shadow_y") shown = value ?? 3;
        if (field === "size") shown = value ?? 48;
        if (typeof shown === "number" && !Number.isInteger(shown)) shown = Math.round(shown * 100) / 100;
        input.value = shown ?? "";
        clearProblem(input, binding.error);
      }
      if (type === "range") input.title = String(input.value);
    }
    if (this.custom) {
      try {
        this.custom(el);
      } catch (err) {
        console.warn("[inspector] plugin inspector", err);
      }
    }
    this.showServerProblem();
    if (this.playButton) {
      const playing = el.playing !== false;
      this.playButton.textContent = playing ? "Pause" : "Play";
      this.playButton.setAttribute("aria-label", playing ? "Pause on the overlay" : "Play on the overlay");
    }
  }

  // ------------------------------------------------------------------------------------------
  // Plugin element types

  /** The plugin's inspector for the type, else fields from its schema, else a note. */
  pluginSection(el) {
    const ext = this.app.ext;
    const declared = ext ? ext.declared.get(el.type) : null;
    const legend = declared ? declared.label : el.type;
    const custom = ext ? ext.inspectors.get(el.type) : null;
    if (custom) {
      const container = h("div.plugin-inspector-body", { dataset: { plugin: custom.plugin } });
      const id = el.id;
      const update = (patch, options) => this.app.updateElement(id, patch, { group: `field:${id}:plugin`, debounce: 200, ...options });
      try {
        const after = custom.render(container, el, update);
        if (typeof after === "function") this.custom = after;
      } catch (err) {
        console.warn(`[inspector] ${custom.plugin}: inspector of '${el.type}'`, err);
        container.textContent = "";
        container.append(h("p.small.bad", `The ${custom.plugin} plugin's inspector failed: ${err && err.message ? err.message : err}`));
      }
      return h("fieldset.group", { dataset: { type: el.type } }, h("legend", legend), container);
    }
    const schema = declared && declared.schema;
    if (!schema || !schema.properties || typeof schema.properties !== "object") {
      return declared ? h("fieldset.group", h("legend", legend), h("p.small.muted", "This element type has no editable properties.")) : null;
    }
    const names = Object.keys(schema.properties);
    const order = Array.isArray(schema["x-order"]) ? schema["x-order"].filter((n) => names.includes(n)) : [];
    const ordered = [...order, ...names.filter((n) => !order.includes(n))];
    const required = new Set(Array.isArray(schema.required) ? schema.required : []);
    const controls = ordered.map((name) => this.propControl(name, schema.properties[name] || {}, required.has(name))).filter(Boolean);
    return h("fieldset.group.schema-fields", { dataset: { type: el.type } }, h("legend", legend), controls);
  }

  /** One control for `props.<name>` from its JSON schema. */
  propControl(name, spec, required) {
    const field = `props.${name}`;
    const id = `insp-props-${name}`;
    const label = typeof spec.title === "string" && spec.title ? spec.title : name;
    const error = h("span.field-error", { id: `${id}-error` });
    const kind = Array.isArray(spec.enum) ? "enum"
      : spec.type === "boolean" ? "boolean"
        : spec.type === "integer" || spec.type === "number" ? "number"
          : spec.type === "string" && spec.format === "color" ? "color"
            : spec.type === "string" ? "string" : null;
    if (!kind) return h("p.small.muted", `${label}: edited by the plugin`);
    let input;
    if (kind === "enum") {
      input = h("select", { id }, spec.enum.map((value) => h("option", { value: String(value) }, String(value))));
    } else if (kind === "boolean") {
      input = h("input", { id, type: "checkbox" });
    } else if (kind === "number") {
      input = h("input", { id, type: "number", min: spec.minimum, max: spec.maximum, step: spec.type === "integer" ? 1 : spec.multipleOf ?? "any", autocomplete: "off" });
    } else if (kind === "color") {
      input = h("input", { id, type: "color" });
    } else if (spec["x-multiline"] === true) {
      input = h("textarea", { id, rows: 3, maxlength: spec.maxLength, spellcheck: true });
    } else {
      input = h("input", { id, type: "text", maxlength: spec.maxLength, autocomplete: "off", spellcheck: false });
    }
    const parse = (raw) => {
      if (kind === "boolean") return raw === true;
      if (kind === "enum") return spec.enum.find((v) => String(v) === raw) ?? raw;
      if (kind === "number") {
        if (String(raw).trim() === "") {
          if (required) throw new Error("Required");
          return undefined;
        }
        const n = Number(raw);
        if (!Number.isFinite(n)) throw new Error("Enter a number");
        if (spec.type === "integer" && !Number.isInteger(n)) throw new Error("A whole number");
        if (typeof spec.minimum === "number" && n < spec.minimum) throw new Error(`At least ${spec.minimum}`);
        if (typeof spec.maximum === "number" && n > spec.maximum) throw new Error(`At most ${spec.maximum}`);
        return n;
      }
      const text = String(raw);
      if (typeof spec.maxLength === "number" && text.length > spec.maxLength) throw new Error(`At most ${spec.maxLength} characters`);
      if (typeof spec.minLength === "number" && text.length < spec.minLength) throw new Error(`At least ${spec.minLength} characters`);
      if (typeof spec.pattern === "string") {
        let pattern = null;
        try {
          // The engine matches the whole text (PluginAPI ElementProperty.pattern).
          pattern = new RegExp(`^(?:${spec.pattern})$`, "u");
        } catch {
          /* a pattern this browser cannot read: the engine checks it */
        }
        if (pattern && !pattern.test(text)) throw new Error("Not in the expected form");
      }
      return text;
    };
    const binding = { field, prop: name, spec, kind, input, error, type: kind === "boolean" ? "checkbox" : kind };
    this.fields.set(field, binding);
    const commit = (final) => {
      let value;
      try {
        value = parse(kind === "boolean" ? input.checked : input.value);
      } catch (problem) {
        showProblem(input, error, problem.message);
        return;
      }
      clearProblem(input, error);
      if (this.serverProblem && this.serverProblem.field === field) this.serverProblem = null;
      const current = this.app.sync.element(this.currentId);
      if (!current) return;
      const props = { ...(current.props && typeof current.props === "object" ? current.props : {}) };
      if ((props[name] ?? null) === (value ?? null)) {
        if (final) this.app.sync.flushSoon();
        return;
      }
      if (value === undefined) delete props[name];
      else props[name] = value;
      this.app.sync.update(this.currentId, { props }, {
        group: `field:${this.currentId}:${field}`,
        debounce: final ? 0 : kind === "string" ? 400 : 200,
      });
    };
    const live = kind === "boolean" || kind === "enum" || kind === "color";
    input.addEventListener("input", () => commit(live));
    input.addEventListener("change", () => commit(true));
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (input.tagName !== "TEXTAREA" || e.ctrlKey || e.metaKey)) {
        commit(true);
        e.preventDefault();
      }
    });
    const hint = typeof spec.description === "string" ? h("span.muted.small", spec.description) : null;
    if (kind === "boolean") return h("div.field", h("label.check", { for: id }, input, h("span", label)), hint, error);
    const range = kind === "number" && (typeof spec.minimum === "number" || typeof spec.maximum === "number")
      ? h("span.unit", ` ${spec.minimum ?? "…"}–${spec.maximum ?? "…"}`) : null;
    return h("div.field", { dataset: { prop: name } }, h("label", { for: id }, label, range), input, hint, error);
  }

  /** Shows `props.<name>` (or its schema default) in its control. */
  fillProp(binding, el) {
    const props = el.props && typeof el.props === "object" ? el.props : {};
    const value = props[binding.prop] !== undefined ? props[binding.prop] : binding.spec.default;
    const { input, kind } = binding;
    if (kind === "boolean") input.checked = value === true;
    else if (kind === "color") input.value = /^#[0-9a-f]{6}$/i.test(String(value || "")) ? value : /^#[0-9a-f]{3}$/i.test(String(value || "")) ? `#${[...String(value).slice(1)].map((c) => c + c).join("")}` : "#000000";
    else input.value = value === undefined || value === null ? "" : String(value);
    clearProblem(input, binding.error);
  }

  /** A save the engine refused because of one field (invalid_scene, details.field): marks that field. */
  serverError(elementId, field, message) {
    this.serverProblem = { elementId, field, message };
    this.showServerProblem();
  }

  showServerProblem() {
    const problem = this.serverProblem;
    if (!problem || problem.elementId !== this.currentId) return;
    const binding = this.fields.get(problem.field);
    if (!binding) return;
    showProblem(binding.input, binding.error, problem.message.replace(/^Not saved: /, ""));
  }

  togglePlay() {
    const el = this.app.sync.element(this.currentId);
    if (!el) return;
    this.app.sync.update(el.id, { playing: el.playing === false }, { group: `play:${el.id}` });
  }
}

