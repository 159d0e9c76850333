import Engine
import Foundation
@_spi(Engine) import PluginAPI
import Synchronization
@testable import WebRTCSignaling
import TestSupport
import XCTest

/// The ICE configuration (TURN REST credentials, what is withheld), the section's checks, and a peer's rate bucket and queue.
final class ICEAndPeerTests: XCTestCase {
    let crypto = OpenSSLCrypto()

    func configuration(_ change: (inout WebRTCSignalingConfiguration) -> Void) -> WebRTCSignalingConfiguration {
        var configuration = WebRTCSignalingConfiguration()
        change(&configuration)
        return configuration
    }

    func json(_ answer: ICEConfigAnswer) throws -> JSONValue { try JSON.decode(JSONValue.self, from: try JSON.encode(answer)) }

    func testTURNRESTCredentialsAreWhatCoturnComputes() {
        let builder = ICEConfigBuilder(configuration: configuration { $0.turnSecret = "turn-secret-0123456789" }, crypto: crypto)
        // Expected values from `openssl dgst -sha1 -hmac turn-secret-0123456789 -binary | base64`.
        let withRoom = builder.turnRESTCredentials(room: "studio", expiresAt: 1_700_003_600)
        XCTAssertEqual(withRoom.username, "1700003600:studio")
        XCTAssertEqual(withRoom.credential, "qhKtkMXMeuPa9rcf4ZEhOMQnOqE=")
        let bare = builder.turnRESTCredentials(room: nil, expiresAt: 1_700_003_600)
        XCTAssertEqual(bare.username, "1700003600")
        XCTAssertEqual(bare.credential, "xuzfYRl5tg4HPyYP77KdhPt2ZKw=")
    }

    func testTheAnswerForEachTURNSetup() throws {
        let now: Int64 = 1_700_000_000
        let stun = ["stun:stun.example.org:3478"], turn = ["turn:turn.example.org:3478?transport=udp", "turns:turn.example.org:5349"]

        let none = try json(
            ICEConfigBuilder(configuration: configuration { $0.stunURLs = stun }, crypto: crypto)
                .answer(room: nil, turnAllowed: true, now: now))
        XCTAssertEqual(none["turn"], .string("none"))
        XCTAssertEqual(none["ice_servers"], .array([.object(["urls": .array(stun.map(JSONValue.string))])]))
        XCTAssertEqual(none["ice_transport_policy"], .string("all"))
        XCTAssertNil(none["turn_expires_at"])

        let rest = configuration {
            $0.stunURLs = stun
            $0.turnURLs = turn
            $0.turnSecret = "turn-secret-0123456789"
            $0.turnCredentialTTLSeconds = 3600
        }
        let withheld = try json(ICEConfigBuilder(configuration: rest, crypto: crypto).answer(room: "studio", turnAllowed: false, now: now))
        XCTAssertEqual(withheld["turn"], .string("token_required"))
        guard case .array(let onlyStun)? = withheld["ice_servers"] else { return XCTFail("no servers") }
        XCTAssertEqual(onlyStun.count, 1)

        let minted = try json(ICEConfigBuilder(configuration: rest, crypto: crypto).answer(room: "studio", turnAllowed: true, now: now))
        XCTAssertEqual(minted["turn"], .string("rest"))
        XCTAssertEqual(minted["turn_ttl_seconds"], .number(3600))
        XCTAssertEqual(minted["turn_expires_at"], .string("2023-11-14T23:13:20Z"))
        guard case .array(let servers)? = minted["ice_servers"], servers.count == 2 else { return XCTFail("\(minted)") }
        XCTAssertEqual(servers[1]["urls"], .array(turn.map(JSONValue.string)))
        XCTAssertEqual(servers[1]["username"], .string("1700003600:studio"))
        XCTAssertEqual(servers[1]["credential"], .string("qhKtkMXMeuPa9rcf4ZEhOMQnOqE="))

        let fixed = configuration {
            $0.turnURLs = turn
            $0.turnUsername = "user"
            $0.turnPassword = "pass"
        }
        let staticAnswer = try json(ICEConfigBuilder(configuration: fixed, crypto: crypto).answer(room: nil, turnAllowed: true, now: now))
        XCTAssertEqual(staticAnswer["turn"], .string("static"))
        XCTAssertEqual(
            staticAnswer["ice_servers"],
            .array([
                .object([
                    "urls": .array(turn.map(JSONValue.string)), "username": .string("user"),
                    "credential": .string("pass"),
                ])
            ]))
    }

    func testTheEnvironmentAndTheICESettingsAreCheckedTogether() throws {
        let base = WebRTCSignalingConfiguration()
        let applied = try base.applyingEnvironment([
            "WEBRTC_STUN_URLS": " stun:a:1 , ,stuns:b:2 ", "WEBRTC_TURN_URLS": "turn:t:3",
            "WEBRTC_TURN_SECRET": "0123456789abcdef", "WEBRTC_TOKEN_SECRET": String(repeating: "k", count: 32),
        ])
        XCTAssertEqual(applied.stunURLs, ["stun:a:1", "stuns:b:2"])
        XCTAssertEqual(applied.turnURLs, ["turn:t:3"])
        XCTAssertEqual(applied.tokenSecret.count, 32)
        XCTAssertEqual(try base.applyingEnvironment([:]).turnURLs, [])

        func refused(_ environment: [String: String], _ text: String, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(try base.applyingEnvironment(environment), file: file, line: line) { error in
                let error = error as? PluginError
                XCTAssertEqual(error?.code, "invalid_config", file: file, line: line)
                XCTAssertTrue(error?.message.contains(text) == true, "\(String(describing: error))", file: file, line: line)
            }
        }
        refused(["WEBRTC_STUN_URLS": "http://stun"], "must start with stun: or stuns:")
        refused(["WEBRTC_TURN_URLS": "stun:x"], "must start with turn: or turns:")
        refused(["WEBRTC_TURN_URLS": "turn:x"], "there are no credentials")
        refused(["WEBRTC_TURN_URLS": "turn:x", "WEBRTC_TURN_USERNAME": "u"], "there are no credentials")
        refused(["WEBRTC_TURN_SECRET": "short"], "at least 16 bytes")
        refused(["WEBRTC_TOKEN_SECRET": String(repeating: "k", count: 31)], "at least 32 bytes")
    }

    func testTheConfigurationSection() throws {
        let decoded = try ConfigDecoder.decode(
            WebRTCSignalingConfiguration.self,
            from: configNode([
                ("overlay_rooms", "any"), ("max_token_ttl_seconds", "600"),
                ("token_ttl_seconds", "600"),
            ]))
        XCTAssertEqual(decoded.overlayRooms, .any)
        XCTAssertEqual(decoded.tokenTTLSeconds, 600)
        for (pairs, key, text) in [
            ([("max_token_ttl_seconds", "600"), ("token_ttl_seconds", "601")], "token_ttl_seconds", "between 1 and max_token_ttl_seconds"),
            ([("overlay_rooms", "some")], "overlay_rooms", "expected 'scene' or 'any', found 'some'"),
            ([("turn_credential_ttl_seconds", "59")], "turn_credential_ttl_seconds", "between 60 and 172800"),
            ([("max_message_bytes", "1023")], "max_message_bytes", "between 1024 and 1048576"),
            ([("outbound_queue", "7")], "outbound_queue", "between 8 and 100000"),
            ([("messages_per_second", "0")], "messages_per_second", "between 1 and 10000"),
            ([("replace_publisher", "sometimes")], "replace_publisher", "expected true or false"),
            ([("max_rooms", "10"), ("max_room", "1")], "max_room", "unknown key"),
        ] {
            XCTAssertThrowsError(try ConfigDecoder.decode(WebRTCSignalingConfiguration.self, from: configNode(pairs)), key) { error in
                let error = error as? ConfigError
                XCTAssertEqual(error?.path, key)
                XCTAssertEqual(error?.line, 1 + pairs.count, key)
                XCTAssertTrue(error?.message.contains(text) == true, "\(String(describing: error))")
            }
        }
    }

    // MARK: a peer

    func peer(queue: Int = 8, burst: Int, perSecond: Int, session: RecordingSession = RecordingSession()) -> Peer {
        Peer(id: "v-1", role: .viewer, room: "studio", tokenID: "t", session: session, queueLimit: queue, burst: burst, perSecond: perSecond)
    }

    func testTheRateBucketAllowsABurstThenTheSustainedRate() async throws {
        let peer = peer(burst: 5, perSecond: 10)
        XCTAssertEqual((0..<5).map { _ in peer.admitInbound() }, [true, true, true, true, true])
        XCTAssertFalse(peer.admitInbound())
        XCTAssertFalse(peer.admitInbound())
        try await Task.sleep(for: .milliseconds(250))  // 10/s: two tokens back
        XCTAssertTrue(peer.admitInbound())
        XCTAssertTrue(peer.admitInbound())
        XCTAssertEqual(peer.snapshot.received, 9)
        // The bucket never holds more than the burst, however long the peer was quiet.
        let quiet = self.peer(burst: 2, perSecond: 100)
        try await Task.sleep(for: .milliseconds(100))
        XCTAssertEqual((0..<3).map { _ in quiet.admitInbound() }, [true, true, false])
    }

    func testAFullOutboundQueueClosesTheSlowPeer() async throws {
        let session = RecordingSession()
        let peer = peer(queue: 8, burst: 1, perSecond: 1, session: session)
        for index in 0..<8 { XCTAssertTrue(peer.send("frame \(index)"), "frame \(index)") }
        XCTAssertFalse(peer.send("one too many"))
        XCTAssertTrue(peer.isClosing)
        XCTAssertFalse(peer.send("after the close"))
        XCTAssertEqual(peer.snapshot.sent, 8)
        XCTAssertEqual(peer.snapshot.dropped, 1)
        let deadline = ContinuousClock.now + .seconds(2)
        while session.closes.withLock({ $0.isEmpty }), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        XCTAssertEqual(session.closes.withLock { $0 }, [CloseCode.tryAgainLater])
    }

    func testErrorsCountTowardsViolationsOnlyWhenTheyAreAbuse() {
        let peer = peer(burst: 1, perSecond: 1)
        XCTAssertEqual(peer.countError(violation: false), 0)
        XCTAssertEqual(peer.countError(violation: true), 1)
        XCTAssertEqual(peer.countError(violation: true), 2)
        XCTAssertEqual(peer.snapshot.errors, 3)
    }
}
