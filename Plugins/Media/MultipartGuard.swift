// Media: follows MultipartKit's parser state over the bytes it is fed, to refuse what would trap it.

/// MultipartKit 4.7.1 looks a part header's name bytes up in a 128-entry table, so a name byte of 0x80
/// or more traps the process (index out of range) instead of being a syntax error. This guard steps
/// through the same states as `MultipartParser` (preamble, headers, body, boundary, epilogue) over the
/// same input, and says no before such a byte reaches it.
///
/// It mirrors the parser's transitions exactly; where the parser would throw a syntax error the guard
/// refuses too, so the two never disagree about where the header names are.
struct MultipartGuard {
    private enum State: Equatable {
        case preamble(matched: Int)
        case preHeaders(expectingLF: Bool)
        case headerName(empty: Bool)
        case headerValue
        case postHeaderValue
        case postHeaders
        case body
        case boundary(matched: Int)
        case epilogue
    }

    /// `CRLF--boundary`, as the parser matches it.
    private let delimiter: [UInt8]
    private var state = State.preamble(matched: 0)

    init(boundary: String) {
        delimiter = Array("\r\n--\(boundary)".utf8)
    }

    /// RFC 822 token characters: what the parser accepts in a header name.
    static let nameCharacters: [Bool] = (0..<128).map { code in
        (33...126).contains(code) && !Array(#"()<>@,;:\"/[]?={}"#.utf8).contains(UInt8(code))
    }

    /// False when feeding `bytes` to the parser (after everything fed before) would trap it or make it
    /// throw a syntax error; the caller refuses the body then.
    mutating func admits<Bytes: Sequence>(_ bytes: Bytes) -> Bool where Bytes.Element == UInt8 {
        for byte in bytes {
            guard step(byte) else { return false }
            if state == .epilogue { return true }
        }
        return true
    }

    private mutating func step(_ byte: UInt8) -> Bool {
        let cr: UInt8 = 13, lf: UInt8 = 10, colon: UInt8 = 58, hyphen: UInt8 = 45
        switch state {
        case .preamble(var matched):
            if matched == 0, byte == delimiter[2] {
                matched = 3
            } else if byte == delimiter[matched] {
                matched += 1
            } else if matched > 0, byte == delimiter[0] {
                matched = 1
            } else {
                matched = 0
            }
            state = matched >= delimiter.count ? .preHeaders(expectingLF: false) : .preamble(matched: matched)
        case .preHeaders(let expectingLF):
            if !expectingLF, byte == cr {
                state = .preHeaders(expectingLF: true)
            } else if expectingLF, byte == lf {
                state = .headerName(empty: true)
            } else {
                return false
            }
        case .headerName(let empty):
            if byte == colon, !empty {
                state = .headerValue
            } else if byte == cr, empty {
                state = .postHeaders
            } else if byte < 128, Self.nameCharacters[Int(byte)] {
                state = .headerName(empty: false)
            } else {
                return false
            }
        case .headerValue:
            if byte == cr { state = .postHeaderValue }
        case .postHeaderValue:
            guard byte == lf else { return false }
            state = .headerName(empty: true)
        case .postHeaders:
            guard byte == lf else { return false }
            state = .body
        case .body:
            if byte == delimiter[0] { state = .boundary(matched: 1) }
        case .boundary(let matched):
            if matched >= delimiter.count {
                if byte == cr {
                    state = .preHeaders(expectingLF: true)
                } else if byte == hyphen {
                    state = .epilogue
                } else {
                    return false
                }
            } else if byte == delimiter[matched] {
                state = .boundary(matched: matched + 1)
            } else {
                state = byte == delimiter[0] ? .boundary(matched: 1) : .body
            }
        case .epilogue:
            break
        }
        return true
    }
}
