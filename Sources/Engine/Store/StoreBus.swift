// Store: the engines' bus (PluginAPI's EngineBus) over the store's publish/subscribe. A message on the wire is
// `<engine id> <payload>` on the channel `onionrp:bus:<owner>:<topic>` (owner: a plugin's name, or `engine`).

import Foundation
@_spi(Engine) import PluginAPI

/// The bus of one engine process; ``view(owner:)`` gives each plugin its own topics.
final class StoreBus: Sendable {
    let store: any EngineStore
    let engineID: String

    init(store: any EngineStore, engineID: String) {
        self.store = store
        self.engineID = engineID
    }

    static func channel(owner: String, topic: String) -> String { "onionrp:bus:\(owner):\(topic)" }

    /// The bus as the plugin (or the engine part) `owner` sees it.
    func view(owner: String) -> any EngineBus { OwnedBus(bus: self, owner: owner) }

    func publish(owner: String, topic: String, _ message: [UInt8]) async throws {
        var wire = Array(engineID.utf8)
        wire.append(0x20)
        wire += message
        try await store.publish(Self.channel(owner: owner, topic: topic), wire)
    }

    func subscribe(owner: String, topic: String, _ handler: @escaping @Sendable ([UInt8], String) -> Void) async throws -> any BusSubscription {
        let subscription = try await store.subscribe(Self.channel(owner: owner, topic: topic)) { wire in
            guard let space = wire.firstIndex(of: 0x20) else { return }
            handler(Array(wire[(space + 1)...]), String(decoding: wire[..<space], as: UTF8.self))
        }
        return StoreBusSubscription(base: subscription)
    }
}

private struct OwnedBus: EngineBus {
    let bus: StoreBus
    let owner: String
    var engineID: String { bus.engineID }
    func publish(_ topic: String, _ message: [UInt8]) async throws { try await bus.publish(owner: owner, topic: topic, message) }
    func subscribe(_ topic: String, _ handler: @escaping @Sendable ([UInt8], String) -> Void) async throws -> any BusSubscription {
        try await bus.subscribe(owner: owner, topic: topic, handler)
    }
}

private struct StoreBusSubscription: BusSubscription {
    let base: any StoreSubscription
    func cancel() { base.cancel() }
}
