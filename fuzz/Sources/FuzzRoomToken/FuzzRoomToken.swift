// Fuzzes WebRTC room tokens (RoomTokenSigner.verify), room names (RoomName) and base64url.
//
// Input: byte 0 picks the mode; the rest is text. Modes: verify the text as a presented token;
// sign the text as a payload with the plugin's scheme and verify it (reaching the field parsing that
// only genuine tokens get to); issue a token for the text as a room and verify it back.
// Invariants: verify never traps; a token issued for a room and role verifies to that grant until
// it expires and is refused after; base64url decodes what it encodes.

import FuzzSupport
@_spi(Engine) import PluginAPI
@testable import WebRTCSignaling

let crypto = FakeCrypto()
let secret = Array("fuzzing-secret-of-at-least-32-bytes!".utf8)
let signer = RoomTokenSigner(secret: secret, crypto: crypto)
/// RoomTokenSigner's domain separation prefix (private there).
let domain = Array("onionrp-webrtc-room-token\n".utf8)

func fuzzOne(_ input: [UInt8]) {
    var reader = FuzzReader(input)
    let mode = reader.byte()
    let rest = reader.rest()
    let body = text(rest)
    let now: Int64 = 1_700_000_000

    if let decoded = Base64URL.decode(Base64URL.encode(rest)), decoded != rest {
        fuzzFail("base64url round trip changed the bytes")
    } else if Base64URL.decode(Base64URL.encode(rest)) == nil {
        fuzzFail("base64url does not decode its own encoding")
    }
    _ = Base64URL.decode(body)

    switch mode % 3 {
    case 0:
        _ = try? signer.verify(body, now: now)
    case 1:
        let token = body + "." + Base64URL.encode(crypto.hmacSHA256(key: secret, message: domain + Array(body.utf8)))
        if let grant = try? signer.verify(token, now: now) {
            if !RoomName.isValid(grant.room) { fuzzFail("a verified token grants an invalid room '\(grant.room)'") }
            if grant.expiresAt <= now { fuzzFail("an expired token verified") }
        }
    default:
        _ = try? RoomName.validated(body)
        guard RoomName.isValid(body) else { return }
        let role: PeerRole = mode & 0x80 == 0 ? .publisher : .viewer
        let expires = now + Int64(reader.int(0)) + 1 + Int64(mode)
        let (token, grant) = signer.issue(room: body, role: role, expiresAt: expires)
        do {
            let verified = try signer.verify(token, now: now)
            if verified != grant { fuzzFail("issued \(grant), verified \(verified)") }
        } catch {
            fuzzFail("a token issued for room '\(body)' is refused: \(error)")
        }
        if (try? signer.verify(token, now: expires)) != nil { fuzzFail("a token verified at its expiry") }
    }
}

@_cdecl("FuzzRoomToken_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt { runFuzzer(argc, argv, fuzzOne) }
