// HTTP: per-connection limits: a connection cap, header / idle / body timeouts, and a status line for
// requests the HTTP parser refuses (instead of a silent close).

import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
@_spi(Engine) import PluginAPI
import ServiceLifecycle
import Synchronization
#if canImport(Glibc)
    import Glibc
#endif

/// The limits every connection is held to, shared by all of them.
final class ConnectionLimits: Sendable {
    let maxConnections: Int
    let headerTimeout: TimeAmount
    let idleTimeout: TimeAmount
    let bodyTimeout: TimeAmount
    /// Connections open now.
    let open = Atomic<Int>(0)
    /// Connections accepted past the cap (answered only on the health paths).
    let overCapTotal = Atomic<Int>(0)
    /// Connections closed by a timeout.
    let timedOutTotal = Atomic<Int>(0)
    /// The most connections open at once since memory was last given back (``MemoryTrim``).
    let peakSinceTrim = Atomic<Int>(0)
    /// Connections closed since memory was last given back.
    let closedSinceTrim = Atomic<Int>(0)
    private let lastCapWarning = Mutex<ContinuousClock.Instant?>(nil)
    let logger: Logger

    /// Paths still answered on a connection past the cap, so monitoring sees the engine alive.
    static let healthPaths: Set<String> = ["/healthz", "/readyz", "/metrics"]

    init(server: ServerConfig, logger: Logger) {
        self.maxConnections = server.maxConnections
        self.headerTimeout = .seconds(Int64(server.headerTimeoutSeconds))
        self.idleTimeout = .seconds(Int64(server.idleTimeoutSeconds))
        self.bodyTimeout = .seconds(Int64(server.bodyTimeoutSeconds))
        self.logger = logger
    }

    /// True while more connections are open than the cap allows.
    var isOverCap: Bool { open.load(ordering: .relaxed) > maxConnections }

    func warnCapReached() {
        let now = ContinuousClock.now
        let warn = lastCapWarning.withLock { last -> Bool in
            if let last, now - last < .seconds(60) { return false }
            last = now
            return true
        }
        if warn {
            logger.warning(
                "connection cap reached: \(open.load(ordering: .relaxed)) open, server.max_connections is \(maxConnections); new connections get 503 (the health paths still answer)"
            )
        }
    }

    /// Raises the soft limit of open files to the hard limit, and keeps the cap below it with room for
    /// files, the store and plugins. Returns the limit in force.
    static func raiseFileLimit(logger: Logger) -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        if limit.rlim_cur < limit.rlim_max {
            let before = limit.rlim_cur
            limit.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 {
                logger.info("raised the open-file limit from \(before) to \(limit.rlim_max)")
            } else {
                limit.rlim_cur = before
            }
        }
        return Int(clamping: limit.rlim_cur)
    }
}

/// First in every connection's pipeline (raw bytes): counts connections against the cap and closes
/// connections that are too slow to send a request head, idle too long between requests, or stall
/// a request body the engine is waiting for. Sockets are left to their own ping/pong once upgraded.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    enum Phase {
        /// Waiting for a request head: the first one (header timeout) or the next one (idle timeout).
        case awaitingHead(first: Bool)
        /// Reading a request body.
        case body
        /// The request is read; the engine is answering.
        case responding
        /// Upgraded to a WebSocket.
        case webSocket
        case closed
    }

    let limits: ConnectionLimits
    private(set) var overCap = false
    private var phase = Phase.awaitingHead(first: true)
    private var phaseStarted = NIODeadline.now()
    private var bytesInPhase = 0
    /// A read was asked for and nothing arrived since.
    private var readPending = false
    /// When that read was asked for (kept in the body phase only).
    private var readPendingSince: NIODeadline?
    private var timer: Scheduled<Void>?
    /// When the armed timer fires. A later deadline leaves it armed (it re-checks and re-arms when it fires), so
    /// the phase changes of a keep-alive request (head, body, responding, head) schedule no timer at all.
    private var timerDeadline: NIODeadline?
    private var counted = false
    private var responseStarted = false

    init(limits: ConnectionLimits) { self.limits = limits }

    // MARK: counting

    func channelActive(context: ChannelHandlerContext) {
        count(context)
        context.fireChannelActive()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { count(context) }
    }

    private func count(_ context: ChannelHandlerContext) {
        guard !counted else { return }
        counted = true
        let open = limits.open.add(1, ordering: .relaxed).newValue
        limits.peakSinceTrim.max(open, ordering: .relaxed)
        if open > limits.maxConnections {
            overCap = true
            _ = limits.overCapTotal.add(1, ordering: .relaxed)
            limits.warnCapReached()
        }
        enter(.awaitingHead(first: true), context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        release()
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        release()
    }

    private func release() {
        timer?.cancel()
        timer = nil
        timerDeadline = nil
        phase = .closed
        if counted {
            counted = false
            limits.open.subtract(1, ordering: .relaxed)
            limits.closedSinceTrim.add(1, ordering: .relaxed)
        }
    }

    // MARK: phases (told by RequestPhaseHandler and the socket routes)

    func enter(_ next: Phase, context: ChannelHandlerContext) {
        if case .closed = phase { return }
        phase = next
        bytesInPhase = 0
        switch next {
        case .awaitingHead:
            // Only the head timeouts count from the phase's start (one clock read per request, not per phase).
            phaseStarted = .now()
            responseStarted = false
        case .body:
            // A read asked for before the body began counts from now: the client's stall starts with the body.
            if readPending { readPendingSince = .now() }
        case .responding, .webSocket, .closed:
            break
        }
        schedule(context: context)
    }

    func noteResponseStarted() { responseStarted = true }

    private var currentDeadline: NIODeadline? {
        switch phase {
        case .awaitingHead(let first):
            let allowed = first ? limits.headerTimeout : limits.idleTimeout
            // Past the cap a connection gets a short window: enough for a health check.
            return phaseStarted + (overCap ? min(allowed, .seconds(2)) : allowed)
        case .body:
            // Only the client's stall counts: time since the engine asked for more and got nothing.
            return readPendingSince.map { $0 + limits.bodyTimeout }
        case .responding, .webSocket, .closed:
            return nil
        }
    }

    /// Makes sure a timer fires by the current phase's deadline (a timer already due earlier is kept).
    private func schedule(context: ChannelHandlerContext) {
        if phase.isIdleFree { return }
        // In the body phase with no read pending there is nothing to time; look again later.
        let deadline = currentDeadline ?? (NIODeadline.now() + limits.bodyTimeout)
        if let armed = timerDeadline, armed <= deadline { return }
        timer?.cancel()
        arm(deadline, context: context)
    }

    private func arm(_ deadline: NIODeadline, context: ChannelHandlerContext) {
        timerDeadline = deadline
        timer = context.eventLoop.assumeIsolated().scheduleTask(deadline: deadline) { [self] in
            self.timer = nil
            self.timerDeadline = nil
            self.check(context: context)
        }
    }

    private func check(context: ChannelHandlerContext) {
        if phase.isIdleFree { return }
        guard let deadline = currentDeadline else {
            schedule(context: context)
            return
        }
        guard NIODeadline.now() >= deadline else {
            arm(deadline, context: context)
            return
        }
        _ = limits.timedOutTotal.add(1, ordering: .relaxed)
        let partial: Bool
        switch phase {
        case .awaitingHead: partial = bytesInPhase > 0
        case .body: partial = true
        default: partial = false
        }
        phase = .closed
        if partial && !responseStarted {
            // 408: the client started a request and did not finish it in time.
            let body = PluginError(status: 408, code: "request_timeout", message: "the request was not received in time").jsonBody
            var buffer = context.channel.allocator.buffer(capacity: 160 + body.count)
            buffer.writeString(
                "HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: \(body.count)\r\n\r\n"
            )
            buffer.writeBytes(body)
            context.writeAndFlush(NIOAny(IOData.byteBuffer(buffer))).whenComplete { [channel = context.channel] _ in channel.close(promise: nil) }
        } else {
            context.close(promise: nil)
        }
    }

    // MARK: traffic

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        bytesInPhase += buffer.readableBytes
        readPending = false
        if readPendingSince != nil {
            readPendingSince = nil
            if case .body = phase { schedule(context: context) }
        }
        context.fireChannelRead(data)
    }

    func read(context: ChannelHandlerContext) {
        readPending = true
        // The time of the ask matters only while a body is awaited (``enter(_:context:)`` stamps a pending one).
        if case .body = phase, readPendingSince == nil {
            readPendingSince = .now()
            schedule(context: context)
        }
        context.read()
    }
}

extension ConnectionGuard.Phase {
    /// Phases without a timer of this guard.
    var isIdleFree: Bool {
        switch self {
        case .responding, .webSocket, .closed: return true
        case .awaitingHead, .body: return false
        }
    }
}

extension ConnectionGuard {
    /// Tells the guard of `channel` that it now carries a WebSocket (from the upgrade, on the channel's loop).
    static func upgraded(_ channel: any Channel) {
        channel.eventLoop.preconditionInEventLoop()
        guard let handler = try? channel.pipeline.syncOperations.handler(type: ConnectionGuard.self),
            let context = try? channel.pipeline.syncOperations.context(handler: handler)
        else { return }
        handler.enter(.webSocket, context: context)
    }
}

/// After Hummingbird's HTTP codec: tells the guard where each request is, refuses transfer codings
/// the engine cannot read (501), answers connections past the cap with 503 except on the health paths,
/// answers `Expect: 100-continue`, answers parse errors once the connection serves HTTP (``ParseErrorResponder``
/// does until then), and closes the connection at a graceful shutdown once its request in flight is answered (what
/// Hummingbird's `HTTPConnectionStateHandler` does, which this handler replaces). One handler for all of it: each
/// handler in the pipeline costs every read and write.
final class RequestPhaseHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private var guardHandler: ConnectionGuard?
    private var guardContext: ChannelHandlerContext?
    private var refusing = false
    /// Requests read whose response has not ended (one at a time: the engine does not pipeline).
    private var inFlight = 0
    /// The server is shutting down: close once the response in flight has ended.
    private var closeAfterResponse = false

    func handlerAdded(context: ChannelHandlerContext) {
        if let handler = try? context.pipeline.syncOperations.handler(type: ConnectionGuard.self) {
            guardHandler = handler
            guardContext = try? context.pipeline.syncOperations.context(handler: handler)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        guardHandler = nil
        guardContext = nil
    }

    private func tell(_ phase: ConnectionGuard.Phase) {
        if let guardHandler, let guardContext { guardHandler.enter(phase, context: guardContext) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if refusing { return }
        let part = unwrapInboundIn(data)
        switch part {
        case .head(let head):
            inFlight += 1
            tell(.body)
            if guardHandler?.overCap == true, !ConnectionLimits.healthPaths.contains(head.path.map { String($0.prefix { $0 != "?" }) } ?? "") {
                refuse(
                    context,
                    PluginError(
                        status: 503, code: "too_many_connections",
                        message: "the server has too many connections; retry shortly", headers: ["retry-after": "5"]))
                return
            }
            if let coding = head.headerFields[.transferEncoding], coding.trimmingCharacters(in: .whitespaces).lowercased() != "chunked" {
                refuse(
                    context,
                    PluginError(
                        status: 501, code: "not_implemented",
                        message: "Transfer-Encoding '\(coding.prefix(40))' is not supported (only chunked)"))
                return
            }
            // `Expect: 100-continue`: Hummingbird does not answer it, and curl then waits a second before every
            // upload over 1 MB. Limits still hold for the body as it arrives.
            if head.headerFields[.expect]?.lowercased() == "100-continue" {
                context.writeAndFlush(wrapOutboundOut(.head(HTTPResponse(status: .continue))), promise: nil)
            }
        case .end:
            tell(.responding)
        case .body:
            break
        }
        context.fireChannelRead(data)
    }

    private func refuse(_ context: ChannelHandlerContext, _ error: PluginError) {
        refusing = true
        var fields = HTTPFields()
        fields[.contentType] = "application/json; charset=utf-8"
        fields[.connection] = "close"
        let body = error.jsonBody
        fields[.contentLength] = String(body.count)
        for (name, value) in error.headers {
            if let field = HTTPField.Name(name) { fields[field] = value }
        }
        guardHandler?.noteResponseStarted()
        context.write(wrapOutboundOut(.head(HTTPResponse(status: .init(code: error.status), headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(context.channel.allocator.buffer(bytes: body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { [channel = context.channel] _ in channel.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let parseError = error as? HTTPParserError {
            if !refusing {
                refusing = true
                ParseErrorResponder.answer(parseError, context: context)
            }
            return
        }
        context.fireErrorCaught(error)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(let head) where head.status.code >= 200:
            guardHandler?.noteResponseStarted()
        case .end:
            inFlight = max(0, inFlight - 1)
            if closeAfterResponse && inFlight == 0 {
                context.writeAndFlush(data, promise: promise)
                context.close(promise: nil)
                return
            }
            tell(.awaitingHead(first: false))
        default:
            break
        }
        context.write(data, promise: promise)
    }

    /// A graceful shutdown (the server stops accepting and asks every connection to quiesce): an idle connection
    /// closes now, one with a request in flight after its response.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is ChannelShouldQuiesceEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        if inFlight > 0 {
            closeAfterResponse = true
        } else {
            context.close(promise: nil)
        }
    }
}

/// Right after the HTTP decoder until the first request decided what the connection is: a request the parser refuses
/// gets a status line and a JSON error (400, or 431 for headers that are too large) before the connection closes,
/// instead of a bare close. Then it leaves the pipeline: ``RequestPhaseHandler`` answers later requests' parse errors,
/// and a WebSocket has no HTTP parser.
final class ParseErrorResponder: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    typealias InboundOut = NIOAny

    private var answered = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parseError = error as? HTTPParserError else {
            context.fireErrorCaught(error)
            return
        }
        guard !answered else { return }
        answered = true
        Self.answer(parseError, context: context)
    }

    /// Writes the status line and JSON error for `parseError` from the guard's place at the front of the pipeline (the
    /// HTTP encoder between there and the socket takes only response parts), then closes.
    static func answer(_ parseError: HTTPParserError, context: ChannelHandlerContext) {
        let status: Int
        let reason: String
        let message: String
        switch parseError {
        case .headerOverflow:
            (status, reason, message) = (431, "Request Header Fields Too Large", "the request headers are too large")
        case .invalidContentLength, .unexpectedContentLength:
            (status, reason, message) = (400, "Bad Request", "the request has an invalid Content-Length")
        case .invalidChunkSize:
            (status, reason, message) = (400, "Bad Request", "the chunked body is malformed")
        default:
            (status, reason, message) = (400, "Bad Request", "the request is not valid HTTP/1.1 (\(parseError))")
        }
        guard let guardHandler = try? context.pipeline.syncOperations.handler(type: ConnectionGuard.self),
            let front = try? context.pipeline.syncOperations.context(handler: guardHandler)
        else {
            context.close(promise: nil)
            return
        }
        guardHandler.noteResponseStarted()
        let body = PluginError(status: status, code: status == 431 ? "headers_too_large" : "bad_request", message: message).jsonBody
        var buffer = context.channel.allocator.buffer(capacity: 160 + body.count)
        buffer.writeString(
            "HTTP/1.1 \(status) \(reason)\r\nconnection: close\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: \(body.count)\r\n\r\n"
        )
        buffer.writeBytes(body)
        front.writeAndFlush(NIOAny(IOData.byteBuffer(buffer))).whenComplete { [channel = context.channel] _ in channel.close(promise: nil) }
    }
}

/// Gives freed memory back to the system after a wave of connections has closed.
///
/// glibc keeps what thousands of closed connections freed in its arenas, so RSS stayed at its high
/// mark (15,000 idle connections: +97 MiB that never came back). Every few seconds, when the open
/// connections fell by `dropThreshold` from their peak, or `churnThreshold` connections closed,
/// `malloc_trim(0)` returns the free pages.
struct MemoryTrim: Sendable {
    let limits: ConnectionLimits
    var dropThreshold = 500
    var churnThreshold = 5000

    /// glibc's `malloc_trim` (not in Swift's Glibc module), looked up once; nil on other C libraries.
    static let trim: (@convention(c) (Int) -> Int32)? = {
        guard let symbol = dlsym(nil, "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
    }()

    /// Trims when enough connections closed since the last time (run every few seconds).
    func step() {
        let open = limits.open.load(ordering: .relaxed)
        if limits.peakSinceTrim.load(ordering: .relaxed) - open >= dropThreshold
            || limits.closedSinceTrim.load(ordering: .relaxed) >= churnThreshold
        {
            limits.peakSinceTrim.store(open, ordering: .relaxed)
            limits.closedSinceTrim.store(0, ordering: .relaxed)
            _ = Self.trim?(0)
        }
    }
}
