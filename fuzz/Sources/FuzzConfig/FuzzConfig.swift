// Fuzzes overlay.yaml: Yams -> ConfigNode -> the strict ConfigDecoder, the engine's sections and env
// overrides (ConfigLoader.parse), and every shipped plugin's `config:` section, plus a type with a
// field of every scalar width a plugin author may use (issue 11 item 5).
//
// Input: YAML text. Invariants: nothing traps or overflows the stack; a problem list is never empty
// when parsing fails; a successful parse has only valid plugin names.

@testable import Engine
import FuzzSupport
@testable import Media
@testable import ModeratorKeys
@_spi(Engine) import PluginAPI
@testable import TTS
@testable import WebRTCSignaling
import Yams

/// Every scalar a plugin's Configuration may hold, optional, required-with-default, in lists and maps.
struct EveryType: Decodable {
    var string: String?
    var flag: Bool?
    var int: Int?
    var int8: Int8?
    var int16: Int16?
    var int32: Int32?
    var int64: Int64?
    var uint: UInt?
    var uint8: UInt8?
    var uint16: UInt16?
    var uint32: UInt32?
    var uint64: UInt64?
    var double: Double?
    var float: Float?
    var list: [Int]?
    var bytes: [UInt8]?
    var shorts: [Int16]?
    var map: [String: [UInt16]]?
    var nested: [EveryType]?
    var node: ConfigNode?
    var names: Set<String>?
}

struct Required: Decodable {
    var name: String
    var small: Int8
    var port: UInt16
    var ratio: Float
    var items: [Required]?
}

func decodeAll(_ node: ConfigNode) {
    _ = try? ConfigDecoder.decodeReportingAll(EveryType.self, from: node)
    _ = try? ConfigDecoder.decode(EveryType.self, from: node)
    _ = try? ConfigDecoder.decodeReportingAll(Required.self, from: node)
    _ = try? ConfigDecoder.decodeReportingAll([EveryType].self, from: node)
    _ = try? ConfigDecoder.decodeReportingAll(MediaConfiguration.self, from: node)
    _ = try? ConfigDecoder.decodeReportingAll(TTSConfiguration.self, from: node)
    _ = try? ConfigDecoder.decodeReportingAll(WebRTCSignalingConfiguration.self, from: node)
    _ = try? ConfigDecoder.decodeReportingAll(ModeratorKeysConfiguration.self, from: node)
    _ = try? ConfigDecoder.decodeReportingAll(ServerConfig.self, from: node)
    _ = try? ConfigDecoder.decodeReportingAll(LimitsConfig.self, from: node)
}

func fuzzOne(_ input: [UInt8]) {
    // A first line `#env K=V;K=V` sets environment overrides.
    let yaml = text(input)
    var environment: [String: String] = [:]
    if yaml.hasPrefix("#env "), let line = yaml.split(separator: "\n", maxSplits: 1).first {
        for pair in line.dropFirst(5).split(separator: ";") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            if parts.count == 2 { environment[String(parts[0])] = String(parts[1]) }
        }
    }
    do {
        let config = try ConfigLoader.parse(yaml: yaml, file: "fuzz.yaml", environment: environment)
        for entry in config.plugins where entry.name.isEmpty {
            fuzzFail("accepted a plugin without a name")
        }
    } catch let problems as ConfigProblems {
        if problems.problems.isEmpty { fuzzFail("ConfigProblems with no problem") }
        _ = problems.description
    } catch {
        fuzzFail("ConfigLoader.parse threw \(type(of: error)), not ConfigProblems: \(error)")
    }
    // The decoder on its own, on the whole tree and on each plugin section.
    guard let composed = try? Yams.compose(yaml: yaml), let root = try? ConfigLoader.convert(composed) else { return }
    decodeAll(root)
    if case .sequence(let items)? = root["plugins"]?.value {
        for item in items.prefix(8) { if let section = item["config"] { decodeAll(section) } }
    }
}

@_cdecl("FuzzConfig_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt { runFuzzer(argc, argv, fuzzOne) }
