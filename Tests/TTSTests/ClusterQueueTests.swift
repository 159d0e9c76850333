import Foundation
import PluginAPI
import Synchronization
@testable import TTS
import XCTest

/// An in-process stand-in for Redis pub/sub: every subscriber of a topic gets every message, all in one order (the
/// lock is held while delivering). An engine can be cut off (killed: it neither sends nor receives) or made deaf for a
/// while (its subscription drops messages, as when its connection to Redis is re-made).
final class FakeBroker: Sendable {
    private struct Subscriber {
        let id: Int
        let engine: String
        let topic: String
        let handler: @Sendable ([UInt8], String) -> Void
    }
    private struct State {
        var subscribers: [Subscriber] = []
        var next = 0
        var dead: Set<String> = []
        var deaf: Set<String> = []
        var published = 0
    }
    private let state = Mutex(State())

    /// The bus of engine `engineID`.
    func bus(_ engineID: String) -> FakeBus { FakeBus(broker: self, engineID: engineID) }

    /// The engine neither publishes nor receives any more (kill -9).
    func kill(_ engine: String) { _ = state.withLock { $0.dead.insert(engine) } }

    /// The engine reaches the store again.
    func revive(_ engine: String) { _ = state.withLock { $0.dead.remove(engine) } }

    /// Messages to the engine are dropped (true) or delivered again (false).
    func setDeaf(_ engine: String, _ deaf: Bool) {
        state.withLock { state in
            if deaf {
                state.deaf.insert(engine)
            } else {
                state.deaf.remove(engine)
            }
        }
    }

    /// Messages published so far.
    var published: Int { state.withLock { $0.published } }

    func publish(_ topic: String, _ message: [UInt8], from engine: String) throws {
        try state.withLock { state in
            guard !state.dead.contains(engine) else { throw StoreError.unavailable("engine \(engine) is dead") }
            state.published += 1
            for subscriber in state.subscribers
            where subscriber.topic == topic && !state.dead.contains(subscriber.engine) && !state.deaf.contains(subscriber.engine) {
                subscriber.handler(message, engine)
            }
        }
    }

    func subscribe(_ topic: String, engine: String, _ handler: @escaping @Sendable ([UInt8], String) -> Void) -> Int {
        state.withLock { state in
            state.next += 1
            state.subscribers.append(Subscriber(id: state.next, engine: engine, topic: topic, handler: handler))
            return state.next
        }
    }

    func unsubscribe(_ id: Int) { state.withLock { $0.subscribers.removeAll { $0.id == id } } }
}

/// One engine's view of a ``FakeBroker``.
struct FakeBus: EngineBus {
    let broker: FakeBroker
    let engineID: String
    func publish(_ topic: String, _ message: [UInt8]) async throws { try broker.publish(topic, message, from: engineID) }
    func subscribe(_ topic: String, _ handler: @escaping @Sendable ([UInt8], String) -> Void) async throws -> any BusSubscription {
        FakeSubscription(broker: broker, id: broker.subscribe(topic, engine: engineID, handler))
    }
}

struct FakeSubscription: BusSubscription {
    let broker: FakeBroker
    let id: Int
    func cancel() { broker.unsubscribe(id) }
}

/// One engine of a test cluster: its queue, its sockets, its metrics.
struct TestEngine {
    let id: String
    let queue: SpeechQueue
    let hub: RecordingHub
    let metrics: Metrics

    func utterance(_ id: String, timeout: Duration = .seconds(60)) -> Utterance {
        Utterance(
            id: id, request: SpeakRequest(text: "say \(id)", lang: "en-US", rate: 1, pitch: 1, volume: 1, voice: nil), mode: .browser,
            audioHash: nil, audioDuration: nil, requestedBy: "moderator", queuedAt: Date(), timeout: timeout, origin: self.id)
    }
}

/// The queue as several engines on one bus hold it: one queue, every engine's sockets told, counted once, timeouts
/// with a fallback, newcomers and engines that missed messages catching up, malformed messages ignored.
final class ClusterQueueTests: XCTestCase {
    let broker = FakeBroker()

    func engine(_ id: String, max: Int = 10, grace: Duration = .seconds(5), replyTimeout: Duration = .seconds(5)) async throws -> TestEngine {
        let hub = RecordingHub()
        let metrics = Metrics()
        let queue = SpeechQueue(
            sockets: hub, logger: NoLogger(), metrics: TTSMetrics(metrics), maxLength: max, bus: broker.bus(id),
            timing: .init(grace: grace, syncWait: .milliseconds(100), replyTimeout: replyTimeout),
            malformed: metrics.counter("ignored", labels: []))
        try await queue.start()
        _ = await queue.snapshotFrame()  // joined
        return TestEngine(id: id, queue: queue, hub: hub, metrics: metrics)
    }

    func waitFor(_ what: String, timeout: Duration = .seconds(5), _ condition: @escaping () async -> Bool) async throws {
        let deadline = ContinuousClock.now + timeout
        while !(await condition()) {
            guard ContinuousClock.now < deadline else { return XCTFail("\(what): not within \(timeout)") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// The engine's `tts.queue` frame as a JSON value (key order is the encoder's business).
    func parsedQueue(_ node: TestEngine) async throws -> JSONValue {
        try JSON.decode(JSONValue.self, from: Array(await node.queue.snapshotFrame().utf8))
    }

    func testEveryEngineSpeaksTheSameQueueAndAnyEngineAdvancesIt() async throws {
        let a = try await engine("A")
        let b = try await engine("B")
        let c = try await engine("C")
        let first = try await a.queue.enqueue(a.utterance("u1"))
        let second = try await b.queue.enqueue(b.utterance("u2"))
        XCTAssertEqual([first, second], [0, 1])
        for node in [a, b, c] {
            try await waitFor("\(node.id) got both") { node.hub.lastQueue == "u1 u2" }
            XCTAssertEqual(node.hub.overlayEvents, ["tts.speak u1", "tts.speak u2"], node.id)
        }
        // An overlay on C finishes: the one queue advances everywhere.
        try await c.queue.finished("u1")
        for node in [a, b, c] { try await waitFor("\(node.id) advanced") { node.hub.lastQueue == "u2" } }
        try await b.queue.started("u2", by: "conn-1")
        let snapshot = await a.queue.snapshotFrame()
        XCTAssertTrue(snapshot.contains(#""state":"speaking""#), snapshot)
        let skipped = try await a.queue.skip(nil)
        XCTAssertEqual(skipped, "u2")
        for node in [a, b, c] {
            try await waitFor("\(node.id) told its overlays") { node.hub.overlayEvents.last == "tts.skip u2" }
            XCTAssertEqual(node.hub.lastQueue, "-")
        }
        // Counted once, on the engine the change came from.
        XCTAssertEqual(a.metrics.value("tts_utterances_queued_total"), 1)
        XCTAssertEqual(b.metrics.value("tts_utterances_queued_total"), 1)
        XCTAssertEqual(c.metrics.value("tts_utterances_queued_total"), 0)
        XCTAssertEqual(c.metrics.value("tts_utterances_spoken_total"), 1)
        XCTAssertEqual(a.metrics.value("tts_utterances_spoken_total"), 0)
        XCTAssertEqual(a.metrics.value("tts_utterances_skipped_total"), 1)
    }

    func testTheLimitHoldsAcrossEnginesEvenWhenTheyRace() async throws {
        let a = try await engine("A", max: 3)
        let b = try await engine("B", max: 3)
        _ = try await a.queue.enqueue(a.utterance("u1"))
        _ = try await b.queue.enqueue(b.utterance("u2"))
        // One slot left, two engines ask for it at once: exactly one gets it, on both replicas alike.
        async let fromA: Int? = try? await a.queue.enqueue(a.utterance("a3"))
        async let fromB: Int? = try? await b.queue.enqueue(b.utterance("b3"))
        let results = await [fromA, fromB]
        XCTAssertEqual(results.compactMap { $0 }, [2], "\(results)")
        try await waitFor("same queue") { a.hub.lastQueue == b.hub.lastQueue }
        do {
            _ = try await b.queue.enqueue(b.utterance("u4"))
            XCTFail("a fourth utterance was accepted")
        } catch let error as PluginError {
            XCTAssertEqual(error.status, 409)
            XCTAssertEqual(error.code, "queue_full")
        }
        do {
            try await a.queue.checkRoom()
            XCTFail("room in a full queue")
        } catch let error as PluginError {
            XCTAssertEqual(error.code, "queue_full")
        }
    }

    /// Regression: every engine armed its own timer, so each would have dropped the utterance (and counted it).
    func testOnlyTheAcceptingEngineTimesOutWhileItLives() async throws {
        let a = try await engine("A", grace: .milliseconds(300))
        let b = try await engine("B", grace: .milliseconds(300))
        _ = try await a.queue.enqueue(a.utterance("slow", timeout: .milliseconds(100)))
        _ = try await a.queue.enqueue(a.utterance("next"))
        for node in [a, b] { try await waitFor("\(node.id) timed out") { node.hub.lastQueue == "next" } }
        try await Task.sleep(for: .milliseconds(500))  // past B's fallback: it must not fire for the next arming
        for node in [a, b] {
            XCTAssertEqual(node.hub.overlayEvents.filter { $0.hasPrefix("tts.skip") }, ["tts.skip slow timeout"], node.id)
            XCTAssertEqual(node.hub.lastQueue, "next")
        }
        XCTAssertEqual(a.metrics.value("tts_utterances_failed_total,reason=timeout"), 1)
        XCTAssertEqual(b.metrics.value("tts_utterances_failed_total,reason=timeout"), 0)
    }

    func testWhenTheAcceptingEngineDiesTheOthersTimeOutItOnce() async throws {
        let a = try await engine("A", grace: .milliseconds(200))
        let b = try await engine("B", grace: .milliseconds(200))
        let c = try await engine("C", grace: .milliseconds(200))
        _ = try await a.queue.enqueue(a.utterance("orphan", timeout: .milliseconds(300)))
        _ = try await a.queue.enqueue(a.utterance("after", timeout: .seconds(60)))
        broker.kill("A")
        await a.queue.shutdown()
        for node in [b, c] { try await waitFor("\(node.id) moved on") { node.hub.lastQueue == "after" } }
        // B and C both published the timeout; the second named an arming that was over and changed nothing.
        try await Task.sleep(for: .milliseconds(100))
        let counted = b.metrics.value("tts_utterances_failed_total,reason=timeout") + c.metrics.value("tts_utterances_failed_total,reason=timeout")
        XCTAssertEqual(counted, 1)
        for node in [b, c] {
            XCTAssertEqual(node.hub.overlayEvents.filter { $0.hasPrefix("tts.skip") }, ["tts.skip orphan timeout"], node.id)
        }
    }

    func testAnEngineThatStartsLaterGetsTheQueue() async throws {
        let a = try await engine("A")
        _ = try await a.queue.enqueue(a.utterance("u1"))
        _ = try await a.queue.enqueue(a.utterance("u2"))
        try await a.queue.started("u1", by: "conn-1")
        let late = try await engine("D")
        let replay = await late.queue.replayFrames()
        XCTAssertEqual(replay.count, 2)
        let joined = try await parsedQueue(late)
        let original = try await parsedQueue(a)
        XCTAssertEqual(joined, original)
        // It takes part from then on: a finish reported to it advances A too; the arming numbers agree.
        try await late.queue.finished("u1")
        try await waitFor("A advanced") { a.hub.lastQueue == "u2" }
        _ = try await late.queue.enqueue(late.utterance("u3"))
        try await waitFor("A has u3") { a.hub.lastQueue == "u2 u3" }
        let left = try await parsedQueue(a)
        let right = try await parsedQueue(late)
        XCTAssertEqual(left, right)
    }

    /// Regression: an engine whose connection to the store dropped for a while kept a stale queue for good.
    func testAnEngineThatMissedMessagesAsksForTheQueueAgain() async throws {
        let a = try await engine("A")
        let b = try await engine("B")
        _ = try await a.queue.enqueue(a.utterance("u1"))
        try await waitFor("B has u1") { b.hub.lastQueue == "u1" }
        broker.setDeaf("B", true)
        _ = try await a.queue.enqueue(a.utterance("lost"))
        broker.setDeaf("B", false)
        XCTAssertEqual(b.hub.lastQueue, "u1")
        _ = try await a.queue.enqueue(a.utterance("u3"))  // B sees a gap in A's numbers
        try await waitFor("B caught up") { b.hub.lastQueue == "u1 lost u3" }
        XCTAssertTrue(b.hub.overlayEvents.contains("tts.speak lost"), "\(b.hub.overlayEvents)")
    }

    /// Regression: an engine that started while the store was unreachable took "nobody answered" for "alone" and
    /// kept an empty queue for good once the store was back (a first message from another engine looks like a newcomer).
    func testAnEngineThatStartedWithoutTheStoreAsksForTheQueueOnceItIsBack() async throws {
        let a = try await engine("A")
        _ = try await a.queue.enqueue(a.utterance("u1"))
        _ = try await a.queue.enqueue(a.utterance("u2"))
        broker.kill("D")
        let d = try await engine("D")  // its request for the queue failed; it starts empty
        XCTAssertEqual(d.hub.lastQueue, nil)
        broker.revive("D")
        _ = try await a.queue.enqueue(a.utterance("u3"))
        try await waitFor("D has the whole queue") { d.hub.lastQueue == "u1 u2 u3" }
        let left = try await parsedQueue(a)
        let right = try await parsedQueue(d)
        XCTAssertEqual(left, right)
    }

    /// Regression: after a request for the queue that nobody answered, the engine's next message looked like a gap
    /// in its own numbers (its request was never counted), so it asked again with every change, holding each one.
    func testAnUnansweredRequestForTheQueueDoesNotRepeatItself() async throws {
        let a = try await engine("A", replyTimeout: .milliseconds(300))
        _ = try await a.queue.enqueue(a.utterance("u1"))
        broker.setDeaf("A", true)  // its subscription is being re-made: its own change does not come back
        do {
            _ = try await a.queue.enqueue(a.utterance("unheard"))
            XCTFail("answered without hearing the change back")
        } catch let error as PluginError {
            XCTAssertEqual(error.status, 503)
        }
        broker.setDeaf("A", false)
        _ = try await a.queue.enqueue(a.utterance("u3"))  // a gap in its own numbers: it asks, nobody answers
        _ = await a.queue.snapshotFrame()
        let before = broker.published
        for id in ["u4", "u5", "u6"] { _ = try await a.queue.enqueue(a.utterance(id)) }
        XCTAssertEqual(broker.published - before, 3, "every change came with another request for the queue")
        XCTAssertEqual(a.hub.lastQueue, "u1 u3 u4 u5 u6")
    }

    func testMalformedMessagesAreIgnored() async throws {
        let a = try await engine("A")
        _ = try await a.queue.enqueue(a.utterance("u1"))
        let bad: [String] = [
            "not json", "[1]", #"{"v":2,"n":1,"op":"clear"}"#, #"{"v":1,"n":0,"op":"clear"}"#, #"{"v":1,"n":1,"op":"explode"}"#,
            #"{"v":1,"n":2,"op":"finished"}"#, #"{"v":1,"n":3,"op":"finished","id":""}"#,
            #"{"v":1,"n":4,"op":"enqueue","limit":5,"utterance":{"id":"x"}}"#,
            #"{"v":1,"n":5,"op":"sync.state","nonce":"n","replica":{"waiting":"no"}}"#,
            String(repeating: "[", count: 10_000),
        ]
        for text in bad { try broker.publish(SpeechQueue.topic, Array(text.utf8), from: "X") }
        // A bad utterance: every field is checked (here a plan whose voice is not a voice name).
        var wire = UtteranceWire(a.utterance("evil"))
        wire.audioHash = String(repeating: "a", count: 64)
        wire.plan = PlanWire(RenderPlan(voice: "--help", speed: 175, pitch: 50, amplitude: 100, text: "say evil"))
        var message = QueueMessage(sequence: 6, op: .clear)
        message.op = .enqueue
        message.limit = 10
        message.utterance = wire
        try broker.publish(SpeechQueue.topic, try message.encoded(), from: "X")
        // A timeout for an arming that is over changes nothing.
        try broker.publish(SpeechQueue.topic, Array(#"{"v":1,"n":7,"op":"timeout","id":"u1","arm":999}"#.utf8), from: "X")
        _ = try await a.queue.enqueue(a.utterance("u2"))
        XCTAssertEqual(a.hub.lastQueue, "u1 u2")
        XCTAssertEqual(a.metrics.value("ignored"), Int64(bad.count + 1))
    }

    /// The plan of audio another engine rendered is kept, so an overlay here can get the file; an engine's own is not.
    func testOtherEnginesKeepTheRenderPlanOfAudio() async throws {
        let a = try await engine("A")
        let b = try await engine("B")
        let plan = RenderPlan(voice: "en-us", speed: 175, pitch: 50, amplitude: 100, text: "say spoken")
        let hash = String(repeating: "c", count: 64)
        let utterance = Utterance(
            id: "spoken", request: SpeakRequest(text: "say spoken", lang: "en-US", rate: 1, pitch: 1, volume: 1, voice: nil), mode: .server,
            audioHash: hash, audioDuration: .seconds(1), requestedBy: "moderator", queuedAt: Date(), timeout: .seconds(60), origin: "A",
            plan: plan)
        _ = try await a.queue.enqueue(utterance)
        try await waitFor("B has it") { b.hub.lastQueue == "spoken" }
        let onB = await b.queue.plan(forAudio: hash)
        let onA = await a.queue.plan(forAudio: hash)
        XCTAssertEqual(onB, plan)
        XCTAssertNil(onA)
        // It outlives the utterance (a slow overlay may fetch the file after the queue moved on).
        try await a.queue.finished("spoken")
        try await waitFor("B moved on") { b.hub.lastQueue == "-" }
        let later = await b.queue.plan(forAudio: hash)
        XCTAssertEqual(later, plan)
    }

    func testAnUtteranceCrossesTheWireUnchanged() throws {
        let plan = RenderPlan(voice: "en-us", speed: 200, pitch: 40, amplitude: 90, text: "Привет, мир")
        var utterance = Utterance(
            id: "abc", request: SpeakRequest(text: "Привет, мир", lang: "ru-RU", rate: 1.2, pitch: 0.8, volume: 0.9, voice: "Milena"),
            mode: .server, audioHash: String(repeating: "0", count: 64), audioDuration: .milliseconds(1234), requestedBy: "streamer",
            queuedAt: Date(millisecondsSince1970: 1_700_000_000_123), timeout: .seconds(30), origin: "engine-1", plan: plan)
        utterance.state = .speaking
        utterance.startedAt = Date(millisecondsSince1970: 1_700_000_001_000)
        utterance.startedBy = ["engine-1/c1", "engine-2/c7"]
        utterance.arm = 4
        let message = QueueMessage(sequence: 9, op: .enqueue(utterance, limit: 50))
        let (sequence, op) = try QueueMessage.decode(try message.encoded())
        XCTAssertEqual(sequence, 9)
        guard case .enqueue(let back, let limit) = op else { return XCTFail("\(op)") }
        XCTAssertEqual(limit, 50)
        XCTAssertEqual(back.request, utterance.request)
        XCTAssertEqual(back.plan, plan)
        XCTAssertEqual(back.entry.audioURL, utterance.audioURL)
        XCTAssertEqual(back.startedBy, utterance.startedBy)
        XCTAssertEqual(back.startedAt, utterance.startedAt)
        XCTAssertEqual(back.queuedAt, utterance.queuedAt)
        XCTAssertEqual(back.timeout, utterance.timeout)
        XCTAssertEqual(back.audioDuration, utterance.audioDuration)
        XCTAssertEqual([back.origin, back.requestedBy, back.mode.rawValue, back.state.rawValue], ["engine-1", "streamer", "server", "speaking"])
        XCTAssertEqual(back.arm, 4)
    }
}
