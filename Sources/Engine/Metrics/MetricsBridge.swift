// Metrics: swift-metrics on a Prometheus registry; the adapter plugins get; the engine's own series.

import CoreMetrics
import Foundation
import Metrics
@_spi(Engine) import PluginAPI
import Prometheus

/// The engine's metrics: one Prometheus registry, rendered on `GET /metrics`.
public final class EngineMetrics: Sendable {
    /// The registry that `/metrics` renders.
    public let registry: PrometheusCollectorRegistry
    /// The factory every metric is created through (no global bootstrap needed).
    public let factory: any MetricsFactory

    /// Creates an empty registry.
    public init() {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .milliseconds(1), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
            .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
        ]
        self.factory = factory
    }

    /// A counter.
    public func counter(_ label: String, _ dimensions: [(String, String)] = []) -> CoreMetrics.Counter {
        CoreMetrics.Counter(label: label, dimensions: dimensions, factory: factory)
    }

    /// A gauge.
    public func gauge(_ label: String, _ dimensions: [(String, String)] = []) -> CoreMetrics.Gauge {
        CoreMetrics.Gauge(label: label, dimensions: dimensions, factory: factory)
    }

    /// A timer (a histogram of seconds).
    public func timer(_ label: String, _ dimensions: [(String, String)] = []) -> Metrics.Timer {
        Metrics.Timer(label: label, dimensions: dimensions, preferredDisplayUnit: .seconds, factory: factory)
    }

    /// The Prometheus text exposition.
    public func render() -> [UInt8] { registry.emitToBuffer() }

    /// The adapter handed to a plugin; names are prefixed `onionrp_plugin_`.
    func forPlugin(_ name: String) -> any PluginMetrics { PluginMetricsAdapter(metrics: self, plugin: name) }
}

struct PluginMetricsAdapter: PluginMetrics {
    let metrics: EngineMetrics
    let plugin: String

    func label(_ name: String) -> String {
        let clean = name.map { $0.isLetter || $0.isNumber ? $0 : "_" }
        return "onionrp_plugin_" + String(clean)
    }

    func counter(_ name: String, labels: [(String, String)]) -> any MetricCounter {
        CounterBox(counter: metrics.counter(label(name), [("plugin", plugin)] + labels))
    }
    func gauge(_ name: String, labels: [(String, String)]) -> any MetricGauge {
        GaugeBox(gauge: metrics.gauge(label(name), [("plugin", plugin)] + labels))
    }
    func timer(_ name: String, labels: [(String, String)]) -> any MetricTimer {
        TimerBox(timer: metrics.timer(label(name), [("plugin", plugin)] + labels))
    }
}

struct CounterBox: MetricCounter {
    let counter: CoreMetrics.Counter
    func increment(by amount: Int64) { counter.increment(by: amount) }
}

struct GaugeBox: MetricGauge {
    let gauge: CoreMetrics.Gauge
    func set(_ value: Double) { gauge.record(value) }
}

struct TimerBox: MetricTimer {
    let timer: Metrics.Timer
    func record(_ duration: Duration) { timer.recordNanoseconds(Int64(duration.inSeconds * 1e9)) }
}
