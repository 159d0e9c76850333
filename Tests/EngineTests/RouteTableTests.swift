@testable import Engine
import XCTest

final class RouteTableTests: XCTestCase {
    func testParameterNamesDoNotHideAClash() {
        var table = RouteTable()
        XCTAssertTrue(table.claim(method: "GET", path: "/api/media/{id}", owner: "media", file: "/p/libmedia.so"))
        XCTAssertFalse(table.claim(method: "GET", path: "/api/media/{name}", owner: "other", file: "/p/libother.so"))
        XCTAssertTrue(table.claim(method: "DELETE", path: "/api/media/{name}", owner: "other", file: "/p/libother.so"))
        XCTAssertEqual(
            table.problems, ["plugin 'other' (/p/libother.so): route clash: GET /api/media/{name} is already registered by plugin 'media'"])
    }

    func testMalformedPatternsAreRefused() {
        XCTAssertNotNil(RouteTable.validate("api/x"))
        XCTAssertNotNil(RouteTable.validate("/api/{}"))
        XCTAssertNotNil(RouteTable.validate("/api/{a}/{a}"))
        XCTAssertNotNil(RouteTable.validate("/api/*"))
        XCTAssertNil(RouteTable.validate("/ws/webrtc/{room}/publisher"))
        XCTAssertEqual(RouteTable.hummingbirdPath("/ws/webrtc/{room}/publisher"), "/ws/webrtc/:room/publisher")
        XCTAssertEqual(RouteTable.parameterNames("/a/{x}/b/{y}"), ["x", "y"])
    }

    func testPluginsCannotClaimTheBundlesPrefix() {
        var table = RouteTable()
        XCTAssertFalse(table.claim(method: "GET", path: "/plugins/tts/extra/deep", owner: "tts", file: "/x/libtts.so"))
        XCTAssertFalse(table.claim(method: "POST", path: "/plugins", owner: "tts", file: "/x/libtts.so"))
        XCTAssertTrue(table.claim(method: "GET", path: "/pluginsx", owner: "tts", file: "/x/libtts.so"))
        XCTAssertTrue(table.claim(method: "GET", path: "/plugins/{name}/{file}", owner: "engine", file: nil))
        XCTAssertEqual(table.problems.count, 2)
        XCTAssertTrue(table.problems[0].contains("/plugins/ is where the engine serves the plugins' web folders"), table.problems[0])
    }
}
