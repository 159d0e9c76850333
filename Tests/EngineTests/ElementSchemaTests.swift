@testable import Engine
import Foundation
import Synchronization
@_spi(Engine) import PluginAPI
import XCTest

/// Plugin element types: the props schema, its JSON Schema form, the scene validator's use of it (errors named like
/// core fields, defaults, the flat form), scenes stored before `room` moved into props, and the registrar's close.
final class ElementSchemaTests: XCTestCase {
    let goal = ElementType(
        "goal", label: "Goal bar",
        properties: [
            .string("title", default: "Followers", maxLength: 20),
            .integer("value", default: 0, range: 0...1000),
            .integer("target", range: 1...1000),
            .number("speed", default: 1, range: 0.1...4),
            .boolean("animate", default: true),
            .choice("style", values: ["bar", "ring"], default: "bar"),
            .color("color", default: "#ffcc00"),
            .string("code", pattern: "[a-z]{2}-[0-9]+"),
        ], required: ["target"], width: 480, height: 96)

    func validator() -> SceneValidator {
        var limits = SceneLimits()
        limits.pluginElementTypes["goal"] = goal
        limits.pluginElementTypes["camera"] = ElementType("camera", properties: [.string("room", minLength: 1, maxLength: 64)], required: ["room"])
        limits.pluginElementTypes["free"] = ElementType(schemaless: "free")
        return SceneValidator(limits: limits)
    }

    func element(_ json: String) throws -> SceneElement {
        try validator().element(try JSON.decode(JSONValue.self, from: Array(json.utf8)), index: 0)
    }

    func assertInvalid(_ json: String, field: String, contains text: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try element(json), file: file, line: line) { error in
            guard let error = error as? PluginError else { return XCTFail("not a PluginError: \(error)", file: file, line: line) }
            XCTAssertEqual(error.status, 400, file: file, line: line)
            XCTAssertEqual(error.code, "invalid_scene", file: file, line: line)
            XCTAssertEqual(error.details["field"], .string(field), file: file, line: line)
            XCTAssertTrue(error.message.contains(text), "\(error.message) lacks \(text)", file: file, line: line)
        }
    }

    func testDefaultsAreFilledAndValidPropsKept() throws {
        let made = try element(#"{"id": "g1", "type": "goal", "props": {"target": 100, "value": 5, "code": "ab-12"}}"#)
        XCTAssertEqual(made.props?["target"], .number(100))
        XCTAssertEqual(made.props?["value"], .number(5))
        XCTAssertEqual(made.props?["title"], .string("Followers"))
        XCTAssertEqual(made.props?["animate"], .bool(true))
        XCTAssertEqual(made.props?["style"], .string("bar"))
        XCTAssertEqual(made.props?["color"], .string("#ffcc00"))
        XCTAssertEqual(made.props?["speed"], .number(1))
        XCTAssertEqual(made.props?["code"], .string("ab-12"))
    }

    func testEveryKindOfBadValueNamesTheProperty() {
        let base = #""id": "g1", "type": "goal""#
        assertInvalid("{\(base)}", field: "props.target", contains: "is required for goal")
        assertInvalid("{\(base), \"props\": {\"target\": \"x\"}}", field: "props.target", contains: "whole number")
        assertInvalid("{\(base), \"props\": {\"target\": 1.5}}", field: "props.target", contains: "whole number")
        assertInvalid("{\(base), \"props\": {\"target\": 0}}", field: "props.target", contains: "at least 1, got 0")
        assertInvalid("{\(base), \"props\": {\"target\": 5, \"value\": 1001}}", field: "props.value", contains: "at most 1000")
        assertInvalid("{\(base), \"props\": {\"target\": 5, \"speed\": 9}}", field: "props.speed", contains: "at most 4")
        assertInvalid(
            "{\(base), \"props\": {\"target\": 5, \"title\": \"\(String(repeating: "a", count: 21))\"}}", field: "props.title",
            contains: "too long (21 characters, limit 20)")
        assertInvalid("{\(base), \"props\": {\"target\": 5, \"animate\": 1}}", field: "props.animate", contains: "true or false")
        assertInvalid("{\(base), \"props\": {\"target\": 5, \"style\": \"pie\"}}", field: "props.style", contains: "one of bar, ring")
        assertInvalid("{\(base), \"props\": {\"target\": 5, \"color\": \"url(x)\"}}", field: "props.color", contains: "#rgb")
        assertInvalid("{\(base), \"props\": {\"target\": 5, \"code\": \"AB-12\"}}", field: "props.code", contains: "must match")
        assertInvalid("{\(base), \"props\": {\"target\": 5, \"nope\": 1}}", field: "props.nope", contains: "not a property of goal")
        assertInvalid("{\(base), \"props\": [1]}", field: "props", contains: "must be an object")
    }

    func testFlatFormMovesPropertiesIntoProps() throws {
        let made = try element(#"{"id": "c1", "type": "camera", "room": "studio"}"#)
        XCTAssertEqual(made.props?["room"], .string("studio"))
        assertInvalid(#"{"id": "c1", "type": "camera", "room": ""}"#, field: "props.room", contains: "too short")
        // A key that is neither a core field nor a property stays an error.
        assertInvalid(#"{"id": "c1", "type": "camera", "room": "a", "rooms": "b"}"#, field: "rooms", contains: "not a known field")
        // Core types have no flat form.
        assertInvalid(#"{"id": "t1", "type": "text", "text": "x", "room": "a"}"#, field: "room", contains: "not a known field")
    }

    func testAFlatUpdateChangesOnlyThePropertiesItSends() throws {
        var element = try element(#"{"id": "g1", "type": "goal", "props": {"target": 10, "title": "Subs", "value": 3}}"#)
        let validator = validator()
        try validator.apply(["value": .number(4)], to: &element)
        try validator.check(&element)
        XCTAssertEqual(element.props?["value"], .number(4))
        XCTAssertEqual(element.props?["title"], .string("Subs"), "a flat update kept the other properties")
        XCTAssertEqual(element.props?["target"], .number(10))
        // Sending props replaces them (defaults fill what is left out; the required target must be there).
        try validator.apply(["props": .object(["target": .number(7)])], to: &element)
        try validator.check(&element)
        XCTAssertEqual(element.props?["title"], .string("Followers"))
    }

    func testSchemalessTypesTakeAnyProps() throws {
        let made = try element(#"{"id": "f1", "type": "free", "props": {"anything": [1, 2], "x": {"y": true}}}"#)
        XCTAssertEqual(made.props?["anything"], .array([.number(1), .number(2)]))
        XCTAssertNil(try element(#"{"id": "f2", "type": "free"}"#).props)
    }

    func testUpdatesAreCheckedAgainstTheSchema() throws {
        let editing = SceneEditing(validator: validator())
        var scene = Scene(name: "main")
        scene.version = 3
        scene.elements = [try element(#"{"id": "g1", "type": "goal", "props": {"target": 10}}"#)]
        let (base, operations) = try editing.patch(
            Array(#"{"base_version": 3, "ops": [{"op": "update", "id": "g1", "fields": {"props": {"target": 10, "value": 99999}}}]}"#.utf8))
        XCTAssertThrowsError(try editing.apply(operations, baseVersion: base, current: scene, since: [])) { error in
            XCTAssertEqual((error as? PluginError)?.details["field"], .string("props.value"), "\(error)")
        }
    }

    func testTheJSONSchemaListsWhatThePanelNeeds() throws {
        guard case .object(let schema)? = goal.jsonSchema, case .object(let properties)? = schema["properties"] else {
            return XCTFail("no schema")
        }
        XCTAssertEqual(schema["required"], .array([.string("target")]))
        XCTAssertEqual(schema["additionalProperties"], .bool(false))
        XCTAssertEqual(schema["x-order"], .array(["title", "value", "target", "speed", "animate", "style", "color", "code"].map(JSONValue.string)))
        XCTAssertEqual(
            properties["value"],
            .object([
                "type": .string("integer"), "title": .string("Value"), "minimum": .number(0),
                "maximum": .number(1000), "default": .number(0),
            ]))
        XCTAssertEqual(properties["style"]?["enum"], .array([.string("bar"), .string("ring")]))
        XCTAssertEqual(properties["color"]?["format"], .string("color"))
        XCTAssertEqual(properties["title"]?["maxLength"], .number(20))
        XCTAssertNil(ElementType(schemaless: "x").jsonSchema)
    }

    func testBadDeclarationsAreReported() {
        let bad = ElementType(
            "9bad",
            properties: [
                .integer("n", default: 50, range: 0...10),
                .choice("c", values: []),
                .string("s", pattern: "(unclosed"),
                .boolean("n"),
            ], required: ["missing"])
        let problems = bad.declarationProblems.joined(separator: "\n")
        XCTAssertTrue(problems.contains("element type '9bad': the name"), problems)
        XCTAssertTrue(problems.contains("property 'n': the default must be at most 10"), problems)
        XCTAssertTrue(problems.contains("property 'c': a choice needs at least one value"), problems)
        XCTAssertTrue(problems.contains("property 's': the pattern '(unclosed' is not a valid regular expression"), problems)
        XCTAssertTrue(problems.contains("property 'n' is declared twice"), problems)
        XCTAssertTrue(problems.contains("required property 'missing' is not declared"), problems)
        XCTAssertEqual(goal.declarationProblems, [])
    }

    func testStoredElementsKeepFieldsThatMovedIntoProps() throws {
        // A webrtc element saved when `room` was a core field.
        let stored = #"{"id": "cam", "type": "webrtc", "x": 5, "room": "studio", "props": {"other": 1}}"#
        let element = try JSONDecoder().decode(SceneElement.self, from: Data(stored.utf8))
        XCTAssertEqual(element.props, ["room": .string("studio"), "other": .number(1)])
        XCTAssertEqual(element.x, 5)
        let encoded = try XCTUnwrap(String(data: try JSONEncoder().encode(element), encoding: .utf8))
        XCTAssertFalse(encoded.contains("\"room\":\"studio\",\"") && !encoded.contains("props"), encoded)
        let again = try JSONDecoder().decode(SceneElement.self, from: Data(encoded.utf8))
        XCTAssertEqual(again, element)
    }

    func testTheRegistrarRefusesRegistrationsAfterClose() {
        let refused = RefusedLog()
        let registrar = PluginRegistrar(refused: { refused.add($0) })
        registrar.route(.get, "/api/a", access: .public) { _ in PluginResponse(status: 204) }
        registrar.close()
        registrar.route(.get, "/api/b", access: .public) { _ in PluginResponse(status: 204) }
        registrar.sceneElementType("late")
        registrar.webModule(.panel, "late.js")
        XCTAssertEqual(registrar.routes.map(\.path), ["/api/a"])
        XCTAssertEqual(registrar.elementTypes, [])
        XCTAssertEqual(registrar.webModules, [])
        XCTAssertEqual(refused.lines.count, 3)
        XCTAssertTrue(refused.lines[0].contains("route GET /api/b registered after setUp returned"), refused.lines[0])
    }
}

final class RefusedLog: Sendable {
    private let stored = Mutex<[String]>([])
    func add(_ line: String) { stored.withLock { $0.append(line) } }
    var lines: [String] { stored.withLock { $0 } }
}
