// Media: uploads of images, video and audio, checked by their bytes, stored once by content hash,
// listed and deleted by moderators, and served to overlays with ranges and caching.

import Foundation
import PluginAPI

@_cdecl("onionrp_plugin_entry")
public func onionrpPluginEntry(_ host: UInt32, _ built: UnsafeMutablePointer<UInt32>?) -> UnsafeMutableRawPointer? {
    PluginExport.entry(MediaPlugin.self, hostVersion: host, builtVersion: built)
}

/// The media library: `POST/GET /api/media`, `GET/DELETE /api/media/{id}`, and `GET /media/{id}` for overlays.
final class MediaPlugin: OverlayPlugin {
    static let name = "media"
    static let version = "1.0.0"
    static let summary = "Media library: uploads checked by content, stored once by hash, served with ranges"

    /// The default upload rate limit (`limits.rate.media.upload` overrides it).
    static let uploadRateLimit = RateLimit(name: "media.upload", burst: 10, perMinute: 30)

    let configuration: MediaConfiguration
    let context: PluginContext
    let library: MediaLibrary
    let metrics: Metrics

    /// The plugin's metrics (names get the engine's `onionrp_plugin_` prefix).
    struct Metrics: Sendable {
        let stored: any MetricCounter
        let duplicates: any MetricCounter
        let rejected: [RejectReason: any MetricCounter]
        let receivedBytes: any MetricCounter
        let servedBytes: any MetricCounter
        let deleted: any MetricCounter
        let storedBytes: any MetricGauge
        let files: any MetricGauge
        let uploadTime: any MetricTimer

        init(_ metrics: any PluginMetrics) {
            stored = metrics.counter("media_uploads_total", labels: [("result", "stored")])
            duplicates = metrics.counter("media_uploads_total", labels: [("result", "duplicate")])
            var rejected: [RejectReason: any MetricCounter] = [:]
            for reason in RejectReason.allCases {
                rejected[reason] = metrics.counter("media_uploads_rejected_total", labels: [("reason", reason.rawValue)])
            }
            self.rejected = rejected
            receivedBytes = metrics.counter("media_upload_bytes_total", labels: [])
            servedBytes = metrics.counter("media_served_bytes_total", labels: [])
            deleted = metrics.counter("media_deleted_total", labels: [])
            storedBytes = metrics.gauge("media_stored_bytes", labels: [])
            files = metrics.gauge("media_files", labels: [])
            uploadTime = metrics.timer("media_upload_duration", labels: [])
        }
    }

    init(configuration: MediaConfiguration, context: PluginContext) throws {
        self.configuration = configuration
        self.context = context
        self.library = try MediaLibrary(
            directory: context.uploadsDirectory.appendingPathComponent("media"),
            metadataFile: context.dataDirectory.appendingPathComponent("library.json"),
            quotaBytes: configuration.quotaBytes, crypto: context.crypto, logger: context.logger)
        self.metrics = Metrics(context.metrics)
        if !configuration.accelRedirectPrefix.isEmpty {
            // Files stored before the option was turned on: let the proxy's user read them too.
            for record in library.list() {
                if let path = library.path(of: record) { _ = chmod(path, 0o644) }
            }
        }
        updateGauges()
        let usage = library.usage
        context.logger.info(
            "media library opened",
            [
                "files": "\(usage.files)", "stored_bytes": "\(usage.stored)",
                "quota_bytes": "\(configuration.quotaBytes)", "folder": library.directory,
            ])
    }

    func setUp(_ registrar: PluginRegistrar) async throws {
        // The panel's media library tab and upload UI (image, video and audio elements are the engine's own).
        registrar.webModule(.panel, "panel.js", styles: ["panel.css"])
        registrar.route(
            .post, "/api/media", access: .moderator, bodyLimit: configuration.largestFile + configuration.maxFormBytes,
            rateLimit: Self.uploadRateLimit, summary: "upload a file (multipart/form-data, field 'file')"
        ) { request in
            try await self.upload(request)
        }
        registrar.route(.get, "/api/media", access: .moderator, summary: "the library, newest first (?kind=image|video|audio)") { request in
            try self.list(request)
        }
        registrar.route(.get, "/api/media/{id}", access: .moderator, summary: "one file's metadata and the elements using it") { request in
            try await self.show(request)
        }
        registrar.route(.delete, "/api/media/{id}", access: .moderator, summary: "delete a file (409 while a scene uses it, unless ?force=true)") {
            request in
            try await self.delete(request)
        }
        registrar.route(.get, "/media/{id}", access: .overlay, summary: "the file itself (Range, ETag, HEAD)") { request in
            try await self.serve(request)
        }
    }

    // MARK: upload

    func upload(_ request: PluginRequest) async throws -> PluginResponse {
        let started = ContinuousClock.now
        let temporary = library.temporaryPath(random: Hex.encode(context.crypto.randomBytes(12)))
        let receiver = UploadReceiver(configuration: configuration, library: library, temporaryPath: temporary)
        do {
            let boundary = try Self.boundary(request)
            try checkDeclaredLength(request.body.contentLength)
            let received = try await receiver.receive(request.body, boundary: boundary)
            let response = try await store(received, receiver: receiver, caller: request.caller)
            metrics.uploadTime.record(ContinuousClock.now - started)
            return response
        } catch {
            receiver.discard()
            let failure = UploadReceiver.failure(from: error)
            metrics.rejected[failure.reason]?.increment()
            var metadata = [
                "reason": failure.reason.rawValue, "status": "\(failure.error.status)", "message": failure.error.message,
                "caller": request.caller.role, "request": request.id,
            ]
            if let cause = failure.cause { metadata["cause"] = cause }
            if failure.error.status >= 500 {
                context.logger.error("upload failed", metadata)
            } else {
                context.logger.info("upload refused", metadata)
            }
            throw failure.error
        }
    }

    /// The boundary of a `multipart/form-data` body, or 415/400 for anything else.
    static func boundary(_ request: PluginRequest) throws -> String {
        let header = request.headers["content-type"] ?? ""
        guard request.contentType == "multipart/form-data" else {
            let got = request.contentType.map { "got \($0)" } ?? "no Content-Type was sent"
            throw UploadFailure(
                .badRequest,
                PluginError(
                    status: 415, code: "unsupported_media_type",
                    message: "send the file as multipart/form-data in the field 'file' (\(got))"))
        }
        let parameters = ContentDisposition(header).parameters
        guard let boundary = parameters["boundary"], (1...200).contains(boundary.utf8.count),
            !boundary.contains(where: { $0 == "\r" || $0 == "\n" })
        else {
            throw UploadFailure(
                .badRequest,
                PluginError.badRequest(
                    "the multipart/form-data Content-Type has no valid boundary parameter", code: "invalid_multipart"))
        }
        return boundary
    }

    /// Refuses at once a body whose declared length is past the largest file any kind accepts
    /// (the quota is checked when the receiver reserves room).
    func checkDeclaredLength(_ length: Int?) throws {
        guard let length else { return }
        let ceiling = configuration.largestFile + configuration.maxFormBytes
        if length > ceiling {
            throw UploadFailure(
                .tooLarge,
                PluginError(
                    status: 413, code: "payload_too_large",
                    message: "the upload (\(length) bytes) is larger than the largest accepted file (\(configuration.largestFile) bytes)",
                    details: ["limit": .number(Double(configuration.largestFile))]))
        }
    }

    /// Turns a received file into a stored one (or finds it stored already) and answers.
    func store(_ received: ReceivedUpload, receiver: UploadReceiver, caller: Caller) async throws -> PluginResponse {
        let dimensions: (width: Int, height: Int)?
        if received.format == .jpeg {
            let file = received.file
            // A JPEG's size is in its SOF segment, possibly after large EXIF/ICC segments: walk the file.
            dimensions = try? await BlockingIO.run { try MediaSniffer.jpegSize { try file.read(count: $1, at: $0) } }
        } else {
            dimensions = MediaSniffer.imageSize(received.format, head: received.head)
        }
        let uploadedBy: String
        switch caller {
        case .moderator(let session): uploadedBy = "moderator:\(session.id)"
        default: uploadedBy = caller.role
        }
        let record = MediaRecord(
            id: String(received.sha256.prefix(MediaLibrary.idLength)), sha256: received.sha256, kind: received.format.kind,
            mime: received.format.mime, size: received.size,
            originalName: OriginalName.sanitize(received.clientFileName, maxLength: configuration.maxNameLength),
            createdAt: Timestamp.now(), width: dimensions?.width, height: dimensions?.height, uploadedBy: uploadedBy)
        let reserved = receiver.handOverReservation()
        let library = self.library
        let readableByProxy = !configuration.accelRedirectPrefix.isEmpty
        let outcome = try await BlockingIO.run {
            // Files are stored 0600; a proxy sending them (accel_redirect_prefix) runs as another user.
            if readableByProxy { _ = chmod(received.temporaryPath, 0o644) }
            return try library.commit(record, from: received.temporaryPath, reserved: reserved)
        }
        metrics.receivedBytes.increment(by: Int64(received.size))
        switch outcome {
        case .added(let stored):
            receiver.stored()
            metrics.stored.increment()
            updateGauges()
            context.logger.info(
                "media stored",
                [
                    "id": stored.id, "mime": stored.mime, "size": "\(stored.size)",
                    "original_name": stored.originalName ?? "-", "by": uploadedBy,
                ])
            broadcast("media.added", MediaEvent(media: MediaView(record: stored)))
            var response = try PluginResponse.json(UploadAnswer(media: MediaView(record: stored), duplicate: false), status: 201)
            response.headers.set("location", stored.url)
            return response
        case .duplicate(let existing):
            receiver.discard()
            metrics.duplicates.increment()
            context.logger.info("media already stored; upload dropped", ["id": existing.id, "by": uploadedBy])
            return try .json(UploadAnswer(media: MediaView(record: existing), duplicate: true), status: 200)
        }
    }

    /// The answer to an upload.
    struct UploadAnswer: Encodable {
        let media: MediaView
        let duplicate: Bool
    }

    /// The payload of `media.added`.
    struct MediaEvent: Encodable {
        let media: MediaView
    }

    // MARK: library

    func list(_ request: PluginRequest) throws -> PluginResponse {
        var records = library.list()
        if let kindText = request.queryValue("kind") {
            guard let kind = MediaKind(rawValue: kindText) else {
                throw PluginError.invalidField("kind", "must be image, video or audio")
            }
            records = records.filter { $0.kind == kind }
        }
        /// The per-kind size limits, for the panel.
        struct Limits: Encodable {
            let image: Int
            let video: Int
            let audio: Int
        }
        /// The answer of `GET /api/media`.
        struct Listing: Encodable {
            let media: [MediaView]
            let total_bytes: Int
            let quota_bytes: Int
            let max_bytes: Limits
        }
        let usage = library.usage
        return try .json(
            Listing(
                media: records.map(MediaView.init), total_bytes: usage.stored, quota_bytes: library.quotaBytes,
                max_bytes: Limits(
                    image: configuration.maxImageBytes, video: configuration.maxVideoBytes,
                    audio: configuration.maxAudioBytes)))
    }

    func show(_ request: PluginRequest) async throws -> PluginResponse {
        let record = try lookUp(request)
        /// The answer of `GET /api/media/{id}`.
        struct Detail: Encodable {
            let media: MediaView
            let elements: [String]
        }
        return try .json(Detail(media: MediaView(record: record), elements: try await context.scene.elements(referencingMedia: record.id)))
    }

    func delete(_ request: PluginRequest) async throws -> PluginResponse {
        let record = try lookUp(request)
        let force: Bool
        switch request.queryValue("force")?.lowercased() {
        case nil, "false", "0", "no": force = false
        case "true", "1", "yes", "": force = true
        default: throw PluginError.invalidField("force", "must be true or false")
        }
        let elements = try await context.scene.elements(referencingMedia: record.id)
        if !elements.isEmpty && !force {
            throw PluginError(
                status: 409, code: "media_in_use",
                message:
                    "\(record.id) is used by \(elements.count) scene element(s): \(elements.joined(separator: ", ")); remove them or add ?force=true",
                details: ["elements": .array(elements.map(JSONValue.string))])
        }
        let library = self.library
        let id = record.id
        let removed: MediaRecord?
        do {
            removed = try await BlockingIO.run { try library.remove(id) }
        } catch {
            context.logger.error("media file could not be deleted", ["id": id, "error": "\(error)"])
            throw PluginError(status: 500, code: "storage_error", message: "the file could not be deleted; the server log has the reason")
        }
        guard removed != nil else { throw PluginError.notFound("no media with id '\(id)'") }
        metrics.deleted.increment()
        updateGauges()
        context.logger.info("media deleted", ["id": id, "forced": "\(force)", "elements": elements.joined(separator: ",")])
        /// The payload of `media.removed`.
        struct Removed: Encodable { let id: String }
        broadcast("media.removed", Removed(id: id))
        /// The answer of `DELETE /api/media/{id}`.
        struct Answer: Encodable {
            let deleted: String
            let elements: [String]
        }
        return try .json(Answer(deleted: id, elements: elements))
    }

    /// The record named by the `{id}` path parameter, or 404.
    func lookUp(_ request: PluginRequest) throws -> MediaRecord {
        let id = try request.parameter("id").lowercased()
        guard MediaLibrary.isValidID(id), let record = library.record(id) else {
            throw PluginError.notFound("no media with id '\(String(id.prefix(80)))'")
        }
        return record
    }

    // MARK: serving

    func serve(_ request: PluginRequest) async throws -> PluginResponse {
        let record = try lookUp(request)
        if !configuration.accelRedirectPrefix.isEmpty {
            return try accelRedirect(record)
        }
        let file = try await openStoredFile(record)
        let served = metrics.servedBytes
        return try FileResponse.serve(
            request, file: file, size: record.size, etag: "\"\(record.sha256)\"", lastModified: record.createdAt,
            headers: [
                "content-type": record.mime,
                "cache-control": "private, max-age=\(configuration.cacheMaxAgeSeconds), immutable",
                "x-content-type-options": "nosniff",
            ],
            onSent: { served.increment(by: Int64($0)) })
    }

    /// The answer for a reverse proxy that sends the bytes itself (`accel_redirect_prefix`): the caller
    /// is authorized and the id known; the proxy serves `<prefix><file>` from the uploads folder with
    /// its own Range, HEAD and conditional handling, keeping the headers given here.
    func accelRedirect(_ record: MediaRecord) throws -> PluginResponse {
        guard let file = record.fileName else {
            throw PluginError(status: 500, code: "internal_error", message: "unknown stored type \(record.mime)")
        }
        metrics.servedBytes.increment(by: Int64(record.size))
        return PluginResponse(
            status: 200,
            headers: [
                "content-type": record.mime,
                "cache-control": "private, max-age=\(configuration.cacheMaxAgeSeconds), immutable",
                "x-content-type-options": "nosniff",
                "x-accel-redirect": configuration.accelRedirectPrefix + file,
            ], body: .empty)
    }

    /// Opens a record's file for reading, checking it is whole; 500 with a logged reason otherwise.
    func openStoredFile(_ record: MediaRecord) async throws -> FileDescriptor {
        guard let path = library.path(of: record) else {
            throw PluginError(status: 500, code: "internal_error", message: "unknown stored type \(record.mime)")
        }
        do {
            return try await BlockingIO.run {
                let file = try FileDescriptor.openForReading(path)
                let size = try file.size()
                guard size == record.size else {
                    throw FileIOError(operation: "size check (\(size) bytes on disk, \(record.size) recorded)", path: path, code: EIO)
                }
                return file
            }
        } catch {
            context.logger.error("a stored media file cannot be served", ["id": record.id, "error": "\(error)"])
            throw PluginError(
                status: 500, code: "media_unavailable", message: "the stored file of \(record.id) cannot be read; the server log has the reason")
        }
    }

    // MARK: helpers

    /// Sends an event to every moderator panel.
    func broadcast<T: Encodable>(_ type: String, _ payload: T) {
        do {
            context.sockets.send(try SocketMessage.make(type: type, payload: payload), to: .channel(.moderator))
        } catch {
            context.logger.error("media event could not be encoded", ["type": type, "error": "\(error)"])
        }
    }

    func updateGauges() {
        let usage = library.usage
        metrics.storedBytes.set(Double(usage.stored))
        metrics.files.set(Double(usage.files))
    }
}
