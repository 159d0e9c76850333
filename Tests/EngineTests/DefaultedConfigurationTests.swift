@testable import Engine
@_spi(Engine) import PluginAPI
import Yams
import XCTest

/// A plugin's Configuration as a plain struct with defaults: snake_case keys from property names, keys left out
/// (also inside nested structs) keep their declared values, every bad value is reported with its line, validate()
/// problems point at their key, enums name what they accept, `*_bytes` keys take units.
final class DefaultedConfigurationTests: XCTestCase {
    struct Span: Decodable, Sendable, Equatable {
        var low: Double
        var high: Double
    }

    enum Mode: String, Decodable, Sendable, CaseIterable { case fast, careful, off }

    struct Sample: DefaultedConfiguration {
        var maxQueueLength = 50
        var moderatorKeyTTLSeconds = 600
        var stunURLs: [String] = ["stun:a"]
        var redisURL = "redis://localhost"
        var mode = Mode.careful
        var span = Span(low: 1, high: 4)
        var cacheMaxBytes = 1 << 20
        var label: String? = "default label"
        var voices: [String: String] = [:]

        func validate() throws {
            guard span.low <= span.high else { throw ConfigProblem("span.low", "must not be above span.high") }
        }
    }

    func decode(_ yaml: String) throws -> Sample {
        let node = try ConfigLoader.convert(try XCTUnwrap(try Yams.compose(yaml: yaml)))
        return try ConfigDecoder.decodeReportingAll(Sample.self, from: node)
    }

    func problems(_ yaml: String) -> [ConfigError] {
        do {
            _ = try decode(yaml)
            XCTFail("accepted: \(yaml)")
        } catch let list as ConfigErrorList {
            return list.errors
        } catch {
            XCTFail("\(error)")
        }
        return []
    }

    func testKeysAreSnakeCaseAndLeftOutKeysKeepTheirValues() throws {
        let sample = try decode(
            """
            max_queue_length: 7
            moderator_key_ttl_seconds: 30
            stun_urls: [stun:b, stun:c]
            span: {high: 9}
            voices: {pt-BR: pt-br}
            """)
        XCTAssertEqual(sample.maxQueueLength, 7)
        XCTAssertEqual(sample.moderatorKeyTTLSeconds, 30)
        XCTAssertEqual(sample.stunURLs, ["stun:b", "stun:c"])
        XCTAssertEqual(sample.redisURL, "redis://localhost")
        XCTAssertEqual(sample.span, Span(low: 1, high: 9), "a nested struct keeps the keys the file leaves out")
        XCTAssertEqual(sample.label, "default label")
        XCTAssertEqual(sample.voices, ["pt-BR": "pt-br"], "dictionary keys are not converted")
        XCTAssertEqual(try decode("{}").maxQueueLength, 50)
    }

    func testEveryBadValueIsReportedWithItsLine() {
        let found = problems(
            """
            max_queue_length: lots
            mode: sometimes
            maxQueueLength: 3
            cache_max_bytes: 12 parsecs
            """)
        XCTAssertEqual(found.map(\.line), [1, 2, 3, 4], "\(found)")
        XCTAssertEqual(found[0].path, "max_queue_length")
        XCTAssertTrue(found[0].message.contains("expected a whole number, found 'lots'"), found[0].message)
        XCTAssertEqual(found[1].message, "expected 'fast', 'careful' or 'off', found 'sometimes'")
        XCTAssertTrue(found[2].message.contains("unknown key 'maxQueueLength'"), "camelCase is not a key: \(found[2].message)")
        XCTAssertTrue(found[3].message.contains("expected a size such as"), found[3].message)
    }

    func testValidateProblemsPointAtTheirKey() {
        let found = problems(
            """
            max_queue_length: 3
            span:
              low: 8
              high: 2
            """)
        XCTAssertEqual(found.count, 1)
        XCTAssertEqual(found.first?.path, "span.low")
        XCTAssertEqual(found.first?.line, 3)
        XCTAssertEqual(found.first?.message, "must not be above span.high")
    }

    func testSizesTakeUnits() throws {
        XCTAssertEqual(try decode("cache_max_bytes: 25MiB").cacheMaxBytes, 25 << 20)
        XCTAssertEqual(try decode("cache_max_bytes: 1.5 GB").cacheMaxBytes, 1_500_000_000)
        XCTAssertEqual(try decode("cache_max_bytes: 1_024").cacheMaxBytes, 1024)
        XCTAssertEqual(ConfigDecoder.byteCount("99999999999TiB"), nil)
        XCTAssertEqual(configKeyName("moderatorKeyTTLSeconds"), "moderator_key_ttl_seconds")
        XCTAssertEqual(configKeyName("turnURLs"), "turn_urls")
        XCTAssertEqual(configKeyName("redisURL"), "redis_url")
        XCTAssertEqual(configKeyName("already_snake"), "already_snake")
    }
}
