// ModeratorKeys: the plugin's section of overlay.yaml.

/// `plugins[name=moderator-keys].config`.
struct ModeratorKeysConfiguration: Decodable, Sendable {
    /// Longest accepted `streamer_id` and `label`.
    var maxFieldLength = 64
    /// Most unconsumed keys at once; generating more answers 409.
    var maxOutstandingKeys = 100
    /// Failed consumes allowed per client address within `failure_window_seconds`; past it: 429.
    var maxFailures = 10
    /// Length of the failure window.
    var failureWindowSeconds = 600

    enum CodingKeys: String, CodingKey {
        case maxFieldLength = "max_field_length"
        case maxOutstandingKeys = "max_outstanding_keys"
        case maxFailures = "max_failures"
        case failureWindowSeconds = "failure_window_seconds"
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        maxFieldLength = try c.decodeIfPresent(Int.self, forKey: .maxFieldLength) ?? maxFieldLength
        maxOutstandingKeys = try c.decodeIfPresent(Int.self, forKey: .maxOutstandingKeys) ?? maxOutstandingKeys
        maxFailures = try c.decodeIfPresent(Int.self, forKey: .maxFailures) ?? maxFailures
        failureWindowSeconds = try c.decodeIfPresent(Int.self, forKey: .failureWindowSeconds) ?? failureWindowSeconds
        guard maxFieldLength > 0, maxOutstandingKeys > 0, maxFailures > 0, failureWindowSeconds > 0 else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                debugDescription: "max_field_length, max_outstanding_keys, max_failures and failure_window_seconds must be positive"))
        }
    }
}
