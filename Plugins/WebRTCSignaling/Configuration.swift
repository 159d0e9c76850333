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

/// How media travels.
enum SignalingMode: String, Sendable, Decodable, CaseIterable {
    /// Peer to peer: the publisher sends one stream per viewer (the default).
    case p2p
    /// Through a Janus VideoRoom: the publisher sends one stream, Janus forwards it to every viewer.
    case sfu
}

/// A publisher quality preset: capture size and rate, and the encoder's bitrate.
struct PublisherPreset: Sendable, Decodable, Equatable, Encodable {
    var width: Int
    var height: Int
    var fps: Int
    var bitrateKbps: Int

    enum CodingKeys: String, CodingKey {
        case width, height, fps
        case bitrateKbps = "bitrate_kbps"
    }

    /// The presets when the section names none.
    static let builtIn: [String: PublisherPreset] = [
        "1080p": PublisherPreset(width: 1920, height: 1080, fps: 30, bitrateKbps: 4500),
        "720p": PublisherPreset(width: 1280, height: 720, fps: 30, bitrateKbps: 2500),
        "480p": PublisherPreset(width: 854, height: 480, fps: 30, bitrateKbps: 1200),
        "360p": PublisherPreset(width: 640, height: 360, fps: 30, bitrateKbps: 700),
        "low": PublisherPreset(width: 640, height: 360, fps: 15, bitrateKbps: 300),
    ]

    /// What is wrong with the preset, or nil.
    var problem: String? {
        if !(16...3840).contains(width) { return "width must be between 16 and 3840" }
        if !(16...2160).contains(height) { return "height must be between 16 and 2160" }
        if !(1...60).contains(fps) { return "fps must be between 1 and 60" }
        if !(50...50_000).contains(bitrateKbps) { return "bitrate_kbps must be between 50 and 50000" }
        return nil
    }
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
    /// Several engines: the peers of an engine not heard from for this long leave its rooms (it refreshes every third of it).
    var presenceExpirySeconds = 6

    // Media path
    /// `p2p` (default) or `sfu` (through Janus). `WEBRTC_MODE` overrides.
    var mode = SignalingMode.p2p
    /// The Janus HTTP API, e.g. `http://127.0.0.1:8088/janus` (required in `sfu` mode). `WEBRTC_JANUS_URL` overrides.
    var janusURL = ""
    /// The Janus admin API (`http://127.0.0.1:7088/admin`), for the stats Janus reports; empty: none.
    /// `WEBRTC_JANUS_ADMIN_URL` overrides.
    var janusAdminURL = ""
    /// Janus's `api_secret` (sent with every request). `WEBRTC_JANUS_API_SECRET` overrides.
    var janusAPISecret = ""
    /// Janus's `admin_secret` (admin API). `WEBRTC_JANUS_ADMIN_SECRET` overrides.
    var janusAdminSecret = ""
    /// The VideoRoom plugin's `admin_key` (needed to create rooms when set there). `WEBRTC_JANUS_ROOM_ADMIN_KEY` overrides.
    var janusRoomAdminKey = ""
    /// Our room name -> Janus VideoRoom id; rooms not listed get an id derived from their name.
    var janusRooms: [String: Int64] = [:]
    /// How long one Janus request may take.
    var janusTimeoutSeconds = 10
    /// Publisher quality presets by name; empty: the built-in ones (1080p, 720p, 480p, 360p, low).
    var presets: [String: PublisherPreset] = [:]
    /// The preset a publisher page starts with.
    var defaultPreset = "720p"
    /// `sfu` mode: the publisher sends three simulcast layers (full, 1/2, 1/4 size) when its browser can; viewers
    /// get the layer that fits their maximum bitrate.
    var simulcast = true
    /// Highest bitrate a viewer receives unless it asks for less (0: no limit).
    var viewerMaxBitrateKbps = 0

    // Metrics
    /// Samples of `publisher.metrics` / `viewer.metrics` kept per peer for the stats history.
    var metricsHistory = 30
    /// Most rooms that get their own `room` label on /metrics (later rooms are counted only in totals).
    var metricsRoomLabels = 16

    /// The defaults (no `config:` section).
    init() {}

    /// The presets in force: the configured ones, else the built-in ones.
    var effectivePresets: [String: PublisherPreset] { presets.isEmpty ? PublisherPreset.builtIn : presets }

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
        try check((3...600).contains(presenceExpirySeconds), "presence_expiry_seconds", "must be between 3 and 600")
        try check((1...1000).contains(metricsHistory), "metrics_history", "must be between 1 and 1000")
        try check((0...1000).contains(metricsRoomLabels), "metrics_room_labels", "must be between 0 and 1000")
        try check((1...120).contains(janusTimeoutSeconds), "janus_timeout_seconds", "must be between 1 and 120")
        try check((0...50_000).contains(viewerMaxBitrateKbps), "viewer_max_bitrate_kbps", "must be between 0 (no limit) and 50000")
        try check(presets.count <= 32, "presets", "at most 32 presets")
        for (name, preset) in presets {
            try check(Self.isToken(name), "presets", "'\(name.prefix(40))' is not a preset name (1-32 of A-Z a-z 0-9 _ -)")
            if let problem = preset.problem { throw ConfigProblem("presets.\(name)", problem) }
        }
        try check(
            effectivePresets[defaultPreset] != nil, "default_preset",
            "'\(defaultPreset.prefix(40))' is not one of the presets (\(effectivePresets.keys.sorted().joined(separator: ", ")))")
        try check(janusRooms.count <= 10_000, "janus_rooms", "at most 10000 rooms")
        for (room, id) in janusRooms {
            try check(RoomName.isValid(room), "janus_rooms", "'\(room.prefix(70))' is not a room name (1-64 of A-Z a-z 0-9 _ -)")
            try check((1...Self.maxJanusID).contains(id), "janus_rooms.\(room)", "must be a whole number from 1 to 2^53")
        }
        let ids = Array(janusRooms.values)
        try check(Set(ids).count == ids.count, "janus_rooms", "two rooms map to the same Janus room id")
    }

    /// Largest Janus id (JavaScript's exact integers).
    static let maxJanusID: Int64 = 9_007_199_254_740_992

    /// A preset name: 1-32 of `A-Z a-z 0-9 _ -`.
    static func isToken(_ text: String) -> Bool {
        (1...32).contains(text.utf8.count)
            && text.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                    || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
            }
    }

    /// A Janus secret: 16-256 characters that need no escaping in a URL (the long poll sends `apisecret` there).
    static func isJanusSecret(_ text: String) -> Bool {
        (16...256).contains(text.utf8.count)
            && text.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                    || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "~")
            }
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
        if let value = environment["WEBRTC_MODE"], !value.isEmpty {
            guard let mode = SignalingMode(rawValue: value) else {
                throw PluginError.badRequest("webrtc-signaling: WEBRTC_MODE must be p2p or sfu, not '\(value.prefix(20))'", code: "invalid_config")
            }
            copy.mode = mode
        }
        if let value = environment["WEBRTC_JANUS_URL"] { copy.janusURL = value }
        if let value = environment["WEBRTC_JANUS_ADMIN_URL"] { copy.janusAdminURL = value }
        if let value = environment["WEBRTC_JANUS_API_SECRET"] { copy.janusAPISecret = value }
        if let value = environment["WEBRTC_JANUS_ADMIN_SECRET"] { copy.janusAdminSecret = value }
        if let value = environment["WEBRTC_JANUS_ROOM_ADMIN_KEY"] { copy.janusRoomAdminKey = value }
        try copy.validateICE()
        try copy.validateJanus()
        return copy
    }

    /// The `sfu` settings: a Janus URL that parses, secrets of a safe shape. In `p2p` mode they are not needed, but
    /// what is set must still be valid (a typo should not wait for the day `mode: sfu` is switched on).
    private func validateJanus() throws {
        func fail(_ message: String) throws -> Never {
            throw PluginError.badRequest("webrtc-signaling: \(message)", code: "invalid_config")
        }
        if mode == .sfu, janusURL.isEmpty { try fail("mode: sfu needs janus_url (WEBRTC_JANUS_URL), e.g. http://127.0.0.1:8088/janus") }
        if !janusURL.isEmpty, HTTPEndpoint.parse(janusURL) == nil {
            try fail(
                "janus_url / WEBRTC_JANUS_URL: '\(janusURL.prefix(80))' must be an http:// URL with a host (Janus on loopback or a private network)")
        }
        if !janusAdminURL.isEmpty, HTTPEndpoint.parse(janusAdminURL) == nil {
            try fail("janus_admin_url / WEBRTC_JANUS_ADMIN_URL: '\(janusAdminURL.prefix(80))' must be an http:// URL with a host")
        }
        for (key, env, value) in [
            ("janus_api_secret", "WEBRTC_JANUS_API_SECRET", janusAPISecret), ("janus_admin_secret", "WEBRTC_JANUS_ADMIN_SECRET", janusAdminSecret),
            ("janus_room_admin_key", "WEBRTC_JANUS_ROOM_ADMIN_KEY", janusRoomAdminKey),
        ] where !value.isEmpty && !Self.isJanusSecret(value) {
            try fail("\(key) / \(env) must be 16-256 characters of A-Z a-z 0-9 . _ ~ -")
        }
        if !janusAdminURL.isEmpty, janusAdminSecret.isEmpty {
            try fail("janus_admin_url is set but janus_admin_secret is empty: give Janus an admin_secret and set it here")
        }
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
