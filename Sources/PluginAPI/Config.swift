// Configuration as a tree of YAML nodes with their lines, and a strict Decoder over it.

import Foundation
import Synchronization

/// One node of `overlay.yaml`, with the position it came from.
public struct ConfigNode: Sendable {
    /// The node's content.
    public enum Value: Sendable {
        /// A scalar as written; `quoted` is true for `'...'` and `"..."` scalars.
        case scalar(String, quoted: Bool)
        /// A mapping in file order.
        case mapping([(key: String, value: ConfigNode)])
        /// A sequence.
        case sequence([ConfigNode])
    }

    /// The node's content.
    public var value: Value
    /// 1-based line in the file (0 when the node was not read from a file).
    public var line: Int
    /// 1-based column in the file.
    public var column: Int

    /// Creates a node.
    public init(_ value: Value, line: Int, column: Int) {
        self.value = value
        self.line = line
        self.column = column
    }

    /// True for `~`, `null`, `Null`, `NULL` and an empty plain scalar.
    public var isNull: Bool {
        if case .scalar(let text, let quoted) = value, !quoted {
            return text.isEmpty || text == "~" || text == "null" || text == "Null" || text == "NULL"
        }
        return false
    }

    /// The value under `key` of a mapping node.
    public subscript(key: String) -> ConfigNode? {
        if case .mapping(let pairs) = value { return pairs.first(where: { $0.key == key })?.value }
        return nil
    }

    /// A short name of the node's kind, for messages.
    public var kindName: String {
        switch value {
        case .scalar: return isNull ? "null" : "a scalar"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        }
    }
}

extension ConfigNode: Decodable {
    /// Receives the raw node from ``ConfigDecoder`` (a plugin's section is kept as a node and decoded by the plugin).
    public init(from decoder: any Decoder) throws {
        guard let nodeDecoder = decoder as? NodeDecoder else {
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: decoder.codingPath,
                    debugDescription: "ConfigNode can only be decoded by ConfigDecoder"))
        }
        self = nodeDecoder.node
    }
}

/// A configuration problem, with the place it was found.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    /// Dotted path of the key, e.g. `server.port` or `plugins[2].config.voice`.
    public var path: String
    /// 1-based line (0 when unknown).
    public var line: Int
    /// 1-based column (0 when unknown).
    public var column: Int
    /// What is wrong.
    public var message: String

    /// Creates an error.
    public init(path: String, line: Int, column: Int, message: String) {
        self.path = path
        self.line = line
        self.column = column
        self.message = message
    }

    /// `line N, key 'path': message`.
    public var description: String {
        let place = line > 0 ? "line \(line)" : "(no line)"
        return path.isEmpty ? "\(place): \(message)" : "\(place), key '\(path)': \(message)"
    }

    /// The error with its path put under `prefix` (used when a plugin's section is decoded on its own).
    public func prefixed(_ prefix: String) -> ConfigError {
        var copy = self
        copy.path = path.isEmpty ? prefix : (path.hasPrefix("[") ? prefix + path : prefix + "." + path)
        return copy
    }
}

/// Decodes `Decodable` types from ``ConfigNode`` trees, strictly.
///
/// - Unknown keys are errors (a typo in `overlay.yaml` is never silently ignored).
/// - Wrong types and unparsable numbers are errors naming the key and line.
/// - A `ConfigNode` property receives the raw node (used for plugin sections).
public enum ConfigDecoder {
    /// Decodes `type` from `node`.
    /// - Parameters:
    ///   - type: The type to decode.
    ///   - node: The node, usually a mapping.
    /// - Returns: The decoded value.
    /// - Throws: ``ConfigError`` for the first problem met, or the first unknown key after a successful decode.
    public static func decode<T: Decodable>(_ type: T.Type, from node: ConfigNode) throws -> T {
        do {
            return try decodeReportingAll(type, from: node)
        } catch let list as ConfigErrorList {
            throw list.errors.first ?? ConfigError(path: "", line: node.line, column: node.column, message: "invalid")
        }
    }

    /// Like ``decode(_:from:)``, but keeps going past problems in optional keys so that every
    /// problem is reported at once.
    /// - Throws: ``ConfigErrorList`` with every problem found, in file order.
    public static func decodeReportingAll<T: Decodable>(_ type: T.Type, from node: ConfigNode) throws -> T {
        let tracker = KeyTracker()
        let decoder = NodeDecoder(node: node, codingPath: [], tracker: tracker)
        var errors: [ConfigError] = []
        var value: T?
        do {
            value = try decoder.decodeValue(T.self)
        } catch let error as ConfigError {
            errors.append(error)
        } catch let error as DecodingError {
            errors.append(tracker.convert(error, root: node))
        }
        errors = tracker.softErrors + errors
        // Unknown keys are only certain when decoding ran to the end.
        if value != nil { errors += tracker.unknownKeys() }
        if let value, errors.isEmpty { return value }
        throw ConfigErrorList(errors: errors.sorted { ($0.line, $0.column) < ($1.line, $1.column) })
    }
}

/// A configuration that is a plain struct with default values: every key is optional, and a key left out keeps
/// the value the property is declared with.
///
/// ```swift
/// struct Configuration: DefaultedConfiguration {
///     var maxQueueLength = 50          // overlay.yaml: max_queue_length
///     var rate = Range(min: 0.1, max: 4) // a nested struct: keys left out inside it keep these numbers too
///     func validate() throws {
///         guard maxQueueLength > 0 else { throw ConfigProblem("max_queue_length", "must be positive") }
///     }
/// }
/// ```
///
/// The configuration decoder finds keys by the snake_case form of each property name (`maxQueueLength` is
/// `max_queue_length`; a `CodingKeys` enum names keys the conversion gets wrong, such as acronyms), reports every
/// bad value at once with its line, and then calls ``validate()``.
public protocol DefaultedConfiguration: Decodable, Sendable {
    /// The configuration with every default.
    init()
    /// Checks values together after decoding; throw ``ConfigProblem`` naming the key (`rate.min`) to report it
    /// at that key's line.
    func validate() throws
}

extension DefaultedConfiguration {
    /// Default: nothing to check.
    public func validate() throws {}
}

/// A problem ``DefaultedConfiguration/validate()`` found: the key (relative to the configuration, dotted for
/// nested keys) and what is wrong.
public struct ConfigProblem: Error, Sendable, Equatable {
    /// e.g. `max_text_length` or `rate.min`.
    public let key: String
    /// e.g. `must be 1...5000`.
    public let message: String

    /// Creates a problem.
    public init(_ key: String, _ message: String) {
        self.key = key
        self.message = message
    }
}

/// The YAML key of a property name: `maxQueueLength` -> `max_queue_length`, `redisURL` -> `redis_url`,
/// `moderatorKeyTTLSeconds` -> `moderator_key_ttl_seconds`, `stunURLs` -> `stun_urls`. Snake-case names are unchanged.
public func configKeyName(_ name: String) -> String {
    let characters = Array(name)
    var out = ""
    for (index, character) in characters.enumerated() {
        if character.isUppercase, index > 0 {
            let previous = characters[index - 1]
            let next = index + 1 < characters.count ? characters[index + 1] : nil
            // `URLs`: a plural `s` after an acronym belongs to it (`stunURLs` -> `stun_urls`).
            let pluralOfAcronym = next == "s" && (index + 2 == characters.count || characters[index + 2].isUppercase)
            if previous.isLowercase || previous.isNumber || (previous.isUppercase && (next?.isLowercase ?? false) && !pluralOfAcronym) {
                out.append("_")
            }
        }
        out.append(contentsOf: character.lowercased())
    }
    return out
}

/// The key as written in the file: dictionary keys as they are, property names in snake_case.
func fileKey(_ key: any CodingKey) -> String {
    if key is ConfigCodingKey || String(describing: type(of: key)).contains("DictionaryCodingKey") { return key.stringValue }
    return configKeyName(key.stringValue)
}

/// The raw string values of an enum's cases.
func caseNames<C: CaseIterable>(_ type: C.Type) -> [String] {
    C.allCases.compactMap { ($0 as? any RawRepresentable)?.rawValue as? String }
}

/// The stored properties of a value by name, for the defaults of a ``DefaultedConfiguration``.
func defaultFields(of value: Any) -> [String: Any] {
    var fields: [String: Any] = [:]
    for child in Mirror(reflecting: value).children {
        if let label = child.label { fields[label] = child.value }
    }
    return fields
}

extension ConfigDecoder {
    /// Parses a size as written in `overlay.yaml` (keys ending in `_bytes`): `123`, `1_000`, `25MiB`, `1.5 GB`
    /// (KB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB and K/M/G/T of 1024); nil for anything else or past `Int.max`.
    public static func byteCount(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "_", with: "")
        let number = trimmed.prefix { $0.isASCII && ($0.isNumber || $0 == ".") }
        let unit = trimmed.dropFirst(number.count).trimmingCharacters(in: .whitespaces).lowercased()
        let multipliers: [String: Double] = [
            "": 1, "b": 1,
            "k": 1024, "kb": 1e3, "kib": 1024,
            "m": 1_048_576, "mb": 1e6, "mib": 1_048_576,
            "g": 1_073_741_824, "gb": 1e9, "gib": 1_073_741_824,
            "t": 1_099_511_627_776, "tb": 1e12, "tib": 1_099_511_627_776,
        ]
        guard !number.isEmpty, let multiplier = multipliers[unit] else { return nil }
        if unit.isEmpty || unit == "b" {
            return Int(number)
        }
        guard let value = Double(number), value.isFinite else { return nil }
        let bytes = (value * multiplier).rounded()
        guard bytes >= 0, bytes < 9.2e18 else { return nil }
        return Int(bytes)
    }
}

/// Several configuration problems.
public struct ConfigErrorList: Error, Sendable {
    /// The problems, in file order.
    public let errors: [ConfigError]
}

// MARK: - implementation

struct ConfigCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) {
        self.stringValue = stringValue
        self.intValue = nil
    }
    init(intValue: Int) {
        self.stringValue = "[\(intValue)]"
        self.intValue = intValue
    }
}

func renderPath(_ path: [any CodingKey]) -> String {
    var out = ""
    for key in path {
        if let index = key.intValue { out += "[\(index)]" } else { out += out.isEmpty ? fileKey(key) : "." + fileKey(key) }
    }
    return out
}

final class KeyTracker: Sendable {
    private struct Mapping: @unchecked Sendable {
        // `any CodingKey` is not Sendable; a tracker lives inside one decode call.
        var path: [any CodingKey]
        var node: ConfigNode
        var used: Set<String>
    }
    private struct State: Sendable {
        var mappings: [Mapping] = []
        var soft: [ConfigError] = []
    }
    private let state = Mutex(State())

    func recordSoft(_ error: ConfigError) {
        state.withLock { $0.soft.append(error) }
    }

    var softErrors: [ConfigError] { state.withLock { $0.soft } }

    func register(path: [any CodingKey], node: ConfigNode) -> Int {
        state.withLock { state in
            state.mappings.append(Mapping(path: path, node: node, used: []))
            return state.mappings.count - 1
        }
    }

    func markUsed(_ index: Int, key: String) {
        state.withLock { _ = $0.mappings[index].used.insert(key) }
    }

    func unknownKeys() -> [ConfigError] {
        let mappings = state.withLock { $0.mappings }
        var errors: [ConfigError] = []
        for entry in mappings {
            guard case .mapping(let pairs) = entry.node.value else { continue }
            let known = entry.used.sorted()
            for pair in pairs where !entry.used.contains(pair.key) {
                let path = renderPath(entry.path + [ConfigCodingKey(stringValue: pair.key)])
                let hint = known.isEmpty ? "" : " (known keys here: \(known.joined(separator: ", ")))"
                errors.append(
                    ConfigError(
                        path: path, line: pair.value.line, column: pair.value.column,
                        message: "unknown key '\(pair.key)'\(hint)"))
            }
        }
        return errors
    }

    func convert(_ error: DecodingError, root: ConfigNode, base: [any CodingKey] = []) -> ConfigError {
        let error = rebase(error, dropping: base.count)
        let converted = convertRooted(error, root: root)
        guard !base.isEmpty else { return converted }
        var copy = converted
        let prefix = renderPath(base)
        copy.path = converted.path.isEmpty ? prefix : (converted.path.hasPrefix("[") ? prefix + converted.path : prefix + "." + converted.path)
        return copy
    }

    /// Drops the first `count` keys of the error's path (they lead to `root`).
    private func rebase(_ error: DecodingError, dropping count: Int) -> DecodingError {
        guard count > 0 else { return error }
        func trim(_ context: DecodingError.Context) -> DecodingError.Context {
            DecodingError.Context(
                codingPath: Array(context.codingPath.dropFirst(count)), debugDescription: context.debugDescription,
                underlyingError: context.underlyingError)
        }
        switch error {
        case .keyNotFound(let key, let context): return .keyNotFound(key, trim(context))
        case .typeMismatch(let type, let context): return .typeMismatch(type, trim(context))
        case .valueNotFound(let type, let context): return .valueNotFound(type, trim(context))
        case .dataCorrupted(let context): return .dataCorrupted(trim(context))
        @unknown default: return error
        }
    }

    private func convertRooted(_ error: DecodingError, root: ConfigNode) -> ConfigError {
        switch error {
        case .keyNotFound(let key, let context):
            let parent = locate(context.codingPath, in: root)
            return ConfigError(
                path: renderPath(context.codingPath + [key]), line: parent.line, column: parent.column,
                message: "missing required key '\(fileKey(key))'")
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            let node = locate(context.codingPath, in: root)
            return ConfigError(
                path: renderPath(context.codingPath), line: node.line, column: node.column,
                message: context.debugDescription)
        @unknown default:
            return ConfigError(path: "", line: root.line, column: root.column, message: "\(error)")
        }
    }

    private func locate(_ path: [any CodingKey], in root: ConfigNode) -> ConfigNode {
        var node = root
        for key in path {
            switch node.value {
            case .mapping(let pairs):
                guard let next = pairs.first(where: { $0.key == fileKey(key) })?.value else { return node }
                node = next
            case .sequence(let items):
                guard let index = key.intValue, items.indices.contains(index) else { return node }
                node = items[index]
            case .scalar:
                return node
            }
        }
        return node
    }
}

struct NodeDecoder: Decoder {
    let node: ConfigNode
    let codingPath: [any CodingKey]
    let tracker: KeyTracker
    /// The declared values of the properties being decoded (a ``DefaultedConfiguration`` or a struct inside one).
    var defaults: [String: Any]? = nil
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func error(_ message: String) -> ConfigError {
        ConfigError(path: renderPath(codingPath), line: node.line, column: node.column, message: message)
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        if node.isNull {
            let empty = ConfigNode(.mapping([]), line: node.line, column: node.column)
            let index = tracker.register(path: codingPath, node: empty)
            return KeyedDecodingContainer(
                KeyedNodeContainer<Key>(
                    node: empty, pairs: [], codingPath: codingPath, tracker: tracker, index: index,
                    defaults: defaults))
        }
        guard case .mapping(let pairs) = node.value else { throw error("expected a mapping, found \(node.kindName)") }
        var seen = Set<String>()
        for pair in pairs where !seen.insert(pair.key).inserted {
            throw ConfigError(
                path: renderPath(codingPath + [ConfigCodingKey(stringValue: pair.key)]), line: pair.value.line,
                column: pair.value.column, message: "duplicate key '\(pair.key)'")
        }
        let index = tracker.register(path: codingPath, node: node)
        return KeyedDecodingContainer(
            KeyedNodeContainer<Key>(
                node: node, pairs: pairs, codingPath: codingPath, tracker: tracker, index: index,
                defaults: defaults))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        if node.isNull { return UnkeyedNodeContainer(items: [], codingPath: codingPath, tracker: tracker) }
        guard case .sequence(let items) = node.value else { throw error("expected a list, found \(node.kindName)") }
        return UnkeyedNodeContainer(items: items, codingPath: codingPath, tracker: tracker)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer { SingleNodeContainer(decoder: self) }

    func scalarText(_ typeName: String) throws -> String {
        guard case .scalar(let text, _) = node.value else { throw error("expected \(typeName), found \(node.kindName)") }
        return text
    }

    func decodeValue<T: Decodable>(_ type: T.Type) throws -> T {
        if T.self == ConfigNode.self, let value = node as? T { return value }
        switch type {
        case is String.Type:
            if node.isNull { throw error("expected a string, found null") }
            return try typed(try scalarText("a string"))
        case is Bool.Type:
            let text = try scalarText("true or false")
            switch text {
            case "true", "True", "TRUE", "yes", "on": return try typed(true)
            case "false", "False", "FALSE", "no", "off": return try typed(false)
            default: throw error("expected true or false, found '\(text)'")
            }
        case is Double.Type: return try typed(try double())
        case is Float.Type: return try typed(Float(try double()))
        default:
            // Every integer width, signed or not (Int8...UInt64): the standard library's own
            // `init(from:)` of these asks this decoder again, which would recurse without end.
            if let integerType = type as? any FixedWidthInteger.Type {
                return try typed(try integer(integerType))
            }
            if let defaulted = type as? any DefaultedConfiguration.Type {
                var decoder = self
                decoder.defaults = defaultFields(of: defaulted.init())
                let value = try T(from: decoder)
                try validate(value)
                return value
            }
            do {
                return try T(from: self)
            } catch let error as DecodingError {
                // An enum of strings: name what is accepted instead of Swift's "Cannot initialize ...".
                if let cases = type as? any CaseIterable.Type, case .scalar(let text, _) = node.value {
                    let names = caseNames(cases).map { "'\($0)'" }
                    if let last = names.last {
                        let list = names.count == 1 ? last : names.dropLast().joined(separator: ", ") + " or " + last
                        throw self.error("expected \(list), found '\(text)'")
                    }
                }
                throw error
            }
        }
    }

    /// Runs a configuration's ``DefaultedConfiguration/validate()``, reporting a problem at its key's line.
    func validate<T>(_ value: T) throws {
        guard let configuration = value as? any DefaultedConfiguration else { return }
        do {
            try configuration.validate()
        } catch let problem as ConfigProblem {
            var target = node
            for part in problem.key.split(separator: ".") {
                guard case .mapping(let pairs) = target.value, let next = pairs.first(where: { $0.key == part })?.value else { break }
                target = next
            }
            let base = renderPath(codingPath)
            throw ConfigError(
                path: base.isEmpty ? problem.key : base + "." + problem.key, line: target.line, column: target.column,
                message: problem.message)
        }
    }

    /// The value as `T`; the callers checked `T` first, so this only fails on a decoder bug.
    func typed<T>(_ value: Any) throws -> T {
        guard let value = value as? T else { throw error("internal: could not produce \(T.self)") }
        return value
    }

    func integer<I: FixedWidthInteger>(_ type: I.Type) throws -> I {
        let text = try scalarText("a whole number").replacingOccurrences(of: "_", with: "")
        // A size (`*_bytes` keys) may carry a unit: 25MiB, 500 MB, 1GiB.
        if let last = codingPath.last, fileKey(last).hasSuffix("_bytes"), I(text) == nil {
            guard let bytes = ConfigDecoder.byteCount(text), let value = I(exactly: bytes) else {
                throw error("expected a size such as 26214400, 25MiB or 1GB, found '\(text)'")
            }
            return value
        }
        guard let value = I(text) else {
            if Int64(text) != nil || UInt64(text) != nil {
                throw error("'\(text)' is out of range (\(I.min)...\(I.max))")
            }
            throw error("expected a whole number, found '\(text)'")
        }
        return value
    }

    func double() throws -> Double {
        let text = try scalarText("a number")
        guard let value = Double(text), value.isFinite else { throw error("expected a finite number, found '\(text)'") }
        return value
    }
}

struct KeyedNodeContainer<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let node: ConfigNode
    let pairs: [(key: String, value: ConfigNode)]
    let codingPath: [any CodingKey]
    let tracker: KeyTracker
    let index: Int
    /// Declared values by property name; a key the file leaves out decodes to its declared value.
    let defaults: [String: Any]?

    var allKeys: [Key] { pairs.compactMap { Key(stringValue: $0.key) } }

    func lookup(_ key: Key) -> ConfigNode? {
        let name = fileKey(key)
        tracker.markUsed(index, key: name)
        return pairs.first(where: { $0.key == name })?.value
    }

    /// The declared value of `key`, when the type being decoded has defaults.
    func fallback<T>(_ key: Key, as type: T.Type) -> T? { defaults?[key.stringValue] as? T }

    /// A key with a declared value: absent, it keeps that value; a bad value is recorded (every problem of the
    /// file is reported together) and the declared value stands in so decoding goes on.
    func decodeDefaulted<T: Decodable>(_ type: T.Type, _ key: Key, fallback: T) throws -> T {
        guard let value = lookup(key) else { return fallback }
        var child = NodeDecoder(node: value, codingPath: codingPath + [key], tracker: tracker)
        child.defaults = defaultFields(of: fallback)
        do {
            return try child.decodeValue(T.self)
        } catch let error as ConfigError {
            tracker.recordSoft(error)
        } catch let error as DecodingError {
            tracker.recordSoft(tracker.convert(error, root: value, base: codingPath + [key]))
        }
        return fallback
    }

    func contains(_ key: Key) -> Bool { lookup(key) != nil }

    func child(_ key: Key) throws -> NodeDecoder {
        guard let value = lookup(key) else {
            throw ConfigError(
                path: renderPath(codingPath + [key]), line: node.line, column: node.column,
                message: "missing required key '\(key.stringValue)'")
        }
        return NodeDecoder(node: value, codingPath: codingPath + [key], tracker: tracker)
    }

    func decodeNil(forKey key: Key) throws -> Bool { lookup(key)?.isNull ?? true }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        if let fallback = fallback(key, as: T.self) { return try decodeDefaulted(type, key, fallback: fallback) }
        return try child(key).decodeValue(T.self)
    }
    /// A problem in an optional key is recorded and the key treated as absent, so decoding goes on
    /// and every problem of the file is reported together.
    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? { try softDecode(type, key) }

    private func softDecode<T: Decodable>(_ type: T.Type, _ key: Key) throws -> T? {
        guard let value = lookup(key) else { return fallback(key, as: T.self) }
        guard !value.isNull else { return nil }
        let child = NodeDecoder(node: value, codingPath: codingPath + [key], tracker: tracker)
        do {
            return try child.decodeValue(T.self)
        } catch let error as ConfigError {
            tracker.recordSoft(error)
        } catch let error as DecodingError {
            tracker.recordSoft(tracker.convert(error, root: value, base: codingPath + [key]))
        }
        return nil
    }
    func decodeIfPresent(_ type: Bool.Type, forKey key: Key) throws -> Bool? { try softDecode(type, key) }
    func decodeIfPresent(_ type: String.Type, forKey key: Key) throws -> String? { try softDecode(type, key) }
    func decodeIfPresent(_ type: Double.Type, forKey key: Key) throws -> Double? { try softDecode(type, key) }
    func decodeIfPresent(_ type: Float.Type, forKey key: Key) throws -> Float? { try softDecode(type, key) }
    func decodeIfPresent(_ type: Int.Type, forKey key: Key) throws -> Int? { try softDecode(type, key) }
    func decodeIfPresent(_ type: Int8.Type, forKey key: Key) throws -> Int8? { try softDecode(type, key) }
    func decodeIfPresent(_ type: Int16.Type, forKey key: Key) throws -> Int16? { try softDecode(type, key) }
    func decodeIfPresent(_ type: Int32.Type, forKey key: Key) throws -> Int32? { try softDecode(type, key) }
    func decodeIfPresent(_ type: Int64.Type, forKey key: Key) throws -> Int64? { try softDecode(type, key) }
    func decodeIfPresent(_ type: UInt.Type, forKey key: Key) throws -> UInt? { try softDecode(type, key) }
    func decodeIfPresent(_ type: UInt8.Type, forKey key: Key) throws -> UInt8? { try softDecode(type, key) }
    func decodeIfPresent(_ type: UInt16.Type, forKey key: Key) throws -> UInt16? { try softDecode(type, key) }
    func decodeIfPresent(_ type: UInt32.Type, forKey key: Key) throws -> UInt32? { try softDecode(type, key) }
    func decodeIfPresent(_ type: UInt64.Type, forKey key: Key) throws -> UInt64? { try softDecode(type, key) }
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool {
        if let fallback = fallback(key, as: Bool.self) { return try decodeDefaulted(type, key, fallback: fallback) }
        return try child(key).decodeValue(type)
    }
    func decode(_ type: String.Type, forKey key: Key) throws -> String {
        if let fallback = fallback(key, as: String.self) { return try decodeDefaulted(type, key, fallback: fallback) }
        return try child(key).decodeValue(type)
    }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double {
        if let fallback = fallback(key, as: Double.self) { return try decodeDefaulted(type, key, fallback: fallback) }
        return try child(key).decodeValue(type)
    }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float {
        if let fallback = fallback(key, as: Float.self) { return try decodeDefaulted(type, key, fallback: fallback) }
        return try child(key).decodeValue(type)
    }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int {
        if let fallback = fallback(key, as: Int.self) { return try decodeDefaulted(type, key, fallback: fallback) }
        return try child(key).decodeValue(type)
    }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 {
        if let fallback = fallback(key, as: Int8.self) { return try decodeDefaulted(type, key, fallback: fallback) }
        return try child(key).integer(type)
    }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 {
        if let fallback = fallback(key, as: Int16.self) { return try decodeDefaulted(type, key, fallback: fallback) }
        return try child(key).integer(type)
    }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 {
        if let fallback = fallback(key, as: Int32.self) { return try decodeDefaulted(type, key, fallback: fallback) }
        return try child(key).decodeValue(type)
    }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 {
        if let fallback = fallback(key, as: Int64.self) { return try decodeDefaulted(type, key, fallback: fallback) }
        return try child(key).decodeValue(type)
    }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt {
        if let fallback = fallback(key, as: UInt.self) { return try decodeDefaulted(type, key, fallback: fallback) }
        return try child(key).decodeValue(type)
    }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 {
        if let fallback = fallback(key, as: UInt8.self) { return try decodeDefaulted(type, key, fallback: fallback) }
        return try child(key).integer(type)
    }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 {
        if let fallback = fallback(key, as: UInt16.self) { return try decodeDefaulted(type, key, fallback: fallback) }
        return try child(key).decodeValue(type)
    }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 {
        if let fallback = fallback(key, as: UInt32.self) { return try decodeDefaulted(type, key, fallback: fallback) }
        return try child(key).decodeValue(type)
    }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 {
        if let fallback = fallback(key, as: UInt64.self) { return try decodeDefaulted(type, key, fallback: fallback) }
        return try child(key).decodeValue(type)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try child(key).container(keyedBy: type)
    }
    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer { try child(key).unkeyedContainer() }
    func superDecoder() throws -> any Decoder { NodeDecoder(node: node, codingPath: codingPath, tracker: tracker, defaults: defaults) }
    func superDecoder(forKey key: Key) throws -> any Decoder { try child(key) }
}

struct UnkeyedNodeContainer: UnkeyedDecodingContainer {
    let items: [ConfigNode]
    let codingPath: [any CodingKey]
    let tracker: KeyTracker
    var currentIndex = 0

    init(items: [ConfigNode], codingPath: [any CodingKey], tracker: KeyTracker) {
        self.items = items
        self.codingPath = codingPath
        self.tracker = tracker
    }

    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    mutating func next() throws -> NodeDecoder {
        guard !isAtEnd else {
            throw ConfigError(path: renderPath(codingPath), line: items.last?.line ?? 0, column: 0, message: "list ended early")
        }
        defer { currentIndex += 1 }
        return NodeDecoder(node: items[currentIndex], codingPath: codingPath + [ConfigCodingKey(intValue: currentIndex)], tracker: tracker)
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, items[currentIndex].isNull else { return false }
        currentIndex += 1
        return true
    }
    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try next().decodeValue(T.self) }
    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try next().container(keyedBy: type)
    }
    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer { try next().unkeyedContainer() }
    mutating func superDecoder() throws -> any Decoder { try next() }
}

struct SingleNodeContainer: SingleValueDecodingContainer {
    let decoder: NodeDecoder
    var codingPath: [any CodingKey] { decoder.codingPath }
    func decodeNil() -> Bool { decoder.node.isNull }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try decoder.decodeValue(T.self) }
}
