// WebRTCSignaling: signed room tokens, ICE configuration, and the publisher/viewer signaling sockets of a camera room.

import Foundation
import PluginAPI

@_cdecl("onionrp_plugin_entry")
public func onionrpPluginEntry(_ host: UInt32, _ built: UnsafeMutablePointer<UInt32>?) -> UnsafeMutableRawPointer? {
    PluginExport.entry(WebRTCSignalingPlugin.self, hostVersion: host, builtVersion: built)
}

/// WebRTC signaling for camera rooms: one publisher page and many viewers (overlays) per room.
///
/// Routes: `GET /api/webrtc/config`, `POST /api/webrtc/token`, `POST /api/webrtc/rooms/{room}/viewer-token`,
/// `GET /api/webrtc/rooms`, `GET /api/webrtc/rooms/{room}/stats`. Sockets: `/ws/webrtc/{room}/publisher` and
/// `/ws/webrtc/{room}/viewer`. See docs/plugins/webrtc-signaling.md.
final class WebRTCSignalingPlugin: OverlayPlugin {
    static let name = "webrtc-signaling"
    static let version = "1.0.0"
    static let summary = "WebRTC camera rooms: signed tokens, ICE/TURN config, publisher/viewer signaling and media metrics"

    let configuration: WebRTCSignalingConfiguration
    let context: PluginContext
    let signer: RoomTokenSigner
    let ice: ICEConfigBuilder
    let registry: RoomRegistry
    let gauges: RoomGauges
    let signaling: Signaling
    /// `sfu` mode: the Janus side.
    let bridge: SFUBridge?
    /// The rooms of the other engines sharing the store.
    let cluster: ClusterRooms

    init(configuration: WebRTCSignalingConfiguration, context: PluginContext) throws {
        let configuration = try configuration.applyingEnvironment(ProcessInfo.processInfo.environment)
        self.configuration = configuration
        self.context = context
        let secret = try RoomTokenSigner.loadSecret(
            configured: configuration.tokenSecret, folder: context.dataDirectory,
            crypto: context.crypto)
        signer = RoomTokenSigner(secret: secret.key, crypto: context.crypto)
        ice = ICEConfigBuilder(configuration: configuration, crypto: context.crypto)
        gauges = RoomGauges(metrics: context.metrics, maxLabels: configuration.metricsRoomLabels)
        let crypto = context.crypto
        cluster = ClusterRooms(bus: context.bus, configuration: configuration, gauges: gauges, logger: context.logger)
        registry = RoomRegistry(configuration: configuration, gauges: gauges, cluster: cluster) { role in
            (role == .publisher ? "p-" : "v-") + Hex.encode(crypto.randomBytes(5))
        }
        if configuration.mode == .sfu, let endpoint = HTTPEndpoint.parse(configuration.janusURL) {
            bridge = SFUBridge(
                configuration: configuration, endpoint: endpoint, admin: HTTPEndpoint.parse(configuration.janusAdminURL), registry: registry,
                crypto: context.crypto, roomKey: secret.key, logger: context.logger)
        } else {
            bridge = nil
        }
        signaling = Signaling(
            configuration: configuration, registry: registry, signer: signer, gauges: gauges, logger: context.logger, bridge: bridge)
        context.logger.info(
            "webrtc-signaling ready",
            [
                "token_secret": secret.source, "stun_urls": String(configuration.stunURLs.count), "turn_urls": String(configuration.turnURLs.count),
                "turn": configuration.turnURLs.isEmpty ? "none" : (configuration.turnSecret.isEmpty ? "static" : "rest"),
                "mode": configuration.mode.rawValue, "janus": configuration.mode == .sfu ? configuration.janusURL : "-",
            ])
    }

    /// The `webrtc` scene element: a room's camera inside the element's box.
    static let elementType = ElementType(
        "webrtc", label: "Camera",
        properties: [
            .string(
                "room", label: "Room", minLength: 1, maxLength: RoomName.maxLength, pattern: "[A-Za-z0-9_-]{1,64}",
                help: "The camera room; publish to it from /publish"),
            .integer(
                "max_kbps", label: "Max kbit/s", range: 0...50000,
                help: "The most this element receives (0: no limit); through the SFU it picks a smaller simulcast layer"),
        ], required: ["room"], width: 640, height: 360)

    func setUp(_ registrar: PluginRegistrar) async throws {
        await cluster.start(registry: registry)
        // The feature in every page: the overlay's camera element and /preview, the panel's Camera tab, the admin
        // card with publisher links, and the camera page.
        registrar.sceneElementType(Self.elementType)
        registrar.webModule(.overlay, "overlay.js")
        registrar.webModule(.panel, "panel.js", styles: ["camera.css"])
        registrar.webModule(.admin, "admin.js", styles: ["camera.css"])
        registrar.webPage("/publish", file: "publish.html")
        registrar.webPage("/preview", file: "preview.html")
        registrar.route(
            .get, "/api/webrtc/config", access: .public,
            rateLimit: RateLimit(name: "webrtc.config", burst: 30, perMinute: 120),
            summary: "ICE servers (STUN, TURN with short-lived credentials); ?room=, ?token="
        ) { request in
            try self.iceConfig(request)
        }
        registrar.route(
            .post, "/api/webrtc/token", access: .streamer, bodyLimit: 4096,
            rateLimit: RateLimit(name: "webrtc.token", burst: 20, perMinute: 60),
            summary: "signed room token (form or JSON: room, role publisher|viewer, ttl)"
        ) { request in
            try await self.issueToken(request)
        }
        registrar.route(
            .post, "/api/webrtc/rooms/{room}/viewer-token", access: .overlay, bodyLimit: 4096,
            rateLimit: RateLimit(name: "webrtc.viewer-token", burst: 30, perMinute: 120),
            summary: "short-lived viewer token for an overlay showing the room"
        ) { request in
            try await self.issueOverlayViewerToken(request)
        }
        registrar.route(.get, "/api/webrtc/rooms", access: .moderator, summary: "rooms in use with their figures") { _ in
            /// The body of `GET /api/webrtc/rooms`.
            struct Listing: Encodable {
                let rooms: [RoomFigures]
                let max_rooms: Int
                /// The engine that answered, and every engine sharing the rooms (several engines).
                let engine_id: String
                let engines: [String]
            }
            return try .json(
                Listing(
                    rooms: self.registry.list(), max_rooms: self.configuration.maxRooms, engine_id: self.cluster.engineID,
                    engines: self.cluster.engines))
        }
        registrar.route(
            .get, "/api/webrtc/rooms/{room}/stats", access: .moderator,
            summary: "publisher, viewers, message counts, latest media metrics and history"
        ) { request in
            let room = try RoomName.validated(request.pathParameters["room"])
            guard var stats = self.registry.stats(room) else {
                throw PluginError(status: 404, code: "room_not_found", message: "nobody is in room '\(room)'")
            }
            stats.mode = self.configuration.mode.rawValue
            stats.janus = await self.bridge?.figures(room)
            return try .json(stats)
        }
        // Frames over max_message_bytes get an error frame; a fragmented message over 4x that closes the socket (1009).
        let frameLimit = configuration.maxMessageBytes * 4
        for role in PeerRole.allCases {
            registrar.webSocket(
                "/ws/webrtc/{room}/\(role.rawValue)", access: .public, maxFrameSize: frameLimit,
                rateLimit: RateLimit(name: "webrtc.connect", burst: 30, perMinute: 120),
                shouldUpgrade: { request in try self.signaling.shouldUpgrade(request, role: role) },
                handler: { session in await self.signaling.serve(session) })
        }
    }

    func shutdown() async {
        for peer in registry.allPeers() { peer.close(code: CloseCode.goingAway, reason: "server shutting down") }
        await bridge?.shutdown()
        await cluster.stop()
    }

    // MARK: routes

    func iceConfig(_ request: PluginRequest) throws -> PluginResponse {
        var room: String?
        if let value = request.queryValue("room"), !value.isEmpty { room = try RoomName.validated(value) }
        var turnAllowed = !configuration.turnRequiresToken
        if let token = request.queryValue("token"), !token.isEmpty {
            let grant = try signaling.verify(token: token)
            if let room, room != grant.room { throw PluginError.forbidden("the token is for another room") }
            room = grant.room
            turnAllowed = true
        }
        var response = try PluginResponse.json(ice.answer(room: room, turnAllowed: turnAllowed, now: Signaling.nowSeconds()))
        response.headers.set("cache-control", "no-store")
        return response
    }

    /// The body of both token routes.
    struct TokenAnswer: Encodable {
        let token: String
        let room: String
        let role: String
        let expiresAt: Date
        let ttlSeconds: Int
        /// The page to open, relative to the engine: `/publish?room=&token=` or `/preview?webrtc_room=&token=`.
        let url: String
        /// The same page under the engine's public URL.
        let publicURL: String

        enum CodingKeys: String, CodingKey {
            case token, room, role, url
            case expiresAt = "expires_at"
            case ttlSeconds = "ttl_seconds"
            case publicURL = "public_url"
        }
    }

    func tokenAnswer(room: String, role: PeerRole, ttl: Int, via: String) -> TokenAnswer {
        let issued = signer.issue(room: room, role: role, expiresAt: Signaling.nowSeconds() + Int64(ttl))
        let path =
            role == .publisher
            ? "/publish?room=\(room)&token=\(issued.token)"
            : "/preview?webrtc_room=\(room)&token=\(issued.token)"
        gauges.count("webrtc_tokens_issued_total", [("role", role.rawValue), ("via", via)])
        context.logger.info(
            "webrtc token issued",
            [
                "room": room, "role": role.rawValue, "token": issued.grant.id, "via": via,
                "ttl": String(ttl),
            ])
        return TokenAnswer(
            token: issued.token, room: room, role: role.rawValue,
            expiresAt: Date(timeIntervalSince1970: TimeInterval(issued.grant.expiresAt)), ttlSeconds: ttl,
            url: path, publicURL: context.publicURL + path)
    }

    func issueToken(_ request: PluginRequest) async throws -> PluginResponse {
        let fields = try await request.formFields(limit: 4096)
        let room = try RoomName.validated(fields["room"])
        guard let roleText = fields["role"], let role = PeerRole(rawValue: roleText) else {
            throw PluginError.invalidField("role", "must be 'publisher' or 'viewer'")
        }
        var ttl = configuration.tokenTTLSeconds
        if let text = fields["ttl"], !text.isEmpty {
            guard let value = Int(text), (1...configuration.maxTokenTTLSeconds).contains(value) else {
                throw PluginError.invalidField("ttl", "must be a whole number of seconds from 1 to \(configuration.maxTokenTTLSeconds)")
            }
            ttl = value
        }
        return try .json(tokenAnswer(room: room, role: role, ttl: ttl, via: "streamer"), status: 201)
    }

    func issueOverlayViewerToken(_ request: PluginRequest) async throws -> PluginResponse {
        let room = try RoomName.validated(request.pathParameters["room"])
        switch request.caller {
        case .streamer, .moderator:
            break
        case .overlay, .anonymous:
            if configuration.overlayRooms == .scene, try await !activeSceneShows(room: room) {
                throw PluginError.forbidden("room '\(room)' is not shown by a webrtc element of the active scene")
            }
        }
        return try .json(tokenAnswer(room: room, role: .viewer, ttl: configuration.overlayTokenTTLSeconds, via: "overlay"), status: 201)
    }

    /// True when a `webrtc` element of the active scene names `room`.
    func activeSceneShows(room: String) async throws -> Bool {
        let scene = try await context.scene.activeScene()
        guard let value = try? JSON.decode(JSONValue.self, from: scene.json), case .array(let elements)? = value["elements"] else {
            return false
        }
        return elements.contains { $0["type"]?.stringValue == "webrtc" && $0["props"]?["room"]?.stringValue == room }
    }
}
