// TTS in the overlay: queues `tts.speak` events and says them one at a time, in order, never two at once.
//
//   - An event with `audio_url` (rendered by the server with espeak-ng) plays through a hidden <audio> element
//     (the overlay token rides in `?token=` like other media).
//   - Otherwise speechSynthesis speaks it with a voice for `lang` (exact tag first, then the same language);
//     no such voice means `tts.failed` with reason `no_voice`.
//   - Reports back over the socket: tts.started, tts.finished, tts.failed {reason}; and after every
//     (re)connect, plus whenever the browser's voice list changes, tts.capabilities {voices: [langs]}.
//   - Honours tts.skip {id?} (stop the current one, or drop a queued one) and tts.clear (drop everything).
//   - After a reconnect the engine sends what is still queued again: ids this page has, or has already said
//     (its outcome is reported again, since the first report may have been lost), are not said twice.
//
// Nothing is drawn: the only node is a hidden <audio id="ov-tts-audio"> under <body>, outside #stage.
// `window.overlayTTS` is a read-only view for debugging and tests.
//
// The tts plugin's overlay module: the overlay calls setup(api) (docs/plugin-bundles.md).

/** The overlay's api, set by setup(). */
let send = () => false;
let config = { debug: false, token: "" };

/** Most utterances waiting in this page (the server bounds its queue too). */
const MAX_QUEUE = 200;
/** How long to wait for the browser to load its voice list before giving up on speechSynthesis. */
const VOICE_WAIT_MS = 1500;
/** Events kept in the debug history. */
const HISTORY = 50;
/** Outcomes remembered, so that a replayed utterance is reported again instead of said twice. */
const RECENT = 200;

/** Utterances waiting, in order. */
const queue = [];
/** The one being said: {item, token, settled, stop()} or null. */
let current = null;
let tokens = 0;
let audioNode = null;
/** Keeps the SpeechSynthesisUtterance alive while it speaks (Chrome drops the events of a collected one). */
let liveUtterance = null;
const history = [];
let reportedVoices = null;
/** id -> {type, extra}: how recent utterances ended (finished, failed) or that they were dropped (skipped). */
const recent = new Map();

function debugLog(...args) {
  if (config.debug) console.debug("[tts]", ...args);
}

function remember(kind, id, extra) {
  history.push({ kind, id, at: Date.now(), ...(extra || {}) });
  if (history.length > HISTORY) history.shift();
}

function report(type, id, extra) {
  send({ type, id, ...(extra || {}) });
  remember(type, id, extra);
}

function settle(id, type, extra) {
  recent.delete(id);
  recent.set(id, { type, extra });
  if (recent.size > RECENT) recent.delete(recent.keys().next().value);
}

function finiteIn(value, low, high, fallback) {
  const number = Number(value);
  if (!Number.isFinite(number)) return fallback;
  return Math.min(high, Math.max(low, number));
}

function normLang(value) {
  return String(value || "").replace(/_/g, "-").toLowerCase();
}

function primary(lang) {
  return normLang(lang).split("-")[0];
}

// ---------------------------------------------------------------------------------------------
// Voices

function synth() {
  return typeof window.speechSynthesis === "object" && window.speechSynthesis && typeof window.SpeechSynthesisUtterance === "function"
    ? window.speechSynthesis
    : null;
}

function voices() {
  const s = synth();
  if (!s) return [];
  try {
    return s.getVoices() || [];
  } catch {
    return [];
  }
}

/** The voice list, waiting a little for browsers that load it after the page. */
function waitForVoices() {
  const s = synth();
  const now = voices();
  if (!s || now.length) return Promise.resolve(now);
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      s.removeEventListener("voiceschanged", done);
      resolve(voices());
    };
    const timer = setTimeout(done, VOICE_WAIT_MS);
    s.addEventListener("voiceschanged", done);
  });
}

/** The best voice for `lang` (and the preferred voice name, when given); null when none speaks the language. */
function pickVoice(list, lang, name) {
  const want = normLang(lang);
  const base = primary(lang);
  const rank = (voice) => (voice.localService ? 2 : 0) + (voice.default ? 1 : 0);
  const best = (candidates) => candidates.sort((a, b) => rank(b) - rank(a))[0] || null;
  if (name) {
    const named = list.filter((v) => String(v.name).toLowerCase() === String(name).toLowerCase());
    const fitting = named.find((v) => primary(v.lang) === base);
    if (fitting) return fitting;
  }
  return best(list.filter((v) => normLang(v.lang) === want)) || best(list.filter((v) => primary(v.lang) === base));
}

/** Tells the engine which languages this page can speak (once per connection, and when the list changes). */
function reportCapabilities(force) {
  const langs = [...new Set(voices().map((v) => String(v.lang || "").replace(/_/g, "-")).filter(Boolean))].sort();
  const key = langs.join(",");
  if (!force && key === reportedVoices) return;
  if (send({ type: "tts.capabilities", voices: langs })) {
    reportedVoices = key;
    remember("tts.capabilities", null, { voices: langs });
  }
}

// ---------------------------------------------------------------------------------------------
// Playing one utterance

function ensureAudio() {
  if (audioNode && audioNode.isConnected) return audioNode;
  audioNode = document.createElement("audio");
  audioNode.id = "ov-tts-audio";
  audioNode.hidden = true;
  audioNode.preload = "auto";
  audioNode.setAttribute("aria-hidden", "true");
  document.body.appendChild(audioNode);
  return audioNode;
}

function withToken(url) {
  if (!config.token) return url;
  return `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(config.token)}`;
}

/** Plays server-rendered audio; returns the function that stops it. */
function playAudio(item, finish) {
  const node = ensureAudio();
  let stopped = false;
  const detach = () => {
    node.onplaying = null;
    node.onended = null;
    node.onerror = null;
  };
  node.onplaying = () => finish.started();
  node.onended = () => {
    detach();
    finish.done();
  };
  node.onerror = () => {
    detach();
    const code = node.error ? node.error.code : 0;
    finish.fail(`audio_error_${code}`);
  };
  node.muted = false;
  node.volume = 1; // the server rendered the volume into the file
  node.playbackRate = 1;
  node.src = withToken(item.audio_url);
  let attempt;
  try {
    attempt = node.play();
  } catch (err) {
    detach();
    finish.fail(`play_failed_${err && err.name ? err.name : "error"}`);
    return () => {};
  }
  if (attempt && typeof attempt.catch === "function") {
    attempt.catch((err) => {
      if (stopped) return; // interrupted by our own stop
      detach();
      finish.fail(err && err.name === "NotAllowedError" ? "autoplay_blocked" : `play_failed_${err && err.name ? err.name : "error"}`);
    });
  }
  return () => {
    stopped = true;
    detach();
    try {
      node.pause();
      node.removeAttribute("src");
      node.load();
    } catch {
      /* nothing to stop */
    }
  };
}

/** Speaks with speechSynthesis; returns the function that stops it. */
function speakWithBrowser(item, finish) {
  const s = synth();
  if (!s) {
    finish.fail("no_speech_synthesis");
    return () => {};
  }
  let stopped = false;
  waitForVoices().then((list) => {
    if (stopped) return;
    const voice = pickVoice(list, item.lang, item.voice);
    if (!voice) {
      finish.fail(list.length ? "no_voice" : "no_voices");
      return;
    }
    const utterance = new SpeechSynthesisUtterance(item.text);
    utterance.voice = voice;
    utterance.lang = voice.lang || item.lang;
    utterance.rate = item.rate;
    utterance.pitch = item.pitch;
    utterance.volume = item.volume;
    utterance.onstart = () => finish.started();
    utterance.onend = () => {
      if (liveUtterance === utterance) liveUtterance = null;
      finish.done();
    };
    utterance.onerror = (event) => {
      if (liveUtterance === utterance) liveUtterance = null;
      if (stopped) return; // "interrupted"/"canceled" by our own stop
      finish.fail(`speech_${event && event.error ? event.error : "error"}`);
    };
    liveUtterance = utterance;
    try {
      s.speak(utterance);
    } catch (err) {
      liveUtterance = null;
      finish.fail(`speech_${err && err.name ? err.name : "error"}`);
    }
  });
  return () => {
    stopped = true;
    liveUtterance = null;
    try {
      s.cancel();
    } catch {
      /* nothing to stop */
    }
  };
}

function start(item) {
  const token = ++tokens;
  const entry = { item, token, settled: false, started: false, stop: () => {} };
  current = entry;
  const live = () => current === entry && !entry.settled;
  const finish = {
    started() {
      if (!live() || entry.started) return;
      entry.started = true;
      report("tts.started", item.id);
    },
    done() {
      if (!live()) return;
      if (!entry.started) finish.started();
      entry.settled = true;
      settle(item.id, "tts.finished");
      report("tts.finished", item.id);
      advance();
    },
    fail(reason) {
      if (!live()) return;
      entry.settled = true;
      const extra = { reason: String(reason).slice(0, 200) };
      settle(item.id, "tts.failed", extra);
      report("tts.failed", item.id, extra);
      advance();
    },
  };
  debugLog("saying", item.id, item.audio_url ? "(audio)" : "(speechSynthesis)");
  entry.stop = item.audio_url ? playAudio(item, finish) : speakWithBrowser(item, finish);
}

function advance() {
  current = null;
  setTimeout(pump, 0);
}

function pump() {
  if (current || queue.length === 0) return;
  start(queue.shift());
}

/** Stops the current utterance without reporting it (the server already dropped it). */
function stopCurrent() {
  const entry = current;
  if (!entry) return;
  entry.settled = true;
  current = null;
  try {
    entry.stop();
  } catch (err) {
    debugLog("stop failed", err);
  }
}

// ---------------------------------------------------------------------------------------------
// Events

function parseSpeak(message) {
  const id = typeof message.id === "string" && message.id.length > 0 && message.id.length <= 64 ? message.id : null;
  const text = typeof message.text === "string" ? message.text : "";
  if (!id || !text.trim()) return null;
  let audioUrl = null;
  if (typeof message.audio_url === "string" && message.audio_url.startsWith("/") && !message.audio_url.startsWith("//")) {
    audioUrl = message.audio_url;
  }
  return {
    id,
    text,
    lang: typeof message.lang === "string" && message.lang ? message.lang : "en-US",
    voice: typeof message.voice === "string" ? message.voice : "",
    rate: finiteIn(message.rate, 0.1, 10, 1),
    pitch: finiteIn(message.pitch, 0, 2, 1),
    volume: finiteIn(message.volume, 0, 1, 1),
    audio_url: audioUrl,
  };
}

/**
 * Wires the module into the overlay: socket handlers, the voice-list watch and `window.overlayTTS`.
 * @param {object} api  the overlay's plugin api (on, send, config, ...)
 */
export default function setup(api) {
  send = api.send;
  config = api.config;
  const on = api.on;

  on("tts.speak", (message) => {
    const item = parseSpeak(message);
    if (!item) {
      debugLog("ignored a tts.speak without id or text");
      return;
    }
    if ((current && current.item.id === item.id) || queue.some((queued) => queued.id === item.id)) return;
    const done = recent.get(item.id);
    if (done) {
      // The engine sends what is still queued after a reconnect; it missed how this one ended.
      if (done.type) report(done.type, item.id, done.extra);
      return;
    }
    if (queue.length >= MAX_QUEUE) {
      report("tts.failed", item.id, { reason: "overlay_queue_full" });
      return;
    }
    queue.push(item);
    remember("tts.speak", item.id);
    pump();
  });

  on("tts.skip", (message) => {
    const id = typeof message.id === "string" ? message.id : null;
    remember("tts.skip", id);
    if (id) settle(id, null);
    else if (current) settle(current.item.id, null);
    if (!id || (current && current.item.id === id)) {
      stopCurrent();
      setTimeout(pump, 0);
      return;
    }
    const index = queue.findIndex((queued) => queued.id === id);
    if (index >= 0) queue.splice(index, 1);
  });

  on("tts.clear", () => {
    remember("tts.clear", null);
    for (const item of queue) settle(item.id, null);
    if (current) settle(current.item.id, null);
    queue.length = 0;
    stopCurrent();
    const s = synth();
    if (s) {
      try {
        s.cancel();
      } catch {
        /* nothing to stop */
      }
    }
  });

  // `hello` is the first frame of every (re)connection: report the voices to this connection.
  on("hello", () => reportCapabilities(true));

  {
    const s = synth();
    if (s && typeof s.addEventListener === "function") s.addEventListener("voiceschanged", () => reportCapabilities(false));
  }

  Object.defineProperty(window, "overlayTTS", {
    value: Object.freeze(Object.defineProperties({}, {
      current: { enumerable: true, get: () => (current ? current.item.id : null) },
      queue: { enumerable: true, get: () => queue.map((item) => item.id) },
      history: { enumerable: true, get: () => history.map((entry) => ({ ...entry })) },
      voices: { enumerable: true, get: () => voices().map((v) => `${v.name} (${v.lang})`) },
    })),
    writable: false,
    configurable: true,
    enumerable: true,
  });
}
