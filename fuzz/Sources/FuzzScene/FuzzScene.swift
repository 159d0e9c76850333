// Fuzzes scene bodies: PUT validation (SceneEditing.put), PATCH parsing and application with rebasing
// (SceneEditing.patch / apply), and scene-name checks.
//
// Input: byte 0 picks the history the PATCH is rebased over and the element limit;
// the rest is the JSON body. Invariants, besides not trapping:
// - an accepted edit never yields two elements with one id;
// - every element the engine accepts and keeps survives a GET-and-PUT-back: its JSON, sent again as
//   a PUT, validates to the same element (a moderator can always save what the engine serves);
// - a kept scene survives the JSON round trip of its version file unchanged.

@testable import Engine
import Foundation
import FuzzSupport
@_spi(Engine) import PluginAPI

func element(_ id: String, _ type: String, _ extra: (inout SceneElement) -> Void = { _ in }) -> SceneElement {
    var element = SceneElement(id: id, type: type)
    extra(&element)
    return element
}

let baseScene: Scene = {
    var scene = Scene(name: "main")
    scene.version = 7
    scene.elements = [
        element("title", "text") {
            $0.text = "hello"
            $0.color = "#fff"
        },
        element("cam", "webrtc") { $0.props = ["room": .string("studio")] },
        element("logo", "image") {
            $0.src = "/static/logo.png"
            $0.opacity = 0.5
        },
        element("widget", "chat") { $0.props = ["speed": .number(2), "tags": .array([.string("a")])] },
    ]
    return scene
}()

func histories() -> [[SceneLogEntry]?] {
    func entry(_ version: Int64, _ action: String, _ changed: [String]?) -> SceneLogEntry {
        SceneLogEntry(version: version, action: action, changed: changed)
    }
    return [[], nil, [entry(8, "patch", ["title"])], [entry(8, "put", nil)], [entry(8, "activate", nil), entry(9, "patch", ["cam", "x"])]]
}
let allHistories = histories()

func checkKept(_ elements: [SceneElement], validator: SceneValidator, what: String) {
    var seen = Set<String>()
    for element in elements where !seen.insert(element.id).inserted {
        fuzzFail("\(what) produced two elements with id '\(element.id)'")
    }
    for (index, kept) in elements.enumerated() {
        guard let bytes = try? JSON.encode(kept), let value = try? JSON.decode(JSONValue.self, from: bytes) else {
            fuzzFail("\(what): a kept element does not encode: \(kept)")
        }
        do {
            let again = try validator.element(value, index: index)
            if again != kept { fuzzFail("\(what): element '\(kept.id)' changed on GET-and-PUT-back:\n\(kept)\n\(again)") }
        } catch {
            fuzzFail("\(what): element '\(kept.id)' was kept but is refused when sent back: \(error)\n\(String(decoding: bytes, as: UTF8.self))")
        }
    }
    var scene = baseScene
    scene.elements = elements
    guard let file = try? JSONEncoder().encode(scene) else { fuzzFail("\(what): the scene does not encode") }
    guard let loaded = try? JSONDecoder().decode(Scene.self, from: file) else {
        fuzzFail("\(what): the scene's version file does not load back: \(String(decoding: file, as: UTF8.self))")
    }
    if loaded != scene { fuzzFail("\(what): the scene changed through its version file") }
}

func fuzzOne(_ input: [UInt8]) {
    var reader = FuzzReader(input)
    let mode = Int(reader.byte())
    let body = reader.rest()
    var limits = SceneLimits()
    limits.pluginElementTypes["chat"] = ElementType(schemaless: "chat")  // a plugin's type (the base scene has one)
    limits.pluginElementTypes["webrtc"] = ElementType(
        "webrtc", label: "Camera",
        properties: [
            .string("room", minLength: 1, maxLength: 64, pattern: "[A-Za-z0-9_-]{1,64}")
        ], required: ["room"])
    limits.maxElements = mode & 0x80 != 0 ? 5 : 50
    limits.maxTextLength = 200
    let validator = SceneValidator(limits: limits)
    let editing = SceneEditing(validator: validator)

    // What the store keeps is what passes `check(elements:)` after the edit (count and unique ids are
    // checked there, at commit, not while a body is parsed), so the invariants apply to that.
    func kept(_ elements: [SceneElement]) -> Bool { (try? validator.check(elements: elements)) != nil }
    if let put = try? editing.put(body) {
        if kept(put.elements) { checkKept(put.elements, validator: validator, what: "PUT") }
        let since = allHistories[mode % allHistories.count]
        if let edit = try? editing.replace(put, current: baseScene, since: since), kept(edit.elements) {
            checkKept(edit.elements, validator: validator, what: "PUT replace")
        }
    }
    if let (baseVersion, operations) = try? editing.patch(body) {
        let since = allHistories[mode % allHistories.count]
        if let edit = try? editing.apply(operations, baseVersion: baseVersion, current: baseScene, since: since), kept(edit.elements) {
            checkKept(edit.elements, validator: validator, what: "PATCH")
        }
    }
    // The same bytes as a scene name (a path parameter).
    _ = SceneValidator.isSceneName(text(body))
}

@_cdecl("FuzzScene_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt { runFuzzer(argc, argv, fuzzOne) }
