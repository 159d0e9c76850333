// JSON helpers shared by routes and socket events.

import Foundation

/// JSON encoding and decoding with the settings every part of the engine uses.
public enum JSON {
    /// Encodes `value` (sorted keys are not forced; dates as ISO 8601).
    public static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return Array(try encoder.encode(value))
    }

    /// Deepest nesting of arrays and objects a document may have. Decoding ``JSONValue`` costs more
    /// than linear time in the depth (a 1 KB body nested 500 deep took seconds), and no message of
    /// this engine or its plugins needs more.
    public static let maxDepth = 64

    /// The deepest nesting of `[`/`{` outside strings, in one linear pass (stops counting past `limit`).
    public static func nestingDepth(_ bytes: [UInt8], limit: Int = .max) -> Int {
        var depth = 0, deepest = 0
        var inString = false, escaped = false
        for byte in bytes {
            if inString {
                if escaped { escaped = false } else if byte == 0x5C { escaped = true } else if byte == 0x22 { inString = false }
                continue
            }
            switch byte {
            case 0x22: inString = true
            case 0x5B, 0x7B:
                depth += 1
                if depth > deepest {
                    deepest = depth
                    if deepest > limit { return deepest }
                }
            case 0x5D, 0x7D: depth -= 1
            default: break
            }
        }
        return deepest
    }

    /// Decodes `type` from `bytes`.
    /// - Throws: ``PluginError`` 400 `invalid_json` with the field and reason of the first problem,
    ///   or when arrays and objects nest deeper than ``maxDepth``.
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        guard nestingDepth(bytes, limit: maxDepth) <= maxDepth else {
            throw PluginError(status: 400, code: "invalid_json", message: "arrays and objects nest deeper than \(maxDepth) levels")
        }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        do {
            return try decoder.decode(type, from: Data(bytes))
        } catch let error as DecodingError {
            throw PluginError(status: 400, code: "invalid_json", message: describe(error))
        } catch let error as PluginError {
            throw error
        } catch {
            throw PluginError(status: 400, code: "invalid_json", message: "the body is not valid JSON")
        }
    }

    /// A one-line explanation of a `DecodingError`, naming the field.
    public static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context):
            let parent = path(context.codingPath)
            return "missing field '\(parent.isEmpty ? key.stringValue : parent + "." + key.stringValue)'"
        case .typeMismatch(let type, let context):
            return "field '\(path(context.codingPath))' has the wrong type (expected \(type))"
        case .valueNotFound(let type, let context):
            return "field '\(path(context.codingPath))' is null (expected \(type))"
        case .dataCorrupted(let context):
            let where_ = path(context.codingPath)
            return where_.isEmpty ? "the body is not valid JSON" : "field '\(where_)': \(context.debugDescription)"
        @unknown default:
            return "the body could not be decoded"
        }
    }
}

/// Any JSON value, for payloads whose shape a plugin does not fix.
public enum JSONValue: Sendable, Equatable, Codable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// Decodes any JSON value.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Double.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    /// Encodes the value.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .number(let value):
            if value.isFinite, value == value.rounded(), abs(value) < 9.0e15 {
                try container.encode(Int64(value))
            } else {
                try container.encode(value)
            }
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    /// The encoded bytes (`null` for a value that cannot be encoded, such as NaN).
    public func encoded() -> [UInt8] { (try? JSON.encode(self)) ?? Array("null".utf8) }

    /// The member `key` of an object.
    public subscript(key: String) -> JSONValue? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    /// The string, when this is a string.
    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }
    /// The number, when this is a number.
    public var doubleValue: Double? {
        if case .number(let value) = self { return value }
        return nil
    }
    /// The Boolean, when this is one.
    public var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }
}
