import Engine
@_spi(Engine) import PluginAPI
import XCTest

/// overlay.yaml parsing: every kind of mistake is reported with its line and key.
final class ConfigTests: XCTestCase {
    func problems(_ yaml: String, env: [String: String] = [:]) -> [ConfigError] {
        do {
            _ = try ConfigLoader.parse(yaml: yaml, file: "test.yaml", environment: env)
            XCTFail("expected the configuration to be refused")
            return []
        } catch let error as ConfigProblems {
            return error.problems
        } catch {
            XCTFail("unexpected error \(error)")
            return []
        }
    }

    func testShippedConfigurationIsValid() throws {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../config/overlay.yaml").path
        let config = try ConfigLoader.load(path: path, environment: [:])
        XCTAssertEqual(config.server.port, 8080)
        XCTAssertEqual(config.plugins.map(\.name).first, "moderator-keys")
        XCTAssertEqual(config.limits.rate["moderator-keys.consume"], RateLimitConfig(burst: 10, perMinute: 20))
    }

    func testUnknownKeyNamesLineAndKey() {
        let found = problems(
            """
            server:
              host: 127.0.0.1
              prot: 8080
            plugins: []
            """)
        XCTAssertEqual(found.count, 1)
        XCTAssertEqual(found.first?.line, 3)
        XCTAssertEqual(found.first?.path, "server.prot")
        XCTAssertTrue(found.first?.message.contains("unknown key 'prot'") ?? false, "\(found)")
    }

    func testUnknownTopLevelSection() {
        let found = problems(
            """
            plugins: []
            sever:
              port: 1
            """)
        XCTAssertEqual(found.map(\.line), [2])
        XCTAssertEqual(found.first?.path, "sever")
    }

    func testWrongTypeNamesLine() {
        let found = problems(
            """
            server:
              port: eighty
            security:
              strict_origin: maybe
            plugins: []
            """)
        XCTAssertEqual(found.map(\.line), [2, 4])
        XCTAssertEqual(found.map(\.path), ["server.port", "security.strict_origin"])
        XCTAssertTrue(found[0].message.contains("whole number"), found[0].message)
        XCTAssertTrue(found[1].message.contains("true or false"), found[1].message)
    }

    func testBadValueIsRefused() {
        let found = problems(
            """
            server:
              port: 70000
            storage:
              backend: postgres
            plugins: []
            """)
        XCTAssertEqual(found.map(\.line), [2, 4])
        XCTAssertEqual(found.map(\.path), ["server.port", "storage.backend"])
    }

    func testMissingPluginsSection() {
        let found = problems(
            """
            server:
              port: 8080
            """)
        XCTAssertEqual(found.count, 1)
        XCTAssertEqual(found.first?.path, "plugins")
        XCTAssertEqual(found.first?.line, 1)
        XCTAssertTrue(found.first?.message.contains("missing required section 'plugins'") ?? false)
    }

    func testPluginEntryWithoutNameAndWithUnknownKey() {
        let found = problems(
            """
            plugins:
              - path: libx.so
              - name: ok
                enabeld: false
            """)
        XCTAssertEqual(found.map(\.line), [2, 4])
        XCTAssertEqual(found.map(\.path), ["plugins[0].name", "plugins[1].enabeld"])
        XCTAssertTrue(found[0].message.contains("missing required key 'name'"), found[0].message)
    }

    func testBadYAMLHasLine() {
        let found = problems(
            """
            server:
              host: "unterminated
            plugins: []
            """)
        XCTAssertEqual(found.count, 1)
        XCTAssertTrue(found[0].message.hasPrefix("bad YAML"), found[0].message)
        XCTAssertGreaterThanOrEqual(found[0].line, 2)
    }

    func testDuplicatePluginAndAllProblemsListed() {
        let found = problems(
            """
            server:
              port: -1
            plugins:
              - name: a
              - name: a
            """)
        XCTAssertEqual(found.map(\.line), [2, 5])
    }

    func testEnvironmentOverridesFile() throws {
        let config = try ConfigLoader.parse(
            yaml: "server:\n  port: 1\nplugins: []\n", file: "t.yaml",
            environment: [
                "PORT": "9999", "HOST": "0.0.0.0", "STREAMER_API_TOKEN": "s3cret", "MODERATOR_KEY_TTL_SECONDS": "5",
                "MODERATOR_SESSION_TTL_SECONDS": "7", "ENABLE_STRICT_ORIGIN": "true", "ALLOWED_ORIGINS": "http://a.test, https://b.test",
                "DATA_DIR": "/tmp/d", "UPLOADS_DIR": "/tmp/u", "PLUGINS_DIR": "/tmp/p",
            ])
        XCTAssertEqual(config.server.port, 9999)
        XCTAssertEqual(config.server.host, "0.0.0.0")
        XCTAssertEqual(config.security.streamerToken, "s3cret")
        XCTAssertEqual(config.sessions.moderatorKeyTTLSeconds, 5)
        XCTAssertEqual(config.sessions.moderatorSessionTTLSeconds, 7)
        XCTAssertTrue(config.security.strictOrigin)
        XCTAssertEqual(config.security.allowedOrigins, ["http://a.test", "https://b.test"])
        XCTAssertEqual([config.server.dataDir, config.server.uploadsDir, config.server.pluginsDir], ["/tmp/d", "/tmp/u", "/tmp/p"])
    }

    func testBadEnvironmentValueIsNamed() {
        let found = problems("plugins: []\n", env: ["PORT": "http"])
        XCTAssertEqual(found.first?.path, "env PORT")
    }

    /// A plugin's own section decodes strictly too, with the line of the offending key.
    func testPluginSectionDecoderRefusesUnknownAndWrongKeys() throws {
        struct Section: Decodable {
            var greeting: String
            var count: Int?
        }
        let config = try ConfigLoader.parse(
            yaml: """
                plugins:
                  - name: hello
                    config:
                      greeting: hi
                      cuont: 3
                """, file: "t.yaml", environment: [:])
        let node = try XCTUnwrap(config.plugins.first?.config)
        XCTAssertThrowsError(try ConfigDecoder.decode(Section.self, from: node)) { error in
            let problem = error as? ConfigError
            XCTAssertEqual(problem?.line, 5)
            XCTAssertEqual(problem?.path, "cuont")
        }
        let wrong = try ConfigLoader.parse(yaml: "plugins:\n  - name: h\n    config:\n      greeting: [1]\n", file: "t", environment: [:])
        XCTAssertThrowsError(try ConfigDecoder.decode(Section.self, from: XCTUnwrap(wrong.plugins.first?.config))) { error in
            XCTAssertEqual((error as? ConfigError)?.line, 4)
        }
    }

    /// Regression (hardening #5): small integer widths, optional or in lists, decode instead of recursing
    /// until the stack overflows, and out-of-range values are refused with their line.
    func testEveryIntegerWidthDecodes() throws {
        struct Section: Decodable {
            var a: UInt8
            var b: Int8?
            var c: [Int16]
            var d: [UInt16]?
            var e: UInt32
            var f: Int64?
        }
        let config = try ConfigLoader.parse(
            yaml: """
                plugins:
                  - name: widths
                    config:
                      a: 255
                      b: -128
                      c: [1, -2, 32767]
                      d: [65535]
                      e: 7
                      f: -9
                """, file: "t.yaml", environment: [:])
        let section = try ConfigDecoder.decode(Section.self, from: XCTUnwrap(config.plugins.first?.config))
        XCTAssertEqual(section.a, 255)
        XCTAssertEqual(section.b, -128)
        XCTAssertEqual(section.c, [1, -2, 32767])
        XCTAssertEqual(section.d, [65535])
        XCTAssertEqual(section.e, 7)
        XCTAssertEqual(section.f, -9)
        let wrong = try ConfigLoader.parse(
            yaml: "plugins:\n  - name: w\n    config:\n      a: 1\n      c: [40000]\n      e: 1\n",
            file: "t", environment: [:])
        XCTAssertThrowsError(try ConfigDecoder.decode(Section.self, from: XCTUnwrap(wrong.plugins.first?.config))) { error in
            XCTAssertEqual((error as? ConfigError)?.line, 5)
            XCTAssertTrue("\(error)".contains("out of range"), "\(error)")
        }
    }
}
