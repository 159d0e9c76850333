// Files for the engine and every plugin: POSIX calls run on the one pool for blocking work, atomic durable writes,
// HTTP dates.

import Dispatch
import Foundation
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A failed file operation: the call, the path and `errno`.
public struct FileIOError: Error, CustomStringConvertible, Sendable {
    /// The call that failed, e.g. `open`.
    public let operation: String
    /// The file it was called on.
    public let path: String
    /// `errno` after the call.
    public let code: Int32

    /// Creates an error.
    public init(operation: String, path: String, code: Int32) {
        self.operation = operation
        self.path = path
        self.code = code
    }

    public var description: String { "\(operation) \(path): \(String(cString: strerror(code)))" }

    /// True when the file or folder does not exist.
    public var isNotFound: Bool { code == ENOENT }
    /// True when the disk or the user's disk quota is full.
    public var isDiskFull: Bool { code == ENOSPC || code == EDQUOT }
}

/// The one pool for blocking work of the engine and its plugins: file calls (open, read, write, fsync,
/// rename), Redis commands, child processes. A slow disk or server never holds one of the few threads of
/// Swift's cooperative pool, and nothing blocks an event loop.
public enum BlockingIO {
    private static let queue = DispatchQueue(label: "onionrp.blocking", qos: .userInitiated, attributes: .concurrent)

    /// A serial queue whose work runs on this pool, one item at a time in the order given: for blocking work that
    /// must not overlap (one connection, one file's writes).
    public static func serialQueue(label: String) -> DispatchQueue {
        DispatchQueue(label: label, target: queue)
    }

    /// Runs `work` on a pool thread and returns its result.
    public static func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try work() }) }
        }
    }
}

/// An open file descriptor, closed when the last reference goes away.
///
/// Reads use `pread` (no shared offset), so several tasks may read one descriptor at once.
/// Writes append at the descriptor's offset and must come from one task at a time.
public final class FileDescriptor: Sendable {
    /// The descriptor.
    public let fd: Int32
    /// The path it was opened with, for messages.
    public let path: String

    private init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { _ = close(fd) }

    /// Opens an existing file for reading.
    public static func openForReading(_ path: String) throws -> FileDescriptor {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FileIOError(operation: "open", path: path, code: errno) }
        return FileDescriptor(fd: fd, path: path)
    }

    /// Creates a new file for reading and writing; fails if it exists.
    public static func create(_ path: String, mode: mode_t = 0o600) throws -> FileDescriptor {
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw FileIOError(operation: "create", path: path, code: errno) }
        return FileDescriptor(fd: fd, path: path)
    }

    /// Writes every byte of `bytes` at the current offset.
    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            var done = 0
            while done < raw.count {
                let written = systemWrite(fd, base + done, raw.count - done)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw FileIOError(operation: "write", path: path, code: errno)
                }
                done += written
            }
        }
    }

    /// Reads up to `count` bytes at `offset`; fewer only at the end of the file.
    public func read(count: Int, at offset: Int) throws -> [UInt8] {
        guard count > 0 else { return [] }
        var buffer = [UInt8](repeating: 0, count: count)
        let got: Int = try buffer.withUnsafeMutableBytes { raw in
            guard let base = raw.baseAddress else { return 0 }
            var done = 0
            while done < count {
                let n = pread(fd, base + done, count - done, off_t(offset + done))
                if n < 0 {
                    if errno == EINTR { continue }
                    throw FileIOError(operation: "read", path: path, code: errno)
                }
                if n == 0 { break }
                done += n
            }
            return done
        }
        if got < count { buffer.removeLast(count - got) }
        return buffer
    }

    /// Flushes the file's data to the disk.
    public func sync() throws {
        guard fsync(fd) == 0 else { throw FileIOError(operation: "fsync", path: path, code: errno) }
    }

    /// The file's size now.
    public func size() throws -> Int {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw FileIOError(operation: "fstat", path: path, code: errno) }
        return Int(info.st_size)
    }
}

/// `write(2)`, named apart from ``FileDescriptor/write(_:)``.
private func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
        return Glibc.write(fd, buffer, count)
    #else
        return Darwin.write(fd, buffer, count)
    #endif
}

/// Whole-file operations: durable renames, removal, atomic writes.
public enum FileOps {
    /// Renames `from` to `to` (replacing `to`), then makes the rename durable.
    public static func rename(_ from: String, to: String) throws {
        guard Foundation.rename(from, to) == 0 else { throw FileIOError(operation: "rename", path: from, code: errno) }
        syncDirectory((to as NSString).deletingLastPathComponent)
    }

    /// Removes a file; a missing file is not an error. Returns whether it existed.
    @discardableResult
    public static func remove(_ path: String) throws -> Bool {
        if unlink(path) == 0 { return true }
        if errno == ENOENT { return false }
        throw FileIOError(operation: "unlink", path: path, code: errno)
    }

    /// Makes renames and removals in `directory` durable.
    public static func syncDirectory(_ directory: String) {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        _ = close(fd)
    }

    /// Writes `bytes` to `path` so that after a crash the file holds the old or the new content,
    /// never a mix: a temporary file beside it, fsync, rename, fsync of the folder.
    /// - Parameter mode: Permissions of the new file (0600 for secrets: the file is never readable by others, not even briefly).
    public static func atomicWrite(_ bytes: [UInt8], to path: String, mode: mode_t = 0o644) throws {
        // A name of its own per call: two writers of one file never share (or delete) each other's temporary file.
        let temporary = path + ".tmp-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        let file = try FileDescriptor.create(temporary, mode: mode)
        do {
            try file.write(bytes)
            try file.sync()
            try rename(temporary, to: path)
        } catch {
            _ = try? remove(temporary)
            throw error
        }
    }

    /// Size and modification time of `path`, or nil when it does not exist.
    public static func status(_ path: String) throws -> (size: Int, modified: Date)? {
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT { return nil }
            throw FileIOError(operation: "stat", path: path, code: errno)
        }
        let seconds = Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
        return (Int(info.st_size), Date(timeIntervalSince1970: seconds))
    }
}

/// HTTP dates (RFC 9110 IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`).
public enum HTTPDate {
    private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// Formats `date` (to the second).
    public static func format(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(days[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(months[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) GMT"
    }

    /// Parses an IMF-fixdate; nil for anything else (the header is then ignored, as RFC 9110 says).
    public static func parse(_ text: String) -> Date? {
        let fields = text.split(separator: " ")
        guard fields.count == 6, fields[5] == "GMT", let day = Int32(fields[1]), let month = months.firstIndex(of: String(fields[2])),
            let year = Int32(fields[3])
        else { return nil }
        let clock = fields[4].split(separator: ":")
        guard clock.count == 3, let hour = Int32(clock[0]), let minute = Int32(clock[1]), let second = Int32(clock[2]) else { return nil }
        // Bounds first: `year - 1900` on an Int32 near its limit overflowed and trapped (found by the HTTP fuzz test).
        guard (1...9999).contains(year), (1...31).contains(day), (0...23).contains(hour), (0...59).contains(minute),
            (0...60).contains(second)
        else { return nil }
        var parts = tm()
        parts.tm_year = year - 1900
        parts.tm_mon = Int32(month)
        parts.tm_mday = day
        parts.tm_hour = hour
        parts.tm_min = minute
        parts.tm_sec = second
        let seconds = timegm(&parts)
        return seconds == -1 ? nil : Date(timeIntervalSince1970: TimeInterval(seconds))
    }
}
