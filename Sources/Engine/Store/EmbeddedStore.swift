// Store: the embedded in-process backend (the default), with TTLs checked on read and swept periodically.

import Foundation
import NIOConcurrencyHelpers
import Logging
@_spi(Engine) import PluginAPI
import Synchronization

/// An in-memory ``EngineStore``. Every operation is atomic under one lock; state ends with the process.
public final class EmbeddedStore: EngineStore {
    private struct Entry {
        var value: [UInt8]
        var expiresAt: ContinuousClock.Instant?
    }

    private struct State {
        var entries: [String: Entry] = [:]
        var buckets: [String: TokenBucket] = [:]
        var operations = 0
        /// Entries changed since the last snapshot was written.
        var dirty = false
    }

    /// The snapshot file's shape: values base64, expiry as wall-clock milliseconds.
    private struct Snapshot: Codable {
        struct Item: Codable {
            let value: String
            let expiresAt: Int64?
        }
        var entries: [String: Item]
    }

    private let state = Mutex(State())
    /// Serializes snapshot writes (a pthread lock: it is held across the file write, and ThreadSanitizer cannot see a
    /// contended `Synchronization.Mutex`).
    private let snapshotWriter = NIOLock()
    private let clock = ContinuousClock()
    private let subscribers = Mutex<[String: [(id: Int, handler: @Sendable ([UInt8]) -> Void)]]>([:])
    private let nextSubscriber = Atomic<Int>(0)

    /// Where the snapshot is kept, if anywhere.
    private let snapshotFile: URL?
    private let logger: Logger?

    /// Creates an empty store that lives only in memory.
    public init() {
        snapshotFile = nil
        logger = nil
    }

    /// Creates a store kept in `file`: loaded now (expired entries dropped), written atomically by ``flush()`` (the
    /// engine calls it every second) and on ``close()``. Keys and sessions survive a restart; rate-limit buckets do not.
    /// - Throws: When an existing snapshot cannot be read (a corrupt one is moved aside, not an error).
    public init(snapshot file: URL, logger: Logger) throws {
        snapshotFile = file
        self.logger = logger
        if let data = FileManager.default.contents(atPath: file.path) {
            do {
                let snapshot = try JSONDecoder().decode(Snapshot.self, from: data)
                let wallNow = WallClock.nowMilliseconds
                let now = clock.now
                var entries: [String: Entry] = [:]
                for (key, item) in snapshot.entries {
                    guard let value = Data(base64Encoded: item.value) else { continue }
                    if let expiry = item.expiresAt {
                        guard expiry > wallNow else { continue }
                        entries[key] = Entry(value: Array(value), expiresAt: now + .milliseconds(expiry - wallNow))
                    } else {
                        entries[key] = Entry(value: Array(value), expiresAt: nil)
                    }
                }
                state.withLock { $0.entries = entries }
                logger.info("embedded store: \(entries.count) keys loaded from \(file.path)")
            } catch {
                let aside = file.appendingPathExtension("corrupt-\(Int(Date().timeIntervalSince1970))")
                try? FileManager.default.moveItem(at: file, to: aside)
                logger.error("embedded store: \(file.path) could not be read (\(error)); moved to \(aside.lastPathComponent), starting empty")
            }
        }
    }

    /// Writes the snapshot when something changed since the last one; the engine runs it every second
    /// (``PeriodicService``), and ``close()`` once more.
    public func flush() { writeSnapshotIfDirty(logger: logger) }

    /// Writes the snapshot when something changed since the last one.
    ///
    /// One writer at a time (the periodic flush and ``close()`` can meet), and the state is read inside that turn:
    /// an older snapshot still being written can never land after a newer one.
    private func writeSnapshotIfDirty(logger: Logger?) {
        guard snapshotFile != nil else { return }
        snapshotWriter.withLock { writeSnapshotNow(logger: logger) }
    }

    private func writeSnapshotNow(logger: Logger?) {
        guard let file = snapshotFile else { return }
        let now = clock.now
        let wallNow = WallClock.nowMilliseconds
        let snapshot: Snapshot? = state.withLock { state in
            guard state.dirty else { return nil }
            state.dirty = false
            var items: [String: Snapshot.Item] = [:]
            for (key, entry) in state.entries {
                var expiry: Int64?
                if let at = entry.expiresAt {
                    guard at > now else { continue }
                    let left = at - now
                    expiry = wallNow + left.wholeMilliseconds
                }
                items[key] = Snapshot.Item(value: Data(entry.value).base64EncodedString(), expiresAt: expiry)
            }
            return Snapshot(entries: items)
        }
        guard let snapshot else { return }
        do {
            try FileOps.atomicWrite(Array(try JSONEncoder().encode(snapshot)), to: file.path)
            chmod(file.path, 0o600)
        } catch {
            state.withLock { $0.dirty = true }
            logger?.error("embedded store: snapshot not written to \(file.path): \(error)")
        }
    }

    public var backendName: String { "embedded" }

    public func ping() async throws {}

    public func close() async {
        writeSnapshotIfDirty(logger: nil)
    }

    private func live(_ state: inout State, _ key: String, now: ContinuousClock.Instant) -> Entry? {
        guard let entry = state.entries[key] else { return nil }
        if let expiry = entry.expiresAt, expiry <= now {
            state.entries[key] = nil
            return nil
        }
        return entry
    }

    /// Drops expired entries every 4096 operations so memory does not grow with dead keys.
    private func sweepIfDue(_ state: inout State, now: ContinuousClock.Instant) {
        state.operations += 1
        guard state.operations % 4096 == 0 else { return }
        state.entries = state.entries.filter { $0.value.expiresAt.map { $0 > now } ?? true }
        state.buckets = state.buckets.filter { now - $0.value.refilledAt < .seconds(3600) }
    }

    public func get(_ key: String) async throws -> [UInt8]? {
        let now = clock.now
        return state.withLock { state in
            sweepIfDue(&state, now: now)
            return live(&state, key, now: now)?.value
        }
    }

    public func set(_ key: String, _ value: [UInt8], ttl: Duration?, onlyIfAbsent: Bool) async throws -> Bool {
        let now = clock.now
        return state.withLock { state in
            sweepIfDue(&state, now: now)
            if onlyIfAbsent, live(&state, key, now: now) != nil { return false }
            state.entries[key] = Entry(value: value, expiresAt: ttl.map { now + $0 })
            state.dirty = true
            return true
        }
    }

    public func take(_ key: String) async throws -> [UInt8]? {
        let now = clock.now
        return state.withLock { state in
            guard let entry = live(&state, key, now: now) else { return nil }
            state.entries[key] = nil
            state.dirty = true
            return entry.value
        }
    }

    public func increment(_ key: String, by delta: Int64, ttl: Duration?) async throws -> Int64 {
        let now = clock.now
        return try state.withLock { state in
            if let entry = live(&state, key, now: now) {
                guard let current = Int64(String(decoding: entry.value, as: UTF8.self)) else {
                    throw StoreError.protocolError("value at '\(key)' is not an integer")
                }
                let next = current &+ delta
                state.entries[key] = Entry(value: Array(String(next).utf8), expiresAt: entry.expiresAt)
                state.dirty = true
                return next
            }
            state.entries[key] = Entry(value: Array(String(delta).utf8), expiresAt: ttl.map { now + $0 })
            state.dirty = true
            return delta
        }
    }

    public func expire(_ key: String, ttl: Duration) async throws -> Bool {
        let now = clock.now
        return state.withLock { state in
            guard var entry = live(&state, key, now: now) else { return false }
            entry.expiresAt = now + ttl
            state.entries[key] = entry
            state.dirty = true
            return true
        }
    }

    public func delete(_ key: String) async throws -> Bool {
        let now = clock.now
        return state.withLock { state in
            let existed = live(&state, key, now: now) != nil
            state.entries[key] = nil
            state.dirty = state.dirty || existed
            return existed
        }
    }

    public func keys(prefix: String) async throws -> [String] {
        let now = clock.now
        return state.withLock { state in
            state.entries.compactMap { key, entry in
                guard key.hasPrefix(prefix) else { return nil }
                if let expiry = entry.expiresAt, expiry <= now { return nil }
                return key
            }
        }
    }

    public func publish(_ channel: String, _ message: [UInt8]) async throws -> Int {
        let handlers = subscribers.withLock { $0[channel] ?? [] }
        for entry in handlers { entry.handler(message) }
        return handlers.count
    }

    public func subscribe(_ channel: String, handler: @escaping @Sendable ([UInt8]) -> Void) async throws -> any StoreSubscription {
        let id = nextSubscriber.add(1, ordering: .relaxed).newValue
        subscribers.withLock { $0[channel, default: []].append((id, handler)) }
        return EmbeddedSubscription { [weak self] in
            self?.subscribers.withLock { $0[channel]?.removeAll { $0.id == id } }
        }
    }

    public func takeToken(_ key: String, burst: Int, perMinute: Int) async throws -> RateDecision {
        let now = clock.now
        return state.withLock { state in
            var bucket = state.buckets[key] ?? TokenBucket(burst: Double(burst), perSecond: Double(perMinute) / 60, now: now)
            let wait = bucket.take(now: now)
            state.buckets[key] = bucket
            guard let wait else { return RateDecision(allowed: true, retryAfterSeconds: 0) }
            return RateDecision(allowed: false, retryAfterSeconds: max(1, Int(min(wait, 86_400).rounded(.up))))
        }
    }
}

/// A subscription to the embedded store's in-process channels.
struct EmbeddedSubscription: StoreSubscription {
    let onCancel: @Sendable () -> Void
    func cancel() { onCancel() }
}
