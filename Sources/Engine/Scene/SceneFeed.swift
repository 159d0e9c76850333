// Scene: what overlays and panels receive about scene changes. Each change is encoded once as a `scene.full`
// frame and, when a delta is smaller, a `scene.patch` frame; every connection gets the patch when it holds the
// patch's base version, the full frame otherwise. A bounded log of recent changes lets a client that reconnects
// (to this engine or another) with the version it has get exactly the versions it missed.

import Foundation
import Logging
import NIOCore
@_spi(Engine) import PluginAPI
import Synchronization

/// One change as sent to clients.
struct SceneFeedEntry: Sendable {
    let version: Int64
    /// The version of the same scene the patch applies to (nil: no patch).
    let base: Int64?
    let name: String
    let active: Bool
    let full: ByteBuffer
    let patch: ByteBuffer?
}

/// Encodes, keeps and delivers scene changes.
final class SceneFeed: Sendable {
    let hub: ChannelHub
    let acks: OverlayAcks
    let logger: Logger
    /// Changes kept for reconnecting clients (``resume``).
    let capacity: Int
    private let recent = Mutex<[SceneFeedEntry]>([])
    /// The encoded scenes `GET /api/scene` answers with, one per (scene, version): a wave of connecting overlays sent
    /// the scene in full encodes it once (the catch-up runs under the log's lock, one connection at a time).
    private let encoded: SceneResponseCache
    private let fullBytes = Atomic<Int>(0)
    private let patchBytes = Atomic<Int>(0)

    init(hub: ChannelHub, acks: OverlayAcks, capacity: Int, logger: Logger, encoded: SceneResponseCache = SceneResponseCache()) {
        self.hub = hub
        self.encoded = encoded
        self.acks = acks
        self.capacity = max(1, capacity)
        self.logger = logger
    }

    // MARK: frames

    /// `{"type":"scene.full","version":N,"server_ts":ms,"epoch":"…","active":bool,"action":"…","scene":{…}}`, `type` first
    /// so that clients can dispatch on a prefix.
    static func fullFrame(_ change: SceneChange, epoch: String, sceneJSON: [UInt8]? = nil) -> ByteBuffer {
        // Encoding a validated scene cannot fail (all numbers are finite); an empty scene would only blank one frame.
        let scene = sceneJSON ?? (try? JSON.encode(change.scene)) ?? Array("{}".utf8)
        var buffer = ByteBuffer()
        buffer.reserveCapacity(scene.count + 160)
        buffer.writeString(head("scene.full", change, epoch: epoch))
        buffer.writeString(",\"scene\":")
        buffer.writeBytes(scene)
        buffer.writeString("}")
        return buffer
    }

    private static func head(_ type: String, _ change: SceneChange, epoch: String) -> String {
        let action = (try? JSON.encode(change.action)).map { String(decoding: $0, as: UTF8.self) } ?? "\"\""
        let epochText = (try? JSON.encode(epoch)).map { String(decoding: $0, as: UTF8.self) } ?? "\"\""
        return
            "{\"type\":\"\(type)\",\"version\":\(change.scene.version),\"server_ts\":\(WallClock.nowMilliseconds),\"epoch\":\(epochText),\"active\":\(change.active),\"action\":\(action)"
    }

    /// The delta from `change.previous` to `change.scene`:
    /// `{"type":"scene.patch","version":N,"base_version":B,…,"name":"main","updated_at":ms,"width":W,"height":H,
    /// "upsert":[elements added or changed],"remove":[ids],"order":[every id, when the order changed]}`.
    /// A client holding version B of the scene replaces the upserted elements by id (adding new ones), drops the removed
    /// ones and, when `order` is present, puts the elements in that order. Nil when there is no base or the delta
    /// would not be smaller than the full frame.
    static func patchFrame(_ change: SceneChange, epoch: String, fullSize: Int) -> ByteBuffer? {
        guard let previous = change.previous, previous.name == change.scene.name, previous.version < change.scene.version else { return nil }
        struct Patch: Encodable {
            let name: String
            let updated_at: Int64
            let width: Int
            let height: Int
            let upsert: [SceneElement]
            let remove: [String]
            let order: [String]?
        }
        let before = Dictionary(previous.elements.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let afterIDs = change.scene.elements.map(\.id)
        let kept = Set(afterIDs)
        let upsert = change.scene.elements.filter { before[$0.id] != $0 }
        let remove = previous.elements.map(\.id).filter { !kept.contains($0) }
        let previousOrder = previous.elements.map(\.id).filter { kept.contains($0) }
        let newOrder = afterIDs.filter { before[$0] != nil }
        // Order is sent when the kept elements moved, or new ones were not simply appended.
        let appendedOnly = afterIDs.prefix(newOrder.count).elementsEqual(newOrder)
        let order: [String]? = (previousOrder == newOrder && appendedOnly) ? nil : afterIDs
        let patch = Patch(
            name: change.scene.name, updated_at: change.scene.updatedAt, width: change.scene.width, height: change.scene.height,
            upsert: upsert, remove: remove, order: order)
        guard let body = try? JSON.encode(patch) else { return nil }
        var buffer = ByteBuffer()
        buffer.reserveCapacity(body.count + 180)
        buffer.writeString(head("scene.patch", change, epoch: epoch))
        buffer.writeString(",\"base_version\":\(previous.version),\"patch\":")
        buffer.writeBytes(body)
        buffer.writeString("}")
        return buffer.readableBytes < fullSize ? buffer : nil
    }

    // MARK: publishing

    /// Encodes `change` once, keeps it for reconnecting clients and queues it for every overlay (the active scene)
    /// and panel. Called in version order (the scene store's persistence queue).
    func publish(_ change: SceneChange, epoch: String) {
        let full = Self.fullFrame(change, epoch: epoch)
        let patch = Self.patchFrame(change, epoch: epoch, fullSize: full.readableBytes)
        let entry = SceneFeedEntry(
            version: change.scene.version, base: patch == nil ? nil : change.previous?.version, name: change.scene.name,
            active: change.active, full: full, patch: patch)
        fullBytes.add(full.readableBytes, ordering: .relaxed)
        patchBytes.add(patch?.readableBytes ?? full.readableBytes, ordering: .relaxed)
        recent.withLock { recent in
            if change.action == "sync" { recent.removeAll() }  // a reload: what came before is another history
            recent.append(entry)
            if recent.count > capacity { recent.removeFirst(recent.count - capacity) }
        }
        if change.active {
            acks.broadcasted(change.scene.version)
            for connection in hub.connections(on: .overlay) { connection.deliver(entry) }
        }
        for connection in hub.connections(on: .moderator) { connection.deliver(entry) }
    }

    /// Bytes of the full frames and of what was sent instead (the patch when there was one), since start.
    var byteCounts: (full: Int, delivered: Int) { (fullBytes.load(ordering: .relaxed), patchBytes.load(ordering: .relaxed)) }

    // MARK: connecting

    /// What a connecting client says it holds (`?since=<version>&epoch=<epoch>`).
    struct Resume: Sendable {
        var since: Int64
        var epoch: String
    }

    /// Brings a connection that just opened up to date: from `resume` when the client holds a version this engine can
    /// continue from (same epoch, no change of the active scene's chain missing), replaying exactly the versions it
    /// missed (patches when it takes them; at most half the socket's outbound queue of them); else with the active
    /// scene in full. Ends with `scene.resumed` after a replay.
    ///
    /// Runs under the log's lock, so no change is published meanwhile: what was published before is in the log (the
    /// connection took none of it live), what comes after is delivered live. The scene store installs a version and
    /// then publishes it, so `current` may be a few versions ahead of the log: the replay goes as far as the log, and
    /// the versions being published reach the connection live.
    /// - Parameter current: The active scene and epoch now; nil while the scenes are not loaded (the load's publish
    ///   brings the scene).
    /// - Returns: The version the client holds once the catch-up is written (nil when nothing was sent).
    @discardableResult
    func connect(_ connection: ChannelConnection, resume: Resume?, current: () -> (scene: Scene, epoch: String)?) -> Int64? {
        recent.withLock { recent -> Int64? in
            guard let (active, epoch) = current() else {
                connection.goLive()
                return nil
            }
            if let resume, resume.epoch == epoch, resume.since > 0, resume.since <= active.version,
                let replay = Self.replay(since: resume.since, active: active, log: recent),
                replay.entries.count <= hub.queueLimit / 2
            {
                connection.goLive(holding: replay.name, version: resume.since)
                for entry in replay.entries { connection.deliver(entry, coalesce: false) }
                let reached = replay.entries.last?.version ?? resume.since
                connection.send(
                    (try? SocketMessage.make(
                        type: "scene.resumed", payload: Resumed(version: reached, from: resume.since, replayed: replay.entries.count, epoch: epoch)
                    ))
                        ?? SocketMessage.make(type: "scene.resumed"))
                return reached
            }
            let change = SceneChange(scene: active, active: true, action: "sync")
            let json = try? encoded.entry(for: active).body
            connection.deliver(
                SceneFeedEntry(
                    version: active.version, base: nil, name: active.name, active: true,
                    full: Self.fullFrame(change, epoch: epoch, sceneJSON: json), patch: nil),
                force: true)
            connection.goLive()
            return active.version
        }
    }

    struct Resumed: Encodable {
        let version: Int64
        let from: Int64
        let replayed: Int
        let epoch: String
    }

    /// The active-scene changes after `since` in `log`, when it still has the one at `since` (or `since` is the active
    /// scene's current version). The log may end before `active` (versions being published); it never passes it.
    private static func replay(since: Int64, active: Scene, log: [SceneFeedEntry]) -> (name: String, entries: [SceneFeedEntry])? {
        if since == active.version { return (active.name, []) }
        guard let start = log.firstIndex(where: { $0.version == since }), log[start].active, log[start].name == active.name else { return nil }
        let entries = log[(start + 1)...].filter(\.active)
        guard entries.allSatisfy({ $0.name == active.name && $0.version <= active.version }) else { return nil }
        return (log[start].name, Array(entries))
    }

    /// The oldest version a client can resume from (for the README's figures and `/api/metrics/realtime`).
    var oldestResumable: Int64? { recent.withLock { $0.first?.version } }
}
