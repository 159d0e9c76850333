// Sockets: the registry of live channel connections, broadcast fan-out, and inbound event dispatch.

import Foundation
import HummingbirdWebSocket
import Logging
import Metrics
import NIOCore
import NIOWebSocket
@_spi(Engine) import PluginAPI
import Synchronization

/// Counters of the fan-out, for `/api/metrics/realtime` and `/metrics`.
public struct HubStats: Sendable, Codable {
    public var framesSent: Int = 0
    public var framesCoalesced: Int = 0
    public var framesDropped: Int = 0
    public var clientsDropped: Int = 0
    public var slowClients: Int = 0

    enum CodingKeys: String, CodingKey {
        case framesSent = "frames_sent"
        case framesCoalesced = "frames_coalesced"
        case framesDropped = "frames_dropped"
        case clientsDropped = "clients_dropped"
        case slowClients = "slow_clients"
    }
}

/// Holds every connection of the engine channels and routes frames in and out.
///
/// One broadcast encodes its text once into a shared buffer; each connection's queue holds a
/// reference to it, so fan-out to N clients costs N queue appends, not N encodings.
public final class ChannelHub: SocketHub {
    private let connections = Mutex<[String: ChannelConnection]>([:])
    private let handlers = Mutex<[String: [(channels: [SocketChannel], handler: SocketEventHandler, owner: String)]]>([:])
    private let connectHooks = Mutex<[(channels: [SocketChannel], handler: SocketConnectHandler, owner: String)]>([])
    private let disconnectHooks = Mutex<[(channels: [SocketChannel], handler: SocketDisconnectHandler)]>([])
    private let framesSent = Atomic<Int>(0)
    private let framesCoalesced = Atomic<Int>(0)
    private let framesDropped = Atomic<Int>(0)
    private let clientsDropped = Atomic<Int>(0)
    private let nextID = Atomic<Int>(0)
    /// Open connections per channel, for the gauges (kept alongside, not counted over every connection).
    private let openCounts = Mutex<[SocketChannel: Int]>([:])
    let logger: Logger
    let queueLimit: Int
    let sendTimeout: Duration
    let maxMessageBytes: Int
    let sceneBacklog: Int
    private let sentCounter: Counter
    private let coalescedCounter: Counter
    private let droppedCounter: Counter
    private let gauges: [SocketChannel: Gauge]

    /// Creates a hub.
    public init(limits: LimitsConfig, metrics: EngineMetrics, logger: Logger) {
        self.logger = logger
        self.queueLimit = limits.wsOutboundQueue
        self.sendTimeout = .seconds(limits.wsSendTimeoutSeconds)
        self.maxMessageBytes = limits.wsMaxMessageBytes
        self.sceneBacklog = min(limits.wsSceneBacklog, max(1, limits.wsOutboundQueue / 2))
        self.sentCounter = metrics.counter("onionrp_ws_frames_sent_total")
        self.coalescedCounter = metrics.counter("onionrp_ws_frames_coalesced_total")
        self.droppedCounter = metrics.counter("onionrp_ws_clients_dropped_total")
        var gauges: [SocketChannel: Gauge] = [:]
        for channel in SocketChannel.allCases {
            gauges[channel] = metrics.gauge("onionrp_ws_connections", [("channel", channel.rawValue)])
        }
        self.gauges = gauges
    }

    /// Drops clients whose current frame has been sending for longer than the send timeout. Run once a second
    /// (``PeriodicService``): one sweeper for all connections keeps timers out of the per-frame path.
    /// Nanoseconds on the continuous clock since the engine started (fits an `Atomic<UInt64>`, unlike an Instant).
    static let clockStart = ContinuousClock.now
    static func monotonicNanoseconds() -> UInt64 {
        let elapsed = ContinuousClock.now - clockStart
        return UInt64(max(0, elapsed.components.seconds)) * 1_000_000_000 + UInt64(max(0, elapsed.components.attoseconds / 1_000_000_000))
    }

    func sweepStuckWriters() {
        let now = Self.monotonicNanoseconds()
        let limit = UInt64(max(0, sendTimeout.wholeMilliseconds)) * 1_000_000
        for connection in all {
            let started = connection.writeStartedAt.load(ordering: .relaxed)
            guard started != 0, now > started, now - started > limit, connection.nioChannel.isActive else { continue }
            dropped(connection, reason: .sendTimeout)
            connection.nioChannel.close(promise: nil)
        }
    }

    // MARK: registration

    /// Adds a handler of an event type (engine or plugin).
    func on(_ event: String, channels: [SocketChannel], owner: String, handler: @escaping SocketEventHandler) {
        handlers.withLock { $0[event, default: []].append((channels, handler, owner)) }
    }

    /// Adds a connect hook.
    func onConnect(channels: [SocketChannel], owner: String, handler: @escaping SocketConnectHandler) {
        connectHooks.withLock { $0.append((channels, handler, owner)) }
    }

    /// Adds a disconnect hook.
    func onDisconnect(channels: [SocketChannel], handler: @escaping SocketDisconnectHandler) {
        disconnectHooks.withLock { $0.append((channels, handler)) }
    }

    // MARK: SocketHub

    @discardableResult
    public func send(_ text: String, to target: SocketTarget) -> Int {
        broadcast(ByteBuffer(string: text), to: target, coalesceKey: nil)
    }

    public func connectionCount(_ channel: SocketChannel) -> Int {
        connections.withLock { $0.values.filter { $0.channel == channel }.count }
    }

    /// Queues one shared buffer for every connection of `target`.
    /// - Parameter coalesceKey: Frames with the same key replace each other while queued.
    @discardableResult
    public func broadcast(_ frame: ByteBuffer, to target: SocketTarget, coalesceKey: String?) -> Int {
        let targets: [ChannelConnection] = connections.withLock { all in
            switch target {
            case .connection(let id): return all[id].map { [$0] } ?? []
            case .channel(let channel): return all.values.filter { $0.channel == channel }
            case .all: return Array(all.values)
            }
        }
        var queued = 0
        for connection in targets where connection.enqueue(frame, key: coalesceKey) { queued += 1 }
        return queued
    }

    /// Snapshot of the connections.
    var all: [ChannelConnection] { connections.withLock { Array($0.values) } }

    /// Snapshot of the connections of one channel.
    func connections(on channel: SocketChannel) -> [ChannelConnection] {
        connections.withLock { $0.values.filter { $0.channel == channel } }
    }

    /// Counters so far.
    public var currentStats: HubStats {
        var value = HubStats()
        value.framesSent = framesSent.load(ordering: .relaxed)
        value.framesCoalesced = framesCoalesced.load(ordering: .relaxed)
        value.framesDropped = framesDropped.load(ordering: .relaxed)
        value.clientsDropped = clientsDropped.load(ordering: .relaxed)
        value.slowClients = all.filter { $0.queuedCount > max(1, queueLimit / 2) || $0.writeStartedAt.load(ordering: .relaxed) != 0 }.count
        return value
    }

    /// Closes every connection (engine shutdown).
    public func closeAll(code: UInt16, reason: String) {
        for connection in all { connection.close(code: code, reason: reason) }
    }

    /// Closes the sockets of a moderator session that was revoked or expired (4401).
    public func closeSession(_ sessionID: String, reason: String = "session revoked") {
        for connection in all where connection.sessionID == sessionID {
            connection.close(code: 4401, reason: reason)
        }
    }

    /// The moderator sessions that have a socket open now.
    var openSessionIDs: Set<String> { Set(all.compactMap(\.sessionID)) }

    // MARK: serving a connection

    /// Opens a connection on `nioChannel`, whose WebSocket codec is in place, and serves it with a
    /// ``ChannelSocketHandler`` on the channel's event loop until either side closes it. Call on that loop.
    /// - Parameters:
    ///   - channel: Which engine channel.
    ///   - caller: Who opened it.
    ///   - clientLabel: Optional id the client gave itself.
    ///   - takesPatches: The client applies `scene.patch` frames.
    ///   - nioChannel: The upgraded TCP channel.
    ///   - settings: Message size limit and keep-alive.
    ///   - afterConnect: Engine work right after registration (e.g. sending the current scene), before the connect hooks.
    func open(
        channel: SocketChannel, caller: Caller, clientLabel: String?, takesPatches: Bool, on nioChannel: any Channel,
        settings: ChannelSocketHandler.Settings, afterConnect: @escaping @Sendable (ChannelConnection) -> Void
    ) throws {
        let id = "\(channel.rawValue)-\(nextID.add(1, ordering: .relaxed).newValue)"
        let connection = ChannelConnection(
            id: id, channel: channel, caller: caller, clientLabel: clientLabel, limit: queueLimit, nioChannel: nioChannel,
            takesPatches: takesPatches, sceneBacklog: sceneBacklog,
            onDrop: { [weak self] connection, reason in self?.dropped(connection, reason: reason) },
            onCoalesce: { [weak self] in self?.coalesced() })
        let handler = ChannelSocketHandler(role: .connection(connection, self), settings: settings)
        let loopHandler = NIOLoopBound(handler, eventLoop: nioChannel.eventLoop)
        let loop = nioChannel.eventLoop
        // Frames are written by the connection's event loop (FrameWriter), below the WebSocket encoder.
        let events = FrameWriter.Events(
            sent: { [weak self] count in self?.sent(count) },
            stalled: { stalled in
                connection.writeStartedAt.store(stalled ? max(1, Self.monotonicNanoseconds()) : 0, ordering: .relaxed)
            },
            close: { code, reason in
                if loop.inEventLoop {
                    loopHandler.value.close(code: code, reason: reason)
                } else {
                    loop.execute { loopHandler.value.close(code: code, reason: reason) }
                }
            })
        try FrameWriter.install(on: nioChannel, outbox: connection.outbox, events: events)
        try nioChannel.pipeline.syncOperations.addHandler(handler)

        connections.withLock { $0[id] = connection }
        gauges[channel]?.record(
            openCounts.withLock { counts in
                counts[channel, default: 0] += 1
                return counts[channel, default: 0]
            })
        logger.info("socket connected", metadata: ["socket": "\(id)", "role": "\(caller.role)", "client": "\(clientLabel ?? "-")"])
        afterConnect(connection)
        let hooks = connectHooks.withLock { $0 }.filter { $0.channels.contains(channel) }
        if !hooks.isEmpty {
            handler.enqueue { [logger] in
                for hook in hooks {
                    do { try await hook.handler(connection) } catch {
                        logger.warning("connect hook failed", metadata: ["owner": "\(hook.owner)", "error": "\(error)"])
                    }
                }
            }
        }
    }

    /// After a connection closed and its messages were handled: the disconnect hooks.
    func closed(_ connection: ChannelConnection) async {
        for hook in disconnectHooks.withLock({ $0 }) where hook.channels.contains(connection.channel) { await hook.handler(connection) }
        logger.info("socket closed", metadata: ["socket": "\(connection.id)"])
    }

    struct Envelope: Decodable { let type: String }

    /// Routes one inbound message to the handlers of its `type`.
    func dispatch(_ raw: [UInt8], from connection: ChannelConnection) async {
        guard let envelope = try? JSONDecoder().decode(Envelope.self, from: Data(raw)) else {
            connection.send(errorFrame(code: "invalid_message", message: "a message must be a JSON object with a string 'type'", event: nil))
            return
        }
        let matching = handlers.withLock { $0[envelope.type] ?? [] }.filter { $0.channels.contains(connection.channel) }
        if matching.isEmpty {
            connection.send(
                errorFrame(
                    code: "unknown_event", message: "no handler for '\(envelope.type)' on the \(connection.channel.rawValue) channel",
                    event: envelope.type))
            return
        }
        let event = SocketEvent(type: envelope.type, raw: raw)
        for entry in matching {
            do {
                try await entry.handler(event, connection)
            } catch {
                let (mapped, serverFault) = PluginError.normalized(error, owner: entry.owner == "engine" ? nil : entry.owner)
                if serverFault {
                    logger.error("event handler failed", metadata: ["event": "\(envelope.type)", "owner": "\(entry.owner)", "error": "\(error)"])
                }
                connection.send(errorFrame(code: mapped.code, message: mapped.message, event: envelope.type))
            }
        }
    }

    func errorFrame(code: String, message: String, event: String?) -> String {
        struct Payload: Encodable {
            let code: String
            let message: String
            let event: String?
        }
        return (try? SocketMessage.make(type: "error", payload: Payload(code: code, message: message, event: event)))
            ?? SocketMessage.make(type: "error")
    }

    // MARK: counters

    private func sent(_ count: Int) {
        framesSent.add(count, ordering: .relaxed)
        sentCounter.increment(by: Int64(count))
    }

    private func coalesced() {
        framesCoalesced.add(1, ordering: .relaxed)
        coalescedCounter.increment()
    }

    private func dropped(_ connection: ChannelConnection, reason: DropReason) {
        let lost = connection.queuedCount
        clientsDropped.add(1, ordering: .relaxed)
        framesDropped.add(lost, ordering: .relaxed)
        droppedCounter.increment()
        logger.warning("dropped a stuck client", metadata: ["socket": "\(connection.id)", "reason": "\(reason.rawValue)"])
    }

    /// Removes a connection from the registry (once; a second call does nothing) and updates its channel's gauge.
    func unregister(_ connection: ChannelConnection) {
        let channel = connection.channel
        guard connections.withLock({ $0.removeValue(forKey: connection.id) }) != nil else { return }
        gauges[channel]?.record(
            openCounts.withLock { counts in
                counts[channel, default: 0] -= 1
                return counts[channel, default: 0]
            })
    }
}
