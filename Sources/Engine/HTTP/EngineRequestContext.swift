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
public struct EngineRequestContext: RequestContext, WebSocketRequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The TCP channel (closed outright to drop a stuck WebSocket client).
    public let channel: any Channel
    private let upgrade: UpgradeReference

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
        self.upgrade = UpgradeReference()
    }

    /// The WebSocket handler slot hummingbird-websocket fills when a socket route matches.
    ///
    /// That slot keeps a copy of this context, which keeps the slot: a reference cycle that held every
    /// upgraded connection's whole NIO channel (about 5 KB) forever, refused sockets included. The slot
    /// is made on first use (plain HTTP requests never pay for it) and dropped when the TCP connection
    /// closes, whichever way the upgrade went, which breaks the cycle.
    public var webSocket: WebSocketHandlerReference<EngineRequestContext> { upgrade.reference(closingWith: channel) }

    /// What the socket admission decided in `shouldUpgrade`, read back in `onUpgrade` (a connection upgrades once).
    var upgradeOutcome: (any Sendable)? {
        get { upgrade.outcome.withLock { $0 } }
        nonmutating set { upgrade.outcome.withLock { $0 = newValue } }
    }

    /// The peer's address.
    public var remoteAddress: SocketAddress? { channel.remoteAddress }

    /// The peer's IP as text.
    var peerIP: String? { remoteAddress?.ipAddress }

    /// The engine does its own body limits per route.
    public var maxUploadSize: Int { Int.max }
}

/// Holds a context's WebSocket handler slot until its connection closes (see ``EngineRequestContext/webSocket``).
final class UpgradeReference: Sendable {
    private let slot = Mutex<WebSocketHandlerReference<EngineRequestContext>?>(nil)
    /// The admission decision of a socket route (see ``EngineRequestContext/upgradeOutcome``).
    let outcome = Mutex<(any Sendable)?>(nil)

    func reference(closingWith channel: any Channel) -> WebSocketHandlerReference<EngineRequestContext> {
        let (reference, created) = slot.withLock { slot -> (WebSocketHandlerReference<EngineRequestContext>, Bool) in
            if let existing = slot { return (existing, false) }
            let made = WebSocketHandlerReference<EngineRequestContext>()
            slot = made
            return (made, true)
        }
        if created {
            channel.closeFuture.whenComplete { [weak self] _ in self?.slot.withLock { $0 = nil } }
        }
        return reference
    }
}
