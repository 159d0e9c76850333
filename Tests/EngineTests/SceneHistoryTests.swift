@testable import Engine
import Foundation
import Logging
@_spi(Engine) import PluginAPI
import XCTest

/// History that means something: one entry per gesture (per actor, element and window), rows that
/// name who did what to which element, retention by count and age, and rebasing over merged versions.
final class SceneHistoryTests: XCTestCase {
    var folder: URL!

    override func setUp() {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("scene-history-\(UUID().uuidString)")
    }

    override func tearDown() {
        try? FileManager.default.removeItem(at: folder)
    }

    func open(history: Int = 50, maxAge: Int = 7 * 24 * 3600) throws -> (SceneStore, SceneEditing) {
        var limits = SceneLimits()
        limits.historySize = history
        limits.historyMaxAgeSeconds = maxAge
        let store = try SceneStore(dataDirectory: folder, limits: limits, logger: Logger(label: "test")) { _ in }
        return (store, SceneEditing(validator: SceneValidator(limits: limits)))
    }

    /// A PATCH as the route makes it: actor, name for people, optional gesture token.
    @discardableResult
    func patch(
        _ store: SceneStore, _ editing: SceneEditing, _ json: String, by: String = "moderator:s1", name: String = "Alice",
        group: String? = nil
    ) async throws -> Scene {
        let (base, ops) = try editing.patch(Array(json.utf8))
        return try await store.commit(
            name: store.activeName, baseVersion: base, action: "patch", by: by, byName: name,
            group: group
        ) { current, since in
            try editing.apply(ops, baseVersion: base, current: current, since: since)
        }
    }

    func addLogo(_ store: SceneStore, _ editing: SceneEditing) async throws -> Int64 {
        try await patch(
            store, editing, #"{"base_version":1,"ops":[{"op":"add","element":{"id":"img-1","type":"image","src":"/a.png","name":"Logo"}}]}"#,
            by: "streamer", name: "streamer", group: "add-1"
        ).version
    }

    func testOneDragIsOneEntryWithAReadableRow() async throws {
        let (store, editing) = try open()
        var version = try await addLogo(store, editing)
        let before = store.history("main").map { SceneHistory.summary($0) }
        XCTAssertEqual(before.last, "streamer added image 'Logo'")
        // A drag saving every 100 ms: 13 saves with one gesture token.
        for step in 1...13 {
            version = try await patch(
                store, editing, #"{"base_version":\#(version),"ops":[{"op":"update","id":"img-1","fields":{"x":\#(step * 10),"y":\#(step * 5)}}]}"#,
                by: "streamer", name: "streamer", group: "drag-7"
            ).version
        }
        let history = store.history("main")
        XCTAssertEqual(history.count, 3, "create, add, one drag: \(history.map(\.action))")
        let drag = try XCTUnwrap(history.last)
        XCTAssertEqual(SceneHistory.summary(drag), "streamer moved 'Logo'")
        XCTAssertEqual(drag.saves, 13)
        XCTAssertEqual(drag.scene.version, version)
        XCTAssertEqual(drag.scene.elements.first?.x, 130)
        // Merged versions leave no files behind; the version before the drag is still restorable.
        await store.flush()
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("scenes/main").path)
        XCTAssertEqual(Set(files), Set(history.map { "\($0.scene.version).json" }))
        XCTAssertTrue(
            history.contains { $0.scene.version == drag.firstVersion.map { $0 - 1 } ?? -1 },
            "the version before the gesture (undo's target) is kept")
    }

    func testASaveBasedOnAMergedVersionStillRebases() async throws {
        let (store, editing) = try open()
        var version = try await addLogo(store, editing)
        version = try await patch(
            store, editing, #"{"base_version":\#(version),"ops":[{"op":"add","element":{"id":"t","type":"text","text":"Hello"}}]}"#
        ).version
        let seenByOther = version + 1
        for step in 1...3 {
            version = try await patch(
                store, editing, #"{"base_version":\#(version),"ops":[{"op":"update","id":"img-1","fields":{"x":\#(step)}}]}"#,
                group: "drag-1"
            ).version
        }
        XCTAssertFalse(store.history("main").contains { $0.scene.version == seenByOther }, "merged away from history")
        // Another moderator edited the text on the version they last saw (now merged): rebased, not a conflict.
        let rebased = try await patch(
            store, editing, #"{"base_version":\#(seenByOther),"ops":[{"op":"update","id":"t","fields":{"text":"Hi"}}]}"#,
            by: "moderator:s2", name: "Bob")
        XCTAssertEqual(rebased.elements.first { $0.id == "t" }?.text, "Hi")
        XCTAssertEqual(SceneHistory.summary(try XCTUnwrap(store.history("main").last)), "Bob edited the text of 'Hi'")
        // The same element edited on a merged version is still a conflict.
        do {
            _ = try await patch(
                store, editing, #"{"base_version":\#(seenByOther),"ops":[{"op":"update","id":"img-1","fields":{"y":9}}]}"#,
                by: "moderator:s2", name: "Bob")
            XCTFail("expected a conflict")
        } catch let error as PluginError {
            XCTAssertEqual(error.code, "version_conflict")
        }
    }

    func testGesturesOfOthersOrOtherTokensStayApart() async throws {
        let (store, editing) = try open()
        var version = try await addLogo(store, editing)
        version = try await patch(store, editing, #"{"base_version":\#(version),"ops":[{"op":"update","id":"img-1","fields":{"x":1}}]}"#, group: "a")
            .version
        version = try await patch(store, editing, #"{"base_version":\#(version),"ops":[{"op":"update","id":"img-1","fields":{"x":2}}]}"#, group: "b")
            .version
        version = try await patch(
            store, editing, #"{"base_version":\#(version),"ops":[{"op":"update","id":"img-1","fields":{"x":3}}]}"#,
            by: "moderator:s2", name: "Bob", group: "b"
        ).version
        XCTAssertEqual(
            store.history("main").suffix(3).map { SceneHistory.summary($0) },
            ["Alice moved 'Logo'", "Alice moved 'Logo'", "Bob moved 'Logo'"])
        // Without tokens (scripts): the same fields of the same element within a short window merge.
        for x in 4...6 {
            version = try await patch(
                store, editing, #"{"base_version":\#(version),"ops":[{"op":"update","id":"img-1","fields":{"x":\#(x)}}]}"#,
                by: "streamer", name: "streamer"
            ).version
        }
        _ = try await patch(
            store, editing, #"{"base_version":\#(version),"ops":[{"op":"update","id":"img-1","fields":{"visible":false}}]}"#,
            by: "streamer", name: "streamer")
        let rows = store.history("main").suffix(2)
        XCTAssertEqual(rows.map { SceneHistory.summary($0) }, ["streamer moved 'Logo'", "streamer hid 'Logo'"])
        XCTAssertEqual(rows.first?.saves, 3)
    }

    func testRowsSayWhatChanged() async throws {
        let (store, editing) = try open()
        var version = try await addLogo(store, editing)
        func row(_ json: String, group: String? = nil) async throws -> String {
            version = try await patch(store, editing, json.replacingOccurrences(of: "BASE", with: "\(version)"), group: group).version
            return SceneHistory.summary(try XCTUnwrap(store.history("main").last))
        }
        let resized = try await row(#"{"base_version":BASE,"ops":[{"op":"update","id":"img-1","fields":{"width":500,"height":300}}]}"#, group: "r")
        XCTAssertEqual(resized, "Alice resized 'Logo'")
        let added = try await row(#"{"base_version":BASE,"ops":[{"op":"add","element":{"id":"t2","type":"text","text":"Welcome to the stream!"}}]}"#)
        XCTAssertEqual(added, "Alice added text 'Welcome to the stream!'")
        let styled = try await row(
            ##"{"base_version":BASE,"ops":[{"op":"update","id":"t2","fields":{"stroke":"#000","stroke_width":4,"valign":"middle"}}]}"##)
        XCTAssertEqual(styled, "Alice changed stroke, stroke width, valign of 'Welcome to the stream!'")
        let restacked = try await row(#"{"base_version":BASE,"ops":[{"op":"move","id":"t2","index":0}]}"#)
        XCTAssertEqual(restacked, "Alice restacked 'Welcome to the stream!'")
        let deleted = try await row(#"{"base_version":BASE,"ops":[{"op":"remove","id":"img-1"}]}"#)
        XCTAssertEqual(deleted, "Alice deleted 'Logo'")
    }

    func testRetentionByCountAndAge() async throws {
        do {
            let (store, editing) = try open(history: 3)
            var version: Int64 = 1
            for index in 1...5 {
                version = try await patch(
                    store, editing, #"{"base_version":\#(version),"ops":[{"op":"add","element":{"id":"e\#(index)","type":"text","text":"x"}}]}"#
                ).version
            }
            XCTAssertEqual(store.history("main").count, 3)
        }
        try FileManager.default.removeItem(at: folder)
        let (store, editing) = try open(history: 50, maxAge: 1)
        var version: Int64 = 1
        version = try await patch(store, editing, #"{"base_version":1,"ops":[{"op":"add","element":{"id":"a","type":"text","text":"x"}}]}"#).version
        try await Task.sleep(for: .milliseconds(1100))
        version = try await patch(store, editing, #"{"base_version":\#(version),"ops":[{"op":"add","element":{"id":"b","type":"text","text":"y"}}]}"#)
            .version
        XCTAssertEqual(store.history("main").map(\.scene.version), [version], "older than max age: gone, the newest stays")
        XCTAssertEqual(store.retention.maxAgeSeconds, 1)
    }

    func testTextStyleFieldsAreValidated() throws {
        let validator = SceneValidator(limits: SceneLimits())
        let good = try validator.element(
            .object([
                "id": .string("t"), "type": .string("text"), "text": .string("Hi"), "stroke": .string("#000"), "stroke_width": .number(4),
                "shadow": .string("#00000080"), "shadow_blur": .number(8), "shadow_x": .number(0), "shadow_y": .number(4),
                "valign": .string("bottom"), "autofit": .bool(true), "font": .string("Bebas Neue"),
            ]), index: 0)
        XCTAssertEqual(good.strokeWidth, 4)
        XCTAssertEqual(good.valign, "bottom")
        XCTAssertEqual(good.autofit, true)
        let encoded = String(decoding: try JSON.encode(good), as: UTF8.self)
        XCTAssertTrue(encoded.contains(#""stroke_width":4"#), encoded)
        for (field, value) in [
            ("valign", JSONValue.string("center")), ("stroke", .string("url(x)")), ("stroke_width", .number(99)),
            ("autofit", .string("yes")), ("shadow_blur", .number(-1)),
        ] {
            XCTAssertThrowsError(
                try validator.element(.object(["id": .string("t"), "type": .string("text"), "text": .string("x"), field: value]), index: 0),
                field)
        }
    }
}
