// Config: the shape of overlay.yaml, its defaults, and the environment variables that override it.

import Foundation
@_spi(Engine) import PluginAPI

/// The whole of `overlay.yaml`.
public struct EngineConfig: Sendable {
    public var server = ServerConfig()
    public var security = SecurityConfig()
    public var storage = StorageConfig()
    public var sessions = SessionsConfig()
    public var limits = LimitsConfig()
    public var scene = SceneConfig()
    public var plugins: [PluginEntry] = []
    /// The file it was read from.
    public var sourcePath: String = ""

    public init() {}
}

/// `server:`.
public struct ServerConfig: DefaultedConfiguration {
    /// Address to listen on (`HOST`).
    public var host = "127.0.0.1"
    /// Port to listen on (`PORT`); 0 picks a free port.
    public var port = 8080
    /// URL the engine is reached at from outside (`PUBLIC_URL`); empty: `http://host:port`.
    public var publicURL = ""
    /// Folder of persisted state (`DATA_DIR`).
    public var dataDir = "data"
    /// Folder of uploaded media (`UPLOADS_DIR`).
    public var uploadsDir = "uploads"
    /// Folder the plugin libraries are found in (`PLUGINS_DIR`); empty: the engine executable's folder.
    public var pluginsDir = ""
    /// Folder of the web pages (`WEB_DIR`).
    public var webDir = "web"
    /// Seconds to wait for requests in flight on shutdown.
    public var shutdownGraceSeconds = 10
    /// Most client connections at once; past it only `/healthz`, `/readyz` and `/metrics` are answered.
    public var maxConnections = 10_000
    /// Seconds a new connection has to send its first complete request head.
    public var headerTimeoutSeconds = 10
    /// Seconds a keep-alive connection may wait for (and send) its next request head.
    public var idleTimeoutSeconds = 60
    /// Seconds a request body may stall (the engine waiting to read, nothing arriving).
    public var bodyTimeoutSeconds = 30

    public init() {}
}

/// `security:`.
public struct SecurityConfig: DefaultedConfiguration {
    /// The streamer's secret (`STREAMER_API_TOKEN`); empty: one is generated and kept in the data folder.
    public var streamerToken = ""
    /// When set, overlays must present it (`?token=` or `x-overlay-token`) (`OVERLAY_TOKEN`).
    public var overlayToken = ""
    /// Refuse state-changing requests and WebSocket upgrades from other origins (`ENABLE_STRICT_ORIGIN`).
    public var strictOrigin = false
    /// Origins allowed when strict (`ALLOWED_ORIGINS`, comma-separated).
    public var allowedOrigins: [String] = []
    /// Peers whose `X-Forwarded-For` is believed (exact addresses).
    public var trustedProxies: [String] = []

    public init() {}
}

/// `storage:`.
public struct StorageConfig: DefaultedConfiguration {
    /// Where keys, sessions and counters live.
    public enum Backend: String, Decodable, Sendable, CaseIterable {
        /// In the engine's memory (the default; state is lost on restart).
        case embedded
        /// A Redis server at `redis_url`.
        case redis
    }
    /// The backend (`REDIS_URL` set in the environment selects `redis`).
    public var backend = Backend.embedded
    /// `redis://[:password@]host:port/db` or `unix:///path/redis.sock` (`REDIS_URL`).
    public var redisURL = ""
    /// Keep the embedded store in `<data_dir>/store.json` so keys and sessions survive a restart.
    public var persistEmbedded = true

    public init() {}
}

/// `sessions:`.
public struct SessionsConfig: DefaultedConfiguration {
    /// Lifetime of an unconsumed moderator key (`MODERATOR_KEY_TTL_SECONDS`).
    public var moderatorKeyTTLSeconds = 600
    /// Idle lifetime of a moderator session (`MODERATOR_SESSION_TTL_SECONDS`).
    public var moderatorSessionTTLSeconds = 43_200

    public init() {}
}

/// One rate-limit bucket's numbers.
public struct RateLimitConfig: Decodable, Sendable, Equatable {
    /// Requests allowed in a burst.
    public var burst: Int
    /// Requests added back per minute.
    public var perMinute: Int

    /// Creates the numbers of a bucket.
    public init(burst: Int, perMinute: Int) {
        self.burst = burst
        self.perMinute = perMinute
    }

    enum CodingKeys: String, CodingKey {
        case burst
        case perMinute = "per_minute"
    }
}

/// `limits:`.
public struct LimitsConfig: DefaultedConfiguration {
    /// Largest request body a route reads whole, unless the route sets its own.
    public var maxBodyBytes = 1 << 20
    /// Largest inbound WebSocket message on the engine channels.
    public var wsMaxMessageBytes = 64 << 10
    /// Outbound frames queued per connection before it counts as stuck and is dropped.
    public var wsOutboundQueue = 256
    /// Seconds a single frame may take to send before the client is dropped as stuck.
    public var wsSendTimeoutSeconds = 10
    /// Seconds between keep-alive pings.
    public var wsPingSeconds = 20
    /// Scene frames one socket may have waiting (a burst of versions, each delivered) before a newer one replaces the
    /// newest waiting one (a slow client then skips to the latest scene).
    public var wsSceneBacklog = 32
    /// Overrides of route rate limits by bucket name (`moderator-keys.generate: {burst: 5, per_minute: 10}`).
    public var rate: [String: RateLimitConfig] = [:]

    public init() {}
}

/// `scene:`.
public struct SceneConfig: DefaultedConfiguration {
    /// Most elements in one scene.
    public var maxElements = 500
    /// Longest text of a text element.
    public var maxTextLength = 2000
    /// Versions kept per scene for history and undo.
    public var historySize = 50
    /// History entries older than this are dropped (besides the count limit).
    public var historyMaxAgeSeconds = 7 * 24 * 3600
    /// Largest scene save body.
    public var maxBodyBytes = 2 << 20
    /// Recent changes kept for clients that reconnect with the version they have (they get exactly what they missed);
    /// with the redis backend also the length of the shared change log (a Redis stream) engines catch up from.
    public var replayLogSize = 1000

    public init() {}
}

/// One entry of `plugins:`.
public struct PluginEntry: Decodable, Sendable {
    /// The plugin's name; must equal the name the library declares.
    public var name: String
    /// Library file; default `<plugins_dir>/lib<name>.so`.
    public var path: String?
    /// Whether it is loaded (default true).
    public var enabled: Bool
    /// The plugin's web folder; default: a `web` folder beside the library. Relative: against the working directory.
    public var web: String?
    /// The plugin's own section, decoded by the plugin.
    public var config: ConfigNode?
    /// Line of the entry in the file.
    public var line: Int = 0

    enum CodingKeys: String, CodingKey { case name, path, enabled, web, config }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        path = try c.decodeIfPresent(String.self, forKey: .path)
        enabled = try c.decodeIfPresent(Bool.self, forKey: .enabled) ?? true
        web = try c.decodeIfPresent(String.self, forKey: .web)
        config = try c.decodeIfPresent(ConfigNode.self, forKey: .config)
    }

    public init(name: String, path: String?, enabled: Bool = true, web: String? = nil, config: ConfigNode? = nil) {
        self.name = name
        self.path = path
        self.web = web
        self.enabled = enabled
        self.config = config
    }
}
