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
    public let sessions: ModeratorSessionStore
    public let hub: ChannelHub
    public let access: AccessPolicy
    public let plugins: [LoadedPlugin]
    public let scenes: SceneStore
    /// Scene changes as clients receive them (full frames, patches, the replay log for reconnects).
    let feed: SceneFeed
    public let acks: OverlayAcks
    /// The live picture (`/api/metrics/realtime`) and this engine's summary for the others.
    let realtime: RealtimeReport
    /// Routes the engine registers through the same mechanism as plugins (scene API).
    let engineRegistrar: PluginRegistrar
    /// The encoded scene bodies (shared with the scene routes), for the direct `GET /api/scene` route.
    let sceneResponses: SceneResponseCache
    let pluginSockets = PluginSocketRegistry()
    /// The folder of the core pages.
    let webDir: URL
    /// How browsers reach the engine (`server.public_url`, or http://host:port).
    let publicURL: String
    /// The connection cap and timeouts (`server.max_connections`, `server.*_timeout_seconds`).
    let connectionLimits: ConnectionLimits
    /// Rate-limit buckets used while the shared store is unreachable, so a store outage never turns
    /// into refused saves: each engine then limits on its own (fail open to a local bucket).
    let localRateLimits = EmbeddedStore()

    /// What the plugins registered, for the table and `GET /api/plugins`.
    public var pluginDescriptions: [PluginDescription] { plugins.map(PluginDescription.init) }

    init(
        config: EngineConfig, logger: Logger, metrics: EngineMetrics, store: any EngineStore, sessions: ModeratorSessionStore,
        hub: ChannelHub, access: AccessPolicy, plugins: [LoadedPlugin], scenes: SceneStore, feed: SceneFeed, acks: OverlayAcks,
        realtime: RealtimeReport,
        engineRegistrar: PluginRegistrar, sceneResponses: SceneResponseCache, webDir: URL, publicURL: String
    ) {
        self.config = config
        self.logger = logger
        self.metrics = metrics
        self.store = store
        self.sessions = sessions
        self.hub = hub
        self.access = access
        self.plugins = plugins
        self.scenes = scenes
        self.feed = feed
        self.acks = acks
        self.realtime = realtime
        self.engineRegistrar = engineRegistrar
        self.sceneResponses = sceneResponses
        self.webDir = webDir
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

    // MARK: application

    /// Builds the Hummingbird application with every route.
    public func makeApplication(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let router = Router(context: EngineRequestContext.self)
        router.add(middleware: ErrorAndLogMiddleware(logger: logger))
        addEngineRoutes(router)
        addSceneRead(router)
        for route in engineRegistrar.routes where !Self.servedDirectly(route) { addPluginRoute(route, owner: "engine", to: router) }
        for plugin in plugins {
            for route in plugin.registrar.routes { addPluginRoute(route, owner: plugin.name, to: router) }
            for endpoint in plugin.registrar.webSocketEndpoints { addPluginEndpoint(endpoint, plugin: plugin.name, to: router) }
        }
        // Pages and files come after every route: Hummingbird wraps a route in the middleware added before it, so
        // these two only wrap the not-found responder (a request no route answers), and an API request does not
        // pass through them.
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
            router.add(
                middleware: FileMiddleware(
                    folder.path, urlBasePath: "/plugins/\(plugin.name)", cacheControl: noCache,
                    searchForIndexHtml: false, logger: logger))
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
                EngineChildChannel(
                    responder: responder, webSocketResponder: webSocketResponder,
                    http1: .init(),
                    ws: wsConfig, limits: limits)
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
            logger.warning(
                "server.max_connections (\(connectionLimits.maxConnections)) is close to the open-file limit (\(files)); past the limit new connections fail before the cap can answer them"
            )
        }
        let app = makeApplication()
        let shutdown = SocketShutdownService(engine: self)
        let ttl = config.sessions.moderatorSessionTTLSeconds
        let sessionSweep = SessionSweep(hub: hub, sessions: sessions, logger: logger)
        let trim = MemoryTrim(limits: connectionLimits)
        let hub = self.hub
        var pollers = [
            PeriodicService("session expiry", every: .milliseconds(min(10_000, max(500, ttl * 250)))) { await sessionSweep.sweep() },
            PeriodicService("stuck writers", every: .seconds(1)) { hub.sweepStuckWriters() },
            PeriodicService("memory trim", every: .seconds(5)) { trim.step() },
        ]
        if let embedded = store as? EmbeddedStore {
            pollers.append(PeriodicService("store snapshot", every: .seconds(1)) { _ = try? await BlockingIO.run { embedded.flush() } })
        } else {
            // Several engines may share the store: each tells the others what it serves (`/api/metrics/realtime`).
            pollers.append(PeriodicService("cluster presence", every: .seconds(2)) { [realtime] in await realtime.publishPresence() })
        }
        var groupConfig = ServiceGroupConfiguration(
            services: [.init(service: app), .init(service: shutdown)] + pollers.map { .init(service: $0) },
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
            Task {
                await self.stopPlugins()
                finish(true)
            }
            Task {
                try? await Task.sleep(for: grace)
                finish(false)
            }
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
        scenes.close()
        await store.close()
        logger.notice("engine stopped")
    }

}

/// True for the first caller of ``claim()`` only (a continuation resumed by whichever side finishes first).
final class ResumeOnce: Sendable {
    private let taken = Atomic<Bool>(false)
    func claim() -> Bool { !taken.exchange(true, ordering: .acquiringAndReleasing) }
}
