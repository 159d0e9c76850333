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
        var elementTypes: [ElementType] = []
        var webModules: [WebModule] = []
        var webPages: [WebPage] = []
        var closed = false
    }

    private let state = Mutex(Registrations())
    private let refused: @Sendable (String) -> Void

    /// Creates an empty registrar. Engine use.
    /// - Parameter refused: Called with a description of every registration made after ``close()`` (which is ignored).
    @_spi(Engine)
    public init(refused: @escaping @Sendable (String) -> Void = { _ in }) {
        self.refused = refused
    }

    /// Ends registration: the engine calls this when ``OverlayPlugin/setUp(_:)`` returns. Later registrations
    /// are refused (reported through `refused` and ignored), as the engine has built its routes by then.
    @_spi(Engine)
    public func close() { state.withLock { $0.closed = true } }

    /// Runs `change` unless registration has ended.
    private func register(_ what: @autoclosure () -> String, _ change: (inout Registrations) -> Void) {
        let accepted = state.withLock { registrations -> Bool in
            guard !registrations.closed else { return false }
            change(&registrations)
            return true
        }
        if !accepted { refused("\(what()) registered after setUp returned; ignored (register everything inside setUp)") }
    }

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
    public func route(
        _ method: HTTPMethod, _ path: String, access: AccessLevel, bodyLimit: Int? = nil,
        rateLimit: RateLimit? = nil, summary: String = "", handler: @escaping RouteHandler
    ) {
        register("route \(method.rawValue) \(path)") {
            $0.routes.append(
                PluginRoute(
                    method: method, path: path, access: access, bodyLimit: bodyLimit,
                    rateLimit: rateLimit, summary: summary, handler: handler))
        }
    }

    /// Registers a handler for socket events of type `event` arriving on `channels`.
    /// Throwing a ``PluginError`` sends `{"type":"error","code","message","event"}` back to that connection.
    public func on(_ event: String, channels: [SocketChannel], handler: @escaping SocketEventHandler) {
        register("event handler '\(event)'") { $0.events.append(PluginEventHandler(event: event, channels: channels, handler: handler)) }
    }

    /// Registers a hook that runs when a connection opens on one of `channels`.
    public func onConnect(channels: [SocketChannel], handler: @escaping SocketConnectHandler) {
        register("connect hook") { $0.connects.append(PluginConnectHandler(channels: channels, handler: handler)) }
    }

    /// Registers a hook that runs once a connection on one of `channels` has closed.
    public func onDisconnect(channels: [SocketChannel], handler: @escaping SocketDisconnectHandler) {
        register("disconnect hook") { $0.disconnects.append(PluginDisconnectHandler(channels: channels, handler: handler)) }
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
    public func webSocket(
        _ path: String, access: AccessLevel = .public, maxFrameSize: Int = 64 << 10, rateLimit: RateLimit? = nil,
        shouldUpgrade: @escaping @Sendable (PluginRequest) async throws -> WebSocketUpgradeDecision,
        handler: @escaping @Sendable (any WebSocketSession) async throws -> Void
    ) {
        register("socket endpoint \(path)") {
            $0.endpoints.append(
                PluginWebSocketEndpoint(
                    path: path, access: access, maxFrameSize: maxFrameSize, rateLimit: rateLimit,
                    shouldUpgrade: shouldUpgrade, handler: handler))
        }
    }

    /// Declares a scene element type without a schema: its elements' `props` may be any JSON object.
    /// Prefer declaring an ``ElementType`` with properties: the engine checks them and the panel edits them.
    public func sceneElementType(_ name: String) {
        sceneElementType(ElementType(schemaless: name))
    }

    /// Declares a scene element type the plugin draws, with the properties its elements carry in `props`.
    /// The engine checks `props` against them on every save (400 `invalid_scene` naming `props.<name>`) and fills in defaults.
    public func sceneElementType(_ type: ElementType) {
        register("element type '\(type.name)'") { $0.elementTypes.append(type) }
    }

    /// Declares an ES module of the plugin's web folder that a page loads, with its style sheets.
    ///
    /// The module's default export is called with the page's API: `export default function setup(api) { ... }`.
    /// - Parameters:
    ///   - page: `.overlay` (`/overlay`, `/preview`), `.panel` (`/mod`) or `.admin` (`/admin`).
    ///   - module: Path in the web folder, e.g. `overlay.js`.
    ///   - styles: Style sheets in the web folder, loaded before the module.
    public func webModule(_ page: WebPageKind, _ module: String, styles: [String] = []) {
        register("web module \(module)") { $0.webModules.append(WebModule(page: page, module: module, styles: styles)) }
    }

    /// Serves a file of the plugin's web folder as a page at a top-level path, e.g. `webPage("/publish", file: "publish.html")`.
    /// The path is claimed like a route (a clash with the engine or another plugin stops start-up).
    public func webPage(_ path: String, file: String) {
        register("web page \(path)") { $0.webPages.append(WebPage(path: path, file: file)) }
    }

    /// The registered routes.
    @_spi(Engine) public var routes: [PluginRoute] { state.withLock { $0.routes } }
    /// The registered event handlers.
    @_spi(Engine) public var eventHandlers: [PluginEventHandler] { state.withLock { $0.events } }
    /// The registered connect hooks.
    @_spi(Engine) public var connectHandlers: [PluginConnectHandler] { state.withLock { $0.connects } }
    /// The registered disconnect hooks.
    @_spi(Engine) public var disconnectHandlers: [PluginDisconnectHandler] { state.withLock { $0.disconnects } }
    /// The registered endpoints.
    @_spi(Engine) public var webSocketEndpoints: [PluginWebSocketEndpoint] { state.withLock { $0.endpoints } }
    /// The declared scene element types.
    @_spi(Engine) public var elementTypes: [ElementType] { state.withLock { $0.elementTypes } }
    /// The names of the declared scene element types.
    @_spi(Engine) public var sceneElementTypes: [String] { state.withLock { $0.elementTypes.map(\.name) } }
    /// The declared web modules.
    @_spi(Engine) public var webModules: [WebModule] { state.withLock { $0.webModules } }
    /// The declared pages.
    @_spi(Engine) public var webPages: [WebPage] { state.withLock { $0.webPages } }
}
