// HTTP: the per-request context: request id, client address, and the TCP channel for WebSocket upgrades.

import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import HTTPTypes

extension HTTPField.Name {
    /// `X-Forwarded-For`, believed only from trusted proxies.
    static let forwardedFor = HTTPField.Name("X-Forwarded-For")!
}

/// Request context of every engine route.
public struct EngineRequestContext: RequestContext, WebSocketRequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let webSocket: WebSocketHandlerReference<EngineRequestContext>
    /// The TCP channel (closed outright to drop a stuck WebSocket client).
    public let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.webSocket = .init()
        self.channel = source.channel
    }

    /// The peer's address.
    public var remoteAddress: SocketAddress? { channel.remoteAddress }

    /// The peer's IP as text.
    var peerIP: String? { remoteAddress?.ipAddress }

    /// The engine does its own body limits per route.
    public var maxUploadSize: Int { Int.max }
}
