// The engine's own HTTP routes: health, readiness, metrics, the plugin listing and the two channel sockets.

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

}
