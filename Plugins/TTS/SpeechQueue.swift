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
    /// Connections that reported it started and have not failed it.
    var startedBy: Set<String> = []

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
        queueLength = metrics.gauge("tts_queue_length", labels: [])
        cacheBytes = metrics.gauge("tts_cache_bytes", labels: [])
    }
}

/// The queue: one current utterance and the ones waiting behind it, in the order overlays received them.
///
/// Every change is broadcast to moderators as `tts.queue`. The current utterance leaves on `tts.finished`,
/// on `tts.failed` (once no other overlay is still saying it), on skip or clear, or when its timeout passes
/// (overlays then get `tts.skip` with `reason: "timeout"`). Broadcasts happen inside the actor, so their
/// order is the order of the changes.
actor SpeechQueue {
    private var current: Utterance?
    private var waiting: [Utterance] = []
    private var timer: Task<Void, Never>?
    private var timerToken = 0
    private let sockets: any SocketHub
    private let logger: any PluginLogger
    private let metrics: TTSMetrics
    private let maxLength: Int

    /// Creates an empty queue.
    init(sockets: any SocketHub, logger: any PluginLogger, metrics: TTSMetrics, maxLength: Int) {
        self.sockets = sockets
        self.logger = logger
        self.metrics = metrics
        self.maxLength = maxLength
    }

    /// Utterances current or waiting.
    var count: Int { (current == nil ? 0 : 1) + waiting.count }

    /// Throws 409 `queue_full` when no utterance can be added.
    func checkRoom() throws {
        guard count < maxLength else {
            throw PluginError(
                status: 409, code: "queue_full", message: "\(count) utterances are queued (limit \(maxLength)); skip or clear first",
                details: ["limit": .number(Double(maxLength))])
        }
    }

    /// Adds an utterance, sends `tts.speak` to the overlays and the new queue to the moderators.
    /// - Returns: How many utterances are ahead of it (0: it is said now).
    func enqueue(_ utterance: Utterance) throws -> Int {
        try checkRoom()
        let position: Int
        if current == nil {
            current = utterance
            position = 0
            arm(utterance)
        } else {
            position = 1 + waiting.count
            waiting.append(utterance)
        }
        metrics.queued.increment()
        if let frame = try? SocketMessage.make(type: "tts.speak", payload: utterance.speakEvent) {
            sockets.send(frame, to: .channel(.overlay))
        }
        publish()
        return position
    }

    /// `tts.started` from an overlay.
    func started(_ id: String, by connection: String) {
        if var now = current, now.id == id {
            now.startedBy.insert(connection)
            let first = now.state == .pending
            if first {
                now.state = .speaking
                now.startedAt = Date()
            }
            current = now
            if first {
                arm(now)  // the timeout counts from the start of speech
                publish()
            }
            return
        }
        // An overlay started one further down: it is done with those ahead (it speaks in order).
        guard let index = waiting.firstIndex(where: { $0.id == id }) else { return }
        logger.info("overlay skipped ahead in the queue", ["id": id, "dropped": String(index + 1)])
        var next = waiting[index]
        waiting.removeFirst(index + 1)
        next.state = .speaking
        next.startedAt = Date()
        next.startedBy = [connection]
        current = next
        arm(next)
        publish()
    }

    /// `tts.finished` from an overlay.
    func finished(_ id: String) {
        if current?.id == id {
            metrics.spoken.increment()
            advance()
            publish()
        } else if let index = waiting.firstIndex(where: { $0.id == id }) {
            waiting.remove(at: index)
            metrics.spoken.increment()
            publish()
        }
    }

    /// `tts.failed` from an overlay.
    func failed(_ id: String, reason: String?, by connection: String) {
        if var now = current, now.id == id {
            now.startedBy.remove(connection)
            if now.startedBy.isEmpty {
                logger.info("an overlay could not speak an utterance", ["id": id, "reason": reason ?? "-"])
                metrics.failedOverlay.increment()
                advance()
                publish()
            } else {
                current = now  // another overlay is still saying it
            }
        } else if let index = waiting.firstIndex(where: { $0.id == id }) {
            waiting.remove(at: index)
            metrics.failedOverlay.increment()
            publish()
        }
    }

    /// Drops the utterance `id` (or the current one) and tells the overlays with `tts.skip`.
    /// - Returns: The id skipped.
    /// - Throws: 404 when there is nothing to skip.
    func skip(_ id: String?) throws -> String {
        let target: String
        if let id {
            if current?.id == id {
                advance()
            } else if let index = waiting.firstIndex(where: { $0.id == id }) {
                waiting.remove(at: index)
            } else {
                throw PluginError.notFound("no queued utterance with id '\(id)'")
            }
            target = id
        } else {
            guard let now = current else { throw PluginError.notFound("nothing is being spoken") }
            target = now.id
            advance()
        }
        metrics.skipped.increment()
        /// `tts.skip` payload.
        struct Skip: Encodable { let id: String }
        if let frame = try? SocketMessage.make(type: "tts.skip", payload: Skip(id: target)) {
            sockets.send(frame, to: .channel(.overlay))
        }
        publish()
        return target
    }

    /// Drops everything and tells the overlays with `tts.clear`.
    /// - Returns: How many utterances were dropped.
    func clear() -> Int {
        let dropped = count
        current = nil
        waiting.removeAll()
        disarm()
        metrics.skipped.increment(by: Int64(dropped))
        sockets.send(SocketMessage.make(type: "tts.clear"), to: .channel(.overlay))
        publish()
        return dropped
    }

    /// The `tts.queue` frame of the current state.
    func snapshotFrame() -> String {
        let snapshot = QueueSnapshot(current: current?.entry, queue: waiting.map(\.entry))
        return (try? SocketMessage.make(type: "tts.queue", payload: snapshot)) ?? "{\"type\":\"tts.queue\",\"current\":null,\"queue\":[]}"
    }

    /// `tts.speak` frames of everything queued, in order: what an overlay that just connected (or reloaded) should say.
    func replayFrames() -> [String] {
        ([current].compactMap { $0 } + waiting).compactMap { try? SocketMessage.make(type: "tts.speak", payload: $0.speakEvent) }
    }

    /// Cache names of the audio still queued (never evicted).
    func referencedHashes() -> Set<String> {
        Set(([current].compactMap { $0 } + waiting).compactMap(\.audioHash))
    }

    /// Stops the timer (engine shutdown).
    func shutdown() { disarm() }

    // MARK: internals

    private func advance() {
        if waiting.isEmpty {
            current = nil
            disarm()
        } else {
            let next = waiting.removeFirst()
            current = next
            arm(next)
        }
    }

    private func arm(_ utterance: Utterance) {
        timer?.cancel()
        timerToken += 1
        let token = timerToken
        let id = utterance.id
        let timeout = utterance.timeout
        timer = Task { [weak self] in
            do { try await Task.sleep(for: timeout) } catch { return }
            await self?.expire(id, token: token)
        }
    }

    private func disarm() {
        timer?.cancel()
        timer = nil
        timerToken += 1
    }

    private func expire(_ id: String, token: Int) {
        guard token == timerToken, let now = current, now.id == id else { return }
        logger.warning("utterance timed out", ["id": id, "timeout_s": String(now.timeout.components.seconds)])
        metrics.failedTimeout.increment()
        /// `tts.skip` payload with the reason.
        struct Skip: Encodable {
            let id: String
            let reason: String
        }
        if let frame = try? SocketMessage.make(type: "tts.skip", payload: Skip(id: id, reason: "timeout")) {
            sockets.send(frame, to: .channel(.overlay))
        }
        advance()
        publish()
    }

    private func publish() {
        metrics.queueLength.set(Double(count))
        sockets.send(snapshotFrame(), to: .channel(.moderator))
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
