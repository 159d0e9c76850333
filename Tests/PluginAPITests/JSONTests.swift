import Foundation
import PluginAPI
import XCTest

/// JSONValue round trips, the nesting limit, the one-line decoding messages, and PluginError's rendering.
final class JSONTests: XCTestCase {
    func decode(_ text: String) throws -> JSONValue { try JSON.decode(JSONValue.self, from: Array(text.utf8)) }
    func text(_ value: JSONValue) -> String { String(decoding: value.encoded(), as: UTF8.self) }

    func testValuesRoundTrip() throws {
        let source = #"{"a": [1, 2.5, -3, true, false, null, "x\"y"], "b": {"c": {}}, "d": [], "e": "\u00e9/"}"#
        let value = try decode(source)
        XCTAssertEqual(value["a"], .array([.number(1), .number(2.5), .number(-3), .bool(true), .bool(false), .null, .string("x\"y")]))
        XCTAssertEqual(value["b"]?["c"], .object([:]))
        XCTAssertEqual(value["e"]?.stringValue, "é/")
        XCTAssertEqual(try decode(text(value)), value)
        // Whole numbers are written without a fraction, others as they are; slashes are not escaped.
        XCTAssertEqual(text(.array([.number(3), .number(-0.5), .number(-0.0)])), "[3,-0.5,0]")
        XCTAssertEqual(text(.string("a/b")), #""a/b""#)
        // A value JSON cannot hold becomes null rather than a broken body.
        XCTAssertEqual(text(.number(.nan)), "null")
        XCTAssertEqual(text(.array([.number(.infinity)])), "null")
    }

    func testAccessorsAnswerOnlyForTheirKind() {
        XCTAssertEqual(JSONValue.number(2).doubleValue, 2)
        XCTAssertNil(JSONValue.string("2").doubleValue)
        XCTAssertEqual(JSONValue.bool(true).boolValue, true)
        XCTAssertNil(JSONValue.number(1).boolValue)
        XCTAssertNil(JSONValue.array([]).stringValue)
        XCTAssertNil(JSONValue.array([.number(1)])["0"])
    }

    func testNestingDeeperThanTheLimitIsRefusedBeforeDecoding() throws {
        func nested(_ depth: Int) -> String { String(repeating: "[", count: depth) + String(repeating: "]", count: depth) }
        XCTAssertEqual(JSON.maxDepth, 64)
        XCTAssertNoThrow(try decode(nested(JSON.maxDepth)))
        XCTAssertThrowsError(try decode(nested(JSON.maxDepth + 1))) { error in
            let error = error as? PluginError
            XCTAssertEqual(error?.status, 400)
            XCTAssertEqual(error?.code, "invalid_json")
            XCTAssertEqual(error?.message, "arrays and objects nest deeper than 64 levels")
        }
        // A 100 KB body nested all the way is refused at once, not after seconds of decoding.
        let start = ContinuousClock.now
        XCTAssertThrowsError(try decode(nested(50_000)))
        XCTAssertLessThan(ContinuousClock.now - start, .seconds(1))
        // Brackets inside strings (escaped quotes included) do not count.
        XCTAssertEqual(JSON.nestingDepth(Array(#"{"a": "[[[[\"[[[[", "b": [{}]}"#.utf8)), 3)
        XCTAssertEqual(JSON.nestingDepth(Array("[[[[[".utf8), limit: 2), 3)
    }

    struct Body: Decodable {
        struct Inner: Decodable { var n: Int }
        var name: String
        var inner: Inner?
        var list: [Int]?
    }

    func testDecodingMessagesNameTheField() {
        func message(_ text: String) -> String? {
            do {
                _ = try JSON.decode(Body.self, from: Array(text.utf8))
            } catch {
                guard let error = error as? PluginError else { return "not a PluginError: \(error)" }
                XCTAssertEqual(error.code, "invalid_json")
                return error.message
            }
            return nil
        }
        XCTAssertEqual(message("{}"), "missing field 'name'")
        XCTAssertEqual(message(#"{"name": "a", "inner": {}}"#), "missing field 'inner.n'")
        XCTAssertEqual(message(#"{"name": 5}"#), "field 'name' has the wrong type (expected String)")
        XCTAssertEqual(message(#"{"name": null}"#), "field 'name' is null (expected String)")
        // An element of a list is named by its index (today as `list.[1]`; ConfigError writes `list[1]`).
        let element = message(#"{"name": "a", "list": [1, "x"]}"#) ?? ""
        XCTAssertTrue(element.hasPrefix("field 'list") && element.hasSuffix("[1]' has the wrong type (expected Int)"), element)
        XCTAssertEqual(message("{nope"), "the body is not valid JSON")
        XCTAssertNil(message(#"{"name": "a", "inner": {"n": 1}, "list": [1]}"#))
    }

    func testPluginErrorRendering() throws {
        let error = PluginError(status: 409, code: "conflict", message: "in use", details: ["ids": .array([.string("a")])])
        XCTAssertEqual(error.description, "conflict: in use (409)")
        let body = try decode(String(decoding: error.jsonBody, as: UTF8.self))
        XCTAssertEqual(body, .object(["error": .object(["code": .string("conflict"), "message": .string("in use"), "ids": .array([.string("a")])])]))
        // Details cannot overwrite code and message.
        let sneaky = PluginError(status: 400, code: "real", message: "real message", details: ["code": .string("fake"), "message": .string("fake")])
        XCTAssertEqual(try decode(String(decoding: sneaky.jsonBody, as: UTF8.self))["error"]?["code"], .string("real"))
        XCTAssertEqual(try decode(String(decoding: sneaky.jsonBody, as: UTF8.self))["error"]?["message"], .string("real message"))

        let field = PluginError.invalidField("text", "too long")
        XCTAssertEqual(field.status, 400)
        XCTAssertEqual(field.code, "invalid_field")
        XCTAssertEqual(field.message, "text: too long")
        XCTAssertEqual(field.details["field"], .string("text"))

        let limited = PluginError.rateLimited(retryAfterSeconds: 30)
        XCTAssertEqual(limited.status, 429)
        XCTAssertEqual(limited.headers["retry-after"], "30")
        XCTAssertEqual(limited.details["retry_after"], .number(30))
        let response = PluginResponse.error(limited)
        XCTAssertEqual(response.status, 429)
        XCTAssertEqual(response.headers["retry-after"], "30")
        XCTAssertEqual(response.headers["content-type"], "application/json; charset=utf-8")

        let large = PluginError.payloadTooLarge(limit: 1024)
        XCTAssertEqual(large.status, 413)
        XCTAssertEqual(large.details["limit"], .number(1024))
        XCTAssertEqual(PluginError.unauthorized().status, 401)
        XCTAssertEqual(PluginError.forbidden("x").code, "forbidden")
        XCTAssertEqual(PluginError.notFound("x").status, 404)
        XCTAssertEqual(PluginError.badRequest("x").code, "bad_request")
        XCTAssertEqual(PluginError.badRequest("x", code: "invalid_json").code, "invalid_json")
    }
}
