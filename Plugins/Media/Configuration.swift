// Media: the plugin's section of overlay.yaml.

import Foundation

/// A size in bytes as written in `overlay.yaml`: a whole number of bytes (`26214400`, `26_214_400`)
/// or a number with a unit (`25MiB`, `500 MB`, `1GiB`; KB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB of 1024).
struct ByteSize: Decodable, Sendable, Equatable {
    /// The size in bytes.
    let bytes: Int

    /// Creates a size from a byte count.
    init(_ bytes: Int) { self.bytes = bytes }

    /// Decodes a scalar such as `1048576` or `25MiB`.
    init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let bytes = ByteSize.parse(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                debugDescription: "expected a size such as 26214400, 25MiB or 1GB, found '\(text)'"))
        }
        self.bytes = bytes
    }

    /// Parses `123`, `1_000`, `25MiB`, `1.5 GB`; nil for anything else or a value past `Int.max`.
    static func parse(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "_", with: "")
        let number = trimmed.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
        let unit = trimmed.dropFirst(number.count).trimmingCharacters(in: .whitespaces).lowercased()
        let multipliers: [String: Double] = [
            "": 1, "b": 1,
            "k": 1024, "kb": 1e3, "kib": 1024,
            "m": 1_048_576, "mb": 1e6, "mib": 1_048_576,
            "g": 1_073_741_824, "gb": 1e9, "gib": 1_073_741_824,
            "t": 1_099_511_627_776, "tb": 1e12, "tib": 1_099_511_627_776,
        ]
        guard !number.isEmpty, let multiplier = multipliers[unit] else { return nil }
        if unit.isEmpty || unit == "b" {
            return Int(number)
        }
        guard let value = Double(number), value.isFinite else { return nil }
        let bytes = (value * multiplier).rounded()
        guard bytes >= 0, bytes < 9.2e18 else { return nil }
        return Int(bytes)
    }
}

/// `plugins[name=media].config`: upload limits, the library quota and how files are served.
struct MediaConfiguration: Decodable, Sendable {
    /// Largest image upload (PNG, JPEG, GIF, WebP).
    var maxImageBytes = 25 << 20
    /// Largest video upload (MP4, WebM).
    var maxVideoBytes = 1 << 30
    /// Largest audio upload (MP3, Ogg, WAV, M4A).
    var maxAudioBytes = 100 << 20
    /// Total size of every stored file together; an upload that would pass it answers 413.
    var quotaBytes = 10 << 30
    /// Longest kept original file name, in characters (longer names are shortened, keeping the extension).
    var maxNameLength = 120
    /// Most bytes of a multipart body that are not the file's content (boundaries, part headers, other fields).
    var maxFormBytes = 64 << 10
    /// `max-age` of `GET /media/{id}` responses; the content of an id never changes.
    var cacheMaxAgeSeconds = 31_536_000
    /// When set (e.g. `/_onionrp_media/`), `GET /media/{id}` answers an authorized request with
    /// `X-Accel-Redirect: <prefix><stored file name>` and no body, and a reverse proxy (nginx) that
    /// maps the prefix to `<uploads_dir>/media/` sends the bytes itself. Empty (default): the engine sends them.
    var accelRedirectPrefix = ""

    /// The YAML key names.
    enum CodingKeys: String, CodingKey {
        case maxImageBytes = "max_image_bytes"
        case maxVideoBytes = "max_video_bytes"
        case maxAudioBytes = "max_audio_bytes"
        case quotaBytes = "quota_bytes"
        case maxNameLength = "max_name_length"
        case maxFormBytes = "max_form_bytes"
        case cacheMaxAgeSeconds = "cache_max_age_seconds"
        case accelRedirectPrefix = "accel_redirect_prefix"
    }

    /// The defaults (an empty `config:` section).
    init() {}

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func size(_ key: CodingKeys, _ fallback: Int) throws -> Int {
            guard let value = try c.decodeIfPresent(ByteSize.self, forKey: key) else { return fallback }
            guard value.bytes > 0 else {
                throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "must be larger than 0")
            }
            return value.bytes
        }
        maxImageBytes = try size(.maxImageBytes, maxImageBytes)
        maxVideoBytes = try size(.maxVideoBytes, maxVideoBytes)
        maxAudioBytes = try size(.maxAudioBytes, maxAudioBytes)
        quotaBytes = try size(.quotaBytes, quotaBytes)
        maxFormBytes = try size(.maxFormBytes, maxFormBytes)
        if let length = try c.decodeIfPresent(Int.self, forKey: .maxNameLength) {
            guard (1...1024).contains(length) else {
                throw DecodingError.dataCorruptedError(forKey: .maxNameLength, in: c, debugDescription: "must be between 1 and 1024")
            }
            maxNameLength = length
        }
        if let seconds = try c.decodeIfPresent(Int.self, forKey: .cacheMaxAgeSeconds) {
            guard seconds >= 0 else {
                throw DecodingError.dataCorruptedError(forKey: .cacheMaxAgeSeconds, in: c, debugDescription: "must not be negative")
            }
            cacheMaxAgeSeconds = seconds
        }
        if let prefix = try c.decodeIfPresent(String.self, forKey: .accelRedirectPrefix), !prefix.isEmpty {
            let allowed = prefix.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "/-_.".contains($0)) }
            guard prefix.hasPrefix("/"), prefix.hasSuffix("/"), allowed, !prefix.contains("..") else {
                throw DecodingError.dataCorruptedError(forKey: .accelRedirectPrefix, in: c,
                    debugDescription: "must be a path that starts and ends with '/' (letters, digits, '-', '_', '.'), e.g. /_onionrp_media/")
            }
            accelRedirectPrefix = prefix
        }
    }

    /// The size limit of one kind of file.
    func limit(for kind: MediaKind) -> Int {
        switch kind {
        case .image: return maxImageBytes
        case .video: return maxVideoBytes
        case .audio: return maxAudioBytes
        }
    }

    /// The configuration key that sets the limit of `kind`, for error messages.
    static func limitKey(for kind: MediaKind) -> String { "max_\(kind.rawValue)_bytes" }

    /// The largest file of any kind.
    var largestFile: Int { max(maxImageBytes, maxVideoBytes, maxAudioBytes) }
}
