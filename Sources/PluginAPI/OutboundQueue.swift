// The outbound queue of a socket, for the engine's channels and plugins' own endpoints alike: bounded, coalescing,
// and it never waits for a slow peer.

import Synchronization

/// Frames waiting to be written to one socket, written by one writer task.
///
/// - Bounded: at most `limit` frames. One more means the peer is stuck: the queue is cleared and closes with the
///   overflow code (the peer is dropped, the sender never waits).
/// - Coalescing: a frame with a key replaces a queued frame with the same key (a newer snapshot makes the older
///   one useless).
/// - Ordered close: ``close(code:reason:)`` is written after the frames already queued; ``abort(code:reason:)`` skips them.
public final class OutboundQueue<Frame: Sendable>: Sendable {
    /// What the writer does next.
    public enum Next: Sendable {
        /// Write this frame.
        case frame(Frame)
        /// Close the socket with this code and reason, then stop.
        case close(code: UInt16, reason: String)
    }

    /// What ``enqueue(_:key:)`` did.
    public enum Outcome: Sendable, Equatable {
        /// Added at the end.
        case queued
        /// Replaced a queued frame with the same key.
        case coalesced
        /// Refused: the queue is closing.
        case closed
        /// Refused: the queue was full, so it was cleared and closes with the overflow code.
        case overflowed
    }

    private struct Item {
        var frame: Frame
        var key: String?
    }

    private struct State {
        var items: [Item] = []
        var waiter: CheckedContinuation<Void, Never>?
        var closing: (code: UInt16, reason: String)?
    }

    /// Most frames queued.
    public let limit: Int
    private let overflow: (code: UInt16, reason: String)
    private let state = Mutex(State())

    /// Creates an empty queue.
    /// - Parameters:
    ///   - limit: Most frames queued.
    ///   - overflowCode: Close code when the peer falls behind (1008, or 1013 "try again later").
    ///   - overflowReason: Close reason then.
    public init(limit: Int, overflowCode: UInt16 = 1008, overflowReason: String = "too slow: outbound queue full") {
        self.limit = max(1, limit)
        self.overflow = (overflowCode, overflowReason)
    }

    /// Queues a frame; with `key`, replaces a queued frame of the same key instead.
    @discardableResult
    public func enqueue(_ frame: Frame, key: String? = nil) -> Outcome {
        enqueue(key: key) { _ in frame }
    }

    /// Queues the frame `make` returns, chosen under the queue's lock: `make(true)` when it replaces a queued frame
    /// of the same key (the peer never receives that one, so e.g. a delta against it must become a snapshot),
    /// `make(false)` when it is added at the end.
    /// - Parameter coalesceAfter: How many frames of `key` may wait before a new one replaces the newest of them
    ///   instead of joining them (1, the default: each replaces the one waiting). A larger value delivers every frame
    ///   of a burst to a peer that keeps up, and still bounds what a slow peer piles up.
    @discardableResult
    public func enqueue(key: String?, coalesceAfter: Int = 1, _ make: (_ replacing: Bool) -> Frame) -> Outcome {
        let (outcome, waiter): (Outcome, CheckedContinuation<Void, Never>?) = state.withLock { q in
            if q.closing != nil { return (.closed, nil) }
            if let key, let index = q.items.lastIndex(where: { $0.key == key }),
                coalesceAfter <= 1 || q.items.count(where: { $0.key == key }) >= coalesceAfter
            {
                q.items[index].frame = make(true)
                return (.coalesced, nil)
            }
            if q.items.count >= limit {
                q.closing = overflow
                q.items.removeAll()
                defer { q.waiter = nil }
                return (.overflowed, q.waiter)
            }
            q.items.append(Item(frame: make(false), key: key))
            defer { q.waiter = nil }
            return (.queued, q.waiter)
        }
        waiter?.resume()
        return outcome
    }

    /// Closes after the frames already queued (the first close wins).
    public func close(code: UInt16, reason: String) {
        let waiter: CheckedContinuation<Void, Never>? = state.withLock { q in
            if q.closing == nil { q.closing = (code, reason) }
            defer { q.waiter = nil }
            return q.waiter
        }
        waiter?.resume()
    }

    /// Closes at once, dropping what is queued.
    public func abort(code: UInt16, reason: String) {
        let waiter: CheckedContinuation<Void, Never>? = state.withLock { q in
            q.items.removeAll()
            if q.closing == nil { q.closing = (code, reason) }
            defer { q.waiter = nil }
            return q.waiter
        }
        waiter?.resume()
    }

    /// Waits for the next frame, or for the close once the queue is empty. Call from the one writer task.
    public func next() async -> Next {
        while true {
            let ready: Next? = state.withLock { q in
                if !q.items.isEmpty { return .frame(q.items.removeFirst().frame) }
                if let closing = q.closing { return .close(code: closing.code, reason: closing.reason) }
                return nil
            }
            if let ready { return ready }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow: Bool = state.withLock { q in
                    if !q.items.isEmpty || q.closing != nil { return true }
                    q.waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
    }

    /// Frames waiting.
    public var count: Int { state.withLock { $0.items.count } }

    /// True once a close was requested (or the queue overflowed).
    public var isClosing: Bool { state.withLock { $0.closing != nil } }
}
