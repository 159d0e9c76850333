// Security: who a request is (streamer token, moderator session, overlay token), origin checks, client address.

import Foundation
@_spi(Engine) import PluginAPI

/// Decides the ``Caller`` of a request and whether it may use an access level.
public struct AccessPolicy: Sendable {
    let streamerToken: [UInt8]
    let overlayToken: [UInt8]
    let strictOrigin: Bool
    let allowedOrigins: Set<String>
    let trustedProxies: Set<String>
    /// Origins of the engine itself, always allowed: the configured public URL's (`scheme://host[:port]`)
    /// and the loopback addresses on the listening port (`http://127.0.0.1:8080`, `http://localhost:8080`).
    let ownOrigins: Set<String>
    let crypto: any CryptoProvider
    let sessions: any ModeratorSessions

    /// Creates the policy.
    public init(
        security: SecurityConfig, streamerToken: String, publicURL: String = "", port: Int = 0, crypto: any CryptoProvider,
        sessions: any ModeratorSessions
    ) {
        var own: Set<String> = []
        if let url = URLComponents(string: publicURL), let scheme = url.scheme, let host = url.host {
            own.insert("\(scheme)://\(host)\(url.port.map { ":\($0)" } ?? "")".lowercased())
        }
        if port > 0 {
            for host in ["127.0.0.1", "localhost", "[::1]"] { own.insert("http://\(host):\(port)") }
        }
        self.ownOrigins = own
        self.streamerToken = Array(streamerToken.utf8)
        self.overlayToken = Array(security.overlayToken.utf8)
        self.strictOrigin = security.strictOrigin
        self.allowedOrigins = Set(security.allowedOrigins.map { $0.lowercased() })
        self.trustedProxies = Set(security.trustedProxies)
        self.crypto = crypto
        self.sessions = sessions
    }

    /// True when `presented` equals the streamer token (constant time).
    public func isStreamerToken(_ presented: String?) -> Bool {
        guard let presented, !streamerToken.isEmpty else { return false }
        return crypto.constantTimeEquals(Array(presented.utf8), streamerToken)
    }

    /// Establishes the caller for a route of `access`, or throws 401/403.
    ///
    /// Credentials: `x-streamer-token`; a moderator session in `x-moderator-session`,
    /// `Authorization: Bearer`, or `?session=` on WebSocket upgrades only (browsers cannot set headers there;
    /// elsewhere a secret in the URL would end up in proxy logs); the overlay token in `x-overlay-token`,
    /// `?overlay_token=` or `?token=`.
    /// Every header ``authorize(access:headers:query:upgrade:)`` reads (a route that converts only these, such as the
    /// direct `GET /api/scene`, judges the caller exactly as the plugin bridge does).
    static let credentialHeaders = ["x-streamer-token", "x-moderator-session", "authorization", "x-overlay-token"]

    public func authorize(
        access: AccessLevel, headers: HTTPHeaders, query: [(name: String, value: String)],
        upgrade: Bool = false
    ) async throws -> Caller {
        let query = upgrade ? query : query.filter { $0.name != "session" }
        if access == .public { return .anonymous }
        if let token = headers["x-streamer-token"] {
            if isStreamerToken(token) { return .streamer }
            throw PluginError.unauthorized("the streamer token is wrong")
        }
        if access == .streamer {
            if sessionSecret(headers: headers, query: query) != nil {
                throw PluginError.forbidden("this action needs the streamer token (x-streamer-token); a moderator session is not enough")
            }
            throw PluginError.unauthorized("the streamer token (x-streamer-token header) is required")
        }
        if let secret = sessionSecret(headers: headers, query: query) {
            guard let info = try await sessions.validate(secret: secret) else {
                throw PluginError(status: 401, code: "session_invalid", message: "the moderator session is unknown, expired or revoked; log in again")
            }
            return .moderator(info)
        }
        if access == .moderator {
            throw PluginError.unauthorized("a moderator session (x-moderator-session header) or the streamer token is required")
        }
        // access == .overlay
        if overlayToken.isEmpty { return .overlay }
        let presented =
            headers["x-overlay-token"] ?? query.first(where: { $0.name == "overlay_token" })?.value
            ?? query.first(where: { $0.name == "token" })?.value
        if let presented, crypto.constantTimeEquals(Array(presented.utf8), overlayToken) { return .overlay }
        throw PluginError.unauthorized("the overlay token is missing or wrong (?token= or x-overlay-token)")
    }

    func sessionSecret(headers: HTTPHeaders, query: [(name: String, value: String)]) -> String? {
        if let value = headers["x-moderator-session"], !value.isEmpty { return value }
        if let auth = headers["authorization"], auth.lowercased().hasPrefix("bearer ") {
            return String(auth.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        }
        if let value = query.first(where: { $0.name == "session" })?.value, !value.isEmpty { return value }
        return nil
    }

    /// Refuses a request from another origin when strict origin checking is on.
    ///
    /// Same-origin means the configured `public_url` (and the loopback addresses on the listening port),
    /// never the `Host` header: a DNS-rebinding page sends its own name as both `Host` and `Origin`.
    /// - Parameters:
    ///   - method: The request method (safe methods pass unless `upgrade`).
    ///   - origin: The `Origin` header.
    ///   - upgrade: True for WebSocket upgrades (always checked).
    public func checkOrigin(method: HTTPMethod, origin: String?, upgrade: Bool) throws {
        guard strictOrigin else { return }
        if !upgrade, method == .get || method == .head || method == .options { return }
        guard let origin else {
            // Non-browser clients send no Origin; they are not the cross-site threat this check is for.
            return
        }
        let lower = origin.lowercased()
        if ownOrigins.contains(lower) || allowedOrigins.contains(lower) { return }
        throw PluginError(
            status: 403, code: "origin_forbidden",
            message: "origin '\(origin.prefix(200))' is neither the public URL (server.public_url) nor in ALLOWED_ORIGINS")
    }

    /// The client's address: the left-most `X-Forwarded-For` entry when the peer is a trusted proxy.
    public func clientAddress(peer: String?, forwardedFor: String?) -> String? {
        guard let peer else { return nil }
        guard trustedProxies.contains(peer), let forwardedFor else { return peer }
        let hops = forwardedFor.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        // Walk from the right, skipping our own trusted proxies; the first other hop is the client.
        for hop in hops.reversed() where !trustedProxies.contains(hop) { return hop }
        return hops.first ?? peer
    }
}
