// Store: one blocking hiredis connection, binary-safe argument-vector commands only.

import CHiredis
import Foundation

/// A reply from Redis.
enum RedisValue: Equatable {
    case string([UInt8])
    case integer(Int64)
    case array([RedisValue])
    case null
    case status(String)
    case error(String)

    var bytes: [UInt8]? {
        if case .string(let value) = self { return value }
        return nil
    }
    /// A bulk or status reply as text.
    var text: String? {
        switch self {
        case .string(let value): return String(decoding: value, as: UTF8.self)
        case .status(let value): return value
        default: return nil
        }
    }
    var integer: Int64? {
        switch self {
        case .integer(let value): return value
        case .string(let value): return Int64(String(decoding: value, as: UTF8.self))
        default: return nil
        }
    }
}

/// Where a Redis server is, parsed from `REDIS_URL`.
struct RedisEndpoint: Equatable, CustomStringConvertible {
    enum Address: Equatable {
        case tcp(host: String, port: Int)
        case unix(path: String)
    }

    var address: Address
    var username: String?
    var password: String?
    var database: Int

    /// Parses `redis://[[user]:password@]host[:port][/db]` and `unix:///path/to/redis.sock[?db=N&password=P]`.
    init(url text: String) throws {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased() else {
            throw StoreConfigError("REDIS_URL '\(text)' is not a URL (redis://host:port/db or unix:///path/redis.sock)")
        }
        let query = Dictionary((components.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { $1 })
        switch scheme {
        case "redis":
            guard let host = components.host, !host.isEmpty else { throw StoreConfigError("REDIS_URL '\(text)' has no host") }
            address = .tcp(host: host, port: components.port ?? 6379)
            let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
            if path.isEmpty {
                database = Int(query["db"] ?? "0") ?? 0
            } else {
                guard let db = Int(path) else { throw StoreConfigError("REDIS_URL '\(text)': database '\(path)' is not a number") }
                database = db
            }
            username = components.user.flatMap { $0.isEmpty ? nil : $0 }
            password = components.password ?? query["password"]
        case "unix", "redis+unix":
            guard !components.path.isEmpty else { throw StoreConfigError("REDIS_URL '\(text)' has no socket path") }
            address = .unix(path: components.path)
            database = Int(query["db"] ?? "0") ?? 0
            username = nil
            password = query["password"]
        case "rediss":
            throw StoreConfigError("REDIS_URL '\(text)': TLS (rediss://) is not supported; use a local Redis or a TLS tunnel")
        default:
            throw StoreConfigError("REDIS_URL '\(text)': scheme must be redis:// or unix://")
        }
        guard database >= 0 else { throw StoreConfigError("REDIS_URL '\(text)': database must be 0 or more") }
    }

    /// The address without the password, for logs.
    var description: String {
        switch address {
        case .tcp(let host, let port): return "redis://\(host):\(port)/\(database)"
        case .unix(let path): return "unix://\(path)?db=\(database)"
        }
    }
}

/// A configuration problem of the store.
struct StoreConfigError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A connection failed or answered with an I/O error; the pool discards it.
struct RedisIOError: Error, CustomStringConvertible {
    let description: String
}

/// One blocking hiredis connection. Not thread-safe: the pool confines each to one serial queue
/// (or a subscription to its one reader thread), hence `@unchecked Sendable`.
final class RedisConnection: @unchecked Sendable {
    private let context: UnsafeMutablePointer<redisContext>

    /// Connects, authenticates and selects the database.
    init(endpoint: RedisEndpoint, connectTimeout: Duration, commandTimeout: Duration) throws {
        var tv = Self.timeval(connectTimeout)
        let pointer: UnsafeMutablePointer<redisContext>?
        switch endpoint.address {
        case .tcp(let host, let port): pointer = redisConnectWithTimeout(host, Int32(port), tv)
        case .unix(let path): pointer = redisConnectUnixWithTimeout(path, tv)
        }
        guard let pointer else { throw RedisIOError(description: "cannot allocate a Redis context") }
        if pointer.pointee.err != 0 {
            let message = Self.errorString(pointer)
            redisFree(pointer)
            throw RedisIOError(description: "connect to \(endpoint): \(message)")
        }
        // From here on `deinit` owns the context: a throw below must not free it (a throwing class
        // init that has set every property still runs deinit, so freeing here would free it twice).
        context = pointer
        tv = Self.timeval(commandTimeout)
        redisSetTimeout(context, tv)
        if let password = endpoint.password {
            let auth: [[UInt8]] =
                endpoint.username.map { [Array("AUTH".utf8), Array($0.utf8), Array(password.utf8)] }
                ?? [Array("AUTH".utf8), Array(password.utf8)]
            if case .error(let message) = try command(auth) {
                throw StoreConfigError("Redis refused the password: \(message)")
            }
        }
        if endpoint.database != 0, case .error(let message) = try command([Array("SELECT".utf8), Array(String(endpoint.database).utf8)]) {
            throw StoreConfigError("Redis refused database \(endpoint.database): \(message)")
        }
    }

    deinit { redisFree(context) }

    static func timeval(_ duration: Duration) -> timeval {
        let parts = duration.components
        return CHiredis.timeval(tv_sec: Int(parts.seconds), tv_usec: Int(parts.attoseconds / 1_000_000_000_000))
    }

    static func errorString(_ context: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: context.pointee.errstr) { raw in
            let bytes = raw.prefix { $0 != 0 }
            return String(decoding: bytes, as: UTF8.self)
        }
    }

    /// Calls `body` with C argument vectors holding copies of `arguments` (binary safe).
    private func withArgv<T>(
        _ arguments: [[UInt8]], _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafeMutablePointer<Int>) throws -> T
    ) rethrows -> T {
        let count = arguments.count
        let pointers = UnsafeMutablePointer<UnsafePointer<CChar>?>.allocate(capacity: max(1, count))
        let lengths = UnsafeMutablePointer<Int>.allocate(capacity: max(1, count))
        var buffers: [UnsafeMutablePointer<CChar>] = []
        defer {
            buffers.forEach { $0.deallocate() }
            pointers.deallocate()
            lengths.deallocate()
        }
        for (index, argument) in arguments.enumerated() {
            let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: max(1, argument.count))
            argument.withUnsafeBytes { raw in
                if let base = raw.baseAddress { UnsafeMutableRawPointer(buffer).copyMemory(from: base, byteCount: argument.count) }
            }
            buffers.append(buffer)
            pointers[index] = UnsafePointer(buffer)
            lengths[index] = argument.count
        }
        return try body(Int32(count), pointers, lengths)
    }

    /// Runs one command given as an argument vector (binary safe; no format strings).
    /// - Throws: ``RedisIOError`` when the connection broke (it must not be used again).
    func command(_ arguments: [[UInt8]]) throws -> RedisValue {
        let raw = withArgv(arguments) { argc, argv, lengths in redisCommandArgv(context, argc, argv, lengths) }
        guard let raw else { throw RedisIOError(description: Self.errorString(context)) }
        defer { freeReplyObject(raw) }
        return Self.convert(raw.assumingMemoryBound(to: redisReply.self))
    }

    /// Reads the next pushed reply (subscriptions).
    func nextReply() throws -> RedisValue {
        var raw: UnsafeMutableRawPointer?
        guard redisGetReply(context, &raw) == REDIS_OK, let raw else {
            throw RedisIOError(description: Self.errorString(context))
        }
        defer { freeReplyObject(raw) }
        return Self.convert(raw.assumingMemoryBound(to: redisReply.self))
    }

    /// Sends a command without waiting for its reply (SUBSCRIBE).
    func send(_ arguments: [[UInt8]]) throws {
        let status = withArgv(arguments) { argc, argv, lengths in redisAppendCommandArgv(context, argc, argv, lengths) }
        guard status == REDIS_OK else { throw RedisIOError(description: Self.errorString(context)) }
        var done: Int32 = 0
        while done == 0 {
            guard redisBufferWrite(context, &done) == REDIS_OK else { throw RedisIOError(description: Self.errorString(context)) }
        }
    }

    /// Removes the read timeout (a subscriber waits as long as it takes).
    func clearTimeout() {
        redisSetTimeout(context, CHiredis.timeval(tv_sec: 0, tv_usec: 0))
    }

    /// Shuts the socket down so that a blocked reader returns.
    func shutdownSocket() {
        _ = Glibc.shutdown(context.pointee.fd, Int32(SHUT_RDWR))
    }

    static func convert(_ reply: UnsafeMutablePointer<redisReply>) -> RedisValue {
        let value = reply.pointee
        switch Int32(value.type) {
        case REDIS_REPLY_STRING:
            guard let str = value.str else { return .string([]) }
            return .string(Array(UnsafeRawBufferPointer(start: str, count: value.len)))
        case REDIS_REPLY_STATUS:
            return .status(value.str.map { String(cString: $0) } ?? "")
        case REDIS_REPLY_ERROR:
            return .error(value.str.map { String(cString: $0) } ?? "error")
        case REDIS_REPLY_INTEGER:
            return .integer(value.integer)
        case REDIS_REPLY_NIL:
            return .null
        case REDIS_REPLY_ARRAY:
            var items: [RedisValue] = []
            for index in 0..<value.elements {
                if let element = value.element?[index] { items.append(convert(element)) } else { items.append(.null) }
            }
            return .array(items)
        default:
            return .null
        }
    }
}
