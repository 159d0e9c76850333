// Sockets: one live connection on an engine channel, with PluginAPI's bounded, coalescing outbound queue.

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
    public let id: String
    public let channel: SocketChannel
    public let caller: Caller
    /// Identifier of the overlay, when the page sent one (`?overlay_id=`).
    public let clientLabel: String?
    let outbox: OutboundQueue<ByteBuffer>
    let onDrop: @Sendable (ChannelConnection, DropReason) -> Void
    let onCoalesce: @Sendable () -> Void
    /// When the frame being written started (uptime nanoseconds), 0 when idle; read by the hub's watchdog.
    let writeStartedAt = Atomic<UInt64>(0)
    /// The TCP channel, closed outright when a write is stuck.
    let nioChannel: any Channel

    init(
        id: String, channel: SocketChannel, caller: Caller, clientLabel: String?, limit: Int, nioChannel: any Channel,
        onDrop: @escaping @Sendable (ChannelConnection, DropReason) -> Void, onCoalesce: @escaping @Sendable () -> Void
    ) {
        self.nioChannel = nioChannel
        self.id = id
        self.channel = channel
        self.caller = caller
        self.clientLabel = clientLabel
        self.outbox = OutboundQueue(limit: limit, overflowCode: 1008, overflowReason: "too slow: outbound queue full")
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
        switch outbox.enqueue(frame, key: key) {
        case .queued:
            return true
        case .coalesced:
            onCoalesce()
            return true
        case .closed:
            return false
        case .overflowed:
            onDrop(self, .queueFull)
            return false
        }
    }

    public func close(code: UInt16, reason: String) {
        outbox.close(code: code, reason: reason)
    }

    /// Waits for the next frame to write, or for the close request. Queued frames are flushed before a
    /// requested close, except when the connection was dropped (its queue was cleared).
    func next() async -> OutboundQueue<ByteBuffer>.Next { await outbox.next() }

    /// Frames waiting to be written.
    var queuedCount: Int { outbox.count }
}
