@testable import Engine
import XCTest

final class RouteTableTests: XCTestCase {
    func testParameterNamesDoNotHideAClash() {
        var table = RouteTable()
        XCTAssertTrue(table.claim(method: "GET", path: "/api/media/{id}", owner: "media", file: "/p/libmedia.so"))
        XCTAssertFalse(table.claim(method: "GET", path: "/api/media/{name}", owner: "other", file: "/p/libother.so"))
        XCTAssertTrue(table.claim(method: "DELETE", path: "/api/media/{name}", owner: "other", file: "/p/libother.so"))
        XCTAssertEqual(table.problems, ["plugin 'other' (/p/libother.so): route clash: GET /api/media/{name} is already registered by plugin 'media'"])
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
}
