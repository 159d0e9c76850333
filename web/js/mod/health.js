// The health strip: socket state, overlays connected with the version they show and their lag,
// acknowledgement latency and save rate (GET /api/metrics/realtime every 2 s), and plugins whose page module
// failed to load.

import { describeError } from "../lib/api.js";
import { h } from "../lib/util.js";
import { onPluginStatus, pluginStatus } from "../lib/plugins.js";

export class HealthStrip {
  /**
   * @param {object} app  {api, socket?}
   * @param {HTMLElement} root
   */
  constructor(app, root) {
    this.app = app;
    this.root = root;
    this.metrics = null;
    this.error = "";
    this.timer = 0;
    this.conn = h("span.health-item.conn#health-conn", { dataset: { state: "connecting" } }, h("span.dot", { "aria-hidden": "true" }), h("span.label", "Connecting…"));
    this.retry = h("button.btn.small.link#health-retry", { type: "button", hidden: true, onclick: () => this.app.socket && this.app.socket.reconnectNow() }, "Reconnect now");
    this.overlays = h("span.health-item#health-overlays", "Overlays –");
    this.chips = h("span.overlay-chips#health-chips");
    this.latency = h("span.health-item.small#health-latency");
    this.saves = h("span.health-item.small#health-saves");
    this.mods = h("span.health-item.small#health-mods");
    this.plugins = h("span.health-item.small.plugins-failed#health-plugins", { hidden: true, role: "status" });
    root.append(this.conn, this.retry, this.overlays, this.chips, h("span.spacer"), this.plugins, this.latency, this.mods, this.saves);
    this.renderPlugins();
    onPluginStatus(() => this.renderPlugins());
    if (app.socket) {
      app.socket.onState((state) => {
        this.renderConn();
        if (state === "open" && !this.stopped) this.refresh(); // counts include us now
      });
      setInterval(() => this.renderConn(), 1000);
    } else {
      this.conn.hidden = true;
    }
  }

  start() {
    this.stopped = false;
    // Back from a background tab: fresh numbers at once, not at the next (slower) tick.
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && !this.stopped) this.refresh();
    });
    const tick = async () => {
      await this.refresh();
      if (!this.stopped) this.timer = setTimeout(tick, document.hidden ? 5000 : 2000);
    };
    tick();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  renderConn() {
    const socket = this.app.socket;
    if (!socket) return;
    const state = socket.state;
    let text = "Connecting…";
    if (state === "open") text = socket.rttMs !== null ? `Live · ${socket.rttMs} ms` : "Live";
    else if (state === "closed") {
      const wait = Math.max(0, Math.ceil((socket.retryAt - Date.now()) / 1000));
      text = wait > 0 ? `Offline · retry in ${wait} s` : "Offline · reconnecting…";
    } else if (state === "stopped") text = "Disconnected";
    this.conn.dataset.state = state;
    this.conn.querySelector(".label").textContent = text;
    this.conn.title = state === "open" ? "Live updates connected" : "Live updates are not connected; your edits are kept and sent when it is back";
    this.retry.hidden = state !== "closed";
  }

  /** Plugins whose module failed: named here (the rest of the panel works without them). */
  renderPlugins() {
    const failed = pluginStatus.failed;
    this.plugins.hidden = failed.length === 0;
    this.plugins.textContent = failed.length ? `⚠ plugin${failed.length === 1 ? "" : "s"} failed: ${failed.map((f) => f.name).join(", ")}` : "";
    this.plugins.title = failed.map((f) => `${f.name}: ${f.error}`).join("\n");
    this.plugins.dataset.failed = failed.map((f) => f.name).join(" ");
  }

  async refresh() {
    try {
      this.metrics = await this.app.api.get("/api/metrics/realtime");
      this.error = "";
    } catch (err) {
      this.error = describeError(err);
    }
    this.render();
  }

  render() {
    const m = this.metrics;
    if (this.error && !m) {
      this.overlays.textContent = `Metrics unavailable: ${this.error}`;
      return;
    }
    if (!m) return;
    const overlays = Array.isArray(m.overlays) ? m.overlays : [];
    const connected = overlays.filter((o) => o.connected);
    const latest = m.latest_version;
    this.overlays.textContent = "";
    this.overlays.append(h("strong", String(m.overlays_connected ?? connected.length)), ` overlay${(m.overlays_connected ?? connected.length) === 1 ? "" : "s"}`);
    this.overlays.dataset.state = (m.overlays_connected ?? connected.length) > 0 ? "ok" : "none";
    this.chips.textContent = "";
    for (const o of connected.slice(0, 4)) {
      const lag = Number(o.lag_versions) || 0;
      this.chips.append(h("span.chip.overlay-chip", {
        class: lag > 0 ? "lagging" : "",
        dataset: { overlay: o.overlay_id },
        title: `${o.overlay_id}: shows version ${o.applied_version ?? "–"}${lag ? `, ${lag} behind` : ", up to date"}${o.last_latency_ms != null ? `, last apply ${Math.round(o.last_latency_ms)} ms` : ""}`,
      }, `${o.overlay_id.length > 14 ? `${o.overlay_id.slice(0, 13)}…` : o.overlay_id} · v${o.applied_version ?? "–"}${lag ? ` · lag ${lag}` : " ✓"}`));
    }
    if (connected.length > 4) this.chips.append(h("span.small.muted", `+${connected.length - 4}`));
    if (!connected.length) this.chips.append(h("span.small.muted", "no overlay open — add /overlay to OBS"));
    const p95 = m.ack_latency_ms && m.ack_latency_ms.p95;
    this.latency.textContent = p95 != null ? `apply p95 ${Math.round(p95)} ms` : "";
    this.latency.title = "Time from a live edit's broadcast to each overlay's acknowledgement (last 5 minutes); overlays that connect later are timed from the scene sent to them and counted apart"
      + (m.late_join_latency_ms && m.late_join_latency_ms.p95 != null ? ` (first draw p95 ${Math.round(m.late_join_latency_ms.p95)} ms)` : "");
    this.mods.textContent = m.moderators_connected != null ? `${m.moderators_connected} mod${m.moderators_connected === 1 ? "" : "s"} online` : "";
    this.saves.textContent = m.saves_last_minute != null ? `${m.saves_last_minute} saves/min · latest v${latest ?? "–"}` : "";
    if (this.error) this.overlays.append(h("span.small.bad", ` (stale: ${this.error})`));
  }
}
