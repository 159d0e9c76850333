// Sockets: the outbound queue of an engine channel connection, written by its event loop: frames of one
// broadcast go out to every connection of a loop in one pass (one job per loop, not one task per frame),
// each connection's frames in one write and flush, the payload bytes shared by all of them.

import NIOConcurrencyHelpers
import NIOCore
@_spi(Engine) import PluginAPI
import Synchronization

/// Frames waiting to be written to one engine channel connection, with PluginAPI's ``OutboundQueue`` rules:
/// bounded (one more than `limit` means the peer is stuck: the queue is cleared and closes with 1008),
/// coalescing (a frame with a key replaces a queued frame with the same key), and ordered close (written after
/// the frames already queued).
///
/// Unlike ``OutboundQueue`` it has no writer task: once a frame is queued, the connection's event loop is asked to
/// drain it (``LoopDrainer``), which writes frames while the TCP channel is writable and resumes when it becomes
/// writable again (``FrameWriter``).
final class ConnectionOutbox: Sendable {
    typealias Outcome = OutboundQueue<ByteBuffer>.Outcome

    private struct Item {
        var frame: ByteBuffer
        var key: String?
    }

    private struct State {
        var items: [Item] = []
        var head = 0
        var closing: (code: UInt16, reason: String)?
        var closeTaken = false
        /// Queued on the loop's drainer and not yet drained.
        var scheduled = false
        var writer: FrameWriter.Handle?
        var count: Int { items.count - head }

        /// The writer to schedule, once per batch: nil when a drain is already pending or there is no writer yet.
        mutating func takeDrain() -> FrameWriter.Handle? {
            guard !scheduled, let writer else { return nil }
            scheduled = true
            return writer
        }
    }

    let limit: Int
    private let state = Mutex(State())

    init(limit: Int) { self.limit = max(1, limit) }

    /// Queues a frame; with `key`, replaces a queued frame of the same key instead.
    @discardableResult
    func enqueue(_ frame: ByteBuffer, key: String?) -> Outcome {
        enqueue(key: key) { _ in frame }
    }

    /// Queues the frame `make` returns, chosen under the queue's lock, as ``OutboundQueue/enqueue(key:coalesceAfter:_:)``
    /// does: `make(true)` when it replaces a queued frame of the same key, `make(false)` when it is added at the end.
    /// - Parameter coalesceAfter: How many frames of `key` may wait before a new one replaces the newest of them.
    @discardableResult
    func enqueue(key: String?, coalesceAfter: Int = 1, _ make: (_ replacing: Bool) -> ByteBuffer) -> Outcome {
        let (outcome, drain): (Outcome, FrameWriter.Handle?) = state.withLock { q in
            if q.closing != nil { return (.closed, nil) }
            if let key {
                var newest: Int?
                var same = 0
                for index in q.head..<q.items.count where q.items[index].key == key {
                    newest = index
                    same += 1
                }
                if let newest, coalesceAfter <= 1 || same >= coalesceAfter {
                    q.items[newest].frame = make(true)
                    return (.coalesced, nil)
                }
            }
            if q.count >= limit {
                q.closing = (1008, "too slow: outbound queue full")
                q.items.removeAll()
                q.head = 0
                return (.overflowed, q.takeDrain())
            }
            q.items.append(Item(frame: make(false), key: key))
            return (.queued, q.takeDrain())
        }
        drain?.schedule()
        return outcome
    }

    /// Closes after the frames already queued (the first close wins).
    func close(code: UInt16, reason: String) {
        let (drain, now) = state.withLock { q -> (FrameWriter.Handle?, FrameWriter.Handle?) in
            if q.closing == nil { q.closing = (code, reason) }
            // Nothing queued: say goodbye from here rather than after a hop onto the loop, so the engine's close
            // (1001 at shutdown) goes out before anything the WebSocket handler does next. Frames a drain already
            // took are written by its loop job before the handler's close reaches the loop.
            if q.count == 0, !q.closeTaken, let writer = q.writer, let closing = q.closing, closing.code != 1008 {
                q.closeTaken = true
                return (nil, writer)
            }
            return (q.takeDrain(), nil)
        }
        drain?.schedule()
        if let now, let closing = state.withLock({ $0.closing }) { now.close(closing.code, closing.reason) }
    }

    /// Frames waiting.
    var count: Int { state.withLock { $0.count } }

    /// True once a close was requested (or the queue overflowed).
    var isClosing: Bool { state.withLock { $0.closing != nil } }

    /// Attaches the writer (on its loop) and drains what was queued before it.
    func attach(_ writer: FrameWriter.Handle) {
        let drain = state.withLock { q -> FrameWriter.Handle? in
            q.writer = writer
            return q.takeDrain()
        }
        drain?.schedule()
    }

    /// What the writer does next.
    enum Next {
        case frame(ByteBuffer)
        case close(code: UInt16, reason: String)
        case idle
    }

    /// The next thing to write (from the drain on the loop).
    func next() -> Next {
        state.withLock { q in
            if q.head < q.items.count {
                let frame = q.items[q.head].frame
                q.head += 1
                if q.head == q.items.count {
                    q.items.removeAll(keepingCapacity: q.items.capacity <= 4)
                    q.head = 0
                }
                return .frame(frame)
            }
            if let closing = q.closing, !q.closeTaken {
                q.closeTaken = true
                return .close(code: closing.code, reason: closing.reason)
            }
            return .idle
        }
    }

    /// Allows the next enqueue to schedule a drain again (called by the drain before it reads the queue).
    func drainStarted() { state.withLock { $0.scheduled = false } }

    /// The connection closed: forget the writer and what is queued; later frames are refused.
    func detach() {
        state.withLock { q in
            q.writer = nil
            if q.closing == nil { q.closing = (1006, "connection closed") }
            q.closeTaken = true
            q.items.removeAll()
            q.head = 0
        }
    }
}
