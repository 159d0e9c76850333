// TTS: the plugin's section of overlay.yaml, decoded strictly, with every limit the plugin enforces.

import PluginAPI

/// Where speech is produced.
enum SpeechMode: String, Sendable, Codable, CaseIterable {
    /// Always in the overlay, with the browser's `speechSynthesis`.
    case browser
    /// Always on the server with espeak-ng; overlays play the WAV file.
    case server
    /// On the server only when no connected overlay reported a voice for the language.
    case auto
}

/// A numeric request field's default and accepted range (`{default, min, max}` in overlay.yaml).
struct NumberRange: Sendable, Equatable {
    /// Used when the request leaves the field out.
    var `default`: Double
    /// Smallest accepted value.
    var min: Double
    /// Largest accepted value.
    var max: Double

    enum CodingKeys: String, CodingKey { case `default`, min, max }

    init(default value: Double, min: Double, max: Double) {
        self.default = value
        self.min = min
        self.max = max
    }

    /// Decodes a partial override of `base`: keys left out keep the built-in numbers.
    init(from decoder: any Decoder, base: NumberRange, hardMin: Double, hardMax: Double) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.default = try c.decodeIfPresent(Double.self, forKey: .default) ?? base.default
        self.min = try c.decodeIfPresent(Double.self, forKey: .min) ?? base.min
        self.max = try c.decodeIfPresent(Double.self, forKey: .max) ?? base.max
        guard hardMin <= min, min <= self.default, self.default <= max, max <= hardMax else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                debugDescription: "need \(hardMin) <= min <= default <= max <= \(hardMax)"))
        }
    }

    /// True when `value` is inside the range.
    func contains(_ value: Double) -> Bool { value >= min && value <= max }
}

/// `plugins[name=tts].config`. Every key is optional; see docs/plugins/tts.md.
struct TTSConfiguration: Decodable, Sendable {
    /// browser, server or auto.
    var mode: SpeechMode = .auto
    /// Longest accepted `text`, in characters (after whitespace is collapsed).
    var maxTextLength = 300
    /// Longest accepted `voice` name.
    var maxVoiceLength = 100
    /// Most utterances waiting or speaking at once; more answer 409 `queue_full`.
    var maxQueueLength = 50
    /// `lang` when the request has none.
    var defaultLang = "en-US"
    /// `rate` (1 is normal speed).
    var rate = NumberRange(default: 1, min: 0.1, max: 4)
    /// `pitch` (1 is normal).
    var pitch = NumberRange(default: 1, min: 0, max: 2)
    /// `volume` (1 is full).
    var volume = NumberRange(default: 1, min: 0, max: 1)
    /// Words and phrases refused in `text` (case-insensitive, whole words).
    var blocklist: [String] = []
    /// An utterance that no overlay finishes within base + per_char * characters / rate seconds leaves the queue.
    var timeoutBaseSeconds = 20.0
    /// Seconds added per character of text (divided by the rate).
    var timeoutPerCharSeconds = 0.25
    /// Upper bound of that timeout.
    var timeoutMaxSeconds = 900.0
    /// The espeak-ng executable.
    var espeakPath = "/usr/bin/espeak-ng"
    /// A render taking longer than this is killed and counts as failed.
    var renderTimeoutSeconds = 10.0
    /// Renders running at once; more wait for a free slot.
    var maxConcurrentRenders = 2
    /// Size of the audio cache; the oldest files are removed past it.
    var cacheMaxBytes = 100 << 20
    /// Language tag (or its primary language) to espeak-ng voice, overriding the automatic choice.
    var espeakVoices: [String: String] = [:]

    enum CodingKeys: String, CodingKey {
        case mode, rate, pitch, volume, blocklist
        case maxTextLength = "max_text_length"
        case maxVoiceLength = "max_voice_length"
        case maxQueueLength = "max_queue_length"
        case defaultLang = "default_lang"
        case timeoutBaseSeconds = "timeout_base_seconds"
        case timeoutPerCharSeconds = "timeout_per_char_seconds"
        case timeoutMaxSeconds = "timeout_max_seconds"
        case espeakPath = "espeak_path"
        case renderTimeoutSeconds = "render_timeout_seconds"
        case maxConcurrentRenders = "max_concurrent_renders"
        case cacheMaxBytes = "cache_max_bytes"
        case espeakVoices = "espeak_voices"
    }

    init() {}

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let text = try c.decodeIfPresent(String.self, forKey: .mode) {
            guard let value = SpeechMode(rawValue: text) else {
                throw DecodingError.dataCorruptedError(forKey: .mode, in: c,
                    debugDescription: "expected browser, server or auto, found '\(text)'")
            }
            mode = value
        }
        maxTextLength = try c.decodeIfPresent(Int.self, forKey: .maxTextLength) ?? maxTextLength
        maxVoiceLength = try c.decodeIfPresent(Int.self, forKey: .maxVoiceLength) ?? maxVoiceLength
        maxQueueLength = try c.decodeIfPresent(Int.self, forKey: .maxQueueLength) ?? maxQueueLength
        if let lang = try c.decodeIfPresent(String.self, forKey: .defaultLang) {
            guard let canonical = LanguageTag.canonical(lang) else {
                throw DecodingError.dataCorruptedError(forKey: .defaultLang, in: c,
                    debugDescription: "'\(lang)' is not a language tag like en-US")
            }
            defaultLang = canonical
        }
        rate = try Self.range(c, .rate, base: rate, hardMin: 0.1, hardMax: 10)
        pitch = try Self.range(c, .pitch, base: pitch, hardMin: 0, hardMax: 2)
        volume = try Self.range(c, .volume, base: volume, hardMin: 0, hardMax: 1)
        blocklist = try c.decodeIfPresent([String].self, forKey: .blocklist) ?? blocklist
        timeoutBaseSeconds = try c.decodeIfPresent(Double.self, forKey: .timeoutBaseSeconds) ?? timeoutBaseSeconds
        timeoutPerCharSeconds = try c.decodeIfPresent(Double.self, forKey: .timeoutPerCharSeconds) ?? timeoutPerCharSeconds
        timeoutMaxSeconds = try c.decodeIfPresent(Double.self, forKey: .timeoutMaxSeconds) ?? timeoutMaxSeconds
        espeakPath = try c.decodeIfPresent(String.self, forKey: .espeakPath) ?? espeakPath
        renderTimeoutSeconds = try c.decodeIfPresent(Double.self, forKey: .renderTimeoutSeconds) ?? renderTimeoutSeconds
        maxConcurrentRenders = try c.decodeIfPresent(Int.self, forKey: .maxConcurrentRenders) ?? maxConcurrentRenders
        cacheMaxBytes = try c.decodeIfPresent(Int.self, forKey: .cacheMaxBytes) ?? cacheMaxBytes
        espeakVoices = try c.decodeIfPresent([String: String].self, forKey: .espeakVoices) ?? espeakVoices

        try Self.check(maxTextLength >= 1 && maxTextLength <= 5000, .maxTextLength, c, "must be 1...5000")
        try Self.check(maxVoiceLength >= 1 && maxVoiceLength <= 500, .maxVoiceLength, c, "must be 1...500")
        try Self.check(maxQueueLength >= 1 && maxQueueLength <= 10_000, .maxQueueLength, c, "must be 1...10000")
        try Self.check(timeoutBaseSeconds >= 1, .timeoutBaseSeconds, c, "must be at least 1")
        try Self.check(timeoutPerCharSeconds >= 0, .timeoutPerCharSeconds, c, "must not be negative")
        try Self.check(timeoutMaxSeconds >= timeoutBaseSeconds, .timeoutMaxSeconds, c, "must be at least timeout_base_seconds")
        try Self.check(!espeakPath.isEmpty, .espeakPath, c, "must not be empty")
        try Self.check(renderTimeoutSeconds > 0 && renderTimeoutSeconds <= 600, .renderTimeoutSeconds, c, "must be in (0, 600]")
        try Self.check(maxConcurrentRenders >= 1 && maxConcurrentRenders <= 64, .maxConcurrentRenders, c, "must be 1...64")
        try Self.check(cacheMaxBytes >= 1 << 20, .cacheMaxBytes, c, "must be at least 1048576 (1 MiB)")
        for word in blocklist {
            try Self.check(!Blocklist.words(word).isEmpty, .blocklist, c, "entries must contain a letter or digit")
        }
        for (lang, voice) in espeakVoices {
            try Self.check(LanguageTag.canonical(lang) != nil, .espeakVoices, c, "'\(lang)' is not a language tag")
            try Self.check(EspeakVoices.isSafeName(voice), .espeakVoices, c, "'\(voice)' is not an espeak-ng voice name")
        }
    }

    private static func range(_ c: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys, base: NumberRange,
                              hardMin: Double, hardMax: Double) throws -> NumberRange {
        guard c.contains(key) else { return base }
        return try NumberRange(from: try c.superDecoder(forKey: key), base: base, hardMin: hardMin, hardMax: hardMax)
    }

    private static func check(_ condition: Bool, _ key: CodingKeys, _ c: KeyedDecodingContainer<CodingKeys>,
                              _ message: String) throws {
        if !condition { throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: message) }
    }
}
