@testable import WebRTCSignaling
import XCTest

/// Room names: 1-64 characters of letters, digits, '_' and '-'.
final class RoomNameTests: XCTestCase {
    func testValidNames() {
        for name in ["a", "studio", "Cam_2-left", String(repeating: "z", count: 64), "0"] {
            XCTAssertTrue(RoomName.isValid(name), name)
        }
        for name in ["", String(repeating: "z", count: 65), "a b", "a.b", "a/b", "камера", "a%20", "a\u{0}", "é"] {
            XCTAssertFalse(RoomName.isValid(name), name)
        }
    }
}
