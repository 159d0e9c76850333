// Sockets: writes an engine channel connection's queued frames on its event loop, below the WebSocket encoder:
// a server frame is never masked, so the header is a few bytes written before the payload buffer every
// connection shares (no copy per connection), and a connection's frames of one drain go out in one flush.

import NIOConcurrencyHelpers
import NIOCore
import Synchronization

/// First handler of an upgraded engine channel connection: drains its ``ConnectionOutbox`` while the TCP channel is
/// writable, and again when it becomes writable. Everything else passes through.
final class FrameWriter: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// How others ask the loop to drain this writer (any thread).
    struct Handle: Sendable {
        let drainer: LoopDrainer
        let writer: NIOLoopBound<FrameWriter>
        /// ``Events/close``, for a close with nothing queued (from the caller's thread).
        let close: @Sendable (UInt16, String) -> Void
        func schedule() { drainer.schedule(writer) }
    }

    /// What the writer reports to the hub.
    struct Events: Sendable {
        /// Frames handed to the socket.
        let sent: @Sendable (Int) -> Void
        /// The channel stopped (true) or started again (false) taking writes: the stuck-writer watchdog's clock.
        let stalled: @Sendable (Bool) -> Void
        /// The queue's close came up after its frames: say goodbye with this code and reason.
        let close: @Sendable (UInt16, String) -> Void
    }

    let outbox: ConnectionOutbox
    private let events: Events
    private var context: ChannelHandlerContext?

    init(outbox: ConnectionOutbox, events: Events) {
        self.outbox = outbox
        self.events = events
    }

    /// Adds the writer first in `channel`'s pipeline and attaches it to the outbox (frames queued so far are drained).
    /// Call on the channel's event loop.
    static func install(on channel: any Channel, outbox: ConnectionOutbox, events: Events) throws {
        let writer = FrameWriter(outbox: outbox, events: events)
        try channel.pipeline.syncOperations.addHandler(writer, position: .first)
        outbox.attach(
            Handle(drainer: LoopDrainer.for(channel.eventLoop), writer: NIOLoopBound(writer, eventLoop: channel.eventLoop), close: events.close))
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        outbox.detach()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            events.stalled(false)
            var headers = HeaderCache()
            drain(headers: &headers)
        } else {
            events.stalled(true)
        }
        context.fireChannelWritabilityChanged()
    }

    /// Writes queued frames while the channel takes them, then flushes once.
    /// - Parameter headers: The header cache of this pass (the frames of one broadcast share their header).
    func drain(headers: inout HeaderCache) {
        outbox.drainStarted()
        guard let context else { return }
        var written = 0
        defer {
            if written > 0 {
                context.flush()
                events.sent(written)
            }
        }
        while context.channel.isWritable {
            switch outbox.next() {
            case .idle:
                return
            case .frame(let payload):
                context.write(wrapOutboundOut(headers.header(for: payload.readableBytes, allocator: context.channel.allocator)), promise: nil)
                context.write(wrapOutboundOut(payload), promise: nil)
                written += 1
            case .close(let code, let reason):
                if code == 1008 {
                    // Dropped for falling behind: a peer that does not read would never answer a close handshake.
                    context.write(wrapOutboundOut(Self.closeFrame(code: code, reason: reason, allocator: context.channel.allocator)), promise: nil)
                    context.flush()
                    written = 0
                    context.close(promise: nil)
                } else {
                    events.close(code, reason)
                }
                return
            }
        }
    }

    /// An unmasked close frame: code and reason (at most 123 bytes of it).
    static func closeFrame(code: UInt16, reason: String, allocator: ByteBufferAllocator) -> ByteBuffer {
        let text = Array(reason.utf8.prefix(123))
        var buffer = allocator.buffer(capacity: 4 + text.count)
        buffer.writeInteger(UInt8(0x88))
        buffer.writeInteger(UInt8(2 + text.count))
        buffer.writeInteger(code)
        buffer.writeBytes(text)
        return buffer
    }
}

/// The header of an unmasked final text frame, kept for the last payload length (a broadcast's frames all share it).
struct HeaderCache {
    private var length = -1
    private var buffer: ByteBuffer?

    mutating func header(for length: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        if length == self.length, let buffer { return buffer }
        var made = allocator.buffer(capacity: 10)
        made.writeInteger(UInt8(0x81))
        if length < 126 {
            made.writeInteger(UInt8(length))
        } else if length <= Int(UInt16.max) {
            made.writeInteger(UInt8(126))
            made.writeInteger(UInt16(length))
        } else {
            made.writeInteger(UInt8(127))
            made.writeInteger(UInt64(length))
        }
        self.length = length
        buffer = made
        return made
    }
}

/// One per event loop: the writers that have frames to write, drained in one job on the loop, so a broadcast to
/// every connection of a loop costs one hop onto it (not one per connection or per frame).
final class LoopDrainer: Sendable {
    private struct Pending {
        var writers: [NIOLoopBound<FrameWriter>] = []
        var scheduled = false
    }

    let eventLoop: any EventLoop
    private let pending = Mutex(Pending())
    private static let all = Mutex<[ObjectIdentifier: LoopDrainer]>([:])

    private init(eventLoop: any EventLoop) { self.eventLoop = eventLoop }

    /// The drainer of `loop` (made on first use; loops live as long as the engine).
    static func `for`(_ loop: any EventLoop) -> LoopDrainer {
        all.withLock { drainers in
            if let existing = drainers[ObjectIdentifier(loop)] { return existing }
            let made = LoopDrainer(eventLoop: loop)
            drainers[ObjectIdentifier(loop)] = made
            return made
        }
    }

    func schedule(_ writer: NIOLoopBound<FrameWriter>) {
        let start = pending.withLock { p -> Bool in
            p.writers.append(writer)
            if p.scheduled { return false }
            p.scheduled = true
            return true
        }
        if start { eventLoop.execute { self.run() } }
    }

    private func run() {
        var writers: [NIOLoopBound<FrameWriter>] = []
        pending.withLock { p in
            swap(&writers, &p.writers)
            p.writers.reserveCapacity(writers.count)
            p.scheduled = false
        }
        var headers = HeaderCache()
        for writer in writers { writer.value.drain(headers: &headers) }
    }
}
