// Media: byte ranges (RFC 9110 section 14) and conditional requests (section 13) for GET /media/{id}.

import Foundation

/// What a `Range` header asks of a file of a given size.
enum RangeRequest: Equatable {
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
    static func parse(_ header: String?, size: Int) -> RangeRequest {
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
enum Conditional {
    /// `If-None-Match` (weak comparison): true when any listed tag, or `*`, matches `etag`.
    static func noneMatchHits(_ header: String, etag: String) -> Bool {
        let wanted = opaque(etag)
        for item in header.split(separator: ",") {
            let tag = item.trimmingCharacters(in: .whitespaces)
            if tag == "*" || opaque(tag) == wanted { return true }
        }
        return false
    }

    /// `If-Range`: the range applies only when the validator still matches (strong comparison for
    /// an ETag, exact equality for a date).
    static func ifRangeHolds(_ header: String, etag: String, lastModified: String) -> Bool {
        let value = header.trimmingCharacters(in: .whitespaces)
        if value.hasPrefix("\"") || value.hasPrefix("W/") { return value == etag }
        return value == lastModified
    }

    /// The tag without its weakness prefix.
    private static func opaque(_ tag: String) -> String { tag.hasPrefix("W/") ? String(tag.dropFirst(2)) : tag }
}

/// ASCII digit test for range parsing.
extension Character {
    /// True for `0`...`9` only (not other Unicode digits).
    var isASCIINumber: Bool { isASCII && isNumber }
}
