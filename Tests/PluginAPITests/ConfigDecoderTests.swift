import Foundation
import PluginAPI
import XCTest

/// ConfigDecoder on hand-built node trees (the engine's YAML reader is not involved): unknown keys, wrong types,
/// every integer width, nulls, duplicates, and the list of every problem at once.
final class ConfigDecoderTests: XCTestCase {
    // Node builders: a scalar on `line`, a mapping whose keys sit on the lines given.
    func s(_ text: String, _ line: Int, quoted: Bool = false) -> ConfigNode { ConfigNode(.scalar(text, quoted: quoted), line: line, column: 3) }
    func map(_ pairs: [(String, ConfigNode)], _ line: Int = 1) -> ConfigNode {
        ConfigNode(.mapping(pairs.map { (key: $0.0, value: $0.1) }), line: line, column: 1)
    }
    func list(_ items: [ConfigNode], _ line: Int) -> ConfigNode { ConfigNode(.sequence(items), line: line, column: 3) }

    func firstError<T: Decodable>(_ type: T.Type, _ node: ConfigNode, file: StaticString = #filePath, line: UInt = #line) -> ConfigError? {
        do {
            _ = try ConfigDecoder.decode(type, from: node)
            XCTFail("expected a ConfigError", file: file, line: line)
        } catch let error as ConfigError {
            return error
        } catch {
            XCTFail("not a ConfigError: \(error)", file: file, line: line)
        }
        return nil
    }

    struct Server: Decodable, Equatable {
        var host: String
        var port: Int
        var tls: Bool?
        var ratio: Double?
        var tags: [String]?
    }

    func testAValidSectionDecodes() throws {
        let node = map([
            ("host", s("example.org", 2)), ("port", s("8_080", 3)), ("tls", s("on", 4)), ("ratio", s("0.25", 5)),
            ("tags", list([s("a", 6), s("b", 7)], 6)),
        ])
        let server = try ConfigDecoder.decode(Server.self, from: node)
        XCTAssertEqual(server, Server(host: "example.org", port: 8080, tls: true, ratio: 0.25, tags: ["a", "b"]))
    }

    func testUnknownKeyNamesItsLineAndTheKnownKeys() {
        let node = map([("host", s("h", 2)), ("prot", s("1", 3)), ("port", s("1", 4))])
        let error = firstError(Server.self, node)
        XCTAssertEqual(error?.line, 3)
        XCTAssertEqual(error?.path, "prot")
        XCTAssertTrue(error?.message.contains("unknown key 'prot'") == true, "\(String(describing: error))")
        XCTAssertTrue(error?.message.contains("known keys here: host, port, ratio, tags, tls") == true, "\(String(describing: error))")
        XCTAssertEqual(error?.description, "line 3, key 'prot': \(error?.message ?? "")")
    }

    func testUnknownKeyInANestedMappingHasItsDottedPath() {
        struct Outer: Decodable { var server: Server }
        let node = map([("server", map([("host", s("h", 3)), ("port", s("1", 4)), ("colour", s("red", 5))], 2))])
        let error = firstError(Outer.self, node)
        XCTAssertEqual(error?.path, "server.colour")
        XCTAssertEqual(error?.line, 5)
    }

    func testWrongTypesNameTheKeyAndLine() {
        var error = firstError(Server.self, map([("host", list([s("a", 2)], 2)), ("port", s("1", 3))]))
        XCTAssertEqual(error?.line, 2)
        XCTAssertEqual(error?.path, "host")
        XCTAssertEqual(error?.message, "expected a string, found a list")

        error = firstError(Server.self, map([("host", s("h", 2)), ("port", s("eighty", 7))]))
        XCTAssertEqual(error?.line, 7)
        XCTAssertEqual(error?.message, "expected a whole number, found 'eighty'")

        error = firstError(Server.self, map([("host", s("h", 2)), ("port", s("1.5", 3))]))
        XCTAssertEqual(error?.message, "expected a whole number, found '1.5'")

        error = firstError(Server.self, map([("host", s("h", 2)), ("port", s("1", 3)), ("tls", s("maybe", 9))]))
        XCTAssertEqual(error?.line, 9)
        XCTAssertEqual(error?.message, "expected true or false, found 'maybe'")

        for bad in ["inf", "nan", "1e400", "x"] {
            error = firstError(Server.self, map([("host", s("h", 2)), ("port", s("1", 3)), ("ratio", s(bad, 4))]))
            XCTAssertEqual(error?.message, "expected a finite number, found '\(bad)'")
        }

        error = firstError(Server.self, map([("host", s("h", 2)), ("port", map([("a", s("1", 4))], 3))]))
        XCTAssertEqual(error?.message, "expected a whole number, found a mapping")

        error = firstError(Server.self, map([("host", s("h", 2)), ("port", s("1", 3)), ("tags", s("a", 5))]))
        XCTAssertEqual(error?.line, 5)
        XCTAssertEqual(error?.message, "expected a list, found a scalar")

        error = firstError(Server.self, s("just text", 1))
        XCTAssertEqual(error?.message, "expected a mapping, found a scalar")
    }

    func testMissingRequiredKeyIsNamedAtItsParent() {
        let error = firstError(Server.self, map([("host", s("h", 2))], 1))
        XCTAssertEqual(error?.path, "port")
        XCTAssertEqual(error?.line, 1)
        XCTAssertEqual(error?.message, "missing required key 'port'")
    }

    func testDuplicateKeysAreRefused() {
        let error = firstError(Server.self, map([("host", s("a", 2)), ("port", s("1", 3)), ("host", s("b", 4))]))
        XCTAssertEqual(error?.line, 4)
        XCTAssertEqual(error?.message, "duplicate key 'host'")
    }

    func testNullsAreAbsentForOptionalsAndRefusedForStrings() throws {
        let node = map([("host", s("h", 2)), ("port", s("1", 3)), ("tls", s("~", 4)), ("ratio", s("null", 5)), ("tags", s("", 6))])
        let server = try ConfigDecoder.decode(Server.self, from: node)
        XCTAssertNil(server.tls)
        XCTAssertNil(server.ratio)
        XCTAssertNil(server.tags)
        // A quoted "null" is a string, not null.
        XCTAssertFalse(s("null", 1, quoted: true).isNull)
        XCTAssertEqual(try ConfigDecoder.decode(Server.self, from: map([("host", s("null", 2, quoted: true)), ("port", s("1", 3))])).host, "null")
        let error = firstError(Server.self, map([("host", s("~", 2)), ("port", s("1", 3))]))
        XCTAssertEqual(error?.message, "expected a string, found null")
        // An empty section (null) is an empty mapping: a type whose keys are all optional decodes.
        struct AllOptional: Decodable { var a: Int? }
        XCTAssertNil(try ConfigDecoder.decode(AllOptional.self, from: s("", 1)).a)
    }

    /// Every width, signed or not, required, optional and in lists: the bounds decode, one past them is "out of range".
    func testEveryIntegerWidthAtItsBounds() throws {
        struct Widths: Decodable {
            var i8: Int8, i16: Int16, i32: Int32, i64: Int64, i: Int
            var u8: UInt8, u16: UInt16, u32: UInt32, u64: UInt64, u: UInt
            var o8: Int8?, ou16: UInt16?, ou64: UInt64?
            var l8: [UInt8]
        }
        let good: [(String, String)] = [
            ("i8", "-128"), ("i16", "32767"), ("i32", "-2147483648"), ("i64", "9223372036854775807"), ("i", "-9223372036854775808"),
            ("u8", "255"), ("u16", "65535"), ("u32", "4294967295"), ("u64", "18446744073709551615"), ("u", "0"),
            ("o8", "127"), ("ou16", "0"), ("ou64", "1_000_000"),
        ]
        func node(_ pairs: [(String, String)], list items: [String] = ["0", "255"]) -> ConfigNode {
            map(
                pairs.enumerated().map { ($0.element.0, s($0.element.1, $0.offset + 2)) }
                    + [("l8", list(items.map { s($0, 40) }, 40))])
        }
        let widths = try ConfigDecoder.decode(Widths.self, from: node(good))
        XCTAssertEqual(widths.i8, .min)
        XCTAssertEqual(widths.i16, .max)
        XCTAssertEqual(widths.i32, .min)
        XCTAssertEqual(widths.i64, .max)
        XCTAssertEqual(widths.i, .min)
        XCTAssertEqual(widths.u8, .max)
        XCTAssertEqual(widths.u16, .max)
        XCTAssertEqual(widths.u32, .max)
        XCTAssertEqual(widths.u64, .max)
        XCTAssertEqual(widths.u, 0)
        XCTAssertEqual(widths.o8, 127)
        XCTAssertEqual(widths.ou16, 0)
        XCTAssertEqual(widths.ou64, 1_000_000)
        XCTAssertEqual(widths.l8, [0, 255])

        let pastTheEnd: [(String, String, String)] = [
            ("i8", "128", "(-128...127)"), ("i16", "-32769", "(-32768...32767)"), ("i32", "2147483648", "(-2147483648...2147483647)"),
            ("u8", "256", "(0...255)"), ("u16", "65536", "(0...65535)"), ("u32", "-1", "(0...4294967295)"), ("u", "-1", "(0...18446744073709551615)"),
            ("o8", "-129", "(-128...127)"), ("ou16", "70000", "(0...65535)"),
        ]
        for (key, value, range) in pastTheEnd {
            let pairs = good.map { $0.0 == key ? (key, value) : $0 }
            let index = pairs.firstIndex { $0.0 == key }!
            let error = firstError(Widths.self, node(pairs))
            XCTAssertEqual(error?.path, key)
            XCTAssertEqual(error?.line, index + 2, key)
            XCTAssertEqual(error?.message, "'\(value)' is out of range \(range)", key)
        }
        // Past 64 bits the text is no number this decoder knows.
        let huge = firstError(Widths.self, node(good.map { $0.0 == "u64" ? ("u64", "18446744073709551616") : $0 }))
        XCTAssertEqual(huge?.message, "expected a whole number, found '18446744073709551616'")
        // In a list, the element's path and line.
        let inList = firstError(Widths.self, node(good, list: ["1", "300"]))
        XCTAssertEqual(inList?.path, "l8[1]")
        XCTAssertEqual(inList?.line, 40)
    }

    func testARawNodePropertyKeepsThePluginSectionForLater() throws {
        struct Entry: Decodable {
            var name: String
            var config: ConfigNode?
        }
        let entry = try ConfigDecoder.decode(Entry.self, from: map([("name", s("tts", 2)), ("config", map([("anything", s("goes", 4))], 3))]))
        XCTAssertEqual(entry.config?.line, 3)
        XCTAssertEqual(entry.config?["anything"]?.line, 4)
        // The section's own keys are not checked by the outer decode; its own decode checks them, and the error
        // is put under the outer path with prefixed().
        struct Section: Decodable { var other: Int? }
        let node = try XCTUnwrap(entry.config)
        XCTAssertThrowsError(try ConfigDecoder.decode(Section.self, from: node)) { error in
            let problem = (error as? ConfigError)?.prefixed("plugins[1].config")
            XCTAssertEqual(problem?.path, "plugins[1].config.anything")
            XCTAssertEqual(problem?.line, 4)
        }
        XCTAssertEqual(ConfigError(path: "[2]", line: 0, column: 0, message: "m").prefixed("list").path, "list[2]")
        XCTAssertEqual(ConfigError(path: "", line: 0, column: 0, message: "m").prefixed("root").path, "root")
        XCTAssertEqual(ConfigError(path: "", line: 0, column: 0, message: "bad").description, "(no line): bad")
        // Decoding a ConfigNode with another decoder is refused rather than guessed.
        XCTAssertThrowsError(try JSONDecoder().decode(ConfigNode.self, from: Data("{}".utf8)))
    }

    func testReportingAllListsEveryProblemInFileOrder() {
        struct Section: Decodable {
            var name: String
            var size: Int?
            var flag: Bool?
        }
        let node = map([("name", s("n", 2)), ("flag", s("perhaps", 3)), ("size", s("big", 4)), ("extra", s("1", 5))])
        XCTAssertThrowsError(try ConfigDecoder.decodeReportingAll(Section.self, from: node)) { error in
            guard let list = error as? ConfigErrorList else { return XCTFail("not a list: \(error)") }
            XCTAssertEqual(list.errors.map(\.line), [3, 4, 5])
            XCTAssertEqual(list.errors.map(\.path), ["flag", "size", "extra"])
        }
        // decode() throws the first of them.
        XCTAssertEqual(firstError(Section.self, node)?.line, 3)
    }

    func testDecodingErrorsFromCustomInitialisersAreLocated() {
        struct Checked: Decodable {
            var port: Int
            enum CodingKeys: String, CodingKey { case port }
            init(from decoder: any Decoder) throws {
                let c = try decoder.container(keyedBy: CodingKeys.self)
                port = try c.decode(Int.self, forKey: .port)
                guard port > 0 else { throw DecodingError.dataCorruptedError(forKey: .port, in: c, debugDescription: "must be positive") }
            }
        }
        let error = firstError(Checked.self, map([("port", s("0", 6))]))
        XCTAssertEqual(error?.line, 6)
        XCTAssertEqual(error?.path, "port")
        XCTAssertEqual(error?.message, "must be positive")
    }

    /// Sizes: only keys named `*_bytes` take units, and the value must fit the property's width.
    func testSizesTakeUnitsOnlyInBytesKeys() throws {
        XCTAssertEqual(ConfigDecoder.byteCount("25MiB"), 26_214_400)
        XCTAssertEqual(ConfigDecoder.byteCount(" 2 k "), 2048)
        XCTAssertEqual(ConfigDecoder.byteCount("3KB"), 3000)
        XCTAssertEqual(ConfigDecoder.byteCount("0.5KiB"), 512)
        XCTAssertEqual(ConfigDecoder.byteCount("9223372036854775807"), Int.max)
        for bad in ["", "MiB", "-5", "5 XB", "1.5", "1e3", "1..2MB", "9223372036854775808", "10000000TB"] {
            XCTAssertNil(ConfigDecoder.byteCount(bad), bad)
        }
        struct Limits: Decodable {
            var quotaBytes: Int
            var smallBytes: UInt16?
            var count: Int?
        }
        let limits = try ConfigDecoder.decode(Limits.self, from: map([("quota_bytes", s("1.5 GB", 2)), ("small_bytes", s("2KiB", 3))]))
        XCTAssertEqual(limits.quotaBytes, 1_500_000_000)
        XCTAssertEqual(limits.smallBytes, 2048)
        var error = firstError(Limits.self, map([("quota_bytes", s("1", 2)), ("count", s("2KiB", 3))]))
        XCTAssertEqual(error?.path, "count")
        XCTAssertEqual(error?.message, "expected a whole number, found '2KiB'")
        error = firstError(Limits.self, map([("quota_bytes", s("1", 2)), ("small_bytes", s("1MiB", 4))]))
        XCTAssertEqual(error?.path, "small_bytes")
        XCTAssertEqual(error?.line, 4)
    }
}
