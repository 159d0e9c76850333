// Fuzzes what PluginAPI's FileResponse (GET /media/{id}, TTS audio) reads from request headers: Range (RangeRequest.parse),
// If-None-Match and If-Range (Conditional), and HTTP dates (HTTPDate.parse / format).
//
// Input: 4 bytes of file size (little-endian, 1...2^31), then the header text.
// Invariants: a single range lies inside the file (0 <= first <= last < size); an HTTP date that
// parses formats back to a date that parses to the same instant.

import Foundation
import FuzzSupport
import PluginAPI

func fuzzOne(_ input: [UInt8]) {
    var reader = FuzzReader(input)
    let size = max(1, reader.int(4) & 0x7FFF_FFFF)
    let header = text(reader.rest())
    switch RangeRequest.parse(header, size: size) {
    case .single(let first, let last):
        guard first >= 0, first <= last, last < size else {
            fuzzFail("range \(first)-\(last) is outside a file of \(size) bytes for '\(header)'")
        }
    case .whole, .unsatisfiable:
        break
    }
    _ = RangeRequest.parse(header, size: 1)
    _ = RangeRequest.parse(header, size: Int.max)
    let etag = "\"0123456789abcdef\""
    _ = Conditional.noneMatchHits(header, etag: etag)
    _ = Conditional.ifRangeHolds(header, etag: etag, lastModified: "Sun, 06 Nov 1994 08:49:37 GMT")
    if let date = HTTPDate.parse(header) {
        let formatted = HTTPDate.format(date)
        guard let again = HTTPDate.parse(formatted) else { fuzzFail("HTTPDate.format gave '\(formatted)', which does not parse") }
        if abs(again.timeIntervalSince1970 - date.timeIntervalSince1970.rounded(.down)) > 1 {
            fuzzFail("'\(header)' -> \(date) -> '\(formatted)' -> \(again)")
        }
    }
}

@_cdecl("FuzzRange_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt { runFuzzer(argc, argv, fuzzOne) }
