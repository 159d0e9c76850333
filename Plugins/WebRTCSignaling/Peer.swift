// WebRTCSignaling: one connected publisher or viewer, with its own bounded outbound queue.

import Foundation
import PluginAPI
import Synchronization

/// Close codes of the signaling sockets (refusals before joining are 4000 + the HTTP status).
enum CloseCode {
    /// The server is stopping.
    static let goingAway: UInt16 = 1001
    /// Too many protocol errors.
    static let policyViolation: UInt16 = 1008
    /// The peer cannot keep up with what it is sent.
    static let tryAgainLater: UInt16 = 1013
    /// Nothing received for `idle_timeout_seconds`.
    static let idle: UInt16 = 4408
    /// A newer publisher took the room (`replace_publisher: true`).
    static let replaced: UInt16 = 4410
}

/// A socket of a room: its identity, counters, rate bucket and outbound queue.
///
/// Everything sent to a peer goes through ``send(_:)``, which never waits: a writer task drains the queue into the
/// socket, so a slow peer never slows the peer that routes a message to it. A full queue closes the slow peer.
final class Peer: Sendable {

    /// Counters read by the stats route.
    struct Counters: Sendable {
        var received = 0
        var sent = 0
        var errors = 0
        var violations = 0
        var dropped = 0
        var lastActivity: ContinuousClock.Instant
        /// The inbound message rate limit.
        var bucket: TokenBucket
    }

    /// Server-assigned id: `p-…` for a publisher, `v-…` for a viewer. Used as `from` on routed messages.
    let id: String
    /// Publisher or viewer.
    let role: PeerRole
    /// The room.
    let room: String
    /// When it joined.
    let connectedAt: Date
    /// The token's id (logs only).
    let tokenID: String
    private let session: any WebSocketSession
    /// PluginAPI's outbound queue: bounded (a full one closes the peer with 1013), never waited for.
    private let outbox: OutboundQueue<String>
    private let counters: Mutex<Counters>

    /// Creates a peer for a socket that passed the upgrade check.
    init(
        id: String, role: PeerRole, room: String, tokenID: String, session: any WebSocketSession,
        queueLimit: Int, burst: Int, perSecond: Int
    ) {
        self.id = id
        self.role = role
        self.room = room
        self.tokenID = tokenID
        self.session = session
        self.connectedAt = Date()
        outbox = OutboundQueue(limit: queueLimit, overflowCode: CloseCode.tryAgainLater, overflowReason: "too slow: the outbound queue is full")
        let now = ContinuousClock.now
        self.counters = Mutex(Counters(lastActivity: now, bucket: TokenBucket(burst: Double(burst), perSecond: Double(perSecond), now: now)))
    }

    /// The frames the peer sends.
    var inbound: WebSocketInbound { session.inbound }

    /// True once a close was queued or the socket ended.
    var isClosing: Bool { outbox.isClosing }

    /// Queues a text frame. Returns false when the peer is closing or its queue is full (it is then closed, 1013).
    @discardableResult
    func send(_ text: String) -> Bool {
        switch outbox.enqueue(text) {
        case .queued, .coalesced:
            counters.withLock { $0.sent += 1 }
            return true
        case .overflowed:
            counters.withLock { $0.dropped += 1 }
            closeSocketNow(code: CloseCode.tryAgainLater, reason: "too slow: the outbound queue is full")
            return false
        case .closed:
            return false
        }
    }

    /// Queues a close after the frames already queued (so an error frame reaches the peer before the close).
    func close(code: UInt16, reason: String) {
        outbox.close(code: code, reason: reason)
    }

    /// Closes at once, skipping what is queued (a stuck peer).
    func abort(code: UInt16, reason: String) {
        outbox.abort(code: code, reason: reason)
        closeSocketNow(code: code, reason: reason)
    }

    /// Closes the socket without waiting for the writer, which may be stuck in a send to this very peer.
    private func closeSocketNow(code: UInt16, reason: String) {
        let session = self.session
        Task { await session.close(code: code, reason: reason) }
    }

    /// Drains the queue into the socket until a close or a failed write.
    func runWriter() async {
        while true {
            switch await outbox.next() {
            case .frame(let text):
                do {
                    try await session.send(text)
                } catch {
                    return
                }
            case .close(let code, let reason):
                await session.close(code: code, reason: reason)
                return
            }
        }
    }

    /// Ends the writer once the socket is gone (its close then finds the socket closed already).
    func finish() {
        outbox.abort(code: CloseCode.goingAway, reason: "closed")
    }

    /// Notes an inbound frame and takes one token from the rate bucket.
    /// - Returns: False when the peer is over its rate.
    func admitInbound() -> Bool {
        counters.withLock { c in
            let now = ContinuousClock.now
            c.received += 1
            c.lastActivity = now
            return c.bucket.take(now: now) == nil
        }
    }

    /// Counts an error frame sent to the peer.
    /// - Parameter violation: True when the error is protocol abuse (counts towards `max_errors`).
    /// - Returns: The violations so far.
    func countError(violation: Bool) -> Int {
        counters.withLock { c in
            c.errors += 1
            if violation { c.violations += 1 }
            return c.violations
        }
    }

    /// Time since the last inbound frame.
    var idleFor: Duration { counters.withLock { ContinuousClock.now - $0.lastActivity } }

    /// A copy of the counters.
    var snapshot: Counters { counters.withLock { $0 } }
}
