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
struct NumberRange: Decodable, Sendable, Equatable {
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

    /// Why the range does not fit inside `hardMin...hardMax` with `min <= default <= max`, or nil.
    func problem(hardMin: Double, hardMax: Double) -> String? {
        hardMin <= min && min <= self.default && self.default <= max && max <= hardMax
            ? nil : "need \(hardMin) <= min <= default <= max <= \(hardMax)"
    }

    /// True when `value` is inside the range.
    func contains(_ value: Double) -> Bool { value >= min && value <= max }
}

/// `plugins[name=tts].config`. Every key is optional; see docs/plugins/tts.md.
struct TTSConfiguration: DefaultedConfiguration {
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
    /// With several engines sharing a store, the engine that queued an utterance publishes its timeout; the others
    /// publish it this much later, should that engine have died.
    var timeoutGraceSeconds = 5.0
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

    init() {}

    /// Limits that hold together, checked after decoding.
    func validate() throws {
        func check(_ condition: Bool, _ key: String, _ message: String) throws {
            if !condition { throw ConfigProblem(key, message) }
        }
        try check(LanguageTag.canonical(defaultLang) != nil, "default_lang", "'\(defaultLang)' is not a language tag like en-US")
        for (key, range, low, high) in [("rate", rate, 0.1, 10.0), ("pitch", pitch, 0, 2), ("volume", volume, 0, 1)] {
            if let problem = range.problem(hardMin: low, hardMax: high) { throw ConfigProblem(key, problem) }
        }
        try check(maxTextLength >= 1 && maxTextLength <= 5000, "max_text_length", "must be 1...5000")
        try check(maxVoiceLength >= 1 && maxVoiceLength <= 500, "max_voice_length", "must be 1...500")
        try check(maxQueueLength >= 1 && maxQueueLength <= 10_000, "max_queue_length", "must be 1...10000")
        try check(timeoutBaseSeconds >= 1, "timeout_base_seconds", "must be at least 1")
        try check(timeoutPerCharSeconds >= 0, "timeout_per_char_seconds", "must not be negative")
        try check(timeoutMaxSeconds >= timeoutBaseSeconds, "timeout_max_seconds", "must be at least timeout_base_seconds")
        try check(timeoutGraceSeconds >= 0.1 && timeoutGraceSeconds <= 3600, "timeout_grace_seconds", "must be 0.1...3600")
        try check(!espeakPath.isEmpty, "espeak_path", "must not be empty")
        try check(renderTimeoutSeconds > 0 && renderTimeoutSeconds <= 600, "render_timeout_seconds", "must be in (0, 600]")
        try check(maxConcurrentRenders >= 1 && maxConcurrentRenders <= 64, "max_concurrent_renders", "must be 1...64")
        try check(cacheMaxBytes >= 1 << 20, "cache_max_bytes", "must be at least 1048576 (1 MiB)")
        for word in blocklist {
            try check(!Blocklist.words(word).isEmpty, "blocklist", "entries must contain a letter or digit")
        }
        for (lang, voice) in espeakVoices {
            try check(LanguageTag.canonical(lang) != nil, "espeak_voices", "'\(lang)' is not a language tag")
            try check(EspeakVoices.isSafeName(voice), "espeak_voices", "'\(voice)' is not an espeak-ng voice name")
        }
    }
}
