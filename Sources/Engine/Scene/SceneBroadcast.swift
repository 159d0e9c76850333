// Scene: the `scene.full` frame, encoded once per change and shared by every connection.

import Foundation
import NIOCore
import PluginAPI

enum SceneBroadcast {
    struct Frame: Encodable {
        let type = "scene.full"
        let version: Int64
        let server_ts: Int64
        let active: Bool
        let action: String
        let scene: Scene
    }

    /// `{"type":"scene.full","version":N,"server_ts":ms,"active":bool,"action":"...","scene":{...}}`.
    static func frame(_ change: SceneChange) -> ByteBuffer {
        let frame = Frame(version: change.scene.version, server_ts: Int64(Date().timeIntervalSince1970 * 1000), active: change.active,
                          action: change.action, scene: change.scene)
        // Encoding a validated scene cannot fail (all numbers are finite); an empty object would only drop one frame.
        return ByteBuffer(bytes: (try? JSON.encode(frame)) ?? Array("{}".utf8))
    }
}

/// Lets routes built before the engine exists reach it once it does.
final class EngineReference: @unchecked Sendable {
    // Set once in `prepare`, before serving; read only afterwards.
    weak var engine: OverlayEngine?
}
