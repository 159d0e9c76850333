// WebRTCSignaling: the ICE configuration browsers get, with short-lived TURN REST credentials.

import Foundation
import PluginAPI

/// One entry of `RTCConfiguration.iceServers`.
struct ICEServer: Encodable, Sendable {
    /// `stun:` / `turn:` URLs.
    let urls: [String]
    /// TURN user name (absent for STUN).
    let username: String?
    /// TURN password (absent for STUN).
    let credential: String?
}

/// The body of `GET /api/webrtc/config`.
struct ICEConfigAnswer: Encodable, Sendable {
    /// Servers in the shape `RTCPeerConnection` takes (`urls`, `username`, `credential`).
    let iceServers: [ICEServer]
    /// `all`: let the browser use host, STUN and TURN candidates.
    let iceTransportPolicy = "all"
    /// `rest` (minted credentials), `static`, `none` (no TURN configured) or `token_required` (TURN withheld).
    let turn: String
    /// When minted TURN credentials expire (absent otherwise).
    let turnExpiresAt: Date?
    /// Their lifetime in seconds (absent otherwise).
    let turnTTLSeconds: Int?

    enum CodingKeys: String, CodingKey {
        case iceServers = "ice_servers"
        case iceTransportPolicy = "ice_transport_policy"
        case turn
        case turnExpiresAt = "turn_expires_at"
        case turnTTLSeconds = "turn_ttl_seconds"
    }
}

/// Builds the ICE configuration from the plugin's settings.
struct ICEConfigBuilder: Sendable {
    let configuration: WebRTCSignalingConfiguration
    let crypto: any CryptoProvider

    /// TURN REST credentials as coturn's `use-auth-secret` checks them:
    /// user name `<expiry>:<room>` (or `<expiry>` without a room), password base64(HMAC-SHA1(secret, user name)).
    /// - Parameters:
    ///   - room: The room the credentials are for, if any.
    ///   - expiresAt: Unix time in seconds.
    func turnRESTCredentials(room: String?, expiresAt: Int64) -> (username: String, credential: String) {
        let username = room.map { "\(expiresAt):\($0)" } ?? "\(expiresAt)"
        let mac = crypto.hmacSHA1(key: Array(configuration.turnSecret.utf8), message: Array(username.utf8))
        return (username, Data(mac).base64EncodedString())
    }

    /// The answer for a caller.
    /// - Parameters:
    ///   - room: The validated `?room=`, if any.
    ///   - turnAllowed: False when TURN must be withheld (no valid token while `turn_requires_token`).
    ///   - now: Unix time in seconds.
    func answer(room: String?, turnAllowed: Bool, now: Int64) -> ICEConfigAnswer {
        var servers: [ICEServer] = []
        if !configuration.stunURLs.isEmpty {
            servers.append(ICEServer(urls: configuration.stunURLs, username: nil, credential: nil))
        }
        guard !configuration.turnURLs.isEmpty else {
            return ICEConfigAnswer(iceServers: servers, turn: "none", turnExpiresAt: nil, turnTTLSeconds: nil)
        }
        guard turnAllowed else {
            return ICEConfigAnswer(iceServers: servers, turn: "token_required", turnExpiresAt: nil, turnTTLSeconds: nil)
        }
        if !configuration.turnSecret.isEmpty {
            let ttl = configuration.turnCredentialTTLSeconds
            let expiresAt = now + Int64(ttl)
            let credentials = turnRESTCredentials(room: room, expiresAt: expiresAt)
            servers.append(ICEServer(urls: configuration.turnURLs, username: credentials.username, credential: credentials.credential))
            return ICEConfigAnswer(
                iceServers: servers, turn: "rest", turnExpiresAt: Date(timeIntervalSince1970: TimeInterval(expiresAt)),
                turnTTLSeconds: ttl)
        }
        servers.append(ICEServer(urls: configuration.turnURLs, username: configuration.turnUsername, credential: configuration.turnPassword))
        return ICEConfigAnswer(iceServers: servers, turn: "static", turnExpiresAt: nil, turnTTLSeconds: nil)
    }
}
