// Sessions: moderator sessions, stored by the hash of their secret, TTL sliding on use.

import Foundation
@_spi(Engine) import PluginAPI
import Synchronization

/// The engine's ``ModeratorSessions``: secrets are 256 random bits; the store only ever sees their SHA-256.
public final class ModeratorSessionStore: ModeratorSessions {
    private struct Record: Codable {
        var id: String
        var streamerID: String?
        var label: String?
        var createdAt: Date
        var expiresAt: Date
    }

    private let store: any EngineStore
    private let crypto: any CryptoProvider
    private let ttl: Duration
    private let onRevoke = Mutex<[@Sendable (String) -> Void]>([])
    static let prefix = "engine:session:"

    /// Creates the sessions over `store`.
    public init(store: any EngineStore, crypto: any CryptoProvider, ttl: Duration) {
        self.store = store
        self.crypto = crypto
        self.ttl = ttl
    }

    /// Registers a callback run with the public id of each revoked session (the socket hub closes its sockets).
    public func whenRevoked(_ callback: @escaping @Sendable (String) -> Void) {
        onRevoke.withLock { $0.append(callback) }
    }

    func publicID(forSecret secret: String) -> String { String(crypto.sha256Hex(secret).prefix(32)) }

    private func info(_ record: Record) -> ModeratorSessionInfo {
        ModeratorSessionInfo(
            id: record.id, streamerID: record.streamerID, label: record.label,
            createdAt: record.createdAt, expiresAt: record.expiresAt)
    }

    public func create(streamerID: String?, label: String?) async throws -> NewModeratorSession {
        let secret = crypto.randomToken(bytes: 32)
        let id = publicID(forSecret: secret)
        let now = Date()
        let record = Record(id: id, streamerID: streamerID, label: label, createdAt: now, expiresAt: now.addingTimeInterval(ttl.inSeconds))
        try await store.set(Self.prefix + id, try JSON.encode(record), ttl: ttl)
        return NewModeratorSession(secret: secret, info: info(record))
    }

    public func validate(secret: String) async throws -> ModeratorSessionInfo? {
        guard !secret.isEmpty, secret.utf8.count <= 256 else { return nil }
        let id = publicID(forSecret: secret)
        guard let bytes = try await store.get(Self.prefix + id),
            var record = try? JSON.decode(Record.self, from: bytes)
        else { return nil }
        // Slide the TTL with EXPIRE, which fails when the key is gone: a revoke between the read above
        // and here stays a revoke (writing the record back would have brought the session back).
        // The stored record keeps its first expiry; the store's TTL is the truth.
        guard try await store.expire(Self.prefix + id, ttl: ttl) else { return nil }
        record.expiresAt = Date().addingTimeInterval(ttl.inSeconds)
        return info(record)
    }

    /// True while the session with public id `id` exists (neither expired nor revoked).
    public func isAlive(id: String) async throws -> Bool {
        try await store.get(Self.prefix + id) != nil
    }

    public func list() async throws -> [ModeratorSessionInfo] {
        var out: [ModeratorSessionInfo] = []
        for key in try await store.keys(prefix: Self.prefix) {
            if let bytes = try await store.get(key), let record = try? JSON.decode(Record.self, from: bytes) {
                out.append(info(record))
            }
        }
        return out.sorted { $0.createdAt < $1.createdAt }
    }

    public func revoke(id: String) async throws -> Bool {
        guard id.count == 32, id.allSatisfy(\.isHexDigit) else { return false }
        let existed = try await store.delete(Self.prefix + id)
        for callback in onRevoke.withLock({ $0 }) { callback(id) }
        return existed
    }
}
