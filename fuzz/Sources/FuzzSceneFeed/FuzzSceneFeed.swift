// Fuzzes what scale-out parses and builds: the `scene.patch` delta (built from two scenes, applied the way the
// overlay page applies it, it must give the second scene exactly), change-log cursors (`<version>-<n>`), change-log
// entries as Redis returns them (stream ids and fields), and the channel sockets' `patches/since/epoch` options.
//
// Input: byte 0 picks what the rest is; the rest is JSON (two element lists) or raw text.
// Invariants, besides not trapping:
// - applying the patch of (A -> B) to A gives B's elements, width and height (or no patch is built);
// - a cursor that parses prints back to the same text, and ordering agrees with `isFollowed(by:)`;
// - a parsed change-log entry keeps the id it came with.

@testable import Engine
import Foundation
import FuzzSupport
@_spi(Engine) import PluginAPI

struct Pair: Decodable {
    var a: [SceneElement]
    var b: [SceneElement]
}

/// The overlay page's rule (web/js/lib/scene-patch.js), on decoded JSON.
func apply(patch: [String: JSONValue], to elements: [JSONValue]) -> [JSONValue]? {
    guard case .array(let upsert)? = patch["upsert"], case .array(let remove)? = patch["remove"] else { return nil }
    func id(_ value: JSONValue) -> String? {
        if case .object(let object) = value, case .string(let id)? = object["id"] { return id }
        return nil
    }
    let removed = Set(remove.compactMap { if case .string(let id) = $0 { return id } else { return nil } })
    let kept = elements.filter { id($0).map { !removed.contains($0) } ?? false }
    var upserted: [String: JSONValue] = [:]
    for element in upsert { if let id = id(element) { upserted[id] = element } }
    if case .array(let order)? = patch["order"] {
        var byID: [String: JSONValue] = [:]
        for element in kept { if let id = id(element) { byID[id] = element } }
        byID.merge(upserted) { _, new in new }
        var out: [JSONValue] = []
        for item in order {
            guard case .string(let id) = item, let element = byID[id] else { return nil }
            out.append(element)
        }
        return out
    }
    let known = Set(kept.compactMap(id))
    return kept.map { id($0).flatMap { upserted[$0] } ?? $0 } + upsert.filter { id($0).map { !known.contains($0) } ?? false }
}

func fuzzPatch(_ body: [UInt8]) {
    guard let pair = try? JSONDecoder().decode(Pair.self, from: Data(body)) else { return }
    // Scenes the engine keeps have unique ids.
    guard Set(pair.a.map(\.id)).count == pair.a.count, Set(pair.b.map(\.id)).count == pair.b.count else { return }
    var previous = Scene(name: "main")
    previous.version = 4
    previous.elements = pair.a
    var scene = previous
    scene.version = 9
    scene.elements = pair.b
    scene.width = 1280
    let change = SceneChange(scene: scene, previous: previous, active: true, action: "patch", epoch: "e")
    let full = SceneFeed.fullFrame(change, epoch: "e")
    guard let frame = SceneFeed.patchFrame(change, epoch: "e", fullSize: Int.max) else { return }
    guard let message = try? JSON.decode(JSONValue.self, from: Array(frame.readableBytesView)),
        case .object(let object) = message, case .object(let patch)? = object["patch"],
        case .number(let base)? = object["base_version"], base == 4
    else { fuzzFail("the patch frame does not decode: \(String(decoding: frame.readableBytesView, as: UTF8.self))") }
    guard let before = try? JSON.decode(JSONValue.self, from: JSON.encode(previous.elements)), case .array(let elements) = before,
        let after = try? JSON.decode(JSONValue.self, from: JSON.encode(scene.elements))
    else { return }
    guard let applied = apply(patch: patch, to: elements) else { fuzzFail("the patch does not apply to its base: \(patch)") }
    if .array(applied) != after { fuzzFail("patch of A gives\n\(applied)\nnot B\n\(after)") }
    guard case .number(1280)? = patch["width"] else { fuzzFail("the patch lost the width") }
    _ = full
}

func fuzzCursor(_ body: [UInt8]) {
    let raw = text(body)
    let parts = raw.split(separator: " ", maxSplits: 1).map(String.init)
    guard let first = parts.first, let cursor = LedgerCursor(first) else { return }
    if LedgerCursor(cursor.description) != cursor { fuzzFail("cursor \(first) does not print back: \(cursor)") }
    if parts.count == 2, let next = LedgerCursor(parts[1]), cursor.isFollowed(by: next), !(cursor < next) {
        fuzzFail("\(cursor) is followed by \(next) but not before it")
    }
}

func fuzzEntries(_ body: [UInt8]) {
    // Bytes as stream entries: `id\tfield\tvalue...` per line, as XRANGE/XREAD return them.
    var items: [RedisValue] = []
    for line in body.split(separator: 0x0A, omittingEmptySubsequences: false).prefix(64) {
        let parts = line.split(separator: 0x09, omittingEmptySubsequences: false).map { RedisValue.string(Array($0)) }
        guard let id = parts.first else { continue }
        items.append(.array([id, .array(Array(parts.dropFirst()))]))
    }
    items.append(.array([.integer(3)]))
    items.append(.null)
    for change in RedisSceneLedger.parse(items, logger: .init(label: "fuzz")) {
        guard
            items.contains(where: { item in
                if case .array(let pair) = item, let id = pair.first?.text { return LedgerCursor(id) == change.cursor }
                return false
            })
        else { fuzzFail("a change got a cursor no entry had: \(change.cursor)") }
    }
}

func fuzzOptions(_ body: [UInt8]) {
    let query = FormURLEncoding.parse(text(body))
    if let options = try? OverlayEngine.sceneOptions(query), let resume = options.resume {
        if resume.since < 0 || resume.epoch.count > 64 { fuzzFail("accepted since=\(resume.since) epoch of \(resume.epoch.count)") }
    }
}

func fuzzOne(_ data: [UInt8]) {
    guard let mode = data.first else { return }
    let body = Array(data.dropFirst())
    switch mode % 4 {
    case 0: fuzzPatch(body)
    case 1: fuzzCursor(body)
    case 2: fuzzEntries(body)
    default: fuzzOptions(body)
    }
}

@_cdecl("FuzzSceneFeed_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt { runFuzzer(argc, argv, fuzzOne) }
