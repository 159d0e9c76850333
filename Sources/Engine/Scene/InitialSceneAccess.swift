// Scene: what plugins see of the scene until the scene store lands: one empty `main` scene at version 0.

import PluginAPI

/// The scene view before any scene exists: an empty `main` scene, version 0, referencing no media.
struct InitialSceneAccess: SceneAccess {
    func activeScene() async throws -> SceneSnapshot {
        SceneSnapshot(name: "main", version: 0, json: Array(#"{"name":"main","width":1920,"height":1080,"elements":[],"_version":0}"#.utf8))
    }

    func elements(referencingMedia mediaID: String) async throws -> [String] { [] }
}
