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

    /// `{"status":"ok"}`, encoded once: a health probe costs no encoding.
    static let healthBody = ByteBuffer(string: #"{"status":"ok"}"#)
    static let jsonNoStore: HTTPFields = [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"]

    /// Every path the engine serves itself, in one table: ``prepare(config:logger:)`` claims them all (a plugin
    /// cannot take one) and ``addEngineRoutes(_:)`` registers the ones that are routes.
    struct OwnRoute: Sendable {
        enum Kind: Sendable {
            /// A GET (and HEAD) route.
            case get(@Sendable (OverlayEngine, Request) async throws -> Response)
            /// A channel socket: `/ws/overlay`, `/ws/moderator`.
            case socket(SocketChannel, AccessLevel)
            /// Served by the page and file middleware (claimed so that no plugin shadows it).
            case page
        }
        let path: String
        let kind: Kind
    }

    static let ownRoutes: [OwnRoute] = [
        OwnRoute(path: "/healthz", kind: .get { _, _ in Response(status: .ok, headers: jsonNoStore, body: .init(byteBuffer: healthBody)) }),
        OwnRoute(path: "/readyz", kind: .get { engine, _ in try await engine.readiness() }),
        OwnRoute(
            path: "/metrics",
            kind: .get { engine, _ in
                var headers = HTTPFields()
                headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: engine.metrics.render())))
            }),
        OwnRoute(path: "/api/plugins", kind: .get { engine, request in try engine.pluginListing(request) }),
        OwnRoute(path: "/ws/overlay", kind: .socket(.overlay, .overlay)),
        OwnRoute(path: "/ws/moderator", kind: .socket(.moderator, .moderator)),
        OwnRoute(path: "/", kind: .page),
        OwnRoute(path: "/overlay", kind: .page),
        OwnRoute(path: "/mod", kind: .page),
        OwnRoute(path: "/admin", kind: .page),
        OwnRoute(path: "/plugins/{name}/{file}", kind: .page),
    ]

    func addEngineRoutes(_ router: Router<EngineRequestContext>) {
        for route in Self.ownRoutes {
            switch route.kind {
            case .get(let handler):
                router.get(RouterPath(route.path)) { request, _ in try await handler(self, request) }
            case .socket(let channel, let access):
                addChannelSocket(router, path: route.path, channel: channel, access: access)
            case .page:
                break
            }
        }
    }

    /// `GET /readyz`: 200 when the store answers, 503 otherwise.
    func readiness() async throws -> Response {
        struct Ready: Encodable {
            let status: String
            let store: String
            let store_ok: Bool
            let store_error: String?
            let plugins: [String]
        }
        var storeError: String?
        do { try await store.ping() } catch { storeError = "\(error)" }
        let ready = Ready(
            status: storeError == nil ? "ready" : "not_ready", store: store.backendName, store_ok: storeError == nil,
            store_error: storeError, plugins: plugins.map(\.name))
        return try json(ready, status: storeError == nil ? .ok : .serviceUnavailable)
    }

    /// `GET /api/plugins`: public, as the pages need it; the library paths on the server only with the streamer token.
    func pluginListing(_ request: Request) throws -> Response {
        struct Listing: Encodable {
            let engine_version: String
            let api_version: String
            let plugins: [PluginDescription]
        }
        let streamer = access.isStreamerToken(request.headers[.streamerToken])
        let plugins = pluginDescriptions.map { description -> PluginDescription in
            var copy = description
            if !streamer { copy.file = nil }
            return copy
        }
        return try json(Listing(engine_version: Self.version, api_version: PluginAPIVersion.current.description, plugins: plugins))
    }

    /// `/ws/overlay` (`?overlay_id=` names it in the metrics) and `/ws/moderator`. Both take `?patches=1` (the client
    /// applies `scene.patch` frames) and `?since=<version>&epoch=<epoch>` (the version it holds, to get only what it missed).
    func addChannelSocket(_ router: Router<EngineRequestContext>, path: String, channel: SocketChannel, access level: AccessLevel) {
        socketRoute(
            router, RouterPath(path),
            decide: { request, context in
                let admitted = try await self.admit(
                    method: .get, access: level, rateLimit: nil, request: request,
                    context: context, upgrade: true)
                let query = admitted.query
                if channel == .overlay, let id = query.first(where: { $0.name == "overlay_id" })?.value,
                    id.isEmpty || id.count > 64 || !SceneValidator.isIdentifier(id)
                {
                    throw PluginError.invalidField("overlay_id", "1-64 letters, digits, '-', '_' or '.'")
                }
                _ = try Self.sceneOptions(query)
                return Admission(caller: admitted.caller, client: admitted.client)
            },
            upgrade: { request, _, admission in
                let query = PluginBridge.query(request.uri)
                let label = channel == .overlay ? query.first(where: { $0.name == "overlay_id" })?.value : nil
                let options = (try? Self.sceneOptions(query)) ?? (patches: false, resume: nil)
                let settings = self.channelSocketSettings
                return .channel { nioChannel in
                    try self.hub.open(
                        channel: channel, caller: admission.caller, clientLabel: label, takesPatches: options.patches, on: nioChannel,
                        settings: settings,
                        afterConnect: {
                            self.sendHello($0)
                            self.sendScene($0, resume: options.resume)
                        })
                }
            })
    }

    /// `patches` (`1`/`true`/`0`/`false`), `since` (a version, with `epoch`) of a channel socket's query.
    static func sceneOptions(_ query: [(name: String, value: String)]) throws -> (patches: Bool, resume: SceneFeed.Resume?) {
        func value(_ name: String) -> String? { query.first(where: { $0.name == name })?.value }
        var patches = false
        if let text = value("patches") {
            switch text {
            case "1", "true": patches = true
            case "0", "false", "": patches = false
            default: throw PluginError.invalidField("patches", "1 or 0")
            }
        }
        var resume: SceneFeed.Resume? = nil
        if let text = value("since") {
            guard let since = Int64(text), since >= 0 else { throw PluginError.invalidField("since", "a scene version (a whole number >= 0)") }
            let epoch = value("epoch") ?? ""
            guard epoch.count <= 64 else { throw PluginError.invalidField("epoch", "at most 64 characters") }
            resume = SceneFeed.Resume(since: since, epoch: epoch)
        }
        return (patches, resume)
    }
}

extension OverlayEngine {
    /// Whether a route of the engine's registrar is served by a route of its own instead of the plugin bridge (it stays
    /// in the registrar: claimed, listed and documented like the others).
    static func servedDirectly(_ route: PluginRoute) -> Bool { route.method == .get && route.path == "/api/scene" }

    /// The headers ``AccessPolicy/authorize(access:headers:query:upgrade:)`` reads: the only ones the direct routes convert.
    static let credentialHeaders: [(HTTPField.Name, String)] = AccessPolicy.credentialHeaders.compactMap { name in
        HTTPField.Name(name).map { ($0, name) }
    }

    /// `GET` / `HEAD /api/scene`, the read every overlay and panel makes: the same checks and answer as the registrar's
    /// route (overlay access, 503 until the scenes are loaded, ETag and 304), without the plugin bridge's conversions
    /// of every header, the query and the body into PluginAPI's types and back; the body is the cached buffer itself.
    func addSceneRead(_ router: Router<EngineRequestContext>) {
        let handler: @Sendable (Request, EngineRequestContext) async throws -> Response = { request, _ in
            // A request with no credential and no query, while the overlay needs no token, is an overlay read (what
            // `authorize` answers for it) without converting headers and query or an async call.
            let open =
                self.access.overlayToken.isEmpty && request.uri.query == nil
                && !Self.credentialHeaders.contains { request.headers[$0.0] != nil }
            if !open {
                var credentials = PluginAPI.HTTPHeaders()
                for (field, name) in Self.credentialHeaders {
                    if let value = request.headers[field] { credentials.add(name, value) }
                }
                _ = try await self.access.authorize(access: .overlay, headers: credentials, query: PluginBridge.query(request.uri))
            }
            try self.scenes.requireLoaded()
            let entry = try self.sceneResponses.entry(for: self.scenes.active)
            if let condition = request.headers[.ifNoneMatch], SceneResponseCache.matches(condition, etag: entry.etag) {
                return Response(status: .notModified, headers: entry.notModifiedFields)
            }
            return Response(status: .ok, headers: entry.fields, body: .init(byteBuffer: entry.buffer))
        }
        router.on("/api/scene", method: .get, use: handler)
        router.on("/api/scene", method: .head, use: handler)
    }
}
