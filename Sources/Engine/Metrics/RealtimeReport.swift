// Metrics: the live picture behind GET /api/metrics/realtime.

import Foundation
@_spi(Engine) import PluginAPI

/// The live picture, read from the parts that hold it (built before the engine, so the scene routes can use it).
struct RealtimeReport: Sendable {
    let hub: ChannelHub
    let acks: OverlayAcks
    let scenes: SceneStore
    let metrics: EngineMetrics
    let startedAt: Date

    /// Connected clients, versions, per-overlay applied version and lag, ack latency, fan-out counters, save rate.
    func snapshot() async -> JSONValue {
        struct OverlayRow: Encodable {
            let overlay_id: String
            let connected: Bool
            let connections: Int
            let applied_version: Int64?
            let lag_versions: Int64?
            let last_ack_ms_ago: Int64?
            let last_latency_ms: Double?
            /// `late_join` when the last timed acknowledgement was of the scene sent on connect, else `live`.
            let last_latency_kind: String?
        }
        struct Snapshot: Encodable {
            let server_ts: Int64
            let uptime_seconds: Int
            let active_scene: String
            let latest_version: Int64
            let scene_versions: [String: Int64]
            let overlays_connected: Int
            let moderators_connected: Int
            let overlays: [OverlayRow]
            /// Live changes: from the broadcast to the overlay's acknowledgement.
            let ack_latency_ms: OverlayAcks.Percentiles
            /// The scene sent to an overlay as it connects: from that send to its acknowledgement.
            let late_join_latency_ms: OverlayAcks.Percentiles
            let late_joins_total: Int
            let frames: HubStats
            let saves_last_minute: Int
            let saves_total: Int
        }
        let connections = hub.all
        let overlayConnections = connections.filter { $0.channel == .overlay }
        let acked = acks.overlays()
        let latest = scenes.active.version
        var rows: [String: OverlayRow] = [:]
        var counts: [String: Int] = [:]
        for connection in overlayConnections { counts[connection.clientLabel ?? connection.id, default: 0] += 1 }
        let now = Date()
        for id in Set(counts.keys).union(acked.keys) {
            let ack = acked[id]
            rows[id] = OverlayRow(
                overlay_id: id, connected: counts[id] != nil, connections: counts[id] ?? 0, applied_version: ack?.applied,
                lag_versions: ack.map { max(0, latest - $0.applied) },
                last_ack_ms_ago: ack.map { Int64(now.timeIntervalSince($0.at) * 1000) }, last_latency_ms: ack?.latencyMS,
                last_latency_kind: ack?.latencyMS == nil ? nil : (ack?.lateJoin == true ? "late_join" : "live"))
        }
        let rates = acks.saveRates()
        let snapshot = Snapshot(
            server_ts: OverlayEngine.nowMillis(), uptime_seconds: Int(now.timeIntervalSince(startedAt)), active_scene: scenes.activeName,
            latest_version: latest, scene_versions: Dictionary(uniqueKeysWithValues: scenes.all.map { ($0.name, $0.version) }),
            overlays_connected: overlayConnections.count, moderators_connected: connections.count - overlayConnections.count,
            overlays: rows.values.sorted { ($0.connected ? 0 : 1, $0.overlay_id) < ($1.connected ? 0 : 1, $1.overlay_id) },
            ack_latency_ms: acks.percentiles(), late_join_latency_ms: acks.percentiles(lateJoins: true),
            late_joins_total: acks.lateJoinCount, frames: hub.currentStats, saves_last_minute: rates.lastMinute, saves_total: rates.total)
        guard let bytes = try? JSON.encode(snapshot), let value = try? JSON.decode(JSONValue.self, from: bytes) else { return .null }
        return value
    }
}
