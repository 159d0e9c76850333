// The edited scene and how it is saved.
//
//   server    the newest scene the engine confirmed (a save's answer or a `scene.full` frame)
//   pending   operations not sent yet, coalesced (an update of the same element merges fields)
//   inflight  the one PATCH on its way (there is never more than one)
//   local     server + inflight + pending: what the editor shows
//
// Saving: PATCH /api/scenes/{name} with base_version = the server version, at most one request per
// SAVE_SPACING_MS and one in flight; text fields wait DEBOUNCE (typing) before they go.
// Conflicts: `snapshots` keep, for every element with unsent edits, the element as the server had it
// when the edit began. When a newer scene arrives from someone else, a field that they changed and
// we also changed (to something else) is a conflict: our edit of that element is dropped, the server's
// version is shown and the moderator is told. Everything else is rebased onto the new version. A 409
// from the engine (a race the socket had not shown yet) is resolved the same way: take the server's scene.
// Offline: unsent operations stay queued (and shown); on reconnect the fresh scene is fetched, checked
// for conflicts as above, and the rest is sent on top of it.
// Undo/redo: POST /api/scene/restore of the version before / after one of our edit groups (a drag,
// a burst of nudges, typing in one field).
// Gesture tokens: every edit group gets a short token sent with its saves (`group` in the PATCH), so
// the engine keeps one history entry per gesture, the same one every client sees, and undo's
// "before" version is never merged away.

import { ApiError, describeError } from "../lib/api.js";
import { clone, deepEqual } from "../lib/util.js";

export const SAVE_SPACING_MS = 100;
const GROUP_WINDOW_MS = 1500;
const UNDO_LIMIT = 50;
const TOKEN_PREFIX = Math.random().toString(36).slice(2, 8);
let tokenCount = 0;

/** Applies operations to a scene copy, tolerating ones that no longer fit (they were made on an older version). */
export function applyOps(scene, ops) {
  if (!scene) return scene;
  const elements = scene.elements.slice();
  const indexOf = (id) => elements.findIndex((el) => el.id === id);
  for (const op of ops) {
    switch (op.op) {
      case "add": {
        const at = indexOf(op.element.id);
        if (at >= 0) elements[at] = { ...op.element };
        else elements.splice(Math.min(op.index ?? elements.length, elements.length), 0, { ...op.element });
        break;
      }
      case "update": {
        const at = indexOf(op.id);
        if (at < 0) break;
        const next = { ...elements[at] };
        for (const [key, value] of Object.entries(op.fields)) {
          if (value === null) delete next[key];
          else next[key] = value;
        }
        elements[at] = next;
        break;
      }
      case "remove": {
        const at = indexOf(op.id);
        if (at >= 0) elements.splice(at, 1);
        break;
      }
      case "move": {
        const at = indexOf(op.id);
        if (at < 0) break;
        const [el] = elements.splice(at, 1);
        elements.splice(Math.min(op.index, elements.length), 0, el);
        break;
      }
      case "reorder": {
        const byId = new Map(elements.map((el) => [el.id, el]));
        const ordered = op.ids.map((id) => byId.get(id)).filter(Boolean);
        const rest = elements.filter((el) => !op.ids.includes(el.id));
        elements.splice(0, elements.length, ...ordered, ...rest);
        break;
      }
      default:
        break;
    }
  }
  return { ...scene, elements };
}

function touched(op) {
  if (op.op === "add") return op.element.id;
  if (op.op === "update" || op.op === "remove" || op.op === "move") return op.id;
  return null;
}

function findElement(scene, id) {
  return scene ? scene.elements.find((el) => el.id === id) || null : null;
}

/** Merges `op` into `ops` (in place) where it can: later update fields win, remove cancels a pending add. */
function coalesce(ops, op) {
  if (op.op === "update") {
    for (let i = ops.length - 1; i >= 0; i -= 1) {
      const prev = ops[i];
      if (prev.op === "update" && prev.id === op.id) {
        prev.fields = { ...prev.fields, ...op.fields };
        if (op.final) prev.final = true;
        return;
      }
      if (prev.op === "add" && prev.element.id === op.id) {
        for (const [key, value] of Object.entries(op.fields)) {
          if (value === null) delete prev.element[key];
          else prev.element[key] = value;
        }
        return;
      }
      if (prev.op === "remove" || prev.op === "move" || prev.op === "reorder") break;
    }
  }
  if (op.op === "remove") {
    const addAt = ops.findIndex((prev) => prev.op === "add" && prev.element.id === op.id);
    if (addAt >= 0) {
      // Never sent: forget it entirely.
      for (let i = ops.length - 1; i >= 0; i -= 1) if (touched(ops[i]) === op.id) ops.splice(i, 1);
      return;
    }
    for (let i = ops.length - 1; i >= 0; i -= 1) if (ops[i].op === "update" && ops[i].id === op.id) ops.splice(i, 1);
  }
  ops.push(op);
}

export class SceneSync extends EventTarget {
  /**
   * @param {object} options
   * @param {ReturnType<import("./api.js").createApi>} options.api
   */
  constructor({ api }) {
    super();
    this.api = api;
    this.name = "";
    this.server = null;
    this.local = null;
    this.pending = [];
    this.pendingGroup = null;
    this.inflight = null;
    this.snapshots = new Map();
    this.deferred = [];
    this.held = new Set();
    this.online = true;
    this.lastSendAt = 0;
    this.debounceUntil = 0;
    this.retryAt = 0;
    this.retryDelay = 1000;
    this.timer = 0;
    this.lastError = "";
    this.savedAt = 0;
    this.waiters = [];
    this.undoStacks = new Map();
    this.busy = false; // a restore/activate runs
  }

  // ------------------------------------------------------------------------------------------
  // Reading

  get version() {
    return this.server ? this.server._version : 0;
  }

  get pendingCount() {
    return this.pending.length + (this.inflight ? this.inflight.ops.length : 0);
  }

  element(id) {
    return findElement(this.local, id);
  }

  /** "saved" | "pending" | "saving" | "offline" | "error". */
  get saveState() {
    if (!this.online) return "offline";
    if (this.inflight || this.busy) return "saving";
    if (this.pending.length) return "pending";
    if (this.lastError) return "error";
    return "saved";
  }

  get stacks() {
    if (!this.undoStacks.has(this.name)) this.undoStacks.set(this.name, { undo: [], redo: [] });
    return this.undoStacks.get(this.name);
  }

  get canUndo() {
    return this.stacks.undo.length > 0;
  }

  get canRedo() {
    return this.stacks.redo.length > 0;
  }

  emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  recompute(reason) {
    if (!this.server) {
      this.local = null;
    } else {
      const ops = [...(this.inflight ? this.inflight.ops : []), ...this.pending];
      this.local = ops.length ? applyOps(this.server, ops) : this.server;
    }
    this.emit("change", { reason });
    this.emitStatus();
  }

  emitStatus() {
    this.emit("status", { state: this.saveState, version: this.version, pending: this.pendingCount, error: this.lastError });
  }

  // ------------------------------------------------------------------------------------------
  // Loading

  /** Starts editing scene `name` (after the current edits are saved). */
  async load(name) {
    await this.idle(4000);
    const scene = await this.api.get(`/api/scenes/${encodeURIComponent(name)}`);
    this.name = scene.name || name;
    this.server = scene;
    this.pending = [];
    this.inflight = null;
    this.snapshots.clear();
    this.deferred = [];
    this.lastError = "";
    this.recompute("load");
    return scene;
  }

  /** A scene from the socket (`scene.full`) or a fetch. */
  receive(scene, { force = false } = {}) {
    if (!scene || scene.name !== this.name || !this.server) return;
    if (this.inflight || this.busy) {
      // Our own save may be in this version; decide once its answer is here.
      this.deferred.push(scene);
      return;
    }
    if (!force && scene._version <= this.server._version) return;
    this.server = scene;
    const conflicts = this.rebase();
    this.recompute(conflicts.length ? "conflict" : "remote");
    if (conflicts.length) this.reportConflict(conflicts, "changed by someone else while you were editing");
    this.schedule();
  }

  /**
   * Checks unsent operations against the server scene: drops what the server already has, drops
   * (and returns) the elements whose edited fields someone else changed, and rebases the rest.
   */
  rebase() {
    const conflicts = [];
    const ids = new Set(this.pending.map(touched).filter(Boolean));
    for (const id of ids) {
      const snapshot = this.snapshots.has(id) ? this.snapshots.get(id) : findElement(this.server, id);
      const current = findElement(this.server, id);
      let conflict = null;
      for (const op of this.pending) {
        if (touched(op) !== id) continue;
        if (op.op === "update") {
          if (!current) {
            conflict = { id, fields: Object.keys(op.fields), removed: true };
            break;
          }
          if (this.held.has(id)) continue; // a drag in progress wins for its own fields
          for (const [field, ours] of Object.entries(op.fields)) {
            const base = snapshot ? snapshot[field] : undefined;
            const theirs = current[field];
            const same = (a, b) => deepEqual(a ?? null, b ?? null);
            if (same(theirs, ours)) continue;
            if (!same(theirs, base)) {
              conflict = { id, fields: [field], removed: false };
              break;
            }
          }
          if (conflict) break;
        }
      }
      if (conflict) {
        conflicts.push(conflict);
        this.pending = this.pending.filter((op) => touched(op) !== id);
        this.snapshots.delete(id);
        continue;
      }
      // Already there (a save whose answer got lost) or gone: drop what is moot.
      this.pending = this.pending.filter((op) => {
        if (touched(op) !== id) return true;
        if (op.op === "add") return !current;
        if (op.op === "remove") return !!current;
        if (op.op === "update") {
          if (op.final) return true;
          for (const [field, value] of Object.entries(op.fields)) {
            if (deepEqual(current?.[field] ?? null, value ?? null)) delete op.fields[field];
          }
          return Object.keys(op.fields).length > 0 || this.held.has(id);
        }
        return true;
      });
      this.snapshots.set(id, current ? clone(current) : null);
    }
    this.pruneSnapshots();
    return conflicts;
  }

  pruneSnapshots() {
    const live = new Set([...this.pending, ...(this.inflight ? this.inflight.ops : [])].map(touched).filter(Boolean));
    for (const id of [...this.snapshots.keys()]) if (!live.has(id)) this.snapshots.delete(id);
  }

  reportConflict(conflicts, why, message = "") {
    const names = conflicts.map((c) => {
      const el = findElement(this.server, c.id);
      return el?.name || c.id;
    });
    this.emit("conflict", {
      elements: conflicts.map((c) => c.id),
      message: message || `${names.map((n) => `'${n}'`).join(", ")} ${conflicts.length === 1 ? "was" : "were"} ${why}. You now see their version (v${this.version}); your change to ${conflicts.length === 1 ? "it" : "them"} was not saved — redo it if it is still needed.`,
    });
  }

  // ------------------------------------------------------------------------------------------
  // Editing

  /**
   * Queues operations and shows them at once.
   * @param {object[]} ops
   * @param {object} [options]
   * @param {string} [options.group]  edits with the same group key close together undo as one
   * @param {number} [options.debounce]  ms to wait for more (typing); 0 = as soon as the spacing allows
   */
  queue(ops, { group = null, debounce = 0 } = {}) {
    if (!this.server || !ops.length) return;
    for (const op of ops) {
      const id = touched(op);
      if (id && !this.snapshots.has(id)) {
        const current = findElement(this.server, id);
        this.snapshots.set(id, current ? clone(current) : null);
      }
      coalesce(this.pending, clone(op));
    }
    this.pendingGroup = this.tokenFor(group);
    this.lastError = "";
    if (debounce > 0) this.debounceUntil = performance.now() + debounce;
    else this.debounceUntil = 0;
    this.recompute("local");
    this.schedule();
  }

  /**
   * The gesture token of an edit group: the same while the group goes on (a pointer gesture until it
   * ends, other groups while their edits come within GROUP_WINDOW_MS of each other), a new one after.
   */
  tokenFor(group) {
    if (!group) return null;
    const now = performance.now();
    const open = this.openGroup;
    // Pointer gestures are unique per gesture; typing in one field pauses longer than a burst of nudges.
    const window = /^(move|resize|rotate|pinch):/.test(group) ? Infinity : group.startsWith("field:") ? 10000 : GROUP_WINDOW_MS;
    if (open && open.key === group && now - open.at < window) {
      open.at = now;
      return open.token;
    }
    this.openGroup = { key: group, token: `${TOKEN_PREFIX}-${++tokenCount}`, at: now };
    return this.openGroup.token;
  }

  update(id, fields, options) {
    this.queue([{ op: "update", id, fields }], options);
  }

  /** The last save of a gesture: always sent (even if equal to the previous one), so the final state is confirmed. */
  finalUpdate(id, fields, options) {
    this.queue([{ op: "update", id, fields, final: true }], options);
  }

  hold(id) {
    this.held.add(id);
  }

  release(id) {
    this.held.delete(id);
  }

  // ------------------------------------------------------------------------------------------
  // Saving

  schedule() {
    clearTimeout(this.timer);
    this.timer = 0;
    if (!this.pending.length || this.inflight || this.busy || !this.online || !this.server) {
      this.settle();
      return;
    }
    const now = performance.now();
    const at = Math.max(this.lastSendAt + SAVE_SPACING_MS, this.debounceUntil, this.retryAt);
    if (at > now) {
      this.timer = setTimeout(() => this.schedule(), Math.ceil(at - now));
      return;
    }
    this.send();
  }

  /** Sends pending operations now (spacing still applies): Enter in a field, leaving a field. */
  flushSoon() {
    this.debounceUntil = 0;
    this.schedule();
  }

  async send() {
    const ops = this.pending.map(({ final, ...op }) => op);
    const ids = new Set(ops.map(touched).filter(Boolean));
    const structural = ops.some((op) => op.op === "reorder" || op.op === "move");
    this.pending = [];
    const base = this.server._version;
    const name = this.name;
    this.inflight = { ops, ids, structural, base, group: this.pendingGroup };
    this.emitStatus();
    let answer = null;
    let failure = null;
    try {
      const body = { base_version: base, ops };
      if (this.inflight.group) body.group = this.inflight.group;
      // Spacing is measured from the request itself: listeners of emitStatus() (re-rendering the panel) may
      // take milliseconds, and counting from before them let two requests leave less than 100 ms apart.
      this.lastSendAt = performance.now();
      answer = await this.api.patch(`/api/scenes/${encodeURIComponent(name)}`, { json: body });
    } catch (err) {
      failure = err;
    }
    if (name !== this.name) return; // switched scenes meanwhile (load waits for idle, so only on a reset)
    const inflight = this.inflight;
    this.inflight = null;
    if (answer) this.saved(inflight, answer);
    else this.failed(inflight, failure);
  }

  saved(inflight, scene) {
    const before = this.server;
    if (scene._version > before._version) this.server = scene;
    this.lastError = "";
    this.retryDelay = 1000;
    this.savedAt = Date.now();
    // Elements we just saved are based on the answer now; others are checked for remote changes folded in.
    for (const id of inflight.ids) {
      if (this.snapshots.has(id)) {
        const current = findElement(this.server, id);
        this.snapshots.set(id, current ? clone(current) : null);
      }
    }
    const conflicts = this.rebase();
    this.recordUndo(inflight.group, inflight.base, scene._version);
    this.drainDeferred(conflicts);
    this.emit("saved", { version: scene._version, ops: inflight.ops.length });
    this.recompute(conflicts.length ? "conflict" : "saved");
    if (conflicts.length) this.reportConflict(conflicts, "changed by someone else while you were editing");
    this.schedule();
  }

  drainDeferred(conflicts = []) {
    const frames = this.deferred.sort((a, b) => a._version - b._version);
    this.deferred = [];
    for (const scene of frames) {
      if (scene.name !== this.name || scene._version <= this.server._version) continue;
      this.server = scene;
      conflicts.push(...this.rebase());
    }
    return conflicts;
  }

  failed(inflight, err) {
    const requeue = () => {
      const rest = this.pending;
      this.pending = [];
      for (const op of [...inflight.ops, ...rest]) coalesce(this.pending, op);
    };
    if (err instanceof ApiError && err.status === 409) {
      const scene = err.details && err.details.scene;
      const dropped = [...inflight.ops, ...this.pending];
      this.pending = [];
      this.snapshots.clear();
      this.deferred = [];
      this.lastError = "";
      if (scene && typeof scene === "object" && Array.isArray(scene.elements)) {
        if (!this.server || scene._version >= this.server._version) this.server = scene;
      } else {
        this.refetch();
      }
      this.emit("reset", { reason: "conflict" });
      this.recompute("conflict");
      const ids = [...new Set(dropped.map(touched).filter(Boolean))];
      const names = ids.map((id) => `'${findElement(this.server, id)?.name || id}'`).join(", ");
      this.reportConflict(ids.map((id) => ({ id })), "",
        `Someone else changed ${names || "the scene"} at the same moment. You now see their version (v${this.version}); your last change was not saved — redo it if it is still needed.`);
      this.schedule();
      return;
    }
    if (err instanceof ApiError && (err.network || err.status === 429 || err.status >= 500)) {
      requeue();
      if (err.network) {
        this.setOnline(false);
      } else {
        const wait = err.status === 429 && err.retryAfter ? err.retryAfter * 1000 : this.retryDelay;
        this.retryDelay = Math.min(this.retryDelay * 2, 15000);
        this.retryAt = performance.now() + wait;
        this.lastError = describeError(err);
        this.emit("error", { message: `Not saved yet: ${this.lastError}. Retrying…`, transient: true });
      }
      this.drainDeferred();
      this.recompute("retry");
      this.schedule();
      return;
    }
    // Refused (400 invalid_scene / invalid_operation, 404, 401...): the edit cannot be saved as it is.
    this.lastError = describeError(err);
    this.snapshots.clear();
    const remaining = this.pending;
    this.pending = [];
    this.drainDeferred();
    // Keep what came after the refused batch if it still applies on its own.
    for (const op of remaining) coalesce(this.pending, op);
    for (const op of this.pending) {
      const id = touched(op);
      if (id && !this.snapshots.has(id)) this.snapshots.set(id, clone(findElement(this.server, id)));
    }
    this.emit("reset", { reason: "refused" });
    this.recompute("refused");
    if (!(err instanceof ApiError && err.status === 401)) {
      // invalid_scene names the element and the field (`props.value`): the inspector marks it.
      const details = err instanceof ApiError && err.details ? err.details : {};
      this.emit("error", { message: `Not saved: ${this.lastError}`, code: err && err.code, field: details.field, element: details.element });
    }
    this.schedule();
  }

  async refetch() {
    try {
      const scene = await this.api.get(`/api/scenes/${encodeURIComponent(this.name)}`);
      this.receive(scene, { force: scene._version < this.version });
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) this.emit("missing", { name: this.name });
    }
  }

  setOnline(online) {
    if (this.online === online) return;
    this.online = online;
    if (!online) clearTimeout(this.timer);
    this.emitStatus();
  }

  /** After a reconnect: fetch the fresh scene, check unsent edits against it, then send them. */
  async resync() {
    if (!this.name) return;
    try {
      const scene = await this.api.get(`/api/scenes/${encodeURIComponent(this.name)}`);
      this.online = true;
      this.retryAt = 0;
      if (this.inflight || this.busy) this.deferred.push(scene);
      // An engine whose versions went back (data reset) is the truth too.
      else this.receive(scene, { force: scene._version < this.version || scene._version === this.version });
      this.emitStatus();
      this.schedule();
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) this.emit("missing", { name: this.name });
    }
  }

  /** Resolves once nothing is pending or in flight (true), or after `timeout` ms / when offline (false). */
  idle(timeout = 5000) {
    if (!this.pending.length && !this.inflight && !this.busy) return Promise.resolve(true);
    if (!this.online) return Promise.resolve(false);
    this.debounceUntil = 0;
    this.schedule();
    return new Promise((resolve) => {
      const waiter = { resolve, timer: setTimeout(() => this.finishWaiter(waiter, false), timeout) };
      this.waiters.push(waiter);
    });
  }

  finishWaiter(waiter, value) {
    clearTimeout(waiter.timer);
    this.waiters = this.waiters.filter((w) => w !== waiter);
    waiter.resolve(value);
  }

  settle() {
    if (this.pending.length || this.inflight || this.busy) {
      if (!this.online) for (const w of [...this.waiters]) this.finishWaiter(w, false);
      return;
    }
    for (const w of [...this.waiters]) this.finishWaiter(w, true);
  }

  // ------------------------------------------------------------------------------------------
  // Undo / redo (restore) and other whole-scene requests

  recordUndo(group, before, after) {
    if (before === after) return;
    const stacks = this.stacks;
    const top = stacks.undo[stacks.undo.length - 1];
    const now = Date.now();
    // The token already says whether the group goes on (see tokenFor): same token, same undo step.
    if (top && group && top.group === group) {
      top.after = after;
      top.at = now;
    } else {
      stacks.undo.push({ before, after, group, at: now });
      if (stacks.undo.length > UNDO_LIMIT) stacks.undo.shift();
    }
    stacks.redo = [];
    this.emit("history", {});
  }

  /** Runs a request that replaces the scene (restore), with nothing else in flight. */
  async exclusive(run) {
    const ready = await this.idle(4000);
    if (!ready) throw new ApiError(0, "busy", this.online ? "Still saving; try again" : "Offline: changes are waiting to be saved");
    this.busy = true;
    this.emitStatus();
    try {
      return await run();
    } finally {
      this.busy = false;
      this.drainDeferred();
      this.recompute("exclusive");
      this.schedule();
    }
  }

  async restore(version) {
    return this.exclusive(async () => {
      try {
        const scene = await this.api.post("/api/scene/restore", {
          json: { version, scene: this.name, base_version: this.server._version },
        });
        if (scene._version > this.server._version) this.server = scene;
        return scene;
      } catch (err) {
        if (err instanceof ApiError && err.status === 409 && err.details && err.details.scene) {
          this.server = err.details.scene;
        }
        throw err;
      }
    });
  }

  async undo() {
    const stacks = this.stacks;
    const entry = stacks.undo.pop();
    if (!entry) return null;
    try {
      const scene = await this.restore(entry.before);
      stacks.redo.push(entry);
      this.emit("history", {});
      return { scene, version: entry.before };
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) stacks.undo.push(entry);
      this.emit("history", {});
      throw err;
    }
  }

  async redo() {
    const stacks = this.stacks;
    const entry = stacks.redo.pop();
    if (!entry) return null;
    try {
      const scene = await this.restore(entry.after);
      stacks.undo.push(entry);
      this.emit("history", {});
      return { scene, version: entry.after };
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 404)) stacks.redo.push(entry);
      this.emit("history", {});
      throw err;
    }
  }
}
