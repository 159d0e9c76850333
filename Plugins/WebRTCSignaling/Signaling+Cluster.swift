// WebRTCSignaling: signaling frames for a peer connected to another engine go there over the bus, ready to send.

import Foundation
import PluginAPI

extension Signaling {
    /// Sends a routed message to `target` on another engine, with `from` set as for a local peer.
    /// - Returns: False when there is no such peer elsewhere either (the caller reports it as today).
    func forwardToOtherEngine(_ type: String, _ members: [String: JSONValue], from peer: Peer, to target: RemotePeer?) throws -> Bool {
        guard let cluster = registry.cluster, let target else { return false }
        var members = members
        members["from"] = .string(peer.id)
        if target.role == .publisher { members["to"] = nil }
        let frame = try SocketMessage.make(type: type, payload: members)
        cluster.send([BusMessage.Delivery(to: target.id, frame: frame)], room: peer.room, to: target.engine)
        registry.countForwarded(room: peer.room, 1)
        return true
    }

    /// Sends each viewer of `room` on another engine the frame `make` builds for it, one bus message per engine.
    /// - Returns: The frames sent.
    func forwardToOtherEngines(room: String, _ make: (String) -> String?) -> Int {
        guard let cluster = registry.cluster else { return 0 }
        let byEngine = Dictionary(grouping: cluster.remote(room).filter { $0.role == .viewer }, by: \.engine)
        var sent = 0
        for (engine, viewers) in byEngine {
            let frames = viewers.compactMap { viewer in make(viewer.id).map { BusMessage.Delivery(to: viewer.id, frame: $0) } }
            cluster.send(frames, room: room, to: engine)
            sent += frames.count
        }
        return sent
    }
}
