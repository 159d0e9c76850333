import PluginAPI
import XCTest

/// The token bucket behind per-socket message rates, on explicit instants (no sleeping).
final class TokenBucketTests: XCTestCase {
    func testABurstThenTheSustainedRate() {
        let start = ContinuousClock.now
        var bucket = TokenBucket(burst: 3, perSecond: 2, now: start)
        XCTAssertEqual((0..<3).map { _ in bucket.take(now: start) }, [nil, nil, nil])
        // Empty: the answer is how long until one token is back.
        XCTAssertEqual(bucket.take(now: start), 0.5)
        XCTAssertEqual(bucket.take(now: start + .milliseconds(250)), 0.25)
        XCTAssertNil(bucket.take(now: start + .milliseconds(500)))
        XCTAssertNotNil(bucket.take(now: start + .milliseconds(500)))
        // Quiet for a long time: never more than the burst.
        let later = start + .seconds(3600)
        XCTAssertEqual((0..<4).map { _ in bucket.take(now: later) == nil }, [true, true, true, false])
    }

    func testAClockGoingBackwardsAddsNoTokens() {
        let start = ContinuousClock.now
        var bucket = TokenBucket(burst: 1, perSecond: 1, now: start)
        XCTAssertNil(bucket.take(now: start))
        XCTAssertNotNil(bucket.take(now: start - .seconds(10)))
        XCTAssertGreaterThanOrEqual(bucket.tokens, 0)
    }

    func testARateOfZeroNeverRefills() {
        let start = ContinuousClock.now
        var bucket = TokenBucket(burst: 1, perSecond: 0, now: start)
        XCTAssertNil(bucket.take(now: start))
        XCTAssertEqual(bucket.take(now: start + .seconds(1000)), .infinity)
    }

    func testDurationHelpers() {
        XCTAssertEqual(Duration.milliseconds(1500).inSeconds, 1.5)
        XCTAssertEqual(Duration.milliseconds(1500).wholeMilliseconds, 1500)
        XCTAssertEqual(Duration.microseconds(2999).wholeMilliseconds, 2)
        XCTAssertEqual(Duration.seconds(-2).wholeMilliseconds, -2000)
    }
}
