// Store: crash-safe file writes (temporary file, fsync, rename, fsync of the folder).

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Errors of ``AtomicFile``.
struct AtomicFileError: Error, CustomStringConvertible {
    let path: String
    let operation: String
    let code: Int32
    var description: String { "\(operation) \(path): \(String(cString: strerror(code)))" }
}

/// Writes files so that after a crash the file holds either the old or the new content, never a mix.
enum AtomicFile {
    /// Writes `bytes` to `url` atomically and durably. Blocking: call it off the event loops.
    static func write(_ bytes: [UInt8], to url: URL) throws {
        let path = url.path
        let temporary = path + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw AtomicFileError(path: temporary, operation: "open", code: errno) }
        var written = 0
        let result: Int32 = bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return 0 }
            while written < raw.count {
                let n = Glibc.write(fd, base + written, raw.count - written)
                if n < 0 {
                    if errno == EINTR { continue }
                    return errno
                }
                written += n
            }
            return 0
        }
        if result != 0 {
            close(fd)
            unlink(temporary)
            throw AtomicFileError(path: temporary, operation: "write", code: result)
        }
        if fsync(fd) != 0 {
            let code = errno
            close(fd)
            unlink(temporary)
            throw AtomicFileError(path: temporary, operation: "fsync", code: code)
        }
        close(fd)
        if rename(temporary, path) != 0 {
            let code = errno
            unlink(temporary)
            throw AtomicFileError(path: path, operation: "rename", code: code)
        }
        syncDirectory(url.deletingLastPathComponent())
    }

    /// Makes a rename or unlink in `directory` durable.
    static func syncDirectory(_ directory: URL) {
        let fd = open(directory.path, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }
}
