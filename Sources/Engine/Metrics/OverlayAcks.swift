// Metrics: what overlays have applied, broadcast-to-ack latency over a recent window, save rates.

import CoreMetrics
import Foundation
import Synchronization

/// Tracks broadcasts of scene versions and the acknowledgements overlays send back.
public final class OverlayAcks: Sendable {
    struct Overlay {
        var applied: Int64
        var appliedAt: Date
        var latencyMS: Double?
    }

    struct State {
        var broadcastAt: [Int64: ContinuousClock.Instant] = [:]
        var broadcastOrder: [Int64] = []
        var latest: Int64 = 0
        var overlays: [String: Overlay] = [:]
        var samples: [(at: ContinuousClock.Instant, ms: Double)] = []
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

    /// A save was accepted.
    func saved() {
        let now = clock.now
        state.withLock { state in
            state.savesTotal += 1
            state.saves.append(now)
            state.saves.removeAll { now - $0 > .seconds(60) }
        }
    }

    /// An overlay applied `version`. Returns the broadcast-to-ack latency when the broadcast is known.
    @discardableResult
    func applied(overlay id: String, version: Int64) -> Double? {
        let now = clock.now
        let latency: Double? = state.withLock { state in
            var ms: Double?
            if let sent = state.broadcastAt[version] {
                let elapsed = now - sent
                ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
                if let ms { state.samples.append((now, ms)) }
                state.samples.removeAll { now - $0.at > window }
                if state.samples.count > 10_000 { state.samples.removeFirst(state.samples.count - 10_000) }
            }
            let previous = state.overlays[id]
            if previous == nil || version >= previous?.applied ?? 0 {
                state.overlays[id] = Overlay(applied: version, appliedAt: Date(), latencyMS: ms)
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

    func percentiles() -> Percentiles {
        let now = clock.now
        let values = state.withLock { state in
            state.samples.filter { now - $0.at <= window }.map(\.ms)
        }.sorted()
        func pick(_ q: Double) -> Double? {
            guard !values.isEmpty else { return nil }
            let index = min(values.count - 1, Int((q * Double(values.count)).rounded(.up)) - 1)
            return (values[max(0, index)] * 100).rounded() / 100
        }
        return Percentiles(p50: pick(0.5), p95: pick(0.95), p99: pick(0.99), samples: values.count, window_seconds: Int(window.components.seconds))
    }

    /// Applied version and time per overlay id.
    func overlays() -> [String: (applied: Int64, at: Date, latencyMS: Double?)] {
        state.withLock { $0.overlays.mapValues { ($0.applied, $0.appliedAt, $0.latencyMS) } }
    }

    /// The newest version sent to overlays.
    var latestBroadcast: Int64 { state.withLock { $0.latest } }

    /// Saves in the last minute and in total.
    func saveRates() -> (lastMinute: Int, total: Int) {
        let now = clock.now
        return state.withLock { state in (state.saves.filter { now - $0 <= .seconds(60) }.count, state.savesTotal) }
    }
}
