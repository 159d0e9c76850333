// Sessions: closes the sockets of moderator sessions that ended by themselves (idle TTL).

import Foundation
import Logging
import ServiceLifecycle

/// A revoked session's sockets close at once (``ModeratorSessionStore/whenRevoked(_:)``); one that
/// expires has no such moment, so its sockets are checked periodically (``PeriodicService``) and closed with 4401.
struct SessionSweep: Sendable {
    let hub: ChannelHub
    let sessions: ModeratorSessionStore
    let logger: Logger

    /// Checks each open session once; a store outage leaves sockets open (the next sweep retries).
    func sweep() async {
        for id in hub.openSessionIDs {
            do {
                if try await !sessions.isAlive(id: id) {
                    logger.info("moderator session expired; closing its sockets", metadata: ["session": "\(id)"])
                    hub.closeSession(id, reason: "session expired")
                }
            } catch {
                return
            }
        }
    }
}
