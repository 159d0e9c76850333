// The engine: wires config, store, sessions, sockets and plugins into one Hummingbird application.

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

/// Start-up failed; each line names what failed and why.
public struct StartupError: Error, CustomStringConvertible {
    /// One line per problem.
    public let lines: [String]
    public var description: String { lines.joined(separator: "\n") }
}

/// The running engine.
public final class OverlayEngine: Sendable {
    /// Version of the engine itself.
    public static let version = "0.1.0"

    public let config: EngineConfig
    public let logger: Logger
    public let metrics: EngineMetrics
    public let store: any EngineStore
    public let crypto: OpenSSLCrypto
    public let sessions: ModeratorSessionStore
    public let hub: ChannelHub
    public let access: AccessPolicy
    public let plugins: [LoadedPlugin]
    public let scenes: SceneStore
    public let acks: OverlayAcks
    /// Routes the engine registers through the same mechanism as plugins (scene API).
    let engineRegistrar: PluginRegistrar
    let pluginSockets = PluginSocketRegistry()
    /// Decisions made before a WebSocket upgrade, keyed by request id, taken by the socket handler.
    let upgradeInfo = Mutex<[String: (at: ContinuousClock.Instant, outcome: Result<Admission, PluginError>)]>([:])
    let dataDir: URL
    let uploadsDir: URL
    let webDir: URL
    let pluginsDir: String
    let publicURL: String
    let startedAt = Date()
    /// The connection cap and timeouts (`server.max_connections`, `server.*_timeout_seconds`).
    let connectionLimits: ConnectionLimits
    /// Rate-limit buckets used while the shared store is unreachable, so a store outage never turns
    /// into refused saves: each engine then limits on its own (fail open to a local bucket).
    let localRateLimits = EmbeddedStore()

    /// What the plugins registered, for the table and `GET /api/plugins`.
    public var pluginDescriptions: [PluginDescription] { plugins.map(PluginDescription.init) }

    private init(config: EngineConfig, logger: Logger, metrics: EngineMetrics, store: any EngineStore, crypto: OpenSSLCrypto,
                 sessions: ModeratorSessionStore, hub: ChannelHub, access: AccessPolicy, plugins: [LoadedPlugin],
                 scenes: SceneStore, acks: OverlayAcks, engineRegistrar: PluginRegistrar, dataDir: URL, uploadsDir: URL, webDir: URL, pluginsDir: String, publicURL: String) {
        self.config = config
        self.logger = logger
        self.metrics = metrics
        self.store = store
        self.crypto = crypto
        self.sessions = sessions
        self.hub = hub
        self.access = access
        self.plugins = plugins
        self.scenes = scenes
        self.acks = acks
        self.engineRegistrar = engineRegistrar
        self.dataDir = dataDir
        self.uploadsDir = uploadsDir
        self.webDir = webDir
        self.pluginsDir = pluginsDir
        self.publicURL = publicURL
        self.connectionLimits = ConnectionLimits(server: config.server, logger: logger)
    }

    /// The folder the plugins are looked for in: `server.plugins_dir`, or the executable's folder.
    public static func pluginsDirectory(_ config: EngineConfig) -> String {
        if !config.server.pluginsDir.isEmpty { return absolute(config.server.pluginsDir).path }
        let executable = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath()
        if let path = Bundle.main.executablePath {
            return URL(fileURLWithPath: path).resolvingSymlinksInPath().deletingLastPathComponent().path
        }
        return executable.deletingLastPathComponent().path
    }

    static func absolute(_ path: String) -> URL {
        if path.hasPrefix("/") { return URL(fileURLWithPath: path).standardizedFileURL }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(path).standardizedFileURL
    }

    /// Creates folders, the store and sessions, loads every plugin and checks routes for clashes.
    /// - Throws: ``StartupError`` listing every problem; plugins that did start are shut down first.
    public static func prepare(config: EngineConfig, logger: Logger) async throws -> OverlayEngine {
        var problems: [String] = []
        let dataDir = absolute(config.server.dataDir)
        let uploadsDir = absolute(config.server.uploadsDir)
        let webDir = absolute(config.server.webDir)
        for (name, url) in [("data_dir", dataDir), ("uploads_dir", uploadsDir)] {
            do {
                try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
            } catch {
                problems.append("engine: server.\(name) '\(url.path)' cannot be created: \(error.localizedDescription)")
            }
        }
        if !problems.isEmpty { throw StartupError(lines: problems) }

        let store: any EngineStore
        switch config.storage.backend {
        case .embedded:
            if config.storage.persistEmbedded {
                do {
                    store = try EmbeddedStore(snapshot: dataDir.appendingPathComponent("store.json"), logger: logger)
                } catch {
                    throw StartupError(lines: ["engine: the embedded store in '\(dataDir.path)/store.json' cannot be opened: \(error)"])
                }
            } else {
                store = EmbeddedStore()
            }
        case .redis:
            let redis: RedisStore
            do {
                redis = try RedisStore(url: config.storage.redisURL, logger: logger)
            } catch {
                throw StartupError(lines: ["engine: storage.redis_url / REDIS_URL: \(error)"])
            }
            do {
                try await redis.ping()
                logger.notice("store: redis at \(redis.address)")
            } catch {
                // Not fatal: /readyz reports it, requests that need the store answer 503, and it recovers by itself.
                logger.error("store: redis at \(redis.address) is not reachable yet (\(error)); serving anyway")
            }
            store = redis
        }

        let crypto = OpenSSLCrypto()
        let streamerToken: String
        do {
            streamerToken = try resolveStreamerToken(config: config, dataDir: dataDir, crypto: crypto, logger: logger)
        } catch {
            throw StartupError(lines: ["engine: the streamer token file cannot be written in '\(dataDir.path)': \(error.localizedDescription)"])
        }
        let metrics = EngineMetrics()
        let sessions = ModeratorSessionStore(store: store, crypto: crypto, ttl: .seconds(config.sessions.moderatorSessionTTLSeconds))
        let hub = ChannelHub(limits: config.limits, metrics: metrics, logger: logger)
        sessions.whenRevoked { [weak hub] id in hub?.closeSession(id) }
        let pluginsDir = pluginsDirectory(config)
        let publicURL = config.server.publicURL.isEmpty
            ? "http://\(config.server.host == "0.0.0.0" ? "localhost" : config.server.host):\(config.server.port)"
            : String(config.server.publicURL.trimmingCharacters(in: CharacterSet(charactersIn: "/")))
        let access = AccessPolicy(security: config.security, streamerToken: streamerToken,
                                  publicURL: config.server.publicURL, port: config.server.port, crypto: crypto, sessions: sessions)
        let settings = EngineSettings(
            moderatorKeyTTL: .seconds(config.sessions.moderatorKeyTTLSeconds),
            moderatorSessionTTL: .seconds(config.sessions.moderatorSessionTTLSeconds),
            streamerTokenConfigured: !streamerToken.isEmpty,
            defaultBodyLimit: config.limits.maxBodyBytes)
        let acks = OverlayAcks(metrics: metrics) { [weak hub] id in
            hub?.all.contains { $0.channel == .overlay && ($0.clientLabel ?? $0.id) == id } ?? false
        }
        var sceneLimits = SceneLimits()
        sceneLimits.maxElements = config.scene.maxElements
        sceneLimits.maxTextLength = config.scene.maxTextLength
        sceneLimits.historySize = config.scene.historySize
        sceneLimits.historyMaxAgeSeconds = config.scene.historyMaxAgeSeconds
        let versionGauge = metrics
        let scene: SceneStore
        do {
            scene = try SceneStore(dataDirectory: dataDir, limits: sceneLimits, logger: logger) { change in
                let frame = SceneBroadcast.frame(change)
                if change.active {
                    acks.broadcasted(change.scene.version)
                    hub.broadcast(frame, to: .channel(.overlay), coalesceKey: "scene.full")
                }
                hub.broadcast(frame, to: .channel(.moderator), coalesceKey: "scene.full:" + change.scene.name)
                versionGauge.gauge("onionrp_scene_version", [("scene", change.scene.name)]).record(Double(change.scene.version))
            }
        } catch {
            throw StartupError(lines: ["engine: the scenes in '\(dataDir.path)/scenes' cannot be opened: \(error)"])
        }

        let (loaded, loadErrors) = await PluginLoader.loadAll(config: config, pluginsDir: pluginsDir, refusedRegistration: { message in
            logger.error("\(message)")
        }) { name in
            let folder = dataDir.appendingPathComponent("plugins").appendingPathComponent(name)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            return PluginContext(
                pluginName: name, dataDirectory: folder, uploadsDirectory: uploadsDir, publicURL: publicURL, settings: settings,
                store: NamespacedStore(base: store, prefix: "plugin:\(name):"), logger: SwiftLogPluginLogger(base: logger, plugin: name),
                metrics: metrics.forPlugin(name), crypto: crypto, sockets: hub, sessions: sessions, scene: scene)
        }
        problems += loadErrors.map(\.description)

        // Plugin-declared element types join the built-in ones; each name has one owner.
        var typeOwners: [String: String] = [:]
        for plugin in loaded {
            for type in plugin.registrar.elementTypes {
                if SceneLimits.coreElementTypes.contains(type.name) {
                    problems.append(PluginLoadError(plugin: plugin.name, file: plugin.file,
                                                    reason: "element type '\(type.name)' is a core type of the engine").description)
                } else if let owner = typeOwners[type.name] {
                    problems.append(PluginLoadError(plugin: plugin.name, file: plugin.file,
                                                    reason: "element type '\(type.name)' is already declared by plugin '\(owner)'").description)
                } else {
                    typeOwners[type.name] = plugin.name
                    sceneLimits.pluginElementTypes[type.name] = type
                }
            }
        }
        let engineRegistrar = PluginRegistrar()
        let engineBox = EngineReference()
        SceneRoutes(store: scene, acks: acks, editing: SceneEditing(validator: SceneValidator(limits: sceneLimits)),
                    bodyLimit: config.scene.maxBodyBytes, realtime: { await engineBox.engine?.realtimeSnapshot() ?? .null })
            .register(engineRegistrar)

        var table = RouteTable()
        for (method, path) in engineRoutes { table.claim(method: method, path: path, owner: "engine", file: nil) }
        for route in engineRegistrar.routes {
            table.claim(method: route.method.rawValue, path: route.path, owner: "engine", file: nil)
            if route.method == .get { table.claim(method: "HEAD", path: route.path, owner: "engine", file: nil) }
        }
        for plugin in loaded {
            for route in plugin.registrar.routes {
                table.claim(method: route.method.rawValue, path: route.path, owner: plugin.name, file: plugin.file)
                if route.method == .get { table.claim(method: "HEAD", path: route.path, owner: plugin.name, file: plugin.file) }
            }
            for endpoint in plugin.registrar.webSocketEndpoints {
                table.claim(method: "GET", path: endpoint.path, owner: plugin.name, file: plugin.file)
            }
            for page in plugin.registrar.webPages {
                table.claim(method: "GET", path: page.path, owner: plugin.name, file: plugin.file)
                table.claim(method: "HEAD", path: page.path, owner: plugin.name, file: plugin.file)
            }
        }
        problems += table.problems

        if !problems.isEmpty {
            for plugin in loaded.reversed() { await plugin.shutdown() }
            throw StartupError(lines: problems)
        }

        let engine = OverlayEngine(config: config, logger: logger, metrics: metrics, store: store, crypto: crypto, sessions: sessions,
                                   hub: hub, access: access, plugins: loaded, scenes: scene, acks: acks,
                                   engineRegistrar: engineRegistrar, dataDir: dataDir, uploadsDir: uploadsDir,
                                   webDir: webDir, pluginsDir: pluginsDir, publicURL: publicURL)
        engineBox.engine = engine
        engine.registerEngineEvents()
        for plugin in loaded {
            for handler in plugin.registrar.eventHandlers {
                hub.on(handler.event, channels: handler.channels, owner: plugin.name, handler: handler.handler)
            }
            for hook in plugin.registrar.connectHandlers {
                hub.onConnect(channels: hook.channels, owner: plugin.name, handler: hook.handler)
            }
            for hook in plugin.registrar.disconnectHandlers {
                hub.onDisconnect(channels: hook.channels, handler: hook.handler)
            }
            logger.info("loaded plugin \(plugin.name) \(plugin.version) (PluginAPI \(plugin.apiVersion)) from \(plugin.file): \(plugin.registrar.routes.count) routes, \(plugin.registrar.eventHandlers.count) events, \(plugin.registrar.webSocketEndpoints.count) sockets")
        }
        return engine
    }

    /// Routes the engine serves itself (plugins cannot claim them).
    static let engineRoutes: [(String, String)] = [
        ("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics"), ("GET", "/api/plugins"),
        ("GET", "/ws/overlay"), ("GET", "/ws/moderator"),
        ("GET", "/"), ("GET", "/overlay"), ("GET", "/mod"), ("GET", "/admin"), ("GET", "/plugins/{name}/{file}"),
    ]

    static func resolveStreamerToken(config: EngineConfig, dataDir: URL, crypto: OpenSSLCrypto, logger: Logger) throws -> String {
        if !config.security.streamerToken.isEmpty { return config.security.streamerToken }
        let file = dataDir.appendingPathComponent("streamer-token")
        if let data = FileManager.default.contents(atPath: file.path),
           let text = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines), !text.isEmpty {
            logger.notice("no streamer token configured; using the one kept in \(file.path)")
            return text
        }
        let token = crypto.randomToken(bytes: 24)
        try Data((token + "\n").utf8).write(to: file, options: .atomic)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file.path)
        logger.notice("no streamer token configured; generated one and saved it in \(file.path): \(token)")
        return token
    }

    func registerEngineEvents() {
        hub.on("overlay.applied", channels: [.overlay], owner: "engine") { event, connection in
            struct Applied: Decodable { let version: Int64 }
            let applied = try event.decode(Applied.self)
            guard applied.version >= 0, applied.version <= self.scenes.revision else {
                throw PluginError.invalidField("version", "must be a version the engine has given")
            }
            let overlay = (connection as? ChannelConnection)?.clientLabel ?? connection.id
            self.acks.applied(overlay: overlay, version: applied.version)
        }
        hub.on("ping", channels: SocketChannel.allCases, owner: "engine") { _, connection in
            struct Pong: Encodable { let server_ts: Int64 }
            connection.send(try SocketMessage.make(type: "pong", payload: Pong(server_ts: Self.nowMillis())))
        }
    }

    static func nowMillis() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    // MARK: application

    /// Builds the Hummingbird application with every route.
    public func makeApplication(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let router = Router(context: EngineRequestContext.self)
        router.add(middleware: ErrorAndLogMiddleware())
        var pluginPages: [String: String] = [:]
        for plugin in plugins where plugin.webDirectory != nil {
            for page in plugin.registrar.webPages { pluginPages[page.path] = "/plugins/\(plugin.name)/\(page.file)" }
        }
        router.add(middleware: PageAliasMiddleware(webDir: webDir, pluginPages: pluginPages))
        let noCache = CacheControl([(MediaType(type: .any), [.noCache])])
        router.add(middleware: FileMiddleware(webDir.path, cacheControl: noCache, searchForIndexHtml: true, logger: logger))
        // Each plugin's web folder under /plugins/<name>/, with the same caching rules as web/ (only enabled plugins have one).
        for plugin in plugins {
            guard let folder = plugin.webDirectory else { continue }
            router.add(middleware: FileMiddleware(folder.path, urlBasePath: "/plugins/\(plugin.name)", cacheControl: noCache,
                                                  searchForIndexHtml: false, logger: logger))
        }
        addEngineRoutes(router)
        for route in engineRegistrar.routes { addPluginRoute(route, owner: "engine", to: router) }
        for plugin in plugins {
            for route in plugin.registrar.routes { addPluginRoute(route, owner: plugin.name, to: router) }
            for endpoint in plugin.registrar.webSocketEndpoints { addPluginEndpoint(endpoint, plugin: plugin.name, to: router) }
        }
        let wsConfig = WebSocketServerConfiguration(
            maxFrameSize: max(config.limits.wsMaxMessageBytes, 1 << 20),
            autoPing: .enabled(timePeriod: .seconds(config.limits.wsPingSeconds)),
            closeTimeout: .seconds(5))
        let logger = self.logger
        let webSocketResponder = router.buildResponder()
        let limits = connectionLimits
        return Application(
            router: router,
            server: HTTPServerBuilder { responder in
                GuardedChildChannel(
                    inner: HTTP1WebSocketUpgradeChannel(
                        responder: responder, webSocketResponder: webSocketResponder,
                        configuration: .init(http1: .init(additionalChannelHandlers: [ExpectContinueHandler(), RequestPhaseHandler()]),
                                             ws: wsConfig)),
                    limits: limits)
            },
            configuration: ApplicationConfiguration(address: .hostname(config.server.host, port: config.server.port), serverName: nil),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                let publicNote = self.config.server.publicURL.isEmpty ? "" : " (public URL \(self.publicURL))"
                logger.notice("listening on http://\(channel.localAddress?.ipAddress ?? "?"):\(port)\(publicNote)")
                await onRunning(port)
            },
            logger: logger)
    }

    /// Serves until SIGINT or SIGTERM, then closes sockets, drains requests, and shuts plugins down.
    public func run() async throws {
        let files = ConnectionLimits.raiseFileLimit(logger: logger)
        if connectionLimits.maxConnections > files - 256 {
            logger.warning("server.max_connections (\(connectionLimits.maxConnections)) is close to the open-file limit (\(files)); past the limit new connections fail before the cap can answer them")
        }
        let app = makeApplication()
        let shutdown = SocketShutdownService(engine: self)
        let ttl = config.sessions.moderatorSessionTTLSeconds
        let sweep = SessionSweepService(hub: hub, sessions: sessions, interval: .milliseconds(min(10_000, max(500, ttl * 250))),
                                        logger: logger)
        var groupConfig = ServiceGroupConfiguration(
            services: [.init(service: app), .init(service: shutdown), .init(service: sweep),
                       .init(service: MemoryTrimService(limits: connectionLimits))],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        // server.shutdown_grace_seconds bounds the drain of requests in flight; past it they are cancelled,
        // then plugins get the same grace to stop. ServiceLifecycle's own cancellation limit is not used:
        // it traps (SIGILL) when a task ignores cancellation; SocketShutdownService ends the process
        // cleanly instead when everything together overruns.
        let grace = Duration.seconds(config.server.shutdownGraceSeconds)
        groupConfig.maximumGracefulShutdownDuration = grace
        try await ServiceGroup(configuration: groupConfig).run()
        // Not a task group: that would wait for a plugin that never returns.
        let stopped = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let resumed = ResumeOnce()
            let finish: @Sendable (Bool) -> Void = { value in
                if resumed.claim() { continuation.resume(returning: value) }
            }
            Task { await self.stopPlugins(); finish(true) }
            Task { try? await Task.sleep(for: grace); finish(false) }
        }
        if !stopped {
            logger.error("plugins did not stop within server.shutdown_grace_seconds (\(config.server.shutdownGraceSeconds) s); exiting anyway")
        }
    }

    /// Runs every plugin's shutdown, in reverse load order, then closes the store.
    public func stopPlugins() async {
        for plugin in plugins.reversed() {
            await plugin.shutdown()
            logger.info("plugin \(plugin.name) stopped")
        }
        await store.close()
        logger.notice("engine stopped")
    }

    // MARK: routes

    func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try JSON.encode(value))))
    }

    func addEngineRoutes(_ router: Router<EngineRequestContext>) {
        router.get("/healthz") { _, _ in
            try self.json(["status": "ok"])
        }
        router.get("/readyz") { _, _ in
            struct Ready: Encodable {
                let status: String
                let store: String
                let store_ok: Bool
                let store_error: String?
                let plugins: [String]
            }
            var storeError: String?
            do { try await self.store.ping() } catch { storeError = "\(error)" }
            let ready = Ready(status: storeError == nil ? "ready" : "not_ready", store: self.store.backendName, store_ok: storeError == nil,
                              store_error: storeError, plugins: self.plugins.map(\.name))
            return try self.json(ready, status: storeError == nil ? .ok : .serviceUnavailable)
        }
        router.get("/metrics") { _, _ in
            var headers = HTTPFields()
            headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: self.metrics.render())))
        }
        router.get("/api/plugins") { request, _ in
            struct Listing: Encodable {
                let engine_version: String
                let api_version: String
                let plugins: [PluginDescription]
            }
            // Public: what the pages need. The library paths on the server only with the streamer token.
            let streamer = self.access.isStreamerToken(request.headers[.streamerToken])
            let plugins = self.pluginDescriptions.map { description -> PluginDescription in
                var copy = description
                if !streamer { copy.file = nil }
                return copy
            }
            return try self.json(Listing(engine_version: Self.version, api_version: PluginAPIVersion.current.description,
                                         plugins: plugins))
        }
        socketRoute(router, "/ws/overlay", decide: { request, context in
            let (caller, client) = try await self.admit(method: .get, access: .overlay, rateLimit: nil, request: request,
                                                        context: context, upgrade: true)
            if let id = PluginBridge.query(request.uri).first(where: { $0.name == "overlay_id" })?.value,
               id.isEmpty || id.count > 64 || !SceneValidator.isIdentifier(id) {
                throw PluginError.invalidField("overlay_id", "1-64 letters, digits, '-', '_' or '.'")
            }
            return Admission(caller: caller, client: client)
        }, serve: { inbound, outbound, context, admission in
            let label = PluginBridge.query(context.request.uri).first(where: { $0.name == "overlay_id" })?.value
            await self.hub.serve(channel: .overlay, caller: admission.caller, clientLabel: label,
                                 inbound: inbound, outbound: outbound, nioChannel: context.requestContext.channel,
                                 afterConnect: { self.sendHello($0); self.sendScene($0) })
        })
        socketRoute(router, "/ws/moderator", decide: { request, context in
            let (caller, client) = try await self.admit(method: .get, access: .moderator, rateLimit: nil, request: request,
                                                        context: context, upgrade: true)
            return Admission(caller: caller, client: client)
        }, serve: { inbound, outbound, context, admission in
            await self.hub.serve(channel: .moderator, caller: admission.caller, clientLabel: nil, inbound: inbound, outbound: outbound,
                                 nioChannel: context.requestContext.channel, afterConnect: { self.sendHello($0); self.sendScene($0) })
        })
    }

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
    /// status of a refused upgrade, but it can read a close code and reason.
    func socketRoute(_ router: Router<EngineRequestContext>, _ path: RouterPath,
                     decide: @escaping @Sendable (Request, EngineRequestContext) async throws -> Admission,
                     serve: @escaping @Sendable (WebSocketInboundStream, WebSocketOutboundWriter,
                                                 WebSocketRouterContext<EngineRequestContext>, Admission) async -> Void) {
        router.ws(path, shouldUpgrade: { request, context in
            let outcome: Result<Admission, PluginError>
            do {
                if self.connectionLimits.isOverCap {
                    throw PluginError(status: 503, code: "too_many_connections", message: "the server has too many connections; retry shortly")
                }
                outcome = .success(try await decide(request, context))
            } catch let error as PluginError {
                outcome = .failure(error)
            } catch is StoreError {
                outcome = .failure(.storeUnavailable())
            } catch {
                outcome = .failure(PluginError(status: 500, code: "internal_error", message: "internal error"))
            }
            let key = context.id
            let now = ContinuousClock.now
            self.upgradeInfo.withLock { pending in
                // A handshake that never completed leaves its entry behind; drop those after a minute.
                if pending.count > 256 { pending = pending.filter { now - $0.value.at < .seconds(60) } }
                pending[key] = (now, outcome)
            }
            return .upgrade([:])
        }, onUpgrade: { inbound, outbound, context in
            ConnectionGuard.upgraded(context.requestContext.channel)
            let key = context.requestContext.id
            let outcome = self.upgradeInfo.withLock { $0.removeValue(forKey: key) }?.outcome
            switch outcome {
            case .success(let admission)?:
                await serve(inbound, outbound, context, admission)
            case .failure(let error)?:
                let reason = PluginBridge.closeReason(error.message)
                self.logger.info("socket refused", metadata: ["path": "\(context.request.uri.path)", "status": "\(error.status)",
                                                             "reason": "\(error.message)"])
                // 4400-4599; a plugin's refusal with a status outside 400...599 becomes 4500.
                let code = 4000 + ((400...599).contains(error.status) ? error.status : 500)
                try? await outbound.close(WebSocketErrorCode(codeNumber: code), reason: reason)
            case nil:
                try? await outbound.close(WebSocketErrorCode(codeNumber: 4500), reason: "upgrade state lost")
            }
        })
    }

    func sendHello(_ connection: ChannelConnection) {
        struct Hello: Encodable {
            let connection_id: String
            let channel: String
            let role: String
            let server_ts: Int64
        }
        if let text = try? SocketMessage.make(type: "hello", payload: Hello(
            connection_id: connection.id, channel: connection.channel.rawValue, role: connection.caller.role, server_ts: Self.nowMillis())) {
            connection.send(text)
        }
    }

    /// Sends the active scene to a connection that just opened (an overlay draws it at once).
    func sendScene(_ connection: ChannelConnection) {
        let scene = scenes.active
        let frame = SceneBroadcast.frame(SceneChange(scene: scene, active: true, action: "sync"))
        // A late join: its acknowledgement is timed from now, not from the version's first broadcast.
        if connection.channel == .overlay { acks.sentOnConnect(overlay: connection.clientLabel ?? connection.id, version: scene.version) }
        connection.enqueue(frame, key: connection.channel == .overlay ? "scene.full" : "scene.full:" + scene.name)
    }

    /// Resolves the caller and applies origin and rate-limit checks shared by plugin routes and endpoints.
    func admit(method: PluginAPI.HTTPMethod, access level: AccessLevel, rateLimit: RateLimit?, request: Request,
               context: EngineRequestContext, upgrade: Bool) async throws -> (Caller, String?) {
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
        let caller = try await access.authorize(access: level, headers: PluginBridge.headers(request.headers),
                                                query: PluginBridge.query(request.uri), upgrade: upgrade)
        return (caller, client)
    }

    func addPluginRoute(_ route: PluginRoute, owner: String, to router: Router<EngineRequestContext>) {
        let names = RouteTable.parameterNames(route.path)
        let bodyLimit = route.bodyLimit ?? config.limits.maxBodyBytes
        let path = RouterPath(RouteTable.hummingbirdPath(route.path))
        let handler: @Sendable (Request, EngineRequestContext) async throws -> Response = { request, context in
            let (caller, client) = try await self.admit(method: route.method, access: route.access, rateLimit: route.rateLimit,
                                                        request: request, context: context, upgrade: false)
            // The route's body limit (or limits.max_body_bytes) holds for whole reads and for streams alike.
            if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > bodyLimit {
                throw PluginError.payloadTooLarge(limit: bodyLimit)
            }
            let pluginRequest = PluginBridge.request(request, context: context, parameterNames: names, caller: caller,
                                                     remoteAddress: client, bodyLimit: bodyLimit)
            do {
                var response = try await route.handler(pluginRequest)
                if !(200...599).contains(response.status) {
                    self.logger.error("plugin answered an invalid HTTP status; sent 500 instead",
                                      metadata: ["plugin": "\(owner)", "path": "\(route.path)", "status": "\(response.status)"])
                    response = .error(PluginError(status: 500, code: "plugin_error", message: "the plugin '\(owner)' answered an invalid status"))
                }
                return PluginBridge.response(response)
            } catch let error as StoreError {
                self.logger.error("store failure in plugin route", metadata: ["path": "\(route.path)", "error": "\(error)"])
                throw PluginError.storeUnavailable()
            } catch let error as PluginError where !(400...599).contains(error.status) {
                self.logger.error("plugin threw an error with an invalid HTTP status; sent 500 instead",
                                  metadata: ["plugin": "\(owner)", "path": "\(route.path)", "status": "\(error.status)", "code": "\(error.code)"])
                throw PluginError(status: 500, code: "plugin_error", message: "the plugin '\(owner)' failed: \(error.message)")
            }
        }
        router.on(path, method: HTTPRequest.Method(rawValue: route.method.rawValue) ?? .get, use: handler)
        if route.method == .get { router.on(path, method: .head, use: handler) }
    }

    func addPluginEndpoint(_ endpoint: PluginWebSocketEndpoint, plugin: String, to router: Router<EngineRequestContext>) {
        let names = RouteTable.parameterNames(endpoint.path)
        socketRoute(router, RouterPath(RouteTable.hummingbirdPath(endpoint.path)), decide: { request, context in
            let (caller, client) = try await self.admit(method: .get, access: endpoint.access, rateLimit: endpoint.rateLimit,
                                                        request: request, context: context, upgrade: true)
            let pluginRequest = PluginBridge.request(request, context: context, parameterNames: names, caller: caller,
                                                     remoteAddress: client, bodyLimit: nil)
            switch try await endpoint.shouldUpgrade(pluginRequest) {
            case .accept(let value):
                return Admission(caller: caller, client: client, value: value)
            case .reject(let error):
                throw error
            }
        }, serve: { inbound, outbound, wsContext, admission in
            let pluginRequest = PluginBridge.request(wsContext.request, context: wsContext.requestContext, parameterNames: names,
                                                     caller: admission.caller, remoteAddress: admission.client, bodyLimit: nil)
            let session = PluginSocketSession(id: self.pluginSockets.nextID(plugin), request: pluginRequest, admission: admission.value,
                                              inbound: inbound, maxFrameSize: endpoint.maxFrameSize, outbound: outbound)
            self.pluginSockets.add(session)
            defer { self.pluginSockets.remove(session.id) }
            do {
                try await endpoint.handler(session)
            } catch {
                self.logger.warning("plugin socket ended with an error", metadata: ["plugin": "\(plugin)", "error": "\(error)"])
                await session.close(code: 1011, reason: "internal error")
            }
        })
    }
}

/// On graceful shutdown, closes every socket (1001 going away) so the HTTP server can drain and stop.
struct SocketShutdownService: Service {
    let engine: OverlayEngine

    func run() async throws {
        try? await gracefulShutdown()
        // The last resort: drain (grace) + cancellation (5 s) + plugins (grace), then the process ends
        // whatever is still running, with one line saying so.
        let grace = engine.config.server.shutdownGraceSeconds
        let logger = engine.logger
        Task.detached {
            try? await Task.sleep(for: .seconds(2 * grace + 5))
            logger.critical("shutdown took longer than 2 x server.shutdown_grace_seconds + 5 s (\(2 * grace + 5) s); exiting now")
            exit(1)
        }
        engine.logger.notice("shutting down: closing \(engine.hub.all.count + engine.pluginSockets.count) sockets")
        engine.hub.closeAll(code: 1001, reason: "server shutting down")
        await engine.pluginSockets.closeAll(code: 1001, reason: "server shutting down")
    }
}

/// Serves `web/<name>.html` at `/<name>` (`/overlay`, `/mod`, `/admin`) and the plugins' pages at their paths
/// (e.g. `/publish` -> `/plugins/webrtc-signaling/publish.html`).
struct PageAliasMiddleware: RouterMiddleware {
    typealias Context = EngineRequestContext
    let pages: [String: String]

    init(webDir: URL, pluginPages: [String: String] = [:]) {
        var pages: [String: String] = [:]
        let files = (try? FileManager.default.contentsOfDirectory(atPath: webDir.path)) ?? []
        for file in files where file.hasSuffix(".html") {
            pages["/" + String(file.dropLast(5))] = "/" + file
        }
        pages.merge(pluginPages) { _, plugin in plugin }
        self.pages = pages
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard request.method == .get || request.method == .head, let file = pages[request.uri.path] else {
            return try await next(request, context)
        }
        var head = request.head
        head.path = file + (request.uri.query.map { "?" + $0 } ?? "")
        return try await next(Request(head: head, body: request.body), context)
    }
}

/// True for the first caller of ``claim()`` only (a continuation resumed by whichever side finishes first).
final class ResumeOnce: Sendable {
    private let taken = Atomic<Bool>(false)
    func claim() -> Bool { !taken.exchange(true, ordering: .acquiringAndReleasing) }
}
