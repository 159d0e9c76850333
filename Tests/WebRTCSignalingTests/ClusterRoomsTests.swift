import Engine
import Foundation
@_spi(Engine) import PluginAPI
import Synchronization
@testable import WebRTCSignaling
import XCTest

/// A bus like Redis pub/sub in one process: every subscriber of a topic, the sender's own included, gets each message.
final class FakeBusHub: Sendable {
    private let subscribers = Mutex<[String: [(id: Int, handler: @Sendable ([UInt8], String) -> Void)]]>([:])
    private let nextID = Atomic<Int>(0)
    /// Engines whose messages are lost (a dead engine still "sending").
    let muted = Mutex<Set<String>>([])
    /// While set, messages wait here (two engines acting before they hear of each other).
    let held = Mutex<[(topic: String, message: [UInt8], from: String)]?>(nil)

    /// Delivers what was held, in order, and stops holding.
    func release() {
        for item in held.withLock({ held in
            defer { held = nil }
            return held ?? []
        }) { deliver(item.topic, item.message, from: item.from) }
    }

    struct View: EngineBus {
        let hub: FakeBusHub
        let engineID: String
        func publish(_ topic: String, _ message: [UInt8]) async throws { hub.deliver(topic, message, from: engineID) }
        func subscribe(_ topic: String, _ handler: @escaping @Sendable ([UInt8], String) -> Void) async throws -> any BusSubscription {
            hub.add(topic, handler)
        }
    }

    struct Subscription: BusSubscription {
        let cancelled: @Sendable () -> Void
        func cancel() { cancelled() }
    }

    func view(_ engineID: String) -> View { View(hub: self, engineID: engineID) }

    func deliver(_ topic: String, _ message: [UInt8], from: String) {
        guard !muted.withLock({ $0.contains(from) }) else { return }
        let wasHeld = held.withLock { held -> Bool in
            guard held != nil else { return false }
            held?.append((topic, message, from))
            return true
        }
        if wasHeld { return }
        for entry in subscribers.withLock({ $0[topic] ?? [] }) { entry.handler(message, from) }
    }

    func add(_ topic: String, _ handler: @escaping @Sendable ([UInt8], String) -> Void) -> Subscription {
        let id = nextID.add(1, ordering: .relaxed).newValue
        subscribers.withLock { $0[topic, default: []].append((id, handler)) }
        return Subscription { [weak self] in self?.subscribers.withLock { $0[topic]?.removeAll { $0.id == id } } }
    }
}

/// A socket that keeps what it is sent.
final class RecordingSession: WebSocketSession {
    let id = "s"
    let request = PluginRequest(id: "r", method: .get, path: "/ws")
    let admission: (any Sendable)? = nil
    let inbound = WebSocketInbound(next: { nil })
    let sent = Mutex<[JSONValue]>([])
    let closes = Mutex<[UInt16]>([])
    func send(_ text: String) async throws {
        if let value = try? JSON.decode(JSONValue.self, from: Array(text.utf8)) { sent.withLock { $0.append(value) } }
    }
    func send(binary: [UInt8]) async throws {}
    func close(code: UInt16, reason: String) async { closes.withLock { $0.append(code) } }

    func last(_ type: String) -> JSONValue? { sent.withLock { $0.last { $0["type"]?.stringValue == type } } }
    func all(_ type: String) -> [JSONValue] { sent.withLock { $0.filter { $0["type"]?.stringValue == type } } }
}

/// One engine of the test: its registry, its cluster side and its signaling, on the shared fake bus.
struct TestEngine {
    let id: String
    let registry: RoomRegistry
    let cluster: ClusterRooms
    let signaling: Signaling

    init(_ id: String, hub: FakeBusHub, configure: (inout WebRTCSignalingConfiguration) -> Void = { _ in }) async {
        var configuration = WebRTCSignalingConfiguration()
        configure(&configuration)
        let gauges = RoomGauges(metrics: NullMetrics(), maxLabels: 4)
        let counter = Atomic<Int>(0)
        cluster = ClusterRooms(bus: hub.view(id), configuration: configuration, gauges: gauges, logger: SilentLogger())
        registry = RoomRegistry(configuration: configuration, gauges: gauges, cluster: cluster) { role in
            (role == .publisher ? "p-" : "v-") + id + String(counter.add(1, ordering: .relaxed).newValue)
        }
        signaling = Signaling(
            configuration: configuration, registry: registry,
            signer: RoomTokenSigner(secret: Array(repeating: 1, count: 32), crypto: OpenSSLCrypto()),
            gauges: gauges, logger: SilentLogger())
        self.id = id
        await cluster.start(registry: registry)
    }

    /// A peer of `room` that joined here (its writer runs until the test ends).
    func join(_ room: String, _ role: PeerRole) -> (Peer, RecordingSession, JoinOutcome) {
        let session = RecordingSession()
        let peer = Peer(
            id: registry.freshID(role: role, room: room), role: role, room: room, tokenID: "t", session: session, queueLimit: 256,
            burst: 200, perSecond: 50)
        Task { await peer.runWriter() }
        let outcome = registry.join(peer) { _ in nil }
        return (peer, session, outcome)
    }
}

/// Rooms across engines on an in-process bus: membership, one publisher, the viewer limit, forwarded signaling,
/// expiry of a silent engine, and bus messages that are malformed or foreign.
final class ClusterRoomsTests: XCTestCase {
    func eventually(_ what: String, timeout: Duration = .seconds(5), _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while !condition() {
            guard ContinuousClock.now < deadline else { return XCTFail("never: \(what)") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    func viewers(_ state: JSONValue?) -> Set<String> {
        guard case .array(let items)? = state?["viewers"] else { return [] }
        return Set(items.compactMap(\.stringValue))
    }

    func testARoomSpansEnginesAndSignalingCrosses() async throws {
        let hub = FakeBusHub()
        let a = await TestEngine("a", hub: hub), b = await TestEngine("b", hub: hub)
        let (publisher, publisherSocket, _) = a.join("hall", .publisher)
        let (viewer, viewerSocket, outcome) = b.join("hall", .viewer)
        guard case .joined = outcome else { return XCTFail("\(outcome)") }
        try await eventually("the publisher sees the viewer") { viewers(publisherSocket.last("room.state")) == [viewer.id] }
        try await eventually("the viewer sees the publisher") {
            viewerSocket.last("room.state")?["publisher_id"]?.stringValue == publisher.id
        }
        let seqs = publisherSocket.all("room.state").compactMap { $0["seq"]?.doubleValue }
        XCTAssertEqual(seqs, seqs.sorted())
        XCTAssertEqual(Set(seqs).count, seqs.count)

        // An offer from A's publisher reaches B's viewer with `from`; the answer comes back.
        a.signaling.handle(.text(#"{"type":"offer","to":"\#(viewer.id)","sdp":"v=0"}"#), from: publisher)
        try await eventually("the offer on B") { viewerSocket.last("offer")?["from"]?.stringValue == publisher.id }
        XCTAssertEqual(viewerSocket.last("offer")?["sdp"], .string("v=0"))
        b.signaling.handle(.text(#"{"type":"answer","sdp":"v=1"}"#), from: viewer)
        try await eventually("the answer on A") { publisherSocket.last("answer")?["from"]?.stringValue == viewer.id }
        XCTAssertNil(publisherSocket.last("error"))
        XCTAssertNil(viewerSocket.last("error"))

        // Stats on either engine list both peers with their engine.
        let stats = try XCTUnwrap(b.registry.stats("hall"))
        XCTAssertEqual(stats.publisher?.engine, "a")
        XCTAssertEqual(stats.viewers.map(\.engine), ["b"])
        XCTAssertEqual(a.registry.list().first?.viewers, 1)

        // The viewer leaves: A's publisher hears it.
        b.registry.leave(viewer)
        try await eventually("the leave on A") { viewers(publisherSocket.last("room.state")).isEmpty }
    }

    func testOnePublisherAcrossEngines() async throws {
        let hub = FakeBusHub()
        let a = await TestEngine("a", hub: hub), b = await TestEngine("b", hub: hub)
        let (first, firstSocket, _) = a.join("solo", .publisher)
        try await eventually("B knows A's publisher") { b.registry.remotePublisher(of: "solo")?.id == first.id }
        let (_, _, refused) = b.join("solo", .publisher)
        guard case .refused(let error) = refused else { return XCTFail("\(refused)") }
        XCTAssertEqual(error.status, 409)
        XCTAssertTrue(firstSocket.closes.withLock { $0.isEmpty })

        // With replace_publisher, a new one on C displaces A's wherever it is.
        let hub2 = FakeBusHub()
        let c = await TestEngine("c", hub: hub2) { $0.replacePublisher = true }
        let d = await TestEngine("d", hub: hub2) { $0.replacePublisher = true }
        let (old, oldSocket, _) = c.join("solo", .publisher)
        let (watcher, watcherSocket, _) = c.join("solo", .viewer)
        try await eventually("D knows C's publisher") { d.registry.remotePublisher(of: "solo")?.id == old.id }
        let (new, _, outcome) = d.join("solo", .publisher)
        guard case .joined = outcome else { return XCTFail("\(outcome)") }
        try await eventually("the old publisher closed 4410") { oldSocket.closes.withLock { $0 } == [CloseCode.replaced] }
        try await eventually("C's viewer follows the new publisher") {
            watcherSocket.last("room.state")?["publisher_id"]?.stringValue == new.id
        }
        XCTAssertEqual(watcherSocket.last("room.state")?["event"], .string("publisher-replaced"))
        XCTAssertEqual(c.registry.stats("solo")?.publisher?.engine, "d")
        _ = watcher
    }

    func testTheViewerLimitCountsEveryEngine() async throws {
        let hub = FakeBusHub()
        let a = await TestEngine("a", hub: hub) { $0.maxViewersPerRoom = 2 }
        let b = await TestEngine("b", hub: hub) { $0.maxViewersPerRoom = 2 }
        _ = a.join("full", .viewer)
        _ = a.join("full", .viewer)
        try await eventually("B counts A's viewers") { b.registry.remoteViewerCount("full") == 2 }
        let (_, _, outcome) = b.join("full", .viewer)
        guard case .refused(let error) = outcome else { return XCTFail("\(outcome)") }
        XCTAssertEqual(error.code, "room_full")
    }

    func testTwoPublishersJoiningAtOnceOnTwoEnginesEndAsOne() async throws {
        for replace in [false, true] {
            let hub = FakeBusHub()
            let a = await TestEngine("a", hub: hub) { $0.replacePublisher = replace }
            let b = await TestEngine("b", hub: hub) { $0.replacePublisher = replace }
            try await Task.sleep(for: .milliseconds(50))  // the hellos are through
            hub.held.withLock { $0 = [] }
            let (first, firstSocket, firstOutcome) = a.join("race", .publisher)
            let (second, secondSocket, secondOutcome) = b.join("race", .publisher)
            guard case .joined = firstOutcome, case .joined = secondOutcome else { return XCTFail("both join before they hear of each other") }
            try await eventually("both announcements queued") { hub.held.withLock { ($0?.count ?? 0) >= 2 } }
            hub.release()
            // Equal claims fall to the engine id: the first is never above the second.
            let (winner, loser, loserSocket, code) =
                replace ? (second, first, firstSocket, CloseCode.replaced) : (first, second, secondSocket, UInt16(4409))
            try await eventually("the loser closed (replace: \(replace))") { loserSocket.closes.withLock { $0 } == [code] }
            for engine in [a, b] {
                try await eventually("\(engine.id) names the winner") { engine.registry.stats("race")?.publisher?.id == winner.id }
            }
            XCTAssertTrue((replace ? secondSocket : firstSocket).closes.withLock { $0.isEmpty })
            _ = loser
        }
    }

    func testViewersAdmittedAtOnceOverTheLimitAreTrimmedToIt() async throws {
        let hub = FakeBusHub()
        let a = await TestEngine("a", hub: hub) { $0.maxViewersPerRoom = 1 }
        let b = await TestEngine("b", hub: hub) { $0.maxViewersPerRoom = 1 }
        try await Task.sleep(for: .milliseconds(50))
        hub.held.withLock { $0 = [] }
        let (early, earlySocket, _) = a.join("tight", .viewer)
        try await Task.sleep(for: .milliseconds(5))  // a later join time
        let (_, lateSocket, outcome) = b.join("tight", .viewer)
        guard case .joined = outcome else { return XCTFail("\(outcome)") }
        hub.release()
        try await eventually("the later viewer closed 4429") { lateSocket.closes.withLock { $0 } == [4429] }
        for engine in [a, b] {
            try await eventually("\(engine.id) keeps the earlier viewer") { engine.registry.stats("tight")?.viewers.map(\.id) == [early.id] }
        }
        XCTAssertTrue(earlySocket.closes.withLock { $0.isEmpty })
    }

    func testASilentEnginesPeersExpire() async throws {
        let hub = FakeBusHub()
        let a = await TestEngine("a", hub: hub), b = await TestEngine("b", hub: hub)
        let (_, publisherSocket, _) = a.join("gone", .publisher)
        let (viewer, _, _) = b.join("gone", .viewer)
        try await eventually("A sees B's viewer") { viewers(publisherSocket.last("room.state")) == [viewer.id] }
        hub.muted.withLock { _ = $0.insert("b") }  // B dies: nothing more from it
        a.cluster.sweep(now: .now + a.cluster.expiry + .seconds(1))
        try await eventually("B's viewer gone") { viewers(publisherSocket.last("room.state")).isEmpty }
        XCTAssertEqual(publisherSocket.last("room.state")?["event"], .string("leave"))
        XCTAssertEqual(a.registry.stats("gone")?.viewers.count, 0)
    }

    func testMalformedAndForeignBusMessagesAreIgnored() async throws {
        let hub = FakeBusHub()
        let a = await TestEngine("a", hub: hub)
        let (_, socket, _) = a.join("safe", .publisher)
        try await eventually("the first room.state") { socket.last("room.state") != nil }
        let before = socket.sent.withLock { $0.count }
        let junk: [String] = [
            "", "not json", "[]", "{}", #"{"kind":"join"}"#,
            #"{"kind":"join","v":1,"room":"bad room!","peer":{"id":"x","role":"viewer","joined_at":1}}"#,
            #"{"kind":"join","v":1,"room":"safe","peer":{"id":"","role":"viewer","joined_at":1}}"#,
            #"{"kind":"join","v":1,"room":"safe","peer":{"id":"v-x","role":"king","joined_at":1}}"#,
            #"{"kind":"join","v":2,"room":"safe","peer":{"id":"v-x","role":"viewer","joined_at":1}}"#,
            #"{"kind":"presence","v":1,"rooms":[{"room":"safe","peers":[{"id":"v-y","role":"viewer","joined_at":-5}]}]}"#,
            #"{"kind":"warp","v":1}"#, String(repeating: "[", count: 10_000),
        ]
        for text in junk {
            a.cluster.receive(Array(text.utf8), from: "zz")
            a.cluster.receiveSignal(Array(text.utf8), from: "zz")
        }
        a.cluster.receive(
            Array(#"{"kind":"join","v":1,"room":"safe","peer":{"id":"v-x","role":"viewer","joined_at":1}}"#.utf8), from: "bad engine id")
        // A signal for a peer that is not here, of a type the publisher is never sent, or not an object.
        for frames in [
            #"[{"to":"nobody","frame":"{\"type\":\"answer\"}"}]"#,
            #"[{"to":"\#(a.registry.publisher(of: "safe")?.id ?? "")","frame":"{\"type\":\"offer\"}"}]"#,
            #"[{"to":"\#(a.registry.publisher(of: "safe")?.id ?? "")","frame":"[1]"}]"#,
        ] {
            a.cluster.receiveSignal(Array(#"{"kind":"signal","v":1,"room":"safe","frames":\#(frames)}"#.utf8), from: "zz")
        }
        try await Task.sleep(for: .milliseconds(50))
        XCTAssertEqual(socket.sent.withLock { $0.count }, before)
        XCTAssertTrue(a.cluster.remote("safe").isEmpty)
        XCTAssertTrue(socket.closes.withLock { $0.isEmpty })
    }
}
