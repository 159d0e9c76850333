// HTTP: the per-request context: request id, client address, and the TCP channel for WebSocket upgrades.

import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import HTTPTypes
import Synchronization

extension HTTPField.Name {
    /// `X-Forwarded-For`, believed only from trusted proxies.
    static let forwardedFor = HTTPField.Name("X-Forwarded-For")!
    /// `x-streamer-token`.
    static let streamerToken = HTTPField.Name("x-streamer-token")!
}

/// Request context of every engine route.
public struct EngineRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The TCP channel (closed outright to drop a stuck WebSocket client).
    public let channel: any Channel
    /// Only an upgrade request's context has one (a request that is not the first of its connection never reaches a
    /// socket route with `Upgrade: websocket`: ``EngineChildChannel`` redirects it to a new connection).
    private let upgrade: UpgradeSlot?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
        self.upgrade = nil
    }

    /// The context of an upgrade request, which a socket route leaves its decision in.
    init(upgradeRequest source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
        self.upgrade = UpgradeSlot()
    }

    /// What a socket route decided for an upgrade request, read by ``EngineChildChannel`` once the router answered.
    var socketUpgrade: SocketUpgrade? {
        get { upgrade?.value.withLock { $0 } }
        nonmutating set { upgrade?.value.withLock { $0 = newValue } }
    }

    /// Takes the decision out of the context (the closures in it may hold the context: taking it breaks that cycle).
    func takeSocketUpgrade() -> SocketUpgrade? {
        upgrade?.value.withLock { value in
            defer { value = nil }
            return value
        }
    }

    /// The peer's address.
    public var remoteAddress: SocketAddress? { channel.remoteAddress }

    /// The peer's IP as text.
    var peerIP: String? { remoteAddress?.ipAddress }

    /// The engine does its own body limits per route.
    public var maxUploadSize: Int { Int.max }
}

/// Where a socket route leaves its decision for the upgrade (a context is a value; the slot is shared by its copies).
final class UpgradeSlot: Sendable {
    let value = Mutex<SocketUpgrade?>(nil)
}

/// What a socket route decided for an upgrade request.
enum SocketUpgrade: Sendable {
    /// Install handlers on the connection's event loop once the WebSocket codec is in place: an engine channel socket
    /// (``ChannelSocketHandler``), or a refusal said as a close code.
    case channel(@Sendable (any Channel) throws -> Void)
    /// Run in the connection's task with Hummingbird's WebSocket handler (plugin endpoints).
    case framework(@Sendable (WebSocketInboundStream, WebSocketOutboundWriter, Logger) async -> Void)
}
