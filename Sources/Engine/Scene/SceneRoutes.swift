// Scene: the HTTP API of scenes, acknowledgements and realtime metrics, registered like a plugin's routes.

import Foundation
@_spi(Engine) import PluginAPI

/// Registers the engine's scene routes on `registrar` (owner "engine", so clashes are detected).
struct SceneRoutes {
    let store: SceneStore
    let acks: OverlayAcks
    let editing: SceneEditing
    let bodyLimit: Int
    let realtime: @Sendable () async -> JSONValue
    /// Encoded scene bodies, one per (scene, version): a GET encodes a version at most once (shared with the engine's
    /// direct `GET /api/scene` route).
    let responses: SceneResponseCache

    static let saveLimit = RateLimit(name: "scene.save", burst: 60, perMinute: 1200)

    func by(_ caller: Caller) -> String {
        if case .moderator(let info) = caller { return "moderator:\(info.id)" }
        return caller.role
    }

    /// Who, for people: the label the streamer gave the moderator's key, else "a moderator"; `streamer`.
    func byName(_ caller: Caller) -> String {
        if case .moderator(let info) = caller {
            let label = (info.label ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            return label.isEmpty ? "a moderator" : String(label.prefix(60))
        }
        return caller.role
    }

    func sceneName(_ request: PluginRequest) throws -> String {
        let name = try request.parameter("name")
        guard SceneValidator.isSceneName(name) else {
            throw PluginError.invalidField("name", "a scene name is 1-40 letters, digits, '-', '_' or '.', starting with a letter or digit")
        }
        return name
    }

    func register(_ registrar: PluginRegistrar) {
        let r = LoadedScenes(registrar: registrar, store: store)
        r.route(.get, "/api/scene", access: .overlay, summary: "the active scene with _version (ETag; If-None-Match gives 304)") {
            request in
            try responses.response(for: store.active, request: request)
        }
        r.route(.get, "/api/scenes", access: .overlay, summary: "every scene and which is active") { _ in
            struct Item: Encodable {
                let name: String
                let _version: Int64
                let width: Int
                let height: Int
                let elements: Int
                let updated_at: Int64
                let active: Bool
            }
            struct Listing: Encodable {
                let active: String
                let revision: Int64
                let scenes: [Item]
            }
            let active = store.activeName
            return try .json(
                Listing(
                    active: active, revision: store.revision,
                    scenes: store.all.map {
                        Item(
                            name: $0.name, _version: $0.version, width: $0.width, height: $0.height, elements: $0.elements.count,
                            updated_at: $0.updatedAt, active: $0.name == active)
                    }))
        }
        r.route(.get, "/api/scenes/{name}", access: .overlay, summary: "one scene (ETag; If-None-Match gives 304)") { request in
            let name = try sceneName(request)
            guard let scene = store.scene(name) else { throw PluginError.notFound("no scene named '\(name)'") }
            return try responses.response(for: scene, request: request)
        }
        for (path, named) in [("/api/scene", false), ("/api/scenes/{name}", true)] {
            r.route(
                .put, path, access: .moderator, bodyLimit: bodyLimit, rateLimit: Self.saveLimit,
                summary: named ? "replace or create a scene (base_version 0 creates)" : "replace the active scene (base_version)"
            ) { request in
                let name = named ? try sceneName(request) : store.activeName
                let body = try editing.put(try await request.body.collect(upTo: bodyLimit))
                let scene = try await store.commit(
                    name: name, baseVersion: body.baseVersion, action: "put", by: by(request.caller),
                    byName: byName(request.caller), create: named
                ) { current, since in
                    try editing.replace(body, current: current, since: since)
                }
                acks.saved()
                return try .json(scene)
            }
            r.route(
                .patch, path, access: .moderator, bodyLimit: bodyLimit, rateLimit: Self.saveLimit,
                summary: named ? "apply operations to a scene" : "apply operations (add, update, remove, reorder, move) to the active scene"
            ) { request in
                let name = named ? try sceneName(request) : store.activeName
                let (base, operations, group) = try editing.patchWithGroup(try await request.body.collect(upTo: bodyLimit))
                let scene = try await store.commit(
                    name: name, baseVersion: base, action: "patch", by: by(request.caller),
                    byName: byName(request.caller), group: group
                ) { current, since in
                    try editing.apply(operations, baseVersion: base, current: current, since: since)
                }
                acks.saved()
                return try .json(scene)
            }
        }
        r.route(.delete, "/api/scenes/{name}", access: .moderator, summary: "delete a scene that is not active") { request in
            let name = try sceneName(request)
            try await store.delete(name)
            responses.remove(name)
            return try .json(["deleted": name])
        }
        r.route(
            .post, "/api/scenes/{name}/activate", access: .moderator, rateLimit: Self.saveLimit,
            summary: "make a scene the active one (broadcast to overlays)"
        ) { request in
            let scene = try await store.activate(try sceneName(request), by: by(request.caller), byName: byName(request.caller))
            acks.saved()
            return try .json(scene)
        }
        r.route(.get, "/api/scene/history", access: .moderator, summary: "kept versions of a scene (?scene=, default active)") { request in
            let name = request.queryValue("scene") ?? store.activeName
            guard store.scene(name) != nil else { throw PluginError.notFound("no scene named '\(name)'") }
            struct Entry: Encodable {
                let version: Int64
                let action: String
                let by: String?
                let at: Int64
                let elements: Int
                let changed: [String]?
                /// The row as people read it: "Alice moved 'Logo'".
                let summary: String
                let by_name: String
                let changes: [SceneElementChange]
                /// Saves merged into this entry (one gesture), its first version and start.
                let saves: Int
                let first_version: Int64
                let started_at: Int64
                let restored_from: Int64?
            }
            struct Retention: Encodable {
                let max_versions: Int
                let max_age_seconds: Int
                let kept: Int
                let oldest_at: Int64?
            }
            struct Listing: Encodable {
                let scene: String
                let versions: [Entry]
                let retention: Retention
            }
            let kept = store.history(name)
            let labels = editing.validator.limits.pluginElementTypes.mapValues(\.label)
            let entries = kept.reversed().map {
                Entry(
                    version: $0.scene.version, action: $0.action, by: $0.by, at: $0.scene.updatedAt, elements: $0.scene.elements.count,
                    changed: $0.changed, summary: SceneHistory.summary($0, labels: labels), by_name: SceneHistory.actor($0),
                    changes: $0.changes ?? [],
                    saves: $0.saves ?? 1, first_version: $0.firstVersion ?? $0.scene.version,
                    started_at: $0.startedAt ?? $0.scene.updatedAt, restored_from: $0.restoredFrom)
            }
            let rule = store.retention
            return try .json(
                Listing(
                    scene: name, versions: entries,
                    retention: Retention(
                        max_versions: rule.count, max_age_seconds: rule.maxAgeSeconds, kept: kept.count, oldest_at: kept.first?.scene.updatedAt)))
        }
        r.route(
            .post, "/api/scene/restore", access: .moderator, rateLimit: Self.saveLimit,
            summary: "bring back a kept version as a new version (JSON version, scene?, base_version?)"
        ) { request in
            struct Body: Decodable {
                let version: Int64
                let scene: String?
                let base_version: Int64?
            }
            let body = try await request.decodeJSON(Body.self, limit: 4096)
            let name = body.scene ?? store.activeName
            guard let record = store.history(name).first(where: { $0.scene.version == body.version }) else {
                throw PluginError.notFound("version \(body.version) of scene '\(name)' is not kept (see GET /api/scene/history)")
            }
            let current = store.scene(name)?.version ?? 0
            let scene = try await store.commit(
                name: name, baseVersion: body.base_version ?? current, action: "restore",
                by: by(request.caller), byName: byName(request.caller),
                restoredFrom: body.version
            ) { current, since in
                guard since?.isEmpty == true else {
                    throw SceneEditing.conflict(current, "scene '\(name)' changed since version \(body.base_version ?? 0); reload")
                }
                return SceneStore.Edit(elements: record.scene.elements, width: record.scene.width, height: record.scene.height, changed: nil)
            }
            acks.saved()
            return try .json(scene)
        }
        r.route(.post, "/api/overlay/applied", access: .overlay, summary: "an overlay confirms the version it shows (JSON overlay_id, version)") {
            request in
            struct Body: Decodable {
                let overlay_id: String
                let version: Int64
            }
            let body = try await request.decodeJSON(Body.self, limit: 4096)
            guard !body.overlay_id.isEmpty, body.overlay_id.count <= 64, SceneValidator.isIdentifier(body.overlay_id) else {
                throw PluginError.invalidField("overlay_id", "1-64 letters, digits, '-', '_' or '.'")
            }
            guard body.version >= 0, body.version <= store.revision else {
                throw PluginError.invalidField("version", "must be a version the engine has given (at most \(store.revision))")
            }
            let latency = acks.applied(overlay: body.overlay_id, version: body.version)
            struct Answer: Encodable {
                let recorded: Bool
                let latency_ms: Double?
            }
            return try .json(Answer(recorded: true, latency_ms: latency))
        }
        r.route(.get, "/api/metrics/realtime", access: .moderator, summary: "live picture: clients, versions, apply lag, rates") { _ in
            try .json(await realtime())
        }
    }
}

/// Registers scene routes that answer 503 `store_unavailable` while the scenes are not loaded (a Redis that was down
/// when the engine started), instead of an empty scene.
struct LoadedScenes {
    let registrar: PluginRegistrar
    let store: SceneStore

    func route(
        _ method: PluginAPI.HTTPMethod, _ path: String, access: AccessLevel, bodyLimit: Int? = nil, rateLimit: RateLimit? = nil,
        summary: String = "", handler: @escaping RouteHandler
    ) {
        let store = self.store
        registrar.route(method, path, access: access, bodyLimit: bodyLimit, rateLimit: rateLimit, summary: summary) { request in
            try store.requireLoaded()
            return try await handler(request)
        }
    }
}
