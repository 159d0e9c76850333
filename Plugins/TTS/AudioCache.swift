// TTS: the folder of rendered WAV files, named by the SHA-256 of what produced them.

import Foundation
import PluginAPI

/// What the header of a WAV file says.
struct WAVInfo: Sendable, Equatable {
    /// Channels.
    let channels: Int
    /// Samples per second.
    let sampleRate: Int
    /// Bits per sample.
    let bitsPerSample: Int
    /// Bytes of sample data.
    let dataBytes: Int

    /// Length of the audio.
    var duration: Duration {
        let bytesPerSecond = sampleRate * channels * max(1, bitsPerSample / 8)
        guard bytesPerSecond > 0 else { return .zero }
        return .milliseconds(Int64(dataBytes) * 1000 / Int64(bytesPerSecond))
    }

    /// Reads the RIFF header of the file at `url`; nil when it is not a PCM WAV file.
    static func read(_ url: URL) -> WAVInfo? {
        guard let handle = try? FileHandle(forReadingFrom: url) else { return nil }
        defer { try? handle.close() }
        guard let head = try? handle.read(upToCount: 4096), let size = try? handle.seekToEnd() else { return nil }
        return parse(Array(head), fileSize: Int(size))
    }

    /// Parses a RIFF/WAVE header from the first bytes of a file of `fileSize` bytes.
    static func parse(_ bytes: [UInt8], fileSize: Int) -> WAVInfo? {
        func u32(_ at: Int) -> Int? {
            guard at >= 0, at + 4 <= bytes.count else { return nil }
            return Int(bytes[at]) | Int(bytes[at + 1]) << 8 | Int(bytes[at + 2]) << 16 | Int(bytes[at + 3]) << 24
        }
        func u16(_ at: Int) -> Int? {
            guard at >= 0, at + 2 <= bytes.count else { return nil }
            return Int(bytes[at]) | Int(bytes[at + 1]) << 8
        }
        guard bytes.count >= 12, Array(bytes[0..<4]) == Array("RIFF".utf8), Array(bytes[8..<12]) == Array("WAVE".utf8) else { return nil }
        var offset = 12
        var format: (channels: Int, rate: Int, bits: Int)?
        while offset + 8 <= bytes.count {
            let id = String(decoding: bytes[offset..<(offset + 4)], as: UTF8.self)
            guard let length = u32(offset + 4) else { return nil }
            let body = offset + 8
            if id == "fmt " {
                guard let audioFormat = u16(body), let channels = u16(body + 2), let rate = u32(body + 4), let bits = u16(body + 14),
                    audioFormat == 1 || audioFormat == 0xFFFE, channels > 0, rate > 0, bits > 0
                else { return nil }
                format = (channels, rate, bits)
            } else if id == "data" {
                guard let format else { return nil }
                // Streamed WAV files carry 0 or 0xFFFFFFFF; the file's size then tells.
                let available = max(0, fileSize - body)
                let dataBytes = (length == 0 || length == 0xFFFF_FFFF) ? available : min(length, available)
                return WAVInfo(channels: format.channels, sampleRate: format.rate, bitsPerSample: format.bits, dataBytes: dataBytes)
            }
            offset = body + length + (length & 1)
        }
        return nil
    }
}

/// A rendered file in the cache.
struct CachedAudio: Sendable {
    /// The SHA-256 hex that names it.
    let hash: String
    /// Its header.
    let info: WAVInfo
    /// Whether it was already there (or being rendered by another request) rather than rendered for this call.
    var hit: Bool
}

/// Why a render failed.
struct RenderFailure: Error, Sendable, CustomStringConvertible {
    /// What went wrong, for logs and the 503 message.
    let message: String
    var description: String { message }
}

/// The cache folder: `<data>/plugins/tts/cache/<sha256>.wav`.
///
/// Files are written to a temporary name and renamed into place, so a reader never sees half a file.
/// The same hash is rendered once even when requests for it arrive together. Past `maxBytes` the
/// oldest files (by modification time, which a cache hit does not change) are removed, except the
/// ones still queued.
actor AudioCache {
    /// The folder.
    let directory: URL
    /// Size limit of the folder.
    let maxBytes: Int
    private var inflight: [String: Task<WAVInfo, any Error>] = [:]

    /// A temporary file older than this is a leftover of a crash. A younger one may be a render in progress: of
    /// another engine sharing the data folder (several engines on one volume), whose rename would fail if its file
    /// went. Longer than the longest render (`render_timeout_seconds` is at most 600).
    static let staleTemporaryAge: TimeInterval = 900

    /// Creates the folder when needed and removes temporary files a crash left.
    init(directory: URL, maxBytes: Int) throws {
        self.directory = directory
        self.maxBytes = maxBytes
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        Self.removeStaleTemporaryFiles(in: directory)
    }

    /// Removes `*.tmp` files older than ``staleTemporaryAge``.
    /// - Returns: How many went.
    @discardableResult
    static func removeStaleTemporaryFiles(in directory: URL, now: Date = Date()) -> Int {
        let key: URLResourceKey = .contentModificationDateKey
        let urls = (try? FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: [key])) ?? []
        var removed = 0
        for url in urls where url.lastPathComponent.hasSuffix(".tmp") {
            let modified = (try? url.resourceValues(forKeys: [key]))?.contentModificationDate ?? .distantPast
            guard now.timeIntervalSince(modified) > staleTemporaryAge else { continue }
            if (try? FileManager.default.removeItem(at: url)) != nil { removed += 1 }
        }
        return removed
    }

    /// True for a string that can name a cached file: 64 lower-case hex digits.
    static func isHash(_ text: some StringProtocol) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    /// Where the file of `hash` lives.
    nonisolated func url(_ hash: String) -> URL { directory.appendingPathComponent(hash + ".wav") }

    /// A fresh temporary name next to the final one.
    nonisolated func temporaryURL(_ hash: String, suffix: String) -> URL {
        directory.appendingPathComponent("\(hash).\(UUID().uuidString.prefix(8)).\(suffix).tmp")
    }

    /// The cached file of `hash`, rendering it with `render` (which must write `url(hash)`) when it is missing.
    func obtain(_ hash: String, render: @escaping @Sendable () async throws -> Void) async throws -> CachedAudio {
        if let info = WAVInfo.read(url(hash)), info.dataBytes > 0 { return CachedAudio(hash: hash, info: info, hit: true) }
        if let running = inflight[hash] { return CachedAudio(hash: hash, info: try await running.value, hit: true) }
        let target = url(hash)
        let task = Task<WAVInfo, any Error> {
            try await render()
            guard let info = WAVInfo.read(target) else { throw RenderFailure(message: "the rendered file is not a WAV file") }
            return info
        }
        inflight[hash] = task
        defer { inflight[hash] = nil }
        return CachedAudio(hash: hash, info: try await task.value, hit: false)
    }

    /// Removes the oldest files until the folder fits `maxBytes`, never those in `protected`.
    /// - Returns: Files removed and the folder's size afterwards.
    func evict(protecting protected: Set<String>) -> (removed: Int, bytes: Int) {
        Self.removeStaleTemporaryFiles(in: directory)  // a crash's leftovers, on an engine that runs for long
        let keys: [URLResourceKey] = [.fileSizeKey, .contentModificationDateKey]
        let urls = (try? FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: keys)) ?? []
        var files: [(hash: String, url: URL, size: Int, modified: Date)] = []
        for url in urls where url.pathExtension == "wav" {
            let hash = url.deletingPathExtension().lastPathComponent
            guard Self.isHash(hash), let values = try? url.resourceValues(forKeys: Set(keys)) else { continue }
            files.append((hash, url, values.fileSize ?? 0, values.contentModificationDate ?? .distantPast))
        }
        var total = files.reduce(0) { $0 + $1.size }
        var removed = 0
        guard total > maxBytes else { return (0, total) }
        for file in files.sorted(by: { $0.modified < $1.modified }) where total > maxBytes {
            if protected.contains(file.hash) || inflight[file.hash] != nil { continue }
            if (try? FileManager.default.removeItem(at: file.url)) != nil {
                total -= file.size
                removed += 1
            }
        }
        return (removed, total)
    }
}
