import Engine
import Foundation
@_spi(Engine) import PluginAPI
@testable import WebRTCSignaling
import XCTest

/// `sfu` mode without Janus: the HTTP response parser, the Janus reply decoder, handle_info figures, the section's
/// checks, room ids and simulcast layers. (Against a real Janus: Tests/integration/test_sfu*.py.)
final class SFUTests: XCTestCase {
    let crypto = OpenSSLCrypto()

    func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

    func testResponsesWithALengthChunksOrTheClose() throws {
        let length = bytes("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
        XCTAssertEqual(try HTTPResponseParser.parse(length, ended: false, maxBody: 100), .complete(status: 200, body: bytes("{}")))
        XCTAssertEqual(try HTTPResponseParser.parse(Array(length.dropLast()), ended: false, maxBody: 100), .incomplete)
        XCTAssertThrowsError(try HTTPResponseParser.parse(Array(length.dropLast()), ended: true, maxBody: 100))

        let chunked = bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4;x=y\r\n\":1}\r\n0\r\n\r\n")
        XCTAssertEqual(try HTTPResponseParser.parse(chunked, ended: false, maxBody: 100), .complete(status: 200, body: bytes("{\"a\":1}")))
        XCTAssertEqual(try HTTPResponseParser.parse(Array(chunked.prefix(60)), ended: false, maxBody: 100), .incomplete)

        let closed = bytes("HTTP/1.0 503 Service Unavailable\r\n\r\nbusy")
        XCTAssertEqual(try HTTPResponseParser.parse(closed, ended: false, maxBody: 100), .incomplete)
        XCTAssertEqual(try HTTPResponseParser.parse(closed, ended: true, maxBody: 100), .complete(status: 503, body: bytes("busy")))
    }

    func testMalformedOrOversizedResponsesAreErrors() {
        for text in [
            "HTTP/1.1 20 OK\r\n\r\n", "SPDY/3 200 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            "HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n",
        ] {
            XCTAssertThrowsError(try HTTPResponseParser.parse(bytes(text), ended: true, maxBody: 100), text)
        }
        XCTAssertThrowsError(try HTTPResponseParser.parse([UInt8](repeating: 65, count: 20_000), ended: false, maxBody: 100))
    }

    func testEndpoints() {
        XCTAssertEqual(HTTPEndpoint.parse("http://127.0.0.1:8088/janus/"), HTTPEndpoint(host: "127.0.0.1", port: 8088, path: "/janus"))
        XCTAssertEqual(HTTPEndpoint.parse("http://webrtc-node/janus"), HTTPEndpoint(host: "webrtc-node", port: 80, path: "/janus"))
        for bad in ["https://x/janus", "http:///janus", "http://u:p@x/janus", "http://x/janus?a=1", "ftp://x", "http://x y/", ""] {
            XCTAssertNil(HTTPEndpoint.parse(bad), bad)
        }
    }

    func testJanusRepliesEventsAndErrors() throws {
        let success = try JanusMessage.decodeList(bytes(#"{"janus":"success","transaction":"t1","data":{"id":4503599627370495}}"#))
        XCTAssertEqual(success.count, 1)
        XCTAssertEqual(success[0].kind, "success")
        XCTAssertEqual(JanusMessage.identifier(success[0].data?["id"]), 4_503_599_627_370_495)

        let events = try JanusMessage.decodeList(
            bytes(
                #"[{"janus":"event","sender":12,"transaction":"t2","plugindata":{"plugin":"janus.plugin.videoroom","data":{"videoroom":"joined","id":7}},"jsep":{"type":"answer","sdp":"v=0"}},{"janus":"webrtcup","sender":12}]"#
            ))
        XCTAssertEqual(events.map(\.kind), ["event", "webrtcup"])
        XCTAssertEqual(events[0].sender, 12)
        XCTAssertEqual(events[0].data?["videoroom"], .string("joined"))
        XCTAssertEqual(events[0].jsep?["type"], .string("answer"))
        XCTAssertNil(events[0].error)

        let plugin = try JanusMessage.decodeList(
            bytes(#"{"janus":"event","plugindata":{"data":{"videoroom":"event","error_code":426,"error":"No such room"}}}"#))
        XCTAssertEqual(plugin[0].error, JanusError(code: 426, reason: "No such room"))
        let core = try JanusMessage.decodeList(bytes(#"{"janus":"error","error":{"code":458,"reason":"No such session"}}"#))
        XCTAssertEqual(core[0].error?.code, JanusError.noSuchSession)

        // A jsep without a string sdp is not a jsep; ids that are not whole positive numbers are not ids.
        let odd = try JanusMessage.decodeList(bytes(#"{"janus":"event","sender":-3,"jsep":{"type":"offer","sdp":5}}"#))
        XCTAssertNil(odd[0].jsep)
        XCTAssertNil(odd[0].sender)
        XCTAssertNil(JanusMessage.identifier(.number(1.5)))
        XCTAssertNil(JanusMessage.identifier(.number(1e300)))
        for bad in ["", "[]x", "{\"janus\":1}", "[1]", "null", "\"janus\""] {
            XCTAssertThrowsError(try JanusMessage.decodeList(bytes(bad)), bad)
        }
    }

    func testHandleInfoFiguresSumMediaAndSimulcastLayers() throws {
        let info = try JSON.decode(
            JSONValue.self,
            from: bytes(
                #"{"webrtc":{"dtls":{"dtls-state":"connected","stats":{"in":{"bytes":9999}}},"media":{"0":{"mid":"0","stats":{"in":{"packets":10,"bytes_lastsec":1000,"nacks":1,"video-simulcast-1":{"packets":5,"bytes_lastsec":500}},"out":{"packets":2,"bytes_lastsec":0}},"rtcp":{"main":{"rtt":12,"lost":3,"lost-by-remote":1,"jitter-local":4,"jitter-remote":6},"sim1":{"lost":2}}}}}}"#
            ))
        let figures = JanusHandleFigures(info: info)
        XCTAssertTrue(figures.connected)
        XCTAssertEqual(figures.inKbps, 12)  // (1000 + 500) bytes/s
        XCTAssertEqual(figures.packetsIn, 15)
        XCTAssertEqual(figures.nacksIn, 1)
        XCTAssertEqual(figures.outKbps, 0)
        XCTAssertEqual(figures.lostLocal, 5)
        XCTAssertEqual(figures.lostRemote, 1)
        XCTAssertEqual(figures.rttMs, 12)
        XCTAssertEqual(figures.jitterRemoteMs, 6)
        let empty = JanusHandleFigures(info: .string("nonsense"))
        XCTAssertFalse(empty.connected)
        XCTAssertNil(empty.inKbps)
    }

    func testTheSectionsSFUChecks() throws {
        func problem(_ change: (inout WebRTCSignalingConfiguration) -> Void) -> String? {
            var configuration = WebRTCSignalingConfiguration()
            change(&configuration)
            do {
                try configuration.validate()
                _ = try configuration.applyingEnvironment([:])
                return nil
            } catch let error as ConfigProblem {
                return error.key + ": " + error.message
            } catch let error as PluginError {
                return error.message
            } catch {
                return "\(error)"
            }
        }
        XCTAssertNil(problem { _ in })
        XCTAssertNil(
            problem {
                $0.mode = .sfu
                $0.janusURL = "http://127.0.0.1:8088/janus"
                $0.janusAPISecret = "0123456789abcdef"
                $0.janusRooms = ["cam": 1234]
            })
        XCTAssertEqual(problem { $0.mode = .sfu }?.contains("needs janus_url"), true)
        XCTAssertEqual(problem { $0.janusURL = "https://janus" }?.contains("http://"), true)
        XCTAssertEqual(problem { $0.janusAPISecret = "short" }?.contains("janus_api_secret"), true)
        XCTAssertEqual(problem { $0.janusAPISecret = "has space in it!!!!" }?.contains("janus_api_secret"), true)
        XCTAssertEqual(problem { $0.defaultPreset = "4k" }?.hasPrefix("default_preset"), true)
        XCTAssertEqual(
            problem {
                $0.presets = ["x": PublisherPreset(width: 1280, height: 720, fps: 90, bitrateKbps: 1000)]
                $0.defaultPreset = "x"
            }, "presets.x: fps must be between 1 and 60")
        XCTAssertEqual(problem { $0.janusRooms = ["cam": 0] }?.hasPrefix("janus_rooms.cam"), true)
        XCTAssertEqual(problem { $0.janusRooms = ["bad room": 5] }?.hasPrefix("janus_rooms"), true)
        XCTAssertEqual(problem { $0.janusRooms = ["a": 5, "b": 5] }?.contains("same Janus room id"), true)
        let fromEnvironment = try WebRTCSignalingConfiguration().applyingEnvironment([
            "WEBRTC_MODE": "sfu", "WEBRTC_JANUS_URL": "http://janus:8088/janus", "WEBRTC_JANUS_API_SECRET": "0123456789abcdef",
        ])
        XCTAssertEqual(fromEnvironment.mode, .sfu)
        XCTAssertThrowsError(try WebRTCSignalingConfiguration().applyingEnvironment(["WEBRTC_MODE": "mesh"]))
    }

    func testRoomIDsAndLayers() {
        let a = SFUBridge.janusRoomID("cam", configured: [:], crypto: crypto)
        XCTAssertEqual(a, SFUBridge.janusRoomID("cam", configured: [:], crypto: crypto))
        XCTAssertNotEqual(a, SFUBridge.janusRoomID("cam2", configured: [:], crypto: crypto))
        XCTAssertTrue((1...(1 << 48)).contains(a))
        XCTAssertEqual(SFUBridge.janusRoomID("cam", configured: ["cam": 42], crypto: crypto), 42)
        XCTAssertEqual(SFUBridge.layer(maxKbps: 0, presetKbps: 2500), 2)
        XCTAssertEqual(SFUBridge.layer(maxKbps: 3000, presetKbps: 2500), 2)
        XCTAssertEqual(SFUBridge.layer(maxKbps: 1000, presetKbps: 2500), 1)
        XCTAssertEqual(SFUBridge.layer(maxKbps: 100, presetKbps: 2500), 0)
    }
}
