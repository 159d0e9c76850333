// Store: the key-value protocol the engine needs beyond PluginAPI's, and the per-plugin namespace.

import Foundation
@_spi(Engine) import PluginAPI

/// Outcome of a rate-limit check.
public struct RateDecision: Sendable, Equatable {
    /// Whether the request may proceed.
    public let allowed: Bool
    /// Seconds until a token is available (0 when allowed).
    public let retryAfterSeconds: Int
}

/// The engine's store: PluginAPI's ``KeyValueStore`` plus what only the engine uses.
public protocol EngineStore: KeyValueStore {
    /// A short name for logs and `/readyz` (`embedded`, `redis`).
    var backendName: String { get }
    /// Throws when the backend cannot be reached.
    func ping() async throws
    /// Takes one token from the bucket `key` (capacity `burst`, refilled at `perMinute`), atomically.
    func takeToken(_ key: String, burst: Int, perMinute: Int) async throws -> RateDecision
    /// Sends `message` to every subscriber of `channel` (every engine instance sharing the store).
    /// - Returns: How many subscribers received it.
    @discardableResult
    func publish(_ channel: String, _ message: [UInt8]) async throws -> Int
    /// Calls `handler` with every message published on `channel` until the subscription is cancelled.
    func subscribe(_ channel: String, handler: @escaping @Sendable ([UInt8]) -> Void) async throws -> any StoreSubscription
    /// Releases connections and background work.
    func close() async
}

/// A live subscription; cancel it to stop receiving.
public protocol StoreSubscription: Sendable {
    /// Stops the subscription.
    func cancel()
}

/// A view of a store where every key is put under `prefix`, so plugins never collide.
struct NamespacedStore: KeyValueStore {
    let base: any EngineStore
    let prefix: String

    func get(_ key: String) async throws -> [UInt8]? { try await base.get(prefix + key) }
    func set(_ key: String, _ value: [UInt8], ttl: Duration?, onlyIfAbsent: Bool) async throws -> Bool {
        try await base.set(prefix + key, value, ttl: ttl, onlyIfAbsent: onlyIfAbsent)
    }
    func take(_ key: String) async throws -> [UInt8]? { try await base.take(prefix + key) }
    func increment(_ key: String, by delta: Int64, ttl: Duration?) async throws -> Int64 {
        try await base.increment(prefix + key, by: delta, ttl: ttl)
    }
    func expire(_ key: String, ttl: Duration) async throws -> Bool { try await base.expire(prefix + key, ttl: ttl) }
    func delete(_ key: String) async throws -> Bool { try await base.delete(prefix + key) }
    func keys(prefix other: String) async throws -> [String] {
        try await base.keys(prefix: prefix + other).map { String($0.dropFirst(prefix.count)) }
    }
}
