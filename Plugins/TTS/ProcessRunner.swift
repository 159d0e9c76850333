// TTS: runs a command line (an argument vector, never a shell) without blocking the cooperative thread pool,
// bounded by a timeout that kills the process.

import Foundation
import Synchronization

/// How a process ended.
struct ProcessOutcome: Sendable {
    /// Exit status, or the signal number when `signaled`.
    let status: Int32
    /// True when a signal ended it.
    let signaled: Bool
    /// True when the timeout killed it.
    let timedOut: Bool
    /// Wall time from start to exit.
    let elapsed: Duration
    /// The first bytes it wrote to standard error.
    let standardError: String

    /// True for exit status 0 without a timeout or signal.
    var succeeded: Bool { !timedOut && !signaled && status == 0 }
}

/// The process ids started and not yet exited, so that shutdown can end them.
final class RunningProcesses: Sendable {
    private let pids = Mutex<Set<Int32>>([])

    func add(_ pid: Int32) { _ = pids.withLock { $0.insert(pid) } }
    func remove(_ pid: Int32) { _ = pids.withLock { $0.remove(pid) } }

    /// Sends SIGKILL to every process still running.
    func killAll() {
        for pid in pids.withLock({ $0 }) where pid > 0 { kill(pid, SIGKILL) }
    }
}

/// Runs executables with `Process`: waits through `terminationHandler` and a continuation (no thread blocks
/// in `waitUntilExit`), and kills the process (SIGTERM, then SIGKILL a second later) when the timeout passes.
enum ProcessRunner {
    /// Most bytes of standard error kept.
    static let standardErrorLimit = 4096

    /// What the watchdog and the termination handler share.
    private final class Shared: Sendable {
        struct State {
            var exited = false
            var timedOut = false
            var watchdog: Task<Void, Never>?
        }
        let state = Mutex(State())

        func withLock<T>(_ body: (inout State) -> T) -> T { state.withLock { body(&$0) } }
    }

    /// Runs `executable` with `arguments` and waits for it to exit.
    /// - Parameters:
    ///   - executable: Absolute path of the program.
    ///   - arguments: The argument vector (no shell is involved).
    ///   - timeout: Longest run time; past it the process is killed and the outcome says `timedOut`.
    ///   - standardErrorFile: A scratch file receiving standard error (read back, then deleted); nil discards it.
    ///   - standardOutputFile: An existing file receiving standard output (the caller reads it); nil discards it.
    ///   - registry: Where the running pid is recorded.
    /// - Throws: When the process cannot be started.
    static func run(
        executable: String, arguments: [String], timeout: Duration, standardErrorFile: URL?,
        standardOutputFile: URL? = nil, registry: RunningProcesses
    ) async throws -> ProcessOutcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        var outputHandle: FileHandle?
        if let standardOutputFile {
            let handle = try FileHandle(forWritingTo: standardOutputFile)
            outputHandle = handle
            process.standardOutput = handle
        } else {
            process.standardOutput = FileHandle.nullDevice
        }
        var errorHandle: FileHandle?
        if let standardErrorFile {
            guard FileManager.default.createFile(atPath: standardErrorFile.path, contents: nil) else {
                throw CocoaError(.fileWriteUnknown)
            }
            let handle = try FileHandle(forWritingTo: standardErrorFile)
            errorHandle = handle
            process.standardError = handle
        } else {
            process.standardError = FileHandle.nullDevice
        }
        defer {
            try? outputHandle?.close()
            try? errorHandle?.close()
            if let standardErrorFile { try? FileManager.default.removeItem(at: standardErrorFile) }
        }

        let shared = Shared()
        let clock = ContinuousClock()
        let started = clock.now
        let (status, reason, pid): (Int32, Process.TerminationReason, Int32) = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { finished in
                let watchdog = shared.withLock { state -> Task<Void, Never>? in
                    state.exited = true
                    return state.watchdog
                }
                watchdog?.cancel()
                continuation.resume(returning: (finished.terminationStatus, finished.terminationReason, finished.processIdentifier))
            }
            do {
                try process.run()
            } catch {
                process.terminationHandler = nil
                continuation.resume(throwing: error)
                return
            }
            let pid = process.processIdentifier
            registry.add(pid)
            let watchdog = Task {
                do { try await Task.sleep(for: timeout) } catch { return }
                let kill1 = shared.withLock { state -> Bool in
                    if state.exited { return false }
                    state.timedOut = true
                    return true
                }
                guard kill1 else { return }
                kill(pid, SIGTERM)
                do { try await Task.sleep(for: .seconds(1)) } catch { return }
                if !shared.withLock({ $0.exited }) { kill(pid, SIGKILL) }
            }
            let alreadyExited = shared.withLock { state -> Bool in
                state.watchdog = watchdog
                return state.exited
            }
            if alreadyExited { watchdog.cancel() }
        }
        registry.remove(pid)
        let elapsed = clock.now - started

        var standardError = ""
        if let standardErrorFile, let handle = try? FileHandle(forReadingFrom: standardErrorFile) {
            let data = (try? handle.read(upToCount: standardErrorLimit)) ?? nil
            try? handle.close()
            standardError = String(decoding: data ?? Data(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        return ProcessOutcome(
            status: status, signaled: reason == .uncaughtSignal, timedOut: shared.withLock { $0.timedOut },
            elapsed: elapsed, standardError: standardError)
    }
}
