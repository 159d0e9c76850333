// Logging: the engine's log lines on standard error, written in batches instead of one write(2) per line.
//
// swift-log's StreamLogHandler flushes standard error after every line: one system call per request at `info`, a
// few percent of a small request's cost. Here lines collect in memory and go out together every 50 ms, when 64 KiB
// wait, at once for `warning` and above (with everything before them), and when the process exits.

import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The buffer every ``BufferedLogHandler`` appends to; a background thread writes it out.
public final class BufferedLogOutput: Sendable {
    /// The process's one output to standard error.
    public static let standardError = BufferedLogOutput(fd: 2)

    /// How long a line may wait.
    static let interval: useconds_t = 50_000
    /// A buffer this large is written at once.
    static let highWater = 64 << 10

    private let fd: Int32
    /// Lines waiting, and the time stamp of the current second (formatted once per second, under the same lock).
    private let pending = Mutex<Pending>(Pending())
    /// Serialises writers, so batches never interleave (the buffer lock is not held across write(2)).
    private let writing = Mutex<Void>(())

    struct Pending {
        var bytes: [UInt8] = []
        var second: time_t = -1
        var stamp: [UInt8] = []
    }

    private init(fd: Int32) {
        self.fd = fd
        let thread = Thread { [self] in
            while true {
                usleep(Self.interval)
                flush()
            }
        }
        thread.name = "log-writer"
        thread.start()
        atexit { BufferedLogOutput.standardError.flush() }
    }

    /// Adds a line that starts with the current time (`2026-11-29T17:00:02+0000`); `write` appends the rest, newline
    /// included. Writes everything now when `urgent` or when the buffer is large.
    func appendStamped(urgent: Bool, _ write: (inout [UInt8]) -> Void) {
        let now = time(nil)
        let size = pending.withLock { pending in
            if pending.second != now {
                pending.stamp = LogTimestamp.format(now)
                pending.second = now
            }
            pending.bytes.append(contentsOf: pending.stamp)
            write(&pending.bytes)
            return pending.bytes.count
        }
        if urgent || size >= Self.highWater { flush() }
    }

    /// Writes what is buffered.
    public func flush() {
        writing.withLock { _ in
            let batch = pending.withLock { pending -> [UInt8] in
                defer { pending.bytes.removeAll(keepingCapacity: pending.bytes.count <= Self.highWater) }
                return pending.bytes
            }
            guard !batch.isEmpty else { return }
            batch.withUnsafeBytes { raw in
                guard let base = raw.baseAddress else { return }
                var offset = 0
                while offset < raw.count {
                    let written = write(fd, base + offset, raw.count - offset)
                    if written > 0 {
                        offset += written
                    } else if written < 0 && errno == EINTR {
                        continue
                    } else {
                        return  // standard error is gone: nothing sensible to do with a log line
                    }
                }
            }
        }
    }
}

/// A log handler with StreamLogHandler's line format (`<time> <level> <label>: <metadata> [<source>] <message>`),
/// written through ``BufferedLogOutput``.
public struct BufferedLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    /// Formatted only when a line is logged: Hummingbird sets a request id on every request's logger.
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let output: BufferedLogOutput

    public init(
        label: String, output: BufferedLogOutput = .standardError, metadataProvider: Logger.MetadataProvider? = LoggingSystem.metadataProvider
    ) {
        self.label = label
        self.output = output
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let provided = metadataProvider?.get(), !provided.isEmpty { all.merge(provided) { $1 } }
        if let own = event.metadata, !own.isEmpty { all.merge(own) { $1 } }
        let pretty = Self.pretty(all)
        var line = " \(event.level) \(label):"
        if let pretty { line += " " + pretty }
        line += " [\(event.source)] \(event.message)\n"
        output.appendStamped(urgent: event.level >= .warning) { $0.append(contentsOf: line.utf8) }
    }

    /// The writer of ``ErrorAndLogMiddleware``'s request lines, when a request's logger carries nothing but its
    /// request id (no metadata of its own, no provider); nil otherwise, and the lines are logged the general way.
    var accessLog: AccessLog? {
        guard metadata.isEmpty, metadataProvider == nil else { return nil }
        return AccessLog(label: label, output: output)
    }

    private static func pretty(_ metadata: Logger.Metadata) -> String? {
        metadata.isEmpty ? nil : metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    }
}

/// `2026-11-29T17:00:02+0000` in local time (``BufferedLogOutput`` keeps the current second's).
enum LogTimestamp {
    static func format(_ time: time_t) -> [UInt8] {
        var time = time
        var parts = tm()
        localtime_r(&time, &parts)
        var bytes = [Int8](repeating: 0, count: 32)
        let count = strftime(&bytes, bytes.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
        return bytes[0..<count].map { UInt8(bitPattern: $0) }
    }
}

/// Writes a request line as ``BufferedLogHandler/log(event:)`` would with the metadata `hb.request.id`, `ms` and
/// `status` (in that sorted order), straight into the output buffer: no metadata dictionary, no intermediate strings.
/// A line per request is the engine's most frequent log call.
struct AccessLog: Sendable {
    let label: String
    let output: BufferedLogOutput

    func write(level: Logger.Level, method: String, path: String, status: Int, requestID: String, elapsed: Duration) {
        output.appendStamped(urgent: level >= .warning) { line in
            line.append(32)
            line.append(contentsOf: level.rawValue.utf8)
            line.append(32)
            line.append(contentsOf: label.utf8)
            line.append(contentsOf: ": hb.request.id=".utf8)
            line.append(contentsOf: requestID.utf8)
            line.append(contentsOf: " ms=".utf8)
            Self.appendMilliseconds(elapsed, to: &line)
            line.append(contentsOf: " status=".utf8)
            Self.appendDecimal(status, to: &line)
            line.append(contentsOf: " [Engine] ".utf8)
            line.append(contentsOf: method.utf8)
            line.append(32)
            line.append(contentsOf: path.utf8)
            line.append(32)
            Self.appendDecimal(status, to: &line)
            line.append(10)
        }
    }

    /// `elapsed` in milliseconds with two decimals ("0.42").
    static func appendMilliseconds(_ elapsed: Duration, to line: inout [UInt8]) {
        let hundredths = max(0, elapsed.components.seconds * 100_000 + elapsed.components.attoseconds / 10_000_000_000_000)
        appendDecimal(Int(clamping: hundredths / 100), to: &line)
        line.append(46)
        let fraction = Int(hundredths % 100)
        line.append(UInt8(48 + fraction / 10))
        line.append(UInt8(48 + fraction % 10))
    }

    static func appendDecimal(_ value: Int, to line: inout [UInt8]) {
        if value < 0 { line.append(45) }
        let magnitude = value.magnitude
        var divisor: UInt = 1
        while magnitude / divisor >= 10 { divisor *= 10 }
        repeat {
            line.append(UInt8(48 + (magnitude / divisor) % 10))
            divisor /= 10
        } while divisor > 0
    }

}
