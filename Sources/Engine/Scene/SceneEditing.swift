// Scene: PUT (replace) and PATCH (batched operations) with optimistic concurrency and rebasing.

import Foundation
@_spi(Engine) import PluginAPI

/// Turns request bodies into scene edits.
///
/// Conflicts: a save carries `base_version`, the version the client edited. When it is the current
/// version the save applies. When it is older: a PUT (whole replacement) is refused with 409 and
/// the current scene; a PATCH is *rebased* when none of its operations touches an element that was
/// changed since `base_version` and neither side reordered or replaced the scene; otherwise 409.
/// Two moderators dragging different elements never block each other; the same element never
/// silently loses one of them.
struct SceneEditing {
    let validator: SceneValidator

    struct PutBody {
        var baseVersion: Int64
        var width: Int?
        var height: Int?
        var elements: [SceneElement]
    }

    enum Operation {
        case add(SceneElement, index: Int?)
        case update(id: String, fields: [String: JSONValue])
        case remove(id: String)
        case reorder(ids: [String])
        case move(id: String, index: Int)

        /// The element ids it touches; nil for the whole order.
        var touches: [String]? {
            switch self {
            case .add(let element, _): return [element.id]
            case .update(let id, _), .remove(let id): return [id]
            case .reorder, .move: return nil
            }
        }
    }

    func object(_ bytes: [UInt8]) throws -> [String: JSONValue] {
        guard case .object(let object) = try JSON.decode(JSONValue.self, from: bytes) else {
            throw PluginError.badRequest("the body must be a JSON object", code: "invalid_json")
        }
        return object
    }

    func baseVersion(_ object: [String: JSONValue]) throws -> Int64 {
        guard case .number(let number)? = object["base_version"] else {
            throw PluginError.invalidField("base_version", "is required: the _version the edit was based on")
        }
        guard number >= 0, number == number.rounded(), number < 9e15 else {
            throw PluginError.invalidField("base_version", "must be a whole number >= 0")
        }
        return Int64(number)
    }

    func put(_ bytes: [UInt8]) throws -> PutBody {
        let object = try object(bytes)
        for key in object.keys where !["base_version", "width", "height", "elements", "name", "_version", "updated_at"].contains(key) {
            throw PluginError.invalidField(key, "is not a known field of a scene")
        }
        guard case .array(let items)? = object["elements"] else { throw PluginError.invalidField("elements", "is required (a list)") }
        guard items.count <= validator.limits.maxElements else {
            throw PluginError(
                status: 400, code: "invalid_scene", message: "too many elements (\(items.count), limit \(validator.limits.maxElements))")
        }
        let elements = try items.enumerated().map { try validator.element($0.element, index: $0.offset) }
        return PutBody(
            baseVersion: try baseVersion(object), width: try validator.canvas(object["width"], "width"),
            height: try validator.canvas(object["height"], "height"), elements: elements)
    }

    func patch(_ bytes: [UInt8]) throws -> (Int64, [Operation]) {
        let (base, operations, _) = try patchWithGroup(bytes)
        return (base, operations)
    }

    /// Parses a PATCH body: `base_version`, `ops` and the optional gesture token `group` (1-80 characters)
    /// that lets history show a drag, a burst of nudges or typing in one field as one entry.
    func patchWithGroup(_ bytes: [UInt8]) throws -> (Int64, [Operation], String?) {
        let object = try object(bytes)
        for key in object.keys where !["base_version", "ops", "group"].contains(key) {
            throw PluginError.invalidField(key, "is not a known field (expected base_version, ops and group)")
        }
        var group: String? = nil
        switch object["group"] {
        case nil, .null?: break
        case .string(let token)? where (1...80).contains(token.count): group = token
        default: throw PluginError.invalidField("group", "must be a string of 1-80 characters (the gesture token)")
        }
        guard case .array(let items)? = object["ops"], !items.isEmpty else {
            throw PluginError.invalidField("ops", "is required (a non-empty list of operations)")
        }
        guard items.count <= 1000 else { throw PluginError.invalidField("ops", "has too many operations (limit 1000)") }
        var operations: [Operation] = []
        for (index, item) in items.enumerated() {
            let field = "ops[\(index)]"
            guard case .object(let op) = item, case .string(let kind)? = op["op"] else {
                throw PluginError.invalidField(field, "must be an object with a string 'op' (add, update, remove, reorder, move)")
            }
            func id() throws -> String {
                guard case .string(let id)? = op["id"] else { throw PluginError.invalidField("\(field).id", "is required") }
                return id
            }
            func position(_ key: String) throws -> Int? {
                guard let value = op[key], value != .null else { return nil }
                guard case .number(let n) = value, n >= 0, n == n.rounded(), n < 1e6 else {
                    throw PluginError.invalidField("\(field).\(key)", "must be a whole number >= 0")
                }
                return Int(n)
            }
            switch kind {
            case "add":
                guard let element = op["element"] else { throw PluginError.invalidField("\(field).element", "is required") }
                operations.append(.add(try validator.element(element, index: index), index: try position("index")))
            case "update":
                guard case .object(let fields)? = op["fields"] else { throw PluginError.invalidField("\(field).fields", "is required (an object)") }
                operations.append(.update(id: try id(), fields: fields))
            case "remove":
                operations.append(.remove(id: try id()))
            case "reorder":
                guard case .array(let ids)? = op["ids"] else {
                    throw PluginError.invalidField("\(field).ids", "is required (every element id in the new order)")
                }
                operations.append(
                    .reorder(
                        ids: try ids.map {
                            guard case .string(let id) = $0 else { throw PluginError.invalidField("\(field).ids", "must be strings") }
                            return id
                        }))
            case "move":
                guard let index = try position("index") else { throw PluginError.invalidField("\(field).index", "is required") }
                operations.append(.move(id: try id(), index: index))
            default:
                throw PluginError.invalidField("\(field).op", "'\(kind)' is not an operation (add, update, remove, reorder, move)")
            }
        }
        return (try baseVersion(object), operations, group)
    }

    /// A 409 with the current scene, so the client can take it and redo its edit.
    static func conflict(_ scene: Scene, _ message: String) -> PluginError {
        var error = PluginError(status: 409, code: "version_conflict", message: message)
        error.details["current_version"] = .number(Double(scene.version))
        if let bytes = try? JSON.encode(scene), let value = try? JSON.decode(JSONValue.self, from: bytes) {
            error.details["scene"] = value
        }
        return error
    }

    /// PUT: applies only on the current version.
    func replace(_ body: PutBody, current: Scene, since: [SceneLogEntry]?) throws -> SceneStore.Edit {
        guard since?.isEmpty == true else {
            throw Self.conflict(
                current,
                "scene '\(current.name)' is at version \(current.version), the save was based on \(body.baseVersion); reload and redo the change")
        }
        return SceneStore.Edit(elements: body.elements, width: body.width, height: body.height, changed: nil)
    }

    /// PATCH: applies operations in order, rebasing over versions that touched other elements.
    func apply(_ operations: [Operation], baseVersion: Int64, current: Scene, since: [SceneLogEntry]?) throws -> SceneStore.Edit {
        guard let since else {
            throw Self.conflict(current, "version \(baseVersion) of scene '\(current.name)' is no longer known (current \(current.version)); reload")
        }
        if !since.isEmpty {
            var changedSince = Set<String>()
            for record in since where record.action != "activate" {
                guard let changed = record.changed else {
                    throw Self.conflict(
                        current, "scene '\(current.name)' was replaced or reordered since version \(baseVersion); reload and redo the change")
                }
                changedSince.formUnion(changed)
            }
            for operation in operations {
                guard let touched = operation.touches else {
                    throw Self.conflict(current, "a reorder cannot be rebased over newer versions (current \(current.version)); reload")
                }
                if let clash = touched.first(where: changedSince.contains) {
                    throw Self.conflict(
                        current, "element '\(clash)' was changed by someone else since version \(baseVersion); reload and redo the change")
                }
            }
        }
        var elements = current.elements
        var changed = Set<String>()
        var wholeOrder = false
        var moved: [String] = []
        func index(of id: String) throws -> Int {
            guard let index = elements.firstIndex(where: { $0.id == id }) else {
                throw PluginError(status: 400, code: "invalid_operation", message: "no element '\(id)' in scene '\(current.name)'")
            }
            return index
        }
        for operation in operations {
            switch operation {
            case .add(let element, let position):
                guard !elements.contains(where: { $0.id == element.id }) else {
                    throw PluginError(status: 400, code: "invalid_operation", message: "element '\(element.id)' already exists")
                }
                elements.insert(element, at: min(position ?? elements.count, elements.count))
                changed.insert(element.id)
            case .update(let id, let fields):
                let at = try index(of: id)
                var element = elements[at]
                try validator.apply(fields, to: &element)
                try validator.check(&element)
                elements[at] = element
                changed.insert(id)
            case .remove(let id):
                elements.remove(at: try index(of: id))
                changed.insert(id)
            case .reorder(let ids):
                guard ids.count == elements.count, Set(ids) == Set(elements.map(\.id)) else {
                    throw PluginError(status: 400, code: "invalid_operation", message: "reorder must list every element id exactly once")
                }
                let byID = Dictionary(uniqueKeysWithValues: elements.map { ($0.id, $0) })
                elements = ids.compactMap { byID[$0] }
                wholeOrder = true
            case .move(let id, let position):
                let element = elements.remove(at: try index(of: id))
                elements.insert(element, at: min(position, elements.count))
                wholeOrder = true
                if !moved.contains(id) { moved.append(id) }
            }
        }
        return SceneStore.Edit(
            elements: elements, width: nil, height: nil, changed: wholeOrder ? nil : changed.sorted(),
            moved: moved.isEmpty ? nil : moved)
    }
}
