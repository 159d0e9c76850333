// Metrics: the live picture behind GET /api/metrics/realtime.

import Foundation
@_spi(Engine) import PluginAPI

/// The live picture, read from the parts that hold it (built before the engine, so the scene routes can use it).
struct RealtimeReport: Sendable {
    let hub: ChannelHub
    let acks: OverlayAcks
    let scenes: SceneStore
    let feed: SceneFeed
    let metrics: EngineMetrics
    let startedAt: Date
    let engineID: String
    let store: any EngineStore

    /// What each engine tells the others about itself (the store key `engine:cluster:<id>`, refreshed by
    /// ``publishPresence()``, gone a few seconds after the engine stops).
    struct EngineSummary: Codable, Sendable {
        let engine_id: String
        let overlays_connected: Int
        let moderators_connected: Int
        let latest_version: Int64
        let frames_sent: Int
        let frames_coalesced: Int
        let clients_dropped: Int
        let saves_total: Int
        let scene_frame_bytes: Int
        let scene_bytes_sent: Int
        let updated_at: Int64
    }

    static let presencePrefix = "engine:cluster:"
    static let presenceTTL: Duration = .seconds(6)

    func summary() -> EngineSummary {
        let connections = hub.all
        let overlays = connections.filter { $0.channel == .overlay }.count
        let stats = hub.currentStats
        let bytes = feed.byteCounts
        return EngineSummary(
            engine_id: engineID, overlays_connected: overlays, moderators_connected: connections.count - overlays,
            latest_version: scenes.revision, frames_sent: stats.framesSent, frames_coalesced: stats.framesCoalesced,
            clients_dropped: stats.clientsDropped, saves_total: acks.saveRates().total, scene_frame_bytes: bytes.full,
            scene_bytes_sent: bytes.delivered, updated_at: OverlayEngine.nowMillis())
    }

    /// Writes this engine's summary to the store (every 2 s, ``PeriodicService``).
    func publishPresence() async {
        guard let bytes = try? JSON.encode(summary()) else { return }
        _ = try? await store.set(Self.presencePrefix + engineID, bytes, ttl: Self.presenceTTL, onlyIfAbsent: false)
    }

    /// Every engine's latest summary (this one's fresh), by engine id.
    func cluster() async -> [EngineSummary] {
        var found: [String: EngineSummary] = [engineID: summary()]
        if let keys = try? await store.keys(prefix: Self.presencePrefix) {
            for key in keys where !key.hasSuffix(engineID) {
                if let bytes = try? await store.get(key), let entry = try? JSON.decode(EngineSummary.self, from: bytes) {
                    found[entry.engine_id] = entry
                }
            }
        }
        return found.values.sorted { $0.engine_id < $1.engine_id }
    }

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
        struct Totals: Encodable {
            let engines: Int
            let overlays_connected: Int
            let moderators_connected: Int
            let frames_sent: Int
            let frames_coalesced: Int
            let clients_dropped: Int
        }
        struct Snapshot: Encodable {
            let server_ts: Int64
            /// The engine that answered; `overlays`, `frames` and the latencies are its own, `engines` and `cluster`
            /// cover every engine sharing the store.
            let engine_id: String
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
            /// Bytes of `scene.full` frames built, and of what went out instead (patches where they were smaller).
            let scene_frame_bytes: Int
            let scene_bytes_sent: Int
            let engines: [EngineSummary]
            let cluster: Totals
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
        let engines = await cluster()
        let totals = Totals(
            engines: engines.count, overlays_connected: engines.map(\.overlays_connected).reduce(0, +),
            moderators_connected: engines.map(\.moderators_connected).reduce(0, +), frames_sent: engines.map(\.frames_sent).reduce(0, +),
            frames_coalesced: engines.map(\.frames_coalesced).reduce(0, +), clients_dropped: engines.map(\.clients_dropped).reduce(0, +))
        let bytes = feed.byteCounts
        let snapshot = Snapshot(
            server_ts: OverlayEngine.nowMillis(), engine_id: engineID, uptime_seconds: Int(now.timeIntervalSince(startedAt)),
            active_scene: scenes.activeName,
            latest_version: latest, scene_versions: Dictionary(uniqueKeysWithValues: scenes.all.map { ($0.name, $0.version) }),
            overlays_connected: overlayConnections.count, moderators_connected: connections.count - overlayConnections.count,
            overlays: rows.values.sorted { ($0.connected ? 0 : 1, $0.overlay_id) < ($1.connected ? 0 : 1, $1.overlay_id) },
            ack_latency_ms: acks.percentiles(), late_join_latency_ms: acks.percentiles(lateJoins: true),
            late_joins_total: acks.lateJoinCount, frames: hub.currentStats, saves_last_minute: rates.lastMinute, saves_total: rates.total,
            scene_frame_bytes: bytes.full, scene_bytes_sent: bytes.delivered, engines: engines, cluster: totals)
        guard let bytes = try? JSON.encode(snapshot), let value = try? JSON.decode(JSONValue.self, from: bytes) else { return .null }
        return value
    }
}
