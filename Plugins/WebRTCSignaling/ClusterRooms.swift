// WebRTCSignaling: rooms that span the engines sharing one store. Each engine announces its own peers on the bus
// (join, leave, and a presence refresh that expires), keeps a view of the peers of the others, and forwards the
// signaling frames meant for a peer on another engine to that engine, which delivers them.

import Foundation
import PluginAPI
import Synchronization

/// A peer as an engine announces it on the bus.
struct WirePeer: Codable, Sendable, Equatable {
    /// Its server-assigned id.
    let id: String
    let role: PeerRole
    /// Milliseconds since 1970 when it joined (orders the viewers of a room across engines).
    let joinedAt: Int64
    /// Publisher only: its claim on the room (see ``ClusterRooms/claim(room:above:)``).
    var claim: Int64?
    /// Presence only: the counters and the newest metrics sample, for the stats of the other engines.
    var received: Int?
    var sent: Int?
    var errors: Int?
    var latest: MediaSample?

    enum CodingKeys: String, CodingKey {
        case id, role, claim, received, sent, errors, latest
        case joinedAt = "joined_at"
    }

    /// True when every member is in range (a message from the bus is never trusted blindly).
    var isValid: Bool {
        let counters = [received, sent, errors].allSatisfy { ($0 ?? 0) >= 0 }
        return ClusterRooms.isToken(id, max: 48) && joinedAt >= 0 && (claim ?? 0) >= 0 && counters
    }
}

/// A peer connected to another engine.
struct RemotePeer: Sendable, Equatable {
    /// The engine it is connected to.
    let engine: String
    let peer: WirePeer

    var id: String { peer.id }
    var role: PeerRole { peer.role }
    var claim: Int64 { peer.claim ?? 0 }

    /// The order of viewers in `room.state`: join time, then engine and id so that every engine lists them alike.
    static func joinOrder(_ a: RemotePeer, _ b: RemotePeer) -> Bool {
        (a.peer.joinedAt, a.engine, a.id) < (b.peer.joinedAt, b.engine, b.id)
    }
}

/// One message on the plugin's bus topics. `v` is 1; kinds a receiver does not know are ignored.
struct BusMessage: Codable, Sendable {
    /// `hello`, `join`, `leave`, `presence`, `bye` (topic `rooms`); `signal` (topic `signal.<engine>`).
    let kind: String
    var v = 1
    /// Membership messages: the sending engine's counter, increasing in the order it sent them.
    var n: Int64?
    var room: String?
    /// `join`: the peer; `leave`: the peer (id and role are read).
    var peer: WirePeer?
    /// `presence`: every room of the sending engine with its peers.
    var rooms: [PresenceRoom]?
    /// `signal`: frames for peers of `room` on the receiving engine.
    var frames: [Delivery]?

    /// The peers of one room in a presence refresh.
    struct PresenceRoom: Codable, Sendable {
        let room: String
        let peers: [WirePeer]
    }

    /// A ready socket frame for one peer.
    struct Delivery: Codable, Sendable {
        let to: String
        let frame: String
    }
}

/// The cluster side of the rooms: what the other engines have, and the bus traffic.
///
/// Locking: ``RoomRegistry`` calls in here while holding its own lock (to read the view and to queue
/// announcements in the order of its changes); this type never calls the registry while holding its lock.
final class ClusterRooms: Sendable {
    /// The topic of membership messages.
    static let roomsTopic = "rooms"
    /// Largest bus message read (bigger ones are dropped).
    static let maxMessageBytes = 8 << 20

    /// What another engine has in one room.
    private struct Share {
        var peers: [String: WirePeer]
        var refreshed: ContinuousClock.Instant
    }

    private struct State {
        /// room → engine → its peers there.
        var rooms: [String: [String: Share]] = [:]
        /// The newest membership counter applied, per engine.
        var applied: [String: Int64] = [:]
        /// The engines heard from, and when.
        var engines: [String: ContinuousClock.Instant] = [:]
        var registry: RoomRegistry?
        var tasks: [Task<Void, Never>] = []
        var subscriptions: [any BusSubscription] = []
        var lastPublishError: ContinuousClock.Instant?
    }

    let bus: any EngineBus
    let engineID: String
    /// Presence is sent this often; a share not refreshed within `expiry` is dropped.
    let interval: Duration
    let expiry: Duration
    private let maxFrameBytes: Int
    private let logger: any PluginLogger
    private let gauges: RoomGauges
    private let state = Mutex(State())
    private let counter = Atomic<Int64>(0)
    private let outbox: AsyncStream<(topic: String, bytes: [UInt8])>
    private let outboxInput: AsyncStream<(topic: String, bytes: [UInt8])>.Continuation

    /// Creates the cluster side; ``start(registry:)`` subscribes and starts the presence loop.
    /// - Parameters:
    ///   - bus: The plugin's bus.
    ///   - configuration: The presence expiry and the message limit.
    init(bus: any EngineBus, configuration: WebRTCSignalingConfiguration, gauges: RoomGauges, logger: any PluginLogger) {
        self.bus = bus
        self.engineID = bus.engineID
        self.expiry = .seconds(configuration.presenceExpirySeconds)
        self.interval = .milliseconds(configuration.presenceExpirySeconds * 1000 / 3)
        self.maxFrameBytes = configuration.maxMessageBytes * 4 + 4096
        self.gauges = gauges
        self.logger = logger
        let (stream, input) = AsyncStream<(topic: String, bytes: [UInt8])>.makeStream(bufferingPolicy: .bufferingNewest(4096))
        outbox = stream
        outboxInput = input
    }

    /// True when `text` is 1…`max` bytes of letters, digits, `-` and `_` (peer and engine ids).
    static func isToken(_ text: String, max: Int) -> Bool {
        (1...max).contains(text.utf8.count)
            && text.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                    || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
            }
    }

    // MARK: life

    /// Subscribes to the topics, says hello (the others answer with their presence) and starts the loops.
    func start(registry: RoomRegistry) async {
        state.withLock { $0.registry = registry }
        let sender = Task { [outbox, bus, logger] in
            for await item in outbox {
                do {
                    try await bus.publish(item.topic, item.bytes)
                } catch {
                    let now = ContinuousClock.now
                    let report = self.state.withLock { state -> Bool in
                        guard state.lastPublishError.map({ now - $0 > .seconds(10) }) ?? true else { return false }
                        state.lastPublishError = now
                        return true
                    }
                    if report { logger.warning("webrtc: cannot reach the other engines", ["error": "\(error)"]) }
                }
            }
        }
        let loop = Task { [weak self] in
            await self?.subscribe()
            while !Task.isCancelled {
                guard let self else { return }
                self.sendPresence()
                self.sweep()
                do { try await Task.sleep(for: self.interval) } catch { return }
            }
        }
        state.withLock { $0.tasks = [sender, loop] }
    }

    private func subscribe() async {
        var delay = Duration.milliseconds(250)
        while !Task.isCancelled {
            do {
                let rooms = try await bus.subscribe(Self.roomsTopic) { [weak self] bytes, from in self?.receive(bytes, from: from) }
                let signals = try await bus.subscribe("signal." + engineID) { [weak self] bytes, from in
                    self?.receiveSignal(bytes, from: from)
                }
                state.withLock { $0.subscriptions = [rooms, signals] }
                enqueue(Self.roomsTopic, BusMessage(kind: "hello"))
                return
            } catch {
                logger.warning("webrtc: cannot follow the other engines yet; retrying", ["error": "\(error)"])
                do { try await Task.sleep(for: delay) } catch { return }
                delay = min(delay * 2, .seconds(5))
            }
        }
    }

    /// Tells the other engines that this one's peers are gone, and stops.
    func stop() async {
        let (tasks, subscriptions) = state.withLock { state in
            defer {
                state.tasks = []
                state.subscriptions = []
                state.registry = nil
            }
            return (state.tasks, state.subscriptions)
        }
        for subscription in subscriptions { subscription.cancel() }
        outboxInput.finish()
        for task in tasks { task.cancel() }
        if let bytes = try? JSON.encode(BusMessage(kind: "bye", n: counter.add(1, ordering: .relaxed).newValue)) {
            try? await bus.publish(Self.roomsTopic, bytes)
        }
    }

    // MARK: what the registry asks (under its lock)

    /// Every peer of `room` on the other engines, viewers in join order.
    func remote(_ room: String) -> [RemotePeer] {
        state.withLock { state in
            guard let shares = state.rooms[room] else { return [] }
            return shares.flatMap { engine, share in share.peers.values.map { RemotePeer(engine: engine, peer: $0) } }
                .sorted(by: RemotePeer.joinOrder)
        }
    }

    /// Every room some other engine has a peer in.
    func remoteRooms() -> [String] { state.withLock { Array($0.rooms.keys) } }

    /// A claim for a new publisher of `room`: above every claim known for the room (theirs and `local`), and at least
    /// the wall clock, so a publisher that joins after another has seen it always outranks it (a Lamport clock).
    func claim(room: String, above local: Int64) -> Int64 {
        let known = remote(room).filter { $0.role == .publisher }.map(\.claim).max() ?? 0
        return max(WallClock.nowMilliseconds, max(known, local) + 1)
    }

    /// Queues the announcement of a local peer that joined.
    func announceJoin(_ peer: Peer, claim: Int64?) {
        let wire = WirePeer(id: peer.id, role: peer.role, joinedAt: Int64(peer.connectedAt.timeIntervalSince1970 * 1000), claim: claim)
        enqueue(Self.roomsTopic, BusMessage(kind: "join", n: next(), room: peer.room, peer: wire))
    }

    /// Queues the announcement of a local peer that left (or was displaced).
    func announceLeave(_ peer: Peer) {
        let wire = WirePeer(id: peer.id, role: peer.role, joinedAt: 0)
        enqueue(Self.roomsTopic, BusMessage(kind: "leave", n: next(), room: peer.room, peer: wire))
    }

    /// Queues a presence refresh with every local room (called by the registry under its lock).
    func announcePresence(_ rooms: [BusMessage.PresenceRoom]) {
        enqueue(Self.roomsTopic, BusMessage(kind: "presence", n: next(), rooms: rooms))
    }

    /// Queues frames for peers of `room` connected to `engine`.
    func send(_ frames: [BusMessage.Delivery], room: String, to engine: String) {
        guard !frames.isEmpty else { return }
        enqueue("signal." + engine, BusMessage(kind: "signal", room: room, frames: frames))
    }

    private func next() -> Int64 { counter.add(1, ordering: .relaxed).newValue }

    private func enqueue(_ topic: String, _ message: BusMessage) {
        guard let bytes = try? JSON.encode(message) else { return }
        outboxInput.yield((topic, bytes))
    }

    private func sendPresence() {
        guard let registry = state.withLock({ $0.registry }) else { return }
        registry.presence(into: self)
    }

    // MARK: receiving

    private func drop(_ reason: String, from: String) {
        gauges.count("webrtc_bus_dropped_total", [("reason", reason)])
        logger.debug("webrtc: bus message dropped", ["reason": reason, "engine": String(from.prefix(64))])
    }

    private func decode(_ bytes: [UInt8], from: String) -> BusMessage? {
        guard from != engineID else { return nil }
        guard bytes.count <= Self.maxMessageBytes, Self.isToken(from, max: 64) else {
            drop("invalid", from: from)
            return nil
        }
        guard let message = try? JSON.decode(BusMessage.self, from: bytes), message.v == 1 else {
            drop("invalid", from: from)
            return nil
        }
        return message
    }

    /// A message on `rooms`: updates the view, then tells the registry which rooms changed.
    func receive(_ bytes: [UInt8], from engine: String) {
        guard let message = decode(bytes, from: engine) else { return }
        let now = ContinuousClock.now
        var wantsPresence = false
        let outcome = state.withLock { state -> (changed: Set<String>, registry: RoomRegistry?)? in
            state.engines[engine] = now
            if let n = message.n {
                // Messages of one engine arrive in its order; an older one (a presence queued before a join) is stale.
                if let applied = state.applied[engine], n <= applied { return nil }
                state.applied[engine] = n
            }
            var changed: Set<String> = []
            switch message.kind {
            case "hello":
                wantsPresence = true
            case "join":
                guard let room = message.room, RoomName.isValid(room), let peer = message.peer, peer.isValid else { return nil }
                var share = state.rooms[room]?[engine] ?? Share(peers: [:], refreshed: now)
                share.peers[peer.id] = peer
                share.refreshed = now
                state.rooms[room, default: [:]][engine] = share
                changed.insert(room)
            case "leave":
                guard let room = message.room, let id = message.peer?.id, state.rooms[room]?[engine]?.peers[id] != nil else { return nil }
                state.rooms[room]?[engine]?.peers[id] = nil
                if state.rooms[room]?[engine]?.peers.isEmpty ?? false { state.rooms[room]?[engine] = nil }
                if state.rooms[room]?.isEmpty ?? false { state.rooms[room] = nil }
                changed.insert(room)
            case "presence":
                for entry in message.rooms ?? [] where RoomName.isValid(entry.room) {
                    let peers = entry.peers.filter(\.isValid)
                    let before = state.rooms[entry.room]?[engine]?.peers
                    let after = Dictionary(peers.map { ($0.id, $0) }, uniquingKeysWith: { _, last in last })
                    if before.map({ Set($0.keys) }) != Set(after.keys) { changed.insert(entry.room) }
                    state.rooms[entry.room, default: [:]][engine] = Share(peers: after, refreshed: now)
                }
                // Rooms the engine no longer lists (a lost leave) go now rather than at expiry.
                let listed = Set((message.rooms ?? []).map(\.room))
                for (room, shares) in state.rooms where shares[engine] != nil && !listed.contains(room) {
                    state.rooms[room]?[engine] = nil
                    if state.rooms[room]?.isEmpty ?? false { state.rooms[room] = nil }
                    changed.insert(room)
                }
            case "bye":
                for (room, shares) in state.rooms where shares[engine] != nil {
                    state.rooms[room]?[engine] = nil
                    if state.rooms[room]?.isEmpty ?? false { state.rooms[room] = nil }
                    changed.insert(room)
                }
                state.engines[engine] = nil
                state.applied[engine] = nil
            default:
                return nil  // a newer engine's message kind
            }
            return (changed, state.registry)
        }
        if wantsPresence { sendPresence() }
        guard let outcome, let registry = outcome.registry else { return }
        for room in outcome.changed { registry.remoteChanged(room) }
    }

    /// Drops what engines no longer refresh (an engine that died), and tells the registry.
    func sweep(now: ContinuousClock.Instant = .now) {
        let (changed, registry) = state.withLock { state -> (Set<String>, RoomRegistry?) in
            var changed: Set<String> = []
            for (room, shares) in state.rooms {
                for (engine, share) in shares where now - share.refreshed > expiry {
                    state.rooms[room]?[engine] = nil
                    changed.insert(room)
                }
                if state.rooms[room]?.isEmpty ?? false { state.rooms[room] = nil }
            }
            for (engine, seen) in state.engines where now - seen > expiry {
                state.engines[engine] = nil
                state.applied[engine] = nil
            }
            return (changed, state.registry)
        }
        guard let registry else { return }
        for room in changed {
            logger.info("webrtc: peers of a silent engine dropped", ["room": room])
            registry.remoteChanged(room)
        }
    }

    /// Frames that may cross to a peer of each role (what that role is sent by the other side).
    static let deliverable: [PeerRole: Set<String>] = [
        .viewer: ["offer", "ice-candidate", "publisher.metrics"],
        .publisher: ["answer", "ice-candidate", "viewer.request-keyframe"],
    ]

    /// A message on `signal.<this engine>`: frames for local peers, checked before they reach a socket.
    func receiveSignal(_ bytes: [UInt8], from engine: String) {
        guard let message = decode(bytes, from: engine) else { return }
        guard message.kind == "signal", let room = message.room, RoomName.isValid(room), let frames = message.frames,
            let registry = state.withLock({ $0.registry })
        else { return drop("invalid", from: engine) }
        var delivered = 0
        for delivery in frames {
            guard delivery.frame.utf8.count <= maxFrameBytes, let target = registry.localPeer(delivery.to, in: room),
                let value = try? JSON.decode(JSONValue.self, from: Array(delivery.frame.utf8)), case .object(let members) = value,
                case .string(let type)? = members["type"], Self.deliverable[target.role]?.contains(type) ?? false
            else {
                drop("undeliverable", from: engine)
                continue
            }
            if target.send(delivery.frame) { delivered += 1 }
        }
        registry.countForwarded(room: room, delivered)
    }

    /// The engines heard from within the expiry, this one first.
    var engines: [String] {
        [engineID] + state.withLock { $0.engines.keys.sorted() }
    }
}
