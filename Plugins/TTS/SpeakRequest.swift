// TTS: validation of what moderators and overlays send: language tags, the blocklist, request bodies, socket reports.

import Foundation
import PluginAPI

/// Language tags in the shape of BCP 47 (`ru-RU`, `en-US`, `zh-Hant-TW`, `es-419`).
///
/// Only the shape is checked (subtag lengths and characters), not the IANA registry.
enum LanguageTag {
    /// Longest accepted tag.
    static let maxLength = 35

    /// The tag with canonical case (`ru-ru` → `ru-RU`, `zh-hant-tw` → `zh-Hant-TW`), or nil when it is not shaped like one.
    /// - Parameters:
    ///   - text: The tag.
    ///   - allowUnderscore: Accept `_` as separator (browsers report `en_US` on some systems).
    static func canonical(_ text: String, allowUnderscore: Bool = false) -> String? {
        var text = text
        if allowUnderscore { text = text.replacingOccurrences(of: "_", with: "-") }
        guard (2...maxLength).contains(text.utf8.count), text.utf8.allSatisfy({ $0 < 0x80 }) else { return nil }
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        guard let first = parts.first, (2...8).contains(first.count), first.allSatisfy(\.isLetter) else { return nil }
        var out = [first.lowercased()]
        var privateUse = false
        for part in parts.dropFirst() {
            guard (1...8).contains(part.count), part.allSatisfy({ $0.isLetter || $0.isNumber }) else { return nil }
            if part.count == 1 {
                privateUse = true
                out.append(part.lowercased())
            } else if !privateUse && part.count == 4 && part.allSatisfy(\.isLetter) && out.count == 1 {
                out.append(part.prefix(1).uppercased() + part.dropFirst().lowercased())  // script
            } else if !privateUse && ((part.count == 2 && part.allSatisfy(\.isLetter)) || (part.count == 3 && part.allSatisfy(\.isNumber))) {
                out.append(part.uppercased())  // region
            } else {
                out.append(part.lowercased())
            }
        }
        return out.joined(separator: "-")
    }

    /// The primary language subtag, lower-cased (`ru-RU` → `ru`).
    static func primary(_ tag: String) -> String {
        String(tag.split(separator: "-", maxSplits: 1).first ?? Substring(tag)).lowercased()
    }
}

/// Words and phrases refused in a text: case-insensitive, whole words only.
///
/// A text and every entry are cut into words (runs of letters, digits and combining marks); an entry
/// matches when its words appear one after another in the text's words. "ass" does not match "class".
struct Blocklist: Sendable {
    private let single: Set<String>
    private let phrases: [[String]]

    /// Builds the list from config entries.
    init(_ entries: [String]) {
        var single = Set<String>()
        var phrases: [[String]] = []
        for entry in entries {
            let words = Self.words(entry)
            if words.count == 1 { single.insert(words[0]) } else if words.count > 1 { phrases.append(words) }
        }
        self.single = single
        self.phrases = phrases
    }

    /// True when nothing is blocked.
    var isEmpty: Bool { single.isEmpty && phrases.isEmpty }

    /// The lower-cased words of `text`.
    static func words(_ text: String) -> [String] {
        var words: [String] = []
        var current = ""
        for character in text.lowercased() {
            let isWordPart =
                character.isLetter || character.isNumber
                || character.unicodeScalars.allSatisfy {
                    $0.properties.generalCategory == .nonspacingMark
                        || $0.properties.generalCategory == .spacingMark
                }
            if isWordPart {
                current.append(character)
            } else if !current.isEmpty {
                words.append(current)
                current = ""
            }
        }
        if !current.isEmpty { words.append(current) }
        return words
    }

    /// True when `text` contains a blocked word or phrase.
    func matches(_ text: String) -> Bool {
        if isEmpty { return false }
        let words = Self.words(text)
        if words.contains(where: single.contains) { return true }
        for phrase in phrases where phrase.count <= words.count {
            for start in 0...(words.count - phrase.count) where words[start] == phrase[0] {
                if Array(words[start..<(start + phrase.count)]) == phrase { return true }
            }
        }
        return false
    }
}

/// A validated `POST /api/tts/speak` body.
struct SpeakRequest: Sendable, Equatable {
    /// The text to say, with whitespace collapsed.
    let text: String
    /// Canonical language tag.
    let lang: String
    /// Speed, 1 is normal.
    let rate: Double
    /// Pitch, 1 is normal.
    let pitch: Double
    /// Volume, 0...1.
    let volume: Double
    /// Optional browser voice name the overlay prefers.
    let voice: String?

    /// The members a body may have.
    static let fields: Set<String> = ["text", "lang", "rate", "pitch", "volume", "voice"]

    /// Parses and validates a body.
    /// - Throws: ``PluginError`` 400: `invalid_json` for a body that is not a JSON object, `invalid_field`
    ///   naming the first bad or unknown field.
    static func parse(_ bytes: [UInt8], configuration: TTSConfiguration, blocklist: Blocklist) throws -> SpeakRequest {
        let members = try jsonObject(bytes, what: "a JSON object with at least 'text'")
        for name in members.keys.sorted() where !fields.contains(name) {
            throw PluginError.invalidField(name, "unknown field (known: \(fields.sorted().joined(separator: ", ")))")
        }

        guard let rawText = members["text"], rawText != .null else { throw PluginError.invalidField("text", "required") }
        guard case .string(let given) = rawText else { throw PluginError.invalidField("text", "must be a string") }
        let text = try normalizedText(given, field: "text")
        guard !text.isEmpty else { throw PluginError.invalidField("text", "must not be empty") }
        guard text.count <= configuration.maxTextLength else {
            throw PluginError.invalidField("text", "at most \(configuration.maxTextLength) characters")
        }
        guard text.contains(where: { $0.isLetter || $0.isNumber }) else {
            throw PluginError.invalidField("text", "must contain a letter or digit")
        }
        if blocklist.matches(text) {
            // The list itself is never echoed.
            throw PluginError.invalidField("text", "contains a blocked word")
        }

        var lang = LanguageTag.canonical(configuration.defaultLang) ?? configuration.defaultLang
        if let value = members["lang"], value != .null {
            guard case .string(let given) = value else { throw PluginError.invalidField("lang", "must be a string like en-US") }
            guard let canonical = LanguageTag.canonical(given) else {
                throw PluginError.invalidField("lang", "must be a BCP 47 language tag like en-US or ru-RU")
            }
            lang = canonical
        }

        let rate = try number(members, "rate", configuration.rate)
        let pitch = try number(members, "pitch", configuration.pitch)
        let volume = try number(members, "volume", configuration.volume)

        var voice: String?
        if let value = members["voice"], value != .null {
            guard case .string(let given) = value else { throw PluginError.invalidField("voice", "must be a string") }
            let name = given.trimmingCharacters(in: .whitespaces)
            guard !name.isEmpty else { throw PluginError.invalidField("voice", "must not be empty") }
            guard name.count <= configuration.maxVoiceLength else {
                throw PluginError.invalidField("voice", "at most \(configuration.maxVoiceLength) characters")
            }
            guard !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                throw PluginError.invalidField("voice", "control characters are not allowed")
            }
            voice = name
        }
        return SpeakRequest(text: text, lang: lang, rate: rate, pitch: pitch, volume: volume, voice: voice)
    }

    /// Collapses whitespace (line breaks and tabs included) to single spaces and trims; refuses other control characters.
    static func normalizedText(_ text: String, field: String) throws -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        var pendingSpace = false
        for scalar in text.unicodeScalars {
            if scalar.properties.isWhitespace {
                pendingSpace = !out.isEmpty
                continue
            }
            if scalar.properties.generalCategory == .control {
                throw PluginError.invalidField(field, "control characters are not allowed")
            }
            if pendingSpace {
                out.unicodeScalars.append(" ")
                pendingSpace = false
            }
            out.unicodeScalars.append(scalar)
        }
        return out
    }

    private static func number(_ members: [String: JSONValue], _ name: String, _ range: NumberRange) throws -> Double {
        guard let value = members[name], value != .null else { return range.default }
        guard case .number(let number) = value, number.isFinite else {
            throw PluginError.invalidField(name, "must be a number from \(format(range.min)) to \(format(range.max))")
        }
        guard range.contains(number) else {
            throw PluginError.invalidField(name, "must be from \(format(range.min)) to \(format(range.max))")
        }
        return number
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
    }
}

/// Reads a body that must be one JSON object.
/// - Throws: ``PluginError`` 400 `invalid_json`.
func jsonObject(_ bytes: [UInt8], what: String) throws -> [String: JSONValue] {
    guard bytes.contains(where: { !($0 == 0x20 || $0 == 0x0a || $0 == 0x0d || $0 == 0x09) }) else {
        throw PluginError.badRequest("the body must be \(what)", code: "invalid_json")
    }
    guard case .object(let members) = try JSON.decode(JSONValue.self, from: bytes) else {
        throw PluginError.badRequest("the body must be \(what)", code: "invalid_json")
    }
    return members
}

/// `{"type":"tts.started"|"tts.finished"|"tts.failed","id","reason"?}` from an overlay.
struct OverlayReport: Sendable {
    /// The utterance.
    let id: String
    /// Why it failed (`tts.failed` only), cut to 200 characters.
    let reason: String?

    /// Decodes and checks a report.
    /// - Throws: ``PluginError`` 400 naming the field.
    static func parse(_ event: SocketEvent) throws -> OverlayReport {
        let members = try jsonObject(event.raw, what: "a JSON object")
        guard case .string(let id)? = members["id"] else { throw PluginError.invalidField("id", "required string") }
        guard (1...64).contains(id.count), id.unicodeScalars.allSatisfy({ $0.isASCII && $0.properties.generalCategory != .control }) else {
            throw PluginError.invalidField("id", "1 to 64 printable ASCII characters")
        }
        var reason: String?
        switch members["reason"] {
        case .string(let text)?:
            reason = String(text.unicodeScalars.filter { $0.properties.generalCategory != .control }.prefix(200).map(Character.init))
        case nil, .null?:
            reason = nil
        default:
            throw PluginError.invalidField("reason", "must be a string")
        }
        return OverlayReport(id: id, reason: reason)
    }

    init(id: String, reason: String?) {
        self.id = id
        self.reason = reason
    }
}

/// `{"type":"tts.capabilities","voices":[...]}`: the languages of an overlay's speechSynthesis voices.
enum CapabilitiesReport {
    /// Most entries read from one report.
    static let maxVoices = 1000

    /// The canonical, lower-cased language tags of the report; entries that are not language tags are skipped.
    /// - Throws: ``PluginError`` 400 when `voices` is missing or not a list of strings.
    static func parse(_ event: SocketEvent) throws -> Set<String> {
        let members = try jsonObject(event.raw, what: "a JSON object")
        guard case .array(let items)? = members["voices"] else { throw PluginError.invalidField("voices", "required list of language tags") }
        guard items.count <= maxVoices else { throw PluginError.invalidField("voices", "at most \(maxVoices) entries") }
        var out = Set<String>()
        for item in items {
            guard case .string(let text) = item else { throw PluginError.invalidField("voices", "entries must be strings") }
            if let tag = LanguageTag.canonical(text, allowUnderscore: true) { out.insert(tag.lowercased()) }
        }
        return out
    }
}
