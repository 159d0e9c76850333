// Scene: the encoded JSON of a scene, built once per (scene, version) and answered with an ETag, so a GET of an
// unchanged scene costs a lookup (or a 304), not an encoding.

import Foundation
import HTTPTypes
import NIOCore
@_spi(Engine) import PluginAPI
import Synchronization

/// The encoded body of each scene's newest version asked for, shared by every GET until the version changes.
///
/// A version number is given once (versions only grow, across all scenes), so `"v<version>"` names the bytes of
/// one scene version exactly: it is the ETag, and `If-None-Match` with it answers 304 without a body.
final class SceneResponseCache: Sendable {
    struct Entry: Sendable {
        let version: Int64
        let etag: String
        let body: [UInt8]
        /// The same bytes for Hummingbird (shared by every response, never copied).
        let buffer: ByteBuffer
        /// The header fields of a 200 and of a 304 (`GET /api/scene`), built once per version.
        let fields: HTTPFields
        let notModifiedFields: HTTPFields

        init(version: Int64, body: [UInt8]) {
            self.version = version
            self.etag = SceneResponseCache.etag(version: version)
            self.body = body
            self.buffer = ByteBuffer(bytes: body)
            var notModified = HTTPFields()
            notModified.reserveCapacity(5)
            notModified[.eTag] = etag
            notModified[.cacheControl] = "no-cache"
            notModified[.xContentTypeOptions] = "nosniff"
            self.notModifiedFields = notModified
            var fields = notModified
            fields[.contentType] = "application/json; charset=utf-8"
            self.fields = fields
        }
    }

    private let entries = Mutex<[String: Entry]>([:])

    static func etag(version: Int64) -> String { "\"v\(version)\"" }

    /// The encoded body and ETag of `scene`, encoded now only when this version was not asked for before.
    func entry(for scene: Scene) throws -> Entry {
        if let cached = entries.withLock({ $0[scene.name] }), cached.version == scene.version { return cached }
        let body = try JSON.encode(scene)
        let made = Entry(version: scene.version, body: body)
        entries.withLock { all in
            // A slower encoder of an older version never replaces a newer entry.
            if (all[scene.name]?.version ?? .min) < made.version { all[scene.name] = made }
        }
        return made
    }

    /// Forgets a deleted scene.
    func remove(_ name: String) { _ = entries.withLock { $0.removeValue(forKey: name) } }

    /// `GET` of a scene: 200 with the body and ETag, or 304 when `If-None-Match` names this version.
    func response(for scene: Scene, request: PluginRequest) throws -> PluginResponse {
        let entry = try entry(for: scene)
        if let condition = request.headers["if-none-match"], Self.matches(condition, etag: entry.etag) {
            return PluginResponse(status: 304, headers: ["etag": entry.etag, "cache-control": "no-cache"])
        }
        return PluginResponse(
            status: 200,
            headers: ["content-type": "application/json; charset=utf-8", "etag": entry.etag, "cache-control": "no-cache"],
            body: .bytes(entry.body))
    }

    /// RFC 9110 §13.1.2: `*`, or a list of entity tags compared weakly (a `W/` prefix is ignored).
    static func matches(_ condition: String, etag: String) -> Bool {
        for item in condition.split(separator: ",") {
            var tag = item.trimmingCharacters(in: .whitespaces)[...]
            if tag == "*" { return true }
            if tag.hasPrefix("W/") { tag = tag.dropFirst(2) }
            if tag == etag[...] { return true }
        }
        return false
    }
}
