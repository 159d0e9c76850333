// Scene element types that plugins declare: their properties (a small JSON-Schema subset) and the check of `props`.

import Foundation

/// One property of a plugin-defined element type, kept in the element's `props`.
///
/// Build one with the static constructors (``integer(_:label:default:range:help:)`` and the others); the
/// engine checks every save against it and the panel builds its inspector and Add dialog from it.
public struct ElementProperty: Sendable, Equatable {
    /// The kind of value.
    public enum Kind: String, Sendable, Equatable {
        case string, integer, number, boolean, color, choice
    }

    /// Key in `props`: 1-40 ASCII letters, digits or `_`, starting with a letter.
    public let name: String
    /// The kind of value.
    public let kind: Kind
    /// Label shown in the panel (JSON Schema `title`).
    public let label: String
    /// One line of help shown under the field (JSON Schema `description`).
    public let help: String
    /// Value used when an element has none.
    public let defaultValue: JSONValue?
    /// Smallest and largest number (integer, number).
    public let minimum: Double?
    public let maximum: Double?
    /// Shortest and longest text in characters (string).
    public let minLength: Int?
    public let maxLength: Int?
    /// A regular expression the whole text must match (string).
    public let pattern: String?
    /// The allowed values (choice).
    public let choices: [String]
    /// The panel edits the text in a multi-line field (string).
    public let multiline: Bool

    init(
        name: String, kind: Kind, label: String?, help: String, defaultValue: JSONValue?, minimum: Double? = nil, maximum: Double? = nil,
        minLength: Int? = nil, maxLength: Int? = nil, pattern: String? = nil, choices: [String] = [], multiline: Bool = false
    ) {
        self.name = name
        self.kind = kind
        self.label = label ?? Self.defaultLabel(name)
        self.help = help
        self.defaultValue = defaultValue
        self.minimum = minimum
        self.maximum = maximum
        self.minLength = minLength
        self.maxLength = maxLength
        self.pattern = pattern
        self.choices = choices
        self.multiline = multiline
    }

    /// `goal_value` -> `Goal value`.
    static func defaultLabel(_ name: String) -> String {
        let words = name.replacingOccurrences(of: "_", with: " ")
        return words.prefix(1).uppercased() + words.dropFirst()
    }

    /// A text property.
    /// - Parameters:
    ///   - name: Key in `props`.
    ///   - label: Panel label; default: the name with `_` as spaces, capitalised.
    ///   - default: Value when the element has none.
    ///   - minLength: Shortest text in characters.
    ///   - maxLength: Longest text in characters (at most 10,000).
    ///   - pattern: Regular expression the whole text must match, e.g. `[A-Za-z0-9_-]{1,64}`.
    ///   - multiline: Edit in a multi-line field.
    ///   - help: One line shown under the field.
    public static func string(
        _ name: String, label: String? = nil, default: String? = nil, minLength: Int = 0, maxLength: Int = 200,
        pattern: String? = nil, multiline: Bool = false, help: String = ""
    ) -> ElementProperty {
        ElementProperty(
            name: name, kind: .string, label: label, help: help, defaultValue: `default`.map(JSONValue.string),
            minLength: minLength, maxLength: maxLength, pattern: pattern, multiline: multiline)
    }

    /// A whole number (sent as a JSON number without a fraction).
    public static func integer(
        _ name: String, label: String? = nil, default: Int? = nil, range: ClosedRange<Int>? = nil,
        help: String = ""
    ) -> ElementProperty {
        ElementProperty(
            name: name, kind: .integer, label: label, help: help, defaultValue: `default`.map { .number(Double($0)) },
            minimum: range.map { Double($0.lowerBound) }, maximum: range.map { Double($0.upperBound) })
    }

    /// A finite number.
    public static func number(
        _ name: String, label: String? = nil, default: Double? = nil, range: ClosedRange<Double>? = nil,
        help: String = ""
    ) -> ElementProperty {
        ElementProperty(
            name: name, kind: .number, label: label, help: help, defaultValue: `default`.map(JSONValue.number),
            minimum: range?.lowerBound, maximum: range?.upperBound)
    }

    /// true or false.
    public static func boolean(_ name: String, label: String? = nil, default: Bool? = nil, help: String = "") -> ElementProperty {
        ElementProperty(name: name, kind: .boolean, label: label, help: help, defaultValue: `default`.map(JSONValue.bool))
    }

    /// One of a fixed list of strings (JSON Schema `enum`; a select in the panel).
    public static func choice(
        _ name: String, label: String? = nil, values: [String], default: String? = nil,
        help: String = ""
    ) -> ElementProperty {
        ElementProperty(name: name, kind: .choice, label: label, help: help, defaultValue: `default`.map(JSONValue.string), choices: values)
    }

    /// A CSS colour: `#rgb`, `#rgba`, `#rrggbb`, `#rrggbbaa` or a basic name (`white`, `transparent`, ...).
    public static func color(_ name: String, label: String? = nil, default: String? = nil, help: String = "") -> ElementProperty {
        ElementProperty(name: name, kind: .color, label: label, help: help, defaultValue: `default`.map(JSONValue.string))
    }

    /// The property as a JSON Schema.
    public var jsonSchema: JSONValue {
        var schema: [String: JSONValue] = ["title": .string(label)]
        switch kind {
        case .string, .choice, .color: schema["type"] = .string("string")
        case .integer: schema["type"] = .string("integer")
        case .number: schema["type"] = .string("number")
        case .boolean: schema["type"] = .string("boolean")
        }
        if kind == .color { schema["format"] = .string("color") }
        if kind == .choice { schema["enum"] = .array(choices.map(JSONValue.string)) }
        if !help.isEmpty { schema["description"] = .string(help) }
        if let defaultValue { schema["default"] = defaultValue }
        if let minimum { schema["minimum"] = .number(minimum) }
        if let maximum { schema["maximum"] = .number(maximum) }
        if let minLength, minLength > 0 { schema["minLength"] = .number(Double(minLength)) }
        if let maxLength { schema["maxLength"] = .number(Double(maxLength)) }
        if let pattern { schema["pattern"] = .string(pattern) }
        if multiline { schema["x-multiline"] = .bool(true) }
        return .object(schema)
    }

    /// Why `value` is not acceptable, or nil.
    func problem(with value: JSONValue) -> String? {
        switch kind {
        case .string, .color, .choice:
            guard case .string(let text) = value else { return "must be a string" }
            if kind == .color { return ElementType.isColor(text) ? nil : "must be #rgb, #rrggbb, #rrggbbaa or a basic colour name" }
            if kind == .choice { return choices.contains(text) ? nil : "must be one of \(choices.joined(separator: ", "))" }
            if let minLength, text.count < minLength { return "is too short (\(text.count) characters, at least \(minLength))" }
            if let maxLength, text.count > maxLength { return "is too long (\(text.count) characters, limit \(maxLength))" }
            if let pattern, let regex = try? Regex(pattern), (try? regex.wholeMatch(in: text)) == nil {
                return "must match \(pattern)"
            }
            return nil
        case .integer, .number:
            guard case .number(let number) = value else { return kind == .integer ? "must be a whole number" : "must be a number" }
            guard number.isFinite else { return "must be finite" }
            if kind == .integer, number != number.rounded() || abs(number) > 9_007_199_254_740_991 { return "must be a whole number" }
            if let minimum, number < minimum { return "must be at least \(Self.show(minimum)), got \(Self.show(number))" }
            if let maximum, number > maximum { return "must be at most \(Self.show(maximum)), got \(Self.show(number))" }
            return nil
        case .boolean:
            guard case .bool = value else { return "must be true or false" }
            return nil
        }
    }

    static func show(_ number: Double) -> String {
        number == number.rounded() && abs(number) < 1e15 ? String(Int64(number)) : String(number)
    }
}

/// A scene element type that a plugin draws, with the properties its elements carry in `props`.
///
/// ```swift
/// registrar.sceneElementType(ElementType("goal", label: "Goal bar", properties: [
///     .string("title", default: "Followers", maxLength: 60),
///     .integer("value", default: 0, range: 0...1_000_000),
/// ], width: 480, height: 96))
/// ```
public struct ElementType: Sendable, Equatable {
    /// The `type` of its elements: 1-40 ASCII letters, digits, `-` or `_`.
    public let name: String
    /// Shown in the panel's Add menu and in history rows.
    public let label: String
    /// The properties, in the order the panel shows them; nil: `props` is free-form (any JSON object).
    public let properties: [ElementProperty]?
    /// Properties every element must have (after defaults are filled in).
    public let required: [String]
    /// Size of a new element.
    public let width: Double
    public let height: Double

    /// Creates an element type with a schema.
    /// - Parameters:
    ///   - name: The elements' `type`.
    ///   - label: Panel label; default: the name.
    ///   - properties: Its properties; `props` may hold no others.
    ///   - required: Properties an element must have when no default fills them.
    ///   - width: Width of a new element in stage pixels.
    ///   - height: Height of a new element.
    public init(
        _ name: String, label: String? = nil, properties: [ElementProperty], required: [String] = [],
        width: Double = 320, height: Double = 180
    ) {
        self.name = name
        self.label = label ?? name
        self.properties = properties
        self.required = required
        self.width = width
        self.height = height
    }

    /// An element type without a schema: any `props` object is accepted.
    public init(schemaless name: String, label: String? = nil) {
        self.name = name
        self.label = label ?? name
        self.properties = nil
        self.required = []
        self.width = 320
        self.height = 180
    }

    /// The property named `name`.
    public func property(_ name: String) -> ElementProperty? { properties?.first { $0.name == name } }

    /// Problems of the declaration itself (checked when the engine loads the plugin).
    public var declarationProblems: [String] {
        var problems: [String] = []
        func isName(_ text: String, extra: Set<Character>) -> Bool {
            guard let first = text.first, first.isASCII, first.isLetter, text.count <= 40 else { return false }
            return text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || extra.contains($0)) }
        }
        if !isName(name, extra: ["-", "_"]) {
            problems.append("element type '\(name)': the name must be 1-40 ASCII letters, digits, '-' or '_', starting with a letter")
        }
        guard width > 0, height > 0, width <= 100_000, height <= 100_000 else {
            return problems + ["element type '\(name)': width and height must be between 0 and 100000"]
        }
        var seen = Set<String>()
        for property in properties ?? [] {
            let place = "element type '\(name)' property '\(property.name)'"
            if !isName(property.name, extra: ["_"]) {
                problems.append("\(place): the name must be 1-40 ASCII letters, digits or '_', starting with a letter")
            }
            if !seen.insert(property.name).inserted { problems.append("\(place) is declared twice") }
            if let low = property.minimum, let high = property.maximum, low > high { problems.append("\(place): the range is empty") }
            if let low = property.minLength, let high = property.maxLength, low > high || high > 10_000 || low < 0 {
                problems.append("\(place): lengths must satisfy 0 <= minLength <= maxLength <= 10000")
            }
            if property.kind == .choice, property.choices.isEmpty { problems.append("\(place): a choice needs at least one value") }
            if let pattern = property.pattern, (try? Regex(pattern)) == nil {
                problems.append("\(place): the pattern '\(pattern)' is not a valid regular expression")
            }
            if let value = property.defaultValue, let problem = property.problem(with: value) {
                problems.append("\(place): the default \(problem)")
            }
        }
        for name in required where property(name) == nil && properties != nil {
            problems.append("element type '\(self.name)': required property '\(name)' is not declared")
        }
        return problems
    }

    /// The element type's `props` as a JSON Schema (a subset: type, title, description, default, minimum,
    /// maximum, minLength, maxLength, pattern, enum, format color), with `x-order` giving the panel's order.
    /// nil for a schemaless type.
    public var jsonSchema: JSONValue? {
        guard let properties else { return nil }
        var members: [String: JSONValue] = [:]
        for property in properties { members[property.name] = property.jsonSchema }
        return .object([
            "type": .string("object"),
            "additionalProperties": .bool(false),
            "properties": .object(members),
            "required": .array(required.map(JSONValue.string)),
            "x-order": .array(properties.map { .string($0.name) }),
        ])
    }

    /// A problem with an element's `props`: the field (`props.<name>`) and what is wrong.
    public struct PropsProblem: Error, Sendable, Equatable {
        /// `props.<name>`, or `props`.
        public let field: String
        /// What is wrong, e.g. `must be at most 100, got 120`.
        public let message: String
    }

    /// Checks `props` against the schema and fills in defaults of missing properties.
    /// - Returns: The props to store (nil stays nil only for a schemaless type, or a schema with no properties).
    /// - Throws: ``PropsProblem`` for the first property in declaration order that is wrong.
    public func check(_ props: [String: JSONValue]?) throws(PropsProblem) -> [String: JSONValue]? {
        guard let properties else { return props }
        var result = props ?? [:]
        for key in result.keys.sorted() where property(key) == nil {
            let known = properties.map(\.name).joined(separator: ", ")
            throw PropsProblem(field: "props.\(key)", message: "is not a property of \(name) (known: \(known.isEmpty ? "none" : known))")
        }
        for property in properties {
            if result[property.name] == .null { result[property.name] = nil }
            if let value = result[property.name] {
                if let problem = property.problem(with: value) { throw PropsProblem(field: "props.\(property.name)", message: problem) }
            } else if let value = property.defaultValue {
                result[property.name] = value
            }
        }
        for name in required where result[name] == nil {
            throw PropsProblem(field: "props.\(name)", message: "is required for \(self.name)")
        }
        return result.isEmpty && props == nil ? nil : result
    }

    /// True for `#rgb`, `#rgba`, `#rrggbb`, `#rrggbbaa` and the basic colour names the engine accepts for text colours.
    public static func isColor(_ text: String) -> Bool {
        guard text.hasPrefix("#") else {
            return ["transparent", "white", "black", "red", "green", "blue", "yellow", "orange", "purple", "gray", "grey"].contains(text)
        }
        let hex = text.dropFirst()
        return [3, 4, 6, 8].contains(hex.count) && hex.allSatisfy(\.isHexDigit)
    }
}

/// Which page loads a plugin's web module.
public enum WebPageKind: String, Sendable, CaseIterable {
    /// `/overlay` (and `/preview`): the OBS browser source.
    case overlay
    /// `/mod`: the moderator panel.
    case panel
    /// `/admin`: the streamer's dashboard.
    case admin
}

/// A web module of a plugin: an ES module in its web folder and the styles loaded with it.
public struct WebModule: Sendable, Equatable {
    /// Which page loads it.
    public let page: WebPageKind
    /// Path of the module in the plugin's web folder, e.g. `overlay.js`.
    public let module: String
    /// Style sheets in the web folder, loaded before the module.
    public let styles: [String]
}

/// A page of a plugin's own, e.g. `/publish`: a file of its web folder served at a top-level path.
public struct WebPage: Sendable, Equatable {
    /// The URL path, e.g. `/publish`.
    public let path: String
    /// The file in the plugin's web folder, e.g. `publish.html`.
    public let file: String
}
