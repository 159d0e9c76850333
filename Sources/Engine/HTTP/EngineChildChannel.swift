// HTTP: each accepted TCP connection: HTTP/1.1 with the engine's connection guard, and the WebSocket upgrade, where the
// engine's own channel sockets are handed to channel handlers (no task per socket) and plugin endpoints keep
// Hummingbird's WebSocket handler.

import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import NIOWebSocket
@_spi(Engine) import PluginAPI
@_spi(WSInternal) import WSCore

/// The engine's child channel: Hummingbird's HTTP/1 handling and upgrade negotiation, with
/// - a ``ConnectionGuard`` first in every pipeline and a ``ParseErrorResponder`` after the HTTP decoder for the first
///   request (``RequestPhaseHandler`` takes over for the next ones);
/// - sockets the router admits through ``EngineRequestContext/socketUpgrade`` (`/ws/overlay`, `/ws/moderator`) served
///   by ``ChannelSocketHandler`` on the event loop: the connection's task ends at the upgrade;
/// - other sockets (plugin endpoints, `router.ws`) run by Hummingbird's WebSocket handler in the connection's task.
///
/// No WebSocket extension is offered (the engine configures none), so none is negotiated.
struct EngineChildChannel<WebSocketResponder: HTTPResponder>: ServerChildChannel, HTTPChannelHandler
where WebSocketResponder.Context == EngineRequestContext {
    typealias FrameworkSocket = @Sendable (NIOAsyncChannel<WebSocketFrame, WebSocketFrame>, Logger) async -> Void

    /// What the router decided for an upgrade request.
    enum Upgrade: Sendable {
        case channel(@Sendable (any Channel) throws -> Void)
        case framework(FrameworkSocket)
    }

    /// The context Hummingbird's WebSocket handler is given (the route's request and context travel in its closure).
    struct SocketContext: WebSocketContext {
        let logger: Logger
    }

    /// What a connection became once its first request head was read.
    enum Outcome: Sendable {
        case http(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
        case refusedUpgrade(NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>)
        case webSocket(NIOAsyncChannel<WebSocketFrame, WebSocketFrame>, FrameworkSocket, Logger)
        /// Served by channel handlers; nothing to run in the connection's task.
        case channelSocket
    }

    struct Value: ServerChildChannelValue {
        let outcome: EventLoopFuture<Outcome>
        let channel: any Channel
    }

    let responder: HTTPChannelHandler.Responder
    let webSocketResponder: WebSocketResponder
    let http1: HTTP1Channel.Configuration
    let ws: WebSocketServerConfiguration
    let limits: ConnectionLimits

    init(
        responder: @escaping HTTPChannelHandler.Responder, webSocketResponder: WebSocketResponder,
        http1: HTTP1Channel.Configuration, ws: WebSocketServerConfiguration, limits: ConnectionLimits
    ) {
        self.responder = Self.redirectingUpgrades(responder)
        self.webSocketResponder = webSocketResponder
        self.http1 = http1
        self.ws = ws
        self.limits = limits
    }

    /// An upgrade asked for on a connection that already served a request cannot be negotiated there (NIO upgrades
    /// only on the first request): the client is sent to the same URL on a new connection (307, `connection: close`).
    static func redirectingUpgrades(_ responder: @escaping HTTPChannelHandler.Responder) -> HTTPChannelHandler.Responder {
        return { request, writer, channel in
            guard request.headers[.upgrade]?.lowercased() == "websocket" else {
                try await responder(request, writer, channel)
                return
            }
            let target = request.uri.query.map { "\(request.uri.path)?\($0)" } ?? request.uri.path
            try await writer.writeResponse(HTTPResponse(status: .temporaryRedirect, headerFields: [.connection: "close", .location: target]))
            throw UpgradeRedirected()
        }
    }

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(ConnectionGuard(limits: limits), position: .first)
            let attempted = NIOLoopBoundBox(false, eventLoop: channel.eventLoop)
            let parseErrors = NIOLoopBound(ParseErrorResponder(), eventLoop: channel.eventLoop)
            // The upgrade request's context reads its id from the logger, as every request context does.
            var identified = logger
            identified[metadataKey: "hb.request.id"] = .stringConvertible(RequestID())
            let logger = identified
            let decided = NIOLoopBoundBox<Upgrade?>(nil, eventLoop: channel.eventLoop)
            let upgrader = NIOTypedWebSocketServerUpgrader<Outcome>(
                maxFrameSize: ws.maxFrameSize,
                // Frame errors are closed by ChannelSocketHandler (one handler decides every close of a channel
                // socket); plugin endpoints get NIO's WebSocketProtocolErrorHandler below.
                enableAutomaticErrorHandling: false,
                shouldUpgrade: { channel, head in
                    attempted.value = true
                    return decide(head, channel: channel, logger: logger).map { decision -> NIOHTTP1.HTTPHeaders? in
                        guard let decision else { return nil }
                        decided.value = decision.upgrade
                        return NIOHTTP1.HTTPHeaders(decision.headers)
                    }
                },
                upgradePipelineHandler: { channel, _ in
                    channel.eventLoop.makeCompletedFuture {
                        channel.pipeline.syncOperations.removeHandler(parseErrors.value, promise: nil)
                        // The guard stops timing HTTP phases: a socket keeps itself alive with pings.
                        ConnectionGuard.upgraded(channel)
                        switch decided.value {
                        case .channel(let open)?:
                            try open(channel)
                            return .channelSocket
                        case .framework(let run)?:
                            try channel.pipeline.syncOperations.addHandler(WebSocketProtocolErrorHandler())
                            let asyncChannel = try NIOAsyncChannel<WebSocketFrame, WebSocketFrame>(
                                wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
                            return .webSocket(asyncChannel, run, logger)
                        case nil:
                            throw ChannelError.inappropriateOperationForState
                        }
                    }
                })
            let upgrades = NIOTypedHTTPServerUpgradeConfiguration(
                upgraders: [upgrader],
                notUpgradingCompletionHandler: { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        try sync.addHandler(HTTP1ToHTTPServerCodec(secure: false))
                        // RequestPhaseHandler answers parse errors from here on, and closes the connection at a
                        // graceful shutdown (in place of Hummingbird's HTTPConnectionStateHandler: one handler fewer).
                        try sync.addHandler(RequestPhaseHandler())
                        try sync.addHandlers(http1.additionalChannelHandlers())
                        sync.removeHandler(parseErrors.value, promise: nil)
                        let asyncChannel = try NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>(
                            wrappingChannelSynchronously: channel, configuration: .init(isOutboundHalfClosureEnabled: true))
                        return attempted.value ? .refusedUpgrade(asyncChannel) : .http(asyncChannel)
                    }
                })
            var configuration = NIOUpgradableHTTPServerPipelineConfiguration<Outcome>(upgradeConfiguration: upgrades)
            configuration.enablePipelining = false  // NIOAsyncChannel serves one request at a time
            configuration.enableErrorHandling = false  // ParseErrorResponder / RequestPhaseHandler answer parse errors
            configuration.enableResponseHeaderValidation = false  // swift-http-types validates fields already
            configuration.decoderConfiguration.maxHeaderFieldSize = http1.httpDecoder.maxHeaderFieldSize
            configuration.decoderConfiguration.maxHeaderListSize = http1.httpDecoder.maxHeaderListSize
            configuration.decoderConfiguration.maxHeaderFieldCount = http1.httpDecoder.maxHeaderFieldCount
            let outcome = try channel.pipeline.syncOperations.configureUpgradableHTTPServerPipeline(configuration: configuration)
            // The HTTP pipeline is in place now (configured synchronously): parse errors get a status line.
            if let decoder = try? channel.pipeline.syncOperations.handler(type: ByteToMessageHandler<HTTPRequestDecoder>.self) {
                try channel.pipeline.syncOperations.addHandler(parseErrors.value, position: .after(decoder))
            }
            return Value(outcome: outcome, channel: channel)
        }
    }

    /// Runs the router for an upgrade request: the socket's upgrade when its route answered 200 and set one, nil
    /// (no upgrade: 400) otherwise.
    private func decide(_ head: HTTPRequestHead, channel: any Channel, logger: Logger) -> EventLoopFuture<(headers: HTTPFields, upgrade: Upgrade)?> {
        let promise = channel.eventLoop.makePromise(of: (headers: HTTPFields, upgrade: Upgrade)?.self)
        let webSocketResponder = self.webSocketResponder
        let ws = self.ws
        promise.completeWithTask {
            guard let requestHead = try? HTTPRequest(head, secure: false, splitCookie: false) else { return nil }
            let request = Request(head: requestHead, body: .init(buffer: .init()))
            let context = EngineRequestContext(upgradeRequest: .init(channel: channel, logger: logger))
            guard let response = try? await webSocketResponder.respond(to: request, context: context), response.status == .ok else {
                return nil
            }
            switch context.takeSocketUpgrade() {
            case .channel(let open)?:
                return (response.headers, .channel(open))
            case .framework(let serve)?:
                let configuration = WebSocketHandler.Configuration(
                    extensions: [], autoPing: ws.autoPing, closeTimeout: ws.closeTimeout, validateUTF8: ws.validateUTF8,
                    maxFrameSize: ws.maxFrameSize)
                return (
                    response.headers,
                    .framework { asyncChannel, logger in
                        do {
                            _ = try await WebSocketHandler.handle(
                                type: .server, configuration: configuration, asyncChannel: asyncChannel,
                                context: SocketContext(logger: logger),
                                handler: { inbound, outbound, context in await serve(inbound, outbound, context.logger) })
                        } catch {
                            logger.debug("WebSocket handler error", metadata: ["error": "\(error)"])
                        }
                    }
                )
            case nil:
                return nil
            }
        }
        return promise.futureResult
    }

    func handle(value: Value, logger: Logger) async {
        do {
            switch try await value.outcome.get() {
            case .http(let http):
                await handleHTTP(asyncChannel: http, logger: logger)
            case .refusedUpgrade(let http):
                await refuseUpgrade(http, logger: logger)
            case .webSocket(let asyncChannel, let run, let logger):
                await run(asyncChannel, logger)
            case .channelSocket:
                return
            }
        } catch let error as ChannelError where error == .inputClosed {
            logger.trace("the connection closed before its first request")
        } catch {
            logger.debug("connection ended before it was served", metadata: ["error": "\(error)"])
        }
    }

    /// An upgrade request no socket route accepted (unknown path, or not a WebSocket route): 400 with a JSON error.
    private func refuseUpgrade(_ http: NIOAsyncChannel<HTTPRequestPart, HTTPResponsePart>, logger: Logger) async {
        do {
            try await http.executeThenClose { _, outbound in
                let body = ByteBuffer(
                    bytes: PluginError(status: 400, code: "upgrade_refused", message: "no WebSocket endpoint answers this path").jsonBody)
                let head = HTTPResponse(
                    status: .badRequest,
                    headerFields: [
                        .connection: "close", .contentType: "application/json; charset=utf-8", .contentLength: String(body.readableBytes),
                    ])
                try await outbound.write(contentsOf: [.head(head), .body(body), .end(nil)])
            }
        } catch {
            logger.trace("could not answer a refused upgrade", metadata: ["error": "\(error)"])
        }
    }
}

/// Ends a connection whose upgrade request was redirected to a new one.
struct UpgradeRedirected: Error {}
