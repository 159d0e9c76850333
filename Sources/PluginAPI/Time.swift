// Time for the engine and every plugin: durations as numbers, the wall clock in the units the API uses, and the
// token bucket behind every rate limit.

import Foundation

extension Duration {
    /// The duration in seconds, as a Double (`.milliseconds(1500)` is 1.5).
    public var inSeconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }

    /// The duration in whole milliseconds, rounded down.
    public var wholeMilliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}

/// The wall clock, as the API's timestamps (`server_ts`, `updated_at`) and tokens' expiry use it.
/// Durations and deadlines use `ContinuousClock`, which never jumps.
public enum WallClock {
    /// Milliseconds since 1970-01-01 UTC.
    public static var nowMilliseconds: Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) }
    /// Whole seconds since 1970-01-01 UTC.
    public static var nowSeconds: Int64 { Int64(Date().timeIntervalSince1970.rounded(.down)) }
}

/// A token bucket: `burst` tokens, refilled at `perSecond`; each admitted event takes one.
///
/// A value type: keep it inside the lock that guards the rest of its state.
public struct TokenBucket: Sendable, Equatable {
    /// Most tokens held.
    public let burst: Double
    /// Tokens added per second.
    public let perSecond: Double
    /// Tokens now (as of `refilledAt`).
    public private(set) var tokens: Double
    /// When `tokens` was last brought up to date.
    public private(set) var refilledAt: ContinuousClock.Instant

    /// A full bucket.
    public init(burst: Double, perSecond: Double, now: ContinuousClock.Instant = .now) {
        self.burst = burst
        self.perSecond = perSecond
        self.tokens = burst
        self.refilledAt = now
    }

    /// Takes one token if there is one.
    /// - Returns: nil when admitted, else the seconds until a token is back.
    public mutating func take(now: ContinuousClock.Instant = .now) -> Double? {
        tokens = min(burst, tokens + max(0, (now - refilledAt).inSeconds) * perSecond)
        refilledAt = now
        if tokens >= 1 {
            tokens -= 1
            return nil
        }
        return perSecond > 0 ? (1 - tokens) / perSecond : .infinity
    }
}
