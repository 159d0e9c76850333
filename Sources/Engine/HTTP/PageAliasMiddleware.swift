// Page paths: /overlay, /mod, /admin from web/, and the plugins' own pages.

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
