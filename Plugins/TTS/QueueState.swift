// TTS: the queue as a state machine. Every engine holds a copy and applies the same operations in the same order
// (the bus's), so every copy is the same; nothing here reads a clock, a random number or the engine's identity.

import Foundation
import PluginAPI

/// What an operation answers the engine that sent it.
enum OpResult: Sendable, Equatable {
    /// Applied (or ignored: an unknown id).
    case done
    /// Queued with this many utterances ahead (0: said now).
    case position(Int)
    /// Refused: `count` utterances queued, the limit is `limit`.
    case full(count: Int, limit: Int)
    /// The utterance skipped.
    case skipped(String)
    /// Nothing to skip: no utterance with that id (nil: nothing is being said).
    case nothingToSkip(String?)
    /// How many utterances a clear dropped.
    case cleared(Int)
}

/// One current utterance and the ones waiting behind it, in the order overlays received them.
struct QueueState: Sendable {
    var current: Utterance?
    var waiting: [Utterance] = []
    /// How many times a timeout was armed (an utterance became current, or started): names each arming, so a
    /// timeout published for an earlier arming changes nothing.
    var armSequence: Int64 = 0

    /// Utterances current or waiting.
    var count: Int { (current == nil ? 0 : 1) + waiting.count }

    /// Every utterance, current first.
    var all: [Utterance] { [current].compactMap { $0 } + waiting }

    /// What applying an operation did, for the engine to tell its own sockets, metrics and log.
    struct Outcome: Sendable {
        var result: OpResult = .done
        /// Frames for the overlay channel, in order.
        var overlayFrames: [String] = []
        /// Whether moderators need a new `tts.queue`.
        var changed = false
        var queued = 0
        var spoken = 0
        var failedOverlay = 0
        var failedTimeout = 0
        var skipped = 0
        /// Lines for the log: level, message, metadata.
        var logs: [(LogLevel, String, [String: String])] = []
    }

    /// Applies `op`. `syncRequest`/`syncState` are the engine's business and change nothing here.
    mutating func apply(_ op: QueueOp) -> Outcome {
        var outcome = Outcome()
        switch op {
        case .enqueue(let utterance, let limit):
            enqueue(utterance, limit: limit, &outcome)
        case .started(let id, let connection, let at):
            started(id, by: connection, at: at, &outcome)
        case .finished(let id):
            if current?.id == id {
                advance()
                outcome.spoken = 1
                outcome.changed = true
            } else if let index = waiting.firstIndex(where: { $0.id == id }) {
                waiting.remove(at: index)
                outcome.spoken = 1
                outcome.changed = true
            }
        case .failed(let id, let connection, let reason):
            failed(id, by: connection, reason: reason, &outcome)
        case .skip(let id):
            skip(id, &outcome)
        case .clear:
            let dropped = count
            current = nil
            waiting.removeAll()
            outcome.skipped = dropped
            outcome.overlayFrames.append(SocketMessage.make(type: "tts.clear"))
            outcome.changed = true
            outcome.result = .cleared(dropped)
        case .timeout(let id, let arm):
            guard let now = current, now.id == id, now.arm == arm else { break }
            outcome.logs.append((.warning, "utterance timed out", ["id": id, "timeout_s": String(now.timeout.components.seconds)]))
            outcome.failedTimeout = 1
            if let frame = try? SocketMessage.make(type: "tts.skip", payload: SkipEvent(id: id, reason: "timeout")) {
                outcome.overlayFrames.append(frame)
            }
            advance()
            outcome.changed = true
        case .syncRequest, .syncState:
            break
        }
        return outcome
    }

    private mutating func enqueue(_ given: Utterance, limit: Int, _ outcome: inout Outcome) {
        guard !all.contains(where: { $0.id == given.id }) else { return }  // sent twice: the first one counts
        guard count < limit else {
            outcome.result = .full(count: count, limit: limit)
            return
        }
        var utterance = given
        utterance.state = .pending
        utterance.startedAt = nil
        utterance.startedBy = []
        if current == nil {
            arm(&utterance)
            current = utterance
            outcome.result = .position(0)
        } else {
            waiting.append(utterance)
            outcome.result = .position(waiting.count)
        }
        outcome.queued = 1
        if let frame = try? SocketMessage.make(type: "tts.speak", payload: utterance.speakEvent) { outcome.overlayFrames.append(frame) }
        outcome.changed = true
    }

    private mutating func started(_ id: String, by connection: String, at: Date, _ outcome: inout Outcome) {
        if var now = current, now.id == id {
            now.startedBy.insert(connection)
            if now.state == .pending {
                now.state = .speaking
                now.startedAt = at
                arm(&now)  // the timeout counts from the start of speech
                outcome.changed = true
            }
            current = now
            return
        }
        // An overlay started one further down: it is done with those ahead (it speaks in order).
        guard let index = waiting.firstIndex(where: { $0.id == id }) else { return }
        outcome.logs.append((.info, "overlay skipped ahead in the queue", ["id": id, "dropped": String(index + 1)]))
        var next = waiting[index]
        waiting.removeFirst(index + 1)
        next.state = .speaking
        next.startedAt = at
        next.startedBy = [connection]
        arm(&next)
        current = next
        outcome.changed = true
    }

    private mutating func failed(_ id: String, by connection: String, reason: String?, _ outcome: inout Outcome) {
        if var now = current, now.id == id {
            now.startedBy.remove(connection)
            if now.startedBy.isEmpty {
                outcome.logs.append((.info, "an overlay could not speak an utterance", ["id": id, "reason": reason ?? "-"]))
                outcome.failedOverlay = 1
                advance()
                outcome.changed = true
            } else {
                current = now  // another overlay is still saying it
            }
        } else if let index = waiting.firstIndex(where: { $0.id == id }) {
            waiting.remove(at: index)
            outcome.failedOverlay = 1
            outcome.changed = true
        }
    }

    private mutating func skip(_ id: String?, _ outcome: inout Outcome) {
        let target: String
        if let id {
            if current?.id == id {
                advance()
            } else if let index = waiting.firstIndex(where: { $0.id == id }) {
                waiting.remove(at: index)
            } else {
                outcome.result = .nothingToSkip(id)
                return
            }
            target = id
        } else {
            guard let now = current else {
                outcome.result = .nothingToSkip(nil)
                return
            }
            target = now.id
            advance()
        }
        outcome.skipped = 1
        if let frame = try? SocketMessage.make(type: "tts.skip", payload: SkipEvent(id: target)) { outcome.overlayFrames.append(frame) }
        outcome.changed = true
        outcome.result = .skipped(target)
    }

    private mutating func advance() {
        if waiting.isEmpty {
            current = nil
        } else {
            var next = waiting.removeFirst()
            arm(&next)
            current = next
        }
    }

    private mutating func arm(_ utterance: inout Utterance) {
        armSequence += 1
        utterance.arm = armSequence
    }
}

/// The `tts.skip` payload: the id, and `reason: "timeout"` when the timeout dropped it.
struct SkipEvent: Encodable, Sendable {
    let id: String
    var reason: String?
}
