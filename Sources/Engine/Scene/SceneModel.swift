// Scene: the model (scenes, elements), its JSON shape, and validation with errors naming element and field.

import Foundation
@_spi(Engine) import PluginAPI

/// One placed thing on the stage.
///
/// Common fields for every type, then the fields of each built-in type; `props` holds the
/// properties of plugin-defined types. Absent optional fields are omitted from the JSON.
public struct SceneElement: Codable, Sendable, Equatable {
    public var id: String
    public var type: String
    public var x: Double = 0
    public var y: Double = 0
    public var width: Double = 320
    public var height: Double = 180
    public var rotation: Double = 0
    public var z: Int = 0
    public var opacity: Double = 1
    public var visible: Bool = true
    public var locked: Bool?
    public var name: String?
    // media: image, video, audio
    public var media: String?
    public var src: String?
    public var loop: Bool?
    public var muted: Bool?
    public var volume: Double?
    public var playing: Bool?
    public var fit: String?
    // text
    public var text: String?
    public var font: String?
    public var size: Double?
    public var color: String?
    public var align: String?
    public var background: String?
    /// Outline colour and width (px) drawn around the glyphs, for text that reads over gameplay.
    public var stroke: String?
    public var strokeWidth: Double?
    /// Drop shadow colour, blur and offset (px).
    public var shadow: String?
    public var shadowBlur: Double?
    public var shadowX: Double?
    public var shadowY: Double?
    /// Vertical alignment in the box: top, middle (default) or bottom.
    public var valign: String?
    /// Shrink the font size (never grow it) until the text fits the box.
    public var autofit: Bool?
    // plugin-defined types: their properties, checked against the type's schema
    public var props: [String: JSONValue]?

    public init(id: String, type: String) {
        self.id = id
        self.type = type
    }

    enum CodingKeys: String, CodingKey {
        case id, type, x, y, width, height, rotation, z, opacity, visible, locked, name
        case media, src, loop, muted, volume, playing, fit, text, font, size, color, align, background
        case stroke
        case strokeWidth = "stroke_width"
        case shadow
        case shadowBlur = "shadow_blur"
        case shadowX = "shadow_x"
        case shadowY = "shadow_y"
        case valign, autofit, props
    }

    /// Any key, for fields stored before they moved into `props`.
    struct AnyKey: CodingKey {
        let stringValue: String
        init(stringValue: String) { self.stringValue = stringValue }
        var intValue: Int? { nil }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        type = try c.decode(String.self, forKey: .type)
        func number(_ key: CodingKeys) throws -> Double? { try c.decodeIfPresent(Double.self, forKey: key) }
        func flag(_ key: CodingKeys) throws -> Bool? { try c.decodeIfPresent(Bool.self, forKey: key) }
        func text(_ key: CodingKeys) throws -> String? { try c.decodeIfPresent(String.self, forKey: key) }
        x = try number(.x) ?? 0
        y = try number(.y) ?? 0
        width = try number(.width) ?? 320
        height = try number(.height) ?? 180
        rotation = try number(.rotation) ?? 0
        z = try c.decodeIfPresent(Int.self, forKey: .z) ?? 0
        opacity = try number(.opacity) ?? 1
        visible = try flag(.visible) ?? true
        locked = try flag(.locked)
        name = try text(.name)
        media = try text(.media)
        src = try text(.src)
        loop = try flag(.loop)
        muted = try flag(.muted)
        volume = try number(.volume)
        playing = try flag(.playing)
        fit = try text(.fit)
        self.text = try text(.text)
        font = try text(.font)
        size = try number(.size)
        color = try text(.color)
        align = try text(.align)
        background = try text(.background)
        stroke = try text(.stroke)
        strokeWidth = try number(.strokeWidth)
        shadow = try text(.shadow)
        shadowBlur = try number(.shadowBlur)
        shadowX = try number(.shadowX)
        shadowY = try number(.shadowY)
        valign = try text(.valign)
        autofit = try flag(.autofit)
        props = try c.decodeIfPresent([String: JSONValue].self, forKey: .props)
        // Scenes saved before a plugin type's fields moved into `props` (a webrtc element's `room`) keep them there.
        let all = try decoder.container(keyedBy: AnyKey.self)
        for key in all.allKeys where !Self.knownKeys.contains(key.stringValue) {
            var moved = props ?? [:]
            if moved[key.stringValue] == nil { moved[key.stringValue] = try all.decode(JSONValue.self, forKey: key) }
            props = moved
        }
    }

    /// Every key an element object may have.
    static let knownKeys: Set<String> = [
        "id", "type", "x", "y", "width", "height", "rotation", "z", "opacity", "visible", "locked", "name",
        "media", "src", "loop", "muted", "volume", "playing", "fit", "text", "font", "size", "color", "align", "background",
        "stroke", "stroke_width", "shadow", "shadow_blur", "shadow_x", "shadow_y", "valign", "autofit", "props",
    ]

    /// How history rows name the element: its name, else the start of its text, else its id.
    var displayName: String {
        if let name, !name.trimmingCharacters(in: .whitespaces).isEmpty { return String(name.prefix(60)) }
        if let text {
            let line = text.split(whereSeparator: \.isNewline).first.map(String.init)?.trimmingCharacters(in: .whitespaces) ?? ""
            if !line.isEmpty { return line.count > 40 ? String(line.prefix(39)) + "…" : line }
        }
        return id
    }
}

/// A named scene: a canvas and an ordered list of elements (later in the list is drawn above, `z` first).
public struct Scene: Codable, Sendable, Equatable {
    public var name: String
    public var width: Int = 1920
    public var height: Int = 1080
    public var elements: [SceneElement] = []
    /// Version of the last change (`_version`); versions only grow, across all scenes.
    public var version: Int64 = 0
    /// When it last changed (ms since the epoch).
    public var updatedAt: Int64 = 0

    public init(name: String) { self.name = name }

    enum CodingKeys: String, CodingKey {
        case name, width, height, elements
        case version = "_version"
        case updatedAt = "updated_at"
    }
}

/// Limits of scene validation (`scene:` in overlay.yaml).
public struct SceneLimits: Sendable {
    public var maxElements = 500
    public var maxTextLength = 2000
    public var maxIDLength = 64
    /// History retention: the newest `historySize` entries (a gesture is one entry) ...
    public var historySize = 50
    /// ... none older than this (the newest entry is always kept).
    public var historyMaxAgeSeconds = 7 * 24 * 3600
    public var maxCanvas = 7680
    /// The core element types (drawn by the overlay page itself).
    public static let coreElementTypes: Set<String> = ["image", "video", "audio", "text"]
    /// Element types plugins declared, by name.
    public var pluginElementTypes: [String: ElementType] = [:]
    /// Every element type a scene may use.
    public var elementTypes: Set<String> { Self.coreElementTypes.union(pluginElementTypes.keys) }

    public init() {}
}

/// Validates and decodes client-sent scene JSON with messages that name the element and field.
struct SceneValidator {
    let limits: SceneLimits

    static let coordinateRange = -100_000.0...100_000.0
    static let sizeRange = 0.0...100_000.0

    func fail(_ element: String?, _ field: String, _ message: String) -> PluginError {
        let place = element.map { "element '\($0)': " } ?? ""
        var error = PluginError(status: 400, code: "invalid_scene", message: "\(place)\(field) \(message)")
        error.details["field"] = .string(field)
        if let element { error.details["element"] = .string(element) }
        return error
    }

    func number(_ value: JSONValue?, _ element: String, _ field: String, range: ClosedRange<Double>) throws -> Double? {
        guard let value, value != .null else { return nil }
        guard case .number(let number) = value else { throw fail(element, field, "must be a number") }
        guard number.isFinite else { throw fail(element, field, "must be finite") }
        guard range.contains(number) else { throw fail(element, field, "must be between \(range.lowerBound) and \(range.upperBound), got \(number)") }
        return number
    }

    func bool(_ value: JSONValue?, _ element: String, _ field: String) throws -> Bool? {
        guard let value, value != .null else { return nil }
        guard case .bool(let flag) = value else { throw fail(element, field, "must be true or false") }
        return flag
    }

    func string(_ value: JSONValue?, _ element: String, _ field: String, max: Int) throws -> String? {
        guard let value, value != .null else { return nil }
        guard case .string(let text) = value else { throw fail(element, field, "must be a string") }
        guard text.count <= max else { throw fail(element, field, "is too long (\(text.count) characters, limit \(max))") }
        return text
    }

    static func isIdentifier(_ text: String) -> Bool {
        !text.isEmpty && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
    }

    static func isColor(_ text: String) -> Bool { ElementType.isColor(text) }

    /// Builds an element from a JSON object, checking every field.
    func element(_ value: JSONValue, index: Int) throws -> SceneElement {
        guard case .object(let object) = value else { throw fail(nil, "elements[\(index)]", "must be an object") }
        guard case .string(let id)? = object["id"] else { throw fail(nil, "elements[\(index)].id", "is required (a string)") }
        guard Self.isIdentifier(id), id.count <= limits.maxIDLength else {
            throw fail(nil, "elements[\(index)].id", "must be 1-\(limits.maxIDLength) characters of letters, digits, '-', '_' or '.'")
        }
        guard case .string(let type)? = object["type"] else { throw fail(id, "type", "is required (a string)") }
        guard limits.elementTypes.contains(type) else {
            throw fail(id, "type", "'\(type)' is not a known element type (known: \(limits.elementTypes.sorted().joined(separator: ", ")))")
        }
        var element = SceneElement(id: id, type: type)
        try apply(object, to: &element)
        try check(&element)
        return element
    }

    /// Moves top-level keys that are properties of the element's plugin type into `props` (the flat form
    /// `{"type": "webrtc", "room": "cam"}` that clients sent before plugin properties lived in `props`).
    /// - Parameter existing: The element's current props: an update that sends only flat properties changes those
    ///   and keeps the others (sending `props` replaces them, as always).
    func unflatten(_ object: [String: JSONValue], type: String, existing: [String: JSONValue]? = nil) throws -> [String: JSONValue] {
        guard let schema = limits.pluginElementTypes[type], schema.properties != nil else { return object }
        let flat = object.keys.filter { !SceneElement.knownKeys.contains($0) && schema.property($0) != nil }
        guard !flat.isEmpty else { return object }
        var result = object
        var props: [String: JSONValue]
        switch object["props"] {
        case .object(let members)?: props = members
        case .null?: props = [:]
        case nil: props = existing ?? [:]
        default: return object  // apply() reports the wrong props
        }
        for key in flat {
            props[key] = result.removeValue(forKey: key)
        }
        result["props"] = .object(props)
        return result
    }

    /// Applies the fields of `object` to `element` (used by add and by update operations).
    func apply(_ sent: [String: JSONValue], to element: inout SceneElement) throws {
        let id = element.id
        let object = try unflatten(sent, type: element.type, existing: element.props)
        for key in object.keys where !SceneElement.knownKeys.contains(key) { throw fail(id, key, "is not a known field") }
        if let x = try number(object["x"], id, "x", range: Self.coordinateRange) { element.x = x }
        if let y = try number(object["y"], id, "y", range: Self.coordinateRange) { element.y = y }
        if let w = try number(object["width"], id, "width", range: Self.sizeRange) { element.width = w }
        if let h = try number(object["height"], id, "height", range: Self.sizeRange) { element.height = h }
        if let r = try number(object["rotation"], id, "rotation", range: -3600...3600) { element.rotation = r }
        if let z = try number(object["z"], id, "z", range: -100_000...100_000) {
            guard z == z.rounded() else { throw fail(id, "z", "must be a whole number") }
            element.z = Int(z)
        }
        if let o = try number(object["opacity"], id, "opacity", range: 0...1) { element.opacity = o }
        if let v = try bool(object["visible"], id, "visible") { element.visible = v }
        if object.keys.contains("locked") { element.locked = try bool(object["locked"], id, "locked") }
        if object.keys.contains("name") { element.name = try string(object["name"], id, "name", max: 200) }
        if object.keys.contains("media") {
            element.media = try string(object["media"], id, "media", max: 128)
            if let media = element.media, !Self.isIdentifier(media) { throw fail(id, "media", "must be a media id") }
        }
        if object.keys.contains("src") {
            element.src = try string(object["src"], id, "src", max: 2048)
            if let src = element.src {
                let lower = src.lowercased()
                guard lower.hasPrefix("https://") || lower.hasPrefix("http://") || src.hasPrefix("/") else {
                    throw fail(id, "src", "must be an http(s) URL or a path starting with '/'")
                }
            }
        }
        if object.keys.contains("loop") { element.loop = try bool(object["loop"], id, "loop") }
        if object.keys.contains("muted") { element.muted = try bool(object["muted"], id, "muted") }
        if object.keys.contains("playing") { element.playing = try bool(object["playing"], id, "playing") }
        if object.keys.contains("volume") { element.volume = try number(object["volume"], id, "volume", range: 0...1) }
        if object.keys.contains("fit") {
            element.fit = try string(object["fit"], id, "fit", max: 16)
            if let fit = element.fit, !["contain", "cover", "fill"].contains(fit) { throw fail(id, "fit", "must be contain, cover or fill") }
        }
        if object.keys.contains("text") { element.text = try string(object["text"], id, "text", max: limits.maxTextLength) }
        if object.keys.contains("font") { element.font = try string(object["font"], id, "font", max: 200) }
        if object.keys.contains("size") { element.size = try number(object["size"], id, "size", range: 1...2000) }
        if object.keys.contains("color") {
            element.color = try string(object["color"], id, "color", max: 32)
            if let color = element.color, !Self.isColor(color) { throw fail(id, "color", "must be #rgb, #rrggbb, #rrggbbaa or a basic colour name") }
        }
        if object.keys.contains("background") {
            element.background = try string(object["background"], id, "background", max: 32)
            if let color = element.background, !Self.isColor(color) {
                throw fail(id, "background", "must be #rgb, #rrggbb, #rrggbbaa or a basic colour name")
            }
        }
        if object.keys.contains("align") {
            element.align = try string(object["align"], id, "align", max: 8)
            if let align = element.align, !["left", "center", "right"].contains(align) { throw fail(id, "align", "must be left, center or right") }
        }
        for key in ["stroke", "shadow"] where object.keys.contains(key) {
            let value = try string(object[key], id, key, max: 32)
            if let value, !Self.isColor(value) { throw fail(id, key, "must be #rgb, #rrggbb, #rrggbbaa or a basic colour name") }
            if key == "stroke" { element.stroke = value } else { element.shadow = value }
        }
        if object.keys.contains("stroke_width") { element.strokeWidth = try number(object["stroke_width"], id, "stroke_width", range: 0...50) }
        if object.keys.contains("shadow_blur") { element.shadowBlur = try number(object["shadow_blur"], id, "shadow_blur", range: 0...200) }
        if object.keys.contains("shadow_x") { element.shadowX = try number(object["shadow_x"], id, "shadow_x", range: -200...200) }
        if object.keys.contains("shadow_y") { element.shadowY = try number(object["shadow_y"], id, "shadow_y", range: -200...200) }
        if object.keys.contains("valign") {
            element.valign = try string(object["valign"], id, "valign", max: 8)
            if let valign = element.valign, !["top", "middle", "bottom"].contains(valign) {
                throw fail(id, "valign", "must be top, middle or bottom")
            }
        }
        if object.keys.contains("autofit") { element.autofit = try bool(object["autofit"], id, "autofit") }
        if object.keys.contains("props") {
            switch object["props"] {
            case .object(let props)?:
                guard props.count <= 64 else { throw fail(id, "props", "has too many members (limit 64)") }
                guard JSONValue.object(props).encoded().count <= 16_384 else { throw fail(id, "props", "is too large (limit 16 KiB)") }
                element.props = props
            case .null?, nil: element.props = nil
            default: throw fail(id, "props", "must be an object")
            }
        }
        if object.keys.contains("id") || object.keys.contains("type") {
            if case .string(let newID)? = object["id"], newID != element.id { throw fail(id, "id", "cannot be changed") }
            if case .string(let newType)? = object["type"], newType != element.type { throw fail(id, "type", "cannot be changed") }
        }
    }

    /// Checks what each type requires; a plugin type's `props` against its schema (filling in defaults).
    func check(_ element: inout SceneElement) throws {
        switch element.type {
        case "image", "video", "audio":
            if element.media == nil && element.src == nil { throw fail(element.id, "media", "or src is required for \(element.type)") }
        case "text":
            if element.text == nil { throw fail(element.id, "text", "is required for text") }
        default:
            guard let type = limits.pluginElementTypes[element.type] else { break }
            do {
                element.props = try type.check(element.props)
            } catch {
                throw fail(element.id, error.field, error.message)
            }
        }
    }

    /// Checks a whole element list: count and unique ids.
    func check(elements: [SceneElement]) throws {
        guard elements.count <= limits.maxElements else {
            throw PluginError(status: 400, code: "invalid_scene", message: "too many elements (\(elements.count), limit \(limits.maxElements))")
        }
        var seen = Set<String>()
        for element in elements where !seen.insert(element.id).inserted {
            throw fail(element.id, "id", "is used by more than one element")
        }
    }

    func canvas(_ value: JSONValue?, _ field: String) throws -> Int? {
        guard let value, value != .null else { return nil }
        guard case .number(let number) = value, number == number.rounded(), number >= 16, number <= Double(limits.maxCanvas) else {
            throw fail(nil, field, "must be a whole number between 16 and \(limits.maxCanvas)")
        }
        return Int(number)
    }

    /// 1-40 letters, digits, '-', '_' or '.', starting with a letter or digit: never `.`, `..`, a hidden
    /// name or one of the engine's own `_` files in the scenes folder.
    static func isSceneName(_ name: String) -> Bool {
        guard let first = name.first, first.isASCII, first.isLetter || first.isNumber else { return false }
        return name.count <= 40 && isIdentifier(name)
    }
}
