// ModeratorKeys: the streamer hands out one-time keys; a key is consumed once and becomes a moderator session.

import Foundation
import PluginAPI

@_cdecl("onionrp_plugin_entry")
public func onionrpPluginEntry(_ host: UInt32, _ built: UnsafeMutablePointer<UInt32>?) -> UnsafeMutableRawPointer? {
    PluginExport.entry(ModeratorKeysPlugin.self, hostVersion: host, builtVersion: built)
}

/// One-time moderator keys: generate (streamer), consume once (anyone holding a key), list and revoke.
final class ModeratorKeysPlugin: OverlayPlugin {
    static let name = "moderator-keys"
    static let version = "1.0.0"
    static let summary = "One-time moderator keys that become moderator sessions"

    struct KeyRecord: Codable {
        let id: String
        let streamerID: String?
        let label: String?
        let createdAt: Date
        let expiresAt: Date

        enum CodingKeys: String, CodingKey {
            case id, label
            case streamerID = "streamer_id"
            case createdAt = "created_at"
            case expiresAt = "expires_at"
        }
    }

    let configuration: ModeratorKeysConfiguration
    let context: PluginContext
    let generated: any MetricCounter
    let consumed: any MetricCounter
    let rejected: any MetricCounter

    init(configuration: ModeratorKeysConfiguration, context: PluginContext) throws {
        self.configuration = configuration
        self.context = context
        self.generated = context.metrics.counter("moderator_keys_generated_total", labels: [])
        self.consumed = context.metrics.counter("moderator_keys_consumed_total", labels: [])
        self.rejected = context.metrics.counter("moderator_keys_rejected_total", labels: [])
    }

    func keyID(_ secret: String) -> String { String(context.crypto.sha256Hex(secret).prefix(32)) }

    func setUp(_ registrar: PluginRegistrar) async throws {
        registrar.route(
            .post, "/api/moderator-keys/generate", access: .streamer,
            rateLimit: RateLimit(name: "moderator-keys.generate", burst: 10, perMinute: 30),
            summary: "create a one-time key (form or JSON: streamer_id, label)"
        ) { request in
            try await self.generate(request)
        }
        registrar.route(
            .post, "/api/moderator-keys/consume", access: .public,
            rateLimit: RateLimit(name: "moderator-keys.consume", burst: 10, perMinute: 20),
            summary: "consume a key once (form: key); returns a session"
        ) { request in
            try await self.consume(request)
        }
        registrar.route(.get, "/api/moderator-keys", access: .streamer, summary: "list unconsumed keys (no secrets)") { _ in
            try .json(["keys": try await self.outstandingKeys()])
        }
        registrar.route(.delete, "/api/moderator-keys/{id}", access: .streamer, summary: "revoke an unconsumed key") { request in
            let id = try request.parameter("id")
            guard try await self.context.store.delete("key:" + id) else { throw PluginError.notFound("no unconsumed key with id '\(id)'") }
            return try .json(["revoked": id])
        }
        registrar.route(.get, "/api/moderator-sessions", access: .streamer, summary: "list live moderator sessions") { _ in
            try .json(["sessions": try await self.context.sessions.list()])
        }
        registrar.route(.delete, "/api/moderator-sessions/{id}", access: .streamer, summary: "revoke a session and close its sockets") { request in
            let id = try request.parameter("id")
            guard try await self.context.sessions.revoke(id: id) else { throw PluginError.notFound("no live session with id '\(id)'") }
            return try .json(["revoked": id])
        }
        registrar.route(.get, "/api/moderator/me", access: .moderator, summary: "the caller's session") { request in
            guard case .moderator(let info) = request.caller else {
                return try .json(["role": request.caller.role])
            }
            return try .json(info)
        }
        registrar.route(.post, "/api/moderator/logout", access: .moderator, summary: "end the caller's session") { request in
            guard case .moderator(let info) = request.caller else {
                throw PluginError.badRequest("only a moderator session can log out", code: "not_a_session")
            }
            _ = try await self.context.sessions.revoke(id: info.id)
            return try .json(["logged_out": info.id])
        }
    }

    func cleanField(_ value: String?, name: String) throws -> String? {
        guard let value = value?.trimmingCharacters(in: .whitespacesAndNewlines), !value.isEmpty else { return nil }
        guard value.count <= configuration.maxFieldLength else {
            throw PluginError.invalidField(name, "at most \(configuration.maxFieldLength) characters")
        }
        guard !value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw PluginError.invalidField(name, "control characters are not allowed")
        }
        return value
    }

    func outstandingKeys() async throws -> [KeyRecord] {
        var records: [KeyRecord] = []
        for key in try await context.store.keys(prefix: "key:") {
            if let record = try await context.store.getJSON(KeyRecord.self, key) { records.append(record) }
        }
        return records.sorted { $0.createdAt > $1.createdAt }
    }

    func generate(_ request: PluginRequest) async throws -> PluginResponse {
        let fields = try await request.formFields()
        let streamerID = try cleanField(fields["streamer_id"], name: "streamer_id")
        let label = try cleanField(fields["label"], name: "label")
        let outstanding = try await context.store.keys(prefix: "key:").count
        guard outstanding < configuration.maxOutstandingKeys else {
            throw PluginError(
                status: 409, code: "too_many_keys",
                message: "\(outstanding) keys are still unconsumed (limit \(configuration.maxOutstandingKeys)); revoke some first")
        }
        let secret = context.crypto.randomToken(bytes: 24)
        let ttl = context.settings.moderatorKeyTTL
        let now = Date()
        let ttlSeconds = Int(ttl.components.seconds)
        let record = KeyRecord(
            id: keyID(secret), streamerID: streamerID, label: label, createdAt: now,
            expiresAt: now.addingTimeInterval(TimeInterval(ttlSeconds)))
        try await context.store.setJSON("key:" + record.id, record, ttl: ttl)
        generated.increment()
        context.logger.info("moderator key generated", ["key_id": record.id, "streamer_id": streamerID ?? "-"])
        struct Answer: Encodable {
            let key: String
            let id: String
            let streamer_id: String?
            let label: String?
            let ttl_seconds: Int
            let expires_at: Date
        }
        return try .json(
            Answer(
                key: secret, id: record.id, streamer_id: streamerID, label: label, ttl_seconds: ttlSeconds,
                expires_at: record.expiresAt), status: 201)
    }

    func consume(_ request: PluginRequest) async throws -> PluginResponse {
        let fields = try await request.formFields()
        guard let key = fields["key"]?.trimmingCharacters(in: .whitespacesAndNewlines), !key.isEmpty else {
            throw PluginError.invalidField("key", "required")
        }
        // Too many failures from one address lock it out for the rest of the window (guessing keys is pointless
        // at 128 bits, but a flood of attempts is still refused cheaply).
        let failureKey = "failures:" + (request.remoteAddress ?? "unknown")
        if let count = try await context.store.get(failureKey).flatMap({ Int(String(decoding: $0, as: UTF8.self)) }),
            count >= configuration.maxFailures
        {
            throw PluginError.rateLimited(retryAfterSeconds: configuration.failureWindowSeconds)
        }
        // Used, expired and unknown keys get one answer, so the endpoint is no oracle.
        let invalid = PluginError(status: 401, code: "invalid_key", message: "the key is invalid, expired or already used")
        guard key.utf8.count <= 128, let bytes = try await context.store.take("key:" + keyID(key)),
            let record = try? JSON.decode(KeyRecord.self, from: bytes)
        else {
            rejected.increment()
            _ = try await context.store.increment(failureKey, by: 1, ttl: .seconds(configuration.failureWindowSeconds))
            throw invalid
        }
        let session = try await context.sessions.create(streamerID: record.streamerID, label: record.label)
        consumed.increment()
        context.logger.info("moderator key consumed", ["key_id": record.id, "session_id": session.info.id])
        struct Answer: Encodable {
            let session: String
            let session_id: String
            let streamer_id: String?
            let ttl_seconds: Int
            let expires_at: Date
        }
        return try .json(
            Answer(
                session: session.secret, session_id: session.info.id, streamer_id: record.streamerID,
                ttl_seconds: Int(context.settings.moderatorSessionTTL.components.seconds),
                expires_at: session.info.expiresAt))
    }
}
