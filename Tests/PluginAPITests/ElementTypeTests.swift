import PluginAPI
import XCTest

/// The JSON Schema of each property kind and the declaration checks' edge cases. The props validator and a whole
/// type's schema are covered by EngineTests/ElementSchemaTests.
final class ElementTypeTests: XCTestCase {
    func schema(_ property: ElementProperty) -> [String: JSONValue] {
        guard case .object(let members) = property.jsonSchema else {
            XCTFail("not an object")
            return [:]
        }
        return members
    }

    func testTheSchemaOfEachKind() {
        XCTAssertEqual(schema(.string("goal_title")), ["type": .string("string"), "title": .string("Goal title"), "maxLength": .number(200)])
        XCTAssertEqual(
            schema(
                .string(
                    "note", label: "Note", default: "hi", minLength: 2, maxLength: 500, pattern: "[a-z ]+", multiline: true,
                    help: "shown below")),
            [
                "type": .string("string"), "title": .string("Note"), "default": .string("hi"), "minLength": .number(2),
                "maxLength": .number(500), "pattern": .string("[a-z ]+"), "x-multiline": .bool(true), "description": .string("shown below"),
            ])
        XCTAssertEqual(
            schema(.integer("count", default: 3, range: -5...5)),
            ["type": .string("integer"), "title": .string("Count"), "default": .number(3), "minimum": .number(-5), "maximum": .number(5)])
        XCTAssertEqual(schema(.integer("free")), ["type": .string("integer"), "title": .string("Free")])
        XCTAssertEqual(
            schema(.number("speed", default: 1.5, range: 0.25...4)),
            ["type": .string("number"), "title": .string("Speed"), "default": .number(1.5), "minimum": .number(0.25), "maximum": .number(4)])
        XCTAssertEqual(schema(.boolean("loop", default: false)), ["type": .string("boolean"), "title": .string("Loop"), "default": .bool(false)])
        XCTAssertEqual(
            schema(.color("fg", default: "#fff")),
            ["type": .string("string"), "title": .string("Fg"), "format": .string("color"), "default": .string("#fff")])
        XCTAssertEqual(
            schema(.choice("side", values: ["left", "right"], default: "left")),
            [
                "type": .string("string"), "title": .string("Side"), "enum": .array([.string("left"), .string("right")]),
                "default": .string("left"),
            ])
    }

    func testSchemalessTypesHaveNoSchemaAndTakeAnyProps() throws {
        let free = ElementType(schemaless: "free", label: "Free")
        XCTAssertNil(free.jsonSchema)
        XCTAssertNil(free.properties)
        XCTAssertEqual(free.declarationProblems, [])
        XCTAssertEqual(try free.check(["anything": .array([])]), ["anything": .array([])])
        XCTAssertNil(try free.check(nil))
        // A schema with no properties: no props stays none, and any prop is refused.
        let empty = ElementType("empty", properties: [])
        XCTAssertNil(try empty.check(nil))
        XCTAssertThrowsError(try empty.check(["x": .number(1)])) { error in
            XCTAssertEqual((error as? ElementType.PropsProblem)?.message, "is not a property of empty (known: none)")
        }
    }

    func testNullPropsFallBackToTheirDefaults() throws {
        let type = ElementType("t", properties: [.integer("n", default: 7), .string("s")])
        XCTAssertEqual(try type.check(["n": .null, "s": .null]), ["n": .number(7)])
        XCTAssertEqual(try type.check(nil), ["n": .number(7)])
    }

    func testDeclarationEdgeCases() {
        func problems(_ type: ElementType) -> String { type.declarationProblems.joined(separator: "\n") }
        // Names: the type may use '-', a property may not; 40 characters at most; ASCII only; a letter first.
        XCTAssertEqual(ElementType("a-b_c" + String(repeating: "x", count: 35), properties: []).declarationProblems, [])
        XCTAssertTrue(problems(ElementType(String(repeating: "x", count: 41), properties: [])).contains("the name must be 1-40"))
        XCTAssertTrue(problems(ElementType("", properties: [])).contains("the name must be 1-40"))
        XCTAssertTrue(problems(ElementType("café", properties: [])).contains("the name must be 1-40"))
        XCTAssertTrue(
            problems(ElementType("t", properties: [.string("a-b")])).contains("property 'a-b': the name must be 1-40 ASCII letters, digits or '_'"))
        XCTAssertTrue(problems(ElementType("t", properties: [.string("_a")])).contains("property '_a': the name"))
        // Sizes: a bad size is reported alone (the properties are not looked at).
        for (width, height) in [(0.0, 10.0), (10, -1), (100_001, 10), (10, .nan)] {
            let type = ElementType("t", properties: [.string("bad-name")], width: width, height: height)
            XCTAssertEqual(type.declarationProblems, ["element type 't': width and height must be between 0 and 100000"], "\(width)x\(height)")
        }
        // Lengths and ranges.
        XCTAssertTrue(
            problems(ElementType("t", properties: [.string("s", minLength: 5, maxLength: 4)])).contains("0 <= minLength <= maxLength <= 10000"))
        XCTAssertTrue(problems(ElementType("t", properties: [.string("s", maxLength: 10_001)])).contains("0 <= minLength <= maxLength <= 10000"))
        XCTAssertTrue(problems(ElementType("t", properties: [.string("s", minLength: -1)])).contains("0 <= minLength <= maxLength <= 10000"))
        XCTAssertEqual(ElementType("t", properties: [.string("s", maxLength: 10_000)]).declarationProblems, [])
        XCTAssertTrue(problems(ElementType("t", properties: [.number("n", range: 2...2)])).isEmpty)
        // Defaults are checked with the property's own rules.
        XCTAssertTrue(problems(ElementType("t", properties: [.color("c", default: "reddish")])).contains("property 'c': the default must be #rgb"))
        XCTAssertTrue(problems(ElementType("t", properties: [.choice("c", values: ["a"], default: "b")])).contains("the default must be one of a"))
        XCTAssertTrue(
            problems(ElementType("t", properties: [.string("s", default: "ABC", pattern: "[a-z]+")])).contains("the default must match [a-z]+"))
        XCTAssertTrue(problems(ElementType("t", properties: [.string("s", default: "toolong", maxLength: 3)])).contains("the default is too long"))
        XCTAssertTrue(problems(ElementType("t", properties: [.number("n", default: .infinity)])).contains("the default must be finite"))
        // A required property that has a default is fine; one that is not declared is not.
        XCTAssertEqual(ElementType("t", properties: [.integer("n", default: 1)], required: ["n"]).declarationProblems, [])
    }

    func testColours() {
        for good in ["#abc", "#ABCD", "#a1b2c3", "#a1b2c3d4", "white", "transparent", "grey"] {
            XCTAssertTrue(ElementType.isColor(good), good)
        }
        for bad in ["", "#", "#ab", "#abcde", "#ggg", "White", "rgb(1,2,3)", "url(x)", "#a1b2c3d4e"] {
            XCTAssertFalse(ElementType.isColor(bad), bad)
        }
    }
}
