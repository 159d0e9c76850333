// Sockets: an engine channel socket (`/ws/overlay`, `/ws/moderator`) served by a channel handler on its event loop.
//
// Hummingbird serves a WebSocket from a task per connection that reads through `NIOAsyncChannel`, with an actor and
// a ping task of its own: about 30 KB per idle socket before the engine keeps anything. An overlay mostly listens, so
// the engine's channels are served here instead: frames are handled as they are read, the auto-ping is a timer on the
// loop, and a task exists only while a message (or the connect and disconnect work) is being handled.

import Logging
import NIOCore
import NIOWebSocket
@_spi(Engine) import PluginAPI

/// What one engine channel socket does with the frames it reads, and how it closes.
///
/// Written frames come from the connection's ``ConnectionOutbox`` through ``FrameWriter``; this handler writes only
/// control frames (pong, ping, close). Messages go to the hub one at a time in the order they arrived; while more
/// than ``maxPendingMessages`` wait, the socket is not read (TCP pushes back on the client).
final class ChannelSocketHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = WebSocketFrame
    typealias OutboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    /// The limits and timings of engine channel sockets.
    struct Settings: Sendable {
        /// Largest message (one frame or the fragments of one), `limits.ws_max_message_bytes`; larger closes with 1009.
        var maxMessageBytes: Int
        /// A ping is sent this long after the last one; no pong by the next one closes with 1001.
        var pingPeriod: TimeAmount
        /// How long the engine waits for the peer's answer to its close frame before it cuts the connection.
        var closeTimeout: TimeAmount = .seconds(5)
    }

    /// What a socket is for: a connection of the hub, or a refusal to say as a close code.
    enum Role {
        case connection(ChannelConnection, ChannelHub)
        case refusal(code: UInt16, reason: String)
    }

    static let maxPendingMessages = 16

    private let role: Role
    private let settings: Settings
    private var context: ChannelHandlerContext?
    /// A message in fragments so far, and whether it is text.
    private var fragments: ByteBuffer?
    private var fragmentsAreText = true
    /// The engine sent its close frame (waiting for the peer's) or the socket is done.
    private var closeSent = false
    private var pingOutstanding = false
    private var pingTimer: Scheduled<Void>?
    private var closeTimer: Scheduled<Void>?
    /// The hub's work for this socket runs in order: each job waits for the one before it.
    private var tail: Task<Void, Never>?
    private var pending = 0
    private var readHeld = false

    init(role: Role, settings: Settings) {
        self.role = role
        self.settings = settings
    }

    // MARK: life cycle

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        switch role {
        case .refusal(let code, let reason):
            sendClose(code: code, reason: reason, context: context)
        case .connection:
            armPing(context: context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        stopTimers()
        self.context = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        stopTimers()
        closeSent = true
        if case .connection(let connection, let hub) = role {
            // Nothing more is written; later frames are refused. Disconnect hooks run after any message still handled.
            connection.outbox.detach()
            hub.unregister(connection)
            enqueue { await hub.closed(connection) }
        }
        context.fireChannelInactive()
    }

    /// The peer closed its side without a close frame (a tab closed, a process killed: the server keeps remote
    /// half-closure on, so this arrives as an event instead of an inactive channel). Nothing more can be read, and a
    /// socket is two-way: it is over now (not at the next ping, up to `ws_ping_seconds` later).
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, event == .inputClosed {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func stopTimers() {
        pingTimer?.cancel()
        pingTimer = nil
        closeTimer?.cancel()
        closeTimer = nil
    }

    /// Runs `work` after the socket's earlier jobs (connect hooks, messages), off the event loop.
    func enqueue(_ work: @escaping @Sendable () async -> Void) {
        guard let context else {
            // Removed already: run it anyway, in order with nothing (the socket is gone).
            Task { await work() }
            return
        }
        pending += 1
        let previous = tail
        let done = NIOLoopBound(self, eventLoop: context.eventLoop)
        let loop = context.eventLoop
        tail = Task {
            await previous?.value
            await work()
            loop.execute { done.value.jobDone() }
        }
    }

    private func jobDone() {
        pending -= 1
        if pending == 0 { tail = nil }
        if readHeld, pending < Self.maxPendingMessages, let context {
            readHeld = false
            context.read()
        }
    }

    // MARK: reading

    func read(context: ChannelHandlerContext) {
        if pending >= Self.maxPendingMessages {
            readHeld = true
            return
        }
        context.read()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard frame.reservedBits.isEmpty else {
            // No extension was negotiated, so no reserved bit may be set.
            fail(code: 1002, reason: "reserved bits set", context: context)
            return
        }
        switch frame.opcode {
        case .text, .binary:
            guard fragments == nil else {
                fail(code: 1002, reason: "a new message started before the last one ended", context: context)
                return
            }
            if frame.fin {
                message(frame.unmaskedData, text: frame.opcode == .text, context: context)
            } else {
                fragmentsAreText = frame.opcode == .text
                fragments = frame.unmaskedData
                checkFragmentSize(context: context)
            }
        case .continuation:
            guard var buffer = fragments else {
                fail(code: 1002, reason: "a continuation frame without a message", context: context)
                return
            }
            fragments = nil
            var data = frame.unmaskedData
            buffer.writeBuffer(&data)
            if frame.fin {
                message(buffer, text: fragmentsAreText, context: context)
            } else {
                fragments = buffer
                checkFragmentSize(context: context)
            }
        case .ping:
            guard frame.fin else {
                fail(code: 1002, reason: "a fragmented ping", context: context)
                return
            }
            if !closeSent { context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil) }
        case .pong:
            pingOutstanding = false
        case .connectionClose:
            peerClosed(frame.unmaskedData, context: context)
        default:
            fail(code: 1002, reason: "unknown opcode", context: context)
        }
    }

    /// A frame the decoder refused: too large (1009), a control frame fragmented or too long (1002).
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let frameError = error as? NIOWebSocketError else {
            // An I/O error, or bytes after a frame error: the connection is over.
            context.close(promise: nil)
            return
        }
        switch frameError {
        case .invalidFrameLength:
            fail(code: 1009, reason: "frame too large", context: context)
        default:
            fail(code: 1002, reason: "invalid frame", context: context)
        }
    }

    private func checkFragmentSize(context: ChannelHandlerContext) {
        if let fragments, fragments.readableBytes > settings.maxMessageBytes {
            self.fragments = nil
            fail(code: 1009, reason: "message larger than \(settings.maxMessageBytes) bytes", context: context)
        }
    }

    private func message(_ buffer: ByteBuffer, text: Bool, context: ChannelHandlerContext) {
        guard !closeSent, case .connection(let connection, let hub) = role else { return }
        if buffer.readableBytes > settings.maxMessageBytes {
            // A single frame up to the decoder's frame limit arrives whole, so its size is checked here.
            fail(code: 1009, reason: "message larger than \(settings.maxMessageBytes) bytes", context: context)
            return
        }
        guard text else {
            connection.send(hub.errorFrame(code: "binary_not_supported", message: "send JSON text frames", event: nil))
            return
        }
        // As Hummingbird's text messages: invalid UTF-8 is repaired, not refused (the JSON decoder then judges it).
        let raw = Array(String(buffer: buffer).utf8)
        enqueue { await hub.dispatch(raw, from: connection) }
    }

    // MARK: closing

    /// The peer's close frame: answered (1000, or 1002 for a malformed one) unless the engine closed first, then the
    /// connection ends (the server closes TCP).
    private func peerClosed(_ data: ByteBuffer, context: ChannelHandlerContext) {
        var data = data
        let size = data.readableBytes
        let code = data.readWebSocketErrorCode()
        var answer: UInt16 = 1000
        if size == 1 || (size > 2 && String(validating: data.readableBytesView, as: UTF8.self) == nil) {
            answer = 1002
        } else if case .unknown(let number)? = code, number < 3000 || number > 4999 {
            answer = 1002
        }
        fail(code: answer, reason: "", context: context)
    }

    /// The engine ends the socket (1000, 1001 at shutdown, 4401 when the session is revoked...): its close frame, then
    /// the peer's answer ends the connection; a peer that does not answer is cut off after the close timeout.
    func close(code: UInt16, reason: String) {
        guard let context else { return }
        sendClose(code: code, reason: reason, context: context)
    }

    private func sendClose(code: UInt16, reason: String, context: ChannelHandlerContext) {
        guard !closeSent else { return }
        writeClose(code: code, reason: reason, context: context)
        closeTimer = context.eventLoop.assumeIsolated().scheduleTask(in: settings.closeTimeout) { [weak self] in
            self?.context?.close(promise: nil)
        }
    }

    /// A protocol error, an oversized message, or the answer to the peer's close: the close frame, then the connection
    /// ends at once (once the engine's close frame is out, the peer's ends it at once too).
    private func fail(code: UInt16, reason: String, context: ChannelHandlerContext) {
        guard !closeSent else {
            context.close(promise: nil)
            return
        }
        writeClose(code: code, reason: reason, context: context).whenComplete { [channel = context.channel] _ in channel.close(promise: nil) }
    }

    /// Writes the engine's one close frame (code, and the reason cut to what a close frame carries). Nothing may
    /// follow it: frames still queued for the connection are dropped and later ones refused (a message handled after
    /// the peer's close would otherwise answer after it), and the keep-alive stops.
    @discardableResult
    private func writeClose(code: UInt16, reason: String, context: ChannelHandlerContext) -> EventLoopFuture<Void> {
        closeSent = true
        if case .connection(let connection, _) = role { connection.outbox.detach() }
        pingTimer?.cancel()
        pingTimer = nil
        let text = reason.utf8.prefix(123)
        var buffer = context.channel.allocator.buffer(capacity: 2 + text.count)
        buffer.writeInteger(code)
        buffer.writeBytes(text)
        return context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .connectionClose, data: buffer)))
    }

    // MARK: keep-alive

    private func armPing(context: ChannelHandlerContext) {
        pingTimer = context.eventLoop.assumeIsolated().scheduleTask(in: settings.pingPeriod) { [weak self] in
            self?.ping()
        }
    }

    private func ping() {
        guard let context, !closeSent else { return }
        if pingOutstanding {
            // No pong since the last ping, a whole period ago: the peer is gone.
            fail(code: 1001, reason: "Ping timeout", context: context)
            return
        }
        pingOutstanding = true
        var data = context.channel.allocator.buffer(capacity: 8)
        data.writeInteger(UInt64.random(in: .min ... .max))
        context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .ping, data: data)), promise: nil)
        armPing(context: context)
    }
}
