// Media: receives a multipart upload as it arrives and streams its `file` part to a temporary file.
//
// This is the only file that imports MultipartKit: it re-exports NIO's `HTTPHeaders`, which would
// clash with PluginAPI's.

import Foundation
import MultipartKit
import PluginAPI

/// Why an upload was refused, as the `reason` label of the rejection metric.
enum RejectReason: String, CaseIterable, Sendable {
    case unsupportedType = "unsupported_type"
    case tooLarge = "too_large"
    case quota = "quota"
    case badRequest = "bad_request"
    case interrupted = "interrupted"
    case storage = "storage_error"
}

/// A refused upload: the answer for the client and the reason for the metrics.
struct UploadFailure: Error {
    /// The metric label.
    let reason: RejectReason
    /// The error response.
    let error: PluginError
    /// What went wrong underneath, for the log only (never sent to the client).
    let cause: String?

    init(_ reason: RejectReason, _ error: PluginError, cause: String? = nil) {
        self.reason = reason
        self.error = error
        self.cause = cause
    }
}

/// A file part received in full: written to a temporary file, fsynced, hashed and sniffed.
struct ReceivedUpload: Sendable {
    /// The temporary file (inside the media folder, so it can be renamed into place).
    let temporaryPath: String
    /// The open temporary file (read/write), for reading image headers.
    let file: FileDescriptor
    /// Size in bytes.
    let size: Int
    /// Lower-case hex SHA-256 of the content.
    let sha256: String
    /// The format decided from the bytes.
    let format: MediaFormat
    /// The first bytes (up to ``MediaSniffer/headSize``).
    let head: [UInt8]
    /// The file name the client sent, unsanitised (nil when it sent none).
    let clientFileName: String?
}

/// Receives one `multipart/form-data` upload.
///
/// MultipartKit's `MultipartParser` is fed each chunk of the request body as it arrives. Its callbacks
/// are synchronous, so the file part's bytes of one chunk are gathered in `pending`, then checked
/// (type, size limit, quota), hashed and written out before the next chunk is read: memory holds about
/// one chunk per upload whatever the file's size, and a slow disk slows the client (back-pressure).
///
/// Fast path: the parser looks at body bytes one at a time through generic collection code, which
/// costs ~600 ns a byte in a debug build (1.6 MB/s) and caps a release build near 110 MB/s. While the
/// parser is known to be inside the `file` part's body (see ``parserInFileBody``), a chunk is first
/// scanned with `memchr`/`memcmp` for the delimiter `CRLF--boundary`; bytes that cannot belong to a
/// delimiter go straight to the file and only the rest is fed to the parser. The delimiter holds
/// CR only at its start, so a pending partial match can only begin at the last CR seen: the parser's
/// state is known exactly, and skipping the bytes leaves it exactly as feeding them would have.
///
/// Not thread-safe: one request's task owns it.
final class UploadReceiver {
    /// The role of the multipart part being parsed.
    private enum PartRole {
        /// Between parts.
        case none
        /// Headers are arriving; the role is decided at the first body byte or at the part's end.
        case undecided
        /// The `file` field.
        case file
        /// Any other field, ignored (its bytes count against `max_form_bytes`).
        case other
    }

    private let configuration: MediaConfiguration
    private let library: MediaLibrary
    private let temporaryPath: String

    // Parsing.
    private var role = PartRole.none
    private var partHeaders: [(name: String, value: String)] = []
    private var sawPart = false
    private var fileParts = 0
    private var fileComplete = false
    private var clientFileName: String?
    private var pending: [UInt8] = []
    private var fileBytesParsed = 0
    private var failure: UploadFailure?

    // Admission.
    private var declaredLength: Int?
    private var minimalOverhead = 0

    // The fast path.
    private var delimiter: [UInt8] = []
    /// The last `delimiter.count` bytes the parser has seen (or was spared).
    private var recent: [UInt8] = []

    // The temporary file.
    private var file: FileDescriptor?
    private var written = 0
    private var reserved = 0
    private let hasher: any IncrementalHash
    private var head: [UInt8] = []
    private var format: MediaFormat?

    /// Creates a receiver.
    /// - Parameters:
    ///   - configuration: Limits.
    ///   - library: Where quota is reserved.
    ///   - temporaryPath: A fresh path in the media folder for the file part.
    init(configuration: MediaConfiguration, library: MediaLibrary, temporaryPath: String) {
        self.configuration = configuration
        self.library = library
        self.temporaryPath = temporaryPath
        self.hasher = library.crypto.makeSHA256()
    }

    /// Reads the whole body and returns the received file, still holding its quota reservation
    /// (``handOverReservation()`` passes it on). Throws ``UploadFailure``; call ``discard()`` after any error.
    ///
    /// Admission: once the first bytes tell the kind, a declared `Content-Length` that certainly holds a
    /// file past the kind's limit is refused at once (not after streaming up to the limit), and room for
    /// the largest file the body can hold is reserved in the quota, so concurrent uploads cannot starve
    /// each other half-way. Without a length (chunked), room is reserved as bytes arrive. The excess is
    /// given back at the end.
    func receive(_ body: RequestBody, boundary: String) async throws -> ReceivedUpload {
        declaredLength = body.contentLength
        // The smallest multipart wrapping of a file: "--B\r\n", "content-disposition:form-data;name=file\r\n",
        // "\r\n" ending the headers, then "\r\n--B" after the content.
        minimalOverhead = 2 * boundary.utf8.count + 50
        let parser = MultipartParser(boundary: boundary)
        parser.onHeader = { name, value in self.header(name: name, value: value) }
        parser.onBody = { buffer in self.bodyBytes(&buffer) }
        parser.onPartComplete = { self.partComplete() }
        var parserGuard = MultipartGuard(boundary: boundary)
        delimiter = Array("\r\n--\(boundary)".utf8)

        var received = 0
        var iterator = body.makeAsyncIterator()
        while true {
            let chunk: [UInt8]?
            do {
                chunk = try await iterator.next()
            } catch let error as PluginError {
                throw UploadFailure(.badRequest, error)
            } catch {
                throw UploadFailure(
                    .interrupted,
                    PluginError(
                        status: 400, code: "upload_incomplete",
                        message: "the upload was interrupted before its end"),
                    cause: "\(error)")
            }
            guard let chunk else { break }
            received += chunk.count
            var parserInput = chunk[...]
            if parserInFileBody, case .clear(let certain) = Self.scan(chunk, for: delimiter) {
                // Everything before a possible partial delimiter at the end is file content.
                takeFileBytes(chunk, count: certain)
                parserInput = chunk[certain...]
            }
            do {
                guard parserGuard.admits(parserInput) else { throw MultipartGuardRefusal() }
                if !parserInput.isEmpty { try parser.execute(ByteBuffer(bytes: parserInput)) }
            } catch {
                throw UploadFailure(
                    .badRequest,
                    PluginError.badRequest(
                        "the multipart body is malformed (broken part headers or delimiter)", code: "invalid_multipart"))
            }
            remember(chunk)
            if let failure { throw failure }
            if received - fileBytesParsed > configuration.maxFormBytes {
                throw UploadFailure(
                    .tooLarge,
                    PluginError(
                        status: 413, code: "payload_too_large",
                        message:
                            "the form besides the file (part headers, other fields) is larger than \(configuration.maxFormBytes) bytes (max_form_bytes)",
                        details: ["limit": .number(Double(configuration.maxFormBytes)), "limit_key": .string("max_form_bytes")]))
            }
            if !pending.isEmpty { try await flush() }
        }

        guard sawPart else {
            throw UploadFailure(
                .badRequest,
                PluginError.badRequest(
                    "the body has no part delimited by the boundary given in Content-Type", code: "invalid_multipart"))
        }
        guard fileParts > 0 else {
            throw UploadFailure(.badRequest, PluginError.invalidField("file", "is required: send the file as the multipart form field 'file'"))
        }
        guard fileComplete else {
            throw UploadFailure(
                .interrupted,
                PluginError(
                    status: 400, code: "upload_incomplete",
                    message: "the body ended inside the 'file' part (the upload was cut short)"))
        }
        guard written > 0, let file else {
            throw UploadFailure(.badRequest, PluginError.invalidField("file", "is empty"))
        }
        let decided = try format ?? admit(decide(isWholeFile: true))
        try checkLimit(decided, size: written)
        library.release(reserved - written)
        reserved = written
        do {
            try await BlockingIO.run { try file.sync() }
        } catch {
            throw Self.failure(from: error)
        }
        if decided.kind == .image {
            // The first bytes said "image"; the whole structure must agree (a PNG signature before HTML is no PNG).
            let size = written
            do {
                try await BlockingIO.run { try ImageValidator.validate(decided, size: size) { try file.read(count: $1, at: $0) } }
            } catch let error as ImageStructureError {
                throw UploadFailure(
                    .unsupportedType,
                    PluginError(
                        status: 415, code: "invalid_image",
                        message: "the file starts like a \(decided.name) image but is not a valid one: \(error.description)",
                        details: ["detected": .string(decided.mime)]))
            } catch {
                throw Self.failure(from: error)
            }
        }
        return ReceivedUpload(
            temporaryPath: temporaryPath, file: file, size: written, sha256: Hex.encode(try hasher.finish()),
            format: decided, head: head, clientFileName: clientFileName)
    }

    /// The reservation is now the caller's (``MediaLibrary/commit(_:from:reserved:)`` consumes it). Returns its size.
    func handOverReservation() -> Int {
        defer { reserved = 0 }
        return reserved
    }

    /// Removes the temporary file and gives back the reservation still held. Safe to call more than once.
    func discard() {
        library.release(reserved)
        reserved = 0
        if file != nil {
            file = nil
            _ = try? FileOps.remove(temporaryPath)
        }
    }

    /// The temporary file was renamed into place: nothing to remove any more.
    func stored() {
        file = nil
    }

    // MARK: the fast path

    /// What a chunk holds, as far as the delimiter goes.
    enum ScanResult: Equatable {
        /// The whole delimiter occurs: the parser must see the chunk.
        case delimiter
        /// No whole delimiter; the first `certainBody` bytes cannot be part of one (the rest, if any,
        /// is a prefix of the delimiter at the chunk's end).
        case clear(certainBody: Int)
    }

    /// Looks for the delimiter in `bytes`: at each CR (the delimiter's only CR is its first byte),
    /// compares what follows with the delimiter.
    static func scan(_ bytes: [UInt8], for delimiter: [UInt8]) -> ScanResult {
        bytes.withUnsafeBytes { raw -> ScanResult in
            delimiter.withUnsafeBytes { pattern -> ScanResult in
                guard let base = raw.baseAddress, let patternBase = pattern.baseAddress else { return .clear(certainBody: raw.count) }
                let count = raw.count
                var offset = 0
                while offset < count, let hit = memchr(base + offset, 0x0D, count - offset) {
                    let index = base.distance(to: UnsafeRawPointer(hit))
                    let available = count - index
                    if memcmp(base + index, patternBase, min(available, pattern.count)) == 0 {
                        return available >= pattern.count ? .delimiter : .clear(certainBody: index)
                    }
                    offset = index + 1
                }
                return .clear(certainBody: count)
            }
        }
    }

    /// True when the parser is inside the `file` part's body with no delimiter match pending, so that
    /// body bytes without a delimiter may bypass it.
    private var parserInFileBody: Bool {
        guard role == .file, !fileComplete, failure == nil, recent.count == delimiter.count else { return false }
        return Self.scan(recent, for: delimiter) == .clear(certainBody: recent.count)
    }

    /// Keeps the last bytes seen, for ``parserInFileBody``.
    private func remember(_ chunk: [UInt8]) {
        if chunk.count >= delimiter.count {
            recent = Array(chunk.suffix(delimiter.count))
        } else {
            recent = Array((recent + chunk).suffix(delimiter.count))
        }
    }

    /// File content found by the fast path.
    private func takeFileBytes(_ chunk: [UInt8], count: Int) {
        guard count > 0 else { return }
        fileBytesParsed += count
        if pending.isEmpty && count == chunk.count {
            pending = chunk
        } else {
            pending.append(contentsOf: chunk[..<count])
        }
    }

    // MARK: parser callbacks (synchronous)

    private func header(name: String, value: String) {
        if role == .none {
            role = .undecided
            partHeaders = []
            sawPart = true
        }
        partHeaders.append((name, value))
    }

    private func bodyBytes(_ buffer: inout ByteBuffer) {
        if role == .none || role == .undecided { decidePart() }
        guard role == .file, failure == nil else { return }
        fileBytesParsed += buffer.readableBytes
        buffer.withUnsafeReadableBytes { pending.append(contentsOf: $0) }
    }

    private func partComplete() {
        if role == .none || role == .undecided { decidePart() }
        if role == .file { fileComplete = true }
        role = .none
        partHeaders = []
    }

    private func decidePart() {
        sawPart = true
        let disposition = partHeaders.last { $0.name.lowercased() == "content-disposition" }.map { ContentDisposition($0.value) }
        guard let disposition, disposition.type == "form-data", disposition.parameters["name"] == "file" else {
            role = .other
            return
        }
        fileParts += 1
        guard fileParts == 1 else {
            role = .other
            failure =
                failure
                ?? UploadFailure(.badRequest, PluginError.invalidField("file", "send one file per upload (the form has several 'file' parts)"))
            return
        }
        role = .file
        clientFileName = disposition.fileName
    }

    // MARK: writing

    /// Checks, hashes and writes the file bytes gathered from the last chunk.
    private func flush() async throws {
        var bytes: [UInt8] = []
        swap(&bytes, &pending)
        if format == nil {
            let missing = MediaSniffer.headSize - head.count
            if missing > 0 { head += bytes.prefix(missing) }
            if head.count >= MediaSniffer.headSize { _ = try admit(decide(isWholeFile: false)) }
        }
        try checkLimit(format, size: written + bytes.count)
        if written + bytes.count > reserved { try reserve(written + bytes.count - reserved) }
        hasher.update(bytes)
        do {
            let target: FileDescriptor
            if let file {
                target = file
            } else {
                let path = temporaryPath
                target = try await BlockingIO.run { try FileDescriptor.create(path) }
                file = target
            }
            let chunk = bytes
            try await BlockingIO.run { try target.write(chunk) }
        } catch {
            throw Self.failure(from: error)
        }
        written += bytes.count
    }

    /// Checks the declared length against the limit of `format`'s kind and reserves room for the largest
    /// file it can hold. Returns `format`.
    private func admit(_ format: MediaFormat) throws -> MediaFormat {
        guard let length = declaredLength else { return format }
        let limit = configuration.limit(for: format.kind)
        // Everything but the file is at most max_form_bytes (else 413), so the file is at least this big.
        try checkLimit(format, size: length - configuration.maxFormBytes)
        let largest = min(max(0, length - minimalOverhead), limit)
        if largest > reserved { try reserve(largest - reserved) }
        return format
    }

    /// Reserves `bytes` more of the quota, or throws 413.
    private func reserve(_ bytes: Int) throws {
        guard bytes > 0 else { return }
        guard library.reserve(bytes) else {
            let usage = library.usage
            let free = max(0, library.quotaBytes - usage.stored - usage.reserved)
            throw UploadFailure(
                .quota,
                PluginError(
                    status: 413, code: "payload_too_large",
                    message: "the media library is full: \(usage.stored) of \(library.quotaBytes) bytes used (quota_bytes), "
                        + "\(free) free for uploads now; delete files first",
                    details: ["limit": .number(Double(library.quotaBytes)), "limit_key": .string("quota_bytes")]))
        }
        reserved += bytes
    }

    /// Decides the format from `head`, or throws 415 naming what the file is.
    private func decide(isWholeFile: Bool) throws -> MediaFormat {
        switch MediaSniffer.detect(head, isWholeFile: isWholeFile) {
        case .supported(let detected):
            format = detected
            return detected
        case .unsupported(let detected):
            throw UploadFailure(
                .unsupportedType,
                PluginError(
                    status: 415, code: "unsupported_media_type",
                    message: "unsupported file type: detected \(detected); accepted: \(MediaFormat.acceptedList)",
                    details: ["detected": .string(detected)]))
        }
    }

    /// Throws 413 when `size` passes the limit of the format's kind (or the largest limit while the format is unknown).
    private func checkLimit(_ format: MediaFormat?, size: Int) throws {
        let limit = format.map { configuration.limit(for: $0.kind) } ?? configuration.largestFile
        guard size > limit else { return }
        let what = format.map { "the \($0.kind.rawValue) (\($0.name))" } ?? "the file"
        let largestKind = MediaKind.allCases.max { configuration.limit(for: $0) < configuration.limit(for: $1) } ?? .video
        let key = MediaConfiguration.limitKey(for: format?.kind ?? largestKind)
        throw UploadFailure(
            .tooLarge,
            PluginError(
                status: 413, code: "payload_too_large",
                message: "\(what) is larger than the limit of \(limit) bytes (\(key))",
                details: ["limit": .number(Double(limit)), "limit_key": .string(key)]))
    }

    /// Any error as an ``UploadFailure``: refusals pass through, a full disk is 507, other I/O 500 (the
    /// cause goes to the log, not the client).
    static func failure(from error: any Error) -> UploadFailure {
        if let failure = error as? UploadFailure { return failure }
        if let plugin = error as? PluginError { return UploadFailure(plugin.status >= 500 ? .storage : .badRequest, plugin) }
        if error is CancellationError {
            return UploadFailure(
                .interrupted, PluginError(status: 400, code: "upload_incomplete", message: "the upload was cancelled"),
                cause: "task cancelled")
        }
        if let io = error as? FileIOError, io.isDiskFull {
            return UploadFailure(
                .storage, PluginError(status: 507, code: "insufficient_storage", message: "the server's disk is full"),
                cause: "\(io)")
        }
        return UploadFailure(
            .storage,
            PluginError(
                status: 500, code: "storage_error",
                message: "the file could not be stored; the server log has the reason"),
            cause: "\(error)")
    }
}

/// The body would have made MultipartKit trap or fail (see ``MultipartGuard``); answered like its syntax errors.
struct MultipartGuardRefusal: Error {}
