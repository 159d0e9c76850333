// Scene: the `scene.full` frame, encoded once per change and shared by every connection.

import Foundation
import NIOCore
@_spi(Engine) import PluginAPI

enum SceneBroadcast {
    /// `{"type":"scene.full","version":N,"server_ts":ms,"active":bool,"action":"...","scene":{...}}`, with
    /// `type` first so that clients can dispatch on a prefix; the scene is encoded once per change.
    static func frame(_ change: SceneChange) -> ByteBuffer {
        // Encoding a validated scene cannot fail (all numbers are finite); an empty scene would only blank one frame.
        let scene = (try? JSON.encode(change.scene)) ?? Array("{}".utf8)
        let action = (try? JSON.encode(change.action)) ?? Array("\"\"".utf8)
        let head =
            "{\"type\":\"scene.full\",\"version\":\(change.scene.version),\"server_ts\":\(WallClock.nowMilliseconds),\"active\":\(change.active),\"action\":"
        var buffer = ByteBuffer()
        buffer.reserveCapacity(head.utf8.count + action.count + scene.count + 12)
        buffer.writeString(head)
        buffer.writeBytes(action)
        buffer.writeString(",\"scene\":")
        buffer.writeBytes(scene)
        buffer.writeString("}")
        return buffer
    }
}
