// The moderator socket (/ws/moderator?session=): reconnects with jittered exponential backoff,
// pings to notice a dead link, dispatches typed events, and reports a refused session (4401).

import { Backoff } from "../lib/backoff.js";

const PING_EVERY_MS = 15000;
const SILENCE_LIMIT_MS = 40000;

export class ModeratorSocket {
  /**
   * @param {object} options
   * @param {() => string} options.session  the current session secret
   * @param {(reason: string) => void} options.onAuthFailed  the engine refused the session (close 4401/4403)
   */
  constructor({ session, onAuthFailed }) {
    this.session = session;
    this.onAuthFailed = onAuthFailed;
    this.handlers = new Map();
    this.stateHandlers = new Set();
    this.ws = null;
    this.state = "idle"; // idle | connecting | open | closed | stopped
    this.backoff = new Backoff({ baseMs: 500, maxMs: 10000, maxAttempt: 20 });
    this.retryTimer = 0;
    this.retryAt = 0;
    this.generation = 0;
    this.lastReceived = 0;
    this.pingSentAt = 0;
    this.rttMs = null;
    this.openedOnce = false;
    this.pingTimer = setInterval(() => this.watchdog(), PING_EVERY_MS);
    this.onOnline = () => {
      if (this.state === "closed") this.reconnectNow();
    };
    window.addEventListener("online", this.onOnline);
  }

  /** Registers a handler of an event type ("*" for every message); returns an unsubscribe function. */
  on(type, handler) {
    if (!this.handlers.has(type)) this.handlers.set(type, new Set());
    this.handlers.get(type).add(handler);
    return () => this.handlers.get(type)?.delete(handler);
  }

  /** Called with (state, detail) on every state change. */
  onState(handler) {
    this.stateHandlers.add(handler);
    return () => this.stateHandlers.delete(handler);
  }

  setState(state, detail = {}) {
    this.state = state;
    for (const handler of [...this.stateHandlers]) {
      try {
        handler(state, detail);
      } catch (err) {
        console.warn("[mod] socket state handler", err);
      }
    }
  }

  url() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/ws/moderator?session=${encodeURIComponent(this.session())}&patches=1`;
  }

  connect() {
    clearTimeout(this.retryTimer);
    if (this.state === "stopped") return;
    const generation = ++this.generation;
    this.setState("connecting", { attempt: this.backoff.attempt });
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch {
      this.scheduleReconnect({});
      return;
    }
    this.ws = ws;
    const current = () => generation === this.generation;
    ws.onopen = () => {
      if (current()) this.lastReceived = Date.now();
    };
    ws.onmessage = (event) => {
      if (!current()) return;
      this.lastReceived = Date.now();
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      if (!message || typeof message.type !== "string") return;
      if (message.type === "hello") {
        // Open for us once the engine greets (a refused session is upgraded and closed at once).
        this.backoff.reset();
        const reconnected = this.openedOnce;
        this.openedOnce = true;
        this.setState("open", { reconnected });
      }
      if (message.type === "pong" && this.pingSentAt) {
        this.rttMs = Math.round(performance.now() - this.pingSentAt);
        this.pingSentAt = 0;
      }
      this.dispatch(message);
    };
    ws.onerror = () => {
      /* a close event follows */
    };
    ws.onclose = (event) => {
      if (!current()) return;
      this.ws = null;
      if (event.code === 4401 || event.code === 4403) {
        this.setState("stopped", { code: event.code, reason: event.reason });
        this.onAuthFailed(event.reason || "Your session is no longer valid");
        return;
      }
      this.scheduleReconnect({ code: event.code, reason: event.reason });
    };
  }

  dispatch(message) {
    for (const type of [message.type, "*"]) {
      const set = this.handlers.get(type);
      if (!set) continue;
      for (const handler of [...set]) {
        try {
          handler(message);
        } catch (err) {
          console.warn(`[mod] handler of '${message.type}'`, err);
        }
      }
    }
  }

  scheduleReconnect(detail = {}) {
    clearTimeout(this.retryTimer);
    if (this.state === "stopped") return;
    const delay = this.backoff.next();
    this.retryAt = Date.now() + delay;
    this.setState("closed", { ...detail, retryAt: this.retryAt });
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  /** Skips the backoff wait (the "Reconnect now" button, the browser coming back online). */
  reconnectNow() {
    if (this.state === "stopped" || this.state === "open" || this.state === "connecting") return;
    this.backoff.reset();
    this.connect();
  }

  send(message) {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    try {
      ws.send(JSON.stringify(message));
      return true;
    } catch {
      return false;
    }
  }

  watchdog() {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    if (Date.now() - this.lastReceived > SILENCE_LIMIT_MS) {
      // No frame (not even a pong) for too long: the link is dead even if the browser has not noticed.
      this.generation += 1;
      this.ws = null;
      try {
        ws.close();
      } catch {
        /* closing */
      }
      this.scheduleReconnect();
      return;
    }
    this.pingSentAt = performance.now();
    this.send({ type: "ping" });
  }

  /** Closes for good (log out). */
  stop() {
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    window.removeEventListener("online", this.onOnline);
    this.generation += 1;
    const ws = this.ws;
    this.ws = null;
    this.setState("stopped", {});
    if (ws) {
      try {
        ws.close(1000, "logout");
      } catch {
        /* closing */
      }
    }
  }
}
