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
    private let buffer = Mutex<[UInt8]>([])
    /// Serialises writers, so batches never interleave (the buffer lock is not held across write(2)).
    private let writing = Mutex<Void>(())

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

    /// Adds a line; writes everything now when `urgent` or when the buffer is large.
    func append(_ line: String, urgent: Bool) {
        let size = buffer.withLock { buffer in
            buffer.append(contentsOf: line.utf8)
            return buffer.count
        }
        if urgent || size >= Self.highWater { flush() }
    }

    /// Writes what is buffered.
    public func flush() {
        writing.withLock { _ in
            let pending = buffer.withLock { buffer -> [UInt8] in
                defer { buffer.removeAll(keepingCapacity: buffer.count <= Self.highWater) }
                return buffer
            }
            guard !pending.isEmpty else { return }
            pending.withUnsafeBytes { raw in
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
        var line = LogTimestamp.now()
        line += " \(event.level) \(label):"
        if let pretty { line += " " + pretty }
        line += " [\(event.source)] \(event.message)\n"
        output.append(line, urgent: event.level >= .warning)
    }

    /// The request line of ``ErrorAndLogMiddleware`` as `log(event:)` would write it (metadata `hb.request.id`, `ms`,
    /// `status`, in that sorted order), built directly. False when the logger carries other metadata (or a provider),
    /// so the caller logs it the general way.
    func accessLine(level: Logger.Level, message: String, requestID: String, status: Int, ms: String) -> Bool {
        guard metadataProvider == nil, metadata.count == 1, metadata["hb.request.id"] != nil else { return false }
        var line = LogTimestamp.now()
        line.reserveCapacity(120 + message.utf8.count)
        line += " \(level) \(label): hb.request.id=\(requestID) ms=\(ms) status=\(status) [Engine] \(message)\n"
        output.append(line, urgent: level >= .warning)
        return true
    }

    private static func pretty(_ metadata: Logger.Metadata) -> String? {
        metadata.isEmpty ? nil : metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    }
}

/// `2026-11-29T17:00:02+0000` in local time, formatted once per second.
enum LogTimestamp {
    private static let cache = Mutex<(second: time_t, text: String)>((-1, ""))

    static func now() -> String {
        var now = time(nil)
        if let cached = cache.withLock({ $0.second == now ? $0.text : nil }) { return cached }
        var parts = tm()
        localtime_r(&now, &parts)
        var bytes = [Int8](repeating: 0, count: 32)
        let count = strftime(&bytes, bytes.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
        let text = String(decoding: bytes[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        cache.withLock { $0 = (now, text) }
        return text
    }
}
