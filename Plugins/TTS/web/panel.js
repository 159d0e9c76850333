// The tts plugin's panel module: the TTS tab of the moderator panel. Compose (text, language, rate, pitch,
// volume), presets kept in localStorage, and the live queue with skip and clear (socket `tts.queue`).
// Ctrl+Enter in the text speaks.

import { describeError } from "/js/lib/api.js";
import { notify, promptDialog } from "/js/lib/notices.js";
import { h, storage, syncList } from "/js/lib/util.js";

const PRESETS_KEY = "onionrp.tts.presets";
const LAST_KEY = "onionrp.tts.last";
const LANGS = [
  ["en-US", "English (US)"], ["en-GB", "English (UK)"], ["ru-RU", "Русский"], ["uk-UA", "Українська"], ["de-DE", "Deutsch"],
  ["fr-FR", "Français"], ["es-ES", "Español"], ["it-IT", "Italiano"], ["pt-BR", "Português (BR)"], ["pl-PL", "Polski"],
  ["nl-NL", "Nederlands"], ["tr-TR", "Türkçe"], ["ja-JP", "日本語"], ["ko-KR", "한국어"], ["zh-CN", "中文"],
];
const DEFAULTS = { lang: "en-US", rate: 1, pitch: 1, volume: 1 };

/**
 * Adds the TTS tab when the engine serves POST /api/tts/speak.
 * @param {object} api  the panel's plugin api
 */
export default function setup(api) {
  const caps = {
    tts: api.hasRoute("POST", "/api/tts/speak"),
    ttsQueue: api.hasRoute("GET", "/api/tts/queue"),
    ttsSkip: api.hasRoute("POST", "/api/tts/skip"),
    ttsClear: api.hasRoute("POST", "/api/tts/clear"),
  };
  if (!caps.tts) return;
  api.addTab({
    id: "tts",
    label: "TTS",
    render(container) {
      const panel = new TtsPanel(api, caps, container);
      panel.init();
      api.onReconnect(() => panel.refresh());
    },
  });
}

export class TtsPanel {
  constructor(api, caps, root) {
    this.api = api;
    this.caps = caps;
    this.root = root;
    this.store = storage("local");
    this.queueState = { current: null, queue: [] };
  }

  init() {
    this.root.textContent = "";
    const last = { ...DEFAULTS, ...this.store.getJSON(LAST_KEY, {}) };
    this.text = h("textarea#tts-text", { rows: 3, maxlength: 500, placeholder: "What should the stream hear? (Ctrl+Enter speaks)" });
    this.lang = h("input#tts-lang", { type: "text", list: "tts-langs", value: last.lang, autocomplete: "off", spellcheck: false });
    const slider = (id, label, min, max, step, value) => {
      const input = h("input", { id, type: "range", min, max, step });
      input.value = value;
      const out = h("output", { for: id }, String(value));
      input.addEventListener("input", () => {
        out.textContent = input.value;
      });
      return { input, out, node: h("div.field.slider", h("label", { for: id }, label, " ", out), input) };
    };
    this.rate = slider("tts-rate", "Rate", 0.5, 2, 0.05, last.rate);
    this.pitch = slider("tts-pitch", "Pitch", 0, 2, 0.05, last.pitch);
    this.volume = slider("tts-volume", "Volume", 0, 1, 0.05, last.volume);
    this.speakBtn = h("button.btn.primary#tts-speak", { type: "submit" }, "Speak");
    this.result = h("p.small.muted#tts-result", { role: "status" });
    this.presetBar = h("div.presets#tts-presets", { role: "group", "aria-label": "Presets" });
    const form = h("form.tts-form",
      h("label.field", { for: "tts-text" }, h("span", "Text"), this.text),
      h("div.grid2",
        h("div.field", h("label", { for: "tts-lang" }, "Language"), this.lang,
          h("datalist#tts-langs", LANGS.map(([v, t]) => h("option", { value: v }, t)))),
        this.volume.node),
      h("div.grid2", this.rate.node, this.pitch.node),
      h("div.row.between", h("div.row.gap", this.speakBtn,
        h("button.btn.small", { type: "button", onclick: () => this.savePreset() }, "Save preset")), this.result),
      this.presetBar);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.speak();
    });
    this.text.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        this.speak();
      }
    });
    this.queueList = h("ol.tts-queue#tts-queue", { "aria-label": "Speech queue" });
    this.clearBtn = h("button.btn.small.danger#tts-clear", { type: "button", onclick: () => this.clear() }, "Clear queue");
    this.root.append(form, h("div.row.between.section-head", h("h3", "Queue"), this.caps.ttsClear ? this.clearBtn : null), this.queueList);
    this.renderPresets();
    this.renderQueue();
    this.api.on("tts.queue", (m) => {
      this.queueState = { current: m.current ?? null, queue: Array.isArray(m.queue) ? m.queue : [] };
      this.renderQueue();
    });
    this.refresh();
  }

  async refresh() {
    if (!this.caps.ttsQueue) return;
    try {
      const answer = await this.api.request("GET", "/api/tts/queue");
      this.queueState = { current: answer.current ?? null, queue: Array.isArray(answer.queue) ? answer.queue : [] };
      this.renderQueue();
    } catch {
      /* the socket event brings it */
    }
  }

  settings() {
    return {
      lang: this.lang.value.trim() || DEFAULTS.lang,
      rate: Number(this.rate.input.value),
      pitch: Number(this.pitch.input.value),
      volume: Number(this.volume.input.value),
    };
  }

  apply(preset) {
    this.lang.value = preset.lang || DEFAULTS.lang;
    for (const key of ["rate", "pitch", "volume"]) {
      const value = preset[key] ?? DEFAULTS[key];
      this[key].input.value = value;
      this[key].out.textContent = String(value);
    }
  }

  async speak() {
    const text = this.text.value.trim();
    if (!text) {
      this.result.textContent = "Type something to say first.";
      this.text.focus();
      return;
    }
    const settings = this.settings();
    this.store.setJSON(LAST_KEY, settings);
    this.speakBtn.disabled = true;
    this.result.textContent = "Sending…";
    try {
      const answer = await this.api.request("POST", "/api/tts/speak", { text, ...settings });
      const position = Number(answer.position);
      this.result.textContent = Number.isFinite(position) && position > 0 ? `Queued, position ${position}` : "Speaking now";
      this.text.value = "";
      if (this.caps.ttsQueue) setTimeout(() => this.refresh(), 300);
    } catch (err) {
      this.result.textContent = "";
      notify(`Speech not sent: ${describeError(err)}`, { kind: "error", timeout: 6000 });
    } finally {
      this.speakBtn.disabled = false;
    }
  }

  presets() {
    const list = this.store.getJSON(PRESETS_KEY, null);
    return Array.isArray(list) ? list : [];
  }

  async savePreset() {
    const name = await promptDialog({
      title: "Save TTS preset",
      label: "Preset name",
      placeholder: "e.g. Fast English",
      confirmLabel: "Save",
      validate: (v) => (!v ? "Give it a name" : v.length > 30 ? "At most 30 characters" : ""),
    });
    if (!name) return;
    const list = this.presets().filter((p) => p.name !== name);
    list.push({ name, ...this.settings() });
    this.store.setJSON(PRESETS_KEY, list.slice(-12));
    this.renderPresets();
    this.result.textContent = `Preset “${name}” saved`;
  }

  deletePreset(name) {
    this.store.setJSON(PRESETS_KEY, this.presets().filter((p) => p.name !== name));
    this.renderPresets();
  }

  renderPresets() {
    const list = this.presets();
    this.presetBar.textContent = "";
    if (!list.length) {
      this.presetBar.append(h("span.small.muted", "Presets you save appear here."));
      return;
    }
    for (const preset of list) {
      this.presetBar.append(h("span.chip",
        h("button.chip-main", {
          type: "button",
          title: `${preset.lang}, rate ${preset.rate}, pitch ${preset.pitch}, volume ${preset.volume}`,
          onclick: () => {
            this.apply(preset);
            this.result.textContent = `Preset “${preset.name}”`;
          },
        }, preset.name),
        h("button.chip-x", { type: "button", "aria-label": `Delete preset ${preset.name}`, onclick: () => this.deletePreset(preset.name) }, "×")));
    }
  }

  itemText(item) {
    if (!item) return "";
    if (typeof item === "string") return item;
    return item.text || item.id || "";
  }

  renderQueue() {
    const { current, queue } = this.queueState;
    const items = [...(current ? [{ item: current, playing: true }] : []), ...queue.map((item) => ({ item, playing: false }))];
    syncList(this.queueList, items, ({ item }) => (item && item.id) || this.itemText(item), ({ item }) => h("li.tts-item",
      { dataset: { id: item && item.id ? item.id : "" } },
      h("span.tts-state"),
      h("span.tts-text", { title: this.itemText(item) }, this.itemText(item)),
      item && item.lang ? h("span.small.muted", item.lang) : h("span"),
      this.caps.ttsSkip
        ? h("button.btn.small", { type: "button", "aria-label": `Skip: ${this.itemText(item).slice(0, 40)}`, onclick: () => this.skip(item && item.id) }, "Skip")
        : h("span")),
    (node, { playing }) => {
      node.classList.toggle("playing", playing);
      node.querySelector(".tts-state").textContent = playing ? "▶ now" : "";
    });
    if (!items.length) this.queueList.append(h("li.muted.empty-hint", "Nothing queued."));
  }

  async skip(id) {
    try {
      await this.api.request("POST", "/api/tts/skip", id ? { id } : {});
      notify("Skipped", { kind: "ok", timeout: 1500 });
      this.refresh();
    } catch (err) {
      notify(`Could not skip: ${describeError(err)}`, { kind: "error" });
    }
  }

  async clear() {
    try {
      await this.api.request("POST", "/api/tts/clear", {});
      notify("Queue cleared", { kind: "ok", timeout: 1500 });
      this.refresh();
    } catch (err) {
      notify(`Could not clear: ${describeError(err)}`, { kind: "error" });
    }
  }
}
