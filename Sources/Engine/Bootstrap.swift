// The engine's composition root: builds the store, sessions, sockets, scenes and plugins from the config, checks routes.

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
    /// Creates folders, the store and sessions, loads every plugin and checks routes for clashes.
    /// - Throws: ``StartupError`` listing every problem; plugins that did start are shut down first.
    public static func prepare(config: EngineConfig, logger: Logger) async throws -> OverlayEngine {
        let (dataDir, uploadsDir, webDir) = try makeFolders(config)
        let store = try await openStore(config, dataDir: dataDir, logger: logger)
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
        let bus = StoreBus(store: store, engineID: SceneEpoch.make())
        await closeRevokedSessions(sessions: sessions, hub: hub, bus: bus, logger: logger)
        let pluginsDir = pluginsDirectory(config)
        let publicURL =
            config.server.publicURL.isEmpty
            ? "http://\(config.server.host == "0.0.0.0" ? "localhost" : config.server.host):\(config.server.port)"
            : String(config.server.publicURL.trimmingCharacters(in: CharacterSet(charactersIn: "/")))
        let access = AccessPolicy(
            security: config.security, streamerToken: streamerToken,
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
        let sceneResponses = SceneResponseCache()
        let feed = SceneFeed(hub: hub, acks: acks, capacity: config.scene.replayLogSize, logger: logger, encoded: sceneResponses)
        let scene = try openScenes(
            config: config, store: store, dataDir: dataDir, limits: sceneLimits, feed: feed, metrics: metrics, logger: logger)

        let (loaded, loadErrors) = await PluginLoader.loadAll(
            config: config, pluginsDir: pluginsDir,
            refusedRegistration: { message in
                logger.error("\(message)")
            }
        ) { name in
            let folder = dataDir.appendingPathComponent("plugins").appendingPathComponent(name)
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            return PluginContext(
                pluginName: name, dataDirectory: folder, uploadsDirectory: uploadsDir, publicURL: publicURL, settings: settings,
                store: NamespacedStore(base: store, prefix: "plugin:\(name):"), logger: SwiftLogPluginLogger(base: logger, plugin: name),
                metrics: metrics.forPlugin(name), crypto: crypto, sockets: hub, sessions: sessions, scene: scene,
                bus: bus.view(owner: name))
        }
        var problems = loadErrors.map(\.description)
        problems += addElementTypes(of: loaded, to: &sceneLimits)
        let engineRegistrar = PluginRegistrar()
        let realtime = RealtimeReport(
            hub: hub, acks: acks, scenes: scene, feed: feed, metrics: metrics, startedAt: Date(), engineID: bus.engineID, store: store)
        SceneRoutes(
            store: scene, acks: acks, editing: SceneEditing(validator: SceneValidator(limits: sceneLimits)),
            bodyLimit: config.scene.maxBodyBytes, realtime: realtime.snapshot, responses: sceneResponses
        )
        .register(engineRegistrar)

        problems += claimRoutes(engine: engineRegistrar, plugins: loaded)

        if !problems.isEmpty {
            for plugin in loaded.reversed() { await plugin.shutdown() }
            throw StartupError(lines: problems)
        }

        let engine = OverlayEngine(
            config: config, logger: logger, metrics: metrics, store: store, sessions: sessions, hub: hub, access: access,
            plugins: loaded, scenes: scene, feed: feed, acks: acks, realtime: realtime, engineRegistrar: engineRegistrar,
            sceneResponses: sceneResponses, webDir: webDir,
            publicURL: publicURL)
        engine.registerEngineEvents()
        engine.registerPluginEvents()
        return engine
    }

    /// `data_dir` and `uploads_dir`, created if missing, and `web_dir`, as absolute URLs.
    static func makeFolders(_ config: EngineConfig) throws -> (data: URL, uploads: URL, web: URL) {
        let dataDir = absolute(config.server.dataDir)
        let uploadsDir = absolute(config.server.uploadsDir)
        var problems: [String] = []
        for (name, url) in [("data_dir", dataDir), ("uploads_dir", uploadsDir)] {
            do {
                try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
            } catch {
                problems.append("engine: server.\(name) '\(url.path)' cannot be created: \(error.localizedDescription)")
            }
        }
        if !problems.isEmpty { throw StartupError(lines: problems) }
        return (dataDir, uploadsDir, absolute(config.server.webDir))
    }

    /// A revoked session's sockets close with 4401 on this engine at once and, through the bus, on every other engine
    /// sharing the store (expired sessions are found by each engine's ``SessionSweep``).
    static func closeRevokedSessions(sessions: ModeratorSessionStore, hub: ChannelHub, bus: StoreBus, logger: Logger) async {
        let engineBus = bus.view(owner: "engine")
        sessions.whenRevoked { [weak hub] id in
            hub?.closeSession(id)
            Task {
                do {
                    try await engineBus.publish("session.revoked", Array(id.utf8))
                } catch {
                    logger.error("cannot tell the other engines that session \(id) was revoked: \(error); their sockets close at their next sweep")
                }
            }
        }
        do {
            _ = try await engineBus.subscribe("session.revoked") { [weak hub] message, from in
                guard from != bus.engineID else { return }
                hub?.closeSession(String(decoding: message.prefix(64), as: UTF8.self))
            }
        } catch {
            logger.error("cannot follow session revocations of other engines: \(error)")
        }
    }

    /// The configured store: the embedded one (kept in `<data_dir>/store.json` unless told not to) or Redis, which
    /// may be down at start-up (then `/readyz` says so and requests that need it answer 503 until it is back).
    static func openStore(_ config: EngineConfig, dataDir: URL, logger: Logger) async throws -> any EngineStore {
        switch config.storage.backend {
        case .embedded:
            if config.storage.persistEmbedded {
                do {
                    return try EmbeddedStore(snapshot: dataDir.appendingPathComponent("store.json"), logger: logger)
                } catch {
                    throw StartupError(lines: ["engine: the embedded store in '\(dataDir.path)/store.json' cannot be opened: \(error)"])
                }
            } else {
                return EmbeddedStore()
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
                if let note = await redis.durabilityNote() {
                    if note.warning { logger.warning("\(note.line)") } else { logger.notice("\(note.line)") }
                }
            } catch {
                // Not fatal: /readyz reports it, requests that need the store answer 503, and it recovers by itself.
                logger.error("store: redis at \(redis.address) is not reachable yet (\(error)); serving anyway")
            }
            return redis
        }
    }

    /// The scenes (in `<data_dir>/scenes`, or in Redis shared with other engines); each durable change goes to the
    /// overlays (the active scene) and panels through the feed.
    static func openScenes(
        config: EngineConfig, store: any EngineStore, dataDir: URL, limits: SceneLimits, feed: SceneFeed, metrics: EngineMetrics,
        logger: Logger
    ) throws -> SceneStore {
        let onChange: @Sendable (SceneChange) -> Void = { change in
            feed.publish(change, epoch: change.epoch)
            metrics.gauge("onionrp_scene_version", [("scene", change.scene.name)]).record(Double(change.scene.version))
        }
        if let redis = store as? RedisStore {
            do {
                let ledger = RedisSceneLedger(
                    store: redis, importFrom: dataDir.appendingPathComponent("scenes"), limits: limits,
                    replayLength: config.scene.replayLogSize, logger: logger)
                return try SceneStore(ledger: ledger, limits: limits, logger: logger, onChange: onChange)
            } catch {
                throw StartupError(lines: ["engine: the scenes in redis at \(redis.address) cannot be opened: \(error)"])
            }
        }
        do {
            return try SceneStore(dataDirectory: dataDir, limits: limits, logger: logger, onChange: onChange)
        } catch {
            throw StartupError(lines: ["engine: the scenes in '\(dataDir.path)/scenes' cannot be opened: \(error)"])
        }
    }

    /// Plugin-declared element types join the core ones; each name has one owner.
    /// - Returns: One problem per type that clashes.
    static func addElementTypes(of plugins: [LoadedPlugin], to limits: inout SceneLimits) -> [String] {
        var problems: [String] = []
        var owners: [String: String] = [:]
        for plugin in plugins {
            for type in plugin.registrar.elementTypes {
                let clash: String? =
                    SceneLimits.coreElementTypes.contains(type.name)
                    ? "element type '\(type.name)' is a core type of the engine"
                    : owners[type.name].map { "element type '\(type.name)' is already declared by plugin '\($0)'" }
                if let clash {
                    problems.append(PluginLoadError(plugin: plugin.name, file: plugin.file, reason: clash).description)
                } else {
                    owners[type.name] = plugin.name
                    limits.pluginElementTypes[type.name] = type
                }
            }
        }
        return problems
    }

    /// Claims every path the engine and the plugins serve; a second claim of a path is a clash.
    /// - Returns: One problem per clash or malformed pattern.
    static func claimRoutes(engine: PluginRegistrar, plugins: [LoadedPlugin]) -> [String] {
        var table = RouteTable()
        for route in ownRoutes { table.claim(method: "GET", path: route.path, owner: "engine", file: nil) }
        for route in engine.routes {
            table.claim(method: route.method.rawValue, path: route.path, owner: "engine", file: nil)
            if route.method == .get { table.claim(method: "HEAD", path: route.path, owner: "engine", file: nil) }
        }
        for plugin in plugins {
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
        return table.problems
    }

    /// The plugins' socket event handlers and hooks, on the hub.
    func registerPluginEvents() {
        for plugin in plugins {
            for handler in plugin.registrar.eventHandlers {
                hub.on(handler.event, channels: handler.channels, owner: plugin.name, handler: handler.handler)
            }
            for hook in plugin.registrar.connectHandlers {
                hub.onConnect(channels: hook.channels, owner: plugin.name, handler: hook.handler)
            }
            for hook in plugin.registrar.disconnectHandlers {
                hub.onDisconnect(channels: hook.channels, handler: hook.handler)
            }
            logger.info(
                "loaded plugin \(plugin.name) \(plugin.version) (PluginAPI \(plugin.apiVersion)) from \(plugin.file): \(plugin.registrar.routes.count) routes, \(plugin.registrar.eventHandlers.count) events, \(plugin.registrar.webSocketEndpoints.count) sockets"
            )
        }
    }

    static func resolveStreamerToken(config: EngineConfig, dataDir: URL, crypto: OpenSSLCrypto, logger: Logger) throws -> String {
        if !config.security.streamerToken.isEmpty { return config.security.streamerToken }
        let file = dataDir.appendingPathComponent("streamer-token")
        if let data = FileManager.default.contents(atPath: file.path),
            let text = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines), !text.isEmpty
        {
            logger.notice("no streamer token configured; using the one kept in \(file.path)")
            return text
        }
        let token = crypto.randomToken(bytes: 24)
        try FileOps.atomicWrite(Array((token + "\n").utf8), to: file.path, mode: 0o600)
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

    static func nowMillis() -> Int64 { WallClock.nowMilliseconds }

}
