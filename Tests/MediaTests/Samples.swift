// Small well-formed media files built byte by byte, for the sniffer, the image validator and the upload receiver.

import Foundation

enum Samples {
    static func be32(_ value: Int) -> [UInt8] {
        [UInt8(value >> 24 & 0xFF), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }
    static func le32(_ value: Int) -> [UInt8] {
        [UInt8(value & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value >> 16 & 0xFF), UInt8(value >> 24 & 0xFF)]
    }
    static func le16(_ value: Int) -> [UInt8] { [UInt8(value & 0xFF), UInt8(value >> 8 & 0xFF)] }
    static func be16(_ value: Int) -> [UInt8] { [UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)] }
    static func ascii(_ text: String) -> [UInt8] { Array(text.utf8) }

    /// CRC-32 (IEEE), bit by bit: written independently of the validator's table.
    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = (crc >> 1) ^ (crc & 1 == 1 ? 0xEDB8_8320 : 0) }
        }
        return ~crc
    }

    static func pngChunk(_ type: String, _ data: [UInt8], crcDelta: UInt32 = 0) -> [UInt8] {
        be32(data.count) + ascii(type) + data + be32(Int(crc32(ascii(type) + data) ^ crcDelta))
    }

    static let pngSignature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    /// A PNG of `width` x `height` (8-bit RGB). The IDAT content is not deflate data: only the container is checked.
    static func png(width: Int = 3, height: Int = 2, idat: [UInt8] = [0x78, 0x9C, 0x63, 0x00, 0x00], chunks: [[UInt8]]? = nil) -> [UInt8] {
        let ihdr = pngChunk("IHDR", be32(width) + be32(height) + [8, 2, 0, 0, 0])
        let body = chunks ?? [pngChunk("IDAT", idat)]
        return pngSignature + ihdr + body.joined() + pngChunk("IEND", [])
    }

    /// A baseline JPEG: SOI, APP0, SOF0, SOS, entropy data with a stuffed byte and a restart marker, EOI.
    static func jpeg(
        width: Int = 640, height: Int = 480, withFrame: Bool = true,
        scan: [UInt8] = [0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56]
    ) -> [UInt8] {
        var out: [UInt8] = [0xFF, 0xD8]
        out += [0xFF, 0xE0] + be16(16) + ascii("JFIF") + [0, 1, 1, 0, 0, 1, 0, 1, 0, 0]
        if withFrame {
            out += [0xFF, 0xC0] + be16(17) + [8] + be16(height) + be16(width) + [3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]
        }
        out += [0xFF, 0xDA] + be16(12) + [3, 1, 0, 2, 0x11, 3, 0x11, 0, 0x3F, 0]
        out += scan
        out += [0xFF, 0xD9]
        return out
    }

    /// A GIF89a with a two-colour global table, a graphic control extension and one image.
    static func gif(width: Int = 5, height: Int = 4, images: Int = 1, codeSize: UInt8 = 2) -> [UInt8] {
        var out = ascii("GIF89a") + le16(width) + le16(height) + [0x80, 0, 0]
        out += [0, 0, 0, 255, 255, 255]
        out += [0x21, 0xF9, 4, 0, 0, 0, 0, 0]
        for _ in 0..<images {
            out += [0x2C] + le16(0) + le16(0) + le16(width) + le16(height) + [0]
            out += [codeSize, 2, 0x4C, 0x01, 0]
        }
        out += [0x3B]
        return out
    }

    /// A RIFF/WEBP file of the given chunks (each padded to an even size).
    static func webp(_ chunks: [(String, [UInt8])]) -> [UInt8] {
        var body = ascii("WEBP")
        for (name, data) in chunks {
            body += ascii(name) + le32(data.count) + data + (data.count % 2 == 1 ? [0] : [])
        }
        return ascii("RIFF") + le32(body.count) + body
    }

    /// Lossless: signature 0x2F, then width-1 and height-1 in 14 bits each.
    static func webpLossless(width: Int, height: Int) -> [UInt8] {
        webp([("VP8L", [0x2F] + le32((width - 1) | (height - 1) << 14))])
    }

    /// Lossy: frame tag, start code, 14-bit sizes.
    static func webpLossy(width: Int, height: Int) -> [UInt8] {
        webp([("VP8 ", [0x30, 0x01, 0x00, 0x9D, 0x01, 0x2A] + le16(width) + le16(height))])
    }

    /// Extended: flags, reserved, 24-bit canvas size minus one; with or without an image chunk after it.
    static func webpExtended(width: Int, height: Int, withImage: Bool) -> [UInt8] {
        let canvas = [UInt8(0x10), 0, 0, 0] + Array(le32(width - 1).prefix(3)) + Array(le32(height - 1).prefix(3))
        var chunks = [("VP8X", canvas)]
        if withImage { chunks.append(("VP8L", [0x2F] + le32((width - 1) | (height - 1) << 14))) }
        return webp(chunks)
    }

    /// An `ftyp` box with a major brand and compatible brands.
    static func ftyp(_ major: String, compatible: [String]) -> [UInt8] {
        let brands = compatible.flatMap(ascii)
        return be32(16 + brands.count) + ascii("ftyp") + ascii(major) + [0, 0, 2, 0] + brands + be32(8) + ascii("mdat")
    }

    /// An EBML header with the given DocType.
    static func ebml(docType: String) -> [UInt8] {
        let children: [UInt8] = [0x42, 0x86, 0x81, 0x01] + [0x42, 0x82, UInt8(0x80 | docType.utf8.count)] + ascii(docType)
        return [0x1A, 0x45, 0xDF, 0xA3, UInt8(0x80 | children.count)] + children + [0x18, 0x53, 0x80, 0x67]
    }

    /// The first Ogg page with one segment holding `packet`.
    static func ogg(packet: [UInt8]) -> [UInt8] {
        ascii("OggS") + [0, 2] + [UInt8](repeating: 0, count: 20) + [1, UInt8(packet.count)] + packet
    }

    /// An MPEG-1 audio frame header (bitrate index 9, 44.1 kHz) of layer 3 or 2, padded with zeros to its frame length.
    static func mpegFrame(layer: Int) -> [UInt8] {
        let h1: UInt8 = layer == 3 ? 0xFB : 0xFD
        let length = layer == 3 ? 417 : 522  // 144 * bitrate / 44100: index 9 is 128 kbit/s in layer III, 160 in layer II
        return [0xFF, h1, 0x90, 0x00] + [UInt8](repeating: 0, count: length - 4)
    }
}
