// The goal-bar plugin: a counter with a target per scene element, changed by moderators through HTTP,
// kept in the plugin store, broadcast to every overlay and panel, and drawn by the bundle's web modules.

import Foundation
import PluginAPI

/// The one symbol the engine looks up. It reports the PluginAPI version this file was compiled against.
@_cdecl("onionrp_plugin_entry")
public func onionrpPluginEntry(_ host: UInt32, _ built: UnsafeMutablePointer<UInt32>?) -> UnsafeMutableRawPointer? {
    PluginExport.entry(CounterPlugin.self, hostVersion: host, builtVersion: built)
}

/// The plugin's `config:` section in overlay.yaml, decoded strictly (unknown keys and wrong types are
/// refused with their YAML line). Every key is optional.
struct CounterConfiguration: DefaultedConfiguration {
    /// Largest change one request may make (`{"by": n}` with |n| at most this).
    var maxStep: Int64 = 100
    /// Highest value a counter may reach; the element's `target` may not exceed it either.
    var maximum: Int64 = 1_000_000

    init() {}

    func validate() throws {
        guard maxStep > 0 else { throw ConfigProblem("max_step", "must be positive") }
        guard maximum > 0 else { throw ConfigProblem("maximum", "must be positive") }
    }
}

final class CounterPlugin: OverlayPlugin {
    static let name = "counter"
    static let version = "1.0.0"
    static let summary = "Example bundle: a goal bar element whose value moderators change live"

    let configuration: CounterConfiguration
    let context: PluginContext
    let counters: CounterStore
    let changes: any MetricCounter

    init(configuration: CounterConfiguration, context: PluginContext) throws {
        guard configuration.maxStep >= 1 else { throw PluginError.invalidField("max_step", "must be at least 1") }
        guard (1...1_000_000).contains(configuration.maximum) else {
            throw PluginError.invalidField("maximum", "must be 1...1000000")
        }
        self.configuration = configuration
        self.context = context
        self.counters = CounterStore(store: context.store, scene: context.scene, maximum: configuration.maximum)
        self.changes = context.metrics.counter("counter_changes_total", labels: [])
    }

    func setUp(_ registrar: PluginRegistrar) async throws {
        // The element type: the engine checks `props` against this schema on every scene save
        // (400 invalid_scene naming props.<field>) and fills in the defaults; the panel builds its form from it.
        registrar.sceneElementType(
            ElementType(
                "goal", label: "Goal bar",
                properties: [
                    .string("title", label: "Title", default: "Follower goal", maxLength: 60),
                    .integer("value", label: "Start value", default: 0, range: 0...Int(configuration.maximum)),
                    .integer("target", label: "Target", default: 100, range: 1...Int(configuration.maximum)),
                    .color("color", label: "Colour", default: "#ffcc00"),
                    .choice("style", label: "Style", values: ["bar", "slim", "pill"], default: "bar"),
                    .boolean("animate", label: "Animate", default: true),
                ], width: 640, height: 120))

        // The web half of the bundle, relative to the plugin's web folder (served under /plugins/counter/).
        registrar.webModule(.overlay, "overlay.js", styles: ["overlay.css"])
        registrar.webModule(.panel, "panel.js", styles: ["panel.css", "overlay.css"])  // overlay.css: the stage preview

        // GET /api/counter/{id}: the live value (overlays, moderators, the streamer).
        registrar.route(.get, "/api/counter/{id}", access: .overlay, summary: "a counter's value") { request in
            let id = try CounterStore.validID(try request.parameter("id"))
            return try .json(CounterValue(id: id, value: try await self.counters.value(of: id)))
        }

        // POST /api/counter/{id}/increment, body {"by": n} or empty (+1): moderators, rate-limited per client.
        let limit = RateLimit(name: "counter.change", burst: 20, perMinute: 120)
        registrar.route(
            .post, "/api/counter/{id}/increment", access: .moderator, bodyLimit: 1024, rateLimit: limit,
            summary: "add to a counter"
        ) { request in
            let id = try CounterStore.validID(try request.parameter("id"))
            let step = try await Self.step(of: request, maxStep: self.configuration.maxStep)
            let value = try await self.counters.add(step, to: id)
            return try .json(self.changed(id, value))
        }

        // POST /api/counter/{id}/reset, body {"value": n} or empty (0): moderators, same bucket.
        registrar.route(
            .post, "/api/counter/{id}/reset", access: .moderator, bodyLimit: 1024, rateLimit: limit,
            summary: "set a counter (0 by default)"
        ) { request in
            struct Reset: Decodable { let value: Int64? }
            let id = try CounterStore.validID(try request.parameter("id"))
            let bytes = try await request.body.collect(upTo: 1024)
            let target = bytes.isEmpty ? 0 : (try JSON.decode(Reset.self, from: bytes).value ?? 0)
            guard (0...self.configuration.maximum).contains(target) else {
                throw PluginError.invalidField("value", "must be 0...\(self.configuration.maximum)")
            }
            try await self.counters.set(id, to: target)
            return try .json(self.changed(id, target))
        }

        // A page that connects (or reconnects) gets every stored value at once.
        registrar.onConnect(channels: [.overlay, .moderator]) { connection in
            let values = try await self.counters.all()
            connection.send(try SocketMessage.make(type: "counter.values", payload: ["values": values]))
        }
    }

    /// Counts the change and tells every overlay and panel: `{"type":"counter.changed","id","value"}`.
    private func changed(_ id: String, _ value: Int64) throws -> CounterValue {
        changes.increment()
        let event = CounterValue(id: id, value: value)
        context.sockets.send(try SocketMessage.make(type: "counter.changed", payload: event), to: .all)
        context.logger.debug("counter changed", ["id": id, "value": String(value)])
        return event
    }

    /// The `by` of an increment request: 1 for an empty body, else a non-zero whole number within ±maxStep.
    private static func step(of request: PluginRequest, maxStep: Int64) async throws -> Int64 {
        struct Step: Decodable { let by: Int64? }
        let bytes = try await request.body.collect(upTo: 1024)
        let step = bytes.isEmpty ? 1 : (try JSON.decode(Step.self, from: bytes).by ?? 1)
        guard step != 0, (-maxStep...maxStep).contains(step) else {
            throw PluginError.invalidField("by", "must be a non-zero whole number within ±\(maxStep)")
        }
        return step
    }
}

/// What the routes answer and what `counter.changed` carries.
struct CounterValue: Codable, Sendable {
    let id: String
    let value: Int64
}
