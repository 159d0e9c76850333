// TTS: what the engines say to each other about the one queue (the bus topic `queue`): every operation, in the
// order the bus delivers it, and whole replicas for an engine that has none. Messages are external data: decoded
// strictly, with every bound checked, and a message that fails is logged and ignored.

import Foundation
import PluginAPI

/// One operation on the replicated queue, as every engine applies it.
enum QueueOp: Sendable {
    /// A new utterance; refused (on every engine alike) when `limit` utterances are already queued.
    case enqueue(Utterance, limit: Int)
    /// An overlay reported `tts.started`; `connection` is `<engine id>/<connection id>`.
    case started(id: String, connection: String, at: Date)
    /// An overlay reported `tts.finished`.
    case finished(id: String)
    /// An overlay reported `tts.failed`.
    case failed(id: String, connection: String, reason: String?)
    /// A moderator skipped the current utterance (nil) or one by id.
    case skip(id: String?)
    /// A moderator cleared the queue.
    case clear
    /// The timeout of the current utterance passed; `arm` names which arming of its timer (a start re-arms it).
    case timeout(id: String, arm: Int64)
    /// An engine without a replica asks for one.
    case syncRequest(nonce: String)
    /// A replica, answering `syncRequest(nonce)`.
    case syncState(nonce: String, replica: Replica)
}

/// What an engine needs to join: the queue and the last sequence number it saw from each engine.
struct Replica: Sendable {
    var state: QueueState
    var lastSequence: [String: Int64]
}

/// Bounds on what a message may carry (generous: they only keep a broken or hostile message from costing much).
enum WireLimits {
    static let idLength = 64
    static let textLength = 5000
    static let voiceLength = 500
    static let engineLength = 128
    static let connectionLength = 300
    static let reasonLength = 200
    static let nonceLength = 128
    static let startedBy = 1024
    static let utterances = 10_000
    static let engines = 256
    static let timeoutMilliseconds: Int64 = 86_400_000
}

/// The JSON of one message: `{"v":1,"n":<sequence>,"op":"enqueue",...}`.
struct QueueMessage: Codable, Sendable {
    static let version = 1

    var v: Int
    /// The sender's sequence number (1, 2, ... per engine run), to notice a lost message.
    var n: Int64
    var op: Kind
    var id: String?
    var connection: String?
    var at: Int64?
    var reason: String?
    var arm: Int64?
    var limit: Int?
    var nonce: String?
    var utterance: UtteranceWire?
    var replica: ReplicaWire?

    enum Kind: String, Codable, Sendable {
        case enqueue, started, finished, failed, skip, clear, timeout
        case syncRequest = "sync.request"
        case syncState = "sync.state"
    }

    init(sequence: Int64, op: QueueOp) {
        v = Self.version
        n = sequence
        switch op {
        case .enqueue(let utterance, let limit):
            self.op = .enqueue
            self.utterance = UtteranceWire(utterance)
            self.limit = limit
        case .started(let id, let connection, let at):
            self.op = .started
            self.id = id
            self.connection = connection
            self.at = at.millisecondsSince1970
        case .finished(let id):
            self.op = .finished
            self.id = id
        case .failed(let id, let connection, let reason):
            self.op = .failed
            self.id = id
            self.connection = connection
            self.reason = reason
        case .skip(let id):
            self.op = .skip
            self.id = id
        case .clear:
            self.op = .clear
        case .timeout(let id, let arm):
            self.op = .timeout
            self.id = id
            self.arm = arm
        case .syncRequest(let nonce):
            self.op = .syncRequest
            self.nonce = nonce
        case .syncState(let nonce, let replica):
            self.op = .syncState
            self.nonce = nonce
            self.replica = ReplicaWire(replica)
        }
    }

    /// The bytes on the bus.
    func encoded() throws -> [UInt8] { try JSON.encode(self) }

    /// Decodes and checks a message from the bus.
    /// - Throws: ``WireError`` (or a decoding error) naming what is wrong.
    static func decode(_ bytes: [UInt8]) throws -> (sequence: Int64, op: QueueOp) {
        let message = try JSON.decode(QueueMessage.self, from: bytes)
        guard message.v == version else { throw WireError("version \(message.v) (this engine speaks \(version))") }
        guard message.n > 0 else { throw WireError("sequence number \(message.n)") }
        return (message.n, try message.operation())
    }

    private func operation() throws -> QueueOp {
        switch op {
        case .enqueue:
            guard let utterance, let limit, (1...WireLimits.utterances).contains(limit) else { throw WireError("enqueue without utterance or limit") }
            return .enqueue(try Utterance(wire: utterance), limit: limit)
        case .started:
            guard let at else { throw WireError("started without time") }
            return .started(id: try Self.id(id), connection: try Self.connection(connection), at: Date(millisecondsSince1970: at))
        case .finished:
            return .finished(id: try Self.id(id))
        case .failed:
            if let reason, reason.count > WireLimits.reasonLength { throw WireError("reason too long") }
            return .failed(id: try Self.id(id), connection: try Self.connection(connection), reason: reason)
        case .skip:
            return .skip(id: try id.map { try Self.id($0) })
        case .clear:
            return .clear
        case .timeout:
            guard let arm else { throw WireError("timeout without arm") }
            return .timeout(id: try Self.id(id), arm: arm)
        case .syncRequest:
            return .syncRequest(nonce: try Self.nonce(nonce))
        case .syncState:
            guard let replica else { throw WireError("sync.state without replica") }
            return .syncState(nonce: try Self.nonce(nonce), replica: try replica.replica())
        }
    }

    static func id(_ value: String?) throws -> String {
        guard let value, isPrintableASCII(value, max: WireLimits.idLength) else { throw WireError("bad id") }
        return value
    }

    static func connection(_ value: String?) throws -> String {
        guard let value, isPrintableASCII(value, max: WireLimits.connectionLength) else { throw WireError("bad connection") }
        return value
    }

    static func nonce(_ value: String?) throws -> String {
        guard let value, isPrintableASCII(value, max: WireLimits.nonceLength) else { throw WireError("bad nonce") }
        return value
    }

    static func isPrintableASCII(_ text: String, max: Int) -> Bool {
        (1...max).contains(text.utf8.count) && text.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f }
    }
}

/// Why a bus message was refused.
struct WireError: Error, Sendable, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// An utterance on the bus: everything every engine needs to say it, show it and render its audio.
struct UtteranceWire: Codable, Sendable {
    var id: String
    var text: String
    var lang: String
    var rate: Double
    var pitch: Double
    var volume: Double
    var voice: String?
    var mode: String
    var audioHash: String?
    var durationMs: Int64?
    var requestedBy: String
    var queuedAt: Int64
    var timeoutMs: Int64
    var origin: String
    var plan: PlanWire?
    var state: String
    var startedAt: Int64?
    var startedBy: [String]
    var arm: Int64

    enum CodingKeys: String, CodingKey {
        case id, text, lang, rate, pitch, volume, voice, mode, plan, state, origin, arm
        case audioHash = "audio_hash"
        case durationMs = "duration_ms"
        case requestedBy = "requested_by"
        case queuedAt = "queued_at"
        case timeoutMs = "timeout_ms"
        case startedAt = "started_at"
        case startedBy = "started_by"
    }

    init(_ utterance: Utterance) {
        id = utterance.id
        text = utterance.request.text
        lang = utterance.request.lang
        rate = utterance.request.rate
        pitch = utterance.request.pitch
        volume = utterance.request.volume
        voice = utterance.request.voice
        mode = utterance.mode.rawValue
        audioHash = utterance.audioHash
        durationMs = utterance.audioDuration?.wholeMilliseconds
        requestedBy = utterance.requestedBy
        queuedAt = utterance.queuedAt.millisecondsSince1970
        timeoutMs = utterance.timeout.wholeMilliseconds
        origin = utterance.origin
        plan = utterance.plan.map(PlanWire.init)
        state = utterance.state.rawValue
        startedAt = utterance.startedAt?.millisecondsSince1970
        startedBy = utterance.startedBy.sorted()
        arm = utterance.arm
    }
}

/// espeak-ng's inputs for an utterance's audio (the text is the utterance's).
struct PlanWire: Codable, Sendable {
    var voice: String
    var speed: Int
    var pitch: Int
    var amplitude: Int

    init(_ plan: RenderPlan) {
        voice = plan.voice
        speed = plan.speed
        pitch = plan.pitch
        amplitude = plan.amplitude
    }
}

/// A whole replica on the bus.
struct ReplicaWire: Codable, Sendable {
    var current: UtteranceWire?
    var waiting: [UtteranceWire]
    var armSequence: Int64
    var lastSequence: [String: Int64]

    enum CodingKeys: String, CodingKey {
        case current, waiting
        case armSequence = "arm_sequence"
        case lastSequence = "last_sequence"
    }

    init(_ replica: Replica) {
        current = replica.state.current.map(UtteranceWire.init)
        waiting = replica.state.waiting.map(UtteranceWire.init)
        armSequence = replica.state.armSequence
        lastSequence = replica.lastSequence
    }

    func replica() throws -> Replica {
        guard waiting.count < WireLimits.utterances, lastSequence.count <= WireLimits.engines else { throw WireError("replica too large") }
        for (engine, sequence) in lastSequence {
            guard QueueMessage.isPrintableASCII(engine, max: WireLimits.engineLength), sequence >= 0 else { throw WireError("bad sequence table") }
        }
        var state = QueueState()
        state.current = try current.map { try Utterance(wire: $0) }
        state.waiting = try waiting.map { try Utterance(wire: $0) }
        state.armSequence = armSequence
        return Replica(state: state, lastSequence: lastSequence)
    }
}

extension Utterance {
    /// The utterance a bus message carries, every field checked.
    init(wire: UtteranceWire) throws {
        func check(_ condition: Bool, _ what: String) throws { if !condition { throw WireError("utterance: bad \(what)") } }
        try check(QueueMessage.isPrintableASCII(wire.id, max: WireLimits.idLength), "id")
        try check(!wire.text.isEmpty && wire.text.count <= WireLimits.textLength, "text")
        try check(!wire.text.unicodeScalars.contains { $0.properties.generalCategory == .control }, "text")
        try check(LanguageTag.canonical(wire.lang) == wire.lang, "lang")
        for value in [wire.rate, wire.pitch, wire.volume] { try check(value.isFinite && value >= 0 && value <= 10, "number") }
        if let voice = wire.voice {
            try check(!voice.isEmpty && voice.count <= WireLimits.voiceLength, "voice")
            try check(!voice.unicodeScalars.contains { $0.properties.generalCategory == .control }, "voice")
        }
        guard let mode = SpeechMode(rawValue: wire.mode), mode != .auto else { throw WireError("utterance: bad mode") }
        if let hash = wire.audioHash { try check(AudioCache.isHash(hash), "audio_hash") }
        try check((wire.durationMs ?? 0) >= 0, "duration_ms")
        try check(QueueMessage.isPrintableASCII(wire.requestedBy, max: 32), "requested_by")
        try check((1...WireLimits.timeoutMilliseconds).contains(wire.timeoutMs), "timeout_ms")
        try check(QueueMessage.isPrintableASCII(wire.origin, max: WireLimits.engineLength), "origin")
        guard let state = Utterance.State(rawValue: wire.state) else { throw WireError("utterance: bad state") }
        try check(wire.startedBy.count <= WireLimits.startedBy, "started_by")
        for connection in wire.startedBy { try check(QueueMessage.isPrintableASCII(connection, max: WireLimits.connectionLength), "started_by") }
        let request = SpeakRequest(text: wire.text, lang: wire.lang, rate: wire.rate, pitch: wire.pitch, volume: wire.volume, voice: wire.voice)
        var plan: RenderPlan?
        if let given = wire.plan {
            try check(wire.audioHash != nil && EspeakVoices.isSafeName(given.voice), "plan")
            try check((80...450).contains(given.speed) && (0...99).contains(given.pitch) && (0...200).contains(given.amplitude), "plan")
            plan = RenderPlan(voice: given.voice, speed: given.speed, pitch: given.pitch, amplitude: given.amplitude, text: wire.text)
        }
        self.init(
            id: wire.id, request: request, mode: mode, audioHash: wire.audioHash, audioDuration: wire.durationMs.map { .milliseconds($0) },
            requestedBy: wire.requestedBy, queuedAt: Date(millisecondsSince1970: wire.queuedAt), timeout: .milliseconds(wire.timeoutMs),
            origin: wire.origin, plan: plan)
        self.state = state
        self.startedAt = wire.startedAt.map { Date(millisecondsSince1970: $0) }
        self.startedBy = Set(wire.startedBy)
        self.arm = wire.arm
    }
}

extension Date {
    /// Whole milliseconds since 1970 (what the wire carries).
    var millisecondsSince1970: Int64 { Int64((timeIntervalSince1970 * 1000).rounded()) }

    /// The date `milliseconds` after 1970.
    init(millisecondsSince1970 milliseconds: Int64) { self.init(timeIntervalSince1970: Double(milliseconds) / 1000) }
}
