// Media: what a file is, decided from its bytes only (never its name or the client's Content-Type).

/// The three kinds of media, each with its own size limit.
enum MediaKind: String, Codable, Sendable, CaseIterable {
    case image, video, audio
}

/// A format the library accepts: its MIME type, kind and the extension of the stored file.
struct MediaFormat: Sendable, Equatable {
    /// Short name for messages and docs, e.g. `PNG`.
    let name: String
    /// The `Content-Type` it is served with.
    let mime: String
    /// Which size limit applies.
    let kind: MediaKind
    /// Extension of the stored file (no dot).
    let fileExtension: String

    static let png = MediaFormat(name: "PNG", mime: "image/png", kind: .image, fileExtension: "png")
    static let jpeg = MediaFormat(name: "JPEG", mime: "image/jpeg", kind: .image, fileExtension: "jpg")
    static let gif = MediaFormat(name: "GIF", mime: "image/gif", kind: .image, fileExtension: "gif")
    static let webp = MediaFormat(name: "WebP", mime: "image/webp", kind: .image, fileExtension: "webp")
    static let mp4 = MediaFormat(name: "MP4", mime: "video/mp4", kind: .video, fileExtension: "mp4")
    static let m4a = MediaFormat(name: "M4A", mime: "audio/mp4", kind: .audio, fileExtension: "m4a")
    static let webm = MediaFormat(name: "WebM", mime: "video/webm", kind: .video, fileExtension: "webm")
    static let mp3 = MediaFormat(name: "MP3", mime: "audio/mpeg", kind: .audio, fileExtension: "mp3")
    static let oggAudio = MediaFormat(name: "Ogg", mime: "audio/ogg", kind: .audio, fileExtension: "ogg")
    static let oggVideo = MediaFormat(name: "Ogg", mime: "video/ogg", kind: .video, fileExtension: "ogv")
    static let wav = MediaFormat(name: "WAV", mime: "audio/wav", kind: .audio, fileExtension: "wav")

    /// Every accepted format.
    static let all: [MediaFormat] = [.png, .jpeg, .gif, .webp, .mp4, .m4a, .webm, .mp3, .oggAudio, .oggVideo, .wav]

    /// The format served with `mime`, for records read back from disk.
    static func forMIME(_ mime: String) -> MediaFormat? { all.first { $0.mime == mime } }

    /// One line listing what is accepted, for error messages.
    static let acceptedList = "PNG, JPEG, GIF, WebP, MP4, WebM, MP3, Ogg, WAV"
}

/// The outcome of sniffing the first bytes of a file.
enum Detection: Sendable, Equatable {
    /// An accepted format.
    case supported(MediaFormat)
    /// Anything else, with what it looks like (`text/html`, `application/x-msdownload`, `unknown`...).
    case unsupported(String)
}

/// Recognises formats by their signatures.
///
/// Accepted formats are tried first, then a list of common formats that are refused by name
/// (so the 415 message can say what the file really is).
enum MediaSniffer {
    /// How many leading bytes detection looks at (fewer when the file is shorter).
    static let headSize = 8192

    /// Decides the format of a file from its first bytes.
    /// - Parameters:
    ///   - head: The first `min(headSize, file size)` bytes.
    ///   - isWholeFile: True when `head` is the entire file.
    static func detect(_ head: [UInt8], isWholeFile: Bool) -> Detection {
        let b = ByteView(head)
        // Images.
        if b.starts(with: [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .supported(.png) }
        if b.starts(with: [0xFF, 0xD8, 0xFF]) { return .supported(.jpeg) }
        if b.starts(with: ascii("GIF87a")) || b.starts(with: ascii("GIF89a")) { return .supported(.gif) }
        if b.starts(with: ascii("RIFF")) && b.matches(ascii("WEBP"), at: 8) { return .supported(.webp) }
        // Audio in RIFF.
        if b.starts(with: ascii("RIFF")) && b.matches(ascii("WAVE"), at: 8) { return .supported(.wav) }
        // ISO base media (MP4, M4A; HEIF/AVIF/QuickTime are refused by name).
        if b.matches(ascii("ftyp"), at: 4) { return isoBaseMedia(b) }
        // EBML: WebM, or Matroska (refused).
        if b.starts(with: [0x1A, 0x45, 0xDF, 0xA3]) { return ebml(b) }
        // Ogg.
        if b.starts(with: ascii("OggS")) && b.byte(at: 4) == 0 { return ogg(b) }
        // MP3: an ID3v2 tag, or MPEG audio layer III frames.
        if b.starts(with: ascii("ID3")) { return id3(b) }
        if let frame = mpegAudioFrame(b, at: 0) { return mpegAudio(b, first: frame, isWholeFile: isWholeFile) }
        return .unsupported(otherType(b))
    }

    // MARK: accepted formats

    static func isoBaseMedia(_ b: ByteView) -> Detection {
        guard let boxSize = b.uint32BE(at: 0), boxSize >= 16 else { return .unsupported("unknown") }
        var brands: [String] = []
        if let major = b.text(at: 8, count: 4) { brands.append(major) }
        var offset = 16
        let end = min(Int(boxSize), b.count)
        while offset + 4 <= end, brands.count < 64 {
            if let brand = b.text(at: offset, count: 4) { brands.append(brand) }
            offset += 4
        }
        let major = brands.first ?? ""
        let audioBrands: Set<String> = ["M4A ", "M4B ", "M4P ", "F4A ", "F4B "]
        let imageBrands: [String: String] = [
            "avif": "image/avif", "avis": "image/avif", "heic": "image/heic", "heix": "image/heic",
            "hevc": "image/heic-sequence", "heim": "image/heic", "heis": "image/heic",
            "mif1": "image/heif", "msf1": "image/heif-sequence",
        ]
        let videoBrands: Set<String> = [
            "isom", "iso2", "iso3", "iso4", "iso5", "iso6", "iso7", "iso8", "iso9", "mp41", "mp42", "mp71",
            "avc1", "avc2", "avc3", "avc4", "hvc1", "hev1", "av01", "dash", "M4V ", "M4VH", "M4VP", "MSNV",
            "NDAS", "mmp4", "f4v ", "cmfc", "cmf2", "cmfs",
        ]
        if audioBrands.contains(major) { return .supported(.m4a) }
        if let image = imageBrands[major] { return .unsupported(image) }
        if major == "qt  " { return .unsupported("video/quicktime") }
        if major.hasPrefix("3g") { return .unsupported("video/3gpp") }
        if major == "crx " { return .unsupported("image/x-canon-cr3") }
        if major == "jp2 " || major == "jpx " { return .unsupported("image/jp2") }
        if videoBrands.contains(major) || brands.contains(where: videoBrands.contains) { return .supported(.mp4) }
        if brands.contains(where: audioBrands.contains) { return .supported(.m4a) }
        return .unsupported("application/octet-stream (ISO media brand '\(printable(major))')")
    }

    static func ebml(_ b: ByteView) -> Detection {
        // EBML header: ID 1A45DFA3, a size, then child elements; DocType (ID 4282) is "webm" or "matroska".
        var offset = 4
        guard let (headerSize, sizeLength) = b.ebmlVarint(at: offset) else { return .unsupported("unknown") }
        offset += sizeLength
        let end = min(b.count, offset + Int(min(headerSize, UInt64(b.count))))
        while offset < end {
            guard let (id, idLength) = b.ebmlID(at: offset) else { break }
            offset += idLength
            guard let (size, sizeLength) = b.ebmlVarint(at: offset) else { break }
            offset += sizeLength
            guard size <= UInt64(b.count) else { break }
            if id == 0x4282 {
                let doctype = b.text(at: offset, count: Int(size)).map { $0.split(separator: "\0").first.map(String.init) ?? "" } ?? ""
                switch doctype {
                case "webm": return .supported(.webm)
                case "matroska": return .unsupported("video/x-matroska")
                default: return .unsupported("application/x-ebml (doctype '\(printable(doctype))')")
                }
            }
            offset += Int(size)
        }
        return .unsupported("application/x-ebml (no doctype)")
    }

    static func ogg(_ b: ByteView) -> Detection {
        // First page: 27-byte header, a segment table of n entries, then the first packet.
        guard let segments = b.byte(at: 26) else { return .supported(.oggAudio) }
        let packet = 27 + Int(segments)
        if b.matches([0x80] + ascii("theora"), at: packet) { return .supported(.oggVideo) }
        if b.matches(ascii("\u{01}video"), at: packet) { return .supported(.oggVideo) }
        return .supported(.oggAudio)
    }

    static func id3(_ b: ByteView) -> Detection {
        // "ID3", major version 2-4, revision, flags, then a 28-bit syncsafe size.
        guard let version = b.byte(at: 3), (2...4).contains(version), let flags = b.byte(at: 5),
            let s0 = b.byte(at: 6), let s1 = b.byte(at: 7), let s2 = b.byte(at: 8), let s3 = b.byte(at: 9),
            (s0 | s1 | s2 | s3) & 0x80 == 0
        else {
            return .unsupported("unknown")
        }
        let size = Int(s0) << 21 | Int(s1) << 14 | Int(s2) << 7 | Int(s3)
        let audio = 10 + size + (flags & 0x10 != 0 ? 10 : 0)
        guard audio < b.count else {
            // The tag is longer than the sniffed bytes (cover art): an ID3 tag is MP3's own.
            return .supported(.mp3)
        }
        var offset = audio
        while offset < b.count, b.byte(at: offset) == 0 { offset += 1 }  // padding after the tag
        if offset >= b.count || mpegAudioFrame(b, at: offset) != nil { return .supported(.mp3) }
        if b.matches(ascii("fLaC"), at: offset) { return .unsupported("audio/flac") }
        if isADTS(b, at: offset) { return .unsupported("audio/aac") }
        return .supported(.mp3)
    }

    /// An MPEG audio frame header: its length in bytes and layer (1...3), or nil.
    struct MPEGFrame: Equatable {
        let length: Int
        let layer: Int
    }

    static func mpegAudioFrame(_ b: ByteView, at offset: Int) -> MPEGFrame? {
        guard let h0 = b.byte(at: offset), let h1 = b.byte(at: offset + 1), let h2 = b.byte(at: offset + 2) else { return nil }
        guard h0 == 0xFF, h1 & 0xE0 == 0xE0 else { return nil }
        let version = (h1 >> 3) & 0x03  // 0: MPEG 2.5, 1: reserved, 2: MPEG 2, 3: MPEG 1
        let layerBits = (h1 >> 1) & 0x03  // 1: layer III, 2: layer II, 3: layer I, 0: reserved
        let bitrateIndex = Int(h2 >> 4)
        let rateIndex = Int((h2 >> 2) & 0x03)
        let padding = Int((h2 >> 1) & 0x01)
        guard version != 1, layerBits != 0, bitrateIndex != 0, bitrateIndex != 15, rateIndex != 3 else { return nil }
        let layer = 4 - Int(layerBits)
        let rates = [[11025, 12000, 8000], [0, 0, 0], [22050, 24000, 16000], [44100, 48000, 32000]]
        let sampleRate = rates[Int(version)][rateIndex]
        let mpeg1 = version == 3
        let bitrates: [Int]
        switch (mpeg1, layer) {
        case (true, 1): bitrates = [0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448]
        case (true, 2): bitrates = [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384]
        case (true, _): bitrates = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320]
        case (false, 1): bitrates = [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256]
        case (false, _): bitrates = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160]
        }
        let bitrate = bitrates[bitrateIndex] * 1000
        let length: Int
        switch layer {
        case 1: length = (12 * bitrate / sampleRate + padding) * 4
        case 3 where !mpeg1: length = 72 * bitrate / sampleRate + padding
        default: length = 144 * bitrate / sampleRate + padding
        }
        guard length >= 4 else { return nil }
        return MPEGFrame(length: length, layer: layer)
    }

    static func mpegAudio(_ b: ByteView, first: MPEGFrame, isWholeFile: Bool) -> Detection {
        // One frame header is 11 set bits and a few fields: confirm with the next frame when it is in view.
        let next = first.length
        if next + 3 <= b.count {
            guard let second = mpegAudioFrame(b, at: next), second.layer == first.layer else { return .unsupported("unknown") }
        } else if !isWholeFile && b.count >= headSize {
            return .unsupported("unknown")
        }
        return first.layer == 3 ? .supported(.mp3) : .unsupported("audio/mpeg (layer \(first.layer == 1 ? "I" : "II"), not MP3)")
    }

    static func isADTS(_ b: ByteView, at offset: Int) -> Bool {
        guard let h0 = b.byte(at: offset), let h1 = b.byte(at: offset + 1) else { return false }
        return h0 == 0xFF && h1 & 0xF6 == 0xF0
    }

    // MARK: refused formats, named

    static func otherType(_ b: ByteView) -> String {
        if b.starts(with: ascii("MZ")) { return "application/x-msdownload" }
        if b.starts(with: [0x7F] + ascii("ELF")) { return "application/x-executable" }
        for magic: [UInt8] in [[0xFE, 0xED, 0xFA, 0xCE], [0xFE, 0xED, 0xFA, 0xCF], [0xCE, 0xFA, 0xED, 0xFE], [0xCF, 0xFA, 0xED, 0xFE]]
        where b.starts(with: magic) { return "application/x-mach-binary" }
        if b.starts(with: [0xCA, 0xFE, 0xBA, 0xBE]) { return "application/java-vm" }
        if b.starts(with: [0x00] + ascii("asm")) { return "application/wasm" }
        if b.starts(with: ascii("%PDF-")) { return "application/pdf" }
        if b.starts(with: ascii("PK")) && (b.matches([3, 4], at: 2) || b.matches([5, 6], at: 2)) { return "application/zip" }
        if b.starts(with: [0x1F, 0x8B]) { return "application/gzip" }
        if b.starts(with: ascii("7z")) && b.matches([0xBC, 0xAF, 0x27, 0x1C], at: 2) { return "application/x-7z-compressed" }
        if b.starts(with: ascii("Rar!")) { return "application/vnd.rar" }
        if b.starts(with: ascii("BZh")) { return "application/x-bzip2" }
        if b.starts(with: [0xFD] + ascii("7zXZ")) { return "application/x-xz" }
        if b.starts(with: ascii("fLaC")) { return "audio/flac" }
        if b.starts(with: ascii("FORM")) && (b.matches(ascii("AIFF"), at: 8) || b.matches(ascii("AIFC"), at: 8)) { return "audio/aiff" }
        if b.starts(with: ascii("MThd")) { return "audio/midi" }
        if b.starts(with: ascii("RIFF")) && b.matches(ascii("AVI "), at: 8) { return "video/x-msvideo" }
        if b.starts(with: ascii("RIFF")) { return "application/x-riff ('\(printable(b.text(at: 8, count: 4) ?? ""))')" }
        if b.starts(with: [0x30, 0x26, 0xB2, 0x75, 0x8E, 0x66, 0xCF, 0x11]) { return "video/x-ms-asf" }
        if b.starts(with: ascii("FLV")) { return "video/x-flv" }
        if isADTS(b, at: 0) { return "audio/aac" }
        if b.starts(with: ascii("BM")) && b.matches([0, 0, 0, 0], at: 6) && b.count > 14 { return "image/bmp" }
        if b.starts(with: [0x49, 0x49, 0x2A, 0x00]) || b.starts(with: [0x4D, 0x4D, 0x00, 0x2A]) { return "image/tiff" }
        if b.starts(with: [0x00, 0x00, 0x01, 0x00]) { return "image/x-icon" }
        if b.starts(with: ascii("8BPS")) { return "image/vnd.adobe.photoshop" }
        if b.starts(with: [0xFF, 0x0A]) || b.matches([0x00, 0x00, 0x00, 0x0C] + ascii("JXL "), at: 0) { return "image/jxl" }
        if b.starts(with: [0x00, 0x00, 0x00, 0x0C] + ascii("jP  ")) { return "image/jp2" }
        if let markup = markupType(b) { return markup }
        if b.starts(with: ascii("#!")) { return "text/x-shellscript" }
        if b.starts(with: [0xFE, 0xFF]) || b.starts(with: [0xFF, 0xFE]) { return "text/plain (UTF-16)" }
        if isText(b) { return "text/plain" }
        return "unknown"
    }

    /// HTML, SVG and other XML, recognised the way browsers sniff markup: after a BOM, whitespace,
    /// an XML declaration, comments and processing instructions, the first tag decides.
    static func markupType(_ b: ByteView) -> String? {
        var bytes = Array(b.bytes.prefix(headSize))
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        let text = String(decoding: bytes, as: UTF8.self).lowercased()
        var rest = Substring(text)
        var sawXMLDeclaration = false
        while true {
            rest = rest.drop { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" || $0 == "\u{0C}" }
            if rest.hasPrefix("<?") {
                if rest.hasPrefix("<?xml") { sawXMLDeclaration = true }
                guard let end = rest.range(of: "?>") else { return sawXMLDeclaration ? "application/xml" : nil }
                rest = rest[end.upperBound...]
            } else if rest.hasPrefix("<!--") {
                guard let end = rest.range(of: "-->") else { return sawXMLDeclaration ? "application/xml" : "text/html" }
                rest = rest[end.upperBound...]
            } else if rest.hasPrefix("<!doctype") {
                let declaration = rest.prefix { $0 != ">" }
                if declaration.contains("svg") { return "image/svg+xml" }
                if declaration.contains("html") { return "text/html" }
                guard let end = rest.firstIndex(of: ">") else { return sawXMLDeclaration ? "application/xml" : nil }
                rest = rest[rest.index(after: end)...]
            } else {
                break
            }
        }
        guard rest.hasPrefix("<") else { return sawXMLDeclaration ? "application/xml" : nil }
        let name = rest.dropFirst().prefix { $0.isLetter || $0.isNumber || $0 == ":" || $0 == "-" }
        let localName = name.split(separator: ":").last.map(String.init) ?? ""
        guard let first = localName.first, first.isLetter else { return sawXMLDeclaration ? "application/xml" : nil }
        if localName == "svg" { return "image/svg+xml" }
        if localName == "html" { return sawXMLDeclaration ? "application/xhtml+xml" : "text/html" }
        let htmlTags: Set<String> = [
            "head", "body", "script", "iframe", "h1", "h2", "h3", "div", "font", "table", "a", "style",
            "title", "b", "br", "p", "img", "meta", "link", "form", "span", "object", "embed", "template",
        ]
        if htmlTags.contains(localName) { return "text/html" }
        return "application/xml"
    }

    /// True when the bytes read as UTF-8 text without control characters other than whitespace.
    static func isText(_ b: ByteView) -> Bool {
        guard !b.bytes.isEmpty else { return false }
        var bytes = b.bytes
        // A multi-byte character cut at the end of the sniffed bytes is not a reason to say "binary".
        while let last = bytes.last, last & 0xC0 == 0x80 || last & 0xC0 == 0xC0, bytes.count > b.bytes.count - 4 { bytes.removeLast() }
        guard String(validating: bytes, as: UTF8.self) != nil else { return false }
        return !bytes.contains { $0 < 0x20 && $0 != 0x09 && $0 != 0x0A && $0 != 0x0D && $0 != 0x0C || $0 == 0x7F }
    }

    // MARK: image dimensions from the head

    /// Width and height of a PNG, GIF or WebP from its first bytes (JPEG needs ``jpegSize(read:)``).
    static func imageSize(_ format: MediaFormat, head: [UInt8]) -> (width: Int, height: Int)? {
        let b = ByteView(head)
        let size: (Int, Int)?
        switch format {
        case .png:
            guard b.matches(ascii("IHDR"), at: 12), let w = b.uint32BE(at: 16), let h = b.uint32BE(at: 20) else { return nil }
            size = (Int(w), Int(h))
        case .gif:
            guard let w = b.uint16LE(at: 6), let h = b.uint16LE(at: 8) else { return nil }
            size = (Int(w), Int(h))
        case .webp:
            size = webpSize(b)
        default:
            return nil
        }
        guard let (w, h) = size, w > 0, h > 0 else { return nil }
        return (w, h)
    }

    static func webpSize(_ b: ByteView) -> (Int, Int)? {
        if b.matches(ascii("VP8 "), at: 12) {
            // Lossy: frame tag (3 bytes), start code 9D 01 2A, then 14-bit width and height.
            guard b.matches([0x9D, 0x01, 0x2A], at: 23), let w = b.uint16LE(at: 26), let h = b.uint16LE(at: 28) else { return nil }
            return (Int(w & 0x3FFF), Int(h & 0x3FFF))
        }
        if b.matches(ascii("VP8L"), at: 12) {
            // Lossless: signature 2F, then width-1 and height-1 in 14 bits each.
            guard b.byte(at: 20) == 0x2F, let bits = b.uint32LE(at: 21) else { return nil }
            return (Int(bits & 0x3FFF) + 1, Int((bits >> 14) & 0x3FFF) + 1)
        }
        if b.matches(ascii("VP8X"), at: 12) {
            // Extended: flags, 3 reserved bytes, canvas width-1 and height-1 in 24 bits each.
            guard let w = b.uint24LE(at: 24), let h = b.uint24LE(at: 27) else { return nil }
            return (Int(w) + 1, Int(h) + 1)
        }
        return nil
    }

    /// Width and height of a JPEG, walking its segments to the first SOF marker.
    /// - Parameter read: Reads up to `count` bytes at `offset` of the file (fewer at its end).
    static func jpegSize(read: (_ offset: Int, _ count: Int) throws -> [UInt8]) rethrows -> (width: Int, height: Int)? {
        var offset = 2
        for _ in 0..<4096 {
            var header = try read(offset, 4)
            guard header.count == 4, header[0] == 0xFF else { return nil }
            // Fill bytes: FF FF ... before the marker.
            while header[1] == 0xFF {
                offset += 1
                header = try read(offset, 4)
                guard header.count == 4 else { return nil }
            }
            let marker = header[1]
            if marker == 0xD8 || marker == 0x01 || (0xD0...0xD7).contains(marker) {
                offset += 2
                continue
            }
            if marker == 0xD9 || marker == 0xDA { return nil }
            let length = Int(header[2]) << 8 | Int(header[3])
            guard length >= 2 else { return nil }
            let isFrame = (0xC0...0xCF).contains(marker) && marker != 0xC4 && marker != 0xC8 && marker != 0xCC
            if isFrame {
                let frame = try read(offset + 4, 5)
                guard frame.count == 5 else { return nil }
                let height = Int(frame[1]) << 8 | Int(frame[2])
                let width = Int(frame[3]) << 8 | Int(frame[4])
                return width > 0 && height > 0 ? (width, height) : nil
            }
            offset += 2 + length
        }
        return nil
    }

    // MARK: helpers

    static func ascii(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// Text safe to put in a message: printable ASCII only.
    static func printable(_ text: String) -> String {
        String(text.unicodeScalars.map { $0.isASCII && $0.value >= 0x20 && $0.value < 0x7F ? Character($0) : "?" })
    }
}

/// Bounds-checked reads from a byte array: every accessor answers nil past the end.
struct ByteView {
    /// The bytes.
    let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var count: Int { bytes.count }

    func byte(at offset: Int) -> UInt8? { offset >= 0 && offset < bytes.count ? bytes[offset] : nil }

    func matches(_ pattern: [UInt8], at offset: Int) -> Bool {
        guard offset >= 0, offset + pattern.count <= bytes.count else { return false }
        return bytes[offset..<offset + pattern.count].elementsEqual(pattern)
    }

    func starts(with pattern: [UInt8]) -> Bool { matches(pattern, at: 0) }

    func text(at offset: Int, count: Int) -> String? {
        guard offset >= 0, count >= 0, offset + count <= bytes.count else { return nil }
        return String(decoding: bytes[offset..<offset + count], as: UTF8.self)
    }

    func uint16LE(at offset: Int) -> UInt16? {
        guard let a = byte(at: offset), let b = byte(at: offset + 1) else { return nil }
        return UInt16(a) | UInt16(b) << 8
    }

    func uint24LE(at offset: Int) -> UInt32? {
        guard let a = byte(at: offset), let b = byte(at: offset + 1), let c = byte(at: offset + 2) else { return nil }
        return UInt32(a) | UInt32(b) << 8 | UInt32(c) << 16
    }

    func uint32LE(at offset: Int) -> UInt32? {
        guard let low = uint16LE(at: offset), let high = uint16LE(at: offset + 2) else { return nil }
        return UInt32(low) | UInt32(high) << 16
    }

    func uint32BE(at offset: Int) -> UInt32? {
        guard let a = byte(at: offset), let b = byte(at: offset + 1), let c = byte(at: offset + 2), let d = byte(at: offset + 3) else { return nil }
        return UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// An EBML element ID (1-4 bytes, marker bits kept) and its length.
    func ebmlID(at offset: Int) -> (UInt32, Int)? {
        guard let first = byte(at: offset), first != 0 else { return nil }
        let length = first.leadingZeroBitCount + 1
        guard length <= 4 else { return nil }
        var value = UInt32(first)
        for index in 1..<length {
            guard let next = byte(at: offset + index) else { return nil }
            value = value << 8 | UInt32(next)
        }
        return (value, length)
    }

    /// An EBML variable-size integer (marker bit removed) and its length.
    func ebmlVarint(at offset: Int) -> (UInt64, Int)? {
        guard let first = byte(at: offset), first != 0 else { return nil }
        let length = first.leadingZeroBitCount + 1
        var value = UInt64(first & (0xFF >> UInt8(length)))
        for index in 1..<length {
            guard let next = byte(at: offset + index) else { return nil }
            value = value << 8 | UInt64(next)
        }
        return (value, length)
    }
}
