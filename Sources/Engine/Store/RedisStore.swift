// Store: the Redis backend over hiredis: a small pool of blocking connections on their own threads,
// timeouts, reconnects, one log line per outage, and Lua scripts for the atomic operations.

import Foundation
import Logging
import NIOConcurrencyHelpers
@_spi(Engine) import PluginAPI
import Synchronization

/// ``EngineStore`` on a Redis server. Every call runs on one of the pool's own threads, never on an
/// event loop; a broken connection is dropped and re-made on the next call.
public final class RedisStore: EngineStore {
    final class Slot: @unchecked Sendable {
        let queue: DispatchQueue
        // Touched only on `queue`.
        var connection: RedisConnection?
        init(index: Int) { queue = BlockingIO.serialQueue(label: "onionrp.redis.\(index)") }
    }

    let endpoint: RedisEndpoint
    let slots: [Slot]
    let next = Atomic<Int>(0)
    let connectTimeout: Duration
    let commandTimeout: Duration
    let logger: Logger
    let outage = Mutex<(down: Bool, retryAfter: ContinuousClock.Instant?)>((false, nil))
    let supportsGetDel = Atomic<Bool>(true)
    let subscriptions = Mutex<[RedisSubscription]>([])

    public var backendName: String { "redis" }

    /// Creates the store; nothing connects until the first call (``ping()`` at start-up).
    /// - Parameters:
    ///   - url: `REDIS_URL`.
    ///   - poolSize: Connections, each with its own thread.
    public init(
        url: String, poolSize: Int = 4, connectTimeout: Duration = .milliseconds(500),
        commandTimeout: Duration = .milliseconds(800), logger: Logger
    ) throws {
        self.endpoint = try RedisEndpoint(url: url)
        self.slots = (0..<max(1, poolSize)).map(Slot.init)
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.logger = logger
    }

    /// Where it connects (no password), for logs.
    public var address: String { endpoint.description }

    // MARK: running commands

    private func markDown(_ reason: String) {
        let wasDown = outage.withLock { state -> Bool in
            let was = state.down
            state = (true, ContinuousClock.now + .milliseconds(200))
            return was
        }
        if !wasDown { logger.error("redis at \(endpoint) is unavailable: \(reason); requests that need it answer 503 until it is back") }
    }

    private func markUp() {
        let wasDown = outage.withLock { state -> Bool in
            let was = state.down
            state = (false, nil)
            return was
        }
        if wasDown { logger.notice("redis at \(endpoint) is reachable again") }
    }

    /// Runs `arguments` on a pooled connection.
    /// - Throws: ``StoreError/unavailable(_:)`` when Redis cannot be reached in time; ``StoreError/protocolError(_:)`` for an error reply.
    func run(_ arguments: [[UInt8]]) async throws -> RedisValue {
        // During an outage, fail fast between reconnect attempts instead of queueing behind timeouts.
        if let retry = outage.withLock({ $0.down ? $0.retryAfter : nil }), ContinuousClock.now < retry {
            throw StoreError.unavailable("redis at \(endpoint) is unreachable")
        }
        let slot = slots[next.add(1, ordering: .relaxed).newValue % slots.count]
        let result: Result<RedisValue, any Error> = await withCheckedContinuation { continuation in
            slot.queue.async { [endpoint, connectTimeout, commandTimeout] in
                do {
                    let connection: RedisConnection
                    if let existing = slot.connection {
                        connection = existing
                    } else {
                        connection = try RedisConnection(endpoint: endpoint, connectTimeout: connectTimeout, commandTimeout: commandTimeout)
                        slot.connection = connection
                    }
                    continuation.resume(returning: .success(try connection.command(arguments)))
                } catch {
                    slot.connection = nil
                    continuation.resume(returning: .failure(error))
                }
            }
        }
        switch result {
        case .success(let value):
            markUp()
            if case .error(let message) = value { throw StoreError.protocolError(message) }
            return value
        case .failure(let error as StoreConfigError):
            throw StoreError.unavailable(error.description)
        case .failure(let error):
            markDown("\(error)")
            throw StoreError.unavailable("redis at \(endpoint): \(error)")
        }
    }

    func run(_ words: String...) async throws -> RedisValue { try await run(words.map { Array($0.utf8) }) }

    static func milliseconds(_ duration: Duration) -> String {
        String(max(1, duration.wholeMilliseconds))
    }

    // MARK: EngineStore

    public func ping() async throws {
        _ = try await run("PING")
    }

    /// What Redis' persistence settings mean for answered saves (`CONFIG GET appendonly / appendfsync`), as a log line
    /// and whether it is a warning; nil when the settings cannot be read (CONFIG renamed or not allowed).
    func durabilityNote() async -> (line: String, warning: Bool)? {
        func setting(_ name: String) async -> String? {
            guard case .array(let parts) = try? await run("CONFIG", "GET", name), parts.count == 2 else { return nil }
            return parts[1].text
        }
        guard let appendOnly = await setting("appendonly") else { return nil }
        guard appendOnly == "yes" else {
            return (
                "redis at \(endpoint) has no append-only file (appendonly \(appendOnly)): a Redis restart loses scene saves made since its "
                    + "last snapshot; run it with --appendonly yes --appendfsync always (README, \"Several engines\")", true
            )
        }
        let fsync = await setting("appendfsync") ?? "?"
        if fsync == "always" { return ("redis at \(endpoint): append-only file fsynced on every write; no answered save is lost", false) }
        return (
            "redis at \(endpoint): appendfsync \(fsync): a Redis crash can lose up to about a second of answered saves; "
                + "use appendfsync always to lose none", true
        )
    }

    public func get(_ key: String) async throws -> [UInt8]? {
        try await run("GET", key).bytes
    }

    public func set(_ key: String, _ value: [UInt8], ttl: Duration?, onlyIfAbsent: Bool) async throws -> Bool {
        var arguments: [[UInt8]] = [Array("SET".utf8), Array(key.utf8), value]
        if let ttl { arguments += [Array("PX".utf8), Array(Self.milliseconds(ttl).utf8)] }
        if onlyIfAbsent { arguments.append(Array("NX".utf8)) }
        return try await run(arguments) != .null
    }

    static let takeScript = "local v = redis.call('GET', KEYS[1]); if v then redis.call('DEL', KEYS[1]) end; return v"

    public func take(_ key: String) async throws -> [UInt8]? {
        if supportsGetDel.load(ordering: .relaxed) {
            do {
                return try await run("GETDEL", key).bytes
            } catch StoreError.protocolError(let message) where message.lowercased().contains("unknown command") {
                // Redis older than 6.2: the same atomicity through a script.
                supportsGetDel.store(false, ordering: .relaxed)
                logger.notice("redis has no GETDEL (older than 6.2); using a Lua script for atomic take")
            }
        }
        return try await run("EVAL", Self.takeScript, "1", key).bytes
    }

    static let incrementScript = """
        local v = redis.call('INCRBY', KEYS[1], ARGV[1])
        if v == tonumber(ARGV[1]) and tonumber(ARGV[2]) > 0 and redis.call('PTTL', KEYS[1]) == -1 then
          redis.call('PEXPIRE', KEYS[1], ARGV[2])
        end
        return v
        """

    public func increment(_ key: String, by delta: Int64, ttl: Duration?) async throws -> Int64 {
        let value = try await run("EVAL", Self.incrementScript, "1", key, String(delta), ttl.map(Self.milliseconds) ?? "0")
        guard let number = value.integer else { throw StoreError.protocolError("INCRBY answered \(value)") }
        return number
    }

    public func expire(_ key: String, ttl: Duration) async throws -> Bool {
        try await run("PEXPIRE", key, Self.milliseconds(ttl)).integer == 1
    }

    public func delete(_ key: String) async throws -> Bool {
        try await run("DEL", key).integer == 1
    }

    /// Escapes the glob characters of a SCAN pattern.
    static func globEscaped(_ text: String) -> String {
        var out = ""
        for character in text {
            if "*?[]\\".contains(character) { out.append("\\") }
            out.append(character)
        }
        return out
    }

    public func keys(prefix: String) async throws -> [String] {
        var cursor = "0"
        var keys: [String] = []
        repeat {
            let reply = try await run("SCAN", cursor, "MATCH", Self.globEscaped(prefix) + "*", "COUNT", "500")
            guard case .array(let parts) = reply, parts.count == 2, let next = parts[0].bytes, case .array(let found) = parts[1] else {
                throw StoreError.protocolError("SCAN answered \(reply)")
            }
            cursor = String(decoding: next, as: UTF8.self)
            keys += found.compactMap { $0.bytes.map { String(decoding: $0, as: UTF8.self) } }
        } while cursor != "0"
        return keys
    }

    static let bucketScript = """
        local burst = tonumber(ARGV[1])
        local rate = tonumber(ARGV[2]) / 60000.0
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
        local tokens = tonumber(b[1]) or burst
        local ts = tonumber(b[2]) or now
        tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
        local allowed = 0
        local wait = 0
        if tokens >= 1 then
          tokens = tokens - 1
          allowed = 1
        else
          wait = math.ceil((1 - tokens) / rate / 1000)
        end
        redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
        redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate) + 1000)
        return {allowed, wait}
        """

    public func takeToken(_ key: String, burst: Int, perMinute: Int) async throws -> RateDecision {
        let reply = try await run("EVAL", Self.bucketScript, "1", key, String(burst), String(perMinute))
        guard case .array(let parts) = reply, parts.count == 2, let allowed = parts[0].integer, let wait = parts[1].integer else {
            throw StoreError.protocolError("rate script answered \(reply)")
        }
        return RateDecision(allowed: allowed == 1, retryAfterSeconds: allowed == 1 ? 0 : Int(max(1, wait)))
    }

    public func publish(_ channel: String, _ message: [UInt8]) async throws -> Int {
        Int(try await run([Array("PUBLISH".utf8), Array(channel.utf8), message]).integer ?? 0)
    }

    public func subscribe(_ channel: String, handler: @escaping @Sendable ([UInt8]) -> Void) async throws -> any StoreSubscription {
        let subscription = RedisSubscription(endpoint: endpoint, channel: channel, connectTimeout: connectTimeout, logger: logger, handler: handler)
        subscriptions.withLock { $0.append(subscription) }
        try await subscription.start()
        return subscription
    }

    public func close() async {
        for subscription in subscriptions.withLock({ $0 }) { subscription.cancel() }
        for slot in slots {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                slot.queue.async {
                    slot.connection = nil
                    continuation.resume()
                }
            }
        }
    }
}

/// One SUBSCRIBE on its own connection and thread; reconnects and resubscribes after a drop.
final class RedisSubscription: StoreSubscription, @unchecked Sendable {
    let endpoint: RedisEndpoint
    let channel: String
    let connectTimeout: Duration
    let logger: Logger
    let handler: @Sendable ([UInt8]) -> Void
    let cancelled = Atomic<Bool>(false)
    /// A pthread lock rather than `Mutex`: `cancel()` and the reader thread contend for it, and
    /// ThreadSanitizer cannot see a contended `Synchronization.Mutex` being taken (its slow path lives
    /// in the uninstrumented runtime), so it reported a race here that the lock prevents.
    let live = NIOLockedValueBox<RedisConnection?>(nil)

    init(endpoint: RedisEndpoint, channel: String, connectTimeout: Duration, logger: Logger, handler: @escaping @Sendable ([UInt8]) -> Void) {
        self.endpoint = endpoint
        self.channel = channel
        self.connectTimeout = connectTimeout
        self.logger = logger
        self.handler = handler
    }

    /// Subscribes and starts the reader thread; returns once the server confirmed the subscription, or at once when
    /// Redis cannot be reached now (the reader keeps trying; messages published meanwhile are not received).
    func start() async throws {
        let first: RedisConnection?
        do {
            first = try connectAndSubscribe()
        } catch {
            // Also a refused password: never fatal (the store's other calls answer 503 meanwhile), retried like an outage.
            logger.warning("redis subscription to '\(channel)' not made yet: \(error); retrying in the background")
            first = nil
        }
        let thread = Thread { [self] in self.readLoop(first) }
        thread.name = "onionrp.redis.subscribe"
        thread.start()
    }

    private func connectAndSubscribe() throws -> RedisConnection {
        let connection = try RedisConnection(endpoint: endpoint, connectTimeout: connectTimeout, commandTimeout: connectTimeout)
        try connection.send([Array("SUBSCRIBE".utf8), Array(channel.utf8)])
        _ = try connection.nextReply()
        connection.clearTimeout()
        live.withLockedValue { $0 = connection }
        return connection
    }

    private func readLoop(_ first: RedisConnection?) {
        var connection: RedisConnection? = first
        var delay = 0.1
        while !cancelled.load(ordering: .relaxed) {
            do {
                let current = try connection ?? connectAndSubscribe()
                connection = current
                delay = 0.1
                let reply = try current.nextReply()
                if case .array(let parts) = reply, parts.count == 3, parts[0].bytes == Array("message".utf8), let payload = parts[2].bytes {
                    handler(payload)
                }
            } catch {
                connection = nil
                live.withLockedValue { $0 = nil }
                if cancelled.load(ordering: .relaxed) { break }
                logger.warning("redis subscription to '\(channel)' lost: \(error); retrying in \(delay) s")
                Thread.sleep(forTimeInterval: delay)
                delay = min(5, delay * 2)
            }
        }
    }

    func cancel() {
        cancelled.store(true, ordering: .relaxed)
        live.withLockedValue { $0?.shutdownSocket() }
    }
}
