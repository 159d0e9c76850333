// Metrics: what overlays have applied, send-to-ack latency over a recent window (live broadcasts and
// late joins apart), save rates.

import CoreMetrics
import Foundation
import Synchronization

/// Tracks broadcasts of scene versions and the acknowledgements overlays send back.
///
/// Each acknowledgement is timed from when that version was sent *to that overlay*: a live change
/// from its broadcast; the scene an overlay receives when it connects (a late join) from that moment,
/// counted apart. An overlay acknowledging a version broadcast before it connected, for which no frame
/// was timed, gives no sample at all.
public final class OverlayAcks: Sendable {
    struct Overlay {
        var applied: Int64
        var appliedAt: Date
        var latencyMS: Double?
        /// Whether the last timed acknowledgement was of the scene sent on connect.
        var lateJoin: Bool
    }

    /// The scene sent to an overlay when it connected, and when.
    struct Join {
        var version: Int64
        var at: ContinuousClock.Instant
    }

    struct State {
        var broadcastAt: [Int64: ContinuousClock.Instant] = [:]
        var broadcastOrder: [Int64] = []
        var latest: Int64 = 0
        var overlays: [String: Overlay] = [:]
        var samples: [(at: ContinuousClock.Instant, ms: Double)] = []
        var joins: [String: Join] = [:]
        var lateSamples: [(at: ContinuousClock.Instant, ms: Double)] = []
        var lateJoins = 0
        var saves: [ContinuousClock.Instant] = []
        var savesTotal = 0
    }

    let state = Mutex(State())
    let clock = ContinuousClock()
    let window: Duration = .seconds(300)
    let latencyTimer: CoreMetrics.Timer
    let appliedGauge: @Sendable (String) -> CoreMetrics.Gauge
    let lagGauge: @Sendable (String) -> CoreMetrics.Gauge
    let isConnected: @Sendable (String) -> Bool

    /// - Parameter isConnected: Whether an overlay id has a live socket. Per-overlay series are only
    ///   made for those, so anyone POSTing made-up ids cannot grow `/metrics` without bound.
    init(metrics: EngineMetrics, isConnected: @escaping @Sendable (String) -> Bool) {
        self.latencyTimer = metrics.timer("onionrp_overlay_ack_latency_seconds")
        self.appliedGauge = { metrics.gauge("onionrp_overlay_applied_version", [("overlay", $0)]) }
        self.lagGauge = { metrics.gauge("onionrp_overlay_lag_versions", [("overlay", $0)]) }
        self.isConnected = isConnected
    }

    /// A version was sent to overlays.
    func broadcasted(_ version: Int64) {
        let now = clock.now
        state.withLock { state in
            state.broadcastAt[version] = now
            state.broadcastOrder.append(version)
            state.latest = max(state.latest, version)
            if state.broadcastOrder.count > 1024 {
                let old = state.broadcastOrder.removeFirst()
                state.broadcastAt[old] = nil
            }
        }
    }

    /// The active scene at `version` was sent to overlay `id` as it connected (a late join).
    func sentOnConnect(overlay id: String, version: Int64) {
        let now = clock.now
        state.withLock { state in
            state.joins[id] = Join(version: version, at: now)
            if state.joins.count > 1000, let oldest = state.joins.min(by: { $0.value.at < $1.value.at })?.key {
                state.joins[oldest] = nil
            }
        }
    }

    static func milliseconds(_ elapsed: Duration) -> Double {
        Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
    }

    /// A save was accepted.
    func saved() {
        let now = clock.now
        state.withLock { state in
            state.savesTotal += 1
            state.saves.append(now)
            state.saves.removeAll { now - $0 > .seconds(60) }
        }
    }

    /// An overlay applied `version`. Returns the send-to-ack latency when the engine timed that frame to it.
    @discardableResult
    func applied(overlay id: String, version: Int64) -> Double? {
        let now = clock.now
        let latency: Double? = state.withLock { state in
            var ms: Double?
            var late = false
            let join = state.joins[id]
            if let join, join.version == version {
                // The scene sent on connect: timed from then, reported apart from live changes.
                ms = Self.milliseconds(now - join.at)
                late = true
                state.joins[id] = nil
                state.lateJoins += 1
                if let ms { state.lateSamples.append((now, ms)) }
                state.lateSamples.removeAll { now - $0.at > window }
                if state.lateSamples.count > 10_000 { state.lateSamples.removeFirst(state.lateSamples.count - 10_000) }
            } else if let sent = state.broadcastAt[version], join.map({ sent >= $0.at }) ?? true {
                ms = Self.milliseconds(now - sent)
                if let ms { state.samples.append((now, ms)) }
                state.samples.removeAll { now - $0.at > window }
                if state.samples.count > 10_000 { state.samples.removeFirst(state.samples.count - 10_000) }
            }
            if let join, version > join.version { state.joins[id] = nil }
            let previous = state.overlays[id]
            if previous == nil || version >= previous?.applied ?? 0 {
                state.overlays[id] = Overlay(
                    applied: version, appliedAt: Date(), latencyMS: ms ?? (version == previous?.applied ? previous?.latencyMS : nil),
                    lateJoin: ms == nil ? (previous?.lateJoin ?? false) : late)
            }
            if state.overlays.count > 500, let oldest = state.overlays.min(by: { $0.value.appliedAt < $1.value.appliedAt })?.key {
                state.overlays[oldest] = nil
            }
            return ms
        }
        if let latency { latencyTimer.recordNanoseconds(Int64(latency * 1e6)) }
        if isConnected(id) {
            appliedGauge(id).record(Double(version))
            lagGauge(id).record(Double(max(0, latestBroadcast - version)))
        }
        return latency
    }

    /// Percentiles of the recent latencies.
    struct Percentiles: Encodable {
        let p50: Double?
        let p95: Double?
        let p99: Double?
        let samples: Int
        let window_seconds: Int
    }

    /// Percentiles of live changes (broadcast to acknowledgement); `lateJoins` for the scene sent on connect.
    func percentiles(lateJoins: Bool = false) -> Percentiles {
        let now = clock.now
        let values = state.withLock { state in
            (lateJoins ? state.lateSamples : state.samples).filter { now - $0.at <= window }.map(\.ms)
        }.sorted()
        func pick(_ q: Double) -> Double? {
            guard !values.isEmpty else { return nil }
            let index = min(values.count - 1, Int((q * Double(values.count)).rounded(.up)) - 1)
            return (values[max(0, index)] * 100).rounded() / 100
        }
        return Percentiles(p50: pick(0.5), p95: pick(0.95), p99: pick(0.99), samples: values.count, window_seconds: Int(window.components.seconds))
    }

    /// Applied version and time per overlay id, with the last latency and whether it was a late join.
    func overlays() -> [String: (applied: Int64, at: Date, latencyMS: Double?, lateJoin: Bool)] {
        state.withLock { $0.overlays.mapValues { ($0.applied, $0.appliedAt, $0.latencyMS, $0.lateJoin) } }
    }

    /// Late joins acknowledged since start.
    var lateJoinCount: Int { state.withLock { $0.lateJoins } }

    /// The newest version sent to overlays.
    var latestBroadcast: Int64 { state.withLock { $0.latest } }

    /// Saves in the last minute and in total.
    func saveRates() -> (lastMinute: Int, total: Int) {
        let now = clock.now
        return state.withLock { state in (state.saves.filter { now - $0 <= .seconds(60) }.count, state.savesTotal) }
    }
}
