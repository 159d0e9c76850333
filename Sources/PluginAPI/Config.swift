// Configuration as a tree of YAML nodes with their lines, and a strict Decoder over it.

import Foundation

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
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
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

/// Several configuration problems.
public struct ConfigErrorList: Error, Sendable {
    /// The problems, in file order.
    public let errors: [ConfigError]
}

// MARK: - implementation

struct ConfigCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue; self.intValue = nil }
    init(intValue: Int) { self.stringValue = "[\(intValue)]"; self.intValue = intValue }
}

func renderPath(_ path: [any CodingKey]) -> String {
    var out = ""
    for key in path {
        if let index = key.intValue { out += "[\(index)]" } else { out += out.isEmpty ? key.stringValue : "." + key.stringValue }
    }
    return out
}

final class KeyTracker: @unchecked Sendable {
    private let lock = NSLock()
    private var mappings: [(path: [any CodingKey], node: ConfigNode, used: Set<String>)] = []
    private var soft: [ConfigError] = []

    func recordSoft(_ error: ConfigError) {
        lock.lock(); defer { lock.unlock() }
        soft.append(error)
    }

    var softErrors: [ConfigError] {
        lock.lock(); defer { lock.unlock() }
        return soft
    }

    func register(path: [any CodingKey], node: ConfigNode) -> Int {
        lock.lock(); defer { lock.unlock() }
        mappings.append((path, node, []))
        return mappings.count - 1
    }

    func markUsed(_ index: Int, key: String) {
        lock.lock(); defer { lock.unlock() }
        mappings[index].used.insert(key)
    }

    func unknownKeys() -> [ConfigError] {
        lock.lock(); defer { lock.unlock() }
        var errors: [ConfigError] = []
        for entry in mappings {
            guard case .mapping(let pairs) = entry.node.value else { continue }
            let known = entry.used.sorted()
            for pair in pairs where !entry.used.contains(pair.key) {
                let path = renderPath(entry.path + [ConfigCodingKey(stringValue: pair.key)])
                let hint = known.isEmpty ? "" : " (known keys here: \(known.joined(separator: ", ")))"
                errors.append(ConfigError(path: path, line: pair.value.line, column: pair.value.column,
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
            DecodingError.Context(codingPath: Array(context.codingPath.dropFirst(count)), debugDescription: context.debugDescription,
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
            return ConfigError(path: renderPath(context.codingPath + [key]), line: parent.line, column: parent.column,
                               message: "missing required key '\(key.stringValue)'")
        case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
            let node = locate(context.codingPath, in: root)
            return ConfigError(path: renderPath(context.codingPath), line: node.line, column: node.column,
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
                guard let next = pairs.first(where: { $0.key == key.stringValue })?.value else { return node }
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
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func error(_ message: String) -> ConfigError {
        ConfigError(path: renderPath(codingPath), line: node.line, column: node.column, message: message)
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        if node.isNull {
            let empty = ConfigNode(.mapping([]), line: node.line, column: node.column)
            let index = tracker.register(path: codingPath, node: empty)
            return KeyedDecodingContainer(KeyedNodeContainer<Key>(node: empty, pairs: [], codingPath: codingPath, tracker: tracker, index: index))
        }
        guard case .mapping(let pairs) = node.value else { throw error("expected a mapping, found \(node.kindName)") }
        var seen = Set<String>()
        for pair in pairs where !seen.insert(pair.key).inserted {
            throw ConfigError(path: renderPath(codingPath + [ConfigCodingKey(stringValue: pair.key)]), line: pair.value.line,
                              column: pair.value.column, message: "duplicate key '\(pair.key)'")
        }
        let index = tracker.register(path: codingPath, node: node)
        return KeyedDecodingContainer(KeyedNodeContainer<Key>(node: node, pairs: pairs, codingPath: codingPath, tracker: tracker, index: index))
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
            return try T(from: self)
        }
    }

    /// The value as `T`; the callers checked `T` first, so this only fails on a decoder bug.
    func typed<T>(_ value: Any) throws -> T {
        guard let value = value as? T else { throw error("internal: could not produce \(T.self)") }
        return value
    }

    func integer<I: FixedWidthInteger>(_ type: I.Type) throws -> I {
        let text = try scalarText("a whole number").replacingOccurrences(of: "_", with: "")
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

    var allKeys: [Key] { pairs.compactMap { Key(stringValue: $0.key) } }

    func lookup(_ key: Key) -> ConfigNode? {
        tracker.markUsed(index, key: key.stringValue)
        return pairs.first(where: { $0.key == key.stringValue })?.value
    }

    func contains(_ key: Key) -> Bool { lookup(key) != nil }

    func child(_ key: Key) throws -> NodeDecoder {
        guard let value = lookup(key) else {
            throw ConfigError(path: renderPath(codingPath + [key]), line: node.line, column: node.column,
                              message: "missing required key '\(key.stringValue)'")
        }
        return NodeDecoder(node: value, codingPath: codingPath + [key], tracker: tracker)
    }

    func decodeNil(forKey key: Key) throws -> Bool { lookup(key)?.isNull ?? true }
    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try child(key).decodeValue(T.self) }
    /// A problem in an optional key is recorded and the key treated as absent, so decoding goes on
    /// and every problem of the file is reported together.
    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? { try softDecode(type, key) }

    private func softDecode<T: Decodable>(_ type: T.Type, _ key: Key) throws -> T? {
        guard let value = lookup(key), !value.isNull else { return nil }
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
    func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try child(key).decodeValue(type) }
    func decode(_ type: String.Type, forKey key: Key) throws -> String { try child(key).decodeValue(type) }
    func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try child(key).decodeValue(type) }
    func decode(_ type: Float.Type, forKey key: Key) throws -> Float { try child(key).decodeValue(type) }
    func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try child(key).decodeValue(type) }
    func decode(_ type: Int8.Type, forKey key: Key) throws -> Int8 { try child(key).integer(type) }
    func decode(_ type: Int16.Type, forKey key: Key) throws -> Int16 { try child(key).integer(type) }
    func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try child(key).decodeValue(type) }
    func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try child(key).decodeValue(type) }
    func decode(_ type: UInt.Type, forKey key: Key) throws -> UInt { try child(key).decodeValue(type) }
    func decode(_ type: UInt8.Type, forKey key: Key) throws -> UInt8 { try child(key).integer(type) }
    func decode(_ type: UInt16.Type, forKey key: Key) throws -> UInt16 { try child(key).decodeValue(type) }
    func decode(_ type: UInt32.Type, forKey key: Key) throws -> UInt32 { try child(key).decodeValue(type) }
    func decode(_ type: UInt64.Type, forKey key: Key) throws -> UInt64 { try child(key).decodeValue(type) }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try child(key).container(keyedBy: type)
    }
    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer { try child(key).unkeyedContainer() }
    func superDecoder() throws -> any Decoder { NodeDecoder(node: node, codingPath: codingPath, tracker: tracker) }
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
