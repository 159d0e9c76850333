import PluginAPI
@testable import TTS
import XCTest

/// What moderators may ask the overlay to say: text, language, rate/pitch/volume, voice; the blocklist; overlay reports.
final class SpeakRequestTests: XCTestCase {
    let configuration = TTSConfiguration()

    func parse(_ json: String, blocklist: [String] = [], configuration: TTSConfiguration? = nil) throws -> SpeakRequest {
        try SpeakRequest.parse(Array(json.utf8), configuration: configuration ?? self.configuration, blocklist: Blocklist(blocklist))
    }

    /// The request is refused with 400 naming `field`, and the message contains `text`.
    func assertRefused(
        _ json: String, field: String?, code: String = "invalid_field", contains text: String = "",
        blocklist: [String] = [], configuration: TTSConfiguration? = nil, file: StaticString = #filePath, line: UInt = #line
    ) {
        XCTAssertThrowsError(try parse(json, blocklist: blocklist, configuration: configuration), file: file, line: line) { error in
            guard let error = error as? PluginError else { return XCTFail("not a PluginError: \(error)", file: file, line: line) }
            XCTAssertEqual(error.status, 400, file: file, line: line)
            XCTAssertEqual(error.code, code, file: file, line: line)
            XCTAssertEqual(error.details["field"], field.map(JSONValue.string), file: file, line: line)
            XCTAssertTrue(text.isEmpty || error.message.contains(text), "'\(error.message)' lacks '\(text)'", file: file, line: line)
        }
    }

    func testDefaultsAndNormalisation() throws {
        let request = try parse(#"{"text": "  Hello,\n\tworld  \u2003 again ", "lang": null, "voice": null}"#)
        XCTAssertEqual(request, SpeakRequest(text: "Hello, world again", lang: "en-US", rate: 1, pitch: 1, volume: 1, voice: nil))
        let full = try parse(#"{"text": "Привет", "lang": "ru-ru", "rate": 0.1, "pitch": 2, "volume": 0, "voice": "  Google русский  "}"#)
        XCTAssertEqual(full, SpeakRequest(text: "Привет", lang: "ru-RU", rate: 0.1, pitch: 2, volume: 0, voice: "Google русский"))
    }

    func testTextIsRequiredPrintableAndBounded() throws {
        assertRefused(#"{}"#, field: "text", contains: "required")
        assertRefused(#"{"text": null}"#, field: "text", contains: "required")
        assertRefused(#"{"text": 5}"#, field: "text", contains: "must be a string")
        assertRefused(#"{"text": " \n\t "}"#, field: "text", contains: "must not be empty")
        assertRefused(#"{"text": "?!... --"}"#, field: "text", contains: "letter or digit")
        assertRefused(#"{"text": "bell\u0007"}"#, field: "text", contains: "control characters")
        assertRefused(#"{"text": "nul\u0000"}"#, field: "text", contains: "control characters")
        // The limit counts characters after whitespace is collapsed.
        let limit = configuration.maxTextLength
        XCTAssertEqual(try parse(#"{"text": "\#(String(repeating: "a", count: limit))"}"#).text.count, limit)
        XCTAssertEqual(
            try parse(#"{"text": "\#(String(repeating: "a ", count: limit / 2))\#(String(repeating: " ", count: 500))"}"#).text.count, limit - 1)
        XCTAssertEqual(try parse(#"{"text": "\#(String(repeating: "й", count: limit))"}"#).text.count, limit)
        assertRefused(#"{"text": "\#(String(repeating: "a", count: limit + 1))"}"#, field: "text", contains: "at most \(limit) characters")
        // Unknown members and bodies that are not one JSON object.
        assertRefused(#"{"text": "hi", "speed": 2}"#, field: "speed", contains: "unknown field (known: lang, pitch, rate, text, voice, volume)")
        assertRefused(#"["hi"]"#, field: nil, code: "invalid_json")
        assertRefused("  \n", field: nil, code: "invalid_json")
        assertRefused(#"{"text": "hi""#, field: nil, code: "invalid_json")
        assertRefused(
            String(repeating: "[", count: 65) + String(repeating: "]", count: 65), field: nil, code: "invalid_json", contains: "deeper than 64")
    }

    func testRatePitchAndVolumeAreRefusedOutsideTheirRanges() throws {
        XCTAssertEqual(try parse(#"{"text": "x", "rate": 4, "pitch": 0, "volume": 1}"#).rate, 4)
        assertRefused(#"{"text": "x", "rate": 4.01}"#, field: "rate", contains: "must be from 0.1 to 4")
        assertRefused(#"{"text": "x", "rate": 0.09}"#, field: "rate", contains: "must be from 0.1 to 4")
        assertRefused(#"{"text": "x", "rate": "fast"}"#, field: "rate", contains: "must be a number from 0.1 to 4")
        assertRefused(#"{"text": "x", "pitch": -0.5}"#, field: "pitch", contains: "must be from 0 to 2")
        assertRefused(#"{"text": "x", "volume": 1.5}"#, field: "volume", contains: "must be from 0 to 1")
        assertRefused(#"{"text": "x", "volume": true}"#, field: "volume", contains: "must be a number")
        // The ranges come from the configuration.
        var narrow = TTSConfiguration()
        narrow.rate = NumberRange(default: 1.5, min: 1, max: 2)
        XCTAssertEqual(try parse(#"{"text": "x"}"#, configuration: narrow).rate, 1.5)
        assertRefused(#"{"text": "x", "rate": 0.5}"#, field: "rate", contains: "must be from 1 to 2", configuration: narrow)
    }

    func testLanguageAndVoice() throws {
        assertRefused(#"{"text": "x", "lang": "en_US"}"#, field: "lang", contains: "BCP 47")
        assertRefused(#"{"text": "x", "lang": 7}"#, field: "lang", contains: "must be a string")
        assertRefused(#"{"text": "x", "voice": "   "}"#, field: "voice", contains: "must not be empty")
        assertRefused(#"{"text": "x", "voice": "a\u0009b"}"#, field: "voice", contains: "control characters")
        assertRefused(
            #"{"text": "x", "voice": "\#(String(repeating: "v", count: configuration.maxVoiceLength + 1))"}"#, field: "voice",
            contains: "at most \(configuration.maxVoiceLength) characters")
        assertRefused(#"{"text": "x", "voice": ["a"]}"#, field: "voice", contains: "must be a string")
    }

    func testLanguageTags() {
        let cases: [(String, String?)] = [
            ("en-US", "en-US"), ("EN-us", "en-US"), ("zh-hant-tw", "zh-Hant-TW"), ("es-419", "es-419"), ("ru", "ru"),
            ("sr-latn", "sr-Latn"), ("de-CH-1996", "de-CH-1996"), ("en-x-pirate", "en-x-pirate"), ("en-x-abcd-ab", "en-x-abcd-ab"),
            ("cmn", "cmn"), ("english", "english"),
            ("e", nil), ("en_US", nil), ("en--US", nil), ("en-", nil), ("-en", nil), ("1en", nil), ("en-US!", nil),
            ("ру", nil), ("en-abcdefghi", nil), ("abcdefghi", nil), (String(repeating: "en-", count: 12) + "en", nil), ("", nil),
        ]
        for (text, expected) in cases {
            XCTAssertEqual(LanguageTag.canonical(text), expected, text)
        }
        XCTAssertEqual(LanguageTag.canonical("en_gb", allowUnderscore: true), "en-GB")
        XCTAssertEqual(LanguageTag.primary("zh-Hant-TW"), "zh")
        XCTAssertEqual(LanguageTag.primary("RU"), "ru")
    }

    func testTheBlocklistMatchesWholeWordsOnly() throws {
        let list = Blocklist(["ass", "Bad Word", "  ", "ёжик", "42"])
        XCTAssertTrue(list.matches("what an ASS!"))
        XCTAssertTrue(list.matches("ass"))
        XCTAssertFalse(list.matches("first class passage, assistant, bass"))
        XCTAssertTrue(list.matches("a bad   word; here"))
        XCTAssertTrue(list.matches("BAD-WORD"))
        XCTAssertFalse(list.matches("badword"))
        XCTAssertFalse(list.matches("bad words"))
        XCTAssertFalse(list.matches("word bad"))
        XCTAssertTrue(list.matches("Ёжик в тумане"))
        XCTAssertTrue(list.matches("answer: 42."))
        XCTAssertFalse(list.matches("4242"))
        XCTAssertFalse(list.matches(""))
        XCTAssertTrue(Blocklist([]).isEmpty)
        XCTAssertTrue(Blocklist(["!!", " "]).isEmpty)
        // Combining marks stay inside a word: "cafe\u{301}" is one word, not "cafe" and a mark.
        XCTAssertEqual(Blocklist.words("Cafe\u{301} au-lait"), ["cafe\u{301}", "au", "lait"])
        XCTAssertFalse(Blocklist(["cafe"]).matches("cafe\u{301}"))
        // A refusal never echoes the list.
        assertRefused(#"{"text": "you bad word"}"#, field: "text", contains: "contains a blocked word", blocklist: ["bad word"])
        XCTAssertThrowsError(try parse(#"{"text": "you bad word"}"#, blocklist: ["bad word"])) { error in
            XCTAssertFalse("\(error)".contains("bad word"))
        }
        XCTAssertEqual(try parse(#"{"text": "a badword"}"#, blocklist: ["bad word"]).text, "a badword")
    }

    func testOverlayReports() throws {
        func event(_ json: String) -> SocketEvent { SocketEvent(type: "tts.failed", raw: Array(json.utf8)) }
        let report = try OverlayReport.parse(
            event(#"{"type": "tts.failed", "id": "u1", "reason": "no\nvoice \#(String(repeating: "x", count: 300))"}"#))
        XCTAssertEqual(report.id, "u1")
        XCTAssertEqual(report.reason?.count, 200)
        XCTAssertTrue(report.reason?.hasPrefix("novoice") == true)
        XCTAssertNil(try OverlayReport.parse(event(#"{"id": "u1", "reason": null}"#)).reason)
        XCTAssertThrowsError(try OverlayReport.parse(event(#"{"id": ""}"#)))
        XCTAssertThrowsError(try OverlayReport.parse(event(#"{"id": "é"}"#)))
        XCTAssertThrowsError(try OverlayReport.parse(event(#"{"id": "\#(String(repeating: "i", count: 65))"}"#)))
        XCTAssertThrowsError(try OverlayReport.parse(event(#"{"id": "u1", "reason": 5}"#)))

        let voices = try CapabilitiesReport.parse(event(#"{"voices": ["en_US", "ru-RU", "not a tag", "zh-Hant-TW", "en-us"]}"#))
        XCTAssertEqual(voices, ["en-us", "ru-ru", "zh-hant-tw"])
        XCTAssertThrowsError(try CapabilitiesReport.parse(event(#"{"voices": "en"}"#)))
        XCTAssertThrowsError(try CapabilitiesReport.parse(event(#"{"voices": [1]}"#)))
        XCTAssertThrowsError(
            try CapabilitiesReport.parse(event(#"{"voices": [\#(Array(repeating: "\"en\"", count: 1001).joined(separator: ","))]}"#)))
    }
}
