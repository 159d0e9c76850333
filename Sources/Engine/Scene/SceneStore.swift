// Scene: the scenes, their versions and history, persisted atomically, and the ordered broadcast of changes.

import Foundation
import Logging
@_spi(Engine) import PluginAPI
import Synchronization

/// One version of a scene as kept in history and on disk.
struct SceneVersionRecord: Codable, Sendable {
    var scene: Scene
    /// What made this version: `create`, `put`, `patch`, `restore`, `activate`.
    var action: String
    /// Ids of the elements it touched; nil means "everything" (a replace, reorder or restore).
    var changed: [String]?
    /// Who saved it (`streamer`, `moderator:<session id>`).
    var by: String?
    /// Who saved it, for people: the moderator's label, `streamer`, `engine`.
    var byName: String?
    /// The client's gesture token: saves of one gesture become one entry.
    var group: String?
    /// What it did to each element (merged over the gesture's saves).
    var changes: [SceneElementChange]?
    /// Whether the stacking order changed.
    var reordered: Bool?
    /// How many saves this entry stands for (a drag saves ~10 times a second).
    var saves: Int?
    /// When the gesture began (ms since the epoch) and its first version.
    var startedAt: Int64?
    var firstVersion: Int64?
    /// For `restore`: the version brought back.
    var restoredFrom: Int64?

    init(scene: Scene, action: String, changed: [String]?, by: String?, byName: String? = nil) {
        self.scene = scene
        self.action = action
        self.changed = changed
        self.by = by
        self.byName = byName
    }

    enum CodingKeys: String, CodingKey {
        case scene, action, changed, by, group, changes, reordered, saves
        case byName = "by_name"
        case startedAt = "started_at"
        case firstVersion = "first_version"
        case restoredFrom = "restored_from"
    }

    /// The log entry of this version.
    var logEntry: SceneLogEntry { SceneLogEntry(version: scene.version, action: action, changed: changed) }
}

/// A change that was made durable, handed to the broadcaster in version order.
public struct SceneChange: Sendable {
    public let scene: Scene
    /// The scene as it was before (nil for a new scene, a resync or a reload): deltas are built against it.
    public let previous: Scene?
    public let active: Bool
    public let action: String
    /// The ledger's epoch the version belongs to.
    public let epoch: String

    public init(scene: Scene, previous: Scene? = nil, active: Bool, action: String, epoch: String = "") {
        self.scene = scene
        self.previous = previous
        self.active = active
        self.action = action
        self.epoch = epoch
    }
}

/// Owns every scene. Mutations are serialized on one queue; each accepted change gets the next version,
/// is made durable by the ledger (files, or Redis shared by several engines) and only then installed and
/// broadcast, so overlays never see a version that a crash could take back, and they see versions in order.
///
/// With a shared ledger the in-memory state is a cache of it: a save is a compare-and-set against the
/// revision this engine has seen, a conflict means another engine saved first (this one catches up and
/// computes the edit again, with the usual rebase rules), and every change (also this engine's own) is
/// installed in the ledger's order, read back from it.
public final class SceneStore: SceneAccess, Sendable {
    struct State {
        var scenes: [String: Scene] = [:]
        var history: [String: [SceneVersionRecord]] = [:]
        /// Every recent version per scene (also those merged in history), for rebasing.
        var log: [String: [SceneLogEntry]] = [:]
        var active = "main"
        var revision: Int64 = 0
        /// The last ledger change installed.
        var cursor: LedgerCursor = .origin
        var epoch = ""
        /// False until the ledger could be read (a Redis down at start-up): scene requests answer 503 meanwhile.
        var loaded = false
    }

    let state = Mutex(State())
    let ledger: any SceneLedger
    let limits: SceneLimits
    let logger: Logger
    let queue = BlockingIO.serialQueue(label: "onionrp.scene-persistence")
    let onChange: @Sendable (SceneChange) -> Void
    /// Attempts of one save against a shared ledger before it answers 503.
    static let maxAttempts = 64

    /// Opens (or creates) the scenes in `<data>/scenes` (the embedded backend).
    public convenience init(dataDirectory: URL, limits: SceneLimits, logger: Logger, onChange: @escaping @Sendable (SceneChange) -> Void) throws {
        let ledger = try FileSceneLedger(directory: dataDirectory.appendingPathComponent("scenes"), limits: limits, logger: logger)
        try self.init(ledger: ledger, limits: limits, logger: logger, onChange: onChange)
    }

    /// Opens the scenes kept by `ledger`.
    /// - Parameter onChange: Called on the persistence queue, in version order, after each change is durable.
    init(ledger: any SceneLedger, limits: SceneLimits, logger: Logger, onChange: @escaping @Sendable (SceneChange) -> Void) throws {
        self.ledger = ledger
        self.limits = limits
        self.logger = logger
        self.onChange = onChange
        do {
            try queue.sync { try open() }
        } catch  where ledger.isShared {
            // Not fatal: the engine serves (readiness says the store is down), scene requests answer 503 and overlays
            // wait; the scenes load as soon as the ledger answers, and every socket then gets the active scene.
            logger.error("the scenes cannot be read yet (\(error)); retrying every second, scene requests answer 503 meanwhile")
            retryOpen()
        }
    }

    /// Reads the ledger, creates `main` on a first run and follows the ledger. Runs on the persistence queue.
    private func open() throws {
        let snapshot = try ledger.load()
        let loaded = Self.state(from: snapshot, limits: limits)
        state.withLock { $0 = loaded }
        if loaded.scenes.isEmpty {
            // First run: an empty `main` scene, made durable like any other change.
            try createInitial()
        }
        ledger.follow(from: state.withLock { $0.cursor }) { [weak self] changes in
            guard let self else { return }
            self.queue.async { self.receive(changes) }
        }
    }

    private func retryOpen() {
        queue.asyncAfter(deadline: .now() + 1) { [weak self] in
            guard let self else { return }
            do {
                try self.open()
                self.logger.notice("scenes loaded from the ledger (revision \(self.revision))")
                let (scene, epoch) = self.activeWithEpoch
                self.onChange(SceneChange(scene: scene, active: true, action: "sync", epoch: epoch))
            } catch {
                self.retryOpen()
            }
        }
    }

    /// Whether the scenes could be read (always, except with a shared ledger that was unreachable at start-up).
    var isLoaded: Bool { state.withLock { $0.loaded } }

    /// Throws 503 `store_unavailable` until the scenes are loaded.
    func requireLoaded() throws {
        guard isLoaded else {
            throw PluginError(
                status: 503, code: "store_unavailable", message: "the scenes are not loaded yet: the store cannot be reached",
                headers: ["retry-after": "1"])
        }
    }

    // MARK: loading

    static func state(from snapshot: SceneLedgerSnapshot, limits: SceneLimits) -> State {
        var state = State()
        for (name, records) in snapshot.history {
            guard let latest = records.last else { continue }
            state.scenes[name] = latest.scene
            let kept = retained(records, limits: limits, now: now())
            state.history[name] = kept
            state.log[name] = kept.map(\.logEntry)
            state.revision = max(state.revision, latest.scene.version)
        }
        state.revision = max(state.revision, snapshot.revision)
        if let active = snapshot.active, state.scenes[active] != nil {
            state.active = active
        } else if let first = state.scenes.keys.sorted().first, state.scenes["main"] == nil {
            state.active = first
        }
        state.cursor = snapshot.cursor
        state.epoch = snapshot.epoch
        state.loaded = true
        return state
    }

    /// Runs on the persistence queue.
    private func createInitial() throws {
        let (revision, existing) = state.withLock { ($0.revision, $0.scenes["main"]) }
        guard existing == nil else { return }
        var scene = Scene(name: "main")
        scene.version = revision + 1
        scene.updatedAt = Self.now()
        let entry = SceneLedgerEntry(
            record: SceneVersionRecord(scene: scene, action: "create", changed: nil, by: "engine", byName: "engine"), activate: true,
            replacing: nil, pruned: [])
        switch try ledger.append(entry, expectedSceneVersion: 0, expectedRevision: revision) {
        case .committed: try installCommitted(entry)
        case .conflict: try catchUp()  // another engine created the scenes first
        }
    }

    static func now() -> Int64 { WallClock.nowMilliseconds }

    /// History retention: the newest `historySize` entries, none older than `historyMaxAgeSeconds`;
    /// the newest entry is always kept.
    static func retained(_ records: [SceneVersionRecord], limits: SceneLimits, now: Int64) -> [SceneVersionRecord] {
        let oldest = now - Int64(limits.historyMaxAgeSeconds) * 1000
        var kept = Array(records.suffix(limits.historySize))
        let last = kept.last
        kept.removeAll { $0.scene.updatedAt < oldest && $0.scene.version != last?.scene.version }
        return kept
    }

    /// The history kept once `record` joins `kept` (taking the place of entry `replacing`), and the versions it drops.
    /// The engine that saves and every engine that installs the change compute the same.
    static func historyAfter(_ kept: [SceneVersionRecord], adding record: SceneVersionRecord, replacing: Int64?, limits: SceneLimits)
        -> (kept: [SceneVersionRecord], pruned: [Int64])
    {
        var kept = kept
        var pruned: [Int64] = []
        if let replacing, kept.last?.scene.version == replacing {
            kept.removeLast()
            pruned.append(replacing)
        }
        kept.append(record)
        let retained = Self.retained(kept, limits: limits, now: record.scene.updatedAt)
        let still = Set(retained.map(\.scene.version))
        pruned += kept.map(\.scene.version).filter { !still.contains($0) }
        return (retained, pruned)
    }

    // MARK: reading

    /// The active scene's name.
    public var activeName: String { state.withLock { $0.active } }

    /// A scene by name.
    public func scene(_ name: String) -> Scene? { state.withLock { $0.scenes[name] } }

    /// The active scene.
    public var active: Scene {
        state.withLock { state in state.scenes[state.active] ?? Scene(name: state.active) }
    }

    /// Every scene, by name.
    public var all: [Scene] { state.withLock { $0.scenes.values.sorted { $0.name < $1.name } } }

    /// The greatest version given so far.
    public var revision: Int64 { state.withLock { $0.revision } }

    /// The ledger's epoch: it changes when the ledger is reset, and clients holding versions of another epoch resync.
    public var epoch: String { state.withLock { $0.epoch } }

    /// The active scene and the epoch, read together.
    var activeWithEpoch: (scene: Scene, epoch: String) {
        state.withLock { state in (state.scenes[state.active] ?? Scene(name: state.active), state.epoch) }
    }

    /// The kept versions of a scene, oldest first.
    func history(_ name: String) -> [SceneVersionRecord] { state.withLock { $0.history[name] ?? [] } }

    /// The retention rule in force.
    var retention: (count: Int, maxAgeSeconds: Int) { (limits.historySize, limits.historyMaxAgeSeconds) }

    public func activeScene() async throws -> SceneSnapshot {
        try requireLoaded()
        let scene = active
        return SceneSnapshot(name: scene.name, version: scene.version, json: try JSON.encode(scene))
    }

    public func elements(referencingMedia mediaID: String) async throws -> [String] {
        state.withLock { state in
            state.scenes.values.sorted { $0.name < $1.name }.flatMap { scene in
                scene.elements.filter { $0.media == mediaID }.map { "\(scene.name)/\($0.id)" }
            }
        }
    }

    // MARK: changing

    /// The outcome of an edit computed under the lock.
    struct Edit {
        var elements: [SceneElement]
        var width: Int?
        var height: Int?
        /// Ids touched; nil when the whole scene changed.
        var changed: [String]?
        /// Elements a `move` operation restacked (history names them rather than guessing).
        var moved: [String]? = nil
    }

    /// Applies `change` to scene `name` if `baseVersion` allows it, gives it the next version and makes it durable.
    ///
    /// Saves are serialized on the persistence queue: each one computes its edit from the current scene,
    /// makes it durable (write, fsync, rename; or a compare-and-set in Redis) and only then installs it in memory
    /// and hands it to the broadcaster. A failed write answers its own request with 503 and leaves memory
    /// (scenes, history, revision) as it was. When another engine saved first, this one catches up and computes
    /// the edit again on the newer scene (PATCH rebases by the usual rules, a stale PUT gets its 409).
    /// - Parameters:
    ///   - name: The scene; created when absent and `baseVersion` is 0 and `create` is true.
    ///   - baseVersion: The version the client edited.
    ///   - action: History label.
    ///   - by: Who made it.
    ///   - byName: Who made it, for people (a moderator's label).
    ///   - group: The client's gesture token; a save continuing the newest entry's gesture is merged into it.
    ///   - restoredFrom: For a restore, the version brought back.
    ///   - compute: Given the current scene and the versions since `baseVersion` (nil when they are no
    ///     longer known), returns the new elements and what changed, or throws (409 / 400).
    /// - Returns: The new scene.
    func commit(
        name: String, baseVersion: Int64, action: String, by: String, byName: String? = nil, group: String? = nil,
        restoredFrom: Int64? = nil, create: Bool = false,
        compute: @escaping @Sendable (Scene, [SceneLogEntry]?) throws -> Edit
    ) async throws -> Scene {
        try requireLoaded()
        return try await serialized {
            var caughtUp = false
            for _ in 0..<Self.maxAttempts {
                let (current, existed, since, revision, kept) = try self.state.withLock {
                    state -> (Scene, Bool, [SceneLogEntry]?, Int64, [SceneVersionRecord]) in
                    var current: Scene
                    let existed: Bool
                    if let existing = state.scenes[name] {
                        current = existing
                        existed = true
                    } else {
                        guard create else { throw PluginError.notFound("no scene named '\(name)'") }
                        guard baseVersion == 0 else {
                            throw PluginError(
                                status: 409, code: "version_conflict", message: "scene '\(name)' does not exist; create it with base_version 0")
                        }
                        guard state.scenes.count < 100 else {
                            throw PluginError(status: 400, code: "too_many_scenes", message: "at most 100 scenes")
                        }
                        current = Scene(name: name)
                        existed = false
                    }
                    var since: [SceneLogEntry]? = nil
                    if baseVersion != current.version {
                        let kept = state.log[name] ?? []
                        if baseVersion < current.version, let index = kept.firstIndex(where: { $0.version == baseVersion }) {
                            since = Array(kept[(index + 1)...])
                        }
                    } else {
                        since = []
                    }
                    return (current, existed, since, state.revision, state.history[name] ?? [])
                }
                if baseVersion > current.version, self.ledger.isShared, !caughtUp {
                    // The client saw a version this engine has not installed yet (it saved through another engine
                    // a moment ago): read the ledger before judging the base.
                    caughtUp = true
                    do { try self.catchUp() } catch {
                        throw PluginError(
                            status: 503, code: "storage_failed", message: "the scenes could not be read back: \(error)",
                            headers: ["retry-after": "1"])
                    }
                    continue
                }
                let edit = try compute(current, since)
                try SceneValidator(limits: self.limits).check(elements: edit.elements)
                var scene = current
                scene.elements = edit.elements
                if let width = edit.width { scene.width = width }
                if let height = edit.height { scene.height = height }
                scene.version = revision + 1
                scene.updatedAt = Self.now()
                var record = SceneVersionRecord(scene: scene, action: action, changed: edit.changed, by: by, byName: byName)
                let diff = SceneHistory.changes(from: current, to: scene, ids: edit.changed, moved: edit.moved)
                record.changes = diff.changes
                record.reordered = diff.reordered ? true : nil
                record.group = group.map { String($0.prefix(80)) }
                record.restoredFrom = restoredFrom
                record.saves = 1
                record.startedAt = scene.updatedAt
                record.firstVersion = scene.version
                var replacing: Int64? = nil
                if let latest = kept.last, SceneHistory.continues(latest, with: record) {
                    record.changes = SceneHistory.merge(latest.changes ?? [], diff.changes)
                    record.saves = (latest.saves ?? 1) + 1
                    record.startedAt = latest.startedAt ?? latest.scene.updatedAt
                    record.firstVersion = latest.firstVersion ?? latest.scene.version
                    record.reordered = (latest.reordered == true || diff.reordered) ? true : nil
                    replacing = latest.scene.version
                }
                let pruned = Self.historyAfter(kept, adding: record, replacing: replacing, limits: self.limits).pruned
                let entry = SceneLedgerEntry(record: record, activate: false, replacing: replacing, pruned: pruned)
                if try self.write(entry, expectedSceneVersion: existed ? current.version : 0, expectedRevision: revision) {
                    return scene
                }
            }
            throw Self.busy
        }
    }

    static let busy = PluginError(
        status: 503, code: "scene_busy", message: "the scene changed too often on other engines to save; try again",
        headers: ["retry-after": "1"])

    /// Makes `name` the active scene; it gets a new version so overlays always see versions grow.
    func activate(_ name: String, by: String, byName: String? = nil) async throws -> Scene {
        try requireLoaded()
        return try await serialized {
            for _ in 0..<Self.maxAttempts {
                let (scene, previous, revision) = try self.state.withLock { state -> (Scene, Int64, Int64) in
                    guard var scene = state.scenes[name] else { throw PluginError.notFound("no scene named '\(name)'") }
                    let previous = scene.version
                    scene.version = state.revision + 1
                    scene.updatedAt = Self.now()
                    return (scene, previous, state.revision)
                }
                let record = SceneVersionRecord(scene: scene, action: "activate", changed: [], by: by, byName: byName)
                let pruned = Self.historyAfter(self.history(name), adding: record, replacing: nil, limits: self.limits).pruned
                let entry = SceneLedgerEntry(record: record, activate: true, replacing: nil, pruned: pruned)
                if try self.write(entry, expectedSceneVersion: previous, expectedRevision: revision) { return scene }
            }
            throw Self.busy
        }
    }

    /// Makes `entry` durable and installs it; false when another engine wrote first (this one has caught up then).
    /// Runs on the persistence queue; nothing in memory changes when a write fails.
    private func write(_ entry: SceneLedgerEntry, expectedSceneVersion: Int64, expectedRevision: Int64) throws -> Bool {
        let outcome: SceneLedgerOutcome
        do {
            outcome = try ledger.append(entry, expectedSceneVersion: expectedSceneVersion, expectedRevision: expectedRevision)
        } catch {
            logger.critical("scene '\(entry.record.scene.name)' version \(entry.record.scene.version) could not be saved: \(error)")
            throw PluginError(
                status: 503, code: "storage_failed", message: "the scene could not be saved: \(error)", headers: ["retry-after": "1"])
        }
        switch outcome {
        case .committed:
            try installCommitted(entry)
            return true
        case .conflict:
            try catchUpForRetry()
            return false
        }
    }

    /// After a committed write: a private ledger's change is installed as is; a shared ledger's changes are read back
    /// in order (this engine's own among them), so every engine installs and broadcasts them in the same order.
    private func installCommitted(_ entry: SceneLedgerEntry) throws {
        guard ledger.isShared else {
            let cursor = LedgerCursor(version: entry.record.scene.version, sequence: 0)
            install(SceneLedgerChange(cursor: cursor, kind: .version(entry)))
            return
        }
        do {
            try catchUp()
        } catch {
            // The save is durable; the follower installs it once the ledger answers again.
            logger.error("scene version \(entry.record.scene.version) is saved but could not be read back yet: \(error)")
        }
    }

    /// A conflict: installs what others wrote. When nothing new can be read (the ledger went back, e.g. a Redis
    /// restart lost its last writes), reloads from the ledger so that the retry starts from its truth.
    private func catchUpForRetry() throws {
        let before = state.withLock { $0.cursor }
        do {
            try catchUp()
            if state.withLock({ $0.cursor }) == before { try reload() }
        } catch {
            throw PluginError(
                status: 503, code: "storage_failed", message: "the scenes could not be read back: \(error)", headers: ["retry-after": "1"])
        }
    }

    /// Reads and installs every change after this engine's cursor. Runs on the persistence queue.
    func catchUp() throws {
        let cursor = state.withLock { $0.cursor }
        guard let changes = try ledger.changes(after: cursor) else {
            try reload()
            return
        }
        receive(changes)
    }

    /// Installs changes read from the ledger in order; a gap (or nil: the ledger was reset) means a reload.
    /// Runs on the persistence queue.
    private func receive(_ changes: [SceneLedgerChange]?) {
        guard let changes else {
            reloadLogging()
            return
        }
        for change in changes {
            let cursor = state.withLock { $0.cursor }
            if change.cursor <= cursor { continue }
            guard cursor.isFollowed(by: change.cursor) else {
                // Not the next change: read what lies between (or reload when the ledger no longer has it).
                do { try catchUp() } catch { logger.error("cannot read the scene changes after \(cursor): \(error)") }
                return
            }
            install(change)
        }
    }

    private func reloadLogging() {
        do { try reload() } catch { logger.error("cannot reload the scenes: \(error)") }
    }

    /// Replaces the state with the ledger's, then sends every overlay and panel the active scene in full.
    /// Runs on the persistence queue.
    func reload() throws {
        var snapshot = try ledger.load()
        let (ours, oldEpoch, current) = state.withLock { ($0.revision, $0.epoch, $0) }
        if snapshot.history.isEmpty, !current.scenes.isEmpty {
            // The ledger lost everything (a Redis without persistence restarted): give it what this engine has.
            var mine = SceneLedgerSnapshot()
            mine.history = current.history.mapValues { records in records }
            for (name, scene) in current.scenes where mine.history[name]?.last?.scene.version != scene.version {
                mine.history[name, default: []].append(SceneVersionRecord(scene: scene, action: "put", changed: nil, by: "engine"))
            }
            mine.active = current.active
            mine.revision = current.revision
            if try ledger.seed(mine) {
                logger.warning("the scene ledger was empty; wrote this engine's \(mine.history.count) scene(s) back (revision \(mine.revision))")
            }
            snapshot = try ledger.load()
        }
        if snapshot.revision < ours {
            // It went back: versions up to `ours` were handed out. Raise it and start a new epoch so that clients
            // holding those versions resync instead of ignoring "older" ones.
            logger.warning("the scene ledger is at revision \(snapshot.revision), below the \(ours) this engine saw: starting a new epoch")
            try ledger.reset(raisingRevisionTo: ours)
            snapshot = try ledger.load()
        }
        let loaded = Self.state(from: snapshot, limits: limits)
        guard !loaded.scenes.isEmpty else {
            logger.warning("the scene ledger holds no scenes; keeping what this engine has")
            return
        }
        state.withLock { $0 = loaded }
        logger.notice(
            "scenes reloaded from the ledger: revision \(loaded.revision) (this engine had \(ours)), epoch \(loaded.epoch) (was \(oldEpoch))")
        let active = loaded.scenes[loaded.active] ?? Scene(name: loaded.active)
        onChange(SceneChange(scene: active, active: true, action: "sync", epoch: loaded.epoch))
    }

    /// Installs one durable change in memory and hands it to the broadcaster. Runs on the persistence queue.
    private func install(_ change: SceneLedgerChange) {
        switch change.kind {
        case .nothing:
            state.withLock { $0.cursor = max($0.cursor, change.cursor) }
        case .deleted(let name):
            state.withLock { state in
                state.scenes[name] = nil
                state.history[name] = nil
                state.log[name] = nil
                state.cursor = max(state.cursor, change.cursor)
            }
        case .version(let entry):
            let record = entry.record
            let name = record.scene.name
            let installed = state.withLock { state -> (previous: Scene?, active: Bool, epoch: String)? in
                state.cursor = max(state.cursor, change.cursor)
                let previous = state.scenes[name]
                guard record.scene.version > (previous?.version ?? 0) else { return nil }
                state.revision = max(state.revision, record.scene.version)
                state.scenes[name] = record.scene
                if entry.activate { state.active = name }
                state.history[name] = Self.historyAfter(state.history[name] ?? [], adding: record, replacing: entry.replacing, limits: limits).kept
                var log = state.log[name] ?? []
                log.append(record.logEntry)
                if log.count > SceneHistory.logLimit { log.removeFirst(log.count - SceneHistory.logLimit) }
                state.log[name] = log
                return (previous, state.active == name, state.epoch)
            }
            guard let installed else { return }
            onChange(
                SceneChange(
                    scene: record.scene, previous: installed.previous, active: installed.active, action: record.action, epoch: installed.epoch))
        }
    }

    /// Deletes a scene that is not active. The highest version given is recorded first, so a restart
    /// never hands out a version number again even when the deleted scene held it.
    func delete(_ name: String) async throws {
        try requireLoaded()
        try await serialized {
            for _ in 0..<Self.maxAttempts {
                let revision: Int64 = try self.state.withLock { state in
                    guard state.scenes[name] != nil else { throw PluginError.notFound("no scene named '\(name)'") }
                    guard state.active != name else {
                        throw PluginError(status: 409, code: "scene_active", message: "scene '\(name)' is active; activate another one first")
                    }
                    return state.revision
                }
                let outcome: SceneLedgerOutcome
                do {
                    outcome = try self.ledger.delete(name, revision: revision)
                } catch let error as PluginError {
                    throw error
                } catch {
                    self.logger.error("cannot delete scene '\(name)': \(error)")
                    throw PluginError(
                        status: 503, code: "storage_failed", message: "the scene could not be deleted: \(error)", headers: ["retry-after": "1"])
                }
                switch outcome {
                case .committed:
                    if self.ledger.isShared {
                        try? self.catchUp()
                    } else {
                        self.install(SceneLedgerChange(cursor: LedgerCursor(version: revision, sequence: 1), kind: .deleted(name)))
                    }
                    return
                case .conflict:
                    try self.catchUpForRetry()
                }
            }
            throw Self.busy
        }
    }

    // MARK: persistence

    /// Runs `work` on the persistence queue (one save at a time, in version order) without blocking a task thread.
    private func serialized<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try work() }) }
        }
    }

    /// Waits until every queued save has finished (tests and shutdown).
    func flush() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async { continuation.resume() }
        }
    }

    /// Stops following the ledger.
    func close() { ledger.close() }
}
