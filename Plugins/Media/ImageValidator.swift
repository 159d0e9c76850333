// Media: an image is what it claims only when its whole structure parses, not just its first bytes.

/// Why an image failed structural validation.
struct ImageStructureError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Walks the structure of a whole PNG, JPEG, GIF or WebP file, so that a valid signature followed by
/// something else (HTML, a script, a polyglot) is refused instead of stored as an image.
///
/// Reads go through `read(offset, count)` (fewer bytes at the end of the file); nothing is decoded,
/// only the container is checked: chunks and their CRCs (PNG), markers and segments up to the end
/// of image (JPEG), blocks and sub-blocks up to the trailer (GIF), RIFF chunks (WebP). Bytes after
/// the end of the image are refused unless they are zero padding.
enum ImageValidator {
    typealias Reader = (_ offset: Int, _ count: Int) throws -> [UInt8]

    static func validate(_ format: MediaFormat, size: Int, read: @escaping Reader) throws {
        var source = Source(size: size, read: read)
        switch format {
        case .png: try png(&source)
        case .jpeg: try jpeg(&source)
        case .gif: try gif(&source)
        case .webp: try webp(&source)
        default: return
        }
    }

    /// Sequential reads with bounds checks.
    struct Source {
        let size: Int
        let read: Reader
        var offset = 0

        var remaining: Int { size - offset }

        mutating func bytes(_ count: Int, _ what: String) throws -> [UInt8] {
            guard count >= 0, count <= remaining else { throw ImageStructureError("the file ends inside \(what)") }
            var out: [UInt8] = []
            out.reserveCapacity(count)
            while out.count < count {
                let piece = try read(offset + out.count, min(1 << 20, count - out.count))
                guard !piece.isEmpty else { throw ImageStructureError("the file ends inside \(what)") }
                out += piece
            }
            offset += count
            return out
        }

        mutating func byte(_ what: String) throws -> UInt8 { try bytes(1, what)[0] }

        mutating func skip(_ count: Int, _ what: String) throws {
            guard count >= 0, count <= remaining else { throw ImageStructureError("the file ends inside \(what)") }
            offset += count
        }

        /// Feeds `count` bytes to `body` in pieces without holding them all.
        mutating func stream(_ count: Int, _ what: String, _ body: ([UInt8]) -> Void) throws {
            guard count >= 0, count <= remaining else { throw ImageStructureError("the file ends inside \(what)") }
            var done = 0
            while done < count {
                let piece = try read(offset + done, min(1 << 20, count - done))
                guard !piece.isEmpty else { throw ImageStructureError("the file ends inside \(what)") }
                body(piece)
                done += piece.count
            }
            offset += count
        }

        /// After the image's end: only zero bytes may follow.
        mutating func expectOnlyPadding() throws {
            while remaining > 0 {
                let piece = try read(offset, min(1 << 16, remaining))
                guard !piece.isEmpty else { return }
                guard piece.allSatisfy({ $0 == 0 }) else {
                    throw ImageStructureError("\(remaining) bytes of other data follow the end of the image")
                }
                offset += piece.count
            }
        }
    }

    static func be32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) << 24 | UInt32(b[at + 1]) << 16 | UInt32(b[at + 2]) << 8 | UInt32(b[at + 3])
    }

    static func le32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24
    }

    // MARK: PNG

    static let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func png(_ s: inout Source) throws {
        guard try s.bytes(8, "the signature") == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] else {
            throw ImageStructureError("no PNG signature")
        }
        var first = true
        var sawData = false
        for _ in 0..<1_000_000 {
            let header = try s.bytes(8, "a chunk header")
            let length = Int(be32(header, 0))
            let type = Array(header[4..<8])
            guard length <= 0x7FFF_FFFF, type.allSatisfy({ (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }) else {
                throw ImageStructureError("a chunk header is not a PNG chunk")
            }
            let name = String(decoding: type, as: UTF8.self)
            if first {
                guard name == "IHDR", length == 13 else { throw ImageStructureError("the first chunk is not IHDR") }
            }
            var crc: UInt32 = 0xFFFF_FFFF
            func feed(_ bytes: [UInt8]) {
                for byte in bytes { crc = crcTable[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
            }
            feed(type)
            if first {
                let ihdr = try s.bytes(13, "IHDR")
                feed(ihdr)
                let width = be32(ihdr, 0), height = be32(ihdr, 4)
                let depth = ihdr[8], color = ihdr[9]
                let allowed: [UInt8: Set<UInt8>] = [0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16]]
                guard width > 0, height > 0, width <= 0x7FFF_FFFF, height <= 0x7FFF_FFFF,
                    allowed[color]?.contains(depth) == true, ihdr[10] == 0, ihdr[11] == 0, ihdr[12] <= 1
                else {
                    throw ImageStructureError("IHDR holds impossible values")
                }
                first = false
            } else {
                try s.stream(length, "chunk \(name)", feed)
            }
            let stored = try s.bytes(4, "a chunk CRC")
            guard be32(stored, 0) == crc ^ 0xFFFF_FFFF else { throw ImageStructureError("chunk \(name) has a wrong CRC") }
            if name == "IDAT" { sawData = true }
            if name == "IEND" {
                guard sawData else { throw ImageStructureError("no image data (IDAT)") }
                try s.expectOnlyPadding()
                return
            }
        }
        throw ImageStructureError("too many chunks")
    }

    // MARK: JPEG

    static func jpeg(_ s: inout Source) throws {
        guard try s.bytes(2, "the start of image") == [0xFF, 0xD8] else { throw ImageStructureError("no JPEG start of image") }
        var sawFrame = false
        var inScan = false
        for _ in 0..<10_000_000 {
            if inScan {
                // Entropy-coded data: FF 00 is a stuffed byte and FF D0-D7 restart markers; any other marker ends the scan.
                var found = false
                while s.remaining > 0 {
                    let window = try s.read(s.offset, min(1 << 16, s.remaining))
                    guard !window.isEmpty else { break }
                    var index = 0
                    while index < window.count {
                        if window[index] == 0xFF, index + 1 < window.count {
                            let next = window[index + 1]
                            if next != 0x00 && !(0xD0...0xD7).contains(next) && next != 0xFF {
                                found = true
                                break
                            }
                        }
                        index += 1
                    }
                    if found {
                        s.offset += index
                        break
                    }
                    // Keep a trailing FF for the next window.
                    s.offset += window.last == 0xFF && window.count > 1 ? window.count - 1 : window.count
                    if window.count == 1 { break }
                }
                guard found else { throw ImageStructureError("the scan data has no end of image") }
                inScan = false
            }
            guard try s.byte("a marker") == 0xFF else { throw ImageStructureError("a segment does not start with a marker") }
            var marker = try s.byte("a marker")
            while marker == 0xFF { marker = try s.byte("a marker") }
            switch marker {
            case 0xD9:
                guard sawFrame else { throw ImageStructureError("no frame header (SOF)") }
                try s.expectOnlyPadding()
                return
            case 0xD0...0xD7, 0x01:
                continue
            case 0x00, 0xD8:
                throw ImageStructureError("an unexpected marker")
            default:
                let lengthBytes = try s.bytes(2, "a segment length")
                let length = Int(lengthBytes[0]) << 8 | Int(lengthBytes[1])
                guard length >= 2 else { throw ImageStructureError("a segment has a length below 2") }
                if (0xC0...0xCF).contains(marker), marker != 0xC4, marker != 0xC8, marker != 0xCC {
                    let frame = try s.bytes(length - 2, "a frame header")
                    // Height may be 0 (given later by a DNL segment); width and components may not.
                    guard frame.count >= 6, (Int(frame[3]) << 8 | Int(frame[4])) > 0, frame[5] > 0 else {
                        throw ImageStructureError("the frame header holds impossible values")
                    }
                    sawFrame = true
                } else {
                    try s.skip(length - 2, "a segment")
                }
                if marker == 0xDA {
                    guard sawFrame else { throw ImageStructureError("scan data before the frame header") }
                    inScan = true
                }
            }
        }
        throw ImageStructureError("too many segments")
    }

    // MARK: GIF

    static func gif(_ s: inout Source) throws {
        let header = try s.bytes(13, "the header")
        let signature = String(decoding: header[0..<6], as: UTF8.self)
        guard signature == "GIF87a" || signature == "GIF89a" else { throw ImageStructureError("no GIF signature") }
        let flags = header[10]
        if flags & 0x80 != 0 { try s.skip(3 << (Int(flags & 0x07) + 1), "the global color table") }
        var frames = 0
        func subBlocks(_ s: inout Source, _ what: String) throws {
            while true {
                let size = Int(try s.byte(what))
                if size == 0 { return }
                try s.skip(size, what)
            }
        }
        for _ in 0..<10_000_000 {
            let introducer = try s.byte("a block")
            switch introducer {
            case 0x21:
                _ = try s.byte("an extension label")
                try subBlocks(&s, "an extension")
            case 0x2C:
                let descriptor = try s.bytes(9, "an image descriptor")
                if descriptor[8] & 0x80 != 0 { try s.skip(3 << (Int(descriptor[8] & 0x07) + 1), "a local color table") }
                let codeSize = try s.byte("the LZW code size")
                guard (1...11).contains(codeSize) else { throw ImageStructureError("an impossible LZW code size") }
                try subBlocks(&s, "image data")
                frames += 1
            case 0x3B:
                guard frames > 0 else { throw ImageStructureError("no image in the file") }
                try s.expectOnlyPadding()
                return
            default:
                throw ImageStructureError("an unknown block (0x\(String(introducer, radix: 16)))")
            }
        }
        throw ImageStructureError("too many blocks")
    }

    // MARK: WebP

    static func webp(_ s: inout Source) throws {
        let header = try s.bytes(12, "the RIFF header")
        guard header[0..<4].elementsEqual(Array("RIFF".utf8)), header[8..<12].elementsEqual(Array("WEBP".utf8)) else {
            throw ImageStructureError("no RIFF/WEBP header")
        }
        let riffSize = Int(le32(header, 4))
        guard riffSize >= 4, riffSize + 8 <= s.size else { throw ImageStructureError("the RIFF size does not match the file") }
        let end = riffSize + 8
        var sawImage = false
        var chunks = 0
        while s.offset < end {
            let chunk = try s.bytes(8, "a chunk header")
            let name = String(decoding: chunk[0..<4], as: UTF8.self)
            let size = Int(le32(chunk, 4))
            guard s.offset + size <= end else { throw ImageStructureError("chunk \(name) runs past the RIFF size") }
            if ["VP8 ", "VP8L", "ANMF"].contains(name) { sawImage = true }
            try s.skip(size + (size & 1), "chunk \(name)")
            chunks += 1
            guard chunks < 1_000_000 else { throw ImageStructureError("too many chunks") }
        }
        guard sawImage else { throw ImageStructureError("no image chunk (VP8, VP8L, VP8X/ANMF)") }
        try s.expectOnlyPadding()
    }
}
