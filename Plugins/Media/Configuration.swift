// Media: the plugin's section of overlay.yaml.

import Foundation
import PluginAPI

/// `plugins[name=media].config`: upload limits, the library quota and how files are served.
struct MediaConfiguration: DefaultedConfiguration {
    // Sizes: bytes, or with a unit (25MiB, 500MB, 1GiB): the config decoder reads `*_bytes` keys that way.
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

    /// The defaults (an empty `config:` section).
    init() {}

    /// Ranges, checked after decoding.
    func validate() throws {
        for (key, value) in [
            ("max_image_bytes", maxImageBytes), ("max_video_bytes", maxVideoBytes), ("max_audio_bytes", maxAudioBytes),
            ("quota_bytes", quotaBytes), ("max_form_bytes", maxFormBytes),
        ] where value <= 0 {
            throw ConfigProblem(key, "must be larger than 0")
        }
        guard (1...1024).contains(maxNameLength) else { throw ConfigProblem("max_name_length", "must be between 1 and 1024") }
        guard cacheMaxAgeSeconds >= 0 else { throw ConfigProblem("cache_max_age_seconds", "must not be negative") }
        if !accelRedirectPrefix.isEmpty {
            let prefix = accelRedirectPrefix
            let allowed = prefix.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "/-_.".contains($0)) }
            guard prefix.hasPrefix("/"), prefix.hasSuffix("/"), allowed, !prefix.contains("..") else {
                throw ConfigProblem(
                    "accel_redirect_prefix",
                    "must be a path that starts and ends with '/' (letters, digits, '-', '_', '.'), e.g. /_onionrp_media/")
            }
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
