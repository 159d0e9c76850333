import Foundation
import PluginAPI
import XCTest

/// Range requests, conditional requests and HTTP dates, as `GET /media/{id}` and the TTS audio route answer them.
final class HTTPSemanticsTests: XCTestCase {
    func testRangeHeaders() {
        let size = 1000
        let cases: [(String?, RangeRequest)] = [
            (nil, .whole),
            ("bytes=0-99", .single(first: 0, last: 99)),
            ("bytes=0-0", .single(first: 0, last: 0)),
            ("  BYTES=10-  ", .single(first: 10, last: 999)),
            ("bytes=500-5000", .single(first: 500, last: 999)),  // the end is clipped to the file
            ("bytes=999-", .single(first: 999, last: 999)),
            ("bytes=-1", .single(first: 999, last: 999)),
            ("bytes=-200", .single(first: 800, last: 999)),
            ("bytes=-5000", .single(first: 0, last: 999)),  // a suffix longer than the file is all of it
            ("bytes=-99999999999999999999999", .single(first: 0, last: 999)),
            ("bytes=0-99999999999999999999999", .single(first: 0, last: 999)),
            ("bytes=1000-", .unsatisfiable),
            ("bytes=1000-1001", .unsatisfiable),
            ("bytes=99999999999999999999999-", .unsatisfiable),
            ("bytes=-0", .unsatisfiable),
            ("bytes=5-4", .whole),  // an invalid spec: the header is ignored
            ("bytes=0-1,5-9", .whole),  // several ranges: 200 with the whole file
            ("bytes=,0-1,", .single(first: 0, last: 1)),  // empty list elements are allowed
            ("bytes=-", .whole),
            ("bytes=a-b", .whole),
            ("bytes=+1-2", .whole),
            ("bytes=١-٢", .whole),  // Arabic-Indic digits are not ASCII digits
            ("bytes=1", .whole),
            ("items=0-1", .whole),
            ("", .whole),
        ]
        for (header, expected) in cases {
            XCTAssertEqual(RangeRequest.parse(header, size: size), expected, header ?? "nil")
        }
        // An empty file has no satisfiable range: send it whole.
        XCTAssertEqual(RangeRequest.parse("bytes=0-0", size: 0), .whole)
    }

    func testIfNoneMatchUsesTheWeakComparison() {
        let etag = #""abc123""#
        XCTAssertTrue(Conditional.noneMatchHits(#""abc123""#, etag: etag))
        XCTAssertTrue(Conditional.noneMatchHits(#"W/"abc123""#, etag: etag))
        XCTAssertTrue(Conditional.noneMatchHits(#""zzz", W/"abc123" ,"yyy""#, etag: etag))
        XCTAssertTrue(Conditional.noneMatchHits("*", etag: etag))
        XCTAssertTrue(Conditional.noneMatchHits(#""abc123""#, etag: #"W/"abc123""#))
        XCTAssertFalse(Conditional.noneMatchHits(#""abc124""#, etag: etag))
        XCTAssertFalse(Conditional.noneMatchHits("abc123", etag: etag))
        XCTAssertFalse(Conditional.noneMatchHits("", etag: etag))
    }

    func testIfRangeUsesTheStrongComparison() {
        let etag = #""abc123""#, date = "Sun, 06 Nov 1994 08:49:37 GMT"
        XCTAssertTrue(Conditional.ifRangeHolds(#""abc123""#, etag: etag, lastModified: date))
        XCTAssertTrue(Conditional.ifRangeHolds(" \"abc123\" ", etag: etag, lastModified: date))
        XCTAssertFalse(Conditional.ifRangeHolds(#"W/"abc123""#, etag: etag, lastModified: date))
        XCTAssertFalse(Conditional.ifRangeHolds(#""other""#, etag: etag, lastModified: date))
        XCTAssertTrue(Conditional.ifRangeHolds(date, etag: etag, lastModified: date))
        XCTAssertFalse(Conditional.ifRangeHolds("Sun, 06 Nov 1994 08:49:38 GMT", etag: etag, lastModified: date))
    }

    func testHTTPDates() {
        let date = Date(timeIntervalSince1970: 784_111_777)
        XCTAssertEqual(HTTPDate.format(date), "Sun, 06 Nov 1994 08:49:37 GMT")
        XCTAssertEqual(HTTPDate.format(Date(timeIntervalSince1970: 784_111_777.9)), "Sun, 06 Nov 1994 08:49:37 GMT")
        XCTAssertEqual(HTTPDate.format(Date(timeIntervalSince1970: 0)), "Thu, 01 Jan 1970 00:00:00 GMT")
        XCTAssertEqual(HTTPDate.parse("Sun, 06 Nov 1994 08:49:37 GMT"), date)
        XCTAssertEqual(HTTPDate.parse("Tue, 29 Feb 2028 23:59:59 GMT").map(HTTPDate.format), "Tue, 29 Feb 2028 23:59:59 GMT")
        for text in [Date(timeIntervalSince1970: 1_700_000_000), Date(timeIntervalSince1970: 4_102_444_800)].map(HTTPDate.format) {
            XCTAssertEqual(HTTPDate.parse(text).map(HTTPDate.format), text)
        }
        // The obsolete forms (RFC 850, asctime) and anything broken are ignored, as RFC 9110 allows.
        for bad in [
            "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Nov 1994 08:49 GMT", "Sun, 32 Nov 1994 08:49:37 GMT", "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT", "Sun, 06 Nov 99999999999 08:49:37 GMT", "Sun, 06 Nov 2147483647 08:49:37 GMT",
            "Sun, 06 Nov 0 08:49:37 GMT", "", "Sun, 06 Nov 1994 08:60:00 GMT",
        ] {
            XCTAssertNil(HTTPDate.parse(bad), bad)
        }
    }
}
