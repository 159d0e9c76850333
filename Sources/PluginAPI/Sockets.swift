// WebSocket as plugins see it: events on the engine's channels, and whole endpoints of a plugin's own.

import Foundation

/// The engine's own WebSocket channels.
public enum SocketChannel: String, Sendable, Codable, CaseIterable {
    /// `WS /ws/overlay`: overlay pages. Read-only apart from acknowledgements and plugin events.
    case overlay
    /// `WS /ws/moderator?session=`: moderator panels.
    case moderator
}

/// Where a broadcast goes.
public enum SocketTarget: Sendable, Equatable {
    /// One connection, by ``SocketConnection/id``.
    case connection(String)
    /// Every connection of a channel.
    case channel(SocketChannel)
    /// Every connection of every channel.
    case all
}

/// A typed event that arrived on a channel: a JSON object with a string member `type`.
public struct SocketEvent: Sendable {
    /// The `type` member, e.g. `tts.finished`.
    public let type: String
    /// The whole JSON text of the message, `type` included.
    public let raw: [UInt8]

    /// Creates an event. Engine and test use.
    public init(type: String, raw: [UInt8]) {
        self.type = type
        self.raw = raw
    }

    /// Decodes the message into `T` (which may ignore `type`).
    /// - Throws: ``PluginError`` 400 `invalid_json` naming the field.
    public func decode<T: Decodable>(_ type: T.Type) throws -> T { try JSON.decode(type, from: raw) }
}

/// Builds the text of an outgoing event: `{"type": ..., ...members of payload}`.
public enum SocketMessage {
    /// Encodes `payload` once and puts `type` first.
    /// - Parameters:
    ///   - type: The event type, e.g. `tts.speak`.
    ///   - payload: An `Encodable` whose encoding is a JSON object.
    /// - Returns: The JSON text.
    /// - Throws: `EncodingError`, or ``PluginError`` when the payload does not encode to an object.
    public static func make<T: Encodable>(type: String, payload: T) throws -> String {
        let body = try JSON.encode(payload)
        let typeJSON = String(decoding: try JSON.encode(type), as: UTF8.self)
        guard body.first == UInt8(ascii: "{") else {
            throw PluginError(status: 500, code: "invalid_event", message: "event payload must encode to a JSON object")
        }
        let rest = String(decoding: body.dropFirst(), as: UTF8.self)
        let trimmed = rest.trimmingCharacters(in: .whitespaces)
        return trimmed == "}" ? "{\"type\":\(typeJSON)}" : "{\"type\":\(typeJSON),\(rest)"
    }

    /// An event with no members besides `type`.
    public static func make(type: String) -> String {
        let typeJSON = (try? JSON.encode(type)).map { String(decoding: $0, as: UTF8.self) } ?? "\"\""
        return "{\"type\":\(typeJSON)}"
    }
}

/// One live connection on an engine channel.
public protocol SocketConnection: Sendable {
    /// Engine-assigned id, unique for the engine's lifetime.
    var id: String { get }
    /// The channel it is connected to.
    var channel: SocketChannel { get }
    /// Who opened it.
    var caller: Caller { get }
    /// Queues a text frame. Never blocks: a connection that cannot keep up is dropped by the engine.
    func send(_ text: String)
    /// Closes the connection with a WebSocket close code and reason.
    func close(code: UInt16, reason: String)
}

/// Broadcasts to the engine's channels.
public protocol SocketHub: Sendable {
    /// Queues `text` for every connection of `target`. Encode once, send to many.
    /// - Returns: How many connections it was queued for.
    @discardableResult
    func send(_ text: String, to target: SocketTarget) -> Int
    /// How many connections are open on `channel`.
    func connectionCount(_ channel: SocketChannel) -> Int
}

/// Handles one event type arriving on engine channels.
public typealias SocketEventHandler = @Sendable (SocketEvent, any SocketConnection) async throws -> Void

/// Called when a connection opens on an engine channel (e.g. to send it the current state).
public typealias SocketConnectHandler = @Sendable (any SocketConnection) async throws -> Void

/// Called once a connection on an engine channel has closed (e.g. to forget what it reported).
public typealias SocketDisconnectHandler = @Sendable (any SocketConnection) async -> Void

/// A frame of a plugin's own WebSocket endpoint.
public enum WebSocketMessage: Sendable, Equatable {
    /// A text frame.
    case text(String)
    /// A binary frame.
    case binary([UInt8])
}

/// What a plugin endpoint's upgrade check decides.
public enum WebSocketUpgradeDecision: Sendable {
    /// Upgrade; `admission` (a value of the plugin's own type, e.g. the verified room and role) reaches the session
    /// as ``WebSocketSession/admission(as:)``.
    case accept(admission: (any Sendable)? = nil)
    /// Refuse with an HTTP error response.
    case reject(PluginError)

    /// Upgrade with string facts, read back as ``WebSocketSession/userInfo``.
    public static func accept(userInfo: [String: String]) -> WebSocketUpgradeDecision { .accept(admission: userInfo) }
}

/// The inbound frames of a plugin endpoint's socket, in order. Ends when the peer closes.
public final class WebSocketInbound: AsyncSequence, Sendable {
    public typealias Element = WebSocketMessage
    private let pull: @Sendable () async throws -> WebSocketMessage?

    /// Creates the sequence from a pull function. Engine use.
    @_spi(Engine)
    public init(next: @escaping @Sendable () async throws -> WebSocketMessage?) { self.pull = next }

    /// Iterates the frames.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let pull: @Sendable () async throws -> WebSocketMessage?
        /// The next frame, or nil when the socket closed.
        public mutating func next() async throws -> WebSocketMessage? { try await pull() }
    }

    /// Starts iterating. Iterate from one task only.
    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(pull: pull) }
}

/// A live socket of a plugin's own endpoint.
public protocol WebSocketSession: Sendable {
    /// Engine-assigned id.
    var id: String { get }
    /// The upgrade request (its body is empty).
    var request: PluginRequest { get }
    /// What the upgrade check accepted with (``WebSocketUpgradeDecision/accept(admission:)``), or nil.
    var admission: (any Sendable)? { get }
    /// The frames the peer sends.
    var inbound: WebSocketInbound { get }
    /// Sends a text frame, waiting while the peer is slow.
    func send(_ text: String) async throws
    /// Sends a binary frame.
    func send(binary: [UInt8]) async throws
    /// Closes the socket.
    func close(code: UInt16, reason: String) async
}

extension WebSocketSession {
    /// The upgrade check's admission value as the plugin's own type, e.g. `session.admission(as: PeerAdmission.self)`;
    /// nil when it accepted with another type or none.
    public func admission<T: Sendable>(as type: T.Type) -> T? { admission as? T }

    /// The string facts of ``WebSocketUpgradeDecision/accept(userInfo:)``; empty for a typed admission.
    public var userInfo: [String: String] { admission as? [String: String] ?? [:] }
}
