// WebRTCSignaling: `sfu` mode. The pages keep talking to our signaling sockets (our room tokens stay the only way
// in); the engine turns their offers, answers and candidates into Janus VideoRoom requests. The publisher sends one
// stream to Janus; each viewer gets its own subscription. Pages never see a Janus id, pin, secret or URL.

import Foundation
import PluginAPI
import Synchronization

/// Jobs run one after the other, in the order they were queued.
final class SerialQueue: Sendable {
    private let continuation: AsyncStream<@Sendable () async -> Void>.Continuation

    init() {
        let (stream, continuation) = AsyncStream<@Sendable () async -> Void>.makeStream()
        self.continuation = continuation
        Task {
            for await job in stream { await job() }
        }
    }

    /// Queues a job.
    func run(_ job: @escaping @Sendable () async -> Void) { continuation.yield(job) }
}

/// The Janus side of the rooms.
final class SFUBridge: Sendable {
    /// The publisher's connection to Janus.
    struct PublisherLink: Sendable {
        let peer: Peer
        var handle: Int64
        var pcID: String
        var feed: Int64
        var preset: String
        var up = false
    }

    /// One viewer's subscription.
    struct ViewerLink: Sendable {
        let peer: Peer
        var handle: Int64?
        var pcID: String?
        var generation = 0
        var started = false
        var up = false
        /// The most this viewer wants to receive (0: no limit).
        var maxKbps = 0
        var videoMid: String?
        var substream: Int?
    }

    /// What the bridge knows of one room. Changed only by the room's serial jobs and Janus events.
    struct RoomState: Sendable {
        var created = false
        var publisher: PublisherLink?
        var viewers: [String: ViewerLink] = [:]
        var keyframeRequests = 0
        var resubscriptions = 0
        var janusErrors = 0

        /// Forgets the publication and every subscription to it (the viewers stay, without a connection).
        /// - Returns: The subscriptions' handles, to detach.
        mutating func endPublication() -> [Int64] {
            publisher = nil
            var handles: [Int64] = []
            for (id, viewer) in viewers {
                if let handle = viewer.handle { handles.append(handle) }
                viewers[id]?.handle = nil
                viewers[id]?.pcID = nil
                viewers[id]?.started = false
                viewers[id]?.up = false
            }
            return handles
        }
    }

    /// A room: its Janus id, its serial queue and its state.
    final class Room: Sendable {
        let name: String
        let janusID: Int64
        let pin: String
        let secret: String
        let serial = SerialQueue()
        let state = Mutex(RoomState())

        init(name: String, janusID: Int64, pin: String, secret: String) {
            self.name = name
            self.janusID = janusID
            self.pin = pin
            self.secret = secret
        }
    }

    let janus: JanusSession
    private let configuration: WebRTCSignalingConfiguration
    private let registry: RoomRegistry
    private let logger: any PluginLogger
    private let crypto: any CryptoProvider
    private let roomKey: [UInt8]
    private let rooms = Mutex<[String: Room]>([:])

    /// The id a page sees as the other end of its connection to Janus.
    static let peerName = "sfu"

    /// - Parameters:
    ///   - roomKey: The secret the Janus rooms' pins and secrets are derived from (the token key: never sent anywhere
    ///     but to Janus).
    init(
        configuration: WebRTCSignalingConfiguration, endpoint: HTTPEndpoint, admin: HTTPEndpoint?, registry: RoomRegistry,
        crypto: any CryptoProvider, roomKey: [UInt8], logger: any PluginLogger
    ) {
        self.configuration = configuration
        self.registry = registry
        self.logger = logger
        self.crypto = crypto
        self.roomKey = roomKey
        janus = JanusSession(
            endpoint: endpoint, admin: admin, apiSecret: configuration.janusAPISecret, adminSecret: configuration.janusAdminSecret,
            timeout: .seconds(configuration.janusTimeoutSeconds), logger: logger)
        janus.onSessionLost { [weak self] in self?.sessionLost() }
    }

    // MARK: rooms

    /// The Janus VideoRoom id of a room: configured in `janus_rooms`, else 48 bits of a hash of the name.
    static func janusRoomID(_ room: String, configured: [String: Int64], crypto: any CryptoProvider) -> Int64 {
        if let id = configured[room] { return id }
        let digest = crypto.hmacSHA256(key: Array("onionrp-janus-room-id".utf8), message: Array(room.utf8))
        var id: Int64 = 0
        for byte in digest.prefix(6) { id = id << 8 | Int64(byte) }
        return id + 1
    }

    private func room(_ name: String) -> Room {
        rooms.withLock { rooms in
            if let room = rooms[name] { return room }
            let derive = { (purpose: String) in
                String(Base64URL.encode(self.crypto.hmacSHA256(key: self.roomKey, message: Array("janus-\(purpose)\n\(name)".utf8))).prefix(32))
            }
            let room = Room(
                name: name, janusID: Self.janusRoomID(name, configured: configuration.janusRooms, crypto: crypto), pin: derive("pin"),
                secret: derive("secret"))
            rooms[name] = room
            return room
        }
    }

    private func existingRoom(_ name: String) -> Room? { rooms.withLock { $0[name] } }

    /// Creates the Janus room once: private, with our pin (to join) and secret (to edit or destroy it).
    private func ensureCreated(_ room: Room) async throws {
        if room.state.withLock({ $0.created }) { return }
        let handle = try await janus.attach { _ in }
        defer { Task { await self.janus.detach(handle) } }
        let preset = configuration.effectivePresets.values.map(\.bitrateKbps).max() ?? 2500
        var body: [String: JSONValue] = [
            "request": .string("create"), "room": .number(Double(room.janusID)), "permanent": .bool(false), "is_private": .bool(true),
            "description": .string("onionrp \(room.name)"), "pin": .string(room.pin), "secret": .string(room.secret),
            "publishers": .number(3), "bitrate": .number(Double(preset * 1000)), "fir_freq": .number(10), "videocodec": .string("vp8,h264,vp9"),
            "audiocodec": .string("opus"), "notify_joining": .bool(false),
        ]
        if !configuration.janusRoomAdminKey.isEmpty { body["admin_key"] = .string(configuration.janusRoomAdminKey) }
        do {
            _ = try await janus.message(handle, body)
        } catch let error as JanusError where error.code == JanusError.roomExists {
            // Made by an earlier run of the engine (same derived pin), or by another instance.
        }
        room.state.withLock { $0.created = true }
    }

    // MARK: what Signaling calls (each queues a job on the room's serial queue)

    /// A publisher's offer (`to: "sfu"`): publish it to Janus and answer the page.
    func publisherOffer(_ peer: Peer, pcID: String, sdp: String, preset: String?) {
        let room = room(peer.room)
        room.serial.run { await self.publish(room, peer, pcID: pcID, sdp: sdp, preset: preset) }
    }

    /// A candidate of the publisher's connection.
    func publisherCandidate(_ peer: Peer, pcID: String, candidate: JSONValue?) {
        let room = room(peer.room)
        room.serial.run {
            guard let link = room.state.withLock({ $0.publisher }), link.peer === peer, link.pcID == pcID else { return }
            await self.trickle(room, link.handle, candidate)
        }
    }

    /// A viewer joined: subscribe it when the room has a stream.
    func viewerJoined(_ peer: Peer) {
        let room = room(peer.room)
        room.serial.run {
            room.state.withLock { state in
                var link = ViewerLink(peer: peer)
                link.maxKbps = self.configuration.viewerMaxBitrateKbps
                state.viewers[peer.id] = link
            }
            await self.subscribe(room, viewer: peer.id)
        }
    }

    /// A viewer's answer to the offer Janus made.
    func viewerAnswer(_ peer: Peer, pcID: String, sdp: String) {
        let room = room(peer.room)
        room.serial.run { await self.start(room, viewer: peer, pcID: pcID, sdp: sdp) }
    }

    /// A candidate of a viewer's connection.
    func viewerCandidate(_ peer: Peer, pcID: String?, candidate: JSONValue?) {
        let room = room(peer.room)
        room.serial.run {
            guard let link = room.state.withLock({ $0.viewers[peer.id] }), let handle = link.handle, pcID == nil || link.pcID == pcID else {
                return
            }
            await self.trickle(room, handle, candidate)
        }
    }

    /// `viewer.request-keyframe`: a keyframe from the publisher (Janus sends it a PLI) while the viewer's connection is
    /// up; a fresh subscription when it is not (or failed).
    func viewerKeyframe(_ peer: Peer, pcID: String?, reason: String?) {
        let room = room(peer.room)
        room.serial.run {
            guard let link = room.state.withLock({ $0.viewers[peer.id] }) else { return }
            let broken = ["connection-failed", "offer-failed", "no-offer"].contains(reason ?? "")
            if link.up, !broken, pcID == nil || pcID == link.pcID, let publisher = room.state.withLock({ $0.publisher }) {
                room.state.withLock { $0.keyframeRequests += 1 }
                do {
                    _ = try await self.janus.message(publisher.handle, ["request": .string("configure"), "keyframe": .bool(true)])
                } catch {
                    self.noteError(room, "keyframe", error)
                }
            } else if pcID == nil || pcID == link.pcID || link.pcID == nil {
                room.state.withLock { $0.resubscriptions += 1 }
                await self.subscribe(room, viewer: peer.id)
            }
        }
    }

    /// `viewer.settings`: the most the viewer wants to receive; picks the simulcast layer that fits.
    func viewerSettings(_ peer: Peer, maxKbps: Int) {
        let room = room(peer.room)
        room.serial.run {
            room.state.withLock { $0.viewers[peer.id]?.maxKbps = maxKbps }
            await self.applyLayer(room, viewer: peer.id)
        }
    }

    /// A peer left its room: close its Janus side; a publisher's leaving ends every subscription; an empty room is
    /// destroyed in Janus.
    func left(_ peer: Peer) {
        guard let room = existingRoom(peer.room) else { return }
        room.serial.run {
            switch peer.role {
            case .publisher:
                let (link, viewers) = room.state.withLock { state -> (PublisherLink?, [Int64]) in
                    guard let link = state.publisher, link.peer === peer else { return (nil, []) }
                    return (link, state.endPublication())
                }
                if let link { await self.janus.detach(link.handle) }
                for handle in viewers { await self.janus.detach(handle) }
            case .viewer:
                let handle = room.state.withLock { state -> Int64? in
                    guard let link = state.viewers[peer.id], link.peer === peer else { return nil }
                    state.viewers[peer.id] = nil
                    return link.handle
                }
                if let handle { await self.janus.detach(handle) }
            }
            await self.destroyIfEmpty(room)
        }
    }

    private func destroyIfEmpty(_ room: Room) async {
        guard registry.stats(room.name) == nil, room.state.withLock({ $0.created && $0.publisher == nil && $0.viewers.isEmpty }) else { return }
        if let handle = try? await janus.attach(events: { _ in }) {
            _ = try? await janus.message(
                handle, ["request": .string("destroy"), "room": .number(Double(room.janusID)), "secret": .string(room.secret)])
            await janus.detach(handle)
        }
        room.state.withLock { $0.created = false }
        rooms.withLock { rooms in
            if rooms[room.name] === room, registry.stats(room.name) == nil { rooms[room.name] = nil }
        }
    }

    // MARK: the jobs

    private func publish(_ room: Room, _ peer: Peer, pcID: String, sdp: String, preset: String?, retried: Bool = false) async {
        guard registry.publisher(of: room.name) === peer else { return }  // replaced or gone meanwhile
        let presetName = preset.flatMap { configuration.effectivePresets[$0] != nil ? $0 : nil } ?? configuration.defaultPreset
        let bitrate = configuration.effectivePresets[presetName]?.bitrateKbps ?? 2500
        // A new connection of the publisher (or a new publisher): the old publication and its subscriptions end.
        let old = room.state.withLock { state -> [Int64] in
            let publisher = state.publisher.map { [$0.handle] } ?? []
            return publisher + state.endPublication()
        }
        for handle in old { await janus.detach(handle) }
        do {
            try await ensureCreated(room)
            let handle = try await janus.attach { [weak self] event in self?.publisherEvent(room, event) }
            var reply: JanusMessage
            do {
                reply = try await janus.message(
                    handle,
                    [
                        "request": .string("joinandconfigure"), "room": .number(Double(room.janusID)), "pin": .string(room.pin),
                        "ptype": .string("publisher"),
                        "display": .string(peer.id), "bitrate": .number(Double(bitrate * 1000)), "audio": .bool(true), "video": .bool(true),
                    ], jsep: .object(["type": .string("offer"), "sdp": .string(sdp)]))
            } catch let error as JanusError where error.code == JanusError.noSuchRoom && !retried {
                // Destroyed behind our back: create it again, once.
                room.state.withLock { $0.created = false }
                await janus.detach(handle)
                return await publish(room, peer, pcID: pcID, sdp: sdp, preset: preset, retried: true)
            } catch {
                await janus.detach(handle)
                throw error
            }
            guard reply.data?["videoroom"]?.stringValue == "joined", let feed = JanusMessage.identifier(reply.data?["id"]),
                let answer = reply.jsep?["sdp"]?.stringValue
            else {
                await janus.detach(handle)
                throw JanusError(code: 0, reason: "joinandconfigure: no answer from Janus")
            }
            guard registry.publisher(of: room.name) === peer else {
                await janus.detach(handle)
                return
            }
            room.state.withLock { $0.publisher = PublisherLink(peer: peer, handle: handle, pcID: pcID, feed: feed, preset: presetName) }
            send(
                peer, type: "answer",
                ["from": .string(Self.peerName), "pc_id": .string(pcID), "sdp": .string(answer), "preset": .string(presetName)])
            logger.info("sfu publisher published", ["room": room.name, "peer": peer.id, "feed": String(feed), "preset": presetName])
            for viewer in registry.viewers(of: room.name) {
                room.state.withLock { state in
                    if state.viewers[viewer.id] == nil {
                        var link = ViewerLink(peer: viewer)
                        link.maxKbps = configuration.viewerMaxBitrateKbps
                        state.viewers[viewer.id] = link
                    }
                }
                await subscribe(room, viewer: viewer.id)
            }
        } catch {
            noteError(room, "publish", error)
            sendError(peer, event: "offer", pcID: pcID, error)
        }
    }

    /// The publication to subscribe to: this engine's publisher's, else (several engines sharing a store and one
    /// Janus) the one the room's publisher on another engine made, found at Janus by its display name (our peer id).
    private func publication(_ room: Room) async throws -> (feed: Int64, publisherID: String, handle: Int64?)? {
        if let local = room.state.withLock({ $0.publisher }) { return (local.feed, local.peer.id, local.handle) }
        guard let remote = registry.remotePublisher(of: room.name) else { return nil }
        let handle = try await janus.attach { _ in }
        defer { Task { await self.janus.detach(handle) } }
        let reply = try await janus.message(handle, ["request": .string("listparticipants"), "room": .number(Double(room.janusID))])
        guard case .array(let participants)? = reply.data?["participants"] else { return nil }
        let match = participants.first { $0["display"]?.stringValue == remote.id && $0["publisher"]?.boolValue == true }
        guard let feed = JanusMessage.identifier(match?["id"]) else { return nil }
        return (feed, remote.id, nil)
    }

    private func subscribe(_ room: Room, viewer id: String) async {
        guard let link = room.state.withLock({ $0.viewers[id] }) else { return }
        let found: (feed: Int64, publisherID: String, handle: Int64?)?
        do {
            found = try await publication(room)
        } catch {
            noteError(room, "listparticipants", error)
            return
        }
        guard let publisher = found else { return }
        if let old = link.handle {
            room.state.withLock { state in
                state.viewers[id]?.handle = nil
                state.viewers[id]?.started = false
                state.viewers[id]?.up = false
            }
            await janus.detach(old)
        }
        do {
            let handle = try await janus.attach { [weak self] event in self?.viewerEvent(room, id, event) }
            let reply = try await janus.message(
                handle,
                [
                    "request": .string("join"), "ptype": .string("subscriber"), "room": .number(Double(room.janusID)), "pin": .string(room.pin),
                    "streams": .array([.object(["feed": .number(Double(publisher.feed))])]),
                ])
            guard reply.data?["videoroom"]?.stringValue == "attached", let offer = reply.jsep?["sdp"]?.stringValue else {
                await janus.detach(handle)
                throw JanusError(code: 0, reason: "join as subscriber: no offer from Janus")
            }
            var mid: String?
            if case .array(let streams)? = reply.data?["streams"] {
                mid = streams.first { $0["type"]?.stringValue == "video" }?["mid"]?.stringValue
            }
            // Still the same viewer and publisher? (Both can leave while Janus answers.)
            let pcID = room.state.withLock { state -> String? in
                guard state.publisher?.handle == publisher.handle, var current = state.viewers[id], current.peer === link.peer else {
                    return nil
                }
                current.generation += 1
                current.handle = handle
                current.pcID = "\(publisher.publisherID):sfu\(current.generation)"
                current.videoMid = mid
                current.started = false
                current.up = false
                current.substream = nil
                state.viewers[id] = current
                return current.pcID
            }
            guard let pcID, let viewer = room.state.withLock({ $0.viewers[id]?.peer }) else {
                await janus.detach(handle)
                return
            }
            send(viewer, type: "offer", ["from": .string(publisher.publisherID), "pc_id": .string(pcID), "sdp": .string(offer)])
        } catch {
            noteError(room, "subscribe", error)
            if let viewer = room.state.withLock({ $0.viewers[id]?.peer }) { sendError(viewer, event: "offer", pcID: nil, error) }
        }
    }

    private func start(_ room: Room, viewer: Peer, pcID: String, sdp: String) async {
        guard let link = room.state.withLock({ $0.viewers[viewer.id] }), link.peer === viewer, link.pcID == pcID, let handle = link.handle else {
            return
        }
        do {
            _ = try await janus.message(handle, ["request": .string("start")], jsep: .object(["type": .string("answer"), "sdp": .string(sdp)]))
            room.state.withLock { $0.viewers[viewer.id]?.started = true }
            await applyLayer(room, viewer: viewer.id)
        } catch {
            noteError(room, "start", error)
            sendError(viewer, event: "answer", pcID: pcID, error)
        }
    }

    /// The simulcast layer for a viewer: the largest whose bitrate fits its maximum (layers are the preset's bitrate,
    /// a third of it and an eighth of it: what the publisher page asks its encoder for).
    static func layer(maxKbps: Int, presetKbps: Int) -> Int {
        guard maxKbps > 0 else { return 2 }
        if presetKbps <= maxKbps { return 2 }
        if presetKbps / 3 <= maxKbps { return 1 }
        return 0
    }

    private func applyLayer(_ room: Room, viewer id: String) async {
        guard configuration.simulcast, let link = room.state.withLock({ $0.viewers[id] }), link.started, let handle = link.handle else { return }
        // A publisher on another engine: its preset is not known here; the default one is assumed.
        let preset = room.state.withLock { $0.publisher?.preset } ?? configuration.defaultPreset
        let presetKbps = configuration.effectivePresets[preset]?.bitrateKbps ?? 2500
        let layer = Self.layer(maxKbps: link.maxKbps, presetKbps: presetKbps)
        guard link.substream != layer else { return }
        var stream: [String: JSONValue] = ["substream": .number(Double(layer))]
        if let mid = link.videoMid { stream["mid"] = .string(mid) }
        do {
            _ = try await janus.message(handle, ["request": .string("configure"), "streams": .array([.object(stream)])])
            room.state.withLock { $0.viewers[id]?.substream = layer }
        } catch {
            noteError(room, "configure", error)
        }
    }

    private func trickle(_ room: Room, _ handle: Int64, _ candidate: JSONValue?) async {
        let value: JSONValue
        switch candidate {
        case .object(let members)?:
            var clean: [String: JSONValue] = [:]
            for key in ["candidate", "sdpMid", "sdpMLineIndex"] { clean[key] = members[key] }
            value = .object(clean)
        case .string(let line)?:
            value = .object(["candidate": .string(line), "sdpMLineIndex": .number(0)])
        default:
            value = .object(["completed": .bool(true)])
        }
        do {
            try await janus.trickle(handle, candidate: value)
        } catch {
            noteError(room, "trickle", error)
        }
    }

    // MARK: Janus events

    private func publisherEvent(_ room: Room, _ event: JanusMessage) {
        switch event.kind {
        case "webrtcup":
            room.state.withLock { state in if state.publisher?.handle == event.sender { state.publisher?.up = true } }
        case "hangup":
            room.state.withLock { state in if state.publisher?.handle == event.sender { state.publisher?.up = false } }
        default:
            break
        }
    }

    private func viewerEvent(_ room: Room, _ id: String, _ event: JanusMessage) {
        switch event.kind {
        case "webrtcup":
            room.state.withLock { state in if state.viewers[id]?.handle == event.sender { state.viewers[id]?.up = true } }
        case "hangup":
            room.state.withLock { state in if state.viewers[id]?.handle == event.sender { state.viewers[id]?.up = false } }
        default:
            break
        }
    }

    /// Janus restarted (or dropped our session): every handle is gone. The pages reconnect (1012) and start over.
    private func sessionLost() {
        let all = rooms.withLock { rooms -> [Room] in
            defer { rooms = [:] }
            return Array(rooms.values)
        }
        for room in all {
            let peers = room.state.withLock { state -> [Peer] in
                defer { state = RoomState() }
                return (state.publisher.map { [$0.peer] } ?? []) + state.viewers.values.map(\.peer)
            }
            for peer in peers { peer.close(code: 1012, reason: "the media server restarted") }
        }
    }

    // MARK: helpers

    private func send(_ peer: Peer, type: String, _ members: [String: JSONValue]) {
        if let text = try? SocketMessage.make(type: type, payload: members) {
            peer.send(text)
            registry.countForwarded(room: peer.room, 1)
        }
    }

    /// Tells a page that the media server failed it (not a protocol error of the page: it does not count).
    private func sendError(_ peer: Peer, event: String, pcID: String?, _ error: any Error) {
        var members: [String: JSONValue] = [
            "code": .string("sfu_unavailable"), "message": .string("the media server did not accept this: \(String("\(error)".prefix(200)))"),
            "event": .string(event),
        ]
        if let pcID { members["pc_id"] = .string(pcID) }
        if let text = try? SocketMessage.make(type: "error", payload: members) { peer.send(text) }
    }

    private func noteError(_ room: Room, _ what: String, _ error: any Error) {
        room.state.withLock { $0.janusErrors += 1 }
        logger.warning("sfu: janus \(what) failed", ["room": room.name, "error": String("\(error)".prefix(300))])
    }

    // MARK: stats

    /// What Janus says about a room's connections, for the stats route.
    struct RoomFiguresFromJanus: Encodable, Sendable {
        let janusRoom: Int64
        let feed: Int64?
        let publisherUp: Bool
        let subscriptions: Int
        let subscriptionsUp: Int
        let keyframeRequests: Int
        let resubscriptions: Int
        let errors: Int
        /// By peer id: figures from the admin API's `handle_info` (null without `janus_admin_url`).
        let peers: [String: JanusHandleFigures]
        /// This engine's requests to Janus since it started, by kind (`session`, `create`, `attach`, `joinandconfigure`, `join`,
        /// `start`, `configure`, `trickle`, `detach`, …), with `errors` and `session_lost`: for every room together.
        let engineRequests: [String: Int]

        enum CodingKeys: String, CodingKey {
            case feed, subscriptions, errors, peers
            case janusRoom = "janus_room"
            case publisherUp = "publisher_up"
            case subscriptionsUp = "subscriptions_up"
            case keyframeRequests = "keyframe_requests"
            case resubscriptions
            case engineRequests = "engine_requests"
        }
    }

    /// The room's figures from Janus, or nil when the bridge has nothing for it.
    func figures(_ name: String) async -> RoomFiguresFromJanus? {
        guard let room = existingRoom(name) else { return nil }
        let state = room.state.withLock { $0 }
        var handles: [(String, Int64)] = []
        if let publisher = state.publisher { handles.append((publisher.peer.id, publisher.handle)) }
        for (id, viewer) in state.viewers { if let handle = viewer.handle { handles.append((id, handle)) } }
        var peers: [String: JanusHandleFigures] = [:]
        await withTaskGroup(of: (String, JanusHandleFigures?).self) { group in
            for (id, handle) in handles {
                group.addTask { (id, await self.janus.handleInfo(handle).map(JanusHandleFigures.init(info:))) }
            }
            for await (id, figures) in group { if let figures { peers[id] = figures } }
        }
        return RoomFiguresFromJanus(
            janusRoom: room.janusID, feed: state.publisher?.feed, publisherUp: state.publisher?.up ?? false,
            subscriptions: state.viewers.values.filter { $0.handle != nil }.count, subscriptionsUp: state.viewers.values.filter(\.up).count,
            keyframeRequests: state.keyframeRequests, resubscriptions: state.resubscriptions, errors: state.janusErrors, peers: peers,
            engineRequests: janus.counters.withLock { $0 })
    }

    /// Ends the Janus session (its PeerConnections close with it).
    func shutdown() async { await janus.stop() }
}

/// Figures of one handle from Janus's `handle_info`: what Janus received and sent, and its RTCP view (loss, jitter,
/// RTT). Read from a semi-trusted reply: every member optional, numbers only when finite and not negative.
struct JanusHandleFigures: Encodable, Sendable, Equatable {
    var connected = false
    var inKbps: Double?
    var outKbps: Double?
    var packetsIn: Double?
    var packetsOut: Double?
    var nacksIn: Double?
    var nacksOut: Double?
    var lostLocal: Double?
    var lostRemote: Double?
    var jitterLocalMs: Double?
    var jitterRemoteMs: Double?
    var rttMs: Double?

    enum CodingKeys: String, CodingKey {
        case connected
        case inKbps = "in_kbps"
        case outKbps = "out_kbps"
        case packetsIn = "packets_in"
        case packetsOut = "packets_out"
        case nacksIn = "nacks_in"
        case nacksOut = "nacks_out"
        case lostLocal = "lost_local"
        case lostRemote = "lost_remote"
        case jitterLocalMs = "jitter_local_ms"
        case jitterRemoteMs = "jitter_remote_ms"
        case rttMs = "rtt_ms"
    }

    /// Sums the figures of every medium of the handle (Janus 1.x `handle_info`: `webrtc.media.<mid>` with `stats.in`,
    /// `stats.out` — one `in-<n>` per extra simulcast layer — and `rtcp.main`); walks a bounded part of the reply.
    init(info: JSONValue) {
        var budget = 5000
        func number(_ value: JSONValue?) -> Double? {
            guard let number = value?.doubleValue, number.isFinite, number >= 0, number < 1e15 else { return nil }
            return number
        }
        func add(_ current: Double?, _ value: Double?) -> Double? {
            guard let value else { return current }
            return (current ?? 0) + value
        }
        func medium(_ members: [String: JSONValue]) {
            if case .object(let stats)? = members["stats"] {
                for (key, value) in stats.sorted(by: { $0.key < $1.key }).prefix(16) {
                    guard case .object(let outer) = value else { continue }
                    // Simulcast: the other layers sit inside `in` as `video-simulcast-<n>` objects.
                    var layers: [JSONValue] = [value]
                    for (name, layer) in outer.prefix(16) where name.hasPrefix("video-simulcast") { layers.append(layer) }
                    for direction in layers { count(key, direction) }
                }
            }
            func count(_ key: String, _ direction: JSONValue) {
                let kbps = number(direction["bytes_lastsec"]).map { $0 * 8 / 1000 }
                if key.hasPrefix("in") {
                    inKbps = add(inKbps, kbps)
                    packetsIn = add(packetsIn, number(direction["packets"]))
                    nacksIn = add(nacksIn, number(direction["nacks"]))
                } else if key.hasPrefix("out") {
                    outKbps = add(outKbps, kbps)
                    packetsOut = add(packetsOut, number(direction["packets"]))
                    nacksOut = add(nacksOut, number(direction["nacks"]))
                }
            }
            if case .object(let rtcp)? = members["rtcp"] {
                for section in rtcp.values.prefix(16) {
                    lostLocal = add(lostLocal, number(section["lost"]))
                    lostRemote = add(lostRemote, number(section["lost-by-remote"]))
                    if let jitter = number(section["jitter-local"]) { jitterLocalMs = max(jitterLocalMs ?? 0, jitter) }
                    if let jitter = number(section["jitter-remote"]) { jitterRemoteMs = max(jitterRemoteMs ?? 0, jitter) }
                    if let rtt = number(section["rtt"]) { rttMs = max(rttMs ?? 0, rtt) }
                }
            }
        }
        func walk(_ value: JSONValue, depth: Int) {
            budget -= 1
            guard budget > 0, depth < 8 else { return }
            switch value {
            case .object(let members):
                if members["dtls-state"]?.stringValue == "connected" { connected = true }
                if members["mid"] != nil, members["stats"] != nil {
                    medium(members)
                    return
                }
                for (key, child) in members where key != "sdps" { walk(child, depth: depth + 1) }
            case .array(let items):
                for item in items.prefix(64) { walk(item, depth: depth + 1) }
            default:
                break
            }
        }
        walk(info, depth: 0)
    }
}
