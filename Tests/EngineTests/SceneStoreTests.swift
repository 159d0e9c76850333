@testable import Engine
import Foundation
import Logging
@_spi(Engine) import PluginAPI
import Synchronization
import XCTest

/// The scene model against a real data folder: saves, conflicts, rebase, batches, history, validation, persistence.
final class SceneStoreTests: XCTestCase {
    var folder: URL!

    override func setUp() {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("scene-tests-\(UUID().uuidString)")
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: folder)
    }

    final class Changes: Sendable {
        let list = Mutex<[SceneChange]>([])
        var versions: [Int64] { list.withLock { $0.map(\.scene.version) } }
    }

    func open(_ changes: Changes = Changes(), history: Int = 50) throws -> (SceneStore, SceneEditing) {
        var limits = SceneLimits()
        limits.historySize = history
        limits.maxElements = 20
        let store = try SceneStore(dataDirectory: folder, limits: limits, logger: Logger(label: "test")) { change in
            changes.list.withLock { $0.append(change) }
        }
        return (store, SceneEditing(validator: SceneValidator(limits: limits)))
    }

    func body(_ json: String) -> [UInt8] { Array(json.utf8) }

    func patch(_ store: SceneStore, _ editing: SceneEditing, _ json: String) async throws -> Scene {
        let (base, ops) = try editing.patch(body(json))
        return try await store.commit(name: store.activeName, baseVersion: base, action: "patch", by: "test") { current, since in
            try editing.apply(ops, baseVersion: base, current: current, since: since)
        }
    }

    func put(_ store: SceneStore, _ editing: SceneEditing, _ json: String) async throws -> Scene {
        let parsed = try editing.put(body(json))
        return try await store.commit(name: store.activeName, baseVersion: parsed.baseVersion, action: "put", by: "test") { current, since in
            try editing.replace(parsed, current: current, since: since)
        }
    }

    func expectError(_ code: String, file: StaticString = #filePath, line: UInt = #line, _ work: () async throws -> Void) async {
        do {
            try await work()
            XCTFail("expected \(code)", file: file, line: line)
        } catch let error as PluginError {
            XCTAssertEqual(error.code, code, error.message, file: file, line: line)
        } catch {
            XCTFail("unexpected \(error)", file: file, line: line)
        }
    }

    func testSaveIncrementsVersionAndBroadcastsInOrder() async throws {
        let changes = Changes()
        let (store, editing) = try open(changes)
        XCTAssertEqual(store.active.version, 1)
        let v2 = try await put(store, editing, #"{"base_version":1,"elements":[{"id":"a","type":"text","text":"hi"}]}"#)
        let v3 = try await patch(store, editing, #"{"base_version":2,"ops":[{"op":"update","id":"a","fields":{"x":50}}]}"#)
        XCTAssertEqual([v2.version, v3.version], [2, 3])
        XCTAssertEqual(v3.elements.first?.x, 50)
        await store.flush()
        // The first run's empty `main` (version 1) is a durable change like the others.
        XCTAssertEqual(changes.versions, [1, 2, 3], "each durable change reaches the broadcaster once, in order")
    }

    func testStalePutIsConflictWithCurrentScene() async throws {
        let (store, editing) = try open()
        _ = try await put(store, editing, #"{"base_version":1,"elements":[]}"#)
        do {
            _ = try await put(store, editing, #"{"base_version":1,"elements":[]}"#)
            XCTFail("stale PUT must conflict")
        } catch let error as PluginError {
            XCTAssertEqual(error.status, 409)
            XCTAssertEqual(error.details["current_version"], .number(2))
            XCTAssertEqual(error.details["scene"]?["_version"], .number(2))
        }
    }

    func testPatchRebasesOverOtherElementsButNotTheSameOne() async throws {
        let (store, editing) = try open()
        _ = try await put(store, editing, #"{"base_version":1,"elements":[{"id":"a","type":"text","text":"a"},{"id":"b","type":"text","text":"b"}]}"#)
        // Moderator 1 and 2 both start from version 2.
        _ = try await patch(store, editing, #"{"base_version":2,"ops":[{"op":"update","id":"a","fields":{"x":10}}]}"#)
        let rebased = try await patch(store, editing, #"{"base_version":2,"ops":[{"op":"update","id":"b","fields":{"y":20}}]}"#)
        XCTAssertEqual(rebased.version, 4)
        XCTAssertEqual(rebased.elements.map(\.x), [10, 0])
        XCTAssertEqual(rebased.elements.map(\.y), [0, 20])
        await expectError("version_conflict") {
            _ = try await self.patch(store, editing, #"{"base_version":2,"ops":[{"op":"update","id":"a","fields":{"x":99}}]}"#)
        }
        // A reorder based on an old version cannot be rebased.
        await expectError("version_conflict") {
            _ = try await self.patch(store, editing, #"{"base_version":3,"ops":[{"op":"reorder","ids":["b","a"]}]}"#)
        }
        // Versions newer than any given are refused too.
        await expectError("version_conflict") {
            _ = try await self.patch(store, editing, #"{"base_version":99,"ops":[{"op":"remove","id":"a"}]}"#)
        }
    }

    func testBatchOperations() async throws {
        let (store, editing) = try open()
        let scene = try await patch(
            store, editing,
            #"""
            {"base_version":1,"ops":[
              {"op":"add","element":{"id":"a","type":"text","text":"a"}},
              {"op":"add","element":{"id":"b","type":"image","src":"/b.png"}},
              {"op":"add","element":{"id":"c","type":"video","src":"/c.webm","loop":true}, "index":0},
              {"op":"update","id":"a","fields":{"opacity":0.5,"visible":false}},
              {"op":"remove","id":"b"},
              {"op":"move","id":"a","index":0}
            ]}
            """#)
        XCTAssertEqual(scene.elements.map(\.id), ["a", "c"])
        XCTAssertEqual(scene.elements[0].opacity, 0.5)
        XCTAssertFalse(scene.elements[0].visible)
        let reordered = try await patch(store, editing, #"{"base_version":\#(scene.version),"ops":[{"op":"reorder","ids":["c","a"]}]}"#)
        XCTAssertEqual(reordered.elements.map(\.id), ["c", "a"])
        // A failing operation rejects the whole batch.
        await expectError("invalid_operation") {
            _ = try await self.patch(
                store, editing, #"{"base_version":\#(reordered.version),"ops":[{"op":"remove","id":"c"},{"op":"remove","id":"zz"}]}"#)
        }
        XCTAssertEqual(store.active.elements.count, 2)
    }

    func testValidationNamesElementAndField() async throws {
        let (store, editing) = try open()
        let cases: [(String, String)] = [
            (#"[{"id":"a","type":"hologram"}]"#, "element 'a': type 'hologram' is not a known element type"),
            (#"[{"id":"a","type":"text","text":"x","x":1e300}]"#, "element 'a': x must be between"),
            (#"[{"id":"a","type":"text","text":"x","opacity":2}]"#, "element 'a': opacity must be between 0.0 and 1.0"),
            (#"[{"id":"a","type":"text","text":"x"},{"id":"a","type":"text","text":"y"}]"#, "element 'a': id is used by more than one element"),
            (#"[{"id":"a","type":"text","text":"\#(String(repeating: "x", count: 2001))"}]"#, "element 'a': text is too long"),
            (#"[{"id":"a","type":"video"}]"#, "element 'a': media or src is required for video"),
            (#"[{"id":"a","type":"text","text":"x","colour":"red"}]"#, "element 'a': colour is not a known field"),
            (#"[{"id":"a b","type":"text","text":"x"}]"#, "elements[0].id must be"),
            (#"[{"id":"a","type":"image","src":"javascript:alert(1)"}]"#, "element 'a': src must be an http(s) URL"),
        ]
        for (elements, message) in cases {
            do {
                _ = try await put(store, editing, #"{"base_version":1,"elements":\#(elements)}"#)
                XCTFail("accepted \(elements)")
            } catch let error as PluginError {
                XCTAssertEqual(error.status, 400)
                XCTAssertTrue(error.message.hasPrefix(message), "\(error.message) does not start with \(message)")
            }
        }
        let many = (0..<21).map { #"{"id":"e\#($0)","type":"text","text":"x"}"# }.joined(separator: ",")
        await expectError("invalid_scene") { _ = try await self.put(store, editing, #"{"base_version":1,"elements":[\#(many)]}"#) }
        await expectError("invalid_field") { _ = try await self.put(store, editing, #"{"elements":[]}"#) }
        XCTAssertEqual(store.active.version, 1, "nothing invalid was saved")
    }

    func testHistoryIsBoundedAndSurvivesReopen() async throws {
        do {
            let (store, editing) = try open(history: 3)
            for version in 1...5 {
                _ = try await patch(
                    store, editing, #"{"base_version":\#(version),"ops":[{"op":"add","element":{"id":"e\#(version)","type":"text","text":"x"}}]}"#)
            }
            XCTAssertEqual(store.history("main").map(\.scene.version), [4, 5, 6])
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("scenes/main").path).sorted()
        XCTAssertEqual(files, ["4.json", "5.json", "6.json"])
        let (reopened, editing) = try open(history: 3)
        XCTAssertEqual(reopened.active.version, 6)
        XCTAssertEqual(reopened.active.elements.count, 5)
        XCTAssertEqual(reopened.history("main").map(\.scene.version), [4, 5, 6])
        // Versions never go backwards after a reopen.
        let next = try await patch(reopened, editing, #"{"base_version":6,"ops":[{"op":"remove","id":"e1"}]}"#)
        XCTAssertEqual(next.version, 7)
    }

    func testActivationGivesNewVersionAndPersists() async throws {
        do {
            let (store, editing) = try open()
            let brb = try editing.put(body(#"{"base_version":0,"elements":[{"id":"t","type":"text","text":"brb"}]}"#))
            _ = try await store.commit(name: "brb", baseVersion: 0, action: "put", by: "t", create: true) { current, since in
                try editing.replace(brb, current: current, since: since)
            }
            let activated = try await store.activate("brb", by: "t")
            XCTAssertEqual(activated.version, 3)
            XCTAssertEqual(store.activeName, "brb")
            await expectError("scene_active") { try await store.delete("brb") }
            await expectError("not_found") { _ = try await store.activate("nope", by: "t") }
        }
        let (reopened, _) = try open()
        XCTAssertEqual(reopened.activeName, "brb")
        XCTAssertEqual(reopened.active.elements.first?.text, "brb")
        XCTAssertEqual(reopened.revision, 3)
    }

    func testMediaReferencesAreFound() async throws {
        let (store, editing) = try open()
        _ = try await put(
            store, editing, #"{"base_version":1,"elements":[{"id":"v","type":"video","media":"abc123"},{"id":"i","type":"image","media":"other"}]}"#)
        let users = try await store.elements(referencingMedia: "abc123")
        XCTAssertEqual(users, ["main/v"])
    }
}
