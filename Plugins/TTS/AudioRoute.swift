// TTS: `GET /api/tts/audio/<sha256>.wav`, streamed from the cache with ETag, conditional and range requests.

import Foundation
import PluginAPI

/// Serves rendered files. The name is the SHA-256 of everything that produced the audio, so a name
/// always means the same bytes: the ETag is the hash and clients may cache it for long.
enum AudioRoute {
    /// Bytes read from disk per write to the client.
    static let chunkSize = 64 << 10

    /// Answers a GET or HEAD for `{file}`.
    static func serve(_ request: PluginRequest, cache: AudioCache) async throws -> PluginResponse {
        let file = try request.parameter("file")
        let hash = String(file.dropLast(4))
        guard file.hasSuffix(".wav"), AudioCache.isHash(hash) else {
            throw PluginError.notFound("no audio called '\(file.prefix(80))'")
        }
        let url = cache.url(hash)
        // Opened before answering: a later eviction unlinks the name, not the open file.
        guard let handle = try? FileHandle(forReadingFrom: url), let end = try? handle.seekToEnd() else {
            throw PluginError.notFound("no audio called '\(file)' (it may have been evicted from the cache)")
        }
        let size = Int(end)
        let etag = "\"\(hash)\""
        var headers: HTTPHeaders = [
            "content-type": "audio/wav",
            "etag": etag,
            "cache-control": "private, max-age=86400, immutable",
            "accept-ranges": "bytes",
        ]
        if let match = request.headers["if-none-match"],
           match.split(separator: ",").contains(where: { let t = $0.trimmingCharacters(in: .whitespaces); return t == etag || t == "*" || t == "W/" + etag }) {
            try? handle.close()
            return PluginResponse(status: 304, headers: headers)
        }

        var status = 200
        var range = 0..<size
        if let header = request.headers["range"], ifRangeAllows(request.headers["if-range"], etag: etag) {
            switch parseRange(header, size: size) {
            case .whole:
                break
            case .part(let part):
                status = 206
                range = part
                headers.set("content-range", "bytes \(part.lowerBound)-\(part.upperBound - 1)/\(size)")
            case .unsatisfiable:
                try? handle.close()
                headers.set("content-range", "bytes */\(size)")
                var error = PluginError(status: 416, code: "range_not_satisfiable", message: "the range is outside the \(size) bytes of the file")
                error.headers = headers
                throw error
            }
        }

        if request.method == .head {
            try? handle.close()
            return PluginResponse(status: status, headers: headers, body: .stream(length: range.count) { _ in })
        }
        let box = HandleBox(handle)
        let part = range
        return PluginResponse(status: status, headers: headers, body: .stream(length: part.count) { writer in
            defer { box.close() }
            try box.handle.seek(toOffset: UInt64(part.lowerBound))
            var remaining = part.count
            while remaining > 0 {
                guard let data = try box.handle.read(upToCount: min(chunkSize, remaining)), !data.isEmpty else {
                    throw RenderFailure(message: "the file ended early")
                }
                remaining -= data.count
                try await writer.write(Array(data))
            }
        })
    }

    /// A `Range` header's meaning for a file of `size` bytes.
    enum RangeAnswer: Equatable {
        /// Ignore it and send everything (unsupported forms, several ranges).
        case whole
        /// Send this part with 206.
        case part(Range<Int>)
        /// 416.
        case unsatisfiable
    }

    /// Parses one `bytes=a-b`, `bytes=a-` or `bytes=-n` range; anything else means the whole file.
    static func parseRange(_ header: String, size: Int) -> RangeAnswer {
        let text = header.trimmingCharacters(in: .whitespaces)
        guard text.lowercased().hasPrefix("bytes=") else { return .whole }
        let spec = text.dropFirst(6).trimmingCharacters(in: .whitespaces)
        guard !spec.contains(",") else { return .whole }
        let pieces = spec.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard pieces.count == 2 else { return .whole }
        let first = pieces[0].trimmingCharacters(in: .whitespaces)
        let last = pieces[1].trimmingCharacters(in: .whitespaces)
        if first.isEmpty {
            guard let count = Int(last), count >= 0 else { return .whole }
            guard count > 0, size > 0 else { return .unsatisfiable }
            return .part(max(0, size - count)..<size)
        }
        guard let start = Int(first), start >= 0 else { return .whole }
        guard start < size else { return .unsatisfiable }
        if last.isEmpty { return .part(start..<size) }
        guard let stop = Int(last), stop >= start else { return .whole }
        return .part(start..<min(size, stop + 1))
    }

    /// `If-Range` with another validator means the client's copy is stale: send everything.
    private static func ifRangeAllows(_ header: String?, etag: String) -> Bool {
        guard let header else { return true }
        return header.trimmingCharacters(in: .whitespaces) == etag
    }
}

/// A file handle moved into a streamed body (FileHandle is used from one task at a time there).
final class HandleBox: @unchecked Sendable {
    let handle: FileHandle
    init(_ handle: FileHandle) { self.handle = handle }
    func close() { try? handle.close() }
}
