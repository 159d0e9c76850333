import PluginAPI
import XCTest

/// `application/x-www-form-urlencoded` parsing and PluginRequest.formFields on form, JSON and other bodies.
final class FormTests: XCTestCase {
    func request(_ body: String, contentType: String?) -> PluginRequest {
        request(Array(body.utf8), contentType: contentType)
    }

    func request(_ body: [UInt8], contentType: String?) -> PluginRequest {
        var headers: HTTPHeaders = [:]
        if let contentType { headers.add("Content-Type", contentType) }
        return PluginRequest(id: "r1", method: .post, path: "/x", headers: headers, body: .bytes(body))
    }

    func assertError(
        _ status: Int, _ code: String, file: StaticString = #filePath, line: UInt = #line,
        _ body: () async throws -> Void
    ) async {
        do {
            try await body()
            XCTFail("expected \(code)", file: file, line: line)
        } catch let error as PluginError {
            XCTAssertEqual(error.status, status, file: file, line: line)
            XCTAssertEqual(error.code, code, file: file, line: line)
        } catch {
            XCTFail("not a PluginError: \(error)", file: file, line: line)
        }
    }

    func testURLEncodedPairsAreDecoded() {
        let pairs = FormURLEncoding.parse("a=1&b=x%20y+z&c&=v&&d=%zz&e=%E2%82%AC&f=a=b&a=2")
        XCTAssertEqual(pairs.map(\.name), ["a", "b", "c", "", "d", "e", "f", "a"])
        XCTAssertEqual(pairs.map(\.value), ["1", "x y z", "", "v", "%zz", "€", "a=b", "2"])
        XCTAssertTrue(FormURLEncoding.parse("").isEmpty)
    }

    func testFormFieldsFromAForm() async throws {
        let fields = try await request("streamer_id=me&label=Left+cam&label=ignored", contentType: "application/x-www-form-urlencoded").formFields()
        XCTAssertEqual(fields, ["streamer_id": "me", "label": "Left cam"])
        // No Content-Type is read as a form; an empty body is no fields whatever the type.
        let untyped = try await request("key=abc", contentType: nil).formFields()
        XCTAssertEqual(untyped, ["key": "abc"])
        let empty = try await request("", contentType: "text/plain").formFields()
        XCTAssertEqual(empty, [:])
        await assertError(400, "invalid_form") { _ = try await self.request([0x6B, 0x3D, 0xFF], contentType: nil).formFields() }
    }

    func testFormFieldsFromJSON() async throws {
        let fields = try await request(#"{"key": "abc", "n": 5, "gone": null}"#, contentType: "Application/JSON; charset=utf-8").formFields()
        XCTAssertEqual(fields, ["key": "abc", "n": "5"])
        // Booleans are their text (they were "1" and "0" through Foundation on Linux), fractions stay fractions.
        let mixed = try await request(#"{"yes": true, "no": false, "half": 0.5, "big": -12}"#, contentType: "application/json").formFields()
        XCTAssertEqual(mixed, ["yes": "true", "no": "false", "half": "0.5", "big": "-12"])
        await assertError(400, "invalid_field") { _ = try await self.request(#"{"key": ["abc"]}"#, contentType: "application/json").formFields() }
        await assertError(400, "invalid_field") { _ = try await self.request(#"{"key": {}}"#, contentType: "application/json").formFields() }
        await assertError(400, "invalid_json") { _ = try await self.request(#"["abc"]"#, contentType: "application/json").formFields() }
        await assertError(400, "invalid_json") { _ = try await self.request("key=abc", contentType: "application/json").formFields() }
    }

    func testOtherBodiesAreRefused() async {
        await assertError(415, "unsupported_media_type") { _ = try await self.request("x", contentType: "text/plain").formFields() }
        await assertError(413, "payload_too_large") {
            _ = try await self.request("a=" + String(repeating: "x", count: 100), contentType: nil).formFields(limit: 50)
        }
    }

    func testContentTypeIsTheMediaTypeAlone() {
        XCTAssertEqual(request("", contentType: " Multipart/Form-Data ; boundary=x").contentType, "multipart/form-data")
        XCTAssertNil(request("", contentType: ";").contentType)
        XCTAssertNil(request("", contentType: "").contentType)
        XCTAssertNil(request("", contentType: nil).contentType)
    }
}
