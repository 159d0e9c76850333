// Store: the embedded in-process backend (the default), with TTLs checked on read and swept periodically.

import Foundation
import PluginAPI
import Synchronization

/// An in-memory ``EngineStore``. Every operation is atomic under one lock; state ends with the process.
public final class EmbeddedStore: EngineStore {
    private struct Entry {
        var value: [UInt8]
        var expiresAt: ContinuousClock.Instant?
    }

    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    private struct State {
        var entries: [String: Entry] = [:]
        var buckets: [String: Bucket] = [:]
        var operations = 0
    }

    private let state = Mutex(State())
    private let clock = ContinuousClock()
    private let subscribers = Mutex<[String: [(id: Int, handler: @Sendable ([UInt8]) -> Void)]]>([:])
    private let nextSubscriber = Atomic<Int>(0)

    /// Creates an empty store.
    public init() {}

    public var backendName: String { "embedded" }

    public func ping() async throws {}

    public func close() async {}

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
        state.buckets = state.buckets.filter { now - $0.value.updated < .seconds(3600) }
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
            return true
        }
    }

    public func take(_ key: String) async throws -> [UInt8]? {
        let now = clock.now
        return state.withLock { state in
            guard let entry = live(&state, key, now: now) else { return nil }
            state.entries[key] = nil
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
                return next
            }
            state.entries[key] = Entry(value: Array(String(delta).utf8), expiresAt: ttl.map { now + $0 })
            return delta
        }
    }

    public func expire(_ key: String, ttl: Duration) async throws -> Bool {
        let now = clock.now
        return state.withLock { state in
            guard var entry = live(&state, key, now: now) else { return false }
            entry.expiresAt = now + ttl
            state.entries[key] = entry
            return true
        }
    }

    public func delete(_ key: String) async throws -> Bool {
        let now = clock.now
        return state.withLock { state in
            let existed = live(&state, key, now: now) != nil
            state.entries[key] = nil
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
        let rate = Double(perMinute) / 60.0
        return state.withLock { state in
            var bucket = state.buckets[key] ?? Bucket(tokens: Double(burst), updated: now)
            bucket.tokens = min(Double(burst), bucket.tokens + (now - bucket.updated).seconds * rate)
            bucket.updated = now
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                state.buckets[key] = bucket
                return RateDecision(allowed: true, retryAfterSeconds: 0)
            }
            state.buckets[key] = bucket
            let wait = Int(((1 - bucket.tokens) / rate).rounded(.up))
            return RateDecision(allowed: false, retryAfterSeconds: max(1, wait))
        }
    }
}

/// A subscription to the embedded store's in-process channels.
struct EmbeddedSubscription: StoreSubscription {
    let onCancel: @Sendable () -> Void
    func cancel() { onCancel() }
}
