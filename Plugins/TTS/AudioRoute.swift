// TTS: `GET /api/tts/audio/<sha256>.wav`, streamed from the cache with ETag, conditional and range requests.

import Foundation
import PluginAPI

/// Serves rendered files. The name is the SHA-256 of everything that produced the audio, so a name
/// always means the same bytes: the ETag is the hash and clients may cache it for long.
enum AudioRoute {
    /// Answers a GET or HEAD for `{file}` (conditional and range requests as PluginAPI's ``FileResponse`` does).
    /// - Parameter missing: Called with the hash when the file is not in the cache; true when it made the file.
    static func serve(
        _ request: PluginRequest, cache: AudioCache, missing: @Sendable (String) async -> Bool = { _ in false }
    ) async throws -> PluginResponse {
        let file = try request.parameter("file")
        let hash = String(file.dropLast(4))
        guard file.hasSuffix(".wav"), AudioCache.isHash(hash) else {
            throw PluginError.notFound("no audio called '\(file.prefix(80))'")
        }
        let path = cache.url(hash).path
        // Opened before answering: a later eviction unlinks the name, not the open file.
        let open = { @Sendable () async -> (FileDescriptor, Int)? in
            try? await BlockingIO.run { () -> (FileDescriptor, Int) in
                let descriptor = try FileDescriptor.openForReading(path)
                return (descriptor, try descriptor.size())
            }
        }
        var opened = await open()
        if opened == nil, await missing(hash) { opened = await open() }
        guard let (descriptor, size) = opened else {
            throw PluginError.notFound("no audio called '\(file)' (it may have been evicted from the cache)")
        }
        return try FileResponse.serve(
            request, file: descriptor, size: size, etag: "\"\(hash)\"",
            headers: [
                "content-type": "audio/wav",
                "cache-control": "private, max-age=86400, immutable",
            ])
    }
}
