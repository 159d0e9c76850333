// ModeratorKeys: the plugin's section of overlay.yaml.

/// `plugins[name=moderator-keys].config`.
struct ModeratorKeysConfiguration: Decodable, Sendable {
    /// Longest accepted `streamer_id` and `label`.
    var maxFieldLength = 64
    /// Most unconsumed keys at once; generating more answers 409.
    var maxOutstandingKeys = 100

    enum CodingKeys: String, CodingKey {
        case maxFieldLength = "max_field_length"
        case maxOutstandingKeys = "max_outstanding_keys"
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        maxFieldLength = try c.decodeIfPresent(Int.self, forKey: .maxFieldLength) ?? maxFieldLength
        maxOutstandingKeys = try c.decodeIfPresent(Int.self, forKey: .maxOutstandingKeys) ?? maxOutstandingKeys
        guard maxFieldLength > 0, maxOutstandingKeys > 0 else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "max_field_length and max_outstanding_keys must be positive"))
        }
    }
}
