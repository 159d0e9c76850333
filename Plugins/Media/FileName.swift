// Media: the Content-Disposition of a multipart part, and the client's file name made safe to keep.

import Foundation

/// A parsed `Content-Disposition` header: `form-data; name="file"; filename="a.png"`.
struct ContentDisposition {
    /// The disposition type, lower-cased (`form-data`).
    let type: String
    /// Parameters by lower-cased name; quoted values unescaped.
    let parameters: [String: String]

    /// Parses the header value; malformed parameters are skipped.
    init(_ value: String) {
        var scalars = Substring(value)
        func skipSpaces() { scalars = scalars.drop { $0 == " " || $0 == "\t" } }
        let type = scalars.prefix { $0 != ";" }
        scalars = scalars.dropFirst(type.count)
        self.type = type.trimmingCharacters(in: .whitespaces).lowercased()
        var parameters: [String: String] = [:]
        while !scalars.isEmpty {
            scalars = scalars.dropFirst()  // ";"
            skipSpaces()
            let name = scalars.prefix { $0 != "=" && $0 != ";" }
            scalars = scalars.dropFirst(name.count)
            guard scalars.first == "=" else { continue }
            scalars = scalars.dropFirst()
            skipSpaces()
            var parsed = ""
            if scalars.first == "\"" {
                // A backslash escapes only `"` and `\` (curl); elsewhere it is literal, since some
                // browsers send Windows paths unescaped (`C:\Users\me\a.png`), as Go's mime parser assumes.
                scalars = scalars.dropFirst()
                while let character = scalars.first {
                    scalars = scalars.dropFirst()
                    if character == "\\", let next = scalars.first, next == "\"" || next == "\\" {
                        parsed.append(next)
                        scalars = scalars.dropFirst()
                    } else if character == "\"" {
                        break
                    } else {
                        parsed.append(character)
                    }
                }
                scalars = scalars.drop { $0 != ";" }
            } else {
                let token = scalars.prefix { $0 != ";" }
                scalars = scalars.dropFirst(token.count)
                parsed = token.trimmingCharacters(in: .whitespaces)
            }
            let key = name.trimmingCharacters(in: .whitespaces).lowercased()
            if !key.isEmpty, parameters[key] == nil { parameters[key] = parsed }
        }
        self.parameters = parameters
    }

    /// The file name: `filename*` (RFC 8187, `UTF-8''%e2%82%ac.png`) when given and valid, else `filename`.
    var fileName: String? {
        if let extended = parameters["filename*"], let decoded = Self.decodeExtended(extended) { return decoded }
        return parameters["filename"]
    }

    /// Decodes `charset'language'percent-encoded`; only UTF-8 (and its ASCII subset) is accepted.
    static func decodeExtended(_ value: String) -> String? {
        let parts = value.split(separator: "'", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3 else { return nil }
        let charset = parts[0].lowercased()
        guard charset == "utf-8" || charset == "us-ascii" else { return nil }
        return String(parts[2]).removingPercentEncoding
    }
}

/// Makes a client's file name safe to keep as display metadata. It is never used as a path.
enum OriginalName {
    /// Cleans `raw`:
    /// - control, format (e.g. right-to-left override) and line/paragraph separator characters are removed;
    /// - only the last segment after `/` or `\` is kept (`../../x.png` and `C:\a\x.png` become `x.png`);
    /// - runs of whitespace become one space; leading dots and surrounding spaces are trimmed;
    /// - a name longer than `maxLength` characters is shortened, keeping a short extension.
    /// - Returns: The clean name, or nil when nothing is left.
    static func sanitize(_ raw: String?, maxLength: Int) -> String? {
        guard let raw else { return nil }
        let kept = raw.unicodeScalars.filter { scalar in
            switch scalar.properties.generalCategory {
            case .control, .format, .lineSeparator, .paragraphSeparator, .surrogate, .privateUse, .unassigned: return false
            default: return true
            }
        }
        let cleaned = String(String.UnicodeScalarView(kept))
        let lastSegment = cleaned.split(whereSeparator: { $0 == "/" || $0 == "\\" }).last.map(String.init) ?? ""
        let words = lastSegment.split(whereSeparator: { $0.isWhitespace })
        var name = words.joined(separator: " ")
        name = String(name.drop { $0 == "." || $0 == " " })
        guard !name.isEmpty else { return nil }
        guard name.count > maxLength else { return name }
        if let dot = name.lastIndex(of: "."), name.distance(from: dot, to: name.endIndex) <= 10,
            maxLength > name.distance(from: dot, to: name.endIndex)
        {
            let suffix = name[dot...]
            let stem = name[..<dot].prefix(maxLength - suffix.count)
            return String(stem).trimmingCharacters(in: .whitespaces) + suffix
        }
        return String(name.prefix(maxLength)).trimmingCharacters(in: .whitespaces)
    }
}
