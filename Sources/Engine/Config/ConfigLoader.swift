// Config: reads overlay.yaml with Yams, keeps every node's line, decodes it strictly and applies env overrides.

import Foundation
@_spi(Engine) import PluginAPI
import Yams

/// Every problem found in a configuration, each with its file and line.
public struct ConfigProblems: Error, CustomStringConvertible {
    /// The file.
    public let file: String
    /// The problems, in file order.
    public let problems: [ConfigError]

    /// One line per problem: `file:line: key 'x': message`.
    public var lines: [String] {
        problems.map { problem in
            let place = problem.line > 0 ? "\(file):\(problem.line):\(problem.column)" : file
            return problem.path.isEmpty ? "\(place): \(problem.message)" : "\(place): key '\(problem.path)': \(problem.message)"
        }
    }

    /// All lines joined.
    public var description: String { lines.joined(separator: "\n") }
}

/// Reads `overlay.yaml`.
public enum ConfigLoader {
    /// Loads, decodes and validates a configuration file, then applies the environment.
    /// - Parameters:
    ///   - path: The YAML file.
    ///   - environment: Variables that override the file (normally the process environment).
    /// - Returns: The configuration.
    /// - Throws: ``ConfigProblems`` listing every problem found.
    public static func load(path: String, environment: [String: String]) throws -> EngineConfig {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigProblems(file: path, problems: [ConfigError(path: "", line: 0, column: 0, message: "cannot read the file")])
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigProblems(file: path, problems: [ConfigError(path: "", line: 0, column: 0, message: "the file is not UTF-8")])
        }
        return try parse(yaml: text, file: path, environment: environment)
    }

    /// Same as ``load(path:environment:)`` for YAML text.
    public static func parse(yaml: String, file: String, environment: [String: String]) throws -> EngineConfig {
        let root: ConfigNode
        do {
            guard let node = try Yams.compose(yaml: yaml) else {
                throw ConfigProblems(
                    file: file,
                    problems: [ConfigError(path: "", line: 1, column: 1, message: "the file is empty; it needs at least a 'plugins:' section")])
            }
            root = try convert(node)
        } catch let problems as ConfigProblems {
            throw problems
        } catch let error as ConfigError {
            throw ConfigProblems(file: file, problems: [error])
        } catch let error as YamlError {
            throw ConfigProblems(file: file, problems: [yamlProblem(error)])
        } catch {
            throw ConfigProblems(file: file, problems: [ConfigError(path: "", line: 0, column: 0, message: "bad YAML: \(error)")])
        }

        var problems: [ConfigError] = []
        var config = EngineConfig()
        config.sourcePath = file

        guard case .mapping(let pairs) = root.value else {
            throw ConfigProblems(
                file: file,
                problems: [
                    ConfigError(
                        path: "", line: root.line, column: root.column,
                        message: "the top level must be a mapping, found \(root.kindName)")
                ])
        }
        let sections = ["server", "security", "storage", "sessions", "limits", "scene", "plugins"]
        for pair in pairs where !sections.contains(pair.key) {
            problems.append(
                ConfigError(
                    path: pair.key, line: pair.value.line, column: pair.value.column,
                    message: "unknown key '\(pair.key)' (known sections: \(sections.joined(separator: ", ")))"))
        }

        func section<T: Decodable>(_ name: String, _ type: T.Type, into apply: (T) -> Void) {
            guard let node = root[name] else { return }
            do {
                apply(try ConfigDecoder.decodeReportingAll(T.self, from: node))
            } catch let list as ConfigErrorList {
                problems += list.errors.map { $0.prefixed(name) }
            } catch {
                problems.append(ConfigError(path: name, line: node.line, column: node.column, message: "\(error)"))
            }
        }
        section("server", ServerConfig.self) { config.server = $0 }
        section("security", SecurityConfig.self) { config.security = $0 }
        section("storage", StorageConfig.self) { config.storage = $0 }
        section("sessions", SessionsConfig.self) { config.sessions = $0 }
        section("limits", LimitsConfig.self) { config.limits = $0 }
        section("scene", SceneConfig.self) { config.scene = $0 }

        if let pluginsNode = root["plugins"] {
            if case .sequence(let items) = pluginsNode.value {
                for (index, item) in items.enumerated() {
                    do {
                        var entry = try ConfigDecoder.decodeReportingAll(PluginEntry.self, from: item)
                        entry.line = item.line
                        config.plugins.append(entry)
                    } catch let list as ConfigErrorList {
                        problems += list.errors.map { $0.prefixed("plugins[\(index)]") }
                    } catch {
                        problems.append(ConfigError(path: "plugins[\(index)]", line: item.line, column: item.column, message: "\(error)"))
                    }
                }
            } else if !pluginsNode.isNull {
                problems.append(
                    ConfigError(
                        path: "plugins", line: pluginsNode.line, column: pluginsNode.column,
                        message: "expected a list of plugin entries, found \(pluginsNode.kindName)"))
            }
        } else {
            problems.append(
                ConfigError(
                    path: "plugins", line: root.line, column: root.column,
                    message: "missing required section 'plugins' (a list of plugin entries; it may be empty: 'plugins: []')"))
        }

        problems += applyEnvironment(environment, to: &config)
        problems += validate(config, root: root)
        if !problems.isEmpty {
            throw ConfigProblems(file: file, problems: problems.sorted { ($0.line, $0.column) < ($1.line, $1.column) })
        }
        return config
    }

    /// Applies the environment variables that override the file.
    static func applyEnvironment(_ env: [String: String], to config: inout EngineConfig) -> [ConfigError] {
        var problems: [ConfigError] = []
        func int(_ name: String, _ apply: (Int) -> Void) {
            guard let text = env[name], !text.isEmpty else { return }
            if let value = Int(text) {
                apply(value)
            } else {
                problems.append(ConfigError(path: "env \(name)", line: 0, column: 0, message: "expected a whole number, found '\(text)'"))
            }
        }
        func string(_ name: String, _ apply: (String) -> Void) {
            if let text = env[name], !text.isEmpty { apply(text) }
        }
        string("HOST") { config.server.host = $0 }
        int("PORT") { config.server.port = $0 }
        string("PUBLIC_URL") { config.server.publicURL = $0 }
        string("DATA_DIR") { config.server.dataDir = $0 }
        string("UPLOADS_DIR") { config.server.uploadsDir = $0 }
        string("PLUGINS_DIR") { config.server.pluginsDir = $0 }
        string("WEB_DIR") { config.server.webDir = $0 }
        string("STREAMER_API_TOKEN") { config.security.streamerToken = $0 }
        string("OVERLAY_TOKEN") { config.security.overlayToken = $0 }
        string("REDIS_URL") {
            config.storage.redisURL = $0
            config.storage.backend = .redis
        }
        int("MODERATOR_KEY_TTL_SECONDS") { config.sessions.moderatorKeyTTLSeconds = $0 }
        int("MODERATOR_SESSION_TTL_SECONDS") { config.sessions.moderatorSessionTTLSeconds = $0 }
        if let text = env["ENABLE_STRICT_ORIGIN"], !text.isEmpty {
            switch text.lowercased() {
            case "1", "true", "yes", "on": config.security.strictOrigin = true
            case "0", "false", "no", "off": config.security.strictOrigin = false
            default:
                problems.append(ConfigError(path: "env ENABLE_STRICT_ORIGIN", line: 0, column: 0, message: "expected true or false, found '\(text)'"))
            }
        }
        if let text = env["ALLOWED_ORIGINS"], !text.isEmpty {
            config.security.allowedOrigins = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        return problems
    }

    /// Checks values that decode but make no sense.
    static func validate(_ config: EngineConfig, root: ConfigNode) -> [ConfigError] {
        var problems: [ConfigError] = []
        func at(_ keys: [String]) -> (Int, Int) {
            var node: ConfigNode? = root
            for key in keys { node = node?[key] }
            return (node?.line ?? 0, node?.column ?? 0)
        }
        func check(_ ok: Bool, _ keys: [String], _ message: String) {
            guard !ok else { return }
            let (line, column) = at(keys)
            problems.append(ConfigError(path: keys.joined(separator: "."), line: line, column: column, message: message))
        }
        check((0...65_535).contains(config.server.port), ["server", "port"], "must be between 0 and 65535, got \(config.server.port)")
        check(!config.server.host.isEmpty, ["server", "host"], "must not be empty")
        check(
            config.server.publicURL.isEmpty || config.server.publicURL.hasPrefix("http://") || config.server.publicURL.hasPrefix("https://"),
            ["server", "public_url"], "must start with http:// or https://")
        check(config.server.shutdownGraceSeconds >= 0, ["server", "shutdown_grace_seconds"], "must not be negative")
        check(config.server.maxConnections >= 16, ["server", "max_connections"], "must be at least 16")
        for (key, value) in [
            ("header_timeout_seconds", config.server.headerTimeoutSeconds),
            ("idle_timeout_seconds", config.server.idleTimeoutSeconds),
            ("body_timeout_seconds", config.server.bodyTimeoutSeconds),
        ] {
            check((1...86_400).contains(value), ["server", key], "must be 1...86400 seconds")
        }
        check(
            config.sessions.moderatorKeyTTLSeconds > 0, ["sessions", "moderator_key_ttl_seconds"],
            "must be positive, got \(config.sessions.moderatorKeyTTLSeconds)")
        check(
            config.sessions.moderatorSessionTTLSeconds > 0, ["sessions", "moderator_session_ttl_seconds"],
            "must be positive, got \(config.sessions.moderatorSessionTTLSeconds)")
        check(config.limits.maxBodyBytes > 0, ["limits", "max_body_bytes"], "must be positive")
        check(config.limits.wsMaxMessageBytes >= 256, ["limits", "ws_max_message_bytes"], "must be at least 256")
        check(config.limits.wsOutboundQueue >= 1, ["limits", "ws_outbound_queue"], "must be at least 1")
        check(config.limits.wsSendTimeoutSeconds >= 1, ["limits", "ws_send_timeout_seconds"], "must be at least 1")
        check(config.limits.wsPingSeconds >= 1, ["limits", "ws_ping_seconds"], "must be at least 1")
        check((1...10_000).contains(config.limits.wsSceneBacklog), ["limits", "ws_scene_backlog"], "must be between 1 and 10000")
        check((1...10_000).contains(config.scene.maxElements), ["scene", "max_elements"], "must be between 1 and 10000")
        check((1...100_000).contains(config.scene.maxTextLength), ["scene", "max_text_length"], "must be between 1 and 100000")
        check((2...1000).contains(config.scene.historySize), ["scene", "history_size"], "must be between 2 and 1000")
        check((16...100_000).contains(config.scene.replayLogSize), ["scene", "replay_log_size"], "must be between 16 and 100000")
        check(
            (60...31_536_000).contains(config.scene.historyMaxAgeSeconds), ["scene", "history_max_age_seconds"],
            "must be between 60 and 31536000 (a year)")
        check(config.scene.maxBodyBytes >= 1024, ["scene", "max_body_bytes"], "must be at least 1024")
        for (name, rate) in config.limits.rate {
            check(rate.burst >= 1 && rate.perMinute >= 1, ["limits", "rate", name], "burst and per_minute must be at least 1")
        }
        for origin in config.security.allowedOrigins {
            check(
                origin.hasPrefix("http://") || origin.hasPrefix("https://"), ["security", "allowed_origins"],
                "'\(origin)' is not an origin (scheme://host[:port])")
        }
        if config.security.strictOrigin && config.security.allowedOrigins.isEmpty && config.server.publicURL.isEmpty {
            check(
                false, ["security", "strict_origin"],
                "strict origin is on but neither server.public_url nor allowed_origins is set: only pages opened on a loopback address would work")
        }
        if config.storage.backend == .redis && config.storage.redisURL.isEmpty {
            check(false, ["storage", "redis_url"], "backend is redis but redis_url (or REDIS_URL) is empty")
        }
        var seen: [String: Int] = [:]
        for (index, entry) in config.plugins.enumerated() {
            let valid = !entry.name.isEmpty && entry.name.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }
            if !valid {
                problems.append(
                    ConfigError(
                        path: "plugins[\(index)].name", line: entry.line, column: 0,
                        message: "'\(entry.name)' is not a plugin name (letters, digits, '-' and '_')"))
            }
            if let first = seen[entry.name] {
                problems.append(
                    ConfigError(
                        path: "plugins[\(index)].name", line: entry.line, column: 0,
                        message: "plugin '\(entry.name)' is listed twice (first at plugins[\(first)])"))
            } else {
                seen[entry.name] = index
            }
        }
        return problems
    }

    static func yamlProblem(_ error: YamlError) -> ConfigError {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return ConfigError(path: "", line: mark.line, column: mark.column, message: "bad YAML: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return ConfigError(
                path: "", line: context.mark.line, column: context.mark.column,
                message: "duplicate keys: \(duplicates.joined(separator: ", "))")
        default:
            return ConfigError(path: "", line: 0, column: 0, message: "bad YAML: \(error)")
        }
    }

    static func convert(_ node: Node) throws -> ConfigNode {
        let line = node.mark?.line ?? 0
        let column = node.mark?.column ?? 0
        switch node {
        case .scalar(let scalar):
            let quoted = scalar.style == .singleQuoted || scalar.style == .doubleQuoted || scalar.style == .literal || scalar.style == .folded
            return ConfigNode(.scalar(scalar.string, quoted: quoted), line: line, column: column)
        case .mapping(let mapping):
            var pairs: [(key: String, value: ConfigNode)] = []
            for (key, value) in mapping {
                guard case .scalar(let keyScalar) = key else {
                    throw ConfigError(
                        path: "", line: key.mark?.line ?? line, column: key.mark?.column ?? 0, message: "mapping keys must be plain text")
                }
                var child = try convert(value)
                // A block collection starts on the line after its key; problems about it belong to the key's line.
                if let mark = key.mark {
                    switch child.value {
                    case .mapping, .sequence:
                        child.line = mark.line
                        child.column = mark.column
                    case .scalar:
                        if child.line == 0 { child.line = mark.line }
                    }
                }
                pairs.append((keyScalar.string, child))
            }
            return ConfigNode(.mapping(pairs), line: line, column: column)
        case .sequence(let sequence):
            return ConfigNode(.sequence(try sequence.map(convert)), line: line, column: column)
        case .alias:
            throw ConfigError(path: "", line: line, column: column, message: "YAML aliases are not supported in overlay.yaml")
        }
    }
}
