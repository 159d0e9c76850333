// Closing every socket on graceful shutdown, bounded so that a stuck drain still ends the process.

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
