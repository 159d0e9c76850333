// The bus: messages between the engines that share one store, so that a plugin can keep state in step on every
// engine (each engine then tells its own sockets) or reach a socket connected to another engine.

/// Messages between engines. On the redis backend every engine sharing the Redis is reached (Redis pub/sub: at most
/// once, in the order Redis received them, nothing kept for an engine that is not subscribed at that moment); on the
/// embedded backend there is one engine and messages stay in the process.
///
/// Topics are the plugin's own: the `tts` plugin's `queue` topic reaches the `tts` plugin of every engine, never
/// another plugin. A publisher receives its own messages too (subscribers see one order, the same on every engine).
public protocol EngineBus: Sendable {
    /// This engine's id: random, unique per process run.
    var engineID: String { get }
    /// Sends `message` to the subscribers of `topic` on every engine, this one included.
    /// - Throws: ``StoreError/unavailable(_:)`` when the store cannot be reached.
    func publish(_ topic: String, _ message: [UInt8]) async throws
    /// Calls `handler` with every message on `topic` and the id of the engine that sent it, until the subscription
    /// is cancelled. A dropped connection to the store is re-made by the engine (messages sent meanwhile are lost).
    func subscribe(_ topic: String, _ handler: @escaping @Sendable (_ message: [UInt8], _ from: String) -> Void) async throws
        -> any BusSubscription
}

/// A live subscription of the bus; cancel it to stop receiving.
public protocol BusSubscription: Sendable {
    /// Stops the subscription.
    func cancel()
}
