// HTTP: adapts Hummingbird requests, responses and sockets to PluginAPI's framework-free types.

import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import NIOCore
import NIOWebSocket
import HummingbirdCore
@_spi(Engine) import PluginAPI
import Synchronization

/// Pulls request body chunks from Hummingbird one at a time, so a slow consumer slows the client
/// (back-pressure), and stops with 413 once the route's body limit is passed.
final class BodyPump: @unchecked Sendable {
    // Touched by one consumer at a time: PluginAPI.RequestBody can be iterated once.
    private var iterator: Hummingbird.RequestBody.AsyncIterator
    private var received = 0
    private let limit: Int

    init(_ body: Hummingbird.RequestBody, limit: Int) {
        self.iterator = body.makeAsyncIterator()
        self.limit = limit
    }

    func next() async throws -> [UInt8]? {
        let chunk: ByteBuffer?
        do {
            chunk = try await iterator.next()
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            // The client hung up or sent a broken body: its fault, a 400, never a 500 in the logs.
            throw PluginError(status: 400, code: "body_incomplete", message: "the request body ended early or was malformed")
        }
        guard let buffer = chunk else { return nil }
        received += buffer.readableBytes
        if received > limit { throw PluginError.payloadTooLarge(limit: limit) }
        return Array(buffer: buffer)
    }
}

/// Hands a Hummingbird response writer to a plugin's streamed body.
final class ResponseWriterBox: PluginAPI.ResponseBodyWriter, @unchecked Sendable {
    var writer: any HummingbirdCore.ResponseBodyWriter
    init(_ writer: any HummingbirdCore.ResponseBodyWriter) { self.writer = writer }
    func write(_ bytes: [UInt8]) async throws { try await writer.write(ByteBuffer(bytes: bytes)) }
}

enum PluginBridge {
    static func method(_ method: HTTPRequest.Method) -> PluginAPI.HTTPMethod? {
        PluginAPI.HTTPMethod(rawValue: method.rawValue)
    }

    static func headers(_ fields: HTTPFields) -> HTTPHeaders {
        HTTPHeaders(fields.map { ($0.name.canonicalName, $0.value) })
    }

    static func query(_ uri: URI) -> [(name: String, value: String)] {
        guard let query = uri.query, !query.isEmpty else { return [] }
        return FormURLEncoding.parse(query)
    }

    /// Builds a PluginAPI request.
    static func request(
        _ request: Request, context: EngineRequestContext, parameterNames: [String], caller: Caller,
        remoteAddress: String?, bodyLimit: Int?, headers converted: HTTPHeaders? = nil,
        query parsed: [(name: String, value: String)]? = nil
    ) -> PluginRequest {
        var parameters: [String: String] = [:]
        for name in parameterNames {
            if let value = context.parameters.get(name) { parameters[name] = value.removingPercentEncoding ?? value }
        }
        let body: PluginAPI.RequestBody
        if let bodyLimit {
            let pump = BodyPump(request.body, limit: bodyLimit)
            let length = request.headers[.contentLength].flatMap { Int($0) }
            body = PluginAPI.RequestBody(contentLength: length, next: { try await pump.next() })
        } else {
            body = .empty
        }
        return PluginRequest(
            id: context.id, method: method(request.method) ?? .get, path: request.uri.path, pathParameters: parameters,
            query: parsed ?? query(request.uri), headers: converted ?? headers(request.headers), remoteAddress: remoteAddress,
            caller: caller, body: body)
    }

    /// A close reason cut to what a close frame can carry (123 bytes), on a character boundary.
    static func closeReason(_ text: String) -> String {
        var reason = text
        while reason.utf8.count > 120 { reason.removeLast() }
        return reason
    }

    /// Converts a PluginAPI response.
    static func response(_ response: PluginResponse) -> Response {
        var fields = HTTPFields()
        for (name, value) in response.headers {
            if let field = HTTPField.Name(name) { fields.append(HTTPField(name: field, value: value)) }
        }
        fields[.xContentTypeOptions] = "nosniff"
        let body: Hummingbird.ResponseBody
        switch response.body {
        case .empty:
            body = Hummingbird.ResponseBody()
        case .bytes(let bytes):
            body = Hummingbird.ResponseBody(byteBuffer: ByteBuffer(bytes: bytes))
        case .stream(let length, let write):
            body = Hummingbird.ResponseBody(contentLength: length) { writer in
                let box = ResponseWriterBox(writer)
                try await write(box)
                writer = box.writer
                try await writer.finish(nil)
            }
        }
        return Response(status: HTTPResponse.Status(code: response.status), headers: fields, body: body)
    }
}

/// A live socket of a plugin's own endpoint.
final class PluginSocketSession: WebSocketSession, @unchecked Sendable {
    let id: String
    let request: PluginRequest
    let admission: (any Sendable)?
    let inbound: WebSocketInbound
    let outbound: WebSocketOutboundWriter

    init(
        id: String, request: PluginRequest, admission: (any Sendable)?, inbound stream: WebSocketInboundStream,
        maxFrameSize: Int, outbound: WebSocketOutboundWriter
    ) {
        self.id = id
        self.request = request
        self.admission = admission
        self.outbound = outbound
        let iteratorBox = MessageIteratorBox(stream.messages(maxSize: maxFrameSize).makeAsyncIterator())
        self.inbound = WebSocketInbound(next: {
            // WSCore limits fragmented messages; a single large frame is checked here. Too big: 1009, end.
            guard let message = try await iteratorBox.next() else { return nil }
            let size: Int
            switch message {
            case .text(let text): size = text.utf8.count
            case .binary(let bytes): size = bytes.count
            }
            guard size <= maxFrameSize else {
                try? await outbound.close(.messageTooLarge, reason: "message larger than \(maxFrameSize) bytes")
                return nil
            }
            return message
        })
    }

    func send(_ text: String) async throws { try await outbound.write(.text(text)) }
    func send(binary: [UInt8]) async throws { try await outbound.write(.binary(ByteBuffer(bytes: binary))) }
    func close(code: UInt16, reason: String) async {
        try? await outbound.close(WebSocketErrorCode(codeNumber: Int(code)), reason: PluginBridge.closeReason(reason))
    }
}

final class MessageIteratorBox: @unchecked Sendable {
    var iterator: WebSocketInboundMessageStream.AsyncIterator
    init(_ iterator: WebSocketInboundMessageStream.AsyncIterator) { self.iterator = iterator }
    func next() async throws -> PluginAPI.WebSocketMessage? {
        guard let message = try await iterator.next() else { return nil }
        switch message {
        case .text(let text): return .text(text)
        case .binary(let buffer): return .binary(Array(buffer: buffer))
        }
    }
}

/// Sessions of plugin endpoints, so that shutdown can close them.
final class PluginSocketRegistry: Sendable {
    private let sessions = Mutex<[String: PluginSocketSession]>([:])
    private let counter = Atomic<Int>(0)

    func nextID(_ prefix: String) -> String { "\(prefix)-\(counter.add(1, ordering: .relaxed).newValue)" }
    func add(_ session: PluginSocketSession) { sessions.withLock { $0[session.id] = session } }
    func remove(_ id: String) { _ = sessions.withLock { $0.removeValue(forKey: id) } }
    var count: Int { sessions.withLock { $0.count } }

    func closeAll(code: UInt16, reason: String) async {
        for session in sessions.withLock({ Array($0.values) }) { await session.close(code: code, reason: reason) }
    }
}
