// Socket admission: who may open a socket (checked before the upgrade), refusals as close codes, plugin routes and endpoints.

import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket
import HummingbirdCore
@_spi(Engine) import PluginAPI
import ServiceLifecycle
import Synchronization

extension OverlayEngine {
    /// Who may open a socket, decided before the upgrade.
    struct Admission: Sendable {
        var caller: Caller
        var client: String?
        /// A plugin endpoint's admission value (``WebSocketUpgradeDecision/accept(admission:)``).
        var value: (any Sendable)? = nil
    }

    /// A WebSocket route whose checks run before the upgrade.
    ///
    /// A refused socket is still upgraded and then closed at once with code 4000 + the HTTP status
    /// (4401, 4403, 4429, 4503...) and the error message as the reason: a browser cannot read the
    /// status of a refused upgrade, but it can read a close code and reason. A plain GET (no upgrade) gets 426.
    /// - Parameters:
    ///   - decide: Admission: who may open the socket, or the error to refuse it with.
    ///   - upgrade: How an admitted socket is served (see ``SocketUpgrade``).
    func socketRoute(
        _ router: Router<EngineRequestContext>, _ path: RouterPath,
        decide: @escaping @Sendable (Request, EngineRequestContext) async throws -> Admission,
        upgrade: @escaping @Sendable (Request, EngineRequestContext, Admission) -> SocketUpgrade
    ) {
        router.get(path) { request, context -> Response in
            guard request.headers[.upgrade]?.lowercased() == "websocket" else {
                throw PluginError(
                    status: 426, code: "upgrade_required",
                    message: "\(request.uri.path) is a WebSocket endpoint: open it with a WebSocket client (Upgrade: websocket)",
                    headers: ["upgrade": "websocket"])
            }
            do {
                if self.connectionLimits.isOverCap {
                    throw PluginError(status: 503, code: "too_many_connections", message: "the server has too many connections; retry shortly")
                }
                context.socketUpgrade = upgrade(request, context, try await decide(request, context))
            } catch {
                let (mapped, serverFault) = PluginError.normalized(error)
                if serverFault { self.logger.error("socket admission failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"]) }
                self.logger.info(
                    "socket refused", metadata: ["path": "\(request.uri.path)", "status": "\(mapped.status)", "reason": "\(mapped.message)"])
                let refusal = ChannelSocketHandler.Role.refusal(code: mapped.closeCode, reason: PluginBridge.closeReason(mapped.message))
                let settings = self.channelSocketSettings
                context.socketUpgrade = .channel { channel in
                    try channel.pipeline.syncOperations.addHandler(ChannelSocketHandler(role: refusal, settings: settings))
                }
            }
            return Response(status: .ok)
        }
    }

    /// Message size limit and keep-alive of the engine's channel sockets.
    var channelSocketSettings: ChannelSocketHandler.Settings {
        ChannelSocketHandler.Settings(
            maxMessageBytes: config.limits.wsMaxMessageBytes, pingPeriod: .seconds(Int64(config.limits.wsPingSeconds)))
    }

    func sendHello(_ connection: ChannelConnection) {
        struct Hello: Encodable {
            let connection_id: String
            let channel: String
            let role: String
            let server_ts: Int64
        }
        if let text = try? SocketMessage.make(
            type: "hello",
            payload: Hello(
                connection_id: connection.id, channel: connection.channel.rawValue, role: connection.caller.role, server_ts: Self.nowMillis()))
        {
            connection.send(text)
        }
    }

    /// Brings a connection that just opened up to date: the versions it missed when it reconnects with
    /// `?since=&epoch=` (see ``SceneFeed/connect``), else the active scene in full.
    func sendScene(_ connection: ChannelConnection, resume: SceneFeed.Resume?) {
        // Not loaded yet (Redis down at start-up): the socket gets the scene when it loads.
        let scenes = self.scenes
        guard let version = feed.connect(connection, resume: resume, current: { scenes.isLoaded ? scenes.activeWithEpoch : nil }) else { return }
        // A late join: its acknowledgement is timed from now, not from the version's first broadcast.
        if connection.channel == .overlay { acks.sentOnConnect(overlay: connection.clientLabel ?? connection.id, version: version) }
    }

    /// Resolves the caller and applies origin and rate-limit checks shared by plugin routes and endpoints.
    func admit(
        method: PluginAPI.HTTPMethod, access level: AccessLevel, rateLimit: RateLimit?, request: Request,
        context: EngineRequestContext, upgrade: Bool
    ) async throws -> Admitted {
        try access.checkOrigin(method: method, origin: request.headers[.origin], upgrade: upgrade)
        let client = access.clientAddress(peer: context.peerIP, forwardedFor: request.headers[.forwardedFor])
        if let rateLimit {
            let numbers = config.limits.rate[rateLimit.name] ?? RateLimitConfig(burst: rateLimit.burst, perMinute: rateLimit.perMinute)
            let key = "engine:rate:\(rateLimit.name):\(client ?? "unknown")"
            let decision: RateDecision
            do {
                decision = try await store.takeToken(key, burst: numbers.burst, perMinute: numbers.perMinute)
            } catch is StoreError {
                decision = try await localRateLimits.takeToken(key, burst: numbers.burst, perMinute: numbers.perMinute)
            }
            if !decision.allowed { throw PluginError.rateLimited(retryAfterSeconds: decision.retryAfterSeconds) }
        }
        // Converted once: the access check and the plugin's request use the same headers and query.
        let headers = PluginBridge.headers(request.headers)
        let query = PluginBridge.query(request.uri)
        let caller = try await access.authorize(access: level, headers: headers, query: query, upgrade: upgrade)
        return Admitted(caller: caller, client: client, headers: headers, query: query)
    }

    /// Who a request is from, as ``admit(method:access:rateLimit:request:context:upgrade:)`` found, with the headers and
    /// query in PluginAPI's types.
    struct Admitted: Sendable {
        var caller: Caller
        var client: String?
        var headers: PluginAPI.HTTPHeaders
        var query: [(name: String, value: String)]
    }

    func addPluginRoute(_ route: PluginRoute, owner: String, to router: Router<EngineRequestContext>) {
        let names = RouteTable.parameterNames(route.path)
        let bodyLimit = route.bodyLimit ?? config.limits.maxBodyBytes
        let path = RouterPath(RouteTable.hummingbirdPath(route.path))
        let handler: @Sendable (Request, EngineRequestContext) async throws -> Response = { request, context in
            let admitted = try await self.admit(
                method: route.method, access: route.access, rateLimit: route.rateLimit,
                request: request, context: context, upgrade: false)
            // The route's body limit (or limits.max_body_bytes) holds for whole reads and for streams alike.
            if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > bodyLimit {
                throw PluginError.payloadTooLarge(limit: bodyLimit)
            }
            let pluginRequest = PluginBridge.request(
                request, context: context, parameterNames: names, caller: admitted.caller,
                remoteAddress: admitted.client, bodyLimit: bodyLimit, headers: admitted.headers, query: admitted.query)
            do {
                var response = try await route.handler(pluginRequest)
                if !(200...599).contains(response.status) {
                    self.logger.error(
                        "plugin answered an invalid HTTP status; sent 500 instead",
                        metadata: ["plugin": "\(owner)", "path": "\(route.path)", "status": "\(response.status)"])
                    response = .error(PluginError(status: 500, code: "plugin_error", message: "the plugin '\(owner)' answered an invalid status"))
                }
                return PluginBridge.response(response)
            } catch {
                let (mapped, serverFault) = PluginError.normalized(error, owner: owner == "engine" ? nil : owner)
                if serverFault {
                    self.logger.error("plugin route failed", metadata: ["plugin": "\(owner)", "path": "\(route.path)", "error": "\(error)"])
                }
                throw mapped
            }
        }
        router.on(path, method: HTTPRequest.Method(rawValue: route.method.rawValue) ?? .get, use: handler)
        if route.method == .get { router.on(path, method: .head, use: handler) }
    }

    func addPluginEndpoint(_ endpoint: PluginWebSocketEndpoint, plugin: String, to router: Router<EngineRequestContext>) {
        let names = RouteTable.parameterNames(endpoint.path)
        socketRoute(
            router, RouterPath(RouteTable.hummingbirdPath(endpoint.path)),
            decide: { request, context in
                let admitted = try await self.admit(
                    method: .get, access: endpoint.access, rateLimit: endpoint.rateLimit,
                    request: request, context: context, upgrade: true)
                let pluginRequest = PluginBridge.request(
                    request, context: context, parameterNames: names, caller: admitted.caller,
                    remoteAddress: admitted.client, bodyLimit: nil, headers: admitted.headers, query: admitted.query)
                switch try await endpoint.shouldUpgrade(pluginRequest) {
                case .accept(let value):
                    return Admission(caller: admitted.caller, client: admitted.client, value: value)
                case .reject(let error):
                    throw error
                }
            },
            upgrade: { request, context, admission in
                .framework { inbound, outbound, _ in
                    let pluginRequest = PluginBridge.request(
                        request, context: context, parameterNames: names,
                        caller: admission.caller, remoteAddress: admission.client, bodyLimit: nil)
                    let session = PluginSocketSession(
                        id: self.pluginSockets.nextID(plugin), request: pluginRequest, admission: admission.value,
                        inbound: inbound, maxFrameSize: endpoint.maxFrameSize, outbound: outbound)
                    self.pluginSockets.add(session)
                    defer { self.pluginSockets.remove(session.id) }
                    do {
                        try await endpoint.handler(session)
                    } catch {
                        self.logger.warning("plugin socket ended with an error", metadata: ["plugin": "\(plugin)", "error": "\(error)"])
                        await session.close(code: 1011, reason: "internal error")
                    }
                }
            })
    }
}
