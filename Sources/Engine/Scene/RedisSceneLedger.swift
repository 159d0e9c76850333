// Scene: the redis backend's ledger. Several engines share one Redis: every save is a compare-and-set in a Lua
// script (one version number per save, never two engines with the same one, no lost update), and every change goes
// into one Redis stream in version order, which each engine follows to install and broadcast the changes of all.

import Foundation
import Logging
import NIOConcurrencyHelpers
@_spi(Engine) import PluginAPI
import Synchronization

/// Keys (prefix `onionrp:scenes:`): `revision` (the highest version given), `heads` (hash: scene name -> current
/// version), `hist:<name>` (hash: version -> the kept history record, JSON), `active`, `epoch` (made once; a Redis
/// that lost everything gets a new one, so clients resync), `log` (stream of changes, ids `<version>-0` for versions and
/// `<revision>-<n>` for deletions, capped at `scene.replay_log_size`).
final class RedisSceneLedger: SceneLedger, @unchecked Sendable {
    let endpoint: RedisEndpoint
    let logger: Logger
    let limits: SceneLimits
    let replayLength: Int
    /// Where the embedded backend kept scenes: imported once into an empty Redis.
    let importFrom: URL
    let prefix = "onionrp:scenes:"
    let connectTimeout: Duration
    let commandTimeout: Duration
    /// Used on the scene store's persistence queue only.
    private var connection: RedisConnection?
    /// The epoch and the cursor the follower continues from after a reload.
    private let shared = Mutex<(epoch: String, restart: LedgerCursor?)>(("", nil))
    private let follower = Mutex<LedgerFollower?>(nil)
    private let loadedOnce = Atomic<Bool>(false)

    init(store: RedisStore, importFrom: URL, limits: SceneLimits, replayLength: Int, logger: Logger) {
        self.endpoint = store.endpoint
        self.connectTimeout = store.connectTimeout
        self.commandTimeout = max(store.commandTimeout, .seconds(2))
        self.importFrom = importFrom
        self.limits = limits
        self.replayLength = replayLength
        self.logger = logger
    }

    var isShared: Bool { true }

    var keys: (revision: String, heads: String, active: String, log: String, epoch: String) {
        (prefix + "revision", prefix + "heads", prefix + "active", prefix + "log", prefix + "epoch")
    }

    private func hist(_ name: String) -> String { prefix + "hist:" + name }

    // MARK: commands

    private func run(_ arguments: [String]) throws -> RedisValue {
        try run(arguments.map { Array($0.utf8) })
    }

    /// Runs a command on this ledger's connection; a broken connection is made again once.
    private func run(_ arguments: [[UInt8]]) throws -> RedisValue {
        for attempt in 0..<2 {
            do {
                let live = try connection ?? RedisConnection(endpoint: endpoint, connectTimeout: connectTimeout, commandTimeout: commandTimeout)
                connection = live
                let value = try live.command(arguments)
                if case .error(let message) = value { throw StoreError.protocolError(message) }
                return value
            } catch let error as RedisIOError {
                connection = nil
                if attempt == 1 { throw StoreError.unavailable("redis at \(endpoint): \(error)") }
            }
        }
        throw StoreError.unavailable("redis at \(endpoint)")
    }

    // MARK: loading

    static let loadScript = """
        local rev = redis.call('GET', KEYS[1]) or '0'
        local active = redis.call('GET', KEYS[3]) or ''
        local epoch = redis.call('GET', KEYS[5]) or ''
        local last = redis.call('XREVRANGE', KEYS[4], '+', '-', 'COUNT', 1)
        local cursor = ''
        if #last > 0 then cursor = last[1][1] end
        local scenes = {}
        for _, name in ipairs(redis.call('HKEYS', KEYS[2])) do
          scenes[#scenes + 1] = name
          scenes[#scenes + 1] = redis.call('HVALS', ARGV[1] .. name)
        end
        return {rev, active, epoch, cursor, scenes}
        """

    func load() throws -> SceneLedgerSnapshot {
        _ = try run(["SET", keys.epoch, SceneEpoch.make(), "NX"])
        var snapshot = try read()
        // Only at start-up: an empty Redis later (one that lost its data) gets the engines' scenes back instead.
        let firstLoad = !loadedOnce.exchange(true, ordering: .relaxed)
        if firstLoad && snapshot.history.isEmpty && snapshot.revision == 0 {
            let local = try FileSceneLedger(directory: importFrom, limits: limits, logger: logger).load()
            if !local.history.isEmpty {
                if try seed(local) {
                    logger.notice("imported \(local.history.count) scene(s) from \(importFrom.path) into redis (revision \(local.revision))")
                }
                snapshot = try read()
            }
        }
        shared.withLock { $0 = (snapshot.epoch, snapshot.cursor) }
        return snapshot
    }

    private func read() throws -> SceneLedgerSnapshot {
        let reply = try run(["EVAL", Self.loadScript, "5", keys.revision, keys.heads, keys.active, keys.log, keys.epoch, prefix + "hist:"])
        guard case .array(let parts) = reply, parts.count == 5, let revisionText = parts[0].text, let revision = Int64(revisionText),
            let active = parts[1].text, let epoch = parts[2].text, let cursorText = parts[3].text, case .array(let scenes) = parts[4]
        else {
            throw StoreError.protocolError("the scene load script answered \(reply)")
        }
        var snapshot = SceneLedgerSnapshot()
        snapshot.revision = revision
        snapshot.active = active.isEmpty ? nil : active
        snapshot.epoch = epoch
        snapshot.cursor = LedgerCursor(cursorText) ?? LedgerCursor(version: revision, sequence: 0)
        let decoder = JSONDecoder()
        var index = 0
        while index + 1 < scenes.count {
            defer { index += 2 }
            guard let name = scenes[index].text, case .array(let values) = scenes[index + 1] else { continue }
            var records: [SceneVersionRecord] = []
            for value in values {
                guard let bytes = value.bytes else { continue }
                do {
                    records.append(try decoder.decode(SceneVersionRecord.self, from: Data(bytes)))
                } catch {
                    logger.error("skipping an unreadable history record of scene '\(name)' in redis: \(error)")
                }
            }
            records.sort { $0.scene.version < $1.scene.version }
            if !records.isEmpty { snapshot.history[name] = records }
        }
        return snapshot
    }

    static let seedScript = """
        if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('HLEN', KEYS[2]) > 0 then return 0 end
        local n = tonumber(ARGV[3])
        local i = 4
        for s = 1, n do
          local name = ARGV[i]
          local count = tonumber(ARGV[i + 1])
          i = i + 2
          local head = 0
          for r = 1, count do
            redis.call('HSET', ARGV[1] .. name, ARGV[i], ARGV[i + 1])
            if tonumber(ARGV[i]) > head then head = tonumber(ARGV[i]) end
            i = i + 2
          end
          redis.call('HSET', KEYS[2], name, head)
        end
        redis.call('SET', KEYS[1], ARGV[2])
        if ARGV[i] ~= '' then redis.call('SET', KEYS[3], ARGV[i]) end
        redis.call('XADD', KEYS[4], ARGV[2] .. '-*', 'm', 'seed')
        return 1
        """

    /// Writes `snapshot` into a Redis that holds no scenes (the first start after the embedded backend, or a Redis that
    /// lost everything while engines still had the scenes). False when another engine seeded it first.
    func seed(_ snapshot: SceneLedgerSnapshot) throws -> Bool {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        var arguments: [[UInt8]] = ["EVAL", Self.seedScript, "4", keys.revision, keys.heads, keys.active, keys.log].map { Array($0.utf8) }
        arguments += [prefix + "hist:", String(snapshot.revision), String(snapshot.history.count)].map { Array($0.utf8) }
        for (name, records) in snapshot.history {
            arguments += [Array(name.utf8), Array(String(records.count).utf8)]
            for record in records { arguments += [Array(String(record.scene.version).utf8), Array(try encoder.encode(record))] }
        }
        arguments.append(Array((snapshot.active ?? "").utf8))
        return try run(arguments).integer == 1
    }

    static let resetScript = """
        if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then
          redis.call('SET', KEYS[1], ARGV[1])
          redis.call('XADD', KEYS[3], ARGV[1] .. '-*', 'm', 'reset')
        end
        redis.call('SET', KEYS[2], ARGV[2])
        return 1
        """

    func reset(raisingRevisionTo revision: Int64) throws {
        _ = try run(["EVAL", Self.resetScript, "3", keys.revision, keys.epoch, keys.log, String(revision), SceneEpoch.make()])
    }

    // MARK: writing

    static let appendScript = """
        if tonumber(redis.call('GET', KEYS[1]) or '0') ~= tonumber(ARGV[3]) then return 0 end
        if tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0') ~= tonumber(ARGV[2]) then return 0 end
        redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[9], ARGV[4] .. '-0', 'r', ARGV[5], 'a', ARGV[6], 'x', ARGV[7], 'p', ARGV[8])
        redis.call('SET', KEYS[1], ARGV[4])
        redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
        redis.call('HSET', KEYS[3], ARGV[4], ARGV[5])
        for v in string.gmatch(ARGV[8], '[^,]+') do redis.call('HDEL', KEYS[3], v) end
        if ARGV[6] == '1' then redis.call('SET', KEYS[4], ARGV[1]) end
        return 1
        """

    func append(_ entry: SceneLedgerEntry, expectedSceneVersion: Int64, expectedRevision: Int64) throws -> SceneLedgerOutcome {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let record = try encoder.encode(entry.record)
        let name = entry.record.scene.name
        var arguments = ["EVAL", Self.appendScript, "5", keys.revision, keys.heads, hist(name), keys.active, keys.log].map { Array($0.utf8) }
        arguments += [name, String(expectedSceneVersion), String(expectedRevision), String(entry.record.scene.version)].map { Array($0.utf8) }
        arguments.append(Array(record))
        arguments += [
            entry.activate ? "1" : "0", entry.replacing.map(String.init) ?? "", entry.pruned.map(String.init).joined(separator: ","),
            String(replayLength),
        ].map { Array($0.utf8) }
        return try run(arguments).integer == 1 ? .committed : .conflict
    }

    static let deleteScript = """
        if redis.call('GET', KEYS[4]) == ARGV[1] then return 0 end
        if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 0 end
        local rev = redis.call('GET', KEYS[1]) or '0'
        redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[2], rev .. '-*', 'd', ARGV[1])
        redis.call('HDEL', KEYS[2], ARGV[1])
        redis.call('DEL', KEYS[3])
        return 1
        """

    func delete(_ name: String, revision: Int64) throws -> SceneLedgerOutcome {
        let reply = try run([
            "EVAL", Self.deleteScript, "5", keys.revision, keys.heads, hist(name), keys.active, keys.log, name, String(replayLength),
        ])
        return reply.integer == 1 ? .committed : .conflict
    }

    // MARK: reading changes

    func changes(after cursor: LedgerCursor) throws -> [SceneLedgerChange]? {
        let reply = try run(["XRANGE", keys.log, "(\(cursor)", "+", "COUNT", "10000"])
        guard case .array(let items) = reply else { throw StoreError.protocolError("XRANGE answered \(reply)") }
        let changes = Self.parse(items, logger: logger)
        if let first = changes.first, !cursor.isFollowed(by: first.cursor) { return nil }
        return changes
    }

    /// Stream entries `[id, [field, value, ...]]` as changes; unreadable ones are logged and skipped (their cursor still counts).
    static func parse(_ items: [RedisValue], logger: Logger) -> [SceneLedgerChange] {
        var changes: [SceneLedgerChange] = []
        let decoder = JSONDecoder()
        for item in items {
            guard case .array(let pair) = item, pair.count == 2, let idText = pair[0].text, let cursor = LedgerCursor(idText),
                case .array(let flat) = pair[1]
            else { continue }
            var fields: [String: [UInt8]] = [:]
            var index = 0
            while index + 1 < flat.count {
                if let key = flat[index].text, let value = flat[index + 1].bytes { fields[key] = value }
                index += 2
            }
            if let name = fields["d"] {
                changes.append(SceneLedgerChange(cursor: cursor, kind: .deleted(String(decoding: name, as: UTF8.self))))
            } else if let raw = fields["r"] {
                do {
                    let record = try decoder.decode(SceneVersionRecord.self, from: Data(raw))
                    let replacing = fields["x"].flatMap { Int64(String(decoding: $0, as: UTF8.self)) }
                    let pruned = fields["p"].map { String(decoding: $0, as: UTF8.self).split(separator: ",").compactMap { Int64($0) } } ?? []
                    let entry = SceneLedgerEntry(record: record, activate: fields["a"] == Array("1".utf8), replacing: replacing, pruned: pruned)
                    changes.append(SceneLedgerChange(cursor: cursor, kind: .version(entry)))
                } catch {
                    logger.error("skipping unreadable scene change \(cursor) in redis: \(error)")
                    changes.append(SceneLedgerChange(cursor: cursor, kind: .nothing))
                }
            } else {
                changes.append(SceneLedgerChange(cursor: cursor, kind: .nothing))
            }
        }
        return changes
    }

    // MARK: following

    func follow(from cursor: LedgerCursor, deliver: @escaping @Sendable ([SceneLedgerChange]?) -> Void) {
        let follower = LedgerFollower(ledger: self, cursor: cursor, deliver: deliver)
        self.follower.withLock { $0 = follower }
        follower.start()
    }

    /// The epoch this engine knows and, once, the cursor to continue from after a reload.
    func followState() -> (epoch: String, restart: LedgerCursor?) {
        shared.withLock { state in
            defer { state.restart = nil }
            return state
        }
    }

    func close() {
        follower.withLock { $0 }?.cancel()
    }
}

/// The thread that follows the change log with blocking reads (`XREAD BLOCK`) on its own connection, reconnects after a
/// drop (checking the epoch then: a Redis that lost everything makes every engine reload).
final class LedgerFollower: @unchecked Sendable {
    let ledger: RedisSceneLedger
    let deliver: @Sendable ([SceneLedgerChange]?) -> Void
    let cancelled = Atomic<Bool>(false)
    /// See RedisSubscription: a pthread lock that ThreadSanitizer sees when cancel() and the reader contend.
    let live = NIOLockedValueBox<RedisConnection?>(nil)
    /// Touched by the follower thread only.
    private var cursor: LedgerCursor

    init(ledger: RedisSceneLedger, cursor: LedgerCursor, deliver: @escaping @Sendable ([SceneLedgerChange]?) -> Void) {
        self.ledger = ledger
        self.cursor = cursor
        self.deliver = deliver
    }

    func start() {
        let thread = Thread { [self] in self.loop() }
        thread.name = "onionrp.scenes.follow"
        thread.start()
    }

    private func loop() {
        var connection: RedisConnection?
        var delay = 0.1
        var epoch = ledger.followState().epoch
        while !cancelled.load(ordering: .relaxed) {
            do {
                let state = ledger.followState()
                if let restart = state.restart {
                    cursor = restart
                    epoch = state.epoch
                }
                let current: RedisConnection
                if let connection {
                    current = connection
                } else {
                    current = try RedisConnection(endpoint: ledger.endpoint, connectTimeout: ledger.connectTimeout, commandTimeout: .seconds(5))
                    live.withLockedValue { $0 = current }
                    connection = current
                    let now = try current.command([Array("GET".utf8), Array(ledger.keys.epoch.utf8)]).text ?? ""
                    if now != epoch {
                        ledger.logger.warning("the scene ledger's epoch changed (\(epoch) -> \(now.isEmpty ? "none" : now)): reloading")
                        epoch = now
                        deliver(nil)
                        continue
                    }
                    // Whatever happened while disconnected: the store reads it with its own cursor.
                    delay = 0.1
                }
                let reply = try current.command(
                    ["XREAD", "COUNT", "1000", "BLOCK", "2000", "STREAMS", ledger.keys.log, cursor.description].map { Array($0.utf8) })
                // After each batch, and when quiet for the block time: make sure Redis was not emptied meanwhile
                // (FLUSHALL keeps connections open); changes of another epoch are not installed, the store reloads.
                let now = try current.command([Array("GET".utf8), Array(ledger.keys.epoch.utf8)]).text ?? ""
                if now != epoch {
                    ledger.logger.warning("the scene ledger's epoch changed (\(epoch) -> \(now.isEmpty ? "none" : now)): reloading")
                    epoch = now
                    deliver(nil)
                    continue
                }
                guard case .array(let streams) = reply, let stream = streams.first, case .array(let pair) = stream, pair.count == 2,
                    case .array(let items) = pair[1]
                else { continue }
                let changes = RedisSceneLedger.parse(items, logger: ledger.logger)
                guard let last = changes.last else { continue }
                cursor = last.cursor
                deliver(changes)
            } catch {
                connection = nil
                live.withLockedValue { $0 = nil }
                if cancelled.load(ordering: .relaxed) { break }
                ledger.logger.warning("following the scene changes in redis failed: \(error); retrying in \(delay) s")
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
