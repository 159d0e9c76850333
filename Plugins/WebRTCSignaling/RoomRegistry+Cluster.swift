// WebRTCSignaling: the registry's side of rooms that span engines: the room as every engine has it, the one
// publisher across engines, and what changes for the local peers when another engine's peers come and go.
// Without a cluster (or with no peer elsewhere) every function here gives exactly the single-engine answer.

import Foundation
import PluginAPI

extension RoomRegistry {
    /// A publisher of a room, on this engine or another.
    struct PublisherCandidate {
        let id: String
        let engine: String
        let claim: Int64
        /// Nil for the local publisher.
        let remote: RemotePeer?

        var key: (Int64, String, String) { (claim, engine, id) }
    }

    /// The room's one publisher across engines: with `replace_publisher` the newest claim wins (it displaced the
    /// others), without it the oldest (the others are refused). Every engine picks the same one from the same peers.
    func publisherWinner(_ room: Room, _ remote: [RemotePeer]) -> PublisherCandidate? {
        var candidates = remote.filter { $0.role == .publisher }.map {
            PublisherCandidate(id: $0.id, engine: $0.engine, claim: $0.claim, remote: $0)
        }
        if let local = room.publisher {
            candidates.append(PublisherCandidate(id: local.id, engine: cluster?.engineID ?? "", claim: room.publisherClaim, remote: nil))
        }
        return configuration.replacePublisher ? candidates.max { $0.key < $1.key } : candidates.min { $0.key < $1.key }
    }

    /// The publisher of `room` on another engine (the one that wins among them), if any.
    func remotePublisher(of room: String) -> RemotePeer? {
        guard let cluster else { return nil }
        let remote = cluster.remote(room).filter { $0.role == .publisher }
        return configuration.replacePublisher
            ? remote.max { ($0.claim, $0.engine, $0.id) < ($1.claim, $1.engine, $1.id) }
            : remote.min { ($0.claim, $0.engine, $0.id) < ($1.claim, $1.engine, $1.id) }
    }

    /// The viewer `id` of `room` on another engine.
    func remoteViewer(_ id: String, in room: String) -> RemotePeer? {
        cluster?.remote(room).first { $0.role == .viewer && $0.id == id }
    }

    /// Viewers of `room` on the other engines.
    func remoteViewerCount(_ room: String) -> Int {
        cluster?.remote(room).filter { $0.role == .viewer }.count ?? 0
    }

    /// The local peer `id` of `room` (a signaling frame from another engine is for it).
    func localPeer(_ id: String, in room: String) -> Peer? {
        rooms.withLock { rooms in rooms[room]?.peers.first { $0.id == id } }
    }

    /// The claim of a new local publisher, announced to the other engines with its join.
    func announcePublisher(_ peer: Peer, in room: Room) -> Int64 {
        guard let cluster else { return 0 }
        let claim = cluster.claim(room: room.name, above: room.publisherClaim)
        cluster.announceJoin(peer, claim: claim)
        return claim
    }

    /// The publisher id and the viewer ids `room.state` shows: the local ones alone, or merged with the other
    /// engines' (viewers by join time, the local order kept).
    func membership(_ room: Room) -> (publisher: String?, viewers: [String]) {
        guard let remote = cluster?.remote(room.name), !remote.isEmpty else { return (room.publisher?.id, room.viewers.map(\.id)) }
        let others = remote.filter { $0.role == .viewer }
        var viewers: [String] = []
        viewers.reserveCapacity(room.viewers.count + others.count)
        var next = others.startIndex
        for local in room.viewers {
            let joined = Int64(local.connectedAt.timeIntervalSince1970 * 1000)
            while next < others.endIndex, others[next].peer.joinedAt < joined {
                viewers.append(others[next].id)
                next += 1
            }
            viewers.append(local.id)
        }
        viewers += others[next...].map(\.id)
        return (publisherWinner(room, remote)?.id, viewers)
    }

    /// Another engine's peers of `name` changed: a local publisher that lost to another engine's is closed (4410
    /// displaced, or 4409 refused), and the local peers get one `room.state` per peer that came or went.
    func remoteChanged(_ name: String) {
        guard let cluster else { return }
        let outcome = rooms.withLock { rooms -> (figures: RoomFigures, emptied: Bool)? in
            guard var room = rooms[name] else { return nil }
            let remote = cluster.remote(name)
            if let local = room.publisher, let winner = publisherWinner(room, remote), winner.remote != nil {
                room.publisher = nil
                room.publisherClaim = 0
                room.publisherMetrics = MetricsTrack(capacity: configuration.metricsHistory)
                room.publisherConnections = [:]
                room.publisherSource = nil
                cluster.announceLeave(local)
                if configuration.replacePublisher {
                    room.publishersReplaced += 1
                    local.close(code: CloseCode.replaced, reason: "replaced by a new publisher")
                } else {
                    room.publishersRefused += 1
                    local.close(code: 4409, reason: "room '\(name)' already has a publisher")
                    broadcast(&room, event: "publisher-refused", about: local)
                }
            }
            dropLateViewers(&room)
            let before = room.shown
            let now = membership(room)
            room.publisherConnections = room.publisherConnections.filter { now.viewers.contains($0.key) }
            if now.publisher != before.publisher {
                if let id = now.publisher {
                    broadcast(&room, event: before.publisher == nil ? "join" : "publisher-replaced", peerID: id, role: .publisher)
                } else if let id = before.publisher {
                    broadcast(&room, event: "leave", peerID: id, role: .publisher)
                }
            }
            let (nowViewers, beforeViewers) = (Set(now.viewers), Set(before.viewers))
            for id in before.viewers where !nowViewers.contains(id) { broadcast(&room, event: "leave", peerID: id, role: .viewer) }
            for id in now.viewers where !beforeViewers.contains(id) { broadcast(&room, event: "join", peerID: id, role: .viewer) }
            rooms[name] = room.isEmpty ? nil : room
            return (figuresOf(room), room.isEmpty)
        }
        guard let outcome else { return }
        if outcome.emptied { gauges.remove(room: name, totals: totals()) } else { gauges.update(outcome.figures, totals: totals()) }
    }

    /// Two engines that admitted a viewer each at the same moment can pass `max_viewers_per_room` together: the
    /// viewers past the limit in join order are closed (4429) by their own engine. At equal join times each engine
    /// lists its own viewers first, so neither closes one and the room stays one over rather than losing both.
    private func dropLateViewers(_ room: inout Room) {
        guard let cluster else { return }
        let limit = configuration.maxViewersPerRoom
        let all = membership(room).viewers
        guard all.count > limit else { return }
        let late = Set(all[limit...])
        for viewer in room.viewers where late.contains(viewer.id) {
            room.viewers.removeAll { $0 === viewer }
            room.viewerMetrics[viewer.id] = nil
            room.publisherConnections[viewer.id] = nil
            cluster.announceLeave(viewer)
            viewer.close(code: 4429, reason: "room '\(room.name)' already has \(limit) viewers")
        }
    }

    /// Queues this engine's presence refresh: every local room with its peers, counters and newest samples.
    func presence(into cluster: ClusterRooms) {
        rooms.withLock { rooms in
            let entries = rooms.values.map { room in
                BusMessage.PresenceRoom(
                    room: room.name,
                    peers: room.peers.map { peer in
                        let counters = peer.snapshot
                        let publisher = peer.role == .publisher
                        return WirePeer(
                            id: peer.id, role: peer.role, joinedAt: Int64(peer.connectedAt.timeIntervalSince1970 * 1000),
                            claim: publisher ? room.publisherClaim : nil, received: counters.received, sent: counters.sent,
                            errors: counters.errors, latest: publisher ? room.publisherMetrics.latest : room.viewerMetrics[peer.id]?.latest)
                    })
            }
            cluster.announcePresence(entries)
        }
    }

    // MARK: reading

    /// An empty stand-in for a room that only other engines have peers in.
    func remoteOnly(_ name: String) -> Room? {
        guard let cluster, !cluster.remote(name).isEmpty else { return nil }
        return Room(name: name, historySize: configuration.metricsHistory)
    }

    /// The stats of the local peers with the other engines' peers added (what their presence refresh told).
    func withRemotePeers(_ room: Room, publisher: PeerStats?, viewers: [PeerStats]) -> (PeerStats?, [PeerStats]) {
        guard let remote = cluster?.remote(room.name), !remote.isEmpty else { return (publisher, viewers) }
        func stats(_ peer: RemotePeer) -> PeerStats {
            let wire = peer.peer
            return PeerStats(
                id: wire.id, role: wire.role.rawValue, connectedAt: Date(timeIntervalSince1970: TimeInterval(wire.joinedAt) / 1000),
                messagesIn: wire.received ?? 0, messagesOut: wire.sent ?? 0, errors: wire.errors ?? 0, dropped: 0, idleSeconds: 0,
                latest: wire.latest, samples: wire.latest == nil ? 0 : 1, history: wire.latest.map { [$0] } ?? [], source: nil,
                connections: nil, engine: peer.engine)
        }
        let winner = publisherWinner(room, remote)
        let shownPublisher = winner?.remote.map(stats) ?? publisher
        return (shownPublisher, viewers + remote.filter { $0.role == .viewer }.map(stats))
    }

    /// A room's figures across engines (the room list and the stats summary).
    func clusterFigures(_ room: Room) -> RoomFigures {
        guard let remote = cluster?.remote(room.name), !remote.isEmpty else { return figuresOf(room) }
        let winner = publisherWinner(room, remote)
        let others = remote.filter { $0.role == .viewer }
        return figures(
            room.name, publisher: winner != nil, viewers: room.viewers.count + others.count,
            publisherSample: winner.map { $0.remote?.peer.latest ?? room.publisherMetrics.latest } ?? nil,
            viewerSamples: room.viewers.compactMap { room.viewerMetrics[$0.id]?.latest } + others.compactMap(\.peer.latest))
    }

    /// The figures of the room `name` across engines, or nil when nobody is in it anywhere.
    func clusterFigures(_ name: String) -> RoomFigures? {
        rooms.withLock { rooms in (rooms[name] ?? remoteOnly(name)).map { clusterFigures($0) } }
    }
}
