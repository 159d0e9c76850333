// WebRTCSignaling: the Janus API (HTTP transport): one Janus session per engine, a handle per publisher and viewer
// connection, requests with their replies and asynchronous events (long poll), and the admin API's handle_info.

import Foundation
import PluginAPI
import Synchronization

/// An error from Janus: the core's (`"janus": "error"`) or the VideoRoom plugin's (`error_code` in its data).
struct JanusError: Error, Sendable, CustomStringConvertible, Equatable {
    /// Janus's code (e.g. 458 no such session, 426 no such room, 427 room exists); 0 for transport problems.
    let code: Int
    let reason: String
    var description: String { "janus \(code): \(reason)" }

    /// Session gone (Janus restarted, or the session timed out).
    static let noSuchSession = 458
    /// Handle gone.
    static let noSuchHandle = 459
    /// VideoRoom: the room does not exist.
    static let noSuchRoom = 426
    /// VideoRoom: the room exists already.
    static let roomExists = 427
}

/// One JSON message from Janus (a reply or an event), decoded loosely: unknown members are kept in `raw`.
struct JanusMessage: Sendable, Equatable {
    /// `success`, `ack`, `event`, `error`, `webrtcup`, `media`, `hangup`, `slowlink`, `detached`, `keepalive`, `timeout`, ….
    let kind: String
    let transaction: String?
    let sessionID: Int64?
    /// The handle an event is about.
    let sender: Int64?
    /// `data` of a success, or the plugin's `plugindata.data`.
    let data: JSONValue?
    /// An SDP (`{type, sdp}`) that came with an event.
    let jsep: JSONValue?
    /// The core's or the plugin's error.
    let error: JanusError?
    let raw: JSONValue

    /// Largest reply accepted.
    static let maxBytes = 1 << 20

    /// Decodes one message or an array of them (a long poll with `maxev` > 1).
    /// - Throws: ``JanusError`` (code 0) when the bytes are not JSON objects with a string `janus`.
    static func decodeList(_ bytes: [UInt8]) throws(JanusError) -> [JanusMessage] {
        guard bytes.count <= maxBytes else { throw JanusError(code: 0, reason: "reply over \(maxBytes) bytes") }
        guard let value = try? JSON.decode(JSONValue.self, from: bytes) else { throw JanusError(code: 0, reason: "reply is not JSON") }
        if case .array(let items) = value {
            guard items.count <= 1000 else { throw JanusError(code: 0, reason: "too many events") }
            return try items.map { item throws(JanusError) in try message(item) }
        }
        return [try message(value)]
    }

    /// Decodes one message.
    static func message(_ value: JSONValue) throws(JanusError) -> JanusMessage {
        guard case .object(let members) = value, case .string(let kind)? = members["janus"] else {
            throw JanusError(code: 0, reason: "reply without a 'janus' member")
        }
        var error: JanusError?
        if kind == "error" {
            error = JanusError(code: Int(exactly: members["error"]?["code"]?.doubleValue ?? 0) ?? 0, reason: text(members["error"]?["reason"]))
        }
        var data = members["data"]
        if let plugin = members["plugindata"]?["data"] {
            data = plugin
            if let code = plugin["error_code"]?.doubleValue {
                error = JanusError(code: Int(exactly: code) ?? 0, reason: text(plugin["error"]))
            }
        }
        var jsep: JSONValue?
        if let candidate = members["jsep"], case .string? = candidate["sdp"], case .string? = candidate["type"] { jsep = candidate }
        return JanusMessage(
            kind: kind, transaction: members["transaction"]?.stringValue, sessionID: identifier(members["session_id"]),
            sender: identifier(members["sender"]), data: data, jsep: jsep, error: error, raw: value)
    }

    /// A Janus id: a whole number from 1 to 2^53 (Janus keeps ids within JavaScript's exact integers).
    static func identifier(_ value: JSONValue?) -> Int64? {
        guard let number = value?.doubleValue, number >= 1, number <= 9_007_199_254_740_992, let id = Int64(exactly: number) else { return nil }
        return id
    }

    private static func text(_ value: JSONValue?) -> String { String((value?.stringValue ?? "no reason given").prefix(200)) }
}

/// A reply that one request waits for: resolved once, by the long poll (an event) or by the timeout.
final class JanusWaiter: Sendable {
    private let state = Mutex<(continuation: CheckedContinuation<JanusMessage, any Error>?, result: Result<JanusMessage, any Error>?)>((nil, nil))

    /// Resolves the waiter; later calls do nothing.
    func resolve(_ result: Result<JanusMessage, any Error>) {
        let continuation = state.withLock { s -> CheckedContinuation<JanusMessage, any Error>? in
            guard s.result == nil else { return nil }
            s.result = result
            defer { s.continuation = nil }
            return s.continuation
        }
        continuation?.resume(with: result)
    }

    /// The result, once resolved.
    func wait() async throws -> JanusMessage {
        try await withCheckedThrowingContinuation { continuation in
            let ready = state.withLock { s -> Result<JanusMessage, any Error>? in
                if let result = s.result { return result }
                s.continuation = continuation
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}

/// The engine's Janus session: created on first use, kept alive by its long poll, recreated after Janus restarts.
final class JanusSession: Sendable {
    typealias EventHandler = @Sendable (JanusMessage) -> Void

    private struct State {
        var sessionID: Int64?
        var creating: Task<Int64, any Error>?
        var poller: Task<Void, Never>?
        var waiters: [String: JanusWaiter] = [:]
        var handlers: [Int64: EventHandler] = [:]
        var counter: UInt64 = 0
        var stopped = false
    }

    private let client: HTTPClient
    private let admin: HTTPClient?
    private let apiSecret: String
    private let adminSecret: String
    private let timeout: Duration
    private let logger: any PluginLogger
    private let state = Mutex(State())
    /// Called when the session was lost (every handle with it): the bridge drops its connections.
    private let onLost: Mutex<(@Sendable () -> Void)?> = Mutex(nil)

    /// Requests sent, by kind (a small fixed set: our own request names), and failures: the stats' `engine_requests`.
    let counters = Mutex<[String: Int]>([:])

    init(endpoint: HTTPEndpoint, admin: HTTPEndpoint?, apiSecret: String, adminSecret: String, timeout: Duration, logger: any PluginLogger) {
        self.client = HTTPClient(endpoint: endpoint)
        self.admin = admin.map { HTTPClient(endpoint: $0) }
        self.apiSecret = apiSecret
        self.adminSecret = adminSecret
        self.timeout = timeout
        self.logger = logger
    }

    /// Sets what happens when the session is lost.
    func onSessionLost(_ handler: @escaping @Sendable () -> Void) { onLost.withLock { $0 = handler } }

    private func transaction() -> String {
        let n = state.withLock { s -> UInt64 in
            s.counter += 1
            return s.counter
        }
        return "t\(n)-\(UInt32.random(in: 0...UInt32.max))"
    }

    private func count(_ key: String) { counters.withLock { $0[key, default: 0] += 1 } }

    /// POSTs one Janus request and decodes the direct reply.
    private func post(_ path: String, _ body: [String: JSONValue], via client: HTTPClient? = nil) async throws -> JanusMessage {
        var body = body
        if !apiSecret.isEmpty, client == nil { body["apisecret"] = .string(apiSecret) }
        let bytes = try JSON.encode(JSONValue.object(body))
        let http = client ?? self.client
        let (status, reply) = try await http.send("POST", http.endpoint.path + path, body: bytes, timeout: timeout)
        guard status == 200 else { throw JanusError(code: 0, reason: "HTTP \(status) from Janus") }
        guard let message = try JanusMessage.decodeList(reply).first else { throw JanusError(code: 0, reason: "empty reply") }
        if let error = message.error { throw error }
        return message
    }

    /// The session id, creating the session (and its long poll) when there is none.
    func sessionID() async throws -> Int64 {
        let task = state.withLock { s -> Task<Int64, any Error> in
            if let id = s.sessionID { return Task { id } }
            if let creating = s.creating { return creating }
            let creating = Task { try await self.create() }
            s.creating = creating
            return creating
        }
        return try await task.value
    }

    private func create() async throws -> Int64 {
        defer { state.withLock { $0.creating = nil } }
        count("session")
        let reply = try await post("", ["janus": .string("create"), "transaction": .string(transaction())])
        guard let id = JanusMessage.identifier(reply.data?["id"]) else { throw JanusError(code: 0, reason: "create: no session id") }
        let poller = Task { await self.poll(id) }
        state.withLock { s in
            s.sessionID = id
            s.poller?.cancel()
            s.poller = poller
        }
        logger.info("janus session created", ["session": String(id)])
        return id
    }

    /// Long-polls the session's events until it is lost or the plugin stops.
    private func poll(_ id: Int64) async {
        var failures = 0
        let secret = apiSecret.isEmpty ? "" : "&apisecret=\(apiSecret)"
        while !Task.isCancelled {
            do {
                let (status, body) = try await client.send(
                    "GET", client.endpoint.path + "/\(id)?maxev=20\(secret)", timeout: .seconds(45))
                guard status == 200 else { throw JanusError(code: 0, reason: "HTTP \(status)") }
                let messages = try JanusMessage.decodeList(body)
                failures = 0
                for message in messages {
                    if message.kind == "error", message.error?.code == JanusError.noSuchSession {
                        throw JanusError(code: JanusError.noSuchSession, reason: "session gone")
                    }
                    dispatch(message)
                }
            } catch let error as JanusError where error.code == JanusError.noSuchSession {
                lose(id, because: "\(error)")
                return
            } catch {
                failures += 1
                if failures >= 3 {
                    lose(id, because: "\(error)")
                    return
                }
                try? await Task.sleep(for: .milliseconds(300))
            }
        }
    }

    private func lose(_ id: Int64, because reason: String) {
        let (waiters, lost) = state.withLock { s -> ([JanusWaiter], Bool) in
            guard s.sessionID == id else { return ([], false) }
            s.sessionID = nil
            s.handlers = [:]
            let waiters = Array(s.waiters.values)
            s.waiters = [:]
            return (waiters, !s.stopped)
        }
        for waiter in waiters { waiter.resolve(.failure(JanusError(code: JanusError.noSuchSession, reason: "session lost"))) }
        guard lost else { return }
        count("session_lost")
        logger.warning("janus session lost", ["session": String(id), "reason": reason])
        onLost.withLock { $0 }?()
    }

    private func dispatch(_ message: JanusMessage) {
        let (waiter, handler) = state.withLock { s -> (JanusWaiter?, EventHandler?) in
            if message.kind != "ack", let transaction = message.transaction, let waiter = s.waiters.removeValue(forKey: transaction) {
                return (waiter, nil)
            }
            return (nil, message.sender.flatMap { s.handlers[$0] })
        }
        if let waiter {
            waiter.resolve(message.error.map { .failure($0) } ?? .success(message))
        } else {
            handler?(message)
        }
    }

    /// Attaches a VideoRoom handle; `events` gets what Janus says about it without being asked.
    func attach(events: @escaping EventHandler) async throws -> Int64 {
        let session = try await sessionID()
        count("attach")
        let reply = try await post(
            "/\(session)", ["janus": .string("attach"), "plugin": .string("janus.plugin.videoroom"), "transaction": .string(transaction())])
        guard let handle = JanusMessage.identifier(reply.data?["id"]) else { throw JanusError(code: 0, reason: "attach: no handle id") }
        state.withLock { $0.handlers[handle] = events }
        return handle
    }

    /// Detaches a handle (its PeerConnection is closed); errors are ignored (Janus may have dropped it).
    func detach(_ handle: Int64) async {
        state.withLock { _ = $0.handlers.removeValue(forKey: handle) }
        guard let session = state.withLock({ $0.sessionID }) else { return }
        count("detach")
        _ = try? await post("/\(session)/\(handle)", ["janus": .string("detach"), "transaction": .string(transaction())])
    }

    /// Sends a VideoRoom request; for an asynchronous one (Janus answers `ack`) waits for its event.
    func message(_ handle: Int64, _ body: [String: JSONValue], jsep: JSONValue? = nil) async throws -> JanusMessage {
        let session = try await sessionID()
        let id = transaction()
        let waiter = JanusWaiter()
        state.withLock { $0.waiters[id] = waiter }
        var request: [String: JSONValue] = ["janus": .string("message"), "body": .object(body), "transaction": .string(id)]
        if let jsep { request["jsep"] = jsep }
        count(body["request"]?.stringValue ?? "message")
        let reply: JanusMessage
        do {
            reply = try await post("/\(session)/\(handle)", request)
        } catch {
            state.withLock { _ = $0.waiters.removeValue(forKey: id) }
            count("errors")
            throw error
        }
        guard reply.kind == "ack" else {
            state.withLock { _ = $0.waiters.removeValue(forKey: id) }
            return reply
        }
        let timeout = self.timeout
        let timer = Task {
            try? await Task.sleep(for: timeout)
            waiter.resolve(.failure(JanusError(code: 0, reason: "no event from Janus within \(timeout)")))
        }
        defer {
            timer.cancel()
            state.withLock { _ = $0.waiters.removeValue(forKey: id) }
        }
        do {
            return try await waiter.wait()
        } catch {
            count("errors")
            throw error
        }
    }

    /// Trickles one ICE candidate (`{candidate, sdpMid, sdpMLineIndex}`) or the end of them (`{completed: true}`).
    func trickle(_ handle: Int64, candidate: JSONValue) async throws {
        let session = try await sessionID()
        count("trickle")
        _ = try await post("/\(session)/\(handle)", ["janus": .string("trickle"), "candidate": candidate, "transaction": .string(transaction())])
    }

    /// The admin API's `handle_info` of a handle; nil without an admin URL or on any failure.
    func handleInfo(_ handle: Int64) async -> JSONValue? {
        guard let admin, let session = state.withLock({ $0.sessionID }) else { return nil }
        var body: [String: JSONValue] = ["janus": .string("handle_info"), "transaction": .string(transaction())]
        if !adminSecret.isEmpty { body["admin_secret"] = .string(adminSecret) }
        guard let reply = try? await post("/\(session)/\(handle)", body, via: admin) else { return nil }
        return reply.raw["info"]
    }

    /// Destroys the session (plugin shutdown): Janus closes every PeerConnection of it.
    func stop() async {
        let (id, poller) = state.withLock { s -> (Int64?, Task<Void, Never>?) in
            s.stopped = true
            defer {
                s.sessionID = nil
                s.poller = nil
            }
            return (s.sessionID, s.poller)
        }
        poller?.cancel()
        if let id { _ = try? await post("/\(id)", ["janus": .string("destroy"), "transaction": .string(transaction())]) }
    }
}
