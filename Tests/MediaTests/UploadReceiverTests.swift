import Engine
import Foundation
@testable import Media
@_spi(Engine) import PluginAPI
import Synchronization
import XCTest

struct SilentLogger: PluginLogger {
    func log(_ level: LogLevel, _ message: String, metadata: [String: String]) {}
}

/// A body that hands out fixed chunks, as a slow client sends them.
final class Chunks: Sendable {
    private let remaining: Mutex<[[UInt8]]>
    init(_ bytes: [UInt8], size: Int) {
        remaining = Mutex(stride(from: 0, to: bytes.count, by: size).map { Array(bytes[$0..<min($0 + size, bytes.count)]) })
    }
    func next() -> [UInt8]? { remaining.withLock { $0.isEmpty ? nil : $0.removeFirst() } }
}

/// The multipart receiver on hand-made bodies: the file part streamed to disk, hashed and sniffed, and every refusal.
final class UploadReceiverTests: XCTestCase {
    let boundary = "----TestBoundary7MA4YWxk"
    let crypto = OpenSSLCrypto()
    var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("media-tests-\(UUID().uuidString)")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    func library(quota: Int = 1 << 30) throws -> MediaLibrary {
        try MediaLibrary(
            directory: folder.appendingPathComponent("media"), metadataFile: folder.appendingPathComponent("media.json"),
            quotaBytes: quota, crypto: crypto, logger: SilentLogger())
    }

    enum Part {
        case file(name: String = "file", filename: String? = "../../cat.png", content: [UInt8])
        case field(String, String)
    }

    func multipart(_ parts: [Part], close: Bool = true) -> [UInt8] {
        var out = Array("this preamble is ignored\r\n".utf8)
        for part in parts {
            out += Array("--\(boundary)\r\n".utf8)
            switch part {
            case .file(let name, let filename, let content):
                let fileParameter = filename.map { "; filename=\"\($0)\"" } ?? ""
                out += Array("Content-Disposition: form-data; name=\"\(name)\"\(fileParameter)\r\nContent-Type: image/png\r\n\r\n".utf8)
                out += content
            case .field(let name, let value):
                out += Array("content-disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)".utf8)
            }
            out += Array("\r\n".utf8)
        }
        if close { out += Array("--\(boundary)--\r\n".utf8) }
        return out
    }

    func receive(
        _ body: [UInt8], chunk: Int = 1 << 16, declareLength: Bool = true, configuration: MediaConfiguration = MediaConfiguration(),
        library: MediaLibrary? = nil
    ) async throws -> (Result<ReceivedUpload, UploadFailure>, UploadReceiver, MediaLibrary) {
        let library = try library ?? self.library()
        let receiver = UploadReceiver(
            configuration: configuration, library: library,
            temporaryPath: folder.appendingPathComponent("media/upload.tmp").path)
        let chunks = Chunks(body, size: chunk)
        let request = RequestBody(contentLength: declareLength ? body.count : nil, next: { chunks.next() })
        do {
            return (.success(try await receiver.receive(request, boundary: boundary)), receiver, library)
        } catch let failure as UploadFailure {
            return (.failure(failure), receiver, library)
        }
    }

    /// A PNG whose IDAT holds most of the delimiter, CRs and LFs: content the fast path must not mistake for the end.
    var png: [UInt8] {
        Samples.png(width: 8, height: 8, idat: Array("\r\n--\(boundary.dropLast())\r\r\n\n--\r\n-".utf8) + (0..<3000).map { UInt8($0 % 251) })
    }

    func testAFileIsStreamedHashedAndSniffedWhateverTheChunking() async throws {
        let png = self.png
        let expectedHash = Hex.encode(crypto.sha256(png))
        for (chunk, declared) in [(1 << 16, true), (7, false), (1, true), (boundary.count + 4, true), (500, false)] {
            let body = multipart([.field("title", "hello"), .file(content: png), .field("after", "x")])
            let (result, receiver, library) = try await receive(body, chunk: chunk, declareLength: declared)
            let upload = try result.get()
            XCTAssertEqual(upload.size, png.count, "chunk \(chunk)")
            XCTAssertEqual(upload.format, .png)
            XCTAssertEqual(upload.sha256, expectedHash, "chunk \(chunk)")
            XCTAssertEqual(upload.head, png)
            XCTAssertEqual(upload.clientFileName, "../../cat.png")
            XCTAssertEqual(FileManager.default.contents(atPath: upload.temporaryPath).map(Array.init), png, "chunk \(chunk)")
            XCTAssertEqual(library.usage.reserved, png.count)  // exactly the file, the excess given back
            receiver.discard()
            XCTAssertEqual(library.usage.reserved, 0)
            XCTAssertFalse(FileManager.default.fileExists(atPath: upload.temporaryPath))
        }
    }

    func failure(
        _ body: [UInt8], chunk: Int = 1 << 16, configuration: MediaConfiguration = MediaConfiguration(), quota: Int = 1 << 30,
        file: StaticString = #filePath, line: UInt = #line
    ) async throws -> UploadFailure? {
        let (result, receiver, library) = try await receive(body, chunk: chunk, configuration: configuration, library: try self.library(quota: quota))
        receiver.discard()
        XCTAssertEqual(library.usage.reserved, 0, "reservation left after discard", file: file, line: line)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.appendingPathComponent("media/upload.tmp").path), file: file, line: line)
        switch result {
        case .success:
            XCTFail("expected a refusal", file: file, line: line)
            return nil
        case .failure(let failure): return failure
        }
    }

    func testRefusals() async throws {
        var refused = try await failure(multipart([.field("title", "no file here")]))
        XCTAssertEqual(refused?.error.code, "invalid_field")
        XCTAssertEqual(refused?.error.details["field"], .string("file"))

        refused = try await failure(multipart([.file(content: png), .file(content: png)]))
        XCTAssertEqual(refused?.error.code, "invalid_field")
        XCTAssertTrue(refused?.error.message.contains("one file per upload") == true)

        refused = try await failure(multipart([.file(content: [])]))
        XCTAssertEqual(refused?.error.message, "file: is empty")

        refused = try await failure(Array("no multipart at all".utf8))
        XCTAssertEqual(refused?.error.code, "invalid_multipart")
        XCTAssertEqual(refused?.reason, .badRequest)

        refused = try await failure(multipart([.file(content: Array("<!doctype html><script>x</script>".utf8))]))
        XCTAssertEqual(refused?.error.status, 415)
        XCTAssertEqual(refused?.error.details["detected"], .string("text/html"))
        XCTAssertEqual(refused?.reason, .unsupportedType)

        refused = try await failure(multipart([.file(content: Samples.png() + Array("<html></html>".utf8))]))
        XCTAssertEqual(refused?.error.code, "invalid_image")

        refused = try await failure(Array(multipart([.file(content: png)], close: false).dropLast(2)))
        XCTAssertEqual(refused?.error.code, "upload_incomplete")
        XCTAssertEqual(refused?.reason, .interrupted)
    }

    /// A header-name byte of 0x80 would trap MultipartKit; the guard answers 400 first, in any chunking.
    func testANonASCIIHeaderNameIsABadRequestNotACrash() async throws {
        let body =
            Array("--\(boundary)\r\nContent-Disposition: form-data; name=\"file\"\r\nX-".utf8) + [0xC3, 0xA9]
            + Array(": 1\r\n\r\nabc\r\n--\(boundary)--\r\n".utf8)
        for chunk in [1, 3, 1 << 16] {
            let refused = try await failure(body, chunk: chunk)
            XCTAssertEqual(refused?.error.code, "invalid_multipart", "chunk \(chunk)")
        }
    }

    func testLimits() async throws {
        var small = MediaConfiguration()
        small.maxImageBytes = 1000
        var refused = try await failure(multipart([.file(content: png)]), configuration: small)
        XCTAssertEqual(refused?.error.status, 413)
        XCTAssertEqual(refused?.error.details["limit_key"], .string("max_image_bytes"))
        XCTAssertEqual(refused?.reason, .tooLarge)

        refused = try await failure(multipart([.file(content: png)]), chunk: 64, quota: 2000)
        XCTAssertEqual(refused?.error.status, 413)
        XCTAssertEqual(refused?.error.details["limit_key"], .string("quota_bytes"))
        XCTAssertEqual(refused?.reason, .quota)

        var tightForm = MediaConfiguration()
        tightForm.maxFormBytes = 1024
        refused = try await failure(
            multipart([.field("comment", String(repeating: "x", count: 4000)), .file(content: png)]), chunk: 512,
            configuration: tightForm)
        XCTAssertEqual(refused?.error.details["limit_key"], .string("max_form_bytes"))
        // The file itself does not count against max_form_bytes.
        let (result, receiver, _) = try await receive(multipart([.file(content: png)]), chunk: 512, configuration: tightForm)
        XCTAssertEqual(try result.get().size, png.count)
        receiver.discard()
    }

    func testTheDelimiterScan() {
        let delimiter = Array("\r\n--B1".utf8)
        XCTAssertEqual(UploadReceiver.scan(Array("abc".utf8), for: delimiter), .clear(certainBody: 3))
        XCTAssertEqual(UploadReceiver.scan(Array("ab\r\n--B1cd".utf8), for: delimiter), .delimiter)
        XCTAssertEqual(UploadReceiver.scan(Array("ab\r\n--B".utf8), for: delimiter), .clear(certainBody: 2))
        XCTAssertEqual(UploadReceiver.scan(Array("ab\r\n--X\r".utf8), for: delimiter), .clear(certainBody: 7))
        XCTAssertEqual(UploadReceiver.scan(Array("\r\r\n--B1".utf8), for: delimiter), .delimiter)
        XCTAssertEqual(UploadReceiver.scan([], for: delimiter), .clear(certainBody: 0))
    }
}
