// Scene: where versions are made durable. The embedded backend keeps them in files under <data_dir>/scenes;
// the redis backend keeps them in Redis (RedisSceneLedger.swift) so that several engines share one set of scenes.

import Foundation
import Logging
@_spi(Engine) import PluginAPI

/// One version to make durable, with what it does to the history kept.
struct SceneLedgerEntry: Sendable {
    var record: SceneVersionRecord
    /// Whether it makes its scene the active one.
    var activate: Bool
    /// The newest history entry's version when this record continues its gesture (it takes that entry's place).
    var replacing: Int64?
    /// History versions dropped by retention once this one is kept (computed by ``SceneStore/historyAfter``).
    var pruned: [Int64]
}

/// A change read back from a shared ledger, in the order the ledger took them.
struct SceneLedgerChange: Sendable {
    enum Kind: Sendable {
        case version(SceneLedgerEntry)
        case deleted(String)
        /// A marker (a seed) or an entry that could not be read: only its position counts.
        case nothing
    }
    /// The change's position (`<version>-<n>`): versions are `<v>-0`, deletions after version v are `<v>-1`, `<v>-2`, ...
    var cursor: LedgerCursor
    var kind: Kind
}

/// A position in the change log: `<version>-<sequence>`, the Redis stream id of the change.
struct LedgerCursor: Sendable, Equatable, Comparable, CustomStringConvertible {
    var version: Int64
    var sequence: Int64

    static let origin = LedgerCursor(version: 0, sequence: 0)

    init(version: Int64, sequence: Int64) {
        self.version = version
        self.sequence = sequence
    }

    /// Parses `12-0`; nil for anything else.
    init?(_ text: String) {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let version = Int64(parts[0]), let sequence = Int64(parts[1]), version >= 0, sequence >= 0 else { return nil }
        self.init(version: version, sequence: sequence)
    }

    var description: String { "\(version)-\(sequence)" }

    /// Whether `next` follows this cursor with nothing in between.
    func isFollowed(by next: LedgerCursor) -> Bool {
        (next.version == version && next.sequence == sequence + 1) || (next.version == version + 1 && next.sequence == 0)
    }

    static func < (lhs: LedgerCursor, rhs: LedgerCursor) -> Bool {
        (lhs.version, lhs.sequence) < (rhs.version, rhs.sequence)
    }
}

/// Everything a ledger holds, as loaded at start-up (or after a reset).
struct SceneLedgerSnapshot: Sendable {
    /// Kept history per scene, oldest first (the last record is the scene's current version).
    var history: [String: [SceneVersionRecord]] = [:]
    var active: String?
    var revision: Int64 = 0
    /// The position of the last change the snapshot includes.
    var cursor: LedgerCursor = .origin
    /// The ledger's identity; a new epoch means it was reset and clients must resync.
    var epoch: String = ""
}

/// What a ledger answers to an append or a delete.
enum SceneLedgerOutcome: Sendable, Equatable {
    case committed
    /// Another engine changed the scenes since this engine's view (`expectedRevision` or the scene's version moved).
    case conflict
}

/// Durable storage of the scenes. Every method runs on the scene store's persistence queue (one call at a time).
protocol SceneLedger: Sendable {
    /// Whether other engines write to it too (then changes are read back from it in order, and may conflict).
    var isShared: Bool { get }
    /// Reads everything kept.
    func load() throws -> SceneLedgerSnapshot
    /// Makes `entry` durable if nobody else wrote since `expectedRevision` and the scene is still at `expectedSceneVersion`.
    func append(_ entry: SceneLedgerEntry, expectedSceneVersion: Int64, expectedRevision: Int64) throws -> SceneLedgerOutcome
    /// Deletes a scene (not the active one) and records `revision` as the highest version given.
    func delete(_ name: String, revision: Int64) throws -> SceneLedgerOutcome
    /// Changes after `cursor`, in order; nil when the ledger no longer has them all (the caller reloads).
    func changes(after cursor: LedgerCursor) throws -> [SceneLedgerChange]?
    /// Starts following the changes made by anyone after `cursor`: `deliver` gets them in order (on a background
    /// thread), or nil when the ledger was reset (its epoch changed) and the caller must reload.
    func follow(from cursor: LedgerCursor, deliver: @escaping @Sendable ([SceneLedgerChange]?) -> Void)
    /// Writes `snapshot` into a shared ledger that holds no scenes (it lost them); false when it is not empty.
    func seed(_ snapshot: SceneLedgerSnapshot) throws -> Bool
    /// Makes the ledger's revision at least `revision` and gives it a new epoch: it went back (lost its newest writes)
    /// while clients hold later versions, which they must not mistake for newer ones.
    func reset(raisingRevisionTo revision: Int64) throws
    /// Stops following and releases connections.
    func close()
}

/// The embedded backend's ledger: one JSON file per kept version under `<data_dir>/scenes/<name>/`, written with
/// write, fsync, rename; `_active.json` names the active scene, `_revision.json` the highest version given.
final class FileSceneLedger: SceneLedger {
    let directory: URL
    let limits: SceneLimits
    let logger: Logger

    init(directory: URL, limits: SceneLimits, logger: Logger) throws {
        self.directory = directory
        self.limits = limits
        self.logger = logger
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    var isShared: Bool { false }

    func load() throws -> SceneLedgerSnapshot {
        var snapshot = SceneLedgerSnapshot()
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
            snapshot.history[name] = records
            snapshot.revision = max(snapshot.revision, latest.scene.version)
        }
        if let data = fm.contents(atPath: directory.appendingPathComponent("_revision.json").path),
            let recorded = try? decoder.decode([String: Int64].self, from: data)["revision"]
        {
            snapshot.revision = max(snapshot.revision, recorded)
        }
        if let data = fm.contents(atPath: directory.appendingPathComponent("_active.json").path),
            let active = try? decoder.decode([String: String].self, from: data)["active"]
        {
            snapshot.active = active
        }
        snapshot.cursor = LedgerCursor(version: snapshot.revision, sequence: 0)
        snapshot.epoch = try epoch()
        return snapshot
    }

    /// The data folder's epoch (`_epoch.json`), made once: a wiped data folder gets a new one.
    private func epoch() throws -> String {
        let file = directory.appendingPathComponent("_epoch.json").path
        if let data = FileManager.default.contents(atPath: file), let epoch = try? JSONDecoder().decode([String: String].self, from: data)["epoch"],
            !epoch.isEmpty
        {
            return epoch
        }
        let epoch = SceneEpoch.make()
        try FileOps.atomicWrite(Array(try JSONEncoder().encode(["epoch": epoch])), to: file)
        return epoch
    }

    func append(_ entry: SceneLedgerEntry, expectedSceneVersion: Int64, expectedRevision: Int64) throws -> SceneLedgerOutcome {
        let record = entry.record
        let folder = directory.appendingPathComponent(record.scene.name)
        if !FileManager.default.fileExists(atPath: folder.path) {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            FileOps.syncDirectory(directory.path)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        try FileOps.atomicWrite(Array(try encoder.encode(record)), to: folder.appendingPathComponent("\(record.scene.version).json").path)
        if entry.activate {
            try FileOps.atomicWrite(
                Array(try JSONEncoder().encode(["active": record.scene.name])), to: directory.appendingPathComponent("_active.json").path)
        }
        // Dropped history entries go once the new version is durable (a crash in between only keeps one too many).
        for version in entry.pruned { unlink(folder.appendingPathComponent("\(version).json").path) }
        return .committed
    }

    func delete(_ name: String, revision: Int64) throws -> SceneLedgerOutcome {
        let folder = directory.appendingPathComponent(name)
        // The folder must be a direct child of the scenes folder: names are validated, this is the last guard.
        guard folder.deletingLastPathComponent().standardizedFileURL.path == directory.standardizedFileURL.path,
            folder.lastPathComponent == name
        else {
            throw PluginError.invalidField("name", "not a scene folder name")
        }
        try FileOps.atomicWrite(Array(try JSONEncoder().encode(["revision": revision])), to: directory.appendingPathComponent("_revision.json").path)
        try FileManager.default.removeItem(at: folder)
        FileOps.syncDirectory(directory.path)
        return .committed
    }

    func changes(after cursor: LedgerCursor) throws -> [SceneLedgerChange]? { [] }
    func seed(_ snapshot: SceneLedgerSnapshot) throws -> Bool { false }
    func reset(raisingRevisionTo revision: Int64) throws {}
    func follow(from cursor: LedgerCursor, deliver: @escaping @Sendable ([SceneLedgerChange]?) -> Void) {}
    func close() {}
}

enum SceneEpoch {
    /// A fresh random epoch (16 hex digits).
    static func make() -> String {
        var generator = SystemRandomNumberGenerator()
        return String(format: "%016llx", generator.next() as UInt64)
    }
}
