// Fuzzes what the webrtc-signaling plugin reads from Janus in `sfu` mode: HTTP/1.1 responses
// (HTTPResponseParser: Content-Length, chunked, read-until-close), Janus replies and events
// (JanusMessage.decodeList) and the admin API's handle_info figures (JanusHandleFigures).
//
// Janus is our own server, so its bytes are semi-trusted; the parser still must not trap, loop or allocate
// without bound on anything. Input: byte 0 picks the mode; the rest is the response or the JSON.
// Invariants: parsing never traps; a complete response's body is no larger than the limit and than the input;
// a response parsed as complete stays complete (with the same body) when more bytes follow it
// (for a length or chunked body); decoded ids are whole numbers from 1 to 2^53.

import FuzzSupport
@_spi(Engine) import PluginAPI
@testable import WebRTCSignaling

func fuzzOne(_ input: [UInt8]) {
    var reader = FuzzReader(input)
    let mode = reader.byte()
    let rest = reader.rest()
    switch mode % 3 {
    case 0:
        let limit = 4096
        let ended = mode & 0x80 != 0
        guard let outcome = try? HTTPResponseParser.parse(rest, ended: ended, maxBody: limit) else { return }
        if case .complete(_, let body) = outcome {
            if body.count > limit || body.count > rest.count { fuzzFail("a body of \(body.count) bytes from \(rest.count)") }
            if !ended, let again = try? HTTPResponseParser.parse(rest + Array("trailing".utf8), ended: false, maxBody: limit),
                again != outcome
            {
                fuzzFail("more bytes after a complete response changed it")
            }
        }
    case 1:
        guard let messages = try? JanusMessage.decodeList(rest) else { return }
        for message in messages {
            for id in [message.sender, message.sessionID].compactMap({ $0 }) where !(1...9_007_199_254_740_992).contains(id) {
                fuzzFail("an id out of range: \(id)")
            }
            if let jsep = message.jsep, jsep["sdp"]?.stringValue == nil { fuzzFail("a jsep without an sdp string") }
        }
    default:
        guard let value = try? JSON.decode(JSONValue.self, from: rest) else { return }
        let figures = JanusHandleFigures(info: value)
        for number in [figures.inKbps, figures.outKbps, figures.packetsIn, figures.rttMs, figures.lostLocal].compactMap({ $0 })
        where !number.isFinite || number < 0 {
            fuzzFail("a figure that is not a finite non-negative number: \(number)")
        }
    }
}

@_cdecl("FuzzJanus_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt { runFuzzer(argc, argv, fuzzOne) }
