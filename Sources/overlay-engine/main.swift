// overlay-engine: serve the overlay engine, check a configuration, or list its plugins.

import ArgumentParser
import Engine
import Foundation
import Logging

@main
struct OverlayEngineCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "overlay-engine",
        abstract: "OnionRP Dock: a self-hosted stream-overlay engine with dlopen-ed plugins.",
        version: OverlayEngine.version,
        subcommands: [Serve.self, CheckConfig.self, Plugins.self],
        defaultSubcommand: Serve.self)
}

struct ConfigOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "The configuration file.")
    var config = "config/overlay.yaml"

    @Option(help: "Log level: trace, debug, info, notice, warning, error (env LOG_LEVEL).")
    var logLevel: String?

    func bootstrapLogging() -> Logger {
        let levelText = logLevel ?? ProcessInfo.processInfo.environment["LOG_LEVEL"] ?? "info"
        let level = Logger.Level(rawValue: levelText.lowercased()) ?? .info
        LoggingSystem.bootstrap { label in
            // StreamLogHandler's format, written in batches (at most 50 ms late; warnings and errors at once).
            var handler = BufferedLogHandler(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "onionrp")
        logger.logLevel = level
        return logger
    }

    func load(overrides: (inout [String: String]) -> Void = { _ in }) throws -> EngineConfig {
        var environment = ProcessInfo.processInfo.environment
        overrides(&environment)
        do {
            return try ConfigLoader.load(path: config, environment: environment)
        } catch let problems as ConfigProblems {
            printError("\(problems.problems.count) problem(s) in \(config):")
            for line in problems.lines { printError(line) }
            throw ExitCode(2)
        }
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve the overlay engine.")

    @OptionGroup var options: ConfigOptions

    @Option(help: "Address to listen on (overrides server.host and HOST).")
    var host: String?

    @Option(help: "Port to listen on (overrides server.port and PORT).")
    var port: Int?

    func run() async throws {
        let logger = options.bootstrapLogging()
        let config = try options.load { env in
            if let host { env["HOST"] = host }
            if let port { env["PORT"] = String(port) }
        }
        let engine: OverlayEngine
        do {
            engine = try await OverlayEngine.prepare(config: config, logger: logger)
        } catch let error as StartupError {
            for line in error.lines { logger.critical("\(line)") }
            logger.critical("start-up failed")
            throw ExitCode(3)
        }
        try await engine.run()
    }
}

struct CheckConfig: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate the configuration and load every plugin without serving.")

    @OptionGroup var options: ConfigOptions

    func run() async throws {
        var logger = options.bootstrapLogging()
        logger.logLevel = .warning
        let config = try options.load()
        do {
            let engine = try await OverlayEngine.prepare(config: config, logger: logger)
            await engine.stopPlugins()
            print("\(options.config): OK, \(engine.plugins.count) plugin(s) loaded: \(engine.plugins.map(\.name).joined(separator: ", "))")
        } catch let error as StartupError {
            printError("\(error.lines.count) problem(s) in \(options.config):")
            for line in error.lines { printError(line) }
            throw ExitCode(3)
        }
    }
}

struct Plugins: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List every plugin: name, version, file, PluginAPI version, routes and events.")

    @OptionGroup var options: ConfigOptions

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func run() async throws {
        var logger = options.bootstrapLogging()
        logger.logLevel = .warning
        let config = try options.load()
        let engine: OverlayEngine
        do {
            engine = try await OverlayEngine.prepare(config: config, logger: logger)
        } catch let error as StartupError {
            for line in error.lines { printError(line) }
            throw ExitCode(3)
        }
        let descriptions = engine.pluginDescriptions
        await engine.stopPlugins()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(descriptions), as: UTF8.self))
            return
        }
        var rows: [[String]] = [["NAME", "VERSION", "API", "FILE"]]
        for plugin in descriptions { rows.append([plugin.name, plugin.version, plugin.apiVersion, plugin.file ?? ""]) }
        let widths = (0..<4).map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            print(
                row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
                    .joined(separator: "  "))
        }
        for plugin in descriptions {
            print("\n\(plugin.name): \(plugin.summary)")
            for route in plugin.routes {
                print("  \(route.method.padding(toLength: 6, withPad: " ", startingAt: 0)) \(route.path)  [\(route.access)]  \(route.summary)")
            }
            for socket in plugin.websockets { print("  WS     \(socket.path)  [\(socket.access)]") }
            for event in plugin.events { print("  EVENT  \(event)") }
            for type in plugin.elementTypes { print("  ELEMENT \(type.type) (\(type.label))") }
            if let web = plugin.web {
                for (page, entry) in [("overlay", web.overlay), ("panel", web.panel), ("admin", web.admin)] {
                    if let entry { print("  WEB     \(page): \(entry.module)") }
                }
                for page in web.pages { print("  PAGE    \(page)") }
            }
        }
    }
}
