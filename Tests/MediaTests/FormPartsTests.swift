@testable import Media
import PluginAPI
import TestSupport
import XCTest

/// Content-Disposition parsing, file-name sanitising, the multipart guard, sizes and the plugin's configuration section.
final class FormPartsTests: XCTestCase {
    func testContentDisposition() {
        let plain = ContentDisposition(#"form-data; name="file"; filename="a b.png""#)
        XCTAssertEqual(plain.type, "form-data")
        XCTAssertEqual(plain.parameters["name"], "file")
        XCTAssertEqual(plain.fileName, "a b.png")

        let escaped = ContentDisposition(#"Form-Data;NAME=file ; filename="say \"hi\" \\o/.png""#)
        XCTAssertEqual(escaped.type, "form-data")
        XCTAssertEqual(escaped.parameters["name"], "file")
        XCTAssertEqual(escaped.fileName, #"say "hi" \o/.png"#)

        // Windows paths arrive with literal backslashes.
        XCTAssertEqual(ContentDisposition(#"form-data; name="file"; filename="C:\Users\me\cat.png""#).fileName, #"C:\Users\me\cat.png"#)
        // filename* wins when it decodes; an unknown charset falls back to filename.
        XCTAssertEqual(ContentDisposition(#"form-data; name="file"; filename="euro.png"; filename*=UTF-8''%E2%82%AC.png"#).fileName, "€.png")
        XCTAssertEqual(ContentDisposition(#"form-data; filename="latin.png"; filename*=ISO-8859-1''%E9.png"#).fileName, "latin.png")
        XCTAssertEqual(ContentDisposition(#"form-data; filename*=UTF-8''%ZZ"#).fileName, nil)
        // The first of repeated parameters counts; broken ones are skipped.
        let messy = ContentDisposition(#"form-data; name="first"; name="second"; junk; ="x"; size=12"#)
        XCTAssertEqual(messy.parameters["name"], "first")
        XCTAssertEqual(messy.parameters["size"], "12")
        XCTAssertNil(messy.parameters["junk"])
        XCTAssertNil(messy.fileName)
        // An unterminated quote takes the rest.
        XCTAssertEqual(ContentDisposition(#"form-data; name="fi"#).parameters["name"], "fi")
    }

    func testOriginalNamesAreMadeSafe() {
        let cases: [(String?, String?)] = [
            (nil, nil),
            ("cat.png", "cat.png"),
            ("../../etc/passwd", "passwd"),
            (#"C:\Users\me\cat.png"#, "cat.png"),
            ("dir/", "dir"),
            ("  my \t\n  cat  .png ", "my cat .png"),
            ("...hidden.png", "hidden.png"),
            (". .x", "x"),
            ("evil\u{202E}gnp.exe", "evilgnp.exe"),
            ("a\u{0}b\u{7}c\u{2028}d.png", "abcd.png"),
            ("\u{E000}.png", "png"),
            ("", nil),
            ("/", nil),
            ("...", nil),
            ("\u{200B}", nil),
            ("猫の写真.jpg", "猫の写真.jpg"),
        ]
        for (raw, expected) in cases {
            XCTAssertEqual(OriginalName.sanitize(raw, maxLength: 120), expected, raw ?? "nil")
        }
        // Long names are shortened to maxLength characters, keeping a short extension.
        let long = String(repeating: "a", count: 200) + ".jpeg"
        XCTAssertEqual(OriginalName.sanitize(long, maxLength: 20), String(repeating: "a", count: 15) + ".jpeg")
        XCTAssertEqual(OriginalName.sanitize(String(repeating: "é", count: 30), maxLength: 10), String(repeating: "é", count: 10))
        XCTAssertEqual(OriginalName.sanitize("name.averyveryverylongextension", maxLength: 10), "name.avery")
        XCTAssertEqual(OriginalName.sanitize("abc def.png", maxLength: 8), "abc.png")  // no space left before the dot
    }

    // MARK: the multipart guard

    let boundary = "XyZ123"

    func body(headerName: String = "Content-Disposition") -> [UInt8] {
        Array("preamble\r\n--\(boundary)\r\n\(headerName): form-data; name=\"file\"\r\n\r\nabc\r\n--\(boundary)--\r\nepilogue".utf8)
    }

    func testTheGuardAdmitsWellFormedBodiesInAnyChunking() {
        for size in [1, 2, 5, 1000] {
            var guardState = MultipartGuard(boundary: boundary)
            var start = body().startIndex
            while start < body().endIndex {
                let end = min(start + size, body().endIndex)
                XCTAssertTrue(guardState.admits(body()[start..<end]), "chunk size \(size) at \(start)")
                start = end
            }
        }
        // A partial delimiter in the preamble and in a part's content is fine.
        var guardState = MultipartGuard(boundary: boundary)
        XCTAssertTrue(guardState.admits(Array("\r\n--XyZ\r\n--\(boundary)\r\nA: b\r\n\r\n\r\n--XyZ12\r\r\n--\(boundary)--".utf8)))
        // After the closing delimiter anything goes (the parser ignores the epilogue).
        XCTAssertTrue(guardState.admits([0xFF, 0x80, 0x00]))
    }

    func testTheGuardRefusesWhatWouldTrapOrConfuseTheParser() {
        func refused(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) {
            var guardState = MultipartGuard(boundary: boundary)
            XCTAssertFalse(guardState.admits(bytes), String(decoding: bytes, as: UTF8.self), file: file, line: line)
        }
        // A header-name byte of 0x80 or more (MultipartKit 4.7.1 would index past its table and trap).
        refused(Array("--\(boundary)\r\nContent-".utf8) + [0xC3, 0xA9] + Array(": x\r\n".utf8))
        refused(Array("--\(boundary)\r\n".utf8) + [0x80])
        // Other non-token bytes in a name, an empty name, a missing LF.
        refused(Array("--\(boundary)\r\nBad Name: x\r\n".utf8))
        refused(Array("--\(boundary)\r\n: x\r\n".utf8))
        refused(Array("--\(boundary)\rX".utf8))
        refused(Array("--\(boundary)\r\nA: b\rX".utf8))
        refused(Array("--\(boundary)\r\nA: b\r\n\rX".utf8))
        refused(Array("--\(boundary)X".utf8))
        refused(Array("--\(boundary)\r\nA: b\r\n\r\nbody\r\n--\(boundary)X".utf8))
        // A refusal in a later chunk, after admitted ones.
        var guardState = MultipartGuard(boundary: boundary)
        XCTAssertTrue(guardState.admits(Array("--\(boundary)\r\nName".utf8)))
        XCTAssertFalse(guardState.admits([0xFE]))
    }

    // MARK: configuration

    /// Sizes as the section's `*_bytes` keys take them: bytes, or a number with a unit (nil: refused at the key's line).
    func testSizes() {
        let cases: [(String, Int?)] = [
            ("1048576", 1_048_576), ("26_214_400", 26_214_400), ("25MiB", 26_214_400), ("25 MiB", 26_214_400), ("25mib", 26_214_400),
            ("500 MB", 500_000_000), ("1.5GB", 1_500_000_000), ("1GiB", 1 << 30), ("2k", 2048), ("3KB", 3000), ("1 TiB", 1 << 40),
            ("12b", 12), ("0.5KiB", 512), ("9223372036854775807", Int.max), ("9000000TB", 9_000_000_000_000_000_000),
            ("0", nil), ("-5", nil), ("MiB", nil), ("5 XB", nil), ("1.5", nil), ("1.5b", nil), ("1e3", nil), ("٣MB", nil),
            ("9223372036854775808", nil), ("10000000TB", nil), ("1..2MB", nil), ("0MiB", nil),
        ]
        for (text, expected) in cases {
            let decoded = Result { try ConfigDecoder.decode(MediaConfiguration.self, from: configNode([("max_video_bytes", text)])) }
            switch (decoded, expected) {
            case (.success(let configuration), let bytes?):
                XCTAssertEqual(configuration.maxVideoBytes, bytes, text)
            case (.failure(let error as ConfigError), nil):
                XCTAssertEqual(error.path, "max_video_bytes", text)
                XCTAssertEqual(error.line, 2, text)
            default:
                XCTFail("'\(text)': \(decoded)")
            }
        }
    }

    func testTheConfigurationSection() throws {
        let defaults = try ConfigDecoder.decode(MediaConfiguration.self, from: ConfigNode(.scalar("", quoted: false), line: 1, column: 1))
        XCTAssertEqual(defaults.maxImageBytes, 25 << 20)
        XCTAssertEqual(defaults.accelRedirectPrefix, "")
        let set = try ConfigDecoder.decode(
            MediaConfiguration.self,
            from: configNode([
                ("max_image_bytes", "10MiB"), ("max_video_bytes", "2GB"), ("quota_bytes", "1TiB"), ("max_name_length", "64"),
                ("accel_redirect_prefix", "/_media/"), ("cache_max_age_seconds", "0"),
            ]))
        XCTAssertEqual(set.maxImageBytes, 10 << 20)
        XCTAssertEqual(set.maxVideoBytes, 2_000_000_000)
        XCTAssertEqual(set.quotaBytes, 1 << 40)
        XCTAssertEqual(set.maxNameLength, 64)
        XCTAssertEqual(set.accelRedirectPrefix, "/_media/")
        XCTAssertEqual(set.largestFile, 2_000_000_000)
        XCTAssertEqual(set.limit(for: .audio), 100 << 20)

        func refused(_ key: String, _ value: String, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(
                try ConfigDecoder.decode(MediaConfiguration.self, from: configNode([("quota_bytes", "1GiB"), (key, value)])),
                file: file, line: line
            ) { error in
                let error = error as? ConfigError
                XCTAssertEqual(error?.path, key, file: file, line: line)
                XCTAssertEqual(error?.line, 3, file: file, line: line)
                XCTAssertTrue(error?.message.contains(message) == true, "\(String(describing: error))", file: file, line: line)
            }
        }
        refused("max_image_bytes", "0", "must be larger than 0")
        refused("max_image_bytes", "lots", "expected a size such as 26214400, 25MiB or 1GB, found 'lots'")
        refused("max_form_bytes", "12 XB", "expected a size such as 26214400, 25MiB or 1GB, found '12 XB'")
        refused("max_name_length", "0", "must be between 1 and 1024")
        refused("cache_max_age_seconds", "-1", "must not be negative")
        refused("accel_redirect_prefix", "/media", "must be a path that starts and ends with '/'")
        refused("accel_redirect_prefix", "/../", "must be a path")
        refused("accel_redirect_prefix", "/a b/", "must be a path")
        refused("max_imge_bytes", "1", "unknown key 'max_imge_bytes'")
    }
}
