// Sockets: one live connection on an engine channel, with its bounded, coalescing outbound queue.

import Foundation
import NIOCore
@_spi(Engine) import PluginAPI
import Synchronization

/// Why the engine dropped a connection.
enum DropReason: String, Sendable {
    case queueFull = "queue_full"
    case sendTimeout = "send_timeout"
}

/// A connection on `/ws/overlay` or `/ws/moderator`.
///
/// Outbound frames go through a queue of at most `limit` frames. A frame with a coalescing key
/// (e.g. `scene.full`) replaces an older queued frame with the same key, because a newer snapshot
/// makes the older one useless. A full queue means the client is stuck: it is dropped, never waited for.
public final class ChannelConnection: SocketConnection {
    public let id: String
    public let channel: SocketChannel
    public let caller: Caller
    /// Identifier of the overlay, when the page sent one (`?overlay_id=`).
    public let clientLabel: String?
    let outbox: ConnectionOutbox
    let onDrop: @Sendable (ChannelConnection, DropReason) -> Void
    let onCoalesce: @Sendable () -> Void
    /// When the frame being written started (uptime nanoseconds), 0 when idle; read by the hub's watchdog.
    let writeStartedAt = Atomic<UInt64>(0)
    /// The TCP channel, closed outright when a write is stuck.
    let nioChannel: any Channel
    /// Whether the client applies `scene.patch` frames (`?patches=1`); others get `scene.full` only.
    let takesPatches: Bool
    /// Scene frames that may wait before a new one replaces the newest of them (`limits.ws_scene_backlog`).
    let sceneBacklog: Int
    /// The scene versions the client will hold once its queue is written: the overlay's one scene, a panel's per name.
    private let held = Mutex<Held>(Held())

    struct Held {
        var name: String?
        var version: Int64 = 0
        var byScene: [String: Int64] = [:]
        /// False until ``SceneFeed/connect`` brought the client up to date: changes published before then are in the
        /// feed's log (or older than the scene it is sent), so they are not queued ahead of the catch-up.
        var live = false
    }

    init(
        id: String, channel: SocketChannel, caller: Caller, clientLabel: String?, limit: Int, nioChannel: any Channel,
        takesPatches: Bool = false, sceneBacklog: Int = 1, onDrop: @escaping @Sendable (ChannelConnection, DropReason) -> Void,
        onCoalesce: @escaping @Sendable () -> Void
    ) {
        self.nioChannel = nioChannel
        self.takesPatches = takesPatches
        self.sceneBacklog = sceneBacklog
        self.id = id
        self.channel = channel
        self.caller = caller
        self.clientLabel = clientLabel
        self.outbox = ConnectionOutbox(limit: limit)
        self.onDrop = onDrop
        self.onCoalesce = onCoalesce
    }

    /// The moderator session behind the connection, if any.
    var sessionID: String? {
        if case .moderator(let info) = caller { return info.id }
        return nil
    }

    public func send(_ text: String) {
        _ = enqueue(ByteBuffer(string: text), key: nil)
    }

    /// Queues a frame; with `key`, replaces a queued frame of the same key.
    /// - Returns: false when the connection is closing or was dropped for being stuck.
    @discardableResult
    func enqueue(_ frame: ByteBuffer, key: String?) -> Bool {
        switch outbox.enqueue(frame, key: key) {
        case .queued:
            return true
        case .coalesced:
            onCoalesce()
            return true
        case .closed:
            return false
        case .overflowed:
            onDrop(self, .queueFull)
            return false
        }
    }

    /// Takes published changes from now on; with `name`, the client holds `version` of that scene (it said so when
    /// reconnecting, and the replay that follows starts there). Called by ``SceneFeed/connect`` under the feed's lock.
    func goLive(holding name: String? = nil, version: Int64 = 0) {
        held.withLock { held in
            held.live = true
            guard let name else { return }
            held.name = name
            held.version = version
            held.byScene[name] = version
        }
    }

    /// Queues a scene change unless the client already has it (or a newer version): the patch when the client takes
    /// patches and holds its base, the full frame otherwise. Every version of a burst is queued; once `sceneBacklog`
    /// scene frames wait (a slow client) a new one replaces the newest of them, and a frame that replaces a queued one
    /// is always the full frame, since the client never sees the replaced one.
    /// - Parameters:
    ///   - force: Queue the full frame even when the client holds a newer version (a reload went back), or before the
    ///     client went live (the catch-up's full scene).
    ///   - coalesce: False for a replay: every version is queued, none replaces another.
    func deliver(_ entry: SceneFeedEntry, force: Bool = false, coalesce: Bool = true) {
        let overlay = channel == .overlay
        let key = coalesce ? (overlay ? "scene" : "scene:" + entry.name) : nil
        let outcome: OutboundQueue<ByteBuffer>.Outcome? = held.withLock { held in
            if !force && !held.live { return nil }
            let holding: Int64? = overlay ? (held.name == nil ? nil : held.version) : held.byScene[entry.name]
            let sameScene = overlay ? held.name == entry.name : true
            if !force, let holding, holding >= entry.version { return nil }
            let patchable = takesPatches && entry.patch != nil && sameScene && holding == entry.base
            let outcome = outbox.enqueue(key: key, coalesceAfter: sceneBacklog) { replacing in
                if patchable && !replacing, let patch = entry.patch { return patch }
                return entry.full
            }
            held.name = entry.name
            held.version = entry.version
            held.byScene[entry.name] = entry.version
            return outcome
        }
        switch outcome {
        case .coalesced?: onCoalesce()
        case .overflowed?: onDrop(self, .queueFull)
        default: break
        }
    }

    public func close(code: UInt16, reason: String) {
        outbox.close(code: code, reason: reason)
    }

    /// Frames waiting to be written.
    var queuedCount: Int { outbox.count }
}
