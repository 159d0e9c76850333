import Foundation
@testable import TTS
import XCTest

/// The cache folder's housekeeping.
final class AudioCacheTests: XCTestCase {
    /// Regression: start-up removed every `*.tmp` file, also the one another engine sharing the data folder was
    /// rendering into, whose rename into place then failed (a 503 in server mode).
    func testOnlyStaleTemporaryFilesAreRemoved() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tts-cache-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let old = Date().addingTimeInterval(-(AudioCache.staleTemporaryAge + 60))
        let fresh = folder.appendingPathComponent("\(String(repeating: "a", count: 64)).1a2b3c4d.wav.tmp")
        let stale = folder.appendingPathComponent("\(String(repeating: "b", count: 64)).5e6f7a8b.wav.tmp")
        let audio = folder.appendingPathComponent("\(String(repeating: "c", count: 64)).wav")
        for url in [fresh, stale, audio] { XCTAssertTrue(FileManager.default.createFile(atPath: url.path, contents: Data("x".utf8))) }
        for url in [stale, audio] { try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: url.path) }

        let cache = try AudioCache(directory: folder, maxBytes: 1 << 20)
        XCTAssertTrue(FileManager.default.fileExists(atPath: fresh.path), "a render in progress lost its file")
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale.path), "a crash's leftover stayed")
        XCTAssertTrue(FileManager.default.fileExists(atPath: audio.path))

        // Evicting sweeps leftovers too (an engine that runs for weeks).
        try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: fresh.path)
        _ = await cache.evict(protecting: [])
        XCTAssertFalse(FileManager.default.fileExists(atPath: fresh.path))
    }
}
