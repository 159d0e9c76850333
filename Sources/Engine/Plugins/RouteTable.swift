// Plugins: the route table that checks patterns and finds clashes between the engine and plugins.

@_spi(Engine) import PluginAPI

/// Checks route patterns and finds clashes between the engine and plugins.
struct RouteTable {
    private var owners: [String: String] = [:]
    private(set) var problems: [String] = []

    /// `{name}` segments become `{}` so that `/a/{id}` and `/a/{name}` clash.
    static func shape(_ path: String) -> String {
        path.split(separator: "/", omittingEmptySubsequences: false).map { segment in
            segment.hasPrefix("{") && segment.hasSuffix("}") ? "{}" : String(segment)
        }.joined(separator: "/")
    }

    /// The `{name}` parameters of a pattern.
    static func parameterNames(_ path: String) -> [String] {
        path.split(separator: "/").compactMap { segment in
            segment.hasPrefix("{") && segment.hasSuffix("}") ? String(segment.dropFirst().dropLast()) : nil
        }
    }

    /// The pattern in Hummingbird's syntax (`:name`).
    static func hummingbirdPath(_ path: String) -> String {
        path.split(separator: "/", omittingEmptySubsequences: false).map { segment in
            segment.hasPrefix("{") && segment.hasSuffix("}") ? ":" + segment.dropFirst().dropLast() : String(segment)
        }.joined(separator: "/")
    }

    /// Why a pattern is not acceptable, or nil.
    static func validate(_ path: String) -> String? {
        guard path.hasPrefix("/") else { return "path '\(path)' must start with '/'" }
        guard path.count <= 200 else { return "path '\(path)' is too long" }
        var seen = Set<String>()
        for segment in path.split(separator: "/", omittingEmptySubsequences: true) {
            if segment.hasPrefix("{") || segment.hasSuffix("}") {
                let name = segment.dropFirst().dropLast()
                guard segment.hasPrefix("{"), segment.hasSuffix("}"), !name.isEmpty,
                    name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" })
                else {
                    return "path '\(path)' has a malformed parameter segment '\(segment)'"
                }
                guard seen.insert(String(name)).inserted else { return "path '\(path)' repeats parameter '\(name)'" }
            } else if segment.contains(where: { $0 == "*" || $0 == ":" || $0 == "?" || $0 == "#" }) {
                return "path '\(path)' has a reserved character in '\(segment)'"
            }
        }
        return nil
    }

    /// Claims `method path` for `owner`; a second claim is a clash.
    /// - Returns: false when the claim failed (the problem is recorded).
    @discardableResult
    mutating func claim(method: String, path: String, owner: String, file: String?) -> Bool {
        if let problem = Self.validate(path) {
            problems.append(describe(owner: owner, file: file, reason: problem))
            return false
        }
        if owner != "engine", path == "/plugins" || path.hasPrefix("/plugins/") {
            problems.append(
                describe(owner: owner, file: file, reason: "\(method) \(path): /plugins/ is where the engine serves the plugins' web folders"))
            return false
        }
        let key = method + " " + Self.shape(path)
        if let existing = owners[key] {
            let by = existing == "engine" ? "the engine" : "plugin '\(existing)'"
            problems.append(describe(owner: owner, file: file, reason: "route clash: \(method) \(path) is already registered by \(by)"))
            return false
        }
        owners[key] = owner
        return true
    }

    private func describe(owner: String, file: String?, reason: String) -> String {
        guard owner != "engine", let file else { return "engine: \(reason)" }
        return PluginLoadError(plugin: owner, file: file, reason: reason).description
    }
}
