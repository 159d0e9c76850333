import Engine
import PluginAPI
import XCTest

/// The embedded store's contract (the Redis backend must pass the same).
final class StoreTests: XCTestCase {
    func testTakeIsAtomicUnderConcurrency() async throws {
        let store = EmbeddedStore()
        try await store.set("k", Array("v".utf8), ttl: .seconds(60))
        let winners = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<200 { group.addTask { (try? await store.take("k")) != nil } }
            var count = 0
            for await won in group where won { count += 1 }
            return count
        }
        XCTAssertEqual(winners, 1)
    }

    func testTTLExpiresAndExpireExtends() async throws {
        let store = EmbeddedStore()
        try await store.set("a", [1], ttl: .milliseconds(150))
        try await store.set("b", [2], ttl: .milliseconds(150))
        let extended = try await store.expire("b", ttl: .seconds(10))
        XCTAssertTrue(extended)
        try await Task.sleep(for: .milliseconds(250))
        let a = try await store.get("a")
        let b = try await store.get("b")
        XCTAssertNil(a)
        XCTAssertEqual(b, [2])
        let expiredAgain = try await store.expire("a", ttl: .seconds(1))
        XCTAssertFalse(expiredAgain)
    }

    func testSetOnlyIfAbsentIncrementKeysDelete() async throws {
        let store = EmbeddedStore()
        let first = try await store.set("x:1", [1], ttl: nil, onlyIfAbsent: true)
        let second = try await store.set("x:1", [2], ttl: nil, onlyIfAbsent: true)
        XCTAssertTrue(first)
        XCTAssertFalse(second)
        let five = try await store.increment("x:n", by: 5, ttl: nil)
        let three = try await store.increment("x:n", by: -2, ttl: nil)
        XCTAssertEqual([five, three], [5, 3])
        let keys = try await store.keys(prefix: "x:").sorted()
        XCTAssertEqual(keys, ["x:1", "x:n"])
        let deleted = try await store.delete("x:1")
        let deletedAgain = try await store.delete("x:1")
        XCTAssertTrue(deleted)
        XCTAssertFalse(deletedAgain)
        do {
            _ = try await store.increment("x:1x", by: 1, ttl: nil)
            try await store.set("s", Array("text".utf8))
            _ = try await store.increment("s", by: 1, ttl: nil)
            XCTFail("incrementing text must fail")
        } catch is StoreError {}
    }

    func testTokenBucketRefusesPastBurstWithRetryAfter() async throws {
        let store = EmbeddedStore()
        for _ in 0..<3 {
            let decision = try await store.takeToken("r", burst: 3, perMinute: 6)
            XCTAssertTrue(decision.allowed)
        }
        let refused = try await store.takeToken("r", burst: 3, perMinute: 6)
        XCTAssertFalse(refused.allowed)
        XCTAssertEqual(refused.retryAfterSeconds, 10)
    }
}
