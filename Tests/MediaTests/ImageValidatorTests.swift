@testable import Media
import XCTest

/// The whole-file structure check of images: valid files pass, signatures followed by something else do not.
final class ImageValidatorTests: XCTestCase {
    /// Validates `bytes`, reading them in pieces of at most `piece` bytes (so that reads longer than one piece are exercised;
    /// the real reader answers short only at the end of the file, and the JPEG scan relies on that).
    func problem(_ format: MediaFormat, _ bytes: [UInt8], piece: Int = .max) -> String? {
        do {
            try ImageValidator.validate(format, size: bytes.count) { offset, count in
                Array(bytes.dropFirst(offset).prefix(min(count, piece)))
            }
            return nil
        } catch let error as ImageStructureError {
            return error.description
        } catch {
            return "unexpected \(error)"
        }
    }

    func assertProblem(_ format: MediaFormat, _ bytes: [UInt8], contains text: String, file: StaticString = #filePath, line: UInt = #line) {
        let found = problem(format, bytes)
        XCTAssertTrue(found?.contains(text) == true, "\(found ?? "valid") lacks '\(text)'", file: file, line: line)
    }

    let html = Array("<html><script>alert(1)</script></html>".utf8)

    func testPNG() {
        XCTAssertNil(problem(.png, Samples.png()))
        XCTAssertNil(problem(.png, Samples.png(), piece: 3))
        XCTAssertNil(problem(.png, Samples.png() + [0, 0, 0, 0]))  // zero padding after IEND
        XCTAssertNil(
            problem(
                .png,
                Samples.png(chunks: [
                    Samples.pngChunk("tEXt", Array("a\0b".utf8)), Samples.pngChunk("IDAT", [1]),
                    Samples.pngChunk("IDAT", [2]),
                ])))
        assertProblem(.png, Samples.png() + html, contains: "bytes of other data follow the end of the image")
        assertProblem(.png, Samples.png(chunks: [Samples.pngChunk("IDAT", [1, 2, 3], crcDelta: 1)]), contains: "chunk IDAT has a wrong CRC")
        assertProblem(.png, Samples.png(chunks: []), contains: "no image data (IDAT)")
        assertProblem(.png, Samples.png(chunks: [Samples.pngChunk("ID4T", [1])]), contains: "not a PNG chunk")
        assertProblem(.png, Samples.png(width: 0, height: 1), contains: "IHDR holds impossible values")
        assertProblem(.png, Array(Samples.png().dropLast(6)), contains: "the file ends inside")
        assertProblem(
            .png, Samples.pngSignature + Samples.pngChunk("IDAT", [1]) + Samples.pngChunk("IEND", []), contains: "the first chunk is not IHDR")
        // A chunk length past the file is refused before anything is read.
        assertProblem(
            .png,
            Samples.pngSignature + Samples.pngChunk("IHDR", Samples.be32(1) + Samples.be32(1) + [8, 2, 0, 0, 0])
                + Samples.be32(0x7FFF_FFFF) + Samples.ascii("IDAT"), contains: "the file ends inside chunk IDAT")
        assertProblem(
            .png,
            Samples.pngSignature + Samples.pngChunk("IHDR", Samples.be32(1) + Samples.be32(1) + [8, 2, 0, 0, 0])
                + Samples.be32(0x8000_0000) + Samples.ascii("IDAT"), contains: "not a PNG chunk")
        assertProblem(
            .png, Samples.png(width: 1, height: 1).enumerated().map { $0.offset == 24 ? 7 : $0.element },
            contains: "IHDR holds impossible values")  // bit depth 7
    }

    func testJPEG() {
        XCTAssertNil(problem(.jpeg, Samples.jpeg()))
        // The end-of-image marker, and a stuffed byte, split across two 64 KiB windows of scan data.
        XCTAssertNil(problem(.jpeg, Samples.jpeg(scan: [UInt8](repeating: 0x11, count: 65_535))))
        XCTAssertNil(problem(.jpeg, Samples.jpeg(scan: [UInt8](repeating: 0x11, count: 65_535) + [0xFF, 0x00])))
        assertProblem(.jpeg, Samples.jpeg() + html, contains: "bytes of other data follow the end of the image")
        assertProblem(.jpeg, Samples.jpeg(withFrame: false), contains: "scan data before the frame header")
        assertProblem(.jpeg, Array(Samples.jpeg().dropLast(2)), contains: "the scan data has no end of image")
        assertProblem(.jpeg, [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 0x4A], contains: "the file ends inside a segment")
        assertProblem(.jpeg, [0xFF, 0xD8, 0xFF, 0xD9], contains: "no frame header (SOF)")
        assertProblem(.jpeg, [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x01], contains: "a segment has a length below 2")
        assertProblem(.jpeg, [0xFF, 0xD8, 0x00, 0xFF], contains: "a segment does not start with a marker")
        assertProblem(.jpeg, [0xFF, 0xD8, 0xFF, 0xD8], contains: "an unexpected marker")
        assertProblem(.jpeg, Samples.jpeg(width: 0), contains: "the frame header holds impossible values")
        assertProblem(.jpeg, html, contains: "no JPEG start of image")
    }

    func testGIF() {
        XCTAssertNil(problem(.gif, Samples.gif()))
        XCTAssertNil(problem(.gif, Samples.gif(images: 3), piece: 2))
        assertProblem(.gif, Samples.gif() + html, contains: "bytes of other data follow the end of the image")
        assertProblem(.gif, Samples.gif(images: 0), contains: "no image in the file")
        assertProblem(.gif, Samples.gif(codeSize: 12), contains: "an impossible LZW code size")
        assertProblem(.gif, Array(Samples.gif().dropLast()), contains: "the file ends inside a block")
        assertProblem(.gif, Array(Samples.gif().dropLast()) + [0x99], contains: "an unknown block (0x99)")
        assertProblem(.gif, Samples.ascii("GIF90a") + [UInt8](repeating: 0, count: 7), contains: "no GIF signature")
    }

    func testWebP() {
        XCTAssertNil(problem(.webp, Samples.webpLossless(width: 4, height: 4)))
        XCTAssertNil(problem(.webp, Samples.webpLossy(width: 4, height: 4)))
        XCTAssertNil(problem(.webp, Samples.webpExtended(width: 4, height: 4, withImage: true)))
        XCTAssertNil(problem(.webp, Samples.webpLossless(width: 4, height: 4) + [0, 0]))
        assertProblem(.webp, Samples.webpExtended(width: 4, height: 4, withImage: false), contains: "no image chunk")
        assertProblem(.webp, Samples.webpLossless(width: 4, height: 4) + html, contains: "bytes of other data follow the end of the image")
        // A RIFF size larger than the file, and a chunk running past the RIFF size.
        var long = Samples.webpLossless(width: 4, height: 4)
        long.replaceSubrange(4..<8, with: Samples.le32(long.count))
        assertProblem(.webp, long, contains: "the RIFF size does not match the file")
        var overrun = Samples.webpLossless(width: 4, height: 4)
        overrun.replaceSubrange(16..<20, with: Samples.le32(100))
        assertProblem(.webp, overrun, contains: "chunk VP8L runs past the RIFF size")
        assertProblem(.webp, Samples.ascii("RIFF") + Samples.le32(4) + Samples.ascii("WAVE"), contains: "no RIFF/WEBP header")
    }

    func testOtherFormatsAreNotWalked() {
        XCTAssertNil(problem(.mp4, html))
        XCTAssertNil(problem(.mp3, []))
    }
}
