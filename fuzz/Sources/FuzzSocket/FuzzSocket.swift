// Fuzzes inbound socket frames and small request bodies: the engine channels' envelope
// (ChannelHub.Envelope), JSONValue, event payloads (overlay.applied, tts.* reports, webrtc metrics),
// TTS speak bodies, the frames the engine builds from decoded members (SocketMessage.make), and
// request forms (FormURLEncoding, PluginRequest.contentType / formFields), and bus messages from other engines
// (the TTS queue's QueueMessage, the WebRTC rooms' BusMessage).
//
// Input: byte 0 steers (bit 0: also run formFields, bits 1-2: Content-Type); the rest is the frame.
// Invariants: no trap; a decoded JSONValue survives encode/decode; an event built from decoded
// members is valid JSON with that type first and the same members.

@testable import Engine
import Foundation
import FuzzSupport
@_spi(Engine) import PluginAPI
@testable import TTS
@testable import WebRTCSignaling

struct Applied: Decodable { let version: Int64 }

let ttsConfiguration = TTSConfiguration()
let blocklist = Blocklist(["bad word", "forbidden", "ass"])
let contentTypes = ["application/json", "application/x-www-form-urlencoded; charset=utf-8", ";", "multipart/form-data; boundary=x"]

func fuzzOne(_ input: [UInt8]) {
    var reader = FuzzReader(input)
    let mode = Int(reader.byte())
    let frame = reader.rest()

    let envelope = try? JSONDecoder().decode(ChannelHub.Envelope.self, from: Data(frame))
    let event = SocketEvent(type: envelope?.type ?? "x", raw: frame)
    _ = try? event.decode(Applied.self)
    _ = try? OverlayReport.parse(event)
    _ = try? CapabilitiesReport.parse(event)
    _ = try? JSON.decode(MediaSample.self, from: frame)
    _ = try? JSON.decode(PublisherMetricsMessage.self, from: frame)
    _ = try? SpeakRequest.parse(frame, configuration: ttsConfiguration, blocklist: blocklist)

    if let value = try? JSON.decode(JSONValue.self, from: frame) {
        let encoded = value.encoded()
        guard let again = try? JSON.decode(JSONValue.self, from: encoded) else {
            fuzzFail("JSONValue encoding does not decode: \(String(decoding: encoded, as: UTF8.self))")
        }
        if again != value { fuzzFail("JSONValue changed through encode/decode: \(value) -> \(again)") }
        if case .object(var members) = value, case .string(let type)? = members["type"] {
            members["type"] = nil
            guard let built = try? SocketMessage.make(type: type, payload: members) else { fuzzFail("SocketMessage.make failed") }
            guard case .object(var back)? = try? JSON.decode(JSONValue.self, from: Array(built.utf8)) else {
                fuzzFail("SocketMessage.make built invalid JSON: \(built)")
            }
            if back["type"] != .string(type) { fuzzFail("the built event lost its type: \(built)") }
            back["type"] = nil
            if back != members { fuzzFail("the built event changed its members: \(built)") }
        }
    }

    // Messages from the engines' bus (other engines are not trusted blindly): the TTS queue's wire format and the
    // WebRTC rooms' membership/signal messages, with the checks each receiver applies.
    if let (sequence, _) = try? QueueMessage.decode(frame), sequence <= 0 { fuzzFail("TTS bus message with sequence \(sequence) accepted") }
    if let message = try? JSON.decode(BusMessage.self, from: frame) {
        _ = message.peer?.isValid
        _ = message.rooms?.map { $0.peers.filter(\.isValid).count }
        _ = message.room.map(RoomName.isValid)
    }

    let header = text(frame)
    _ = FormURLEncoding.parse(header)
    _ = PluginRequest(id: "f", method: .post, path: "/", headers: ["Content-Type": header]).contentType
    if mode & 1 == 1 {
        let request = PluginRequest(
            id: "f", method: .post, path: "/", headers: ["Content-Type": contentTypes[(mode >> 1) & 3]],
            body: .bytes(frame))
        _ = runBlocking { try await request.formFields() }
    }
}

@_cdecl("FuzzSocket_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt { runFuzzer(argc, argv, fuzzOne) }
