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
    public let active: Bool
    public let action: String
}

/// Owns every scene. Mutations are serialized under one lock; each accepted change gets the next
/// version, is written to disk on a serial queue (write, fsync, rename), and only then broadcast,
/// so overlays never see a version that a crash could take back, and they see versions in order.
public final class SceneStore: SceneAccess, Sendable {
    struct State {
        var scenes: [String: Scene] = [:]
        var history: [String: [SceneVersionRecord]] = [:]
        /// Every recent version per scene (also those merged in history), for rebasing.
        var log: [String: [SceneLogEntry]] = [:]
        var active = "main"
        var revision: Int64 = 0
    }

    let state = Mutex(State())
    let directory: URL
    let limits: SceneLimits
    let logger: Logger
    let queue = BlockingIO.serialQueue(label: "onionrp.scene-persistence")
    let onChange: @Sendable (SceneChange) -> Void

    /// Opens (or creates) the scenes in `<data>/scenes`.
    /// - Parameters:
    ///   - dataDirectory: The engine's data folder.
    ///   - limits: Validation limits and history size.
    ///   - onChange: Called on the persistence queue, in version order, after each change is durable.
    public init(dataDirectory: URL, limits: SceneLimits, logger: Logger, onChange: @escaping @Sendable (SceneChange) -> Void) throws {
        self.directory = dataDirectory.appendingPathComponent("scenes")
        self.limits = limits
        self.logger = logger
        self.onChange = onChange
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let loaded = try Self.load(directory: directory, limits: limits, logger: logger)
        state.withLock { $0 = loaded }
        if loaded.scenes.isEmpty {
            // First run: an empty `main` scene, made durable like any other change.
            _ = try createInitial()
        }
    }

    // MARK: loading

    static func load(directory: URL, limits: SceneLimits, logger: Logger) throws -> State {
        var state = State()
        let fm = FileManager.default
        let decoder = JSONDecoder()
        for name in (try? fm.contentsOfDirectory(atPath: directory.path)) ?? [] where !name.hasPrefix("_") {
            guard SceneValidator.isSceneName(name) else {
                logger.warning("ignoring \(directory.appendingPathComponent(name).path): not a scene name")
                continue
            }
            let folder = directory.appendingPathComponent(name)
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: folder.path, isDirectory: &isDirectory), isDirectory.boolValue else { continue }
            let files = ((try? fm.contentsOfDirectory(atPath: folder.path)) ?? [])
                .filter { $0.hasSuffix(".json") }
                .compactMap { file -> (Int64, String)? in Int64(file.dropLast(5)).map { ($0, file) } }
                .sorted { $0.0 < $1.0 }
            var records: [SceneVersionRecord] = []
            for (_, file) in files {
                let url = folder.appendingPathComponent(file)
                guard let data = fm.contents(atPath: url.path) else { continue }
                do {
                    records.append(try decoder.decode(SceneVersionRecord.self, from: data))
                } catch {
                    logger.error("skipping unreadable scene version \(url.path): \(error)")
                }
            }
            guard let latest = records.last else { continue }
            state.scenes[name] = latest.scene
            let kept = retained(records, limits: limits, now: now())
            state.history[name] = kept
            state.log[name] = kept.map(\.logEntry)
            state.revision = max(state.revision, latest.scene.version)
        }
        if let data = fm.contents(atPath: directory.appendingPathComponent("_revision.json").path),
            let recorded = try? decoder.decode([String: Int64].self, from: data)["revision"]
        {
            state.revision = max(state.revision, recorded)
        }
        let activeFile = directory.appendingPathComponent("_active.json")
        if let data = fm.contents(atPath: activeFile.path),
            let active = try? decoder.decode([String: String].self, from: data)["active"], state.scenes[active] != nil
        {
            state.active = active
        } else if let first = state.scenes.keys.sorted().first, state.scenes["main"] == nil {
            state.active = first
        }
        return state
    }

    private func createInitial() throws -> Scene {
        let scene: Scene = state.withLock { state in
            state.revision += 1
            var scene = Scene(name: "main")
            scene.version = state.revision
            scene.updatedAt = Self.now()
            state.scenes["main"] = scene
            state.active = "main"
            state.history["main"] = [SceneVersionRecord(scene: scene, action: "create", changed: nil, by: "engine", byName: "engine")]
            state.log["main"] = [SceneLogEntry(version: scene.version, action: "create", changed: nil)]
            return scene
        }
        try queue.sync {
            try persist(SceneVersionRecord(scene: scene, action: "create", changed: nil, by: "engine", byName: "engine"))
            try writeActive("main")
        }
        return scene
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

    /// The kept versions of a scene, oldest first.
    func history(_ name: String) -> [SceneVersionRecord] { state.withLock { $0.history[name] ?? [] } }

    /// The retention rule in force.
    var retention: (count: Int, maxAgeSeconds: Int) { (limits.historySize, limits.historyMaxAgeSeconds) }

    public func activeScene() async throws -> SceneSnapshot {
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
    /// writes it (write, fsync, rename) and only then installs it in memory and hands it to the broadcaster.
    /// A failed write answers its own request with 503 and leaves memory (scenes, history, revision) as it was.
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
        try await serialized {
            let (current, since, revision, latest) = try self.state.withLock { state -> (Scene, [SceneLogEntry]?, Int64, SceneVersionRecord?) in
                var current: Scene
                if let existing = state.scenes[name] {
                    current = existing
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
                return (current, since, state.revision, state.history[name]?.last)
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
            if let latest, SceneHistory.continues(latest, with: record) {
                record.changes = SceneHistory.merge(latest.changes ?? [], diff.changes)
                record.saves = (latest.saves ?? 1) + 1
                record.startedAt = latest.startedAt ?? latest.scene.updatedAt
                record.firstVersion = latest.firstVersion ?? latest.scene.version
                record.reordered = (latest.reordered == true || diff.reordered) ? true : nil
                replacing = latest.scene.version
            }
            try self.install(record, activate: false, replacing: replacing)
            return scene
        }
    }

    /// Makes `name` the active scene; it gets a new version so overlays always see versions grow.
    func activate(_ name: String, by: String, byName: String? = nil) async throws -> Scene {
        try await serialized {
            let scene: Scene = try self.state.withLock { state in
                guard var scene = state.scenes[name] else { throw PluginError.notFound("no scene named '\(name)'") }
                scene.version = state.revision + 1
                scene.updatedAt = Self.now()
                return scene
            }
            try self.install(SceneVersionRecord(scene: scene, action: "activate", changed: [], by: by, byName: byName), activate: true)
            return scene
        }
    }

    /// Writes `record` durably, then installs it in memory and hands it to the broadcaster.
    /// Runs on the persistence queue; nothing in memory changes when a write fails.
    /// - Parameter replacing: The newest history entry's version when `record` continues its gesture:
    ///   the record takes its place (its file is removed once the new one is durable).
    private func install(_ record: SceneVersionRecord, activate: Bool, replacing: Int64? = nil) throws {
        let name = record.scene.name
        do {
            try persist(record)
            if activate { try writeActive(name) }
        } catch {
            logger.critical("scene '\(name)' version \(record.scene.version) could not be saved: \(error)")
            throw PluginError(
                status: 503, code: "storage_failed", message: "the scene could not be saved: \(error)",
                headers: ["retry-after": "1"])
        }
        let (pruned, isActive) = state.withLock { state -> ([Int64], Bool) in
            state.revision = record.scene.version
            state.scenes[name] = record.scene
            if activate { state.active = name }
            var kept = state.history[name] ?? []
            var pruned: [Int64] = []
            if let replacing, kept.last?.scene.version == replacing {
                kept.removeLast()
                pruned.append(replacing)
            }
            kept.append(record)
            let retained = Self.retained(kept, limits: limits, now: record.scene.updatedAt)
            let still = Set(retained.map(\.scene.version))
            pruned += kept.map(\.scene.version).filter { !still.contains($0) }
            state.history[name] = retained
            var log = state.log[name] ?? []
            log.append(record.logEntry)
            if log.count > SceneHistory.logLimit { log.removeFirst(log.count - SceneHistory.logLimit) }
            state.log[name] = log
            return (pruned, state.active == name)
        }
        let folder = directory.appendingPathComponent(name)
        for version in pruned { unlink(folder.appendingPathComponent("\(version).json").path) }
        onChange(SceneChange(scene: record.scene, active: isActive, action: record.action))
    }

    /// Deletes a scene that is not active. The highest version given is recorded first, so a restart
    /// never hands out a version number again even when the deleted scene held it.
    func delete(_ name: String) async throws {
        try await serialized {
            let revision: Int64 = try self.state.withLock { state in
                guard state.scenes[name] != nil else { throw PluginError.notFound("no scene named '\(name)'") }
                guard state.active != name else {
                    throw PluginError(status: 409, code: "scene_active", message: "scene '\(name)' is active; activate another one first")
                }
                return state.revision
            }
            let folder = self.directory.appendingPathComponent(name)
            // The folder must be a direct child of the scenes folder: names are validated, this is the last guard.
            guard folder.deletingLastPathComponent().standardizedFileURL.path == self.directory.standardizedFileURL.path,
                folder.lastPathComponent == name
            else {
                throw PluginError.invalidField("name", "not a scene folder name")
            }
            do {
                try self.writeRevision(revision)
                try FileManager.default.removeItem(at: folder)
                FileOps.syncDirectory(self.directory.path)
            } catch {
                self.logger.error("cannot delete scene folder \(folder.path): \(error)")
                throw PluginError(
                    status: 503, code: "storage_failed", message: "the scene could not be deleted: \(error)",
                    headers: ["retry-after": "1"])
            }
            self.state.withLock { state in
                state.scenes[name] = nil
                state.history[name] = nil
                state.log[name] = nil
            }
        }
    }

    // MARK: persistence

    /// Runs `work` on the persistence queue (one save at a time, in version order) without blocking a task thread.
    private func serialized<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try work() }) }
        }
    }

    private func persist(_ record: SceneVersionRecord) throws {
        let folder = directory.appendingPathComponent(record.scene.name)
        if !FileManager.default.fileExists(atPath: folder.path) {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            FileOps.syncDirectory(directory.path)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        try FileOps.atomicWrite(Array(try encoder.encode(record)), to: folder.appendingPathComponent("\(record.scene.version).json").path)
    }

    private func writeActive(_ name: String) throws {
        try FileOps.atomicWrite(Array(try JSONEncoder().encode(["active": name])), to: directory.appendingPathComponent("_active.json").path)
    }

    /// Records the highest version given (read back by ``load(directory:historySize:logger:)``).
    private func writeRevision(_ revision: Int64) throws {
        try FileOps.atomicWrite(Array(try JSONEncoder().encode(["revision": revision])), to: directory.appendingPathComponent("_revision.json").path)
    }

    /// Waits until every queued save has finished (tests and shutdown).
    func flush() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async { continuation.resume() }
        }
    }
}
