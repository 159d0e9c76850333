// WebRTCSignaling: room figures on /metrics, with the number of `room` label values bounded.

import Foundation
import PluginAPI
import Synchronization

/// Exports room figures as gauges (`onionrp_plugin_webrtc_*`), and counts events with bounded labels.
///
/// Only the first `metrics_room_labels` room names ever seen get gauges of their own (a gauge cannot be
/// unregistered, so every new name would be a new series forever); an emptied room's gauges drop to 0.
/// Totals (`webrtc_rooms`, `webrtc_peers{role}`) cover every room.
final class RoomGauges: Sendable {
    /// The gauges of one labelled room.
    private struct RoomSet {
        let publisher: any MetricGauge
        let viewers: any MetricGauge
        let publisherFPS: any MetricGauge
        let publisherBitrate: any MetricGauge
        let viewerFPS: any MetricGauge
        let viewerBitrate: any MetricGauge
        let viewerLoss: any MetricGauge
        let viewerJitter: any MetricGauge
        let viewerRTT: any MetricGauge
        let viewerFramesDropped: any MetricGauge
    }

    private let metrics: any PluginMetrics
    private let maxLabels: Int
    private let labelled = Mutex<[String: RoomSet]>([:])
    private let counters = Mutex<[String: any MetricCounter]>([:])
    private let roomCount: any MetricGauge
    private let publishers: any MetricGauge
    private let viewers: any MetricGauge

    /// Creates the exporter.
    /// - Parameters:
    ///   - metrics: The plugin's metrics factory.
    ///   - maxLabels: Most room names with their own series.
    init(metrics: any PluginMetrics, maxLabels: Int) {
        self.metrics = metrics
        self.maxLabels = maxLabels
        roomCount = metrics.gauge("webrtc_rooms", labels: [])
        publishers = metrics.gauge("webrtc_peers", labels: [("role", "publisher")])
        viewers = metrics.gauge("webrtc_peers", labels: [("role", "viewer")])
    }

    private func set(for room: String) -> RoomSet? {
        labelled.withLock { sets -> RoomSet? in
            if let existing = sets[room] { return existing }
            guard sets.count < maxLabels else { return nil }
            let labels = [("room", room)]
            let made = RoomSet(
                publisher: metrics.gauge("webrtc_room_publisher", labels: labels),
                viewers: metrics.gauge("webrtc_room_viewers", labels: labels),
                publisherFPS: metrics.gauge("webrtc_publisher_fps", labels: labels),
                publisherBitrate: metrics.gauge("webrtc_publisher_bitrate_kbps", labels: labels),
                viewerFPS: metrics.gauge("webrtc_viewer_fps_avg", labels: labels),
                viewerBitrate: metrics.gauge("webrtc_viewer_bitrate_kbps_avg", labels: labels),
                viewerLoss: metrics.gauge("webrtc_viewer_packet_loss_pct_max", labels: labels),
                viewerJitter: metrics.gauge("webrtc_viewer_jitter_ms_max", labels: labels),
                viewerRTT: metrics.gauge("webrtc_viewer_rtt_ms_max", labels: labels),
                viewerFramesDropped: metrics.gauge("webrtc_viewer_frames_dropped", labels: labels))
            sets[room] = made
            return made
        }
    }

    private func setTotals(_ totals: (rooms: Int, publishers: Int, viewers: Int)) {
        roomCount.set(Double(totals.rooms))
        publishers.set(Double(totals.publishers))
        viewers.set(Double(totals.viewers))
    }

    /// Sets the gauges of a room and the totals.
    func update(_ figures: RoomFigures, totals: (rooms: Int, publishers: Int, viewers: Int)) {
        setTotals(totals)
        guard let set = set(for: figures.room) else { return }
        set.publisher.set(figures.publisher ? 1 : 0)
        set.viewers.set(Double(figures.viewers))
        set.publisherFPS.set(figures.publisherFPS ?? 0)
        set.publisherBitrate.set(figures.publisherBitrateKbps ?? 0)
        set.viewerFPS.set(figures.viewerFPSAvg ?? 0)
        set.viewerBitrate.set(figures.viewerBitrateKbpsAvg ?? 0)
        set.viewerLoss.set(figures.viewerPacketLossPctMax ?? 0)
        set.viewerJitter.set(figures.viewerJitterMsMax ?? 0)
        set.viewerRTT.set(figures.viewerRTTMsMax ?? 0)
        set.viewerFramesDropped.set(figures.viewerFramesDropped ?? 0)
    }

    /// Zeroes the gauges of a room that was dropped.
    func remove(room: String, totals: (rooms: Int, publishers: Int, viewers: Int)) {
        update(
            RoomFigures(
                room: room, publisher: false, viewers: 0, publisherFPS: nil, publisherBitrateKbps: nil, viewerFPSAvg: nil,
                viewerBitrateKbpsAvg: nil, viewerPacketLossPctMax: nil, viewerJitterMsMax: nil, viewerRTTMsMax: nil,
                viewerFramesDropped: nil),
            totals: totals)
    }

    /// Adds one to the counter `name` with `labels` (whose values must come from small fixed sets).
    func count(_ name: String, _ labels: [(String, String)]) {
        let key = name + "|" + labels.map { "\($0.0)=\($0.1)" }.joined(separator: ",")
        let counter = counters.withLock { cache -> any MetricCounter in
            if let existing = cache[key] { return existing }
            let made = metrics.counter(name, labels: labels)
            cache[key] = made
            return made
        }
        counter.increment()
    }
}
