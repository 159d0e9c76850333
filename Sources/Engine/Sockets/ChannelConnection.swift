// Sockets: one live connection on an engine channel, with a bounded, coalescing outbound queue.

import Foundation
import NIOCore
@_spi(Engine) import PluginAPI
import Synchronization

/// Why the engine dropped a connection.
enum DropReason: String, Sendable {
    case queueFull = "queue_full"
    case sendTimeout = "send_timeout"
}

/// A connection on `/ws/overlay` or `/ws/moderator`.
///
/// Outbound frames go through a queue of at most `limit` frames. A frame with a coalescing key
/// (e.g. `scene.full`) replaces an older queued frame with the same key, because a newer snapshot
/// makes the older one useless. A full queue means the client is stuck: it is dropped, never waited for.
public final class ChannelConnection: SocketConnection {
    struct Item {
        var frame: ByteBuffer
        var key: String?
    }

    struct Queue {
        var items: [Item] = []
        var waiter: CheckedContinuation<Void, Never>?
        var closing: (code: UInt16, reason: String)?
    }

    public let id: String
    public let channel: SocketChannel
    public let caller: Caller
    /// Identifier of the overlay, when the page sent one (`?overlay_id=`).
    public let clientLabel: String?
    let limit: Int
    let queue = Mutex(Queue())
    let onDrop: @Sendable (ChannelConnection, DropReason) -> Void
    let onCoalesce: @Sendable () -> Void
    /// When the frame being written started (uptime nanoseconds), 0 when idle; read by the hub's watchdog.
    let writeStartedAt = Atomic<UInt64>(0)
    /// The TCP channel, closed outright when a write is stuck.
    let nioChannel: any Channel

    init(id: String, channel: SocketChannel, caller: Caller, clientLabel: String?, limit: Int, nioChannel: any Channel,
         onDrop: @escaping @Sendable (ChannelConnection, DropReason) -> Void, onCoalesce: @escaping @Sendable () -> Void) {
        self.nioChannel = nioChannel
        self.id = id
        self.channel = channel
        self.caller = caller
        self.clientLabel = clientLabel
        self.limit = limit
        self.onDrop = onDrop
        self.onCoalesce = onCoalesce
    }

    /// The moderator session behind the connection, if any.
    var sessionID: String? {
        if case .moderator(let info) = caller { return info.id }
        return nil
    }

    public func send(_ text: String) {
        _ = enqueue(ByteBuffer(string: text), key: nil)
    }

    /// Queues a frame; with `key`, replaces a queued frame of the same key.
    /// - Returns: false when the connection is closing or was dropped for being stuck.
    @discardableResult
    func enqueue(_ frame: ByteBuffer, key: String?) -> Bool {
        enum Outcome { case queued(CheckedContinuation<Void, Never>?), coalesced, closed, full }
        let outcome: Outcome = queue.withLock { q in
            if q.closing != nil { return .closed }
            if let key, let index = q.items.lastIndex(where: { $0.key == key }) {
                q.items[index].frame = frame
                return .coalesced
            }
            if q.items.count >= limit {
                q.closing = (1008, "too slow: outbound queue full")
                q.items.removeAll()
                let waiter = q.waiter
                q.waiter = nil
                waiter?.resume()
                return .full
            }
            q.items.append(Item(frame: frame, key: key))
            let waiter = q.waiter
            q.waiter = nil
            return .queued(waiter)
        }
        switch outcome {
        case .queued(let waiter):
            waiter?.resume()
            return true
        case .coalesced:
            onCoalesce()
            return true
        case .closed:
            return false
        case .full:
            onDrop(self, .queueFull)
            return false
        }
    }

    public func close(code: UInt16, reason: String) {
        let waiter: CheckedContinuation<Void, Never>? = queue.withLock { q in
            if q.closing == nil { q.closing = (code, reason) }
            let waiter = q.waiter
            q.waiter = nil
            return waiter
        }
        waiter?.resume()
    }

    /// What the writer does next.
    enum Next {
        case frame(ByteBuffer)
        case close(code: UInt16, reason: String)
    }

    /// Waits for the next frame to write, or for the close request. Queued frames are flushed before a
    /// requested close, except when the connection was dropped (its queue was cleared).
    func next() async -> Next {
        while true {
            let ready: Next? = queue.withLock { q in
                if !q.items.isEmpty { return .frame(q.items.removeFirst().frame) }
                if let closing = q.closing { return .close(code: closing.code, reason: closing.reason) }
                return nil
            }
            if let ready { return ready }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let resumeNow: Bool = queue.withLock { q in
                    if !q.items.isEmpty || q.closing != nil { return true }
                    q.waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        }
    }

    /// Frames waiting to be written.
    var queuedCount: Int { queue.withLock { $0.items.count } }
}
