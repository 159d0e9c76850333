// WebRTCSignaling: the plugin's section of overlay.yaml, with its environment overrides.

import Foundation
import PluginAPI

/// Which rooms an overlay (access `.overlay`) may get a viewer token for.
enum OverlayRoomScope: String, Sendable, Decodable, CaseIterable {
    /// Only rooms named by a `webrtc` element of the active scene.
    case scene
    /// Any valid room name.
    case any
}

/// `plugins[name=webrtc-signaling].config`. Every key is optional; unknown keys are refused.
struct WebRTCSignalingConfiguration: DefaultedConfiguration {
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

    /// The defaults (no `config:` section).
    init() {}

    /// Ranges of the numbers, checked after decoding.
    func validate() throws {
        func check(_ ok: Bool, _ key: String, _ message: String) throws {
            guard ok else { throw ConfigProblem(key, message) }
        }
        try check((60...172_800).contains(turnCredentialTTLSeconds), "turn_credential_ttl_seconds", "must be between 60 and 172800")
        try check((1...2_592_000).contains(maxTokenTTLSeconds), "max_token_ttl_seconds", "must be between 1 and 2592000 (30 days)")
        try check((1...maxTokenTTLSeconds).contains(tokenTTLSeconds), "token_ttl_seconds", "must be between 1 and max_token_ttl_seconds")
        try check((5...3600).contains(overlayTokenTTLSeconds), "overlay_token_ttl_seconds", "must be between 5 and 3600")
        try check((1...1000).contains(maxViewersPerRoom), "max_viewers_per_room", "must be between 1 and 1000")
        try check((1...10_000).contains(maxRooms), "max_rooms", "must be between 1 and 10000")
        try check((1024...(1 << 20)).contains(maxMessageBytes), "max_message_bytes", "must be between 1024 and 1048576")
        try check((1...3600).contains(idleTimeoutSeconds), "idle_timeout_seconds", "must be between 1 and 3600")
        try check((1...10_000).contains(maxErrors), "max_errors", "must be between 1 and 10000")
        try check((1...10_000).contains(messagesPerSecond), "messages_per_second", "must be between 1 and 10000")
        try check((1...100_000).contains(messageBurst), "message_burst", "must be between 1 and 100000")
        try check((8...100_000).contains(outboundQueue), "outbound_queue", "must be between 8 and 100000")
        try check((1...1000).contains(metricsHistory), "metrics_history", "must be between 1 and 1000")
        try check((0...1000).contains(metricsRoomLabels), "metrics_room_labels", "must be between 0 and 1000")
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
            throw PluginError.badRequest(
                "webrtc-signaling: stun_urls / WEBRTC_STUN_URLS: '\(url)' must start with stun: or stuns:",
                code: "invalid_config")
        }
        for url in turnURLs where !(url.hasPrefix("turn:") || url.hasPrefix("turns:")) || url.count > 512 {
            throw PluginError.badRequest(
                "webrtc-signaling: turn_urls / WEBRTC_TURN_URLS: '\(url)' must start with turn: or turns:",
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
