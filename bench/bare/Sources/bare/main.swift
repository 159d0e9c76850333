// The smallest Hummingbird 2 app serving what the engine serves on its two benchmarked routes:
// GET /healthz -> {"status":"ok"}, GET /api/scene -> the bytes of a file (the engine's 20-element scene).
//   bare <port> <scene.json>

import Foundation
import Hummingbird

let arguments = CommandLine.arguments
guard arguments.count == 3, let port = Int(arguments[1]),
    let scene = FileManager.default.contents(atPath: arguments[2])
else {
    FileHandle.standardError.write(Data("usage: bare <port> <scene.json>\n".utf8))
    exit(2)
}
let sceneBytes = ByteBuffer(bytes: scene)
let health = ByteBuffer(string: #"{"status":"ok"}"#)
let json: HTTPFields = [.contentType: "application/json; charset=utf-8"]

let router = Router()
router.get("/healthz") { _, _ in Response(status: .ok, headers: json, body: .init(byteBuffer: health)) }
router.get("/api/scene") { _, _ in Response(status: .ok, headers: json, body: .init(byteBuffer: sceneBytes)) }
let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
try await app.runService()
