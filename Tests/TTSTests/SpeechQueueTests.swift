import Foundation
import PluginAPI
import Synchronization
@testable import TTS
import XCTest

/// Records what the queue broadcasts, by channel.
final class RecordingHub: SocketHub {
    private let frames = Mutex<[(SocketTarget, String)]>([])
    func send(_ text: String, to target: SocketTarget) -> Int {
        frames.withLock { $0.append((target, text)) }
        return 1
    }
    func connectionCount(_ channel: SocketChannel) -> Int { 1 }

    /// The `type` and `id` of every frame sent to the overlays, e.g. `tts.speak u1`.
    var overlayEvents: [String] {
        frames.withLock { $0 }.filter { $0.0 == .channel(.overlay) }.compactMap { _, text in
            guard let value = try? JSON.decode(JSONValue.self, from: Array(text.utf8)), let type = value["type"]?.stringValue else { return nil }
            return [type, value["id"]?.stringValue, value["reason"]?.stringValue].compactMap { $0 }.joined(separator: " ")
        }
    }

    /// The last `tts.queue` frame sent to the moderators: the current id (or "-") and the waiting ids.
    var lastQueue: String? {
        guard let text = frames.withLock({ $0 }).last(where: { $0.0 == .channel(.moderator) })?.1,
            let value = try? JSON.decode(JSONValue.self, from: Array(text.utf8))
        else { return nil }
        let current = value["current"]?["id"]?.stringValue ?? "-"
        guard case .array(let waiting)? = value["queue"] else { return nil }
        return ([current] + waiting.compactMap { $0["id"]?.stringValue }).joined(separator: " ")
    }
}

final class Counter: MetricCounter, MetricGauge, MetricTimer {
    let total = Atomic<Int64>(0)
    func increment(by amount: Int64) { total.add(amount, ordering: .relaxed) }
    func set(_ value: Double) {}
    func record(_ duration: Duration) {}
}

final class Metrics: PluginMetrics {
    let counters = Mutex<[String: Counter]>([:])
    func counter(_ name: String, labels: [(String, String)]) -> any MetricCounter { instrument(name, labels) }
    func gauge(_ name: String, labels: [(String, String)]) -> any MetricGauge { instrument(name, labels) }
    func timer(_ name: String, labels: [(String, String)]) -> any MetricTimer { instrument(name, labels) }
    private func instrument(_ name: String, _ labels: [(String, String)]) -> Counter {
        let key = ([name] + labels.map { "\($0.0)=\($0.1)" }).joined(separator: ",")
        return counters.withLock { all in
            if let existing = all[key] { return existing }
            all[key] = Counter()
            return all[key]!
        }
    }
    func value(_ key: String) -> Int64 { counters.withLock { $0[key]?.total.load(ordering: .relaxed) ?? -1 } }
}

struct NoLogger: PluginLogger {
    func log(_ level: LogLevel, _ message: String, metadata: [String: String]) {}
}

/// The utterance queue without espeak-ng or sockets: order, limits, overlay reports, skip/clear and timeouts.
final class SpeechQueueTests: XCTestCase {
    let hub = RecordingHub()
    let metrics = Metrics()

    /// One engine alone on its bus (the embedded backend).
    func queue(max: Int = 10) async throws -> SpeechQueue {
        let queue = SpeechQueue(
            sockets: hub, logger: NoLogger(), metrics: TTSMetrics(metrics), maxLength: max, bus: FakeBroker().bus("solo"),
            timing: .init(grace: .seconds(5), syncWait: .milliseconds(20), replyTimeout: .seconds(5)))
        try await queue.start()
        return queue
    }

    func utterance(_ id: String, timeout: Duration = .seconds(60)) -> Utterance {
        Utterance(
            id: id, request: SpeakRequest(text: "say \(id)", lang: "en-US", rate: 1, pitch: 1, volume: 1, voice: nil), mode: .browser,
            audioHash: nil, audioDuration: nil, requestedBy: "moderator", queuedAt: Date(), timeout: timeout, origin: "solo")
    }

    func testUtterancesAreSaidInOrder() async throws {
        let queue = try await queue()
        let a = try await queue.enqueue(utterance("a"))
        let b = try await queue.enqueue(utterance("b"))
        let c = try await queue.enqueue(utterance("c"))
        XCTAssertEqual([a, b, c], [0, 1, 2])
        XCTAssertEqual(hub.overlayEvents, ["tts.speak a", "tts.speak b", "tts.speak c"])
        XCTAssertEqual(hub.lastQueue, "a b c")
        try await queue.finished("a")
        XCTAssertEqual(hub.lastQueue, "b c")
        try await queue.finished("c")  // an overlay may finish one that waits (it was said elsewhere)
        XCTAssertEqual(hub.lastQueue, "b")
        try await queue.finished("zzz")  // unknown ids change nothing
        XCTAssertEqual(hub.lastQueue, "b")
        try await queue.finished("b")
        XCTAssertEqual(hub.lastQueue, "-")
        let count = await queue.count
        XCTAssertEqual(count, 0)
        XCTAssertEqual(metrics.value("tts_utterances_spoken_total"), 3)
        XCTAssertEqual(metrics.value("tts_utterances_queued_total"), 3)
    }

    func testTheQueueIsBounded() async throws {
        let queue = try await queue(max: 2)
        _ = try await queue.enqueue(utterance("a"))
        _ = try await queue.enqueue(utterance("b"))
        do {
            _ = try await queue.enqueue(utterance("c"))
            XCTFail("a third utterance was accepted")
        } catch let error as PluginError {
            XCTAssertEqual(error.status, 409)
            XCTAssertEqual(error.code, "queue_full")
            XCTAssertEqual(error.details["limit"], .number(2))
        }
        XCTAssertEqual(hub.overlayEvents, ["tts.speak a", "tts.speak b"])
        try await queue.finished("a")
        let position = try await queue.enqueue(utterance("c"))
        XCTAssertEqual(position, 1)
    }

    func testAnOverlayStartingALaterUtteranceDropsThoseAhead() async throws {
        let queue = try await queue()
        for id in ["a", "b", "c", "d"] { _ = try await queue.enqueue(utterance(id)) }
        try await queue.started("c", by: "overlay-1")
        XCTAssertEqual(hub.lastQueue, "c d")
        let replay = await queue.replayFrames()
        XCTAssertEqual(replay.count, 2)
        XCTAssertTrue(replay[0].contains(#""id":"c""#))
    }

    func testAFailureEndsTheUtteranceOnlyWhenNoOverlayIsStillSayingIt() async throws {
        let queue = try await queue()
        _ = try await queue.enqueue(utterance("a"))
        _ = try await queue.enqueue(utterance("b"))
        try await queue.started("a", by: "overlay-1")
        try await queue.started("a", by: "overlay-2")
        try await queue.failed("a", reason: "no voice", by: "overlay-1")
        XCTAssertEqual(hub.lastQueue, "a b")
        try await queue.failed("a", reason: "no voice", by: "overlay-2")
        XCTAssertEqual(hub.lastQueue, "b")
        try await queue.failed("b", reason: nil, by: "overlay-1")  // never started by anyone: it goes at once
        XCTAssertEqual(hub.lastQueue, "-")
        XCTAssertEqual(metrics.value("tts_utterances_failed_total,reason=overlay"), 2)
    }

    func testSkipAndClear() async throws {
        let queue = try await queue()
        for id in ["a", "b", "c"] { _ = try await queue.enqueue(utterance(id)) }
        let skippedCurrent = try await queue.skip(nil)
        XCTAssertEqual(skippedCurrent, "a")
        let skippedWaiting = try await queue.skip("c")
        XCTAssertEqual(skippedWaiting, "c")
        XCTAssertEqual(hub.lastQueue, "b")
        do {
            _ = try await queue.skip("nope")
            XCTFail("skipped an unknown id")
        } catch let error as PluginError {
            XCTAssertEqual(error.status, 404)
        }
        _ = try await queue.enqueue(utterance("d"))
        let dropped = try await queue.clear()
        XCTAssertEqual(dropped, 2)
        XCTAssertEqual(hub.lastQueue, "-")
        do {
            _ = try await queue.skip(nil)
            XCTFail("skipped with nothing queued")
        } catch let error as PluginError {
            XCTAssertEqual(error.status, 404)
        }
        XCTAssertEqual(hub.overlayEvents.filter { !$0.hasPrefix("tts.speak") }, ["tts.skip a", "tts.skip c", "tts.clear"])
        XCTAssertEqual(metrics.value("tts_utterances_skipped_total"), 4)
    }

    func testAnUtteranceThatNoOverlayFinishesTimesOut() async throws {
        let queue = try await queue()
        _ = try await queue.enqueue(utterance("slow", timeout: .milliseconds(100)))
        _ = try await queue.enqueue(utterance("next", timeout: .seconds(60)))
        try await waitFor { self.hub.lastQueue == "next" }
        XCTAssertTrue(hub.overlayEvents.contains("tts.skip slow timeout"), "\(hub.overlayEvents)")
        XCTAssertEqual(metrics.value("tts_utterances_failed_total,reason=timeout"), 1)
        await queue.shutdown()
    }

    /// The timeout counts from the start of speech, and a finished utterance's timer does not fire for the next one.
    func testStartingRearmsTheTimerAndFinishingDisarmsIt() async throws {
        let queue = try await queue()
        _ = try await queue.enqueue(utterance("a", timeout: .milliseconds(1500)))
        _ = try await queue.enqueue(utterance("b", timeout: .milliseconds(100)))
        try await Task.sleep(for: .milliseconds(900))
        try await queue.started("a", by: "overlay-1")  // 0.9 s in: the 1.5 s start again
        try await Task.sleep(for: .milliseconds(900))
        XCTAssertEqual(hub.lastQueue, "a b", "timed out 1.5 s after it was queued although speech started 0.9 s ago")
        try await queue.finished("a")
        try await waitFor { self.hub.lastQueue == "-" }  // b times out after its own 100 ms
        XCTAssertEqual(hub.overlayEvents.filter { $0.hasPrefix("tts.skip") }, ["tts.skip b timeout"])
    }

    func waitFor(_ condition: @escaping () -> Bool, timeout: Duration = .seconds(3)) async throws {
        let deadline = ContinuousClock.now + timeout
        while !condition() {
            guard ContinuousClock.now < deadline else { return XCTFail("condition not met in \(timeout)") }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    func testOverlayVoices() {
        let voices = OverlayVoices()
        voices.report(["en-gb", "ru-ru"], from: "c1")
        XCTAssertTrue(voices.hasVoice(for: "en-US"))
        XCTAssertTrue(voices.hasVoice(for: "ru"))
        XCTAssertFalse(voices.hasVoice(for: "de-DE"))
        voices.remove("c1")
        XCTAssertFalse(voices.hasVoice(for: "en-US"))
        for index in 0..<(OverlayVoices.maxEntries + 5) { voices.report(["de"], from: String(format: "c%04d", index)) }
        XCTAssertEqual(voices.live().count, OverlayVoices.maxEntries)
    }
}
