// The engine's pollers: work repeated on an interval, as services of the ServiceGroup.

import ServiceLifecycle

/// Runs `work` every `interval` until graceful shutdown (the one way the engine repeats work on a timer:
/// session expiry, stuck writers, the embedded store's snapshot, memory trimming).
struct PeriodicService: Service {
    let name: String
    let interval: Duration
    let work: @Sendable () async -> Void

    init(_ name: String, every interval: Duration, work: @escaping @Sendable () async -> Void) {
        self.name = name
        self.interval = interval
        self.work = work
    }

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do { try await Task.sleep(for: interval) } catch { return }
                await work()
            }
        }
    }
}
