@testable import Engine
import Foundation
import Logging
import XCTest

/// The request line's numbers are written digit by digit (no `String(format:)`, no interpolation): the edges of that.
final class AccessLogTests: XCTestCase {
    private func milliseconds(_ duration: Duration) -> String {
        var bytes: [UInt8] = []
        AccessLog.appendMilliseconds(duration, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    private func decimal(_ value: Int) -> String {
        var bytes: [UInt8] = []
        AccessLog.appendDecimal(value, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    func testMillisecondsHaveTwoDecimals() {
        XCTAssertEqual(milliseconds(.zero), "0.00")
        XCTAssertEqual(milliseconds(.microseconds(9)), "0.00")
        XCTAssertEqual(milliseconds(.microseconds(10)), "0.01")
        XCTAssertEqual(milliseconds(.microseconds(420)), "0.42")
        XCTAssertEqual(milliseconds(.milliseconds(7)), "7.00")
        XCTAssertEqual(milliseconds(.microseconds(12_345)), "12.34")
        XCTAssertEqual(milliseconds(.seconds(90)), "90000.00")
        // A clock that went backwards is not a negative duration in the log.
        XCTAssertEqual(milliseconds(.milliseconds(-3)), "0.00")
    }

    func testDecimals() {
        XCTAssertEqual(decimal(0), "0")
        XCTAssertEqual(decimal(7), "7")
        XCTAssertEqual(decimal(200), "200")
        XCTAssertEqual(decimal(1_000_000), "1000000")
        XCTAssertEqual(decimal(-42), "-42")
        XCTAssertEqual(decimal(Int.max), String(Int.max))
        XCTAssertEqual(decimal(Int.min), String(Int.min))
        for value in [9, 10, 99, 100, 999, 1000, 65_535] { XCTAssertEqual(decimal(value), String(value)) }
    }

    /// The handler's general path and the direct request line keep StreamLogHandler's shape; only a logger with no
    /// metadata of its own gets the direct writer.
    func testOnlyAPlainLoggerGetsTheDirectWriter() {
        var plain = BufferedLogHandler(label: "t", metadataProvider: nil)
        XCTAssertNotNil(plain.accessLog)
        plain.metadata["plugin"] = "x"
        XCTAssertNil(plain.accessLog)
        let provided = BufferedLogHandler(label: "t", metadataProvider: .init { ["trace": "1"] })
        XCTAssertNil(provided.accessLog)
    }
}
