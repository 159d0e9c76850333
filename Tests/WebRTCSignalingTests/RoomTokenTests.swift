import Engine
import Foundation
@_spi(Engine) import PluginAPI
import Synchronization
@testable import WebRTCSignaling
import XCTest

struct SilentLogger: PluginLogger {
    func log(_ level: LogLevel, _ message: String, metadata: [String: String]) {}
}

final class NullInstrument: MetricCounter, MetricGauge, MetricTimer {
    func increment(by amount: Int64) {}
    func set(_ value: Double) {}
    func record(_ duration: Duration) {}
}

struct NullMetrics: PluginMetrics {
    func counter(_ name: String, labels: [(String, String)]) -> any MetricCounter { NullInstrument() }
    func gauge(_ name: String, labels: [(String, String)]) -> any MetricGauge { NullInstrument() }
    func timer(_ name: String, labels: [(String, String)]) -> any MetricTimer { NullInstrument() }
}

/// Room tokens: issue and verify, expiry, tampering, another key; and the upgrade check's 401/403 for the wrong room or role.
final class RoomTokenTests: XCTestCase {
    let crypto = OpenSSLCrypto()
    let secret = Array("0123456789abcdef0123456789abcdef".utf8)
    lazy var signer = RoomTokenSigner(secret: secret, crypto: crypto)
    let now: Int64 = 1_700_000_000

    func failure(_ token: String, now: Int64? = nil, signer: RoomTokenSigner? = nil) -> RoomTokenSigner.Failure? {
        do {
            _ = try (signer ?? self.signer).verify(token, now: now ?? self.now)
            return nil
        } catch {
            return error
        }
    }

    /// A token with any payload, signed with the real key and domain: what only a key holder could make.
    func signed(_ payload: String) -> String {
        let mac = crypto.hmacSHA256(key: secret, message: Array("onionrp-webrtc-room-token\n".utf8) + Array(payload.utf8))
        return payload + "." + Base64URL.encode(mac)
    }

    func testIssuedTokensVerifyUntilTheyExpire() throws {
        let (token, grant) = signer.issue(room: "studio-1", role: .publisher, expiresAt: now + 60)
        XCTAssertTrue(token.hasPrefix("v1.publisher.studio-1.\(now + 60)."))
        XCTAssertEqual(try signer.verify(token, now: now), grant)
        XCTAssertEqual(grant.room, "studio-1")
        XCTAssertEqual(grant.role, .publisher)
        XCTAssertEqual(try signer.verify(token, now: now + 59).expiresAt, now + 60)
        XCTAssertEqual(failure(token, now: now + 60), .expired)
        XCTAssertEqual(failure(token, now: now + 10_000), .expired)
        // Ids are random: two tokens for the same grant differ.
        let again = signer.issue(room: "studio-1", role: .publisher, expiresAt: now + 60)
        XCTAssertNotEqual(again.token, token)
        XCTAssertNotEqual(again.grant.id, grant.id)
        XCTAssertEqual(Base64URL.decode(grant.id)?.count, 12)
    }

    func testTamperedOrForeignTokensAreInvalid() {
        let (token, _) = signer.issue(room: "studio", role: .viewer, expiresAt: now + 60)
        // Another room, role or expiry in the clear text: the signature no longer matches.
        XCTAssertEqual(failure(token.replacingOccurrences(of: ".studio.", with: ".studi0.")), .invalid)
        XCTAssertEqual(failure(token.replacingOccurrences(of: "v1.viewer.", with: "v1.publisher.")), .invalid)
        XCTAssertEqual(failure(token.replacingOccurrences(of: ".\(now + 60).", with: ".\(now + 999_999).")), .invalid)
        // A changed or cut signature.
        // (The first character of the signature: the last one of 43 carries two unused bits.)
        var characters = Array(token)
        let first = characters.lastIndex(of: ".")! + 1
        characters[first] = characters[first] == "A" ? "B" : "A"
        XCTAssertEqual(failure(String(characters)), .invalid)
        XCTAssertEqual(failure(String(token.dropLast(4))), .invalid)
        XCTAssertEqual(failure(String(token[..<token.lastIndex(of: ".")!]) + "."), .invalid)
        // Another key.
        let other = RoomTokenSigner(secret: Array("another secret of thirty-two byt".utf8), crypto: crypto)
        XCTAssertEqual(failure(token, signer: other), .invalid)
        // Not a token at all.
        for junk in ["", "abc", ".", "v1.viewer.studio", String(repeating: "a", count: 300), token + String(repeating: "=", count: 300)] {
            XCTAssertEqual(failure(junk), .invalid, junk)
        }
    }

    /// The fields are checked after the signature: even a correctly signed payload must have the v1 shape.
    func testSignedPayloadsMustStillHaveTheV1Shape() throws {
        XCTAssertEqual(try signer.verify(signed("v1.viewer.studio.\(now + 5).someid"), now: now).room, "studio")
        XCTAssertEqual(failure(signed("v2.viewer.studio.\(now + 5).someid")), .invalid)
        XCTAssertEqual(failure(signed("v1.admin.studio.\(now + 5).someid")), .invalid)
        XCTAssertEqual(failure(signed("v1.viewer.bad room.\(now + 5).someid")), .invalid)
        XCTAssertEqual(failure(signed("v1.viewer.studio.soon.someid")), .invalid)
        XCTAssertEqual(failure(signed("v1.viewer.studio.\(now + 5)")), .invalid)
        XCTAssertEqual(failure(signed("v1.viewer.studio.\(now + 5).id.extra")), .invalid)
        // A domain-separated MAC: the same key's plain HMAC of the payload is no signature.
        let payload = "v1.viewer.studio.\(now + 5).someid"
        XCTAssertEqual(failure(payload + "." + Base64URL.encode(crypto.hmacSHA256(key: secret, message: Array(payload.utf8)))), .invalid)
    }

    func testRoomNameValidation() {
        XCTAssertEqual(try RoomName.validated("cam_1"), "cam_1")
        for (name, message) in [(nil, "room: required"), ("", "room: required"), ("a b", "room: must be 1-64 characters")] as [(String?, String)] {
            XCTAssertThrowsError(try RoomName.validated(name)) { error in
                let error = error as? PluginError
                XCTAssertEqual(error?.status, 400)
                XCTAssertEqual(error?.code, "invalid_room")
                XCTAssertEqual(error?.details["field"], .string("room"))
                XCTAssertTrue(error?.message.hasPrefix(message) == true, "\(String(describing: error))")
            }
        }
    }

    // MARK: the upgrade check

    func signaling() -> Signaling {
        let configuration = WebRTCSignalingConfiguration()
        let gauges = RoomGauges(metrics: NullMetrics(), maxLabels: 4)
        let registry = RoomRegistry(configuration: configuration, gauges: gauges, makeID: { _ in "id" })
        return Signaling(configuration: configuration, registry: registry, signer: signer, gauges: gauges, logger: SilentLogger())
    }

    /// "accepted", or the status and code of the refusal.
    func upgrade(room: String, role: PeerRole, token: String?) -> String {
        let request = PluginRequest(
            id: "r", method: .get, path: "/ws/webrtc/\(room)/\(role.rawValue)", pathParameters: ["room": room],
            query: token.map { [(name: "token", value: $0)] } ?? [])
        do {
            guard case .accept(let admission) = try signaling().shouldUpgrade(request, role: role) else { return "rejected" }
            let peer = admission as? Signaling.PeerAdmission
            XCTAssertEqual(peer?.room, room)
            XCTAssertEqual(peer?.role, role)
            return "accepted"
        } catch let error as PluginError {
            return "\(error.status) \(error.code)"
        } catch {
            return "\(error)"
        }
    }

    func testTheUpgradeCheckWantsATokenForThisRoomAndRole() {
        let expiry = Int64(Date().timeIntervalSince1970) + 600
        let viewer = signer.issue(room: "studio", role: .viewer, expiresAt: expiry).token
        XCTAssertEqual(upgrade(room: "studio", role: .viewer, token: viewer), "accepted")
        XCTAssertEqual(upgrade(room: "studio", role: .publisher, token: viewer), "403 forbidden")
        XCTAssertEqual(upgrade(room: "other", role: .viewer, token: viewer), "403 forbidden")
        XCTAssertEqual(upgrade(room: "studio", role: .viewer, token: nil), "401 unauthorized")
        XCTAssertEqual(upgrade(room: "studio", role: .viewer, token: ""), "401 unauthorized")
        XCTAssertEqual(upgrade(room: "studio", role: .viewer, token: "v1.viewer.studio.1.x.y"), "401 invalid_token")
        XCTAssertEqual(upgrade(room: "bad room", role: .viewer, token: viewer), "400 invalid_room")
        let expired = signer.issue(room: "studio", role: .viewer, expiresAt: Int64(Date().timeIntervalSince1970) - 1).token
        XCTAssertEqual(upgrade(room: "studio", role: .viewer, token: expired), "401 token_expired")
    }

    // MARK: the signing secret

    func testTheSecretIsGeneratedOnceAndKeptPrivate() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("webrtc-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let configured = try RoomTokenSigner.loadSecret(configured: "from-config", folder: folder, crypto: crypto)
        XCTAssertEqual(configured.source, "configuration")
        XCTAssertEqual(configured.key, Array("from-config".utf8))
        let first = try RoomTokenSigner.loadSecret(configured: "", folder: folder, crypto: crypto)
        XCTAssertTrue(first.source.hasSuffix("(generated)"))
        XCTAssertGreaterThanOrEqual(first.key.count, 32)
        let path = folder.appendingPathComponent("token-secret").path
        let mode = (try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue
        XCTAssertEqual(mode, 0o600)
        let second = try RoomTokenSigner.loadSecret(configured: "", folder: folder, crypto: crypto)
        XCTAssertEqual(second.key, first.key)
        XCTAssertEqual(second.source, path)
        // A short secret in the file is refused rather than used.
        try Data("short\n".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try RoomTokenSigner.loadSecret(configured: "", folder: folder, crypto: crypto)) { error in
            XCTAssertEqual((error as? PluginError)?.code, "invalid_secret")
        }
    }
}
