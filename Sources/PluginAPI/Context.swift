// The context: everything a plugin may use from the engine. A plugin touches nothing else.

import Foundation

/// Everything the engine lends a plugin.
public struct PluginContext: Sendable {
    /// The plugin's name.
    public let pluginName: String
    /// The plugin's own folder under the data folder (`<data>/plugins/<name>`); it exists.
    public let dataDirectory: URL
    /// The engine's uploads folder; it exists.
    public let uploadsDirectory: URL
    /// The URL the engine is reached at, e.g. `http://localhost:8080` (no trailing slash).
    public let publicURL: String
    /// Engine settings a plugin may need (TTLs, limits).
    public let settings: EngineSettings
    /// A key-value store with TTLs, namespaced to this plugin.
    public let store: any KeyValueStore
    /// The plugin's logger (messages carry the plugin's name).
    public let logger: any PluginLogger
    /// Counters, gauges and timers, exported on `/metrics`.
    public let metrics: any PluginMetrics
    /// Secure random bytes, SHA-256 and HMAC.
    public let crypto: any CryptoProvider
    /// Broadcasts to the engine's WebSocket channels.
    public let sockets: any SocketHub
    /// Moderator sessions, owned by the engine.
    public let sessions: any ModeratorSessions
    /// Read access to the scene, owned by the engine.
    public let scene: any SceneAccess
    /// Messages to this plugin on every engine sharing the store (several engines behind a proxy).
    public let bus: any EngineBus

    /// Creates a context. Engine use.
    @_spi(Engine)
    public init(
        pluginName: String, dataDirectory: URL, uploadsDirectory: URL, publicURL: String, settings: EngineSettings,
        store: any KeyValueStore, logger: any PluginLogger, metrics: any PluginMetrics, crypto: any CryptoProvider,
        sockets: any SocketHub, sessions: any ModeratorSessions, scene: any SceneAccess, bus: any EngineBus
    ) {
        self.bus = bus
        self.pluginName = pluginName
        self.dataDirectory = dataDirectory
        self.uploadsDirectory = uploadsDirectory
        self.publicURL = publicURL
        self.settings = settings
        self.store = store
        self.logger = logger
        self.metrics = metrics
        self.crypto = crypto
        self.sockets = sockets
        self.sessions = sessions
        self.scene = scene
    }
}

/// Engine settings visible to plugins.
public struct EngineSettings: Sendable {
    /// Lifetime of a one-time moderator key (`MODERATOR_KEY_TTL_SECONDS`).
    public let moderatorKeyTTL: Duration
    /// Idle lifetime of a moderator session (`MODERATOR_SESSION_TTL_SECONDS`); it slides on use.
    public let moderatorSessionTTL: Duration
    /// True when a streamer token is configured.
    public let streamerTokenConfigured: Bool
    /// Default largest request body for routes that do not set their own.
    public let defaultBodyLimit: Int

    /// Creates settings. Engine use.
    @_spi(Engine)
    public init(moderatorKeyTTL: Duration, moderatorSessionTTL: Duration, streamerTokenConfigured: Bool, defaultBodyLimit: Int) {
        self.moderatorKeyTTL = moderatorKeyTTL
        self.moderatorSessionTTL = moderatorSessionTTL
        self.streamerTokenConfigured = streamerTokenConfigured
        self.defaultBodyLimit = defaultBodyLimit
    }
}

/// Errors of a ``KeyValueStore``.
public enum StoreError: Error, Sendable, CustomStringConvertible {
    /// The backend cannot be reached; the engine answers 503 `store_unavailable`.
    case unavailable(String)
    /// The backend answered something unexpected.
    case protocolError(String)

    /// The message.
    public var description: String {
        switch self {
        case .unavailable(let why): return "store unavailable: \(why)"
        case .protocolError(let why): return "store error: \(why)"
        }
    }
}

/// A key-value store with TTLs: the embedded store or Redis, with the same behaviour.
///
/// Keys a plugin uses are namespaced by the engine, so two plugins never collide.
///
/// **Value format.** Values are opaque bytes, stored and returned exactly as given (Redis strings; the embedded store
/// keeps them as base64 in its snapshot). The typed helpers fix the encodings: ``setString(_:_:ttl:)`` writes UTF-8,
/// ``setJSON(_:_:ttl:)`` writes JSON (dates ISO 8601), and ``increment(_:by:ttl:)`` keeps the integer as its decimal
/// ASCII text, so ``getInteger(_:)`` reads a counter and ``setInteger(_:_:ttl:)`` writes one.
public protocol KeyValueStore: Sendable {
    /// The value of `key`, or nil when absent or expired.
    func get(_ key: String) async throws -> [UInt8]?
    /// Stores `value`.
    /// - Parameters:
    ///   - ttl: Lifetime; nil keeps it until deleted.
    ///   - onlyIfAbsent: When true, nothing is written if the key exists.
    /// - Returns: Whether it was written.
    @discardableResult
    func set(_ key: String, _ value: [UInt8], ttl: Duration?, onlyIfAbsent: Bool) async throws -> Bool
    /// Atomically reads and deletes `key`: under any concurrency exactly one caller gets the value.
    func take(_ key: String) async throws -> [UInt8]?
    /// Atomically adds `delta` to the integer at `key` (absent counts as 0).
    /// - Parameter ttl: Set on the key when this call created it.
    /// - Returns: The new value.
    func increment(_ key: String, by delta: Int64, ttl: Duration?) async throws -> Int64
    /// Sets a new lifetime on an existing key. Returns false when the key is absent.
    @discardableResult
    func expire(_ key: String, ttl: Duration) async throws -> Bool
    /// Deletes `key`. Returns whether it existed.
    @discardableResult
    func delete(_ key: String) async throws -> Bool
    /// The keys that start with `prefix` (unordered).
    func keys(prefix: String) async throws -> [String]
}

extension KeyValueStore {
    /// Stores `value` without conditions.
    public func set(_ key: String, _ value: [UInt8], ttl: Duration? = nil) async throws {
        _ = try await set(key, value, ttl: ttl, onlyIfAbsent: false)
    }

    /// Stores a JSON-encoded value.
    public func setJSON<T: Encodable>(_ key: String, _ value: T, ttl: Duration? = nil) async throws {
        try await set(key, try JSON.encode(value), ttl: ttl)
    }

    /// Reads a JSON-encoded value (nil when absent).
    public func getJSON<T: Decodable>(_ type: T.Type, _ key: String) async throws -> T? {
        guard let bytes = try await get(key) else { return nil }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(type, from: Data(bytes))
    }

    /// Stores a string as UTF-8.
    public func setString(_ key: String, _ value: String, ttl: Duration? = nil) async throws {
        try await set(key, Array(value.utf8), ttl: ttl)
    }

    /// Reads a UTF-8 string (nil when absent; invalid UTF-8 is repaired with U+FFFD).
    public func getString(_ key: String) async throws -> String? {
        try await get(key).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Stores an integer as decimal text, the format ``increment(_:by:ttl:)`` uses.
    public func setInteger(_ key: String, _ value: Int64, ttl: Duration? = nil) async throws {
        try await set(key, Array(String(value).utf8), ttl: ttl)
    }

    /// Reads an integer written by ``setInteger(_:_:ttl:)`` or ``increment(_:by:ttl:)`` (nil when absent).
    /// - Throws: ``StoreError/protocolError(_:)`` when the value is not a decimal integer.
    public func getInteger(_ key: String) async throws -> Int64? {
        guard let bytes = try await get(key) else { return nil }
        guard let value = Int64(String(decoding: bytes, as: UTF8.self)) else {
            throw StoreError.protocolError("the value of '\(key)' is not an integer")
        }
        return value
    }
}

/// Log levels, in increasing severity.
public enum LogLevel: String, Sendable, CaseIterable {
    case trace, debug, info, notice, warning, error, critical
}

/// A plugin's logger; the engine writes through swift-log with the plugin's name attached.
public protocol PluginLogger: Sendable {
    /// Writes `message` at `level` with structured `metadata`.
    func log(_ level: LogLevel, _ message: String, metadata: [String: String])
}

extension PluginLogger {
    /// Debug message.
    public func debug(_ message: String, _ metadata: [String: String] = [:]) { log(.debug, message, metadata: metadata) }
    /// Informational message.
    public func info(_ message: String, _ metadata: [String: String] = [:]) { log(.info, message, metadata: metadata) }
    /// Warning.
    public func warning(_ message: String, _ metadata: [String: String] = [:]) { log(.warning, message, metadata: metadata) }
    /// Error.
    public func error(_ message: String, _ metadata: [String: String] = [:]) { log(.error, message, metadata: metadata) }
}

/// A monotonically increasing count.
public protocol MetricCounter: Sendable {
    /// Adds `amount` (default 1).
    func increment(by amount: Int64)
}

extension MetricCounter {
    /// Adds one.
    public func increment() { increment(by: 1) }
}

/// A value that goes up and down.
public protocol MetricGauge: Sendable {
    /// Sets the current value.
    func set(_ value: Double)
}

/// Durations, exported as a histogram.
public protocol MetricTimer: Sendable {
    /// Records one duration.
    func record(_ duration: Duration)
}

/// Creates metrics exported on `/metrics` in the Prometheus text format.
///
/// Names should be `snake_case`; the engine prefixes them with `onionrp_plugin_`.
public protocol PluginMetrics: Sendable {
    /// A counter.
    func counter(_ name: String, labels: [(String, String)]) -> any MetricCounter
    /// A gauge.
    func gauge(_ name: String, labels: [(String, String)]) -> any MetricGauge
    /// A timer.
    func timer(_ name: String, labels: [(String, String)]) -> any MetricTimer
}

/// Cryptography backed by OpenSSL in the engine.
public protocol CryptoProvider: Sendable {
    /// `count` bytes from a cryptographically secure generator.
    func randomBytes(_ count: Int) -> [UInt8]
    /// SHA-256 of `data`.
    func sha256(_ data: [UInt8]) -> [UInt8]
    /// HMAC-SHA256 of `message` under `key`.
    func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8]
    /// HMAC-SHA1 of `message` under `key` (TURN REST credentials need it).
    func hmacSHA1(key: [UInt8], message: [UInt8]) -> [UInt8]
    /// A SHA-256 fed piece by piece, for content too large to hold (uploads, files on disk).
    func makeSHA256() -> any IncrementalHash
}

/// A hash computed over data given in pieces. Use one from a single task at a time.
public protocol IncrementalHash: AnyObject {
    /// Adds the next piece.
    func update(_ bytes: [UInt8])
    /// The digest of everything added; the hash cannot be used afterwards.
    /// - Throws: ``PluginError`` 500 `hash_failed` when the digest cannot be computed (or was already taken):
    ///   never an empty digest, which would become an empty content id.
    func finish() throws -> [UInt8]
}

extension CryptoProvider {
    /// A random URL-safe token of `bytes` random bytes (base64url without padding); 16 bytes = 128 bits.
    public func randomToken(bytes: Int = 32) -> String { Base64URL.encode(randomBytes(bytes)) }

    /// Compares two byte strings in time that depends only on their lengths.
    public func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    /// Lower-case hex of SHA-256 of the UTF-8 of `text`.
    public func sha256Hex(_ text: String) -> String { Hex.encode(sha256(Array(text.utf8))) }
}

/// Hex encoding.
public enum Hex {
    /// Lower-case hex.
    public static func encode(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// base64url without padding (RFC 4648 section 5).
public enum Base64URL {
    /// Encodes.
    public static func encode(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Decodes; nil for text that is not base64url.
    public static func decode(_ text: String) -> [UInt8]? {
        var base = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base.count % 4 != 0 { base += "=" }
        return Data(base64Encoded: base).map { Array($0) }
    }
}

/// What is known about a moderator session (never its secret).
public struct ModeratorSessionInfo: Sendable, Codable, Equatable {
    /// Public id of the session (derived from the secret's hash; safe to show and to revoke by).
    public let id: String
    /// The `streamer_id` the key was generated for, if any.
    public let streamerID: String?
    /// Free label given when the key was generated.
    public let label: String?
    /// When the session was created.
    public let createdAt: Date
    /// When it expires unless used again.
    public let expiresAt: Date

    /// Creates the info. Engine use.
    @_spi(Engine)
    public init(id: String, streamerID: String?, label: String?, createdAt: Date, expiresAt: Date) {
        self.id = id
        self.streamerID = streamerID
        self.label = label
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }

    enum CodingKeys: String, CodingKey {
        case id, label
        case streamerID = "streamer_id"
        case createdAt = "created_at"
        case expiresAt = "expires_at"
    }
}

/// A session just created: its secret, shown once to the moderator.
public struct NewModeratorSession: Sendable {
    /// The secret the moderator presents (`?session=` / `x-moderator-session`).
    public let secret: String
    /// The session's public info.
    public let info: ModeratorSessionInfo

    /// Creates the value. Engine use.
    @_spi(Engine)
    public init(secret: String, info: ModeratorSessionInfo) {
        self.secret = secret
        self.info = info
    }
}

/// Moderator sessions, owned by the engine (stored hashed, TTL sliding on use).
public protocol ModeratorSessions: Sendable {
    /// Creates a session.
    func create(streamerID: String?, label: String?) async throws -> NewModeratorSession
    /// The session for `secret` when valid; using it slides its TTL.
    func validate(secret: String) async throws -> ModeratorSessionInfo?
    /// Every live session.
    func list() async throws -> [ModeratorSessionInfo]
    /// Revokes a session by public id and closes its sockets. Returns whether it existed.
    func revoke(id: String) async throws -> Bool
}

/// A snapshot of the active scene.
public struct SceneSnapshot: Sendable {
    /// The scene's name.
    public let name: String
    /// Its `_version`.
    public let version: Int64
    /// The scene as JSON (what `GET /api/scene` returns).
    public let json: [UInt8]

    /// Creates a snapshot. Engine use.
    @_spi(Engine)
    public init(name: String, version: Int64, json: [UInt8]) {
        self.name = name
        self.version = version
        self.json = json
    }
}

/// Read access to the scenes, owned by the engine.
public protocol SceneAccess: Sendable {
    /// The active scene.
    func activeScene() async throws -> SceneSnapshot
    /// Ids of elements (in every scene) whose `media` field names `mediaID`, as `scene/element`.
    func elements(referencingMedia mediaID: String) async throws -> [String]
}
