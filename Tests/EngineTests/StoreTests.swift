import Engine
import Foundation
import Logging
@_spi(Engine) import PluginAPI
import Synchronization
import XCTest

/// The store contract. Every test runs on the embedded store and on a real Redis server
/// (`ONIONRP_TEST_REDIS_URL`, set by `make test`, which starts `redis-server` on a free port).
final class StoreTests: XCTestCase {
    func backends() async throws -> [any EngineStore] {
        var stores: [any EngineStore] = [EmbeddedStore()]
        if let url = ProcessInfo.processInfo.environment["ONIONRP_TEST_REDIS_URL"], !url.isEmpty {
            let redis = try RedisStore(url: url, logger: Logger(label: "test"))
            try await redis.ping()
            stores.append(redis)
        } else if ProcessInfo.processInfo.environment["CI"] != nil {
            XCTFail("ONIONRP_TEST_REDIS_URL is not set: the Redis half of the store contract did not run")
        }
        return stores
    }

    /// A fresh key prefix per test, so runs on one Redis never see each other.
    let prefix = "test:\(UUID().uuidString):"

    func testTakeIsAtomicUnderConcurrency() async throws {
        for store in try await backends() {
            let key = prefix + "k"
            try await store.set(key, Array("v".utf8), ttl: .seconds(60))
            let winners = await withTaskGroup(of: Bool.self) { group in
                for _ in 0..<200 { group.addTask { (try? await store.take(key)) != nil } }
                var count = 0
                for await won in group where won { count += 1 }
                return count
            }
            XCTAssertEqual(winners, 1, store.backendName)
        }
    }

    func testTTLExpiresAndExpireExtends() async throws {
        for store in try await backends() {
            try await store.set(prefix + "a", [1], ttl: .milliseconds(150))
            try await store.set(prefix + "b", [2], ttl: .milliseconds(150))
            let extended = try await store.expire(prefix + "b", ttl: .seconds(10))
            XCTAssertTrue(extended, store.backendName)
            try await Task.sleep(for: .milliseconds(300))
            let a = try await store.get(prefix + "a")
            let b = try await store.get(prefix + "b")
            XCTAssertNil(a, store.backendName)
            XCTAssertEqual(b, [2], store.backendName)
            let expiredAgain = try await store.expire(prefix + "a", ttl: .seconds(1))
            XCTAssertFalse(expiredAgain, store.backendName)
        }
    }

    func testSetOnlyIfAbsentIncrementKeysDeleteBinarySafe() async throws {
        for store in try await backends() {
            let name = store.backendName
            let first = try await store.set(prefix + "x:1", [1], ttl: nil, onlyIfAbsent: true)
            let second = try await store.set(prefix + "x:1", [2], ttl: nil, onlyIfAbsent: true)
            XCTAssertTrue(first, name)
            XCTAssertFalse(second, name)
            let five = try await store.increment(prefix + "x:n", by: 5, ttl: .seconds(30))
            let three = try await store.increment(prefix + "x:n", by: -2, ttl: .seconds(30))
            XCTAssertEqual([five, three], [5, 3], name)
            let keys = try await store.keys(prefix: prefix + "x:").sorted()
            XCTAssertEqual(keys, [prefix + "x:1", prefix + "x:n"], name)
            // Glob characters in a prefix are literal.
            let none = try await store.keys(prefix: prefix + "*")
            XCTAssertEqual(none, [], name)
            let deleted = try await store.delete(prefix + "x:1")
            let deletedAgain = try await store.delete(prefix + "x:1")
            XCTAssertTrue(deleted, name)
            XCTAssertFalse(deletedAgain, name)
            // Values are bytes: zeros, CR/LF and invalid UTF-8 survive.
            let binary: [UInt8] = [0, 13, 10, 255, 36, 0]
            try await store.set(prefix + "bin \r\n key", binary)
            let back = try await store.get(prefix + "bin \r\n key")
            XCTAssertEqual(back, binary, name)
            try await store.set(prefix + "s", Array("text".utf8))
            do {
                _ = try await store.increment(prefix + "s", by: 1, ttl: nil)
                XCTFail("incrementing text must fail on \(name)")
            } catch is StoreError {}
        }
    }

    func testIncrementSetsTTLOnlyWhenCreating() async throws {
        for store in try await backends() {
            _ = try await store.increment(prefix + "w", by: 1, ttl: .milliseconds(200))
            _ = try await store.increment(prefix + "w", by: 1, ttl: .seconds(60))
            try await Task.sleep(for: .milliseconds(350))
            let value = try await store.get(prefix + "w")
            XCTAssertNil(value, "the window's TTL came from the first increment (\(store.backendName))")
        }
    }

    /// The stated value format: strings are UTF-8, counters decimal text, so the typed helpers and increment agree.
    func testTypedHelpersShareIncrementsFormat() async throws {
        for store in try await backends() {
            let name = store.backendName
            _ = try await store.increment(prefix + "n", by: 41, ttl: nil)
            let counted = try await store.getInteger(prefix + "n")
            XCTAssertEqual(counted, 41, name)
            try await store.setInteger(prefix + "n", -7)
            let next = try await store.increment(prefix + "n", by: 2, ttl: nil)
            XCTAssertEqual(next, -5, name)
            try await store.setString(prefix + "s", "grüße ✓")
            let text = try await store.getString(prefix + "s")
            XCTAssertEqual(text, "grüße ✓", name)
            let raw = try await store.get(prefix + "s")
            XCTAssertEqual(raw, Array("grüße ✓".utf8), name)
            do {
                _ = try await store.getInteger(prefix + "s")
                XCTFail("a string read as an integer (\(name))")
            } catch StoreError.protocolError(let why) {
                XCTAssertTrue(why.contains("is not an integer"), why)
            }
            let missing = try await store.getInteger(prefix + "absent")
            XCTAssertNil(missing, name)
        }
    }

    func testTokenBucketRefusesPastBurstWithRetryAfter() async throws {
        for store in try await backends() {
            for _ in 0..<3 {
                let decision = try await store.takeToken(prefix + "r", burst: 3, perMinute: 6)
                XCTAssertTrue(decision.allowed, store.backendName)
            }
            let refused = try await store.takeToken(prefix + "r", burst: 3, perMinute: 6)
            XCTAssertFalse(refused.allowed, store.backendName)
            XCTAssertEqual(refused.retryAfterSeconds, 10, store.backendName)
        }
    }

    func testPublishSubscribe() async throws {
        for store in try await backends() {
            let received = Mutex<[[UInt8]]>([])
            let subscription = try await store.subscribe(prefix + "chan") { message in received.withLock { $0.append(message) } }
            let receivers = try await store.publish(prefix + "chan", [1, 2, 3])
            XCTAssertEqual(receivers, 1, store.backendName)
            for _ in 0..<100 where received.withLock({ $0.isEmpty }) { try await Task.sleep(for: .milliseconds(10)) }
            XCTAssertEqual(received.withLock { $0 }, [[1, 2, 3]], store.backendName)
            subscription.cancel()
            try await Task.sleep(for: .milliseconds(100))
            _ = try await store.publish(prefix + "chan", [4])
            try await Task.sleep(for: .milliseconds(100))
            XCTAssertEqual(received.withLock { $0 }.count, 1, "no messages after cancel (\(store.backendName))")
        }
    }

    /// Snapshot writes that meet (the periodic flush, close() from two places) never let an older snapshot land last,
    /// nor trip over each other's temporary file: the last value written is the one read back.
    func testEmbeddedSnapshotWritesThatMeetKeepTheNewestValue() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("store-race-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: file) }
        do {
            let store = try EmbeddedStore(snapshot: file, logger: Logger(label: "t"))
            // Writers and flushes interleaved: a snapshot taken before a set and written after a later snapshot would
            // lose that set.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<8 {
                    group.addTask {
                        for round in 0..<40 {
                            try await store.setInteger("t\(task)-\(round)", Int64(round))
                            await store.close()
                        }
                    }
                }
                try await group.waitForAll()
            }
            await store.close()
        }
        let reopened = try EmbeddedStore(snapshot: file, logger: Logger(label: "t"))
        for task in 0..<8 {
            for round in 0..<40 {
                let value = try await reopened.getInteger("t\(task)-\(round)")
                XCTAssertEqual(value, Int64(round), "t\(task)-\(round) was lost")
            }
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: file.deletingLastPathComponent().path)
            .filter { $0.hasPrefix(file.lastPathComponent + ".tmp-") }
        XCTAssertEqual(leftovers, [], "temporary files left behind")
    }

    func testEmbeddedSnapshotSurvivesReopenWithTTLs() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("store-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: file) }
        do {
            let store = try EmbeddedStore(snapshot: file, logger: Logger(label: "t"))
            try await store.set("keep", [1, 2, 3], ttl: .seconds(60))
            try await store.set("forever", [0, 255])
            try await store.set("short", [9], ttl: .milliseconds(200))
            _ = try await store.take("keep-not")
            await store.close()
        }
        try await Task.sleep(for: .milliseconds(300))
        let reopened = try EmbeddedStore(snapshot: file, logger: Logger(label: "t"))
        let keep = try await reopened.get("keep")
        let forever = try await reopened.get("forever")
        let short = try await reopened.get("short")
        XCTAssertEqual(keep, [1, 2, 3])
        XCTAssertEqual(forever, [0, 255])
        XCTAssertNil(short, "expired while the engine was down")
        // A corrupt snapshot is moved aside, not fatal.
        await reopened.close()
        try Data("{not json".utf8).write(to: file)
        let fresh = try EmbeddedStore(snapshot: file, logger: Logger(label: "t"))
        let none = try await fresh.get("keep")
        XCTAssertNil(none)
        await fresh.close()
        let siblings = try FileManager.default.contentsOfDirectory(atPath: file.deletingLastPathComponent().path)
        let aside = siblings.filter { $0.hasPrefix(file.lastPathComponent + ".corrupt-") }
        XCTAssertEqual(aside.count, 1)
        for name in aside { try? FileManager.default.removeItem(at: file.deletingLastPathComponent().appendingPathComponent(name)) }
    }

    func testRedisURLParsingAndUnreachableServerFailsFast() async throws {
        XCTAssertThrowsError(try RedisStore(url: "http://x", logger: Logger(label: "t")))
        XCTAssertThrowsError(try RedisStore(url: "redis://host/notanumber", logger: Logger(label: "t")))
        let unix = try RedisStore(url: "unix:///tmp/nowhere.sock?db=2", logger: Logger(label: "t"))
        XCTAssertEqual(unix.address, "unix:///tmp/nowhere.sock?db=2")
        let down = try RedisStore(url: "redis://:secret@127.0.0.1:1/3", logger: Logger(label: "t"))
        XCTAssertEqual(down.address, "redis://127.0.0.1:1/3", "the password never reaches logs")
        let started = ContinuousClock.now
        do {
            try await down.ping()
            XCTFail("nothing listens on port 1")
        } catch StoreError.unavailable {}
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(1))
    }
}
