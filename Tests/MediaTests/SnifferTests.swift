@testable import Media
import XCTest

/// Format detection from the first bytes, and image sizes from the head.
final class SnifferTests: XCTestCase {
    func detect(_ bytes: [UInt8], whole: Bool = true) -> Detection { MediaSniffer.detect(bytes, isWholeFile: whole) }
    func detect(_ text: String) -> Detection { detect(Array(text.utf8)) }

    func testAcceptedFormats() {
        XCTAssertEqual(detect(Samples.png()), .supported(.png))
        XCTAssertEqual(detect(Samples.jpeg()), .supported(.jpeg))
        XCTAssertEqual(detect(Samples.gif()), .supported(.gif))
        XCTAssertEqual(detect(Samples.ascii("GIF87a") + [1, 0, 1, 0]), .supported(.gif))
        XCTAssertEqual(detect(Samples.webpLossless(width: 2, height: 2)), .supported(.webp))
        XCTAssertEqual(detect(Samples.ascii("RIFF") + Samples.le32(4) + Samples.ascii("WAVE")), .supported(.wav))
        XCTAssertEqual(detect(Samples.ftyp("isom", compatible: ["isom", "avc1"])), .supported(.mp4))
        XCTAssertEqual(detect(Samples.ftyp("M4A ", compatible: ["M4A ", "mp42", "isom"])), .supported(.m4a))
        // An unknown major brand with a video brand among the compatible ones is MP4.
        XCTAssertEqual(detect(Samples.ftyp("xyz1", compatible: ["mp42"])), .supported(.mp4))
        XCTAssertEqual(detect(Samples.ebml(docType: "webm")), .supported(.webm))
        XCTAssertEqual(detect(Samples.ogg(packet: [1] + Samples.ascii("vorbis"))), .supported(.oggAudio))
        XCTAssertEqual(detect(Samples.ogg(packet: [0x80] + Samples.ascii("theora"))), .supported(.oggVideo))
        XCTAssertEqual(detect(Samples.ascii("ID3") + [4, 0, 0, 0, 0, 0, 0] + Samples.mpegFrame(layer: 3)), .supported(.mp3))
        XCTAssertEqual(detect(Samples.ascii("ID3") + [3, 0, 0, 0, 0, 0x7F, 0x7F]), .supported(.mp3))  // tag longer than the head
        XCTAssertEqual(detect(Samples.mpegFrame(layer: 3) + Samples.mpegFrame(layer: 3)), .supported(.mp3))
        XCTAssertEqual(detect(Samples.mpegFrame(layer: 3)), .supported(.mp3))  // one frame, the whole file
    }

    func testLookalikesAreNamed() {
        XCTAssertEqual(detect(Samples.ftyp("heic", compatible: ["mif1", "heic"])), .unsupported("image/heic"))
        XCTAssertEqual(detect(Samples.ftyp("avif", compatible: ["avif", "mif1"])), .unsupported("image/avif"))
        XCTAssertEqual(detect(Samples.ftyp("qt  ", compatible: ["qt  "])), .unsupported("video/quicktime"))
        XCTAssertEqual(detect(Samples.ftyp("3gp5", compatible: ["3gp5"])), .unsupported("video/3gpp"))
        XCTAssertEqual(detect(Samples.ftyp("ab\u{1}d", compatible: ["xxxx"])), .unsupported("application/octet-stream (ISO media brand 'ab?d')"))
        XCTAssertEqual(detect(Samples.ebml(docType: "matroska")), .unsupported("video/x-matroska"))
        XCTAssertEqual(detect(Samples.ebml(docType: "other")), .unsupported("application/x-ebml (doctype 'other')"))
        XCTAssertEqual(detect(Samples.ascii("ID3") + [4, 0, 0, 0, 0, 0, 0] + Samples.ascii("fLaC") + [0, 0, 0, 34]), .unsupported("audio/flac"))
        XCTAssertEqual(detect(Samples.ascii("ID3") + [4, 0, 0, 0, 0, 0, 0] + [0xFF, 0xF1, 0x50, 0x80]), .unsupported("audio/aac"))
        // Layer II frames are MPEG audio but not MP3; a first frame whose successor is missing is not believed.
        XCTAssertEqual(detect(Samples.mpegFrame(layer: 2) + Samples.mpegFrame(layer: 2)), .unsupported("audio/mpeg (layer II, not MP3)"))
        XCTAssertEqual(detect(Samples.mpegFrame(layer: 3) + [1, 2, 3, 4]), .unsupported("unknown"))
        XCTAssertEqual(detect(Samples.mpegFrame(layer: 3) + Samples.mpegFrame(layer: 2)), .unsupported("unknown"))
        // A lone frame in a head shorter than headSize is the whole file as far as the sniffer can tell.
        XCTAssertEqual(detect(Samples.mpegFrame(layer: 3), whole: false), .supported(.mp3))
    }

    func testRefusedFormatsByName() {
        XCTAssertEqual(detect("MZ\u{90}\u{0}"), .unsupported("application/x-msdownload"))
        XCTAssertEqual(detect([0x7F] + Samples.ascii("ELF") + [2, 1, 1]), .unsupported("application/x-executable"))
        XCTAssertEqual(detect("%PDF-1.7\n"), .unsupported("application/pdf"))
        XCTAssertEqual(detect(Samples.ascii("PK") + [3, 4, 20, 0]), .unsupported("application/zip"))
        XCTAssertEqual(detect([0x1F, 0x8B, 8, 0]), .unsupported("application/gzip"))
        XCTAssertEqual(detect(Samples.ascii("RIFF") + Samples.le32(4) + Samples.ascii("AVI ")), .unsupported("video/x-msvideo"))
        XCTAssertEqual(detect(Samples.ascii("RIFF") + Samples.le32(4) + Samples.ascii("XY\u{7}Z")), .unsupported("application/x-riff ('XY?Z')"))
        XCTAssertEqual(detect([0x49, 0x49, 0x2A, 0x00, 8, 0, 0, 0]), .unsupported("image/tiff"))
        XCTAssertEqual(detect("fLaC\u{0}\u{0}\u{0}\u{22}"), .unsupported("audio/flac"))
        XCTAssertEqual(detect("#!/bin/sh\nrm -rf /\n"), .unsupported("text/x-shellscript"))
        XCTAssertEqual(detect([0x02, 0x03, 0x04, 0x05]), .unsupported("unknown"))
        XCTAssertEqual(detect([]), .unsupported("unknown"))
    }

    func testMarkupIsRecognisedAsBrowsersSniffIt() {
        XCTAssertEqual(detect("<!DOCTYPE html><html><body>x</body></html>"), .unsupported("text/html"))
        XCTAssertEqual(detect("\u{FEFF}  \n<HTML>"), .unsupported("text/html"))
        XCTAssertEqual(detect("<!-- a comment --><script>alert(1)</script>"), .unsupported("text/html"))
        XCTAssertEqual(detect("<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"/>"), .unsupported("image/svg+xml"))
        XCTAssertEqual(detect("<svg:svg xmlns:svg=\"http://www.w3.org/2000/svg\"/>"), .unsupported("image/svg+xml"))
        XCTAssertEqual(detect("<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\"><svg/>"), .unsupported("image/svg+xml"))
        XCTAssertEqual(detect("<?xml version=\"1.0\"?><html xmlns=\"http://www.w3.org/1999/xhtml\"/>"), .unsupported("application/xhtml+xml"))
        XCTAssertEqual(detect("<?xml version=\"1.0\"?><note/>"), .unsupported("application/xml"))
        XCTAssertEqual(detect("<?xml version=\"1.0\"?>"), .unsupported("application/xml"))
        XCTAssertEqual(detect("hello, world\r\n\tplain text"), .unsupported("text/plain"))
        XCTAssertEqual(detect("1 < 2"), .unsupported("text/plain"))
        // A multi-byte character cut by the end of the head is still text.
        XCTAssertEqual(detect(Array("caf".utf8) + [0xC3], whole: false), .unsupported("text/plain"))
    }

    func testImageSizesFromTheHead() throws {
        func size(_ format: MediaFormat, _ bytes: [UInt8]) -> [Int]? {
            MediaSniffer.imageSize(format, head: bytes).map { [$0.width, $0.height] }
        }
        XCTAssertEqual(size(.png, Samples.png(width: 1920, height: 1080)), [1920, 1080])
        XCTAssertEqual(size(.gif, Samples.gif(width: 300, height: 2)), [300, 2])
        XCTAssertEqual(size(.webp, Samples.webpLossless(width: 16_384, height: 1)), [16_384, 1])
        XCTAssertEqual(size(.webp, Samples.webpLossy(width: 640, height: 360)), [640, 360])
        XCTAssertEqual(size(.webp, Samples.webpExtended(width: 70_000, height: 3, withImage: false)), [70_000, 3])
        XCTAssertNil(size(.png, Array(Samples.png().prefix(20))))
        XCTAssertNil(size(.png, Samples.png(width: 0, height: 5)))
        XCTAssertNil(size(.jpeg, Samples.jpeg()))  // JPEG needs jpegSize(read:)
        XCTAssertNil(size(.webp, Samples.webp([("ALPH", [1, 2])])))

        let jpeg = Samples.jpeg(width: 1280, height: 720)
        func read(_ offset: Int, _ count: Int) -> [UInt8] { Array(jpeg.dropFirst(offset).prefix(count)) }
        let found = MediaSniffer.jpegSize(read: read)
        XCTAssertEqual(found.map { [$0.width, $0.height] }, [1280, 720])
        let frameless = Samples.jpeg(withFrame: false)
        XCTAssertNil(MediaSniffer.jpegSize { offset, count in Array(frameless.dropFirst(offset).prefix(count)) })
    }
}
