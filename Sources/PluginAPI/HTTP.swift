// HTTP as plugins see it: framework-free request, body, response and error types.

import Foundation
import Synchronization

/// HTTP request methods a plugin route can answer.
public enum HTTPMethod: String, Sendable, CaseIterable {
    case get = "GET"
    case head = "HEAD"
    case post = "POST"
    case put = "PUT"
    case patch = "PATCH"
    case delete = "DELETE"
    case options = "OPTIONS"
}

/// Who may call a route. The engine checks it before the handler runs.
public enum AccessLevel: String, Sendable, Codable, CaseIterable {
    /// Anyone.
    case `public`
    /// An overlay (with the overlay token when one is configured), a moderator or the streamer.
    case overlay
    /// A moderator session or the streamer token.
    case moderator
    /// The streamer token (`x-streamer-token`) only.
    case streamer
}

/// The authenticated identity behind a request or socket.
public enum Caller: Sendable, Equatable {
    /// No credentials were presented (or none were needed).
    case anonymous
    /// An overlay page.
    case overlay
    /// A moderator with a valid session.
    case moderator(ModeratorSessionInfo)
    /// The streamer (correct `x-streamer-token`).
    case streamer

    /// A short label for logs and metrics: `anonymous`, `overlay`, `moderator`, `streamer`.
    public var role: String {
        switch self {
        case .anonymous: return "anonymous"
        case .overlay: return "overlay"
        case .moderator: return "moderator"
        case .streamer: return "streamer"
        }
    }
}

/// An ordered list of header fields with case-insensitive lookup.
public struct HTTPHeaders: Sendable, Sequence, ExpressibleByDictionaryLiteral {
    /// The fields in order.
    public private(set) var fields: [(name: String, value: String)]

    /// Creates headers from fields.
    public init(_ fields: [(name: String, value: String)] = []) { self.fields = fields }
    /// Creates headers from a literal.
    public init(dictionaryLiteral elements: (String, String)...) { self.fields = elements.map { ($0.0, $0.1) } }

    /// The first value of `name`, compared case-insensitively.
    public subscript(name: String) -> String? {
        fields.first(where: { $0.name.caseInsensitiveCompare(name) == .orderedSame })?.value
    }

    /// Every value of `name`.
    public func values(_ name: String) -> [String] {
        fields.filter { $0.name.caseInsensitiveCompare(name) == .orderedSame }.map(\.value)
    }

    /// Appends a field.
    public mutating func add(_ name: String, _ value: String) { fields.append((name, value)) }

    /// Replaces every field called `name` by one with `value`.
    public mutating func set(_ name: String, _ value: String) {
        fields.removeAll { $0.name.caseInsensitiveCompare(name) == .orderedSame }
        fields.append((name, value))
    }

    /// Iterates the fields in order.
    public func makeIterator() -> IndexingIterator<[(name: String, value: String)]> { fields.makeIterator() }
}

/// A request body: read it whole with a limit, or stream it chunk by chunk (with back-pressure).
///
/// A body can be consumed once.
public final class RequestBody: AsyncSequence, Sendable {
    public typealias Element = [UInt8]

    /// The declared `Content-Length`, when the client sent one.
    public let contentLength: Int?
    private let pull: @Sendable () async throws -> [UInt8]?
    private let consumed = Atomic<Bool>(false)

    /// Creates a body that reads its chunks from `next` (nil ends the body). Engine use.
    @_spi(Engine)
    public init(contentLength: Int?, next: @escaping @Sendable () async throws -> [UInt8]?) {
        self.contentLength = contentLength
        self.pull = next
    }

    /// An empty body.
    public static var empty: RequestBody { RequestBody(contentLength: 0, next: { nil }) }

    /// A body holding `bytes` (tests and in-process callers).
    public static func bytes(_ bytes: [UInt8]) -> RequestBody {
        let sent = Atomic<Bool>(false)
        return RequestBody(contentLength: bytes.count, next: { sent.exchange(true, ordering: .relaxed) ? nil : bytes })
    }

    /// Iterates the chunks as they arrive.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let pull: @Sendable () async throws -> [UInt8]?
        /// The next chunk, or nil at the end.
        public mutating func next() async throws -> [UInt8]? { try await pull() }
    }

    /// Starts streaming the body. Throws ``PluginError`` if the body was already consumed.
    public func makeAsyncIterator() -> AsyncIterator {
        if consumed.exchange(true, ordering: .acquiringAndReleasing) {
            return AsyncIterator(pull: { throw PluginError(status: 500, code: "body_consumed", message: "request body was already read") })
        }
        return AsyncIterator(pull: pull)
    }

    /// Reads the whole body.
    /// - Parameter limit: Largest accepted size in bytes.
    /// - Returns: The bytes.
    /// - Throws: ``PluginError`` 413 `payload_too_large` when the body is larger than `limit`.
    public func collect(upTo limit: Int) async throws -> [UInt8] {
        if let length = contentLength, length > limit { throw PluginError.payloadTooLarge(limit: limit) }
        var out: [UInt8] = []
        for try await chunk in self {
            if out.count + chunk.count > limit { throw PluginError.payloadTooLarge(limit: limit) }
            out.append(contentsOf: chunk)
        }
        return out
    }
}

/// An incoming HTTP request to a plugin route.
public struct PluginRequest: Sendable {
    /// Engine-assigned id, also in the `x-request-id` response header and the logs.
    public let id: String
    /// The method.
    public let method: HTTPMethod
    /// The path without the query, e.g. `/api/media/abc`.
    public let path: String
    /// Values of the `{name}` segments of the route's path.
    public let pathParameters: [String: String]
    /// Query items in order (a name may repeat).
    public let query: [(name: String, value: String)]
    /// Header fields.
    public let headers: HTTPHeaders
    /// The client's address (after trusted-proxy resolution), when known.
    public let remoteAddress: String?
    /// Who is calling, as established by the engine.
    public let caller: Caller
    /// The body.
    public let body: RequestBody

    /// Creates a request. Engine and test use.
    public init(
        id: String, method: HTTPMethod, path: String, pathParameters: [String: String] = [:],
        query: [(name: String, value: String)] = [], headers: HTTPHeaders = [:], remoteAddress: String? = nil,
        caller: Caller = .anonymous, body: RequestBody = .empty
    ) {
        self.id = id
        self.method = method
        self.path = path
        self.pathParameters = pathParameters
        self.query = query
        self.headers = headers
        self.remoteAddress = remoteAddress
        self.caller = caller
        self.body = body
    }

    /// The first query value called `name`.
    public func queryValue(_ name: String) -> String? { query.first(where: { $0.name == name })?.value }

    /// A path parameter that the route pattern guarantees.
    /// - Throws: ``PluginError`` 400 when it is missing (a route declared without it).
    public func parameter(_ name: String) throws -> String {
        guard let value = pathParameters[name] else {
            throw PluginError.badRequest("missing path parameter '\(name)'")
        }
        return value
    }

    /// The media type of the body without parameters, lower-cased (e.g. `application/json`).
    public var contentType: String? {
        guard let raw = headers["content-type"] else { return nil }
        // `split` omits empty pieces, so `;` or `` yield no first piece: take the text before any `;` instead.
        let media = raw.prefix(while: { $0 != ";" }).trimmingCharacters(in: .whitespaces).lowercased()
        return media.isEmpty ? nil : media
    }

    /// Decodes a JSON body.
    /// - Parameters:
    ///   - type: The type to decode.
    ///   - limit: Largest accepted body in bytes.
    /// - Throws: ``PluginError`` 400 `invalid_json` naming the problem, or 413.
    public func decodeJSON<T: Decodable>(_ type: T.Type, limit: Int = 1 << 20) async throws -> T {
        let bytes = try await body.collect(upTo: limit)
        return try JSON.decode(type, from: bytes)
    }

    /// Reads simple fields from a form (`application/x-www-form-urlencoded`) or a JSON object body.
    ///
    /// JSON values that are strings, numbers or booleans become their text; others are refused.
    /// - Parameter limit: Largest accepted body in bytes.
    /// - Returns: Field names to values (the first value of a repeated name).
    /// - Throws: ``PluginError`` 400 for a malformed body, 415 for another content type, 413 for size.
    public func formFields(limit: Int = 64 << 10) async throws -> [String: String] {
        let bytes = try await body.collect(upTo: limit)
        if bytes.isEmpty { return [:] }
        switch contentType {
        case "application/json":
            guard case .object(let object)? = try? JSON.decode(JSONValue.self, from: bytes) else {
                throw PluginError.badRequest("the body must be a JSON object", code: "invalid_json")
            }
            var out: [String: String] = [:]
            for (key, value) in object {
                switch value {
                case .string(let text): out[key] = text
                // Whole numbers without a fraction (5, not 5.0); booleans as true/false.
                case .number(let number):
                    out[key] = number == number.rounded() && abs(number) < 1e15 ? String(Int64(number)) : String(number)
                case .bool(let flag): out[key] = flag ? "true" : "false"
                case .null: continue
                default: throw PluginError.badRequest("field '\(key)' must be a string", code: "invalid_field")
                }
            }
            return out
        case "application/x-www-form-urlencoded", nil:
            guard let text = String(bytes: bytes, encoding: .utf8) else {
                throw PluginError.badRequest("the form is not valid UTF-8", code: "invalid_form")
            }
            var out: [String: String] = [:]
            for (name, value) in FormURLEncoding.parse(text) where out[name] == nil { out[name] = value }
            return out
        case let other?:
            throw PluginError(
                status: 415, code: "unsupported_media_type",
                message: "expected application/x-www-form-urlencoded or application/json, got \(other)")
        }
    }
}

/// `application/x-www-form-urlencoded` parsing (also used for query strings).
public enum FormURLEncoding {
    /// Splits `a=1&b=x%20y` into pairs, decoding `+` and percent escapes. Malformed escapes are kept as written.
    public static func parse(_ text: Substring) -> [(name: String, value: String)] {
        text.split(separator: "&", omittingEmptySubsequences: true).map { part in
            let pieces = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = decode(pieces[0])
            let value = pieces.count > 1 ? decode(pieces[1]) : ""
            return (name, value)
        }
    }

    /// Same as ``parse(_:)-swift.type.method`` for a String.
    public static func parse(_ text: String) -> [(name: String, value: String)] { parse(text[...]) }

    static func decode(_ text: Substring) -> String {
        let plus = text.replacingOccurrences(of: "+", with: " ")
        return plus.removingPercentEncoding ?? plus
    }
}

/// A response body.
public enum ResponseBody: Sendable {
    /// No body.
    case empty
    /// The whole body in memory.
    case bytes([UInt8])
    /// A body written piece by piece (large files); `length` becomes `Content-Length` when known.
    case stream(length: Int?, writer: @Sendable (any ResponseBodyWriter) async throws -> Void)
}

/// Receives the pieces of a streamed response. Each `write` waits until the client can take more.
public protocol ResponseBodyWriter: Sendable {
    /// Sends the next piece of the body.
    func write(_ bytes: [UInt8]) async throws
}

/// A response from a plugin route.
public struct PluginResponse: Sendable {
    /// HTTP status code.
    public var status: Int
    /// Header fields (the engine adds `content-length`, `x-request-id` and security headers).
    public var headers: HTTPHeaders
    /// The body.
    public var body: ResponseBody

    /// Creates a response.
    public init(status: Int = 200, headers: HTTPHeaders = [:], body: ResponseBody = .empty) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A JSON response.
    /// - Parameters:
    ///   - value: The value to encode (keys as declared, dates as ISO 8601).
    ///   - status: HTTP status, 200 by default.
    /// - Throws: `EncodingError` for values JSON cannot hold (such as a non-finite Double).
    public static func json<T: Encodable>(_ value: T, status: Int = 200) throws -> PluginResponse {
        PluginResponse(status: status, headers: ["content-type": "application/json; charset=utf-8"], body: .bytes(try JSON.encode(value)))
    }

    /// A plain-text response.
    public static func text(_ text: String, status: Int = 200) -> PluginResponse {
        PluginResponse(status: status, headers: ["content-type": "text/plain; charset=utf-8"], body: .bytes(Array(text.utf8)))
    }

    /// The standard error response `{"error": {"code", "message"}}`.
    public static func error(_ error: PluginError) -> PluginResponse {
        var headers = error.headers
        headers.set("content-type", "application/json; charset=utf-8")
        return PluginResponse(status: error.status, headers: headers, body: .bytes(error.jsonBody))
    }
}

/// An error a handler throws to answer with a status and the standard error shape.
///
/// Body: `{"error": {"code": "...", "message": "...", ...details}}`.
public struct PluginError: Error, Sendable, CustomStringConvertible {
    /// HTTP status code.
    public var status: Int
    /// Stable machine-readable code, e.g. `invalid_field`.
    public var code: String
    /// Human-readable explanation.
    public var message: String
    /// Extra members of the `error` object (e.g. the element ids that use a file).
    public var details: [String: JSONValue]
    /// Extra response headers (e.g. `Retry-After`).
    public var headers: HTTPHeaders

    /// Creates an error.
    public init(status: Int, code: String, message: String, details: [String: JSONValue] = [:], headers: HTTPHeaders = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers
    }

    /// `code: message (status)`.
    public var description: String { "\(code): \(message) (\(status))" }

    /// The JSON body of the error.
    public var jsonBody: [UInt8] {
        var inner: [String: JSONValue] = details
        inner["code"] = .string(code)
        inner["message"] = .string(message)
        return JSONValue.object(["error": .object(inner)]).encoded()
    }

    /// 400 with `code` (default `bad_request`).
    public static func badRequest(_ message: String, code: String = "bad_request") -> PluginError {
        PluginError(status: 400, code: code, message: message)
    }
    /// 400 `invalid_field` naming the field.
    public static func invalidField(_ field: String, _ message: String) -> PluginError {
        PluginError(status: 400, code: "invalid_field", message: "\(field): \(message)", details: ["field": .string(field)])
    }
    /// 401 `unauthorized`.
    public static func unauthorized(_ message: String = "authentication required") -> PluginError {
        PluginError(status: 401, code: "unauthorized", message: message)
    }
    /// 403 `forbidden`.
    public static func forbidden(_ message: String) -> PluginError { PluginError(status: 403, code: "forbidden", message: message) }
    /// 404 `not_found`.
    public static func notFound(_ message: String) -> PluginError { PluginError(status: 404, code: "not_found", message: message) }
    /// 409 `conflict`.
    public static func conflict(_ message: String, details: [String: JSONValue] = [:]) -> PluginError {
        PluginError(status: 409, code: "conflict", message: message, details: details)
    }
    /// 413 `payload_too_large`.
    public static func payloadTooLarge(limit: Int) -> PluginError {
        PluginError(
            status: 413, code: "payload_too_large", message: "the body is larger than the limit of \(limit) bytes",
            details: ["limit": .number(Double(limit))])
    }
    /// 429 `rate_limited` with `Retry-After`.
    public static func rateLimited(retryAfterSeconds: Int) -> PluginError {
        PluginError(
            status: 429, code: "rate_limited", message: "too many requests; retry after \(retryAfterSeconds) s",
            details: ["retry_after": .number(Double(retryAfterSeconds))], headers: ["retry-after": String(retryAfterSeconds)])
    }
    /// 503 `store_unavailable` with `Retry-After: 2`.
    public static func storeUnavailable(_ message: String = "the state store is unavailable") -> PluginError {
        PluginError(status: 503, code: "store_unavailable", message: message, headers: ["retry-after": "2"])
    }
}
