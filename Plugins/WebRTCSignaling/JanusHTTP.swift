// WebRTCSignaling: a small HTTP/1.1 client for the Janus HTTP API (plain http on a private network or loopback).
//
// Janus is our own server, but its replies are read as semi-trusted bytes: the parser bounds the header and body
// sizes, accepts Content-Length, chunked or read-until-close bodies, and never traps (fuzz/Sources/FuzzJanus).
// The client does blocking POSIX I/O on a Dispatch thread (never on the Swift concurrency pool), one connection per
// request (`Connection: close`); the long poll of the Janus session is the only request that waits for long.

import Dispatch
import Foundation
import PluginAPI

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where an HTTP API lives: `http://host:port/path`.
struct HTTPEndpoint: Sendable, Equatable {
    let host: String
    let port: UInt16
    /// The path without a trailing slash (`/janus`).
    let path: String

    /// Parses an `http://` URL. No TLS: Janus is reached on loopback or the stack's private network.
    /// - Returns: nil for anything else (another scheme, no host, a query or fragment, user info).
    static func parse(_ text: String) -> HTTPEndpoint? {
        guard text.utf8.count <= 512, text.hasPrefix("http://"), let components = URLComponents(string: text),
            components.scheme == "http", let host = components.host, !host.isEmpty, components.user == nil,
            components.password == nil, components.query == nil, components.fragment == nil
        else { return nil }
        let allowedHost = host.utf8.allSatisfy { byte in
            (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) || byte == UInt8(ascii: ".")
                || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ":")
        }
        guard allowedHost else { return nil }
        let port = components.port ?? 80
        guard (1...65535).contains(port) else { return nil }
        var path = components.path
        while path.hasSuffix("/") { path.removeLast() }
        guard path.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7f }) else { return nil }
        return HTTPEndpoint(host: host, port: UInt16(port), path: path)
    }
}

/// A failed HTTP exchange.
struct HTTPClientError: Error, Sendable, CustomStringConvertible {
    let description: String
}

/// Reads an HTTP/1.1 response from the bytes received so far.
enum HTTPResponseParser {
    /// Largest header section accepted.
    static let maxHeaderBytes = 16 * 1024

    /// What the bytes so far amount to.
    enum Outcome: Equatable, Sendable {
        /// More bytes are needed (or, for a body delimited by the close, the end of the stream).
        case incomplete
        /// A whole response.
        case complete(status: Int, body: [UInt8])
    }

    /// Parses `bytes`.
    /// - Parameters:
    ///   - bytes: Everything received.
    ///   - ended: True when the peer closed the connection (a body without a length ends there).
    ///   - maxBody: Largest body accepted.
    /// - Throws: ``HTTPClientError`` for a malformed or oversized response.
    static func parse(_ bytes: [UInt8], ended: Bool, maxBody: Int) throws(HTTPClientError) -> Outcome {
        guard let headerEnd = find([13, 10, 13, 10], in: bytes, from: 0, limit: maxHeaderBytes + 4) else {
            if bytes.count > maxHeaderBytes { throw HTTPClientError(description: "response header over \(maxHeaderBytes) bytes") }
            if ended { throw HTTPClientError(description: "connection closed inside the response header") }
            return .incomplete
        }
        guard let head = String(validating: bytes[0..<headerEnd], as: UTF8.self) else {
            throw HTTPClientError(description: "response header is not UTF-8")
        }
        let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        guard let statusLine = lines.first else { throw HTTPClientError(description: "empty response") }
        let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), parts[1].utf8.count == 3, let status = Int(parts[1]), (100...599).contains(status)
        else { throw HTTPClientError(description: "bad status line") }
        var contentLength: Int?
        var chunked = false
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { throw HTTPClientError(description: "bad header line") }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            switch name {
            case "content-length":
                guard let length = Int(value), length >= 0, contentLength == nil || contentLength == length else {
                    throw HTTPClientError(description: "bad Content-Length")
                }
                contentLength = length
            case "transfer-encoding":
                chunked = value.lowercased().split(separator: ",").last.map { $0.trimmingCharacters(in: .whitespaces) == "chunked" } ?? false
            default:
                break
            }
        }
        let bodyStart = headerEnd + 4
        if chunked {
            return try dechunk(bytes, from: bodyStart, ended: ended, maxBody: maxBody).map { .complete(status: status, body: $0) } ?? .incomplete
        }
        if let contentLength {
            guard contentLength <= maxBody else { throw HTTPClientError(description: "body of \(contentLength) bytes is over \(maxBody)") }
            guard bytes.count - bodyStart >= contentLength else {
                if ended { throw HTTPClientError(description: "connection closed inside the body") }
                return .incomplete
            }
            return .complete(status: status, body: Array(bytes[bodyStart..<(bodyStart + contentLength)]))
        }
        if status == 204 || status == 304 || (100...199).contains(status) { return .complete(status: status, body: []) }
        guard bytes.count - bodyStart <= maxBody else { throw HTTPClientError(description: "body over \(maxBody) bytes") }
        return ended ? .complete(status: status, body: Array(bytes[bodyStart...])) : .incomplete
    }

    private static func dechunk(_ bytes: [UInt8], from start: Int, ended: Bool, maxBody: Int) throws(HTTPClientError) -> [UInt8]? {
        var body: [UInt8] = []
        var index = start
        while true {
            guard let lineEnd = find([13, 10], in: bytes, from: index, limit: 64) else {
                if bytes.count - index > 64 { throw HTTPClientError(description: "bad chunk size line") }
                if ended { throw HTTPClientError(description: "connection closed inside a chunk") }
                return nil
            }
            let sizeText = bytes[index..<lineEnd].prefix { $0 != UInt8(ascii: ";") }
            guard let text = String(validating: sizeText, as: UTF8.self), let size = Int(text.trimmingCharacters(in: .whitespaces), radix: 16),
                size >= 0
            else { throw HTTPClientError(description: "bad chunk size") }
            guard size <= maxBody - body.count else { throw HTTPClientError(description: "body over \(maxBody) bytes") }
            let dataStart = lineEnd + 2
            if size == 0 {
                // The last chunk; trailers end with an empty line (`0\r\n\r\n`).
                guard find([13, 10, 13, 10], in: bytes, from: lineEnd, limit: maxHeaderBytes) != nil else {
                    if ended { throw HTTPClientError(description: "connection closed inside the trailer") }
                    return nil
                }
                return body
            }
            guard bytes.count - dataStart >= size + 2 else {
                if ended { throw HTTPClientError(description: "connection closed inside a chunk") }
                return nil
            }
            guard bytes[dataStart + size] == 13, bytes[dataStart + size + 1] == 10 else { throw HTTPClientError(description: "chunk without CRLF") }
            body.append(contentsOf: bytes[dataStart..<(dataStart + size)])
            index = dataStart + size + 2
        }
    }

    /// The index of `needle` in `bytes` at or after `from`, looking at most `limit` bytes.
    static func find(_ needle: [UInt8], in bytes: [UInt8], from: Int, limit: Int) -> Int? {
        guard from >= 0, !needle.isEmpty, bytes.count >= needle.count else { return nil }
        let last = min(bytes.count - needle.count, from + limit)
        guard from <= last else { return nil }
        var index = from
        while index <= last {
            if bytes[index] == needle[0] {
                var match = true
                for offset in 1..<needle.count where bytes[index + offset] != needle[offset] {
                    match = false
                    break
                }
                if match { return index }
            }
            index += 1
        }
        return nil
    }
}

/// One-shot HTTP/1.1 requests with blocking sockets, run on Dispatch threads.
struct HTTPClient: Sendable {
    let endpoint: HTTPEndpoint
    /// Largest response body accepted.
    var maxBody = 4 << 20

    /// Sends a request and waits for the whole response.
    /// - Parameters:
    ///   - method: `GET` or `POST`.
    ///   - path: The request target (path and query), e.g. `/janus/123?maxev=5`.
    ///   - body: A JSON body for POST.
    ///   - timeout: For connecting and for the whole exchange.
    func send(_ method: String, _ path: String, body: [UInt8]? = nil, timeout: Duration) async throws -> (status: Int, body: [UInt8]) {
        let endpoint = self.endpoint
        let maxBody = self.maxBody
        return try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global(qos: .userInitiated).async {
                continuation.resume(
                    with: Result {
                        try Self.exchange(endpoint: endpoint, method: method, path: path, body: body, timeout: timeout, maxBody: maxBody)
                    })
            }
        }
    }

    private static func exchange(
        endpoint: HTTPEndpoint, method: String, path: String, body: [UInt8]?, timeout: Duration, maxBody: Int
    ) throws -> (status: Int, body: [UInt8]) {
        let deadline = ContinuousClock.now + timeout
        let fd = try connect(endpoint, timeout: timeout)
        defer { close(fd) }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: \(endpoint.host):\(endpoint.port)\r\nConnection: close\r\nAccept: application/json\r\n"
        if let body { head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n" }
        head += "\r\n"
        try writeAll(fd, Array(head.utf8) + (body ?? []), deadline: deadline)
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            switch try HTTPResponseParser.parse(received, ended: false, maxBody: maxBody) {
            case .complete(let status, let body): return (status, body)
            case .incomplete: break
            }
            try waitFor(fd, events: Int16(POLLIN), deadline: deadline)
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw HTTPClientError(description: "recv: \(String(cString: strerror(errno)))")
            }
            if count == 0 {
                switch try HTTPResponseParser.parse(received, ended: true, maxBody: maxBody) {
                case .complete(let status, let body): return (status, body)
                case .incomplete: throw HTTPClientError(description: "connection closed early")
                }
            }
            received.append(contentsOf: buffer[0..<count])
            guard received.count <= maxBody + HTTPResponseParser.maxHeaderBytes + 1024 else {
                throw HTTPClientError(description: "response too large")
            }
        }
    }

    private static func connect(_ endpoint: HTTPEndpoint, timeout: Duration) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc)
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
            hints.ai_socktype = SOCK_STREAM
        #endif
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(endpoint.host, String(endpoint.port), &hints, &list)
        guard status == 0, let first = list else { throw HTTPClientError(description: "cannot resolve \(endpoint.host)") }
        defer { freeaddrinfo(list) }
        let deadline = ContinuousClock.now + timeout
        var lastError = "no address"
        var current: UnsafeMutablePointer<addrinfo>? = first
        while let info = current {
            current = info.pointee.ai_next
            let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
            guard fd >= 0 else { continue }
            let flags = fcntl(fd, F_GETFL, 0)
            _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
            if Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 { return fd }
            if errno == EINPROGRESS {
                do {
                    try waitFor(fd, events: Int16(POLLOUT), deadline: deadline)
                    var error: Int32 = 0
                    var length = socklen_t(MemoryLayout<Int32>.size)
                    getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
                    if error == 0 { return fd }
                    lastError = String(cString: strerror(error))
                } catch {
                    lastError = "\(error)"
                }
            } else {
                lastError = String(cString: strerror(errno))
            }
            close(fd)
        }
        throw HTTPClientError(description: "cannot connect to \(endpoint.host):\(endpoint.port): \(lastError)")
    }

    private static func waitFor(_ fd: Int32, events: Int16, deadline: ContinuousClock.Instant) throws {
        while true {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { throw HTTPClientError(description: "timed out") }
            let milliseconds = Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
            var entry = pollfd(fd: fd, events: events, revents: 0)
            let ready = poll(&entry, 1, milliseconds)
            if ready > 0 { return }
            if ready < 0, errno != EINTR { throw HTTPClientError(description: "poll: \(String(cString: strerror(errno)))") }
        }
    }

    private static func writeAll(_ fd: Int32, _ bytes: [UInt8], deadline: ContinuousClock.Instant) throws {
        var offset = 0
        while offset < bytes.count {
            try waitFor(fd, events: Int16(POLLOUT), deadline: deadline)
            let written = bytes.withUnsafeBytes { raw in
                Glibc.send(fd, raw.baseAddress.map { $0 + offset }, bytes.count - offset, Int32(MSG_NOSIGNAL))
            }
            if written < 0 {
                if errno == EINTR || errno == EAGAIN { continue }
                throw HTTPClientError(description: "send: \(String(cString: strerror(errno)))")
            }
            offset += written
        }
    }
}
