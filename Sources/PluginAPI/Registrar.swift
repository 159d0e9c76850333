// What a plugin registers during set-up: routes, socket event handlers and its own socket endpoints.

import Foundation
import Synchronization

/// A token-bucket rate limit on a route, applied per client address.
public struct RateLimit: Sendable, Equatable {
    /// Bucket name; `limits.rate.<name>` in `overlay.yaml` overrides the numbers.
    public let name: String
    /// Requests allowed in a burst.
    public let burst: Int
    /// Requests added back per minute.
    public let perMinute: Int

    /// Creates a limit.
    public init(name: String, burst: Int, perMinute: Int) {
        self.name = name
        self.burst = burst
        self.perMinute = perMinute
    }
}

/// Handles an HTTP request to a plugin route.
public typealias RouteHandler = @Sendable (PluginRequest) async throws -> PluginResponse

/// A registered HTTP route.
public struct PluginRoute: Sendable {
    /// The method.
    public let method: HTTPMethod
    /// The path pattern: literal segments and `{name}` parameters, e.g. `/api/media/{id}`.
    public let path: String
    /// Who may call it.
    public let access: AccessLevel
    /// Largest request body (whole or streamed); nil uses `limits.max_body_bytes`.
    public let bodyLimit: Int?
    /// Optional rate limit.
    public let rateLimit: RateLimit?
    /// One line for `overlay-engine plugins`.
    public let summary: String
    /// The handler.
    public let handler: RouteHandler
}

/// A registered handler of socket events.
public struct PluginEventHandler: Sendable {
    /// The event type, e.g. `tts.finished`.
    public let event: String
    /// The channels it listens on.
    public let channels: [SocketChannel]
    /// The handler.
    public let handler: SocketEventHandler
}

/// A registered connect hook.
public struct PluginConnectHandler: Sendable {
    /// The channels it listens on.
    public let channels: [SocketChannel]
    /// The hook.
    public let handler: SocketConnectHandler
}

/// A registered disconnect hook.
public struct PluginDisconnectHandler: Sendable {
    /// The channels it listens on.
    public let channels: [SocketChannel]
    /// The hook.
    public let handler: SocketDisconnectHandler
}

/// A plugin's own WebSocket endpoint.
public struct PluginWebSocketEndpoint: Sendable {
    /// The path pattern, e.g. `/ws/webrtc/{room}/publisher`.
    public let path: String
    /// Who may connect (checked before `shouldUpgrade`).
    public let access: AccessLevel
    /// Largest inbound frame in bytes.
    public let maxFrameSize: Int
    /// Optional per-client limit on opening sockets (refused with 4429 past it).
    public let rateLimit: RateLimit?
    /// Decides whether to upgrade (verify tokens here).
    public let shouldUpgrade: @Sendable (PluginRequest) async throws -> WebSocketUpgradeDecision
    /// Runs the socket until it closes.
    public let handler: @Sendable (any WebSocketSession) async throws -> Void
}

/// Collects what a plugin registers in ``OverlayPlugin/setUp(_:)``.
public final class PluginRegistrar: Sendable {
    private struct Registrations {
        var routes: [PluginRoute] = []
        var events: [PluginEventHandler] = []
        var connects: [PluginConnectHandler] = []
        var disconnects: [PluginDisconnectHandler] = []
        var endpoints: [PluginWebSocketEndpoint] = []
        var elementTypes: [String] = []
    }

    private let state = Mutex(Registrations())

    /// Creates an empty registrar. Engine use.
    public init() {}

    /// Registers an HTTP route.
    /// - Parameters:
    ///   - method: The method.
    ///   - path: `/literal/{param}` pattern; must start with `/`.
    ///   - access: Who may call it; the engine rejects others with 401/403 before `handler` runs.
    ///   - bodyLimit: Largest request body, read whole or streamed: a larger `Content-Length` is refused with 413
    ///     before the handler runs, and a stream stops with 413 past it; nil uses `limits.max_body_bytes`.
    ///   - rateLimit: Optional per-client limit (429 with `Retry-After` past it).
    ///   - summary: One line for the plugin table.
    ///   - handler: Answers the request.
    public func route(_ method: HTTPMethod, _ path: String, access: AccessLevel, bodyLimit: Int? = nil,
                      rateLimit: RateLimit? = nil, summary: String = "", handler: @escaping RouteHandler) {
        state.withLock {
            $0.routes.append(PluginRoute(method: method, path: path, access: access, bodyLimit: bodyLimit,
                                         rateLimit: rateLimit, summary: summary, handler: handler))
        }
    }

    /// Registers a handler for socket events of type `event` arriving on `channels`.
    /// Throwing a ``PluginError`` sends `{"type":"error","code","message","event"}` back to that connection.
    public func on(_ event: String, channels: [SocketChannel], handler: @escaping SocketEventHandler) {
        state.withLock { $0.events.append(PluginEventHandler(event: event, channels: channels, handler: handler)) }
    }

    /// Registers a hook that runs when a connection opens on one of `channels`.
    public func onConnect(channels: [SocketChannel], handler: @escaping SocketConnectHandler) {
        state.withLock { $0.connects.append(PluginConnectHandler(channels: channels, handler: handler)) }
    }

    /// Registers a hook that runs once a connection on one of `channels` has closed.
    public func onDisconnect(channels: [SocketChannel], handler: @escaping SocketDisconnectHandler) {
        state.withLock { $0.disconnects.append(PluginDisconnectHandler(channels: channels, handler: handler)) }
    }

    /// Registers a WebSocket endpoint of the plugin's own.
    /// - Parameters:
    ///   - path: `/literal/{param}` pattern.
    ///   - access: Engine-checked access level.
    ///   - maxFrameSize: Largest inbound message (fragmented or not); a bigger one closes the socket with 1009
    ///     and ends ``WebSocketSession/inbound``.
    ///   - rateLimit: Optional per-client limit on opening sockets (overridable as `limits.rate.<name>`).
    ///   - shouldUpgrade: Accepts or rejects the upgrade request.
    ///   - handler: Runs the socket.
    public func webSocket(_ path: String, access: AccessLevel = .public, maxFrameSize: Int = 64 << 10, rateLimit: RateLimit? = nil,
                          shouldUpgrade: @escaping @Sendable (PluginRequest) async throws -> WebSocketUpgradeDecision,
                          handler: @escaping @Sendable (any WebSocketSession) async throws -> Void) {
        state.withLock {
            $0.endpoints.append(PluginWebSocketEndpoint(path: path, access: access, maxFrameSize: maxFrameSize, rateLimit: rateLimit,
                                                        shouldUpgrade: shouldUpgrade, handler: handler))
        }
    }

    /// Declares a scene element type the plugin renders (accepted by scene validation).
    public func sceneElementType(_ name: String) {
        state.withLock { $0.elementTypes.append(name) }
    }

    /// The registered routes.
    public var routes: [PluginRoute] { state.withLock { $0.routes } }
    /// The registered event handlers.
    public var eventHandlers: [PluginEventHandler] { state.withLock { $0.events } }
    /// The registered connect hooks.
    public var connectHandlers: [PluginConnectHandler] { state.withLock { $0.connects } }
    /// The registered disconnect hooks.
    public var disconnectHandlers: [PluginDisconnectHandler] { state.withLock { $0.disconnects } }
    /// The registered endpoints.
    public var webSocketEndpoints: [PluginWebSocketEndpoint] { state.withLock { $0.endpoints } }
    /// The declared scene element types.
    public var sceneElementTypes: [String] { state.withLock { $0.elementTypes } }
}
