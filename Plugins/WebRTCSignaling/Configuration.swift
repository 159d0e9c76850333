// WebRTCSignaling: the plugin's section of overlay.yaml, with its environment overrides.

import Foundation
import PluginAPI

/// Which rooms an overlay (access `.overlay`) may get a viewer token for.
enum OverlayRoomScope: String, Sendable {
    /// Only rooms named by a `webrtc` element of the active scene.
    case scene
    /// Any valid room name.
    case any
}

/// `plugins[name=webrtc-signaling].config`. Every key is optional; unknown keys are refused.
struct WebRTCSignalingConfiguration: Decodable, Sendable {
    // ICE
    /// STUN server URLs (`stun:` / `stuns:`) given to browsers. `WEBRTC_STUN_URLS` (comma-separated) overrides.
    var stunURLs: [String] = []
    /// TURN server URLs (`turn:` / `turns:`). `WEBRTC_TURN_URLS` (comma-separated) overrides.
    var turnURLs: [String] = []
    /// Shared secret of coturn's `use-auth-secret`: short-lived TURN REST credentials are minted from it.
    /// `WEBRTC_TURN_SECRET` overrides.
    var turnSecret = ""
    /// Static TURN user (used only without `turn_secret`). `WEBRTC_TURN_USERNAME` overrides.
    var turnUsername = ""
    /// Static TURN password (used only without `turn_secret`). `WEBRTC_TURN_PASSWORD` overrides.
    var turnPassword = ""
    /// Lifetime of minted TURN REST credentials.
    var turnCredentialTTLSeconds = 3600
    /// When true, `GET /api/webrtc/config` includes TURN servers only for a valid room token (`?token=`).
    var turnRequiresToken = true

    // Tokens
    /// Key that signs room tokens. Empty: `WEBRTC_TOKEN_SECRET`, else one generated once and kept in the
    /// plugin's data folder (`token-secret`, mode 0600).
    var tokenSecret = ""
    /// Default lifetime of a token from `POST /api/webrtc/token`.
    var tokenTTLSeconds = 3600
    /// Longest lifetime a caller may ask for with `ttl`.
    var maxTokenTTLSeconds = 86400
    /// Lifetime of a viewer token from `POST /api/webrtc/rooms/{room}/viewer-token` (overlays).
    var overlayTokenTTLSeconds = 60
    /// Rooms an overlay may get a viewer token for: `scene` (named by a webrtc element of the active scene) or `any`.
    var overlayRooms = OverlayRoomScope.scene

    // Rooms and sockets
    /// A second publisher replaces the first (true) or is refused with 4409 (false).
    var replacePublisher = false
    /// Most viewers in one room; more are refused with 4429.
    var maxViewersPerRoom = 16
    /// Most rooms with someone in them; a peer that would open one more is refused with 4429.
    var maxRooms = 32
    /// Largest accepted signaling message in bytes (SDP included); bigger ones get an error frame.
    var maxMessageBytes = 65536
    /// A socket that sends nothing for this long is closed (4408). Pages ping every 15 s.
    var idleTimeoutSeconds = 60
    /// Error frames a socket may earn before it is closed (1008).
    var maxErrors = 10
    /// Sustained messages per second per socket (a token bucket refilled at this rate).
    var messagesPerSecond = 50
    /// Burst of messages per socket (ICE candidates come in bursts).
    var messageBurst = 200
    /// Frames queued for one socket before it counts as stuck and is closed (1013).
    var outboundQueue = 256

    // Metrics
    /// Samples of `publisher.metrics` / `viewer.metrics` kept per peer for the stats history.
    var metricsHistory = 30
    /// Most rooms that get their own `room` label on /metrics (later rooms are counted only in totals).
    var metricsRoomLabels = 16

    enum CodingKeys: String, CodingKey {
        case stunURLs = "stun_urls"
        case turnURLs = "turn_urls"
        case turnSecret = "turn_secret"
        case turnUsername = "turn_username"
        case turnPassword = "turn_password"
        case turnCredentialTTLSeconds = "turn_credential_ttl_seconds"
        case turnRequiresToken = "turn_requires_token"
        case tokenSecret = "token_secret"
        case tokenTTLSeconds = "token_ttl_seconds"
        case maxTokenTTLSeconds = "max_token_ttl_seconds"
        case overlayTokenTTLSeconds = "overlay_token_ttl_seconds"
        case overlayRooms = "overlay_rooms"
        case replacePublisher = "replace_publisher"
        case maxViewersPerRoom = "max_viewers_per_room"
        case maxRooms = "max_rooms"
        case maxMessageBytes = "max_message_bytes"
        case idleTimeoutSeconds = "idle_timeout_seconds"
        case maxErrors = "max_errors"
        case messagesPerSecond = "messages_per_second"
        case messageBurst = "message_burst"
        case outboundQueue = "outbound_queue"
        case metricsHistory = "metrics_history"
        case metricsRoomLabels = "metrics_room_labels"
    }

    /// The defaults (no `config:` section).
    init() {}

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        stunURLs = try c.decodeIfPresent([String].self, forKey: .stunURLs) ?? stunURLs
        turnURLs = try c.decodeIfPresent([String].self, forKey: .turnURLs) ?? turnURLs
        turnSecret = try c.decodeIfPresent(String.self, forKey: .turnSecret) ?? turnSecret
        turnUsername = try c.decodeIfPresent(String.self, forKey: .turnUsername) ?? turnUsername
        turnPassword = try c.decodeIfPresent(String.self, forKey: .turnPassword) ?? turnPassword
        turnCredentialTTLSeconds = try c.decodeIfPresent(Int.self, forKey: .turnCredentialTTLSeconds) ?? turnCredentialTTLSeconds
        turnRequiresToken = try c.decodeIfPresent(Bool.self, forKey: .turnRequiresToken) ?? turnRequiresToken
        tokenSecret = try c.decodeIfPresent(String.self, forKey: .tokenSecret) ?? tokenSecret
        tokenTTLSeconds = try c.decodeIfPresent(Int.self, forKey: .tokenTTLSeconds) ?? tokenTTLSeconds
        maxTokenTTLSeconds = try c.decodeIfPresent(Int.self, forKey: .maxTokenTTLSeconds) ?? maxTokenTTLSeconds
        overlayTokenTTLSeconds = try c.decodeIfPresent(Int.self, forKey: .overlayTokenTTLSeconds) ?? overlayTokenTTLSeconds
        if let scope = try c.decodeIfPresent(String.self, forKey: .overlayRooms) {
            guard let parsed = OverlayRoomScope(rawValue: scope) else {
                throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [CodingKeys.overlayRooms],
                                                        debugDescription: "expected 'scene' or 'any', found '\(scope)'"))
            }
            overlayRooms = parsed
        }
        replacePublisher = try c.decodeIfPresent(Bool.self, forKey: .replacePublisher) ?? replacePublisher
        maxViewersPerRoom = try c.decodeIfPresent(Int.self, forKey: .maxViewersPerRoom) ?? maxViewersPerRoom
        maxRooms = try c.decodeIfPresent(Int.self, forKey: .maxRooms) ?? maxRooms
        maxMessageBytes = try c.decodeIfPresent(Int.self, forKey: .maxMessageBytes) ?? maxMessageBytes
        idleTimeoutSeconds = try c.decodeIfPresent(Int.self, forKey: .idleTimeoutSeconds) ?? idleTimeoutSeconds
        maxErrors = try c.decodeIfPresent(Int.self, forKey: .maxErrors) ?? maxErrors
        messagesPerSecond = try c.decodeIfPresent(Int.self, forKey: .messagesPerSecond) ?? messagesPerSecond
        messageBurst = try c.decodeIfPresent(Int.self, forKey: .messageBurst) ?? messageBurst
        outboundQueue = try c.decodeIfPresent(Int.self, forKey: .outboundQueue) ?? outboundQueue
        metricsHistory = try c.decodeIfPresent(Int.self, forKey: .metricsHistory) ?? metricsHistory
        metricsRoomLabels = try c.decodeIfPresent(Int.self, forKey: .metricsRoomLabels) ?? metricsRoomLabels

        func check(_ ok: Bool, _ key: CodingKeys, _ message: String) throws {
            guard ok else { throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [key], debugDescription: message)) }
        }
        try check((60...172_800).contains(turnCredentialTTLSeconds), .turnCredentialTTLSeconds, "must be between 60 and 172800")
        try check((1...2_592_000).contains(maxTokenTTLSeconds), .maxTokenTTLSeconds, "must be between 1 and 2592000 (30 days)")
        try check((1...maxTokenTTLSeconds).contains(tokenTTLSeconds), .tokenTTLSeconds, "must be between 1 and max_token_ttl_seconds")
        try check((5...3600).contains(overlayTokenTTLSeconds), .overlayTokenTTLSeconds, "must be between 5 and 3600")
        try check((1...1000).contains(maxViewersPerRoom), .maxViewersPerRoom, "must be between 1 and 1000")
        try check((1...10_000).contains(maxRooms), .maxRooms, "must be between 1 and 10000")
        try check((1024...(1 << 20)).contains(maxMessageBytes), .maxMessageBytes, "must be between 1024 and 1048576")
        try check((1...3600).contains(idleTimeoutSeconds), .idleTimeoutSeconds, "must be between 1 and 3600")
        try check((1...10_000).contains(maxErrors), .maxErrors, "must be between 1 and 10000")
        try check((1...10_000).contains(messagesPerSecond), .messagesPerSecond, "must be between 1 and 10000")
        try check((1...100_000).contains(messageBurst), .messageBurst, "must be between 1 and 100000")
        try check((8...100_000).contains(outboundQueue), .outboundQueue, "must be between 8 and 100000")
        try check((1...1000).contains(metricsHistory), .metricsHistory, "must be between 1 and 1000")
        try check((0...1000).contains(metricsRoomLabels), .metricsRoomLabels, "must be between 0 and 1000")
    }

    /// The configuration with the `WEBRTC_*` environment variables applied, checked as a whole.
    /// - Parameter environment: The process environment.
    /// - Throws: ``PluginError`` naming the setting when the ICE settings do not fit together.
    func applyingEnvironment(_ environment: [String: String]) throws -> WebRTCSignalingConfiguration {
        var copy = self
        func list(_ text: String) -> [String] {
            text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        if let value = environment["WEBRTC_STUN_URLS"] { copy.stunURLs = list(value) }
        if let value = environment["WEBRTC_TURN_URLS"] { copy.turnURLs = list(value) }
        if let value = environment["WEBRTC_TURN_SECRET"] { copy.turnSecret = value }
        if let value = environment["WEBRTC_TURN_USERNAME"] { copy.turnUsername = value }
        if let value = environment["WEBRTC_TURN_PASSWORD"] { copy.turnPassword = value }
        if let value = environment["WEBRTC_TOKEN_SECRET"] { copy.tokenSecret = value }
        try copy.validateICE()
        return copy
    }

    private func validateICE() throws {
        for url in stunURLs where !(url.hasPrefix("stun:") || url.hasPrefix("stuns:")) || url.count > 512 {
            throw PluginError.badRequest("webrtc-signaling: stun_urls / WEBRTC_STUN_URLS: '\(url)' must start with stun: or stuns:",
                                         code: "invalid_config")
        }
        for url in turnURLs where !(url.hasPrefix("turn:") || url.hasPrefix("turns:")) || url.count > 512 {
            throw PluginError.badRequest("webrtc-signaling: turn_urls / WEBRTC_TURN_URLS: '\(url)' must start with turn: or turns:",
                                         code: "invalid_config")
        }
        if !turnURLs.isEmpty, turnSecret.isEmpty, turnUsername.isEmpty || turnPassword.isEmpty {
            throw PluginError.badRequest(
                "webrtc-signaling: turn_urls are set but there are no credentials: set turn_secret (WEBRTC_TURN_SECRET, preferred) "
                    + "or turn_username and turn_password", code: "invalid_config")
        }
        if !turnSecret.isEmpty, turnSecret.utf8.count < 16 {
            throw PluginError.badRequest("webrtc-signaling: turn_secret / WEBRTC_TURN_SECRET must be at least 16 bytes", code: "invalid_config")
        }
        if !tokenSecret.isEmpty, tokenSecret.utf8.count < 32 {
            throw PluginError.badRequest("webrtc-signaling: token_secret / WEBRTC_TOKEN_SECRET must be at least 32 bytes", code: "invalid_config")
        }
    }
}
