// TTS: the server's queue of utterances (what is being said, what waits), kept in step with the overlays' reports.

import Foundation
import PluginAPI
import Synchronization

/// One accepted utterance.
struct Utterance: Sendable {
    /// Whether the overlay has said it started.
    enum State: String, Sendable, Encodable {
        /// Sent to the overlays, not reported started yet.
        case pending
        /// An overlay reported `tts.started`.
        case speaking
    }

    /// Random id, also in every event about it.
    let id: String
    /// What was asked.
    let request: SpeakRequest
    /// `browser` or `server` (never `auto`: the decision is made when it is accepted).
    let mode: SpeechMode
    /// The cache name of its audio when rendered on the server.
    let audioHash: String?
    /// Length of the rendered audio.
    let audioDuration: Duration?
    /// Role of the caller who asked (`moderator`, `streamer`).
    let requestedBy: String
    /// When it was accepted.
    let queuedAt: Date
    /// How long it may stay current before it is dropped.
    let timeout: Duration
    /// Pending or speaking.
    var state: State = .pending
    /// When the first overlay reported it started.
    var startedAt: Date?
    /// Connections that reported it started and have not failed it (`<engine id>/<connection id>`).
    var startedBy: Set<String> = []
    /// The engine that accepted it: its timer publishes the timeout (the others only when that engine is gone).
    var origin = ""
    /// espeak-ng's inputs when `audioHash` is set: an engine that lacks the file renders the same bytes from them.
    var plan: RenderPlan?
    /// Which arming of the timeout is running (replicated: every engine counts the same).
    var arm: Int64 = 0

    /// Where overlays fetch the rendered audio.
    var audioURL: String? { audioHash.map { "/api/tts/audio/\($0).wav" } }

    /// The `tts.speak` payload.
    var speakEvent: SpeakEvent {
        SpeakEvent(
            id: id, text: request.text, lang: request.lang, rate: request.rate, pitch: request.pitch,
            volume: request.volume, voice: request.voice, audioURL: audioURL)
    }

    /// The entry in `tts.queue`.
    var entry: QueueEntry {
        QueueEntry(
            id: id, text: request.text, lang: request.lang, rate: request.rate, pitch: request.pitch, volume: request.volume,
            voice: request.voice, audioURL: audioURL, mode: mode.rawValue, state: state, queuedAt: queuedAt, startedAt: startedAt,
            requestedBy: requestedBy, durationMs: audioDuration?.wholeMilliseconds)
    }
}

/// `{"type":"tts.speak",...}` as overlays receive it.
struct SpeakEvent: Encodable, Sendable {
    let id: String
    let text: String
    let lang: String
    let rate: Double
    let pitch: Double
    let volume: Double
    let voice: String?
    let audioURL: String?

    enum CodingKeys: String, CodingKey {
        case id, text, lang, rate, pitch, volume, voice
        case audioURL = "audio_url"
    }
}

/// An utterance as moderators see it in `tts.queue`.
struct QueueEntry: Encodable, Sendable {
    let id: String
    let text: String
    let lang: String
    let rate: Double
    let pitch: Double
    let volume: Double
    let voice: String?
    let audioURL: String?
    let mode: String
    let state: Utterance.State
    let queuedAt: Date
    let startedAt: Date?
    let requestedBy: String
    let durationMs: Int64?

    enum CodingKeys: String, CodingKey {
        case id, text, lang, rate, pitch, volume, voice, mode, state
        case audioURL = "audio_url"
        case queuedAt = "queued_at"
        case startedAt = "started_at"
        case requestedBy = "requested_by"
        case durationMs = "duration_ms"
    }
}

/// `{"type":"tts.queue","current":...|null,"queue":[...]}`.
struct QueueSnapshot: Encodable, Sendable {
    let current: QueueEntry?
    let queue: [QueueEntry]

    enum CodingKeys: String, CodingKey { case current, queue }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(current, forKey: .current)  // null when idle, never left out
        try c.encode(queue, forKey: .queue)
    }
}

/// The plugin's counters, gauges and timers.
struct TTSMetrics: Sendable {
    let queued: any MetricCounter
    let spoken: any MetricCounter
    let failedOverlay: any MetricCounter
    let failedTimeout: any MetricCounter
    let skipped: any MetricCounter
    let cacheHits: any MetricCounter
    let cacheEvictions: any MetricCounter
    let remoteRenders: any MetricCounter
    let queueLength: any MetricGauge
    let cacheBytes: any MetricGauge

    init(_ metrics: any PluginMetrics) {
        queued = metrics.counter("tts_utterances_queued_total", labels: [])
        spoken = metrics.counter("tts_utterances_spoken_total", labels: [])
        failedOverlay = metrics.counter("tts_utterances_failed_total", labels: [("reason", "overlay")])
        failedTimeout = metrics.counter("tts_utterances_failed_total", labels: [("reason", "timeout")])
        skipped = metrics.counter("tts_utterances_skipped_total", labels: [])
        cacheHits = metrics.counter("tts_cache_hits_total", labels: [])
        cacheEvictions = metrics.counter("tts_cache_evictions_total", labels: [])
        remoteRenders = metrics.counter("tts_remote_renders_total", labels: [])
        queueLength = metrics.gauge("tts_queue_length", labels: [])
        cacheBytes = metrics.gauge("tts_cache_bytes", labels: [])
    }
}

/// The TTS queue of this engine: a replica of the one queue every engine sharing the store holds.
///
/// Every change (enqueue, an overlay's report, skip, clear, timeout) is published on the bus topic `queue` and applied
/// here when the bus delivers it, in the bus's order, on every engine alike: the engine that made the change waits for
/// its own message to come back and answers from what applying it gave. Each engine tells its own sockets: overlays get
/// `tts.speak`/`tts.skip`/`tts.clear`, moderators a `tts.queue` after every change. On the embedded backend the bus is
/// in-process and there is one engine, so it behaves as a plain queue.
///
/// Timeouts: every engine arms a timer when an utterance becomes current (or starts); the engine that accepted it
/// publishes the timeout when it passes, the others `timeout_grace_seconds` later (that engine died). A timeout names
/// the arming it belongs to, so one that arrives after a start or a second copy changes nothing.
///
/// Joining: an engine starts without a replica, asks for one on the bus (`sync.request`) and keeps what arrives after
/// its request; any engine that has a replica answers with it (`sync.state`) as it stood at the request, and the
/// newcomer applies what it kept on top. Without an answer within the sync wait it starts empty (it is alone). Every
/// message carries its sender's sequence number; a gap (a message lost while the engine's connection to the store was
/// down) makes the engine ask for a replica again.
actor SpeechQueue {
    /// The bus topic.
    static let topic = "queue"

    /// Delays of the replication; the defaults suit engines on one network.
    struct Timing: Sendable {
        /// How much later than the accepting engine the others publish a timeout.
        var grace: Duration = .seconds(5)
        /// How long a starting engine waits for a replica before it starts empty.
        var syncWait: Duration = .milliseconds(500)
        /// How long a change may take to come back from the bus before its request answers 503.
        var replyTimeout: Duration = .seconds(5)
    }

    /// Whether this engine holds a replica it can answer from.
    private enum Phase {
        case synced
        case syncing(Sync)
    }

    /// A request for a replica in flight.
    private struct Sync {
        let nonce: String
        /// Our request came back: what follows it is kept for after the replica arrives.
        var seen = false
        var buffer: [(sequence: Int64, op: QueueOp, from: String)] = []
    }

    private var state = QueueState()
    private var phase: Phase
    private var lastSequence: [String: Int64] = [:]
    private var nextSequence: Int64 = 0
    private var replies: [Int64: Reply] = [:]
    private var syncWaiters: [CheckedContinuation<Void, Never>] = []
    private var syncWait: Duration
    /// Nonces of requests given up on: an answer to one means another engine exists after all.
    private var abandonedNonces: [String] = []
    /// This engine started its queue without hearing back its request for one (the store was unreachable): it asks
    /// again when it hears another engine, and does not answer requests meanwhile.
    private var unverified = false
    private var reasks = 0
    private var lastReask: ContinuousClock.Instant?
    /// How often, and how far apart, an unverified engine asks again.
    static let maxReasks = 10
    static let reaskSpacing: Duration = .seconds(1)
    private var subscription: (any BusSubscription)?
    private var inbox: AsyncStream<(bytes: [UInt8], from: String)>.Continuation?
    private var outbox: AsyncStream<(sequence: Int64, bytes: [UInt8])>.Continuation?
    private var workers: [Task<Void, Never>] = []
    private var timer: Task<Void, Never>?
    private var armed: (id: String, arm: Int64)?
    private var plans: [String: RenderPlan] = [:]
    private var planOrder: [String] = []
    private var stopped = false

    private let sockets: any SocketHub
    private let logger: any PluginLogger
    private let metrics: TTSMetrics
    private let maxLength: Int
    private let bus: any EngineBus
    private let timing: Timing
    /// Messages from the bus that could not be read.
    private let malformed: (any MetricCounter)?
    /// This engine's id on the bus.
    nonisolated let engineID: String

    /// Most render plans remembered for audio an overlay may still fetch after its utterance left the queue.
    static let rememberedPlans = 512

    /// Creates an empty replica; ``start()`` joins the bus.
    init(
        sockets: any SocketHub, logger: any PluginLogger, metrics: TTSMetrics, maxLength: Int, bus: any EngineBus,
        timing: Timing = Timing(), malformed: (any MetricCounter)? = nil
    ) {
        self.sockets = sockets
        self.logger = logger
        self.metrics = metrics
        self.maxLength = maxLength
        self.bus = bus
        self.timing = timing
        self.malformed = malformed
        self.engineID = bus.engineID
        self.syncWait = timing.syncWait
        self.phase = .syncing(Sync(nonce: ""))
    }

    /// Subscribes to the bus and asks for a replica (see the type's documentation).
    func start() async throws {
        let (inboxStream, inboxContinuation) = AsyncStream.makeStream(of: (bytes: [UInt8], from: String).self)
        let (outboxStream, outboxContinuation) = AsyncStream.makeStream(of: (sequence: Int64, bytes: [UInt8]).self)
        inbox = inboxContinuation
        outbox = outboxContinuation
        // The bus calls the handler in its order; the stream keeps it, and one task applies.
        subscription = try await bus.subscribe(Self.topic) { bytes, from in inboxContinuation.yield((bytes, from)) }
        workers.append(
            Task { [weak self] in
                for await message in inboxStream { await self?.receive(message.bytes, from: message.from) }
            })
        // One task publishes, in sequence order, so every engine sees this engine's numbers in order.
        let bus = self.bus
        workers.append(
            Task { [weak self] in
                for await message in outboxStream {
                    do {
                        try await bus.publish(Self.topic, message.bytes)
                    } catch {
                        await self?.publishFailed(message.sequence, error)
                    }
                }
            })
        requestReplica()
    }

    /// Leaves the bus, stops the timer and fails what still waits (engine shutdown).
    func shutdown() {
        stopped = true
        subscription?.cancel()
        inbox?.finish()
        outbox?.finish()
        disarm()
        for reply in replies.values { reply.fulfil(.failure(Self.unavailable("the engine is shutting down"))) }
        replies.removeAll()
        phase = .synced
        wakeSyncWaiters()
    }

    // MARK: operations (published, applied when they come back)

    /// Utterances current or waiting, in this replica.
    var count: Int { state.count }

    /// Throws 409 `queue_full` when no utterance can be added now (checked again when the enqueue is applied).
    func checkRoom() async throws {
        await synced()
        if state.count >= maxLength { throw Self.full(count: state.count, limit: maxLength) }
    }

    /// Queues an utterance on every engine; each sends `tts.speak` to its overlays and the queue to its moderators.
    /// - Returns: How many utterances are ahead of it (0: it is said now).
    /// - Throws: 409 `queue_full`, or 503 when the bus does not carry it.
    func enqueue(_ utterance: Utterance) async throws -> Int {
        switch try await submit(.enqueue(utterance, limit: maxLength)) {
        case .position(let position): return position
        case .full(let count, let limit): throw Self.full(count: count, limit: limit)
        default: throw Self.unavailable("the queue answered the enqueue with something else")
        }
    }

    /// `tts.started` from an overlay connection of this engine.
    func started(_ id: String, by connection: String) async throws {
        _ = try await submit(.started(id: id, connection: qualified(connection), at: Date()))
    }

    /// `tts.finished` from an overlay.
    func finished(_ id: String) async throws {
        _ = try await submit(.finished(id: id))
    }

    /// `tts.failed` from an overlay connection of this engine.
    func failed(_ id: String, reason: String?, by connection: String) async throws {
        _ = try await submit(.failed(id: id, connection: qualified(connection), reason: reason))
    }

    /// Drops the utterance `id` (or the current one); overlays get `tts.skip`.
    /// - Returns: The id skipped.
    /// - Throws: 404 when there is nothing to skip.
    func skip(_ id: String?) async throws -> String {
        switch try await submit(.skip(id: id)) {
        case .skipped(let target): return target
        case .nothingToSkip(let id?): throw PluginError.notFound("no queued utterance with id '\(id)'")
        default: throw PluginError.notFound("nothing is being spoken")
        }
    }

    /// Drops everything; overlays get `tts.clear`.
    /// - Returns: How many utterances were dropped.
    func clear() async throws -> Int {
        guard case .cleared(let dropped) = try await submit(.clear) else { return 0 }
        return dropped
    }

    // MARK: reading the replica

    /// The `tts.queue` frame of the current state.
    func snapshotFrame() async -> String {
        await synced()
        return frame()
    }

    /// `tts.speak` frames of everything queued, in order: what an overlay that just connected (or reloaded) should say.
    func replayFrames() async -> [String] {
        await synced()
        return state.all.compactMap { try? SocketMessage.make(type: "tts.speak", payload: $0.speakEvent) }
    }

    /// Cache names of the audio still queued (never evicted).
    func referencedHashes() -> Set<String> { Set(state.all.compactMap(\.audioHash)) }

    /// How the audio named `hash` was rendered, when an utterance another engine accepted had it, now or lately.
    func plan(forAudio hash: String) -> RenderPlan? { plans[hash] }

    // MARK: internals: the bus

    private func qualified(_ connection: String) -> String { "\(engineID)/\(connection)" }

    /// Publishes `op` and waits until this engine has applied it.
    private func submit(_ op: QueueOp) async throws -> OpResult {
        if stopped { throw Self.unavailable("the engine is shutting down") }
        let reply = Reply()
        let sequence = send(op, reply: reply)
        let deadline = Task { [timing] in
            try? await Task.sleep(for: timing.replyTimeout)
            reply.fulfil(.failure(Self.unavailable("the change did not come back from the bus within \(timing.replyTimeout)")))
        }
        defer {
            deadline.cancel()
            replies[sequence] = nil
        }
        return try await reply.value()
    }

    /// Numbers, encodes and hands `op` to the publishing task.
    @discardableResult
    private func send(_ op: QueueOp, reply: Reply? = nil) -> Int64 {
        nextSequence += 1
        let sequence = nextSequence
        do {
            let bytes = try QueueMessage(sequence: sequence, op: op).encoded()
            if let reply { replies[sequence] = reply }
            outbox?.yield((sequence, bytes))
        } catch {
            reply?.fulfil(.failure(Self.unavailable("cannot encode the change: \(error)")))
        }
        return sequence
    }

    private func publishFailed(_ sequence: Int64, _ error: any Error) {
        logger.warning("could not publish a queue change", ["why": "\(error)"])
        replies.removeValue(forKey: sequence)?.fulfil(.failure(error))
    }

    /// One message from the bus, in the bus's order.
    func receive(_ bytes: [UInt8], from: String) {
        guard !stopped else { return }
        let decoded: (sequence: Int64, op: QueueOp)
        do {
            decoded = try QueueMessage.decode(bytes)
        } catch {
            malformed?.increment()
            logger.warning("ignored a malformed queue message", ["from": String(from.prefix(64)), "why": "\(error)"])
            return
        }
        switch phase {
        case .synced:
            guard accept(decoded.sequence, from: from) else { return }
            process(decoded.op, sequence: decoded.sequence, from: from)
            if unverified, from != engineID, reasks < Self.maxReasks, lastReask.map({ ContinuousClock.now - $0 >= Self.reaskSpacing }) ?? true {
                // Another engine is there after all, and its queue is the one: ask it (maybe its own subscription is
                // still being re-made and the request is lost: then again on a later message, a few times).
                reasks += 1
                lastReask = .now
                logger.info("another engine is reachable; asking it for the queue", ["attempt": String(reasks)])
                requestReplica()
            }
        case .syncing(var sync):
            if case .syncRequest(let nonce) = decoded.op, from == engineID, nonce == sync.nonce {
                note(decoded.sequence, from: from)
                sync.seen = true
                phase = .syncing(sync)
                return
            }
            guard sync.seen else {
                // Before our request: the replica we get includes it. Its number is noted all the same, so that if no
                // replica comes the next message of that engine is not taken for a gap (asking again and again).
                note(decoded.sequence, from: from)
                return
            }
            if case .syncState(let nonce, let replica) = decoded.op, nonce == sync.nonce {
                adopt(replica, then: sync.buffer, answer: (decoded.sequence, from))
                return
            }
            sync.buffer.append((decoded.sequence, decoded.op, from))
            phase = .syncing(sync)
        }
    }

    /// Notes a sender's sequence number without looking for a gap.
    private func note(_ sequence: Int64, from: String) {
        if sequence > lastSequence[from] ?? 0 { lastSequence[from] = sequence }
    }

    /// Notes a sender's sequence number. False for one already seen; a gap asks for a replica again.
    private func accept(_ sequence: Int64, from: String) -> Bool {
        if let last = lastSequence[from] {
            if sequence <= last { return false }
            if sequence > last + 1 {
                logger.warning(
                    "queue messages were lost; asking the other engines for the queue",
                    ["from": String(from.prefix(64)), "missing": String(sequence - last - 1)])
                lastSequence[from] = sequence
                requestReplica()  // this message is still applied: it is what there is if nobody answers
                return true
            }
        } else if lastSequence.count >= WireLimits.engines, let oldest = lastSequence.min(by: { $0.value < $1.value })?.key {
            lastSequence[oldest] = nil
        }
        lastSequence[from] = sequence
        return true
    }

    private func process(_ op: QueueOp, sequence: Int64, from: String) {
        switch op {
        case .syncRequest(let nonce):
            // Answered with the replica as it stands at the request, in the bus's order.
            if from != engineID && !unverified {
                send(.syncState(nonce: nonce, replica: Replica(state: state, lastSequence: lastSequence)))
            }
        case .syncState(let nonce, _):
            if from != engineID, let index = abandonedNonces.firstIndex(of: nonce) {
                // We started empty thinking we were alone; we were not.
                abandonedNonces.remove(at: index)
                syncWait = min(syncWait * 2, .seconds(10))
                logger.warning("another engine answered late; asking for the queue again", ["wait_ms": String(syncWait.wholeMilliseconds)])
                requestReplica()
            }
        default:
            apply(op, from: from, sequence: sequence)
        }
    }

    /// Applies an operation, tells this engine's sockets, counts it (once: on the engine it came from).
    private func apply(_ op: QueueOp, from: String, sequence: Int64) {
        if case .enqueue(let utterance, _) = op { remember(utterance) }
        let outcome = state.apply(op)
        for (level, message, metadata) in outcome.logs { logger.log(level, message, metadata: metadata) }
        for frame in outcome.overlayFrames { sockets.send(frame, to: .channel(.overlay)) }
        if from == engineID {
            if outcome.queued > 0 { metrics.queued.increment(by: Int64(outcome.queued)) }
            if outcome.spoken > 0 { metrics.spoken.increment(by: Int64(outcome.spoken)) }
            if outcome.failedOverlay > 0 { metrics.failedOverlay.increment(by: Int64(outcome.failedOverlay)) }
            if outcome.failedTimeout > 0 { metrics.failedTimeout.increment(by: Int64(outcome.failedTimeout)) }
            if outcome.skipped > 0 { metrics.skipped.increment(by: Int64(outcome.skipped)) }
        }
        if outcome.changed || isClear(op) { publishQueue() }
        rearm()
        if from == engineID { replies.removeValue(forKey: sequence)?.fulfil(.success(outcome.result)) }
    }

    private func isClear(_ op: QueueOp) -> Bool {
        if case .clear = op { return true }
        return false
    }

    // MARK: internals: joining

    /// Asks the other engines for a replica; until one arrives (or the wait passes) operations wait.
    private func requestReplica() {
        guard !stopped else { return }
        if case .syncing(let sync) = phase, !sync.nonce.isEmpty { return }  // one already on its way
        let nonce = UUID().uuidString
        phase = .syncing(Sync(nonce: nonce))
        send(.syncRequest(nonce: nonce))
        let wait = syncWait
        Task { [weak self] in
            try? await Task.sleep(for: wait)
            await self?.syncTimedOut(nonce)
        }
    }

    private func syncTimedOut(_ nonce: String) {
        guard case .syncing(let sync) = phase, sync.nonce == nonce else { return }
        logger.info(
            state.count == 0 && lastSequence.isEmpty
                ? "no other engine holds the queue; starting with an empty one" : "no engine answered; keeping this engine's queue",
            ["wait_ms": String(syncWait.wholeMilliseconds)])
        abandonedNonces.append(nonce)
        if abandonedNonces.count > 16 { abandonedNonces.removeFirst() }
        // Our own request never came back: the store was unreachable, so "nobody answered" proves nothing.
        if !sync.seen { unverified = true }
        phase = .synced
        for item in sync.buffer where accept(item.sequence, from: item.from) { process(item.op, sequence: item.sequence, from: item.from) }
        wakeSyncWaiters()
        if !sync.seen {
            // The request itself was lost (its publish failed, e.g. in the store's fail-fast window just after an
            // outage): ask again until one does come back, then silence means alone. Waiting for another engine's
            // message to re-ask is not enough: it may be the last one for a long time (seen in CI).
            let wait = syncWait
            Task { [weak self] in
                try? await Task.sleep(for: wait)
                await self?.askAgainIfUnverified()
            }
        }
    }

    private func askAgainIfUnverified() {
        guard unverified, !stopped, case .synced = phase else { return }
        requestReplica()
    }

    /// Takes `replica` (the queue at our request), then applies what came after the request.
    private func adopt(_ replica: Replica, then buffer: [(sequence: Int64, op: QueueOp, from: String)], answer: (Int64, String)) {
        let before = state
        state = replica.state
        lastSequence = replica.lastSequence
        phase = .synced
        unverified = false
        for utterance in state.all { remember(utterance) }
        logger.info("joined the queue", ["utterances": String(state.count), "from": answer.1])
        // Overlays here may have missed some of it (a gap): pages drop ids they already have.
        let known = Set(before.all.map(\.id))
        for utterance in state.all where !known.contains(utterance.id) {
            if let frame = try? SocketMessage.make(type: "tts.speak", payload: utterance.speakEvent) { sockets.send(frame, to: .channel(.overlay)) }
        }
        if let old = before.current, !state.all.contains(where: { $0.id == old.id }) {
            if let frame = try? SocketMessage.make(type: "tts.skip", payload: SkipEvent(id: old.id)) { sockets.send(frame, to: .channel(.overlay)) }
        }
        publishQueue()
        rearm()
        for item in buffer where accept(item.sequence, from: item.from) { process(item.op, sequence: item.sequence, from: item.from) }
        _ = accept(answer.0, from: answer.1)
        wakeSyncWaiters()
    }

    /// Returns once this engine holds a replica (at most the sync wait after start).
    private func synced() async {
        if case .synced = phase { return }
        await withCheckedContinuation { syncWaiters.append($0) }
    }

    private func wakeSyncWaiters() {
        let waiters = syncWaiters
        syncWaiters.removeAll()
        for waiter in waiters { waiter.resume() }
    }

    // MARK: internals: sockets, timers

    private func frame() -> String {
        let snapshot = QueueSnapshot(current: state.current?.entry, queue: state.waiting.map(\.entry))
        return (try? SocketMessage.make(type: "tts.queue", payload: snapshot)) ?? "{\"type\":\"tts.queue\",\"current\":null,\"queue\":[]}"
    }

    private func publishQueue() {
        metrics.queueLength.set(Double(state.count))
        sockets.send(frame(), to: .channel(.moderator))
    }

    /// Keeps the render plan of audio another engine rendered (this engine's own files never need rendering again:
    /// a file it rendered is in its cache until it leaves the queue).
    private func remember(_ utterance: Utterance) {
        guard utterance.origin != engineID, let hash = utterance.audioHash, let plan = utterance.plan else { return }
        if plans.updateValue(plan, forKey: hash) == nil { planOrder.append(hash) }
        while planOrder.count > Self.rememberedPlans { plans[planOrder.removeFirst()] = nil }
    }

    /// Keeps the timer on the current utterance's arming: the accepting engine fires at its timeout, others later.
    private func rearm() {
        guard let now = state.current else { return disarm() }
        if let armed, armed.id == now.id, armed.arm == now.arm { return }
        timer?.cancel()
        armed = (now.id, now.arm)
        let delay = now.origin == engineID ? now.timeout : now.timeout + timing.grace
        let id = now.id
        let arm = now.arm
        timer = Task { [weak self] in
            do { try await Task.sleep(for: delay) } catch { return }
            await self?.expire(id, arm: arm)
        }
    }

    private func disarm() {
        timer?.cancel()
        timer = nil
        armed = nil
    }

    private func expire(_ id: String, arm: Int64) {
        guard let now = state.current, now.id == id, now.arm == arm, !stopped else { return }
        if now.origin != engineID {
            logger.info("the engine that queued an utterance did not time it out; doing it", ["id": id, "origin": now.origin])
        }
        send(.timeout(id: id, arm: arm))
    }

    // MARK: errors

    static func full(count: Int, limit: Int) -> PluginError {
        PluginError(
            status: 409, code: "queue_full", message: "\(count) utterances are queued (limit \(limit)); skip or clear first",
            details: ["limit": .number(Double(limit))])
    }

    static func unavailable(_ why: String) -> PluginError {
        PluginError(status: 503, code: "tts_queue_unavailable", message: "the TTS queue is unavailable: \(why)")
    }
}

/// A one-shot answer for a change this engine published: fulfilled when it is applied, it fails, or its time is up.
final class Reply: Sendable {
    private enum State {
        case waiting(CheckedContinuation<OpResult, any Error>?)
        case done(Result<OpResult, any Error>)
    }
    private let state = Mutex<State>(.waiting(nil))

    /// Sets the answer (the first one counts).
    func fulfil(_ result: Result<OpResult, any Error>) {
        let waiter: CheckedContinuation<OpResult, any Error>?? = state.withLock { state in
            guard case .waiting(let waiter) = state else { return nil }
            state = .done(result)
            return .some(waiter)
        }
        if case .some(.some(let waiter)) = waiter { waiter.resume(with: result) }
    }

    /// Waits for the answer.
    func value() async throws -> OpResult {
        try await withCheckedThrowingContinuation { continuation in
            let ready: Result<OpResult, any Error>? = state.withLock { state in
                switch state {
                case .done(let result): return result
                case .waiting:
                    state = .waiting(continuation)
                    return nil
                }
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}

/// The voice languages each overlay connection reported in `tts.capabilities`; an entry goes when its
/// connection closes (`registrar.onDisconnect`).
final class OverlayVoices: Sendable {
    private let entries = Mutex<[String: Set<String>]>([:])
    /// Most entries kept at all (a bound even if a disconnect were ever missed).
    static let maxEntries = 256

    /// Replaces what `connection` reported.
    func report(_ languages: Set<String>, from connection: String) {
        entries.withLock { all in
            if all[connection] == nil && all.count >= Self.maxEntries, let victim = all.keys.min() { all.removeValue(forKey: victim) }
            all[connection] = languages
        }
    }

    /// Forgets a connection that closed.
    func remove(_ connection: String) {
        _ = entries.withLock { $0.removeValue(forKey: connection) }
    }

    /// True when a connected overlay reported a voice for `lang` (same primary language: `en-GB` counts for `en-US`).
    func hasVoice(for lang: String) -> Bool {
        let primary = LanguageTag.primary(lang)
        return entries.withLock { all in all.values.contains { $0.contains { LanguageTag.primary($0) == primary } } }
    }

    /// Every connected overlay's report, for `GET /api/tts/voices`.
    func live() -> [(connection: String, voices: [String])] {
        entries.withLock { all in all.sorted(by: { $0.key < $1.key }).map { ($0.key, $0.value.sorted()) } }
    }
}
