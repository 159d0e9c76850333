// WebRTCSignaling: the media metrics pages report from RTCPeerConnection.getStats(), as validated samples with a history.

import Foundation
import PluginAPI

/// One media sample of a peer connection (or of the capture, for the publisher's top level).
///
/// Every figure is optional: browsers do not report all of them. Numbers must be finite and between 0 and 1e12;
/// strings are short tokens. Unknown members of the message are ignored.
struct MediaSample: Codable, Sendable, Equatable {
    /// Frames per second (sent by the publisher, decoded by the viewer).
    var fps: Double?
    /// Frame width in pixels.
    var width: Double?
    /// Frame height in pixels.
    var height: Double?
    /// Media bitrate over the last interval, kbit/s.
    var bitrateKbps: Double?
    /// Packets lost so far (remote-inbound for the publisher, inbound for the viewer).
    var packetsLost: Double?
    /// Share of packets lost, in percent.
    var packetLossPct: Double?
    /// Jitter in milliseconds.
    var jitterMs: Double?
    /// Round-trip time in milliseconds.
    var rttMs: Double?
    /// Frames dropped so far (viewer: not rendered; publisher: captured but not encoded).
    var framesDropped: Double?
    /// Frames decoded (viewer) or encoded (publisher) so far.
    var frames: Double?
    /// Video freezes so far (viewer).
    var freezeCount: Double?
    /// `RTCPeerConnection.connectionState`.
    var state: String?
    /// Why the encoder limits quality (`none`, `cpu`, `bandwidth`, `other`).
    var qualityLimitation: String?
    /// Codec MIME type, e.g. `video/VP8`.
    var codec: String?
    /// When the server received it (set by the server, never read from the client).
    var at: Date?

    enum CodingKeys: String, CodingKey {
        case fps, width, height, frames, state, codec, at
        case bitrateKbps = "bitrate_kbps"
        case packetsLost = "packets_lost"
        case packetLossPct = "packet_loss_pct"
        case jitterMs = "jitter_ms"
        case rttMs = "rtt_ms"
        case framesDropped = "frames_dropped"
        case freezeCount = "freeze_count"
        case qualityLimitation = "quality_limitation"
    }

    init() {}

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func number(_ key: CodingKeys) throws -> Double? {
            guard let value = try c.decodeIfPresent(Double.self, forKey: key) else { return nil }
            guard value.isFinite, value >= 0, value <= 1e12 else {
                throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [key], debugDescription: "must be a number from 0 to 1e12"))
            }
            return value
        }
        func token(_ key: CodingKeys) throws -> String? {
            guard let value = try c.decodeIfPresent(String.self, forKey: key) else { return nil }
            let allowed = value.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                    || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "/") || byte == UInt8(ascii: ".")
            }
            guard value.utf8.count <= 32, allowed else {
                throw DecodingError.dataCorrupted(
                    .init(
                        codingPath: c.codingPath + [key],
                        debugDescription: "must be at most 32 letters, digits or -_/."))
            }
            return value
        }
        fps = try number(.fps)
        width = try number(.width)
        height = try number(.height)
        bitrateKbps = try number(.bitrateKbps)
        packetsLost = try number(.packetsLost)
        packetLossPct = try number(.packetLossPct)
        jitterMs = try number(.jitterMs)
        rttMs = try number(.rttMs)
        framesDropped = try number(.framesDropped)
        frames = try number(.frames)
        freezeCount = try number(.freezeCount)
        state = try token(.state)
        qualityLimitation = try token(.qualityLimitation)
        codec = try token(.codec)
        if let packetLossPct, packetLossPct > 100 {
            throw DecodingError.dataCorrupted(
                .init(
                    codingPath: c.codingPath + [CodingKeys.packetLossPct],
                    debugDescription: "must be a percentage from 0 to 100"))
        }
    }
}

/// `publisher.metrics`: the capture's figures at the top level, and one sample per viewer connection.
struct PublisherMetricsMessage: Decodable, Sendable {
    /// Top-level figures (the best of the viewer connections, or the capture).
    let summary: MediaSample
    /// `camera` or `screen` (free token).
    let source: String?
    /// Per viewer connection.
    let peers: [PeerSample]

    /// One viewer connection of the publisher.
    struct PeerSample: Decodable, Sendable {
        /// The viewer's server-assigned id.
        let viewerID: String
        /// Its figures.
        let sample: MediaSample

        enum CodingKeys: String, CodingKey { case viewerID = "viewer_id" }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            viewerID = try c.decode(String.self, forKey: .viewerID)
            guard viewerID.utf8.count <= 32 else {
                throw DecodingError.dataCorrupted(.init(codingPath: c.codingPath + [CodingKeys.viewerID], debugDescription: "too long"))
            }
            sample = try MediaSample(from: decoder)
        }
    }

    enum CodingKeys: String, CodingKey { case source, peers }

    init(from decoder: any Decoder) throws {
        summary = try MediaSample(from: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        source = try c.decodeIfPresent(String.self, forKey: .source).map { String($0.prefix(16)) }
        peers = try c.decodeIfPresent([PeerSample].self, forKey: .peers) ?? []
    }
}

/// The latest sample of one peer and a short history.
struct MetricsTrack: Sendable {
    /// The newest sample.
    private(set) var latest: MediaSample?
    /// Newest last, at most `capacity`.
    private(set) var history: [MediaSample] = []
    /// Samples received in total.
    private(set) var received = 0
    /// Most samples kept.
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    /// Records `sample` received at `at`.
    mutating func record(_ sample: MediaSample, at: Date) {
        var stamped = sample
        stamped.at = at
        latest = stamped
        history.append(stamped)
        if history.count > capacity { history.removeFirst(history.count - capacity) }
        received += 1
    }
}
