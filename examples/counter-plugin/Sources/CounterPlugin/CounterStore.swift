// Counter values in the plugin's store: one key per element, `value.<element id>`, holding the number as
// decimal text: the format of KeyValueStore.increment, setInteger and getInteger, in the embedded store and in Redis.

import Foundation
import PluginAPI

struct CounterStore: Sendable {
    let store: any KeyValueStore
    let scene: any SceneAccess
    let maximum: Int64

    static let prefix = "value."

    /// A counter id is a scene element id: 1-64 letters, digits, `-`, `_` or `.`.
    static func validID(_ id: String) throws -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
        guard (1...64).contains(id.count), id.allSatisfy(allowed.contains) else {
            throw PluginError.invalidField("id", "must be 1-64 letters, digits, '-', '_' or '.'")
        }
        return id
    }

    /// The live value: the stored one, else the element's `props.value` in the active scene, else 0.
    func value(of id: String) async throws -> Int64 {
        if let stored = try await store.getInteger(Self.prefix + id) { return stored }
        return try await startValue(of: id)
    }

    /// Adds `step` atomically (the store's increment), kept within 0...maximum.
    func add(_ step: Int64, to id: String) async throws -> Int64 {
        let key = Self.prefix + id
        if try await store.get(key) == nil {
            // The first change starts from the scene's value; onlyIfAbsent keeps a racing first change.
            // (set with onlyIfAbsent takes bytes: the decimal text that getInteger and increment read)
            try await store.set(key, Array(String(try await startValue(of: id)).utf8), ttl: nil, onlyIfAbsent: true)
        }
        let value = try await store.increment(key, by: step, ttl: nil)
        guard value < 0 || value > maximum else { return value }
        let clamped = min(max(value, 0), maximum)
        try await set(id, to: clamped)
        return clamped
    }

    /// Stores `value` as the counter's value.
    func set(_ id: String, to value: Int64) async throws {
        try await store.setInteger(Self.prefix + id, value)
    }

    /// Every stored counter, by element id.
    func all() async throws -> [String: Int64] {
        var values: [String: Int64] = [:]
        for key in try await store.keys(prefix: Self.prefix) {
            if let value = try await store.getInteger(key) { values[String(key.dropFirst(Self.prefix.count))] = value }
        }
        return values
    }

    /// `props.value` of the element `id` in the active scene (0 when there is none).
    private func startValue(of id: String) async throws -> Int64 {
        let snapshot = try await scene.activeScene()
        guard let scene = try? JSON.decode(JSONValue.self, from: snapshot.json),
            case .array(let elements)? = scene["elements"],
            let element = elements.first(where: { $0["id"]?.stringValue == id }),
            let number = element["props"]?["value"]?.doubleValue
        else { return 0 }
        return min(max(Int64(number), 0), maximum)
    }
}
