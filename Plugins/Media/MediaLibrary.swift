// Media: the library of stored files: metadata, quota accounting, persistence and recovery at start-up.

import Foundation
import PluginAPI
import Synchronization

/// The metadata of one stored file. The file itself is `<uploads>/media/<sha256>.<extension>`.
struct MediaRecord: Codable, Sendable, Equatable {
    /// The media id: the first ``MediaLibrary/idLength`` hex digits of the SHA-256.
    let id: String
    /// Lower-case hex SHA-256 of the content (also the ETag).
    let sha256: String
    /// Image, video or audio.
    let kind: MediaKind
    /// The type the file is served with, decided from its bytes.
    let mime: String
    /// Size in bytes.
    let size: Int
    /// The client's file name, sanitised (display only; never used as a path).
    let originalName: String?
    /// When it was first uploaded.
    let createdAt: Date
    /// Image width in pixels, when the header gives it.
    let width: Int?
    /// Image height in pixels, when the header gives it.
    let height: Int?
    /// Who uploaded it: `streamer`, `moderator:<session id>`, or nil when recovered from disk.
    let uploadedBy: String?

    /// The JSON member names (snake_case).
    enum CodingKeys: String, CodingKey {
        case id, sha256, kind, mime, size, width, height
        case originalName = "original_name"
        case createdAt = "created_at"
        case uploadedBy = "uploaded_by"
    }

    init(
        id: String, sha256: String, kind: MediaKind, mime: String, size: Int, originalName: String?, createdAt: Date,
        width: Int?, height: Int?, uploadedBy: String?
    ) {
        self.id = id
        self.sha256 = sha256
        self.kind = kind
        self.mime = mime
        self.size = size
        self.originalName = originalName
        self.createdAt = createdAt
        self.width = width
        self.height = height
        self.uploadedBy = uploadedBy
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        sha256 = try c.decode(String.self, forKey: .sha256)
        kind = try c.decode(MediaKind.self, forKey: .kind)
        mime = try c.decode(String.self, forKey: .mime)
        size = try c.decode(Int.self, forKey: .size)
        originalName = try c.decodeIfPresent(String.self, forKey: .originalName)
        let created = try c.decode(String.self, forKey: .createdAt)
        guard let date = Timestamp.parse(created) else {
            throw DecodingError.dataCorruptedError(forKey: .createdAt, in: c, debugDescription: "not an ISO 8601 date: \(created)")
        }
        createdAt = date
        width = try c.decodeIfPresent(Int.self, forKey: .width)
        height = try c.decodeIfPresent(Int.self, forKey: .height)
        uploadedBy = try c.decodeIfPresent(String.self, forKey: .uploadedBy)
    }

    /// Encodes every field; absent optionals as `null`, the date with milliseconds.
    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(sha256, forKey: .sha256)
        try c.encode(kind, forKey: .kind)
        try c.encode(mime, forKey: .mime)
        try c.encode(size, forKey: .size)
        try c.encode(originalName, forKey: .originalName)
        try c.encode(Timestamp.format(createdAt), forKey: .createdAt)
        try c.encode(width, forKey: .width)
        try c.encode(height, forKey: .height)
        try c.encode(uploadedBy, forKey: .uploadedBy)
    }

    /// The stored file's name inside the media folder.
    var fileName: String? { MediaFormat.forMIME(mime).map { "\(sha256).\($0.fileExtension)" } }

    /// Where the overlay fetches it.
    var url: String { "/media/\(id)" }
}

/// A record as the API and socket events show it: the stored fields plus `url`.
struct MediaView: Encodable, Sendable {
    /// The record shown.
    let record: MediaRecord

    /// The member added to the record's own.
    enum CodingKeys: String, CodingKey { case url }

    func encode(to encoder: any Encoder) throws {
        try record.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(record.url, forKey: .url)
    }
}

/// ISO 8601 timestamps in UTC with milliseconds (`2025-11-25T12:36:36.331Z`), so the library sorts
/// newest-first even within a second. Dates are kept to whole milliseconds so that they survive a
/// save and reload unchanged.
enum Timestamp {
    private static let withFraction = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
    private static let plain = Date.ISO8601FormatStyle()

    /// Now, to the millisecond.
    static func now() -> Date { truncated(Date()) }

    /// `date` rounded to whole milliseconds.
    static func truncated(_ date: Date) -> Date {
        Date(timeIntervalSince1970: (date.timeIntervalSince1970 * 1000).rounded() / 1000)
    }

    /// Formats `date` to the millisecond.
    static func format(_ date: Date) -> String {
        let milliseconds = Int64((date.timeIntervalSince1970 * 1000).rounded())
        var seconds = time_t(milliseconds >= 0 ? milliseconds / 1000 : (milliseconds - 999) / 1000)
        let fraction = Int(milliseconds - Int64(seconds) * 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(Int(parts.tm_year) + 1900, 4))-\(pad(Int(parts.tm_mon) + 1, 2))-\(pad(Int(parts.tm_mday), 2))T"
            + "\(pad(Int(parts.tm_hour), 2)):\(pad(Int(parts.tm_min), 2)):\(pad(Int(parts.tm_sec), 2)).\(pad(fraction, 3))Z"
    }

    /// Parses with or without fractional seconds, to the millisecond.
    static func parse(_ text: String) -> Date? {
        ((try? withFraction.parse(text)) ?? (try? plain.parse(text))).map(truncated)
    }
}

/// The stored files and their metadata. Thread-safe; methods marked blocking do file I/O and run via ``BlockingIO``.
///
/// Metadata lives in one JSON file in the plugin's data folder, rewritten atomically (temporary file,
/// fsync, rename, fsync of the folder) after every change. Order of operations keeps the two in step
/// after a crash: an upload is renamed into place before its record is saved (a crash between leaves
/// an orphan file, adopted at the next start), and a deletion removes the file before the record is
/// saved (a crash between leaves a record without a file, dropped at the next start).
final class MediaLibrary: Sendable {
    /// SHA-256 of files found on disk without a record (through the engine's OpenSSL).
    let crypto: any CryptoProvider
    /// Hex digits of the SHA-256 that make a media id (128 bits).
    static let idLength = 32
    /// Prefix of temporary upload files in the media folder: `.upload-<pid>-<random>.part`.
    static let temporaryPrefix = ".upload-"

    /// A fresh temporary path for an upload, named after this process so another engine's start-up leaves it alone.
    func temporaryPath(random: String) -> String {
        directory + "/" + Self.temporaryPrefix + "\(getpid())-" + random + ".part"
    }

    /// The outcome of ``commit(_:from:reserved:)``.
    enum CommitOutcome: Sendable {
        /// The file was new and is now stored.
        case added(MediaRecord)
        /// The same content was already stored: this is the existing record.
        case duplicate(MediaRecord)
    }

    /// The records and the byte counts, under one lock.
    private struct State {
        var records: [String: MediaRecord] = [:]
        var storedBytes = 0
        var reservedBytes = 0
    }

    /// The metadata file: `{"version": 1, "media": [records, oldest first]}`.
    private struct Document: Codable {
        var version: Int
        var media: [Lenient]
    }

    /// One entry of the metadata file; an unreadable entry is skipped, not fatal.
    private struct Lenient: Codable {
        var record: MediaRecord?
        init(_ record: MediaRecord) { self.record = record }
        init(from decoder: any Decoder) throws { record = try? MediaRecord(from: decoder) }
        func encode(to encoder: any Encoder) throws { try record.encode(to: encoder) }
    }

    /// The folder of the stored files (`<uploads>/media`).
    let directory: String
    /// The metadata file (`<data>/plugins/media/library.json`).
    let metadataPath: String
    /// The most bytes all files may take together.
    let quotaBytes: Int
    private let state = Mutex(State())
    private let writeLock = Mutex(0)
    private let logger: any PluginLogger

    /// Opens the library: creates the folder, removes temporary files left by a crashed engine, loads
    /// the metadata, drops records whose file is gone and adopts stored files that have no record.
    /// Blocking; runs once at start-up.
    ///
    /// It writes nothing but a copy of a damaged metadata file: `overlay-engine check-config` creates
    /// plugins too, possibly while an engine serves the same folders. Corrections are saved with the
    /// next change (and redone identically at each start until then).
    init(directory: URL, metadataFile: URL, quotaBytes: Int, crypto: any CryptoProvider, logger: any PluginLogger) throws {
        self.crypto = crypto
        self.directory = directory.path
        self.metadataPath = metadataFile.path
        self.quotaBytes = quotaBytes
        self.logger = logger
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try load()
    }

    /// True for a well-formed media id (lower-case hex of ``idLength`` digits).
    static func isValidID(_ text: String) -> Bool {
        text.utf8.count == idLength && text.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }

    /// True for a lower-case hex SHA-256.
    static func isValidDigest(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }

    /// The path of a record's file.
    func path(of record: MediaRecord) -> String? { record.fileName.map { directory + "/" + $0 } }

    /// The record of `id`, if stored.
    func record(_ id: String) -> MediaRecord? { state.withLock { $0.records[id] } }

    /// Every record, newest first.
    func list() -> [MediaRecord] {
        state.withLock { Array($0.records.values) }.sorted { ($0.createdAt, $0.id) > ($1.createdAt, $1.id) }
    }

    /// Bytes stored, and bytes reserved by uploads in progress.
    var usage: (stored: Int, reserved: Int, files: Int) {
        state.withLock { ($0.storedBytes, $0.reservedBytes, $0.records.count) }
    }

    /// Reserves room for `bytes` more bytes of an upload in progress; false when the quota would be passed.
    func reserve(_ bytes: Int) -> Bool {
        state.withLock { state in
            guard state.storedBytes + state.reservedBytes + bytes <= quotaBytes else { return false }
            state.reservedBytes += bytes
            return true
        }
    }

    /// Gives back a reservation (the upload failed or was a duplicate).
    func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        state.withLock { $0.reservedBytes = max(0, $0.reservedBytes - bytes) }
    }

    /// Stores an uploaded file: moves it from its temporary path to its final name and saves the record,
    /// unless the same content is already stored. Blocking.
    ///
    /// The reservation of `reserved` bytes is consumed whatever happens. On `.duplicate` and on error
    /// the temporary file is left for the caller to remove.
    func commit(_ record: MediaRecord, from temporaryPath: String, reserved: Int) throws -> CommitOutcome {
        guard let finalPath = path(of: record) else {
            release(reserved)
            throw PluginError(status: 500, code: "internal_error", message: "no file extension for \(record.mime)")
        }
        let outcome: CommitOutcome = try state.withLock { state in
            state.reservedBytes = max(0, state.reservedBytes - reserved)
            if let existing = state.records[record.id] {
                guard existing.sha256 == record.sha256 else {
                    throw PluginError(
                        status: 409, code: "id_collision",
                        message: "another file's SHA-256 starts with the same \(Self.idLength) hex digits; not stored")
                }
                return .duplicate(existing)
            }
            // A plain rename under the lock, so a concurrent delete of the same content cannot interleave.
            guard rename(temporaryPath, finalPath) == 0 else {
                throw FileIOError(operation: "rename", path: temporaryPath, code: errno)
            }
            state.records[record.id] = record
            state.storedBytes += record.size
            return .added(record)
        }
        guard case .added = outcome else { return outcome }
        FileOps.syncDirectory(directory)
        do {
            try persist()
        } catch {
            // Without its record the file would be adopted nameless at the next start: undo instead,
            // so the client sees the failure and can retry.
            state.withLock { state in
                if state.records.removeValue(forKey: record.id) != nil { state.storedBytes -= record.size }
            }
            _ = try? FileOps.remove(finalPath)
            throw error
        }
        return outcome
    }

    /// Deletes a file and its record. Returns the record, or nil when `id` is not stored. Blocking.
    func remove(_ id: String) throws -> MediaRecord? {
        let removed: MediaRecord? = try state.withLock { state in
            guard let record = state.records[id] else { return nil }
            if let file = path(of: record) { try FileOps.remove(file) }
            state.records.removeValue(forKey: id)
            state.storedBytes -= record.size
            return record
        }
        guard let removed else { return nil }
        FileOps.syncDirectory(directory)
        do {
            try persist()
        } catch {
            // The file is gone already; the stale record is dropped at the next start when its file is missing.
            logger.error("media metadata could not be saved after a deletion", ["id": id, "error": "\(error)"])
        }
        return removed
    }

    /// Writes the metadata file atomically. Writers are serialised and each writes the state as it is
    /// when it gets the lock, so the last write always holds the latest state. Blocking.
    private func persist() throws {
        try writeLock.withLock { generation in
            let records = state.withLock { Array($0.records.values) }.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            let bytes = Array(try encoder.encode(Document(version: 1, media: records.map(Lenient.init))))
            try FileOps.atomicWrite(bytes + [0x0A], to: metadataPath)
            generation += 1
        }
    }

    // MARK: start-up

    /// Loads the metadata and reconciles it with the folder, in memory.
    private func load() throws {
        let names = try FileManager.default.contentsOfDirectory(atPath: directory)

        // Temporary files of uploads cut short by a crash: their process is gone (or they are a day old).
        var stale = 0
        for name in names where name.hasPrefix(Self.temporaryPrefix) {
            let path = directory + "/" + name
            let owner = name.dropFirst(Self.temporaryPrefix.count).split(separator: "-").first.flatMap { Int32($0) }
            let ownerAlive = owner.map { $0 != getpid() && (kill($0, 0) == 0 || errno == EPERM) } ?? false
            let old = ((try? FileOps.status(path))?.modified).map { Date().timeIntervalSince($0) > 86_400 } ?? false
            if !ownerAlive || old, (try? FileOps.remove(path)) == true { stale += 1 }
        }
        if stale > 0 { logger.info("removed \(stale) unfinished upload(s) left by an earlier run", ["folder": directory]) }

        var records: [String: MediaRecord] = [:]
        if let data = FileManager.default.contents(atPath: metadataPath) {
            do {
                let document = try JSONDecoder().decode(Document.self, from: data)
                let valid = document.media.compactMap(\.record).filter(isConsistent)
                if valid.count != document.media.count {
                    logger.warning(
                        "skipped \(document.media.count - valid.count) unreadable entries of the media metadata",
                        ["file": metadataPath])
                }
                for record in valid { records[record.id] = record }
            } catch {
                // Keep a copy of the damaged file for inspection; the files themselves are re-adopted below.
                let aside = metadataPath + ".damaged-\(Int(Date().timeIntervalSince1970))"
                try? FileOps.atomicWrite(Array(data), to: aside)
                logger.error(
                    "the media metadata is unreadable; kept a copy and rebuilt the library from the files",
                    ["file": metadataPath, "copy": aside, "error": "\(error)"])
            }
        }

        // Records whose file is gone or damaged.
        for record in records.values {
            guard let file = path(of: record) else { continue }
            let info = try FileOps.status(file)
            if info?.size != record.size {
                records.removeValue(forKey: record.id)
                logger.error(
                    info == nil ? "a media file is missing; dropped its record" : "a media file has the wrong size; dropped its record",
                    ["id": record.id, "file": file, "original_name": record.originalName ?? "-"])
            }
        }

        // Files without a record: an upload interrupted between storing the file and saving its record.
        let known = Set(records.values.compactMap(\.fileName))
        for name in names where !name.hasPrefix(".") && !known.contains(name) {
            if let record = adopt(name) {
                records[record.id] = record
                logger.warning("adopted a stored file that had no record", ["id": record.id, "file": name])
            }
        }

        let stored = records.values.reduce(0) { $0 + $1.size }
        state.withLock {
            $0.records = records
            $0.storedBytes = stored
        }
        if stored > quotaBytes {
            logger.warning(
                "the media library is larger than quota_bytes; uploads are refused until files are deleted",
                ["stored_bytes": "\(stored)", "quota_bytes": "\(quotaBytes)"])
        }
    }

    /// A record for `<sha256>.<ext>` found without one, after checking its hash and type; nil otherwise.
    private func adopt(_ name: String) -> MediaRecord? {
        let parts = name.split(separator: ".")
        guard parts.count == 2, Self.isValidDigest(String(parts[0])) else { return nil }
        let digest = String(parts[0])
        let path = directory + "/" + name
        do {
            let file = try FileDescriptor.openForReading(path)
            let size = try file.size()
            guard size > 0 else { return nil }
            let hasher = crypto.makeSHA256()
            var offset = 0
            var head: [UInt8] = []
            while offset < size {
                let chunk = try file.read(count: 1 << 20, at: offset)
                if chunk.isEmpty { break }
                if head.count < MediaSniffer.headSize { head += chunk.prefix(MediaSniffer.headSize - head.count) }
                hasher.update(chunk)
                offset += chunk.count
            }
            guard Hex.encode(try hasher.finish()) == digest,
                case .supported(let format) = MediaSniffer.detect(head, isWholeFile: size <= head.count),
                String(parts[1]) == format.fileExtension
            else {
                logger.warning("a file in the media folder does not match its name; left alone", ["file": path])
                return nil
            }
            let dimensions =
                format == .jpeg
                ? (try? MediaSniffer.jpegSize { try file.read(count: $1, at: $0) })
                : MediaSniffer.imageSize(format, head: head)
            let modified = (try? FileOps.status(path))?.modified ?? Date()
            return MediaRecord(
                id: String(digest.prefix(Self.idLength)), sha256: digest, kind: format.kind, mime: format.mime,
                size: size, originalName: nil, createdAt: Timestamp.truncated(modified), width: dimensions?.width,
                height: dimensions?.height, uploadedBy: nil)
        } catch {
            logger.warning("a file in the media folder could not be read; left alone", ["file": path, "error": "\(error)"])
            return nil
        }
    }

    /// Checks a record read from disk: well-formed id and digest, a known type, a positive size.
    private func isConsistent(_ record: MediaRecord) -> Bool {
        guard Self.isValidID(record.id), Self.isValidDigest(record.sha256), record.sha256.hasPrefix(record.id),
            let format = MediaFormat.forMIME(record.mime), format.kind == record.kind, record.size > 0
        else {
            return false
        }
        return true
    }
}
