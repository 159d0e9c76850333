import PluginAPI
import XCTest

final class OutboundQueueTests: XCTestCase {
    func drain(_ queue: OutboundQueue<String>) async -> [String] {
        queue.close(code: 1000, reason: "done")
        var frames: [String] = []
        while case .frame(let frame) = await queue.next() { frames.append(frame) }
        return frames
    }

    func testAKeyedFrameReplacesTheWaitingOneByDefault() async {
        let queue = OutboundQueue<String>(limit: 10)
        XCTAssertEqual(queue.enqueue("a", key: nil), .queued)
        XCTAssertEqual(queue.enqueue("s1", key: "scene"), .queued)
        XCTAssertEqual(queue.enqueue("s2", key: "scene"), .coalesced)
        let frames = await drain(queue)
        XCTAssertEqual(frames, ["a", "s2"])
    }

    func testABurstIsDeliveredWholeUpToTheBacklogThenTheNewestIsReplacedByASnapshot() async {
        let queue = OutboundQueue<String>(limit: 10)
        for version in 1...3 {
            let outcome = queue.enqueue(key: "scene", coalesceAfter: 3) { replacing in replacing ? "full\(version)" : "patch\(version)" }
            XCTAssertEqual(outcome, .queued)
        }
        // The fourth finds three waiting: it replaces the newest, and what replaces must not be a delta.
        XCTAssertEqual(queue.enqueue(key: "scene", coalesceAfter: 3) { $0 ? "full4" : "patch4" }, .coalesced)
        XCTAssertEqual(queue.enqueue("other", key: nil), .queued)
        let frames = await drain(queue)
        XCTAssertEqual(frames, ["patch1", "patch2", "full4", "other"])
    }

    func testOverflowStillDropsAStuckPeer() async {
        let queue = OutboundQueue<String>(limit: 2)
        XCTAssertEqual(queue.enqueue(key: "scene", coalesceAfter: 5) { _ in "1" }, .queued)
        XCTAssertEqual(queue.enqueue(key: "scene", coalesceAfter: 5) { _ in "2" }, .queued)
        XCTAssertEqual(queue.enqueue(key: "scene", coalesceAfter: 5) { _ in "3" }, .overflowed)
        XCTAssertTrue(queue.isClosing)
    }
}
