// Byte ranges (RFC 9110 section 14), conditional requests (section 13) and file responses built on them.

import Foundation

/// What a `Range` header asks of a file of a given size.
public enum RangeRequest: Equatable, Sendable {
    /// No usable range: send the whole file (no header, another unit, a syntax error, or several ranges).
    case whole
    /// One satisfiable range, first and last byte inclusive.
    case single(first: Int, last: Int)
    /// A well-formed range that lies past the end: 416.
    case unsatisfiable

    /// Interprets `header` for a file of `size` bytes (`size` > 0).
    ///
    /// Several ranges (`bytes=0-1,5-9`) are answered with the whole file and status 200, which
    /// RFC 9110 allows (a server may ignore `Range`); media players never send them.
    public static func parse(_ header: String?, size: Int) -> RangeRequest {
        guard let header, size > 0 else { return .whole }
        let trimmed = header.trimmingCharacters(in: .whitespaces)
        guard trimmed.lowercased().hasPrefix("bytes=") else { return .whole }
        let specs = trimmed.dropFirst(6).split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard specs.count == 1, let spec = specs.first else { return .whole }
        let halves = spec.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
        guard halves.count == 2 else { return .whole }
        let start = halves[0], end = halves[1]
        guard start.allSatisfy(\.isASCIINumber), end.allSatisfy(\.isASCIINumber), !(start.isEmpty && end.isEmpty) else { return .whole }
        if start.isEmpty {
            // Suffix: the last n bytes.
            guard let count = Int(end) else { return .single(first: 0, last: size - 1) }  // more digits than Int: all of it
            guard count > 0 else { return .unsatisfiable }
            return .single(first: max(0, size - count), last: size - 1)
        }
        guard let first = Int(start) else { return .unsatisfiable }  // a start past Int.max is past the end
        if end.isEmpty {
            return first < size ? .single(first: first, last: size - 1) : .unsatisfiable
        }
        let last = Int(end) ?? Int.max
        guard first <= last else { return .whole }  // an invalid range-spec: the header is ignored
        guard first < size else { return .unsatisfiable }
        return .single(first: first, last: min(last, size - 1))
    }
}

/// ETag and date comparisons of conditional requests.
public enum Conditional {
    /// `If-None-Match` (weak comparison): true when any listed tag, or `*`, matches `etag`.
    public static func noneMatchHits(_ header: String, etag: String) -> Bool {
        let wanted = opaque(etag)
        for item in header.split(separator: ",") {
            let tag = item.trimmingCharacters(in: .whitespaces)
            if tag == "*" || opaque(tag) == wanted { return true }
        }
        return false
    }

    /// `If-Range`: the range applies only when the validator still matches (strong comparison for
    /// an ETag, exact equality for a date).
    public static func ifRangeHolds(_ header: String, etag: String, lastModified: String) -> Bool {
        let value = header.trimmingCharacters(in: .whitespaces)
        if value.hasPrefix("\"") || value.hasPrefix("W/") { return value == etag }
        return value == lastModified
    }

    /// The tag without its weakness prefix.
    private static func opaque(_ tag: String) -> String { tag.hasPrefix("W/") ? String(tag.dropFirst(2)) : tag }
}

extension Character {
    /// True for `0`...`9` only (not other Unicode digits).
    var isASCIINumber: Bool { isASCII && isNumber }
}

/// Answers GET and HEAD for a file, the same way wherever a plugin serves one.
///
/// Validators `ETag` and `Last-Modified`; `If-None-Match` (weak comparison, wins over `If-Modified-Since`) and
/// `If-Modified-Since` give 304; one `Range` (`bytes=a-b`, `a-`, `-n`) gives 206 with `Content-Range`, a range past
/// the end 416, and several ranges or a stale `If-Range` the whole file; the body streams in chunks read with
/// `pread` on the blocking pool, so a file replaced or unlinked meanwhile is still served whole from the open descriptor.
public enum FileResponse {
    /// Bytes read per write to the client.
    public static let chunkSize = 64 << 10

    /// The response for `request`.
    /// - Parameters:
    ///   - request: A GET or HEAD.
    ///   - file: The open file (open it before deciding, so an eviction cannot race the answer).
    ///   - size: Its size in bytes.
    ///   - etag: A quoted entity tag, e.g. `"\"<sha256>\""`.
    ///   - lastModified: The modification time, when it is meaningful.
    ///   - headers: Headers every answer carries (`content-type`, `cache-control`, ...).
    ///   - onSent: Told the size of every chunk written (metrics).
    public static func serve(
        _ request: PluginRequest, file: FileDescriptor, size: Int, etag: String, lastModified: Date? = nil,
        headers base: HTTPHeaders, onSent: (@Sendable (Int) -> Void)? = nil
    ) throws -> PluginResponse {
        var headers = base
        headers.set("etag", etag)
        headers.set("accept-ranges", "bytes")
        let modified = lastModified.map(HTTPDate.format)
        if let modified { headers.set("last-modified", modified) }

        let notModified: Bool
        if let noneMatch = request.headers["if-none-match"] {
            notModified = Conditional.noneMatchHits(noneMatch, etag: etag)
        } else if let lastModified, let since = request.headers["if-modified-since"].flatMap(HTTPDate.parse) {
            notModified = lastModified.timeIntervalSince1970.rounded(.down) <= since.timeIntervalSince1970
        } else {
            notModified = false
        }
        if notModified { return PluginResponse(status: 304, headers: headers, body: .empty) }

        var range = RangeRequest.parse(request.headers["range"], size: size)
        if let ifRange = request.headers["if-range"], !Conditional.ifRangeHolds(ifRange, etag: etag, lastModified: modified ?? "") {
            range = .whole
        }
        let status: Int
        let first: Int
        let count: Int
        switch range {
        case .whole:
            (status, first, count) = (200, 0, size)
        case .single(let start, let last):
            (status, first, count) = (206, start, last - start + 1)
            headers.set("content-range", "bytes \(start)-\(last)/\(size)")
        case .unsatisfiable:
            var error = PluginError(status: 416, code: "range_not_satisfiable", message: "the range is past the end of the file (\(size) bytes)")
            error.headers = ["content-range": "bytes */\(size)", "accept-ranges": "bytes"]
            throw error
        }
        if request.method == .head {
            headers.set("content-length", "\(count)")
            return PluginResponse(status: status, headers: headers, body: .empty)
        }
        return PluginResponse(
            status: status, headers: headers,
            body: .stream(length: count) { writer in
                var offset = first
                var remaining = count
                while remaining > 0 {
                    let want = min(chunkSize, remaining)
                    let at = offset
                    let bytes = try await BlockingIO.run { try file.read(count: want, at: at) }
                    guard !bytes.isEmpty else { throw FileIOError(operation: "read (the file is shorter than its size)", path: file.path, code: EIO) }
                    try await writer.write(bytes)
                    offset += bytes.count
                    remaining -= bytes.count
                    onSent?(bytes.count)
                }
            })
    }
}
