// WebRTCSignaling: room names, and the HMAC-signed tokens that admit a publisher or a viewer to one room.

import Foundation
import PluginAPI
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The two sides of a room.
enum PeerRole: String, Sendable, Codable, CaseIterable {
    /// The camera page: one per room.
    case publisher
    /// An overlay or preview showing the stream: many per room.
    case viewer
}

/// Room names: 1–64 characters of `[A-Za-z0-9_-]`.
enum RoomName {
    /// Longest room name.
    static let maxLength = 64

    /// True when `name` is a valid room name.
    static func isValid(_ name: String) -> Bool {
        guard (1...maxLength).contains(name.utf8.count) else { return false }
        return name.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
        }
    }

    /// `name` when valid.
    /// - Parameter field: The field or parameter name used in the error.
    /// - Throws: ``PluginError`` 400 `invalid_room`.
    static func validated(_ name: String?, field: String = "room") throws -> String {
        guard let name, !name.isEmpty else {
            throw PluginError(status: 400, code: "invalid_room", message: "\(field): required", details: ["field": .string(field)])
        }
        guard isValid(name) else {
            throw PluginError(
                status: 400, code: "invalid_room",
                message: "\(field): must be 1-\(maxLength) characters of letters, digits, '_' or '-'",
                details: ["field": .string(field)])
        }
        return name
    }
}

/// What a valid token grants.
struct RoomGrant: Sendable, Equatable {
    /// The room.
    let room: String
    /// The role in it.
    let role: PeerRole
    /// Unix time (seconds) after which the token is refused.
    let expiresAt: Int64
    /// The token's random id (for logs; never a secret).
    let id: String
}

/// Issues and verifies room tokens.
///
/// A token is `v1.<role>.<room>.<expiry>.<id>.<signature>`: the fields in clear (so a page can read its room and
/// expiry), `id` 12 random bytes, and `signature` the base64url HMAC-SHA256 of everything before it under the
/// plugin's secret. Verification checks the signature in constant time before reading any field.
struct RoomTokenSigner: Sendable {
    private let key: [UInt8]
    private let crypto: any CryptoProvider
    /// Longest token text accepted.
    static let maxLength = 256
    private static let domain = Array("onionrp-webrtc-room-token\n".utf8)

    /// Creates a signer.
    /// - Parameters:
    ///   - secret: The signing key (at least 32 bytes).
    ///   - crypto: The engine's crypto provider.
    init(secret: [UInt8], crypto: any CryptoProvider) {
        self.key = secret
        self.crypto = crypto
    }

    private func signature(_ payload: String) -> [UInt8] {
        crypto.hmacSHA256(key: key, message: Self.domain + Array(payload.utf8))
    }

    /// A new token.
    /// - Parameters:
    ///   - room: A valid room name.
    ///   - role: The role it admits.
    ///   - expiresAt: Unix time in seconds.
    /// - Returns: The token text and its grant.
    func issue(room: String, role: PeerRole, expiresAt: Int64) -> (token: String, grant: RoomGrant) {
        let id = Base64URL.encode(crypto.randomBytes(12))
        let payload = "v1.\(role.rawValue).\(room).\(expiresAt).\(id)"
        let token = payload + "." + Base64URL.encode(signature(payload))
        return (token, RoomGrant(room: room, role: role, expiresAt: expiresAt, id: id))
    }

    /// Reasons a token is refused.
    enum Failure: Error, Sendable, Equatable {
        /// Not a token of ours, or its signature does not match (401).
        case invalid
        /// Past its expiry (401).
        case expired
    }

    /// The grant of a genuine, unexpired token.
    /// - Parameters:
    ///   - token: The presented text.
    ///   - now: Unix time in seconds.
    /// - Throws: ``Failure``.
    func verify(_ token: String, now: Int64) throws(Failure) -> RoomGrant {
        guard token.utf8.count <= Self.maxLength, let dot = token.lastIndex(of: ".") else { throw .invalid }
        let payload = String(token[..<dot])
        guard let presented = Base64URL.decode(String(token[token.index(after: dot)...])),
            crypto.constantTimeEquals(presented, signature(payload))
        else { throw .invalid }
        // Genuine from here on: the fields were written by issue().
        let parts = payload.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 5, parts[0] == "v1", let role = PeerRole(rawValue: parts[1]), RoomName.isValid(parts[2]),
            let expiresAt = Int64(parts[3])
        else { throw .invalid }
        guard now < expiresAt else { throw .expired }
        return RoomGrant(room: parts[2], role: role, expiresAt: expiresAt, id: parts[4])
    }

    /// Loads the signing secret: the configured one, or the one kept in `folder/token-secret`, created (0600) on first use.
    /// - Parameters:
    ///   - configured: `token_secret` / `WEBRTC_TOKEN_SECRET` (empty: use the file).
    ///   - folder: The plugin's data folder.
    ///   - crypto: Source of the random secret.
    /// - Returns: The key bytes and where they came from.
    /// - Throws: ``PluginError`` when the file cannot be read or written, or holds a short secret.
    static func loadSecret(configured: String, folder: URL, crypto: any CryptoProvider) throws -> (key: [UInt8], source: String) {
        if !configured.isEmpty { return (Array(configured.utf8), "configuration") }
        let file = folder.appendingPathComponent("token-secret")
        let manager = FileManager.default
        if manager.fileExists(atPath: file.path) {
            guard let data = manager.contents(atPath: file.path),
                let text = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines),
                text.utf8.count >= 32
            else {
                throw PluginError(
                    status: 500, code: "invalid_secret",
                    message: "webrtc-signaling: \(file.path) is unreadable or holds fewer than 32 bytes; delete it to generate a new one")
            }
            return (Array(text.utf8), file.path)
        }
        let text = Base64URL.encode(crypto.randomBytes(32))
        guard writeNewPrivateFile(file.path, Array((text + "\n").utf8)) else {
            throw PluginError(status: 500, code: "invalid_secret", message: "webrtc-signaling: cannot create \(file.path)")
        }
        return (Array(text.utf8), file.path + " (generated)")
    }

    /// Creates `path` with mode 0600 from the first byte on (`O_EXCL`: never over an existing file) and syncs it.
    private static func writeNewPrivateFile(_ path: String, _ bytes: [UInt8]) -> Bool {
        do {
            let file = try FileDescriptor.create(path, mode: 0o600)
            try file.write(bytes)
            try file.sync()
            FileOps.syncDirectory((path as NSString).deletingLastPathComponent)
            return true
        } catch {
            return false
        }
    }
}
