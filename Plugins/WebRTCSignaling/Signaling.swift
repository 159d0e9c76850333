// WebRTCSignaling: the signaling sockets: the upgrade check, the socket's life, and message validation and routing.

import Foundation
import PluginAPI

/// A problem with one message: answered with an error frame; `violation` ones count towards closing the socket.
struct SignalingError: Error, Sendable {
    let code: String
    let message: String
    /// True for protocol abuse (bad shape, wrong type); false for races such as a viewer that just left.
    let violation: Bool
}

/// Runs `WS /ws/webrtc/{room}/publisher` and `/viewer`.
final class Signaling: Sendable {
    /// Message types each role may send.
    static let allowedTypes: [PeerRole: Set<String>] = [
        .publisher: ["ping", "offer", "ice-candidate", "publisher.metrics"],
        .viewer: ["ping", "answer", "ice-candidate", "viewer.request-keyframe", "viewer.metrics", "viewer.settings"],
    ]

    /// How often pages are told to ping.
    static let pingIntervalSeconds = 15

    let configuration: WebRTCSignalingConfiguration
    let registry: RoomRegistry
    let signer: RoomTokenSigner
    let gauges: RoomGauges
    let logger: any PluginLogger
    /// `sfu` mode: the Janus side (nil in `p2p` mode).
    let bridge: SFUBridge?

    init(
        configuration: WebRTCSignalingConfiguration, registry: RoomRegistry, signer: RoomTokenSigner, gauges: RoomGauges,
        logger: any PluginLogger, bridge: SFUBridge? = nil
    ) {
        self.bridge = bridge
        self.configuration = configuration
        self.registry = registry
        self.signer = signer
        self.gauges = gauges
        self.logger = logger
    }

    /// Milliseconds since 1970.
    static func nowMillis() -> Int64 { WallClock.nowMilliseconds }
    /// Seconds since 1970.
    static func nowSeconds() -> Int64 { WallClock.nowSeconds }

    // MARK: admission

    /// What a verified upgrade hands to its socket.
    struct PeerAdmission: Sendable {
        let room: String
        let role: PeerRole
        let grant: RoomGrant
    }

    /// Verifies the room name and the token of an upgrade request.
    ///
    /// Bad or expired token: 401 (close 4401). A token for another room or role: 403 (close 4403).
    /// Capacity (one publisher, the viewer limit) is decided when the socket joins, so that the room hears of it.
    func shouldUpgrade(_ request: PluginRequest, role: PeerRole) throws -> WebSocketUpgradeDecision {
        do {
            let room = try RoomName.validated(request.pathParameters["room"], field: "room")
            let grant = try verify(token: request.queryValue("token"))
            guard grant.room == room else { throw PluginError.forbidden("the token is for another room") }
            guard grant.role == role else { throw PluginError.forbidden("the token is for the \(grant.role.rawValue) role, not \(role.rawValue)") }
            return .accept(admission: PeerAdmission(room: room, role: role, grant: grant))
        } catch let error as PluginError {
            gauges.count("webrtc_refused_total", [("role", role.rawValue), ("status", String(error.status))])
            throw error
        }
    }

    /// The grant of a token, or 401.
    func verify(token: String?) throws -> RoomGrant {
        guard let token, !token.isEmpty else { throw PluginError.unauthorized("a room token is required (?token=)") }
        do {
            return try signer.verify(token, now: Self.nowSeconds())
        } catch .expired {
            throw PluginError(status: 401, code: "token_expired", message: "the token has expired")
        } catch {
            throw PluginError(status: 401, code: "invalid_token", message: "the token is invalid")
        }
    }

    // MARK: the socket

    /// Runs an admitted socket until it closes.
    func serve(_ session: any WebSocketSession) async {
        guard let admission = session.admission(as: PeerAdmission.self) else {
            await session.close(code: 4500, reason: "upgrade state lost")
            return
        }
        let (room, role) = (admission.room, admission.role)
        let expiresAt: Int64? = admission.grant.expiresAt
        let peer = Peer(
            id: registry.freshID(role: role, room: room), role: role, room: room, tokenID: admission.grant.id,
            session: session, queueLimit: configuration.outboundQueue, burst: configuration.messageBurst,
            perSecond: configuration.messagesPerSecond)
        switch registry.join(peer, greeting: { publisherID in self.greeting(peer, publisherID: publisherID, tokenExpiresAt: expiresAt) }) {
        case .refused(let error):
            gauges.count("webrtc_refused_total", [("role", role.rawValue), ("status", String(error.status))])
            logger.info("webrtc peer refused", ["room": room, "role": role.rawValue, "status": String(error.status), "reason": error.message])
            await session.close(code: UInt16(clamping: 4000 + error.status), reason: error.message)
            return
        case .joined(let replaced):
            gauges.count("webrtc_joins_total", [("role", role.rawValue)])
            logger.info(
                "webrtc peer joined",
                [
                    "room": room, "role": role.rawValue, "peer": peer.id, "token": peer.tokenID,
                    "replaced": replaced?.id ?? "-",
                ])
            if role == .viewer { bridge?.viewerJoined(peer) }
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await peer.runWriter() }
            group.addTask { await self.watchIdle(peer) }
            await self.readLoop(peer)
            self.registry.leave(peer)
            self.bridge?.left(peer)
            peer.finish()
            group.cancelAll()
        }
        let counters = peer.snapshot
        logger.info(
            "webrtc peer left",
            [
                "room": room, "role": role.rawValue, "peer": peer.id, "received": String(counters.received),
                "sent": String(counters.sent), "errors": String(counters.errors),
            ])
    }

    private func greeting(_ peer: Peer, publisherID: String?, tokenExpiresAt: Int64?) -> String? {
        func optional(_ text: String?) -> JSONValue { text.map(JSONValue.string) ?? .null }
        let payload: [String: JSONValue] = [
            "room": .string(peer.room),
            "role": .string(peer.role.rawValue),
            "peer_id": .string(peer.id),
            "viewer_id": optional(peer.role == .viewer ? peer.id : nil),
            "publisher_id": optional(publisherID),
            "token_expires_at": tokenExpiresAt.map { .number(Double($0)) } ?? .null,
            "max_message_bytes": .number(Double(configuration.maxMessageBytes)),
            "idle_timeout_seconds": .number(Double(configuration.idleTimeoutSeconds)),
            "ping_interval_seconds": .number(Double(Self.pingIntervalSeconds)),
            "server_ts": .number(Double(Self.nowMillis())),
            "mode": .string(configuration.mode.rawValue),
            "simulcast": .bool(configuration.mode == .sfu && configuration.simulcast),
            "default_preset": .string(configuration.defaultPreset),
            "presets": (try? JSON.decode(JSONValue.self, from: JSON.encode(configuration.effectivePresets))) ?? .null,
            "viewer_max_bitrate_kbps": .number(Double(configuration.viewerMaxBitrateKbps)),
        ]
        return try? SocketMessage.make(type: "room.joined", payload: payload)
    }

    private func readLoop(_ peer: Peer) async {
        do {
            for try await message in peer.inbound {
                handle(message, from: peer)
            }
        } catch {
            // A fragmented message over the frame limit, or a broken connection: the socket is over either way.
            logger.debug("webrtc socket read ended", ["peer": peer.id, "error": "\(error)"])
        }
    }

    private func watchIdle(_ peer: Peer) async {
        let limit = Duration.seconds(configuration.idleTimeoutSeconds)
        let tick = min(Duration.milliseconds(500), limit / 4)
        while !Task.isCancelled {
            do { try await Task.sleep(for: tick) } catch { return }
            if peer.isClosing { return }
            if peer.idleFor > limit {
                gauges.count("webrtc_idle_closed_total", [("role", peer.role.rawValue)])
                peer.close(code: CloseCode.idle, reason: "nothing received for \(configuration.idleTimeoutSeconds) s")
                return
            }
        }
    }

    // MARK: messages

    /// Validates one inbound frame and acts on it. Never throws: problems become error frames.
    func handle(_ message: WebSocketMessage, from peer: Peer) {
        // A replaced publisher, or a socket being closed: what it still sends is dropped.
        guard !peer.isClosing else { return }
        let withinRate = peer.admitInbound()
        guard case .text(let text) = message else {
            registry.countReceived(room: peer.room, type: nil)
            return reject(peer, event: nil, SignalingError(code: "binary_not_supported", message: "send JSON text frames", violation: true))
        }
        guard text.utf8.count <= configuration.maxMessageBytes else {
            registry.countReceived(room: peer.room, type: nil)
            return reject(
                peer, event: nil,
                SignalingError(
                    code: "message_too_large", message: "the message has \(text.utf8.count) bytes; the limit is \(configuration.maxMessageBytes)",
                    violation: true))
        }
        let bytes = Array(text.utf8)
        guard let value = try? JSON.decode(JSONValue.self, from: bytes), case .object(var members) = value,
            case .string(let type)? = members["type"]
        else {
            registry.countReceived(room: peer.room, type: nil)
            return reject(
                peer, event: nil,
                SignalingError(
                    code: "invalid_message", message: "expected a JSON object with a string 'type'",
                    violation: true))
        }
        let allowed = Self.allowedTypes[peer.role] ?? []
        let known = allowed.contains(type)
        registry.countReceived(room: peer.room, type: known ? type : "(other)")
        gauges.count("webrtc_messages_total", [("role", peer.role.rawValue), ("type", known ? type : "other")])
        guard known else {
            return reject(
                peer, event: String(type.prefix(64)),
                SignalingError(
                    code: "type_not_allowed",
                    message: "a \(peer.role.rawValue) may send \(allowed.sorted().joined(separator: ", ")); not '\(type.prefix(64))'",
                    violation: true))
        }
        guard withinRate else {
            return reject(
                peer, event: type,
                SignalingError(
                    code: "rate_limited", message: "more than \(configuration.messagesPerSecond) messages per second", violation: true))
        }
        do {
            members["type"] = nil
            switch (peer.role, type) {
            case (_, "ping"):
                peer.send(pong(members))
            case (.publisher, "publisher.metrics"):
                try publisherMetrics(bytes, from: peer)
            case (.viewer, "viewer.metrics"):
                let sample = try JSON.decode(MediaSample.self, from: bytes)
                registry.recordViewerMetrics(sample, from: peer)
            case (.viewer, "viewer.settings"):
                let maxKbps = try Self.maxBitrate(members)
                if let bridge { bridge.viewerSettings(peer, maxKbps: maxKbps) } else { try routeToPublisher(type, members, from: peer) }
            case (.publisher, _):
                if let bridge { try toSFU(bridge, type, members, from: peer) } else { try routeToViewer(type, members, from: peer) }
            case (.viewer, _):
                if let bridge { try toSFU(bridge, type, members, from: peer) } else { try routeToPublisher(type, members, from: peer) }
            }
        } catch let error as SignalingError {
            reject(peer, event: type, error)
        } catch let error as PluginError {
            reject(peer, event: type, SignalingError(code: error.code, message: error.message, violation: true))
        } catch {
            reject(peer, event: type, SignalingError(code: "invalid_message", message: "the message could not be handled", violation: true))
        }
    }

    private func pong(_ members: [String: JSONValue]) -> String {
        var payload: [String: JSONValue] = ["server_ts": .number(Double(Self.nowMillis()))]
        // Echo a client timestamp or id so the page can measure the round trip.
        for key in ["ts", "id"] { if let value = members[key], case .number = value { payload[key] = value } }
        return (try? SocketMessage.make(type: "pong", payload: payload)) ?? SocketMessage.make(type: "pong")
    }

    /// Checks the members an `offer`, `answer` or `ice-candidate` must have.
    private func validatePayload(_ type: String, _ members: [String: JSONValue]) throws {
        switch type {
        case "offer", "answer":
            guard case .string(let sdp)? = members["sdp"], !sdp.isEmpty else {
                throw SignalingError(code: "invalid_field", message: "'\(type)' needs a non-empty string 'sdp'", violation: true)
            }
        case "ice-candidate":
            switch members["candidate"] {
            case .object(let candidate)?:
                guard case .string? = candidate["candidate"] else {
                    throw SignalingError(code: "invalid_field", message: "'candidate.candidate' must be a string", violation: true)
                }
            case .string?, .null?:
                break  // a bare candidate line; null ends the candidates
            default:
                throw SignalingError(
                    code: "invalid_field", message: "'ice-candidate' needs 'candidate' (an object, a string or null)",
                    violation: true)
            }
        default:
            break
        }
    }

    /// `viewer.settings`: `max_bitrate_kbps`, 0 (no limit) to 50000.
    static func maxBitrate(_ members: [String: JSONValue]) throws -> Int {
        guard let value = members["max_bitrate_kbps"]?.doubleValue, value.isFinite, (0...50_000).contains(value) else {
            throw SignalingError(
                code: "invalid_field", message: "'viewer.settings' needs 'max_bitrate_kbps': a number from 0 (no limit) to 50000", violation: true)
        }
        return Int(value)
    }

    /// `pc_id` of a message to the SFU: a short string (the pages name each connection).
    private static func connectionID(_ type: String, _ members: [String: JSONValue], required: Bool) throws -> String? {
        switch members["pc_id"] {
        case .string(let id)? where (1...128).contains(id.utf8.count):
            return id
        case nil where !required, .null? where !required:
            return nil
        default:
            throw SignalingError(code: "invalid_field", message: "'\(type)' needs 'pc_id': a string of 1-128 bytes", violation: true)
        }
    }

    /// `sfu` mode: what a page sends about its connection to the media server goes to the bridge, not to a peer.
    private func toSFU(_ bridge: SFUBridge, _ type: String, _ members: [String: JSONValue], from peer: Peer) throws {
        try validatePayload(type, members)
        switch (peer.role, type) {
        case (.publisher, "offer"), (.publisher, "ice-candidate"):
            guard members["to"]?.stringValue == SFUBridge.peerName else {
                throw SignalingError(
                    code: "invalid_field", message: "this room goes through the media server: send '\(type)' with \"to\": \"sfu\"", violation: true)
            }
            let pcID = try Self.connectionID(type, members, required: true) ?? ""
            if type == "offer", let sdp = members["sdp"]?.stringValue {
                bridge.publisherOffer(peer, pcID: pcID, sdp: sdp, preset: members["preset"]?.stringValue)
            } else {
                bridge.publisherCandidate(peer, pcID: pcID, candidate: members["candidate"])
            }
        case (.viewer, "answer"):
            let pcID = try Self.connectionID(type, members, required: true) ?? ""
            if let sdp = members["sdp"]?.stringValue { bridge.viewerAnswer(peer, pcID: pcID, sdp: sdp) }
        case (.viewer, "ice-candidate"):
            bridge.viewerCandidate(peer, pcID: try Self.connectionID(type, members, required: false), candidate: members["candidate"])
        case (.viewer, "viewer.request-keyframe"):
            bridge.viewerKeyframe(
                peer, pcID: try Self.connectionID(type, members, required: false),
                reason: members["reason"]?.stringValue.map { String($0.prefix(32)) })
        default:
            throw SignalingError(code: "type_not_allowed", message: "'\(type)' is not used in sfu mode", violation: true)
        }
        registry.countForwarded(room: peer.room, 1)
    }

    /// Publisher → one viewer (`to`), with `from` set to the publisher's id.
    private func routeToViewer(_ type: String, _ members: [String: JSONValue], from peer: Peer) throws {
        guard case .string(let to)? = members["to"], !to.isEmpty else {
            throw SignalingError(code: "invalid_field", message: "'\(type)' from the publisher needs 'to': a viewer id", violation: true)
        }
        try validatePayload(type, members)
        guard let target = registry.viewer(to, in: peer.room) else {
            if try forwardToOtherEngine(type, members, from: peer, to: registry.remoteViewer(to, in: peer.room)) { return }
            throw SignalingError(code: "unknown_peer", message: "no viewer '\(to.prefix(64))' in this room", violation: false)
        }
        try forward(type, members, from: peer, to: [target])
    }

    /// Viewer → the publisher, with `from` set to the viewer's id.
    private func routeToPublisher(_ type: String, _ members: [String: JSONValue], from peer: Peer) throws {
        try validatePayload(type, members)
        guard let publisher = registry.publisher(of: peer.room) else {
            if try forwardToOtherEngine(type, members, from: peer, to: registry.remotePublisher(of: peer.room)) { return }
            throw SignalingError(code: "no_publisher", message: "the room has no publisher right now", violation: false)
        }
        var members = members
        members["to"] = nil
        try forward(type, members, from: peer, to: [publisher])
    }

    private func forward(_ type: String, _ members: [String: JSONValue], from peer: Peer, to targets: [Peer]) throws {
        var members = members
        members["from"] = .string(peer.id)  // whatever the client wrote there is replaced
        let text = try SocketMessage.make(type: type, payload: members)
        var delivered = 0
        for target in targets where target.send(text) { delivered += 1 }
        registry.countForwarded(room: peer.room, delivered)
    }

    /// Records a `publisher.metrics` and forwards it to every viewer (each with its own connection's figures).
    private func publisherMetrics(_ bytes: [UInt8], from peer: Peer) throws {
        let message = try JSON.decode(PublisherMetricsMessage.self, from: bytes)
        guard message.peers.count <= configuration.maxViewersPerRoom else {
            throw SignalingError(code: "invalid_field", message: "'peers' has more entries than the room's viewer limit", violation: true)
        }
        registry.recordPublisherMetrics(message, from: peer)
        /// `publisher.metrics` as a viewer receives it.
        struct Forwarded: Encodable {
            let from: String
            let source: String?
            let summary: MediaSample
            /// This viewer's connection as the publisher sees it; null when the publisher did not report it.
            let connection: MediaSample?

            enum CodingKeys: String, CodingKey { case from, source, summary, connection }

            func encode(to encoder: any Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(from, forKey: .from)
                try c.encode(source, forKey: .source)
                try c.encode(summary, forKey: .summary)
                try c.encode(connection, forKey: .connection)
            }
        }
        let byViewer = Dictionary(message.peers.map { ($0.viewerID, $0.sample) }, uniquingKeysWith: { _, last in last })
        var delivered = 0
        for viewer in registry.viewers(of: peer.room) {
            let payload = Forwarded(from: peer.id, source: message.source, summary: message.summary, connection: byViewer[viewer.id])
            if let text = try? SocketMessage.make(type: "publisher.metrics", payload: payload), viewer.send(text) { delivered += 1 }
        }
        delivered += forwardToOtherEngines(room: peer.room) { id in
            try? SocketMessage.make(
                type: "publisher.metrics",
                payload: Forwarded(from: peer.id, source: message.source, summary: message.summary, connection: byViewer[id]))
        }
        registry.countForwarded(room: peer.room, delivered)
    }

    private func reject(_ peer: Peer, event: String?, _ error: SignalingError) {
        registry.countError(room: peer.room)
        gauges.count("webrtc_errors_total", [("code", error.code)])
        /// The members of an `error` frame.
        struct ErrorFrame: Encodable {
            let code: String
            let message: String
            let event: String?
        }
        if let text = try? SocketMessage.make(type: "error", payload: ErrorFrame(code: error.code, message: error.message, event: event)) {
            peer.send(text)
        }
        let violations = peer.countError(violation: error.violation)
        if error.violation, violations >= configuration.maxErrors {
            gauges.count("webrtc_abuse_closed_total", [("role", peer.role.rawValue)])
            logger.warning("webrtc socket closed for protocol errors", ["room": peer.room, "peer": peer.id, "errors": String(violations)])
            peer.close(code: CloseCode.policyViolation, reason: "too many protocol errors (\(violations))")
        }
    }
}
