// WebRTCSignaling: the rooms in memory: who is in each, what they sent, their latest media metrics.

import Foundation
import PluginAPI
import Synchronization

/// What `join` decided.
enum JoinOutcome: Sendable {
    /// In the room; `replaced` is the publisher it displaced (already told to close).
    case joined(replaced: Peer?)
    /// Not admitted; close the socket with 4000 + the error's status.
    case refused(PluginError)
}

/// `room.state`: sent to every peer of a room on every join and leave.
struct RoomStateMessage: Encodable, Sendable {
    let room: String
    /// Increases with every state of the room: a page can ignore an older one.
    let seq: Int
    /// `join`, `leave`, `publisher-replaced` or `publisher-refused`.
    let event: String
    /// The peer the event is about.
    let peerID: String
    /// Its role.
    let role: String
    /// True while a publisher is connected.
    let publisher: Bool
    /// The connected publisher's id (it changes when a new publisher connects).
    let publisherID: String?
    /// Ids of the connected viewers, in join order.
    let viewers: [String]
    let viewerCount: Int
    let maxViewers: Int
    /// Milliseconds since 1970.
    let serverTs: Int64

    enum CodingKeys: String, CodingKey {
        case room, seq, event, role, publisher, viewers
        case peerID = "peer_id"
        case publisherID = "publisher_id"
        case viewerCount = "viewer_count"
        case maxViewers = "max_viewers"
        case serverTs = "server_ts"
    }

    /// Encodes every member, `publisher_id` as null when there is no publisher.
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(room, forKey: .room)
        try c.encode(seq, forKey: .seq)
        try c.encode(event, forKey: .event)
        try c.encode(peerID, forKey: .peerID)
        try c.encode(role, forKey: .role)
        try c.encode(publisher, forKey: .publisher)
        try c.encode(publisherID, forKey: .publisherID)
        try c.encode(viewers, forKey: .viewers)
        try c.encode(viewerCount, forKey: .viewerCount)
        try c.encode(maxViewers, forKey: .maxViewers)
        try c.encode(serverTs, forKey: .serverTs)
    }
}

/// One peer in `GET /api/webrtc/rooms/{room}/stats`.
struct PeerStats: Encodable, Sendable {
    let id: String
    let role: String
    let connectedAt: Date
    let messagesIn: Int
    let messagesOut: Int
    let errors: Int
    let dropped: Int
    let idleSeconds: Double
    /// The newest metrics sample (nil before the first).
    let latest: MediaSample?
    /// Metrics samples received.
    let samples: Int
    /// The newest samples, oldest first.
    let history: [MediaSample]
    /// Publisher only: `camera` / `screen`.
    let source: String?
    /// Publisher only: the newest sample of each viewer connection, by viewer id.
    let connections: [String: MediaSample]?
    /// The engine the peer is connected to (several engines share the rooms).
    var engine: String?

    enum CodingKeys: String, CodingKey {
        case id, role, errors, dropped, latest, samples, history, source, connections, engine
        case connectedAt = "connected_at"
        case messagesIn = "messages_in"
        case messagesOut = "messages_out"
        case idleSeconds = "idle_seconds"
    }

    /// `latest` is null before the first sample; `source` and `connections` appear for the publisher only.
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(role, forKey: .role)
        try c.encode(connectedAt, forKey: .connectedAt)
        try c.encode(messagesIn, forKey: .messagesIn)
        try c.encode(messagesOut, forKey: .messagesOut)
        try c.encode(errors, forKey: .errors)
        try c.encode(dropped, forKey: .dropped)
        try c.encode(idleSeconds, forKey: .idleSeconds)
        try c.encode(latest, forKey: .latest)
        try c.encode(samples, forKey: .samples)
        try c.encode(history, forKey: .history)
        try c.encodeIfPresent(engine, forKey: .engine)
        if role == PeerRole.publisher.rawValue {
            try c.encode(source, forKey: .source)
            try c.encode(connections ?? [:], forKey: .connections)
        }
    }
}

/// Figures of a room at a glance (stats summary, room list, /metrics gauges).
struct RoomFigures: Encodable, Sendable {
    let room: String
    let publisher: Bool
    let viewers: Int
    let publisherFPS: Double?
    let publisherBitrateKbps: Double?
    let viewerFPSAvg: Double?
    let viewerBitrateKbpsAvg: Double?
    let viewerPacketLossPctMax: Double?
    let viewerJitterMsMax: Double?
    let viewerRTTMsMax: Double?
    let viewerFramesDropped: Double?

    enum CodingKeys: String, CodingKey {
        case room, publisher, viewers
        case publisherFPS = "publisher_fps"
        case publisherBitrateKbps = "publisher_bitrate_kbps"
        case viewerFPSAvg = "viewer_fps_avg"
        case viewerBitrateKbpsAvg = "viewer_bitrate_kbps_avg"
        case viewerPacketLossPctMax = "viewer_packet_loss_pct_max"
        case viewerJitterMsMax = "viewer_jitter_ms_max"
        case viewerRTTMsMax = "viewer_rtt_ms_max"
        case viewerFramesDropped = "viewer_frames_dropped"
    }
}

/// `GET /api/webrtc/rooms/{room}/stats`.
struct RoomStats: Encodable, Sendable {
    let room: String
    let createdAt: Date
    let publisher: PeerStats?
    let viewers: [PeerStats]
    let viewerCount: Int
    let maxViewers: Int
    /// Messages received by type, accepted or not.
    let messagesByType: [String: Int]
    let messagesReceived: Int
    let messagesForwarded: Int
    let errors: Int
    let publishersRefused: Int
    let publishersReplaced: Int
    let summary: RoomFigures
    let serverTs: Int64
    /// `p2p` or `sfu` (set by the route).
    var mode = "p2p"
    /// `sfu` mode: what Janus reports about the room (set by the route).
    var janus: SFUBridge.RoomFiguresFromJanus?

    enum CodingKeys: String, CodingKey {
        case room, publisher, viewers, errors, summary, mode, janus
        case createdAt = "created_at"
        case viewerCount = "viewer_count"
        case maxViewers = "max_viewers"
        case messagesByType = "messages_by_type"
        case messagesReceived = "messages_received"
        case messagesForwarded = "messages_forwarded"
        case publishersRefused = "publishers_refused"
        case publishersReplaced = "publishers_replaced"
        case serverTs = "server_ts"
    }

    /// Encodes every member, `publisher` as null when there is no publisher.
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(room, forKey: .room)
        try c.encode(createdAt, forKey: .createdAt)
        try c.encode(publisher, forKey: .publisher)
        try c.encode(viewers, forKey: .viewers)
        try c.encode(viewerCount, forKey: .viewerCount)
        try c.encode(maxViewers, forKey: .maxViewers)
        try c.encode(messagesByType, forKey: .messagesByType)
        try c.encode(messagesReceived, forKey: .messagesReceived)
        try c.encode(messagesForwarded, forKey: .messagesForwarded)
        try c.encode(errors, forKey: .errors)
        try c.encode(publishersRefused, forKey: .publishersRefused)
        try c.encode(publishersReplaced, forKey: .publishersReplaced)
        try c.encode(summary, forKey: .summary)
        try c.encode(serverTs, forKey: .serverTs)
        try c.encode(mode, forKey: .mode)
        if let janus { try c.encode(janus, forKey: .janus) }
    }
}

/// The rooms. All state sits behind one lock; frames are only queued under it (never awaited), so every peer
/// sees the room's states in order.
final class RoomRegistry: Sendable {
    /// One room: its peers, counters and the latest metrics of each peer.
    struct Room {
        let name: String
        let createdAt = Date()
        var seq = 0
        var publisher: Peer?
        var viewers: [Peer] = []
        var byType: [String: Int] = [:]
        var received = 0
        var forwarded = 0
        var errors = 0
        var publishersRefused = 0
        var publishersReplaced = 0
        var publisherMetrics: MetricsTrack
        var publisherConnections: [String: MediaSample] = [:]
        var publisherSource: String?
        var viewerMetrics: [String: MetricsTrack] = [:]
        /// Several engines: the local publisher's claim, and the membership the last `room.state` showed.
        var publisherClaim: Int64 = 0
        var shown: (publisher: String?, viewers: [String]) = (nil, [])

        init(name: String, historySize: Int) {
            self.name = name
            self.publisherMetrics = MetricsTrack(capacity: historySize)
        }

        var isEmpty: Bool { publisher == nil && viewers.isEmpty }
        var peers: [Peer] { (publisher.map { [$0] } ?? []) + viewers }
    }

    let rooms = Mutex<[String: Room]>([:])
    let configuration: WebRTCSignalingConfiguration
    let gauges: RoomGauges
    private let makeID: @Sendable (PeerRole) -> String
    /// The rooms of the other engines sharing the store (nil: this engine alone, as in the unit tests).
    let cluster: ClusterRooms?

    /// Creates an empty registry.
    /// - Parameters:
    ///   - configuration: Limits.
    ///   - gauges: Where room figures are exported.
    ///   - makeID: A fresh random peer id for a role (`p-…`, `v-…`).
    ///   - cluster: The other engines' rooms.
    init(
        configuration: WebRTCSignalingConfiguration, gauges: RoomGauges, cluster: ClusterRooms? = nil,
        makeID: @escaping @Sendable (PeerRole) -> String
    ) {
        self.configuration = configuration
        self.gauges = gauges
        self.cluster = cluster
        self.makeID = makeID
    }

    /// A peer id not used in `room`.
    func freshID(role: PeerRole, room: String) -> String {
        for _ in 0..<8 {
            let id = makeID(role)
            let taken =
                rooms.withLock { rooms in rooms[room]?.peers.contains { $0.id == id } ?? false }
                || (cluster?.remote(room).contains { $0.id == id } ?? false)
            if !taken { return id }
        }
        return makeID(role) + "-" + String(UInt32.random(in: 0...UInt32.max), radix: 36)
    }

    /// Admits `peer` to its room, or refuses it; tells every peer of the room with `room.state` either way.
    /// - Parameters:
    ///   - peer: The new peer.
    ///   - greeting: The first frame for an admitted peer, given the room's publisher id; queued before any `room.state`.
    func join(_ peer: Peer, greeting: (String?) -> String?) -> JoinOutcome {
        let (outcome, figures) = rooms.withLock { rooms -> (JoinOutcome, RoomFigures?) in
            if rooms[peer.room] == nil {
                guard rooms.count < configuration.maxRooms else {
                    return (
                        .refused(
                            PluginError(
                                status: 429, code: "too_many_rooms",
                                message: "the server already has \(configuration.maxRooms) rooms in use")), nil
                    )
                }
                rooms[peer.room] = Room(name: peer.room, historySize: configuration.metricsHistory)
            }
            guard var room = rooms[peer.room] else { return (.refused(PluginError(status: 500, code: "internal_error", message: "room lost")), nil) }
            defer { rooms[peer.room] = room.isEmpty ? nil : room }
            switch peer.role {
            case .publisher:
                let remoteCurrent = remotePublisher(of: peer.room)
                if room.publisher != nil || remoteCurrent != nil {
                    let current = room.publisher
                    guard configuration.replacePublisher else {
                        room.publishersRefused += 1
                        broadcast(&room, event: "publisher-refused", about: peer)
                        return (
                            .refused(
                                PluginError(
                                    status: 409, code: "publisher_present",
                                    message: "room '\(peer.room)' already has a publisher")), nil
                        )
                    }
                    room.publisher = peer
                    room.publisherClaim = announcePublisher(peer, in: room)
                    if let text = greeting(peer.id) { peer.send(text) }
                    room.publishersReplaced += 1
                    room.publisherMetrics = MetricsTrack(capacity: configuration.metricsHistory)
                    room.publisherConnections = [:]
                    room.publisherSource = nil
                    if let current {
                        current.close(code: CloseCode.replaced, reason: "replaced by a new publisher")
                        cluster?.announceLeave(current)
                    }
                    broadcast(&room, event: "publisher-replaced", about: peer)
                    return (.joined(replaced: current), figuresOf(room))
                }
                room.publisher = peer
                room.publisherClaim = announcePublisher(peer, in: room)
                if let text = greeting(peer.id) { peer.send(text) }
            case .viewer:
                guard room.viewers.count + remoteViewerCount(peer.room) < configuration.maxViewersPerRoom else {
                    return (
                        .refused(
                            PluginError(
                                status: 429, code: "room_full",
                                message: "room '\(peer.room)' already has \(configuration.maxViewersPerRoom) viewers")), nil
                    )
                }
                room.viewers.append(peer)
                room.viewerMetrics[peer.id] = MetricsTrack(capacity: configuration.metricsHistory)
                if let text = greeting(membership(room).publisher) { peer.send(text) }
                cluster?.announceJoin(peer, claim: nil)
            }
            broadcast(&room, event: "join", about: peer)
            return (.joined(replaced: nil), figuresOf(room))
        }
        if let figures { gauges.update(figures, totals: totals()) }
        return outcome
    }

    /// Takes `peer` out of its room (if it is still there), tells the others, and drops the room once empty.
    func leave(_ peer: Peer) {
        let (figures, emptied) = rooms.withLock { rooms -> (RoomFigures?, Bool) in
            guard var room = rooms[peer.room] else { return (nil, false) }
            switch peer.role {
            case .publisher:
                // A replaced publisher is no longer the room's: its leaving changes nothing.
                guard room.publisher === peer else { return (nil, false) }
                room.publisher = nil
                room.publisherMetrics = MetricsTrack(capacity: configuration.metricsHistory)
                room.publisherConnections = [:]
                room.publisherSource = nil
            case .viewer:
                guard let index = room.viewers.firstIndex(where: { $0 === peer }) else { return (nil, false) }
                room.viewers.remove(at: index)
                room.viewerMetrics[peer.id] = nil
                room.publisherConnections[peer.id] = nil
            }
            cluster?.announceLeave(peer)
            if room.isEmpty {
                rooms[peer.room] = nil
                return (figuresOf(room), true)
            }
            broadcast(&room, event: "leave", about: peer)
            rooms[peer.room] = room
            return (figuresOf(room), false)
        }
        guard let figures else { return }
        if emptied { gauges.remove(room: peer.room, totals: totals()) } else { gauges.update(figures, totals: totals()) }
    }

    func broadcast(_ room: inout Room, event: String, about peer: Peer) {
        broadcast(&room, event: event, peerID: peer.id, role: peer.role)
    }

    /// Sends `room.state` to the local peers of `room`: the room across every engine.
    func broadcast(_ room: inout Room, event: String, peerID: String, role: PeerRole) {
        room.seq += 1
        let (publisherID, viewers) = membership(room)
        room.shown = (publisherID, viewers)
        let state = RoomStateMessage(
            room: room.name, seq: room.seq, event: event, peerID: peerID, role: role.rawValue, publisher: publisherID != nil,
            publisherID: publisherID, viewers: viewers, viewerCount: viewers.count,
            maxViewers: configuration.maxViewersPerRoom, serverTs: Signaling.nowMillis())
        guard let text = try? SocketMessage.make(type: "room.state", payload: state) else { return }
        for member in room.peers { member.send(text) }
    }

    // MARK: routing

    /// The current publisher of `room`.
    func publisher(of room: String) -> Peer? { rooms.withLock { $0[room]?.publisher } }

    /// The viewer `id` of `room`.
    func viewer(_ id: String, in room: String) -> Peer? { rooms.withLock { $0[room]?.viewers.first { $0.id == id } } }

    /// Every viewer of `room`.
    func viewers(of room: String) -> [Peer] { rooms.withLock { $0[room]?.viewers ?? [] } }

    /// True while `peer` is a member of its room (a replaced publisher is not).
    func isMember(_ peer: Peer) -> Bool {
        rooms.withLock { rooms in
            guard let room = rooms[peer.room] else { return false }
            return peer.role == .publisher ? room.publisher === peer : room.viewers.contains { $0 === peer }
        }
    }

    /// Counts a received message of `type` (nil: not a JSON object with a type).
    func countReceived(room: String, type: String?) {
        rooms.withLock { rooms in
            rooms[room]?.received += 1
            rooms[room]?.byType[type ?? "(invalid)", default: 0] += 1
        }
    }

    /// Counts `count` forwarded frames.
    func countForwarded(room: String, _ count: Int) { rooms.withLock { $0[room]?.forwarded += count } }

    /// Counts an error frame.
    func countError(room: String) { rooms.withLock { $0[room]?.errors += 1 } }

    // MARK: metrics

    /// Records a `publisher.metrics` of the room's current publisher.
    func recordPublisherMetrics(_ message: PublisherMetricsMessage, from peer: Peer) {
        let figures = rooms.withLock { rooms -> RoomFigures? in
            guard var room = rooms[peer.room], room.publisher === peer else { return nil }
            let now = Date()
            room.publisherMetrics.record(message.summary, at: now)
            room.publisherSource = message.source ?? room.publisherSource
            let present = Set(room.viewers.map(\.id) + (cluster?.remote(peer.room).map(\.id) ?? []))
            for connection in message.peers where present.contains(connection.viewerID) {
                var sample = connection.sample
                sample.at = now
                room.publisherConnections[connection.viewerID] = sample
            }
            rooms[peer.room] = room
            return figuresOf(room)
        }
        if let figures { gauges.update(figures, totals: totals()) }
    }

    /// Records a `viewer.metrics` of a viewer.
    func recordViewerMetrics(_ sample: MediaSample, from peer: Peer) {
        let figures = rooms.withLock { rooms -> RoomFigures? in
            guard var room = rooms[peer.room], room.viewerMetrics[peer.id] != nil else { return nil }
            room.viewerMetrics[peer.id]?.record(sample, at: Date())
            rooms[peer.room] = room
            return figuresOf(room)
        }
        if let figures { gauges.update(figures, totals: totals()) }
    }

    /// The figures of this engine's side of `room` (the /metrics gauges of this engine).
    func figuresOf(_ room: Room) -> RoomFigures {
        figures(
            room.name, publisher: room.publisher != nil, viewers: room.viewers.count, publisherSample: room.publisherMetrics.latest,
            viewerSamples: room.viewers.compactMap { room.viewerMetrics[$0.id]?.latest })
    }

    func figures(_ name: String, publisher: Bool, viewers: Int, publisherSample: MediaSample?, viewerSamples: [MediaSample]) -> RoomFigures {
        func average(_ values: [Double]) -> Double? { values.isEmpty ? nil : values.reduce(0, +) / Double(values.count) }
        let frames = viewerSamples.compactMap(\.framesDropped)
        return RoomFigures(
            room: name, publisher: publisher, viewers: viewers,
            publisherFPS: publisherSample?.fps, publisherBitrateKbps: publisherSample?.bitrateKbps,
            viewerFPSAvg: average(viewerSamples.compactMap(\.fps)),
            viewerBitrateKbpsAvg: average(viewerSamples.compactMap(\.bitrateKbps)),
            viewerPacketLossPctMax: viewerSamples.compactMap(\.packetLossPct).max(),
            viewerJitterMsMax: viewerSamples.compactMap(\.jitterMs).max(),
            viewerRTTMsMax: viewerSamples.compactMap(\.rttMs).max(),
            viewerFramesDropped: frames.isEmpty ? nil : frames.reduce(0, +))
    }

    // MARK: reading

    /// Rooms, publishers and viewers in use.
    func totals() -> (rooms: Int, publishers: Int, viewers: Int) {
        rooms.withLock { rooms in
            (rooms.count, rooms.values.filter { $0.publisher != nil }.count, rooms.values.reduce(0) { $0 + $1.viewers.count })
        }
    }

    /// Every room at a glance, by name, with the peers of every engine.
    func list() -> [RoomFigures] {
        let names = rooms.withLock { Set($0.keys) }.union(cluster?.remoteRooms() ?? [])
        return names.compactMap { clusterFigures($0) }.sorted { $0.room < $1.room }
    }

    /// The stats of `name`, or nil when nobody is in it.
    func stats(_ name: String) -> RoomStats? {
        rooms.withLock { rooms -> RoomStats? in
            guard let room = rooms[name] ?? remoteOnly(name) else { return nil }
            func peerStats(_ peer: Peer, track: MetricsTrack?, source: String?, connections: [String: MediaSample]?) -> PeerStats {
                let counters = peer.snapshot
                return PeerStats(
                    id: peer.id, role: peer.role.rawValue, connectedAt: peer.connectedAt, messagesIn: counters.received,
                    messagesOut: counters.sent, errors: counters.errors, dropped: counters.dropped,
                    idleSeconds: (peer.idleFor.inSeconds * 1000).rounded() / 1000,
                    latest: track?.latest, samples: track?.received ?? 0, history: track?.history ?? [],
                    source: source, connections: connections, engine: cluster?.engineID)
            }
            let localPublisher = room.publisher.map {
                peerStats($0, track: room.publisherMetrics, source: room.publisherSource, connections: room.publisherConnections)
            }
            let localViewers = room.viewers.map { peerStats($0, track: room.viewerMetrics[$0.id], source: nil, connections: nil) }
            let (publisher, viewers) = withRemotePeers(room, publisher: localPublisher, viewers: localViewers)
            return RoomStats(
                room: room.name, createdAt: room.createdAt, publisher: publisher, viewers: viewers,
                viewerCount: viewers.count, maxViewers: configuration.maxViewersPerRoom, messagesByType: room.byType,
                messagesReceived: room.received, messagesForwarded: room.forwarded, errors: room.errors,
                publishersRefused: room.publishersRefused, publishersReplaced: room.publishersReplaced,
                summary: clusterFigures(room), serverTs: Signaling.nowMillis())
        }
    }

    /// Every peer of every room (shutdown).
    func allPeers() -> [Peer] { rooms.withLock { rooms in rooms.values.flatMap(\.peers) } }
}
