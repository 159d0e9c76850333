// Scene: what a kept version changed (per element, by name), how one gesture's saves become one
// history entry, and the sentence a history row shows ("Alice moved 'Logo'").

import Foundation
@_spi(Engine) import PluginAPI

/// What one version did to one element, as history shows it.
struct SceneElementChange: Codable, Sendable, Equatable {
    /// The element's id.
    var id: String
    /// Its display name at the time (name, else the start of its text, else its id).
    var name: String
    /// Its type (`text`, `image`, ...).
    var type: String
    /// `added`, `removed` or `changed`.
    var kind: String
    /// The fields that changed (JSON keys), for `changed`.
    var fields: [String]
    /// `visible` and `locked` after the change, so a row can say "hid" or "showed".
    var visible: Bool?
    var locked: Bool?
}

/// One version as the scene log knows it, for rebasing saves made on older versions.
///
/// The log keeps every version (also those history merged into one gesture), bounded by count, so
/// a save based on a version that history no longer lists still rebases.
struct SceneLogEntry: Sendable {
    var version: Int64
    var action: String
    /// Ids of the elements it touched; nil means "everything" (a replace, reorder or restore).
    var changed: [String]?
}

enum SceneHistory {
    /// How many versions per scene the rebase log keeps.
    static let logLimit = 2000
    /// Gestures with a client group token: the next save must come within this (ms) ...
    static let groupGapMS: Int64 = 30_000
    /// ... and the whole gesture within this.
    static let groupSpanMS: Int64 = 600_000
    /// Saves without a token merge when they touch the same elements and fields within this (ms) ...
    static let untaggedGapMS: Int64 = 2_000
    /// ... and the whole run within this.
    static let untaggedSpanMS: Int64 = 60_000

    /// Per-element differences between two versions of a scene.
    /// - Parameters:
    ///   - old: The scene before.
    ///   - new: The scene after.
    ///   - ids: The elements the edit touched, or nil to compare all.
    ///   - moved: The elements the edit moved in the list, when known.
    /// - Returns: The changes (at most 200) and whether the stacking order changed.
    static func changes(from old: Scene, to new: Scene, ids: [String]?, moved: [String]? = nil) -> (changes: [SceneElementChange], reordered: Bool) {
        let before = Dictionary(old.elements.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        let after = Dictionary(new.elements.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first })
        var result: [SceneElementChange] = []
        let candidates: [String]
        if let ids {
            candidates = ids
        } else {
            var seen = Set<String>()
            candidates = (new.elements.map(\.id) + old.elements.map(\.id)).filter { seen.insert($0).inserted }
        }
        for id in candidates where result.count < 200 {
            switch (before[id], after[id]) {
            case (nil, let added?):
                result.append(change(added, kind: "added", fields: []))
            case (let removed?, nil):
                result.append(change(removed, kind: "removed", fields: []))
            case (let was?, let now?) where was != now:
                result.append(change(now, kind: "changed", fields: differingFields(was, now)))
            default:
                break
            }
        }
        let common = Set(before.keys).intersection(after.keys)
        let oldOrder = old.elements.map(\.id).filter(common.contains)
        let newOrder = new.elements.map(\.id).filter(common.contains)
        let reordered = oldOrder != newOrder
        if reordered, result.count < 200 {
            // One element moved in the list (the usual restack): name it; otherwise the row says "the layers".
            let hinted = (moved ?? []).count == 1 ? moved?.first : nil
            if let moved = hinted ?? oldOrder.first(where: { id in oldOrder.filter { $0 != id } == newOrder.filter { $0 != id } }),
                let element = after[moved]
            {
                if let at = result.firstIndex(where: { $0.id == moved }) {
                    if !result[at].fields.contains("order") { result[at].fields.append("order") }
                } else {
                    result.append(change(element, kind: "changed", fields: ["order"]))
                }
            }
        }
        return (result, reordered)
    }

    static func change(_ element: SceneElement, kind: String, fields: [String]) -> SceneElementChange {
        SceneElementChange(
            id: element.id, name: element.displayName, type: element.type, kind: kind, fields: fields,
            visible: element.visible, locked: element.locked)
    }

    /// The JSON keys whose values differ between two versions of an element.
    static func differingFields(_ a: SceneElement, _ b: SceneElement) -> [String] {
        guard let left = try? JSON.encode(a), let right = try? JSON.encode(b),
            case .object(let x)? = try? JSON.decode(JSONValue.self, from: left),
            case .object(let y)? = try? JSON.decode(JSONValue.self, from: right)
        else { return [] }
        return Set(x.keys).union(y.keys).filter { $0 != "id" && $0 != "type" && x[$0] != y[$0] }.sorted()
    }

    /// Merges the changes of a gesture's next save into what the gesture did so far.
    static func merge(_ earlier: [SceneElementChange], _ later: [SceneElementChange]) -> [SceneElementChange] {
        var merged = earlier
        for change in later {
            guard let at = merged.firstIndex(where: { $0.id == change.id }) else {
                merged.append(change)
                continue
            }
            let previous = merged[at]
            switch (previous.kind, change.kind) {
            case ("added", "removed"):
                merged.remove(at: at)
            case ("added", _):
                merged[at] = SceneElementChange(
                    id: change.id, name: change.name, type: change.type, kind: "added", fields: [],
                    visible: change.visible, locked: change.locked)
            case (_, "removed"), (_, "added"):
                merged[at] = change
            default:
                var next = change
                next.fields = Array(Set(previous.fields).union(change.fields)).sorted()
                merged[at] = next
            }
        }
        return merged
    }

    /// Whether `record` continues the gesture of `previous` (the newest kept entry of the same scene).
    ///
    /// Same actor, both plain edits (`patch`) of the same elements with no add or remove, and either the
    /// same client group token (a drag, a burst of nudges, typing in one field) within a generous window,
    /// or, for clients that send no token, the same fields within a short one. A save that changed
    /// nothing (the confirming last save of a drag) continues it too.
    static func continues(_ previous: SceneVersionRecord, with record: SceneVersionRecord) -> Bool {
        guard previous.action == "patch", record.action == "patch", previous.by == record.by,
            previous.scene.name == record.scene.name,
            let before = previous.changed, let now = record.changed, !now.isEmpty, before == now,
            let changes = record.changes, changes.allSatisfy({ $0.kind == "changed" }),
            (previous.changes ?? []).allSatisfy({ $0.kind == "changed" })
        else { return false }
        let gap = record.scene.updatedAt - previous.scene.updatedAt
        let span = record.scene.updatedAt - (previous.startedAt ?? previous.scene.updatedAt)
        switch (previous.group, record.group) {
        case (let a?, let b?):
            return a == b && gap <= groupGapMS && span <= groupSpanMS
        case (nil, nil):
            func fields(_ list: [SceneElementChange]?) -> Set<String> { Set((list ?? []).flatMap(\.fields)) }
            // A save that changed nothing (a gesture's confirming last save) joins whatever came just before.
            return (changes.isEmpty || fields(previous.changes) == fields(record.changes)) && gap <= untaggedGapMS && span <= untaggedSpanMS
        default:
            return false
        }
    }

    /// Who made a version, for people: the moderator's label, `streamer`, `engine`.
    static func actor(_ record: SceneVersionRecord) -> String {
        if let name = record.byName, !name.isEmpty { return name }
        guard let by = record.by else { return "someone" }
        return by.hasPrefix("moderator:") ? "a moderator" : by
    }

    /// The sentence of a history row: "Alice moved 'Logo'", "streamer added text 'Welcome'".
    static func summary(_ record: SceneVersionRecord, labels: [String: String] = [:]) -> String {
        "\(actor(record)) \(what(record, labels: labels))"
    }

    static func quoted(_ name: String) -> String { "'\(name)'" }

    /// The verb phrase for one element's change.
    static func phrase(_ change: SceneElementChange, labels: [String: String] = [:]) -> (verb: String, object: String) {
        let name = quoted(change.name)
        switch change.kind {
        case "added": return ("added", "\((labels[change.type] ?? change.type).lowercased()) \(name)")
        case "removed": return ("deleted", name)
        default: break
        }
        let fields = Set(change.fields)
        let geometry: Set<String> = ["x", "y"]
        if fields.isEmpty { return ("saved", name) }
        if fields.isSubset(of: geometry) { return ("moved", name) }
        if fields.isSubset(of: geometry.union(["width", "height", "size"])) { return ("resized", name) }
        if fields == ["rotation"] { return ("rotated", name) }
        if fields == ["text"] { return ("edited the text of", name) }
        if fields == ["name"] { return ("renamed", "\(name)") }
        if fields == ["visible"] { return (change.visible == false ? "hid" : "showed", name) }
        if fields == ["locked"] { return (change.locked == true ? "locked" : "unlocked", name) }
        if fields.isSubset(of: ["z", "order"]) { return ("restacked", name) }
        let shown = change.fields.filter { $0 != "order" }.map { $0.replacingOccurrences(of: "_", with: " ") }
        let list = shown.count > 3 ? shown.prefix(3).joined(separator: ", ") + "…" : shown.joined(separator: ", ")
        return ("changed \(list) of", name)
    }

    static func what(_ record: SceneVersionRecord, labels: [String: String] = [:]) -> String {
        switch record.action {
        case "create": return "created the scene"
        case "activate": return "put the scene live"
        case "restore": return record.restoredFrom.map { "restored v\($0)" } ?? "restored an older version"
        case "put":
            if let changes = record.changes, !changes.isEmpty, changes.count <= 3 {
                return "replaced the scene (" + changes.map { phrase($0, labels: labels) }.map { "\($0.verb) \($0.object)" }.joined(separator: ", ")
                    + ")"
            }
            return "replaced the scene (\(record.scene.elements.count) elements)"
        default: break
        }
        let changes = record.changes ?? []
        guard !changes.isEmpty else {
            return record.reordered == true ? "restacked the layers" : "saved without changes"
        }
        let phrases = changes.map { phrase($0, labels: labels) }
        let verbs = Set(phrases.map(\.verb))
        if verbs.count == 1, let verb = verbs.first {
            let objects = phrases.map(\.object)
            let list =
                objects.count > 3
                ? objects.prefix(2).joined(separator: ", ") + " and \(objects.count - 2) more"
                : objects.count > 1 ? objects.dropLast().joined(separator: ", ") + " and " + (objects.last ?? "") : objects.joined()
            return "\(verb) \(list)"
        }
        if phrases.count <= 2 { return phrases.map { "\($0.verb) \($0.object)" }.joined(separator: " and ") }
        return "changed \(phrases.count) elements"
    }
}
