// The example plugin: one HTTP route and one WebSocket event handler, configured from overlay.yaml.

import Foundation
import PluginAPI

/// The one symbol the engine looks up. It reports the PluginAPI version this file was compiled against.
@_cdecl("onionrp_plugin_entry")
public func onionrpPluginEntry(_ host: UInt32, _ built: UnsafeMutablePointer<UInt32>?) -> UnsafeMutableRawPointer? {
    PluginExport.entry(HelloPlugin.self, hostVersion: host, builtVersion: built)
}

/// The plugin's `config:` section in overlay.yaml. Unknown keys and wrong types are refused with their line.
struct HelloConfiguration: DefaultedConfiguration {
    /// The word the route answers with.
    var greeting: String = "hello"
    /// Where the route lives.
    var route: String = "/api/hello"

    init() {}
}

final class HelloPlugin: OverlayPlugin {
    static let name = "hello"
    static let version = "1.0.0"
    static let summary = "Example: GET a greeting, answer hello.ping on the overlay channel"

    let configuration: HelloConfiguration
    let context: PluginContext
    let greeted: any MetricCounter

    init(configuration: HelloConfiguration, context: PluginContext) throws {
        guard !configuration.greeting.isEmpty else {
            throw PluginError.badRequest("greeting must not be empty")
        }
        self.configuration = configuration
        self.context = context
        self.greeted = context.metrics.counter("hello_greetings_total", labels: [])
    }

    func setUp(_ registrar: PluginRegistrar) async throws {
        // GET <route>?name=... : anyone may call it.
        registrar.route(.get, configuration.route, access: .public, summary: "a greeting") { request in
            struct Greeting: Encodable {
                let greeting: String
                let name: String
                let caller: String
            }
            let name = request.queryValue("name") ?? "world"
            guard name.count <= 64 else { throw PluginError.invalidField("name", "at most 64 characters") }
            self.greeted.increment()
            return try .json(Greeting(greeting: self.configuration.greeting, name: name, caller: request.caller.role))
        }

        // {"type":"hello.ping","text":"..."} from an overlay: answer that connection, tell the moderators.
        registrar.on("hello.ping", channels: [.overlay]) { event, connection in
            struct Ping: Decodable { let text: String? }
            struct Pong: Encodable {
                let greeting: String
                let text: String
                let connection: String
            }
            let ping = try event.decode(Ping.self)
            let pong = Pong(greeting: self.configuration.greeting, text: ping.text ?? "", connection: connection.id)
            connection.send(try SocketMessage.make(type: "hello.pong", payload: pong))
            self.context.sockets.send(try SocketMessage.make(type: "hello.seen", payload: pong), to: .channel(.moderator))
            self.context.logger.info("hello.ping answered", ["connection": connection.id])
        }
    }
}
