// Plugins: opens plugin libraries with dlopen, checks their PluginAPI version, decodes their config, runs set-up.

import Foundation
@_spi(Engine) import PluginAPI
#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A plugin that could not be loaded: one line naming the plugin, the file and the reason.
public struct PluginLoadError: Error, CustomStringConvertible, Sendable {
    /// The plugin's name in `overlay.yaml`.
    public let plugin: String
    /// The library file.
    public let file: String
    /// Why it failed.
    public let reason: String

    public var description: String { "plugin '\(plugin)' (\(file)): \(reason)" }
}

/// A plugin that loaded and registered.
public struct LoadedPlugin: Sendable {
    /// Its name.
    public let name: String
    /// Its version.
    public let version: String
    /// Its summary.
    public let summary: String
    /// The library file.
    public let file: String
    /// The PluginAPI version it was built against.
    public let apiVersion: PluginAPIVersion
    /// What it registered.
    public let registrar: PluginRegistrar
    /// Its web folder, served at `/plugins/<name>/`; nil when it has none.
    public let webDirectory: URL?
    /// The running instance.
    let instance: PluginInstance

    /// Runs the plugin's shutdown.
    func shutdown() async { await instance.shutdown() }
}

/// Loads plugin libraries.
public enum PluginLoader {
    /// The C signature of ``PluginAPI/pluginEntrySymbol``.
    typealias EntryFunction = @convention(c) (UInt32, UnsafeMutablePointer<UInt32>?) -> UnsafeMutableRawPointer?

    /// The platform's file name of a library: `lib<name>.so` on Linux, `lib<name>.dylib` on macOS.
    public static func libraryFileName(_ name: String) -> String {
        #if os(macOS)
            return "lib\(name).dylib"
        #else
            return "lib\(name).so"
        #endif
    }

    /// The file an entry loads: its `path` (relative to the plugins folder when not absolute), or the default name.
    public static func resolvePath(_ entry: PluginEntry, pluginsDir: String) -> String {
        let path = entry.path ?? libraryFileName(entry.name)
        if path.hasPrefix("/") { return path }
        return URL(fileURLWithPath: pluginsDir).appendingPathComponent(path).standardizedFileURL.path
    }

    /// The web folder of an entry: `web:` (relative to the working directory), else `web` beside the library when the
    /// library is the only one in its folder, else
    /// the `web` folder of the SwiftPM resources bundle of the plugin's module beside the library
    /// (`<Package>_<Module>.resources/web`, what `resources: [.copy("web")]` produces).
    /// - Returns: The folder, or nil when there is none (an explicit `web:` that is not a folder is an error).
    static func resolveWebDirectory(_ entry: PluginEntry, library: String, moduleName: String) throws -> URL? {
        var isFolder: ObjCBool = false
        if let web = entry.web {
            let url =
                web.hasPrefix("/")
                ? URL(fileURLWithPath: web)
                : URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(web)
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder), isFolder.boolValue else {
                throw PluginLoadError(
                    plugin: entry.name, file: library, reason: "web folder '\(url.standardizedFileURL.path)' (plugins[].web) does not exist")
            }
            return url.standardizedFileURL
        }
        let folder = URL(fileURLWithPath: library).deletingLastPathComponent()
        let beside = folder.appendingPathComponent("web")
        // Only in a bundle's own folder (`counter/libcounter.so` + `counter/web/`): where several plugin libraries
        // share a folder, a `web` there would belong to all of them.
        let libraries = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [])
            .filter { $0.hasPrefix("lib") && ($0.hasSuffix(".so") || $0.hasSuffix(".dylib")) }
        if libraries.count <= 1, FileManager.default.fileExists(atPath: beside.path, isDirectory: &isFolder), isFolder.boolValue {
            return beside.standardizedFileURL
        }
        guard !moduleName.isEmpty else { return nil }
        let bundles = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [])
            .filter { $0.hasSuffix("_\(moduleName).resources") }
            .map { folder.appendingPathComponent($0).appendingPathComponent("web") }
            .filter { FileManager.default.fileExists(atPath: $0.path, isDirectory: &isFolder) && isFolder.boolValue }
        guard bundles.count <= 1 else {
            throw PluginLoadError(
                plugin: entry.name, file: library,
                reason:
                    "more than one resources bundle of module '\(moduleName)' has a web folder (\(bundles.map(\.path).joined(separator: ", "))); set 'web' in its overlay.yaml entry"
            )
        }
        return bundles.first?.standardizedFileURL
    }

    /// Problems with what a plugin declared for the web and the scene: files missing from its web folder, bad page
    /// paths, bad element type declarations.
    static func webProblems(_ registrar: PluginRegistrar, webDirectory: URL?) -> [String] {
        var problems: [String] = []
        for type in registrar.elementTypes { problems += type.declarationProblems }
        let files = registrar.webModules.flatMap { [$0.module] + $0.styles } + registrar.webPages.map(\.file)
        var pages = Set<WebPageKind>()
        for module in registrar.webModules where !pages.insert(module.page).inserted {
            problems.append("declares more than one \(module.page.rawValue) module")
        }
        guard !files.isEmpty else { return problems }
        guard let webDirectory else {
            return problems + [
                "declares web files (\(files.joined(separator: ", "))) but has no web folder: set 'web' in its overlay.yaml entry or put a 'web' folder beside the library"
            ]
        }
        for file in files {
            let parts = file.split(separator: "/", omittingEmptySubsequences: false)
            guard !file.hasPrefix("/"), !parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
                problems.append("web file '\(file)' must be a relative path inside the web folder")
                continue
            }
            if !FileManager.default.fileExists(atPath: webDirectory.appendingPathComponent(file).path) {
                problems.append("web file '\(file)' is missing from \(webDirectory.path)")
            }
        }
        return problems
    }

    /// Opens a library and returns its factory, after checking the entry symbol and the API version.
    /// The library is never closed again: Swift code must not be unloaded.
    static func open(name: String, path: String) throws -> PluginFactory {
        func fail(_ reason: String) -> PluginLoadError { PluginLoadError(plugin: name, file: path, reason: reason) }
        guard FileManager.default.fileExists(atPath: path) else {
            throw fail("file missing (set 'path' in overlay.yaml or PLUGINS_DIR, and build the plugins)")
        }
        // Before dlopen: a library from another compiler can crash while it loads.
        if let mismatch = ToolchainStamp.mismatch(plugin: path) { throw fail(mismatch) }
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            let message = dlerror().map { String(cString: $0) } ?? "unknown error"
            throw fail("cannot be opened: \(message)")
        }
        guard let symbol = dlsym(handle, pluginEntrySymbol) else {
            throw fail("not a plugin: the library has no '\(pluginEntrySymbol)' symbol")
        }
        let entry = unsafeBitCast(symbol, to: EntryFunction.self)
        let host = PluginAPIVersion.current
        var built: UInt32 = 0
        let pointer = entry(host.packed, &built)
        let builtVersion = PluginAPIVersion(packed: built)
        guard builtVersion == host else {
            throw fail(
                "version mismatch: built against PluginAPI \(builtVersion), the engine runs PluginAPI \(host); rebuild the plugin against this engine's PluginAPI"
            )
        }
        guard let pointer else { throw fail("the entry point returned nothing") }
        let factory = Unmanaged<PluginFactory>.fromOpaque(pointer).takeRetainedValue()
        guard factory.name == name else {
            throw fail("the library holds plugin '\(factory.name)', not '\(name)'; fix 'name' or 'path' in overlay.yaml")
        }
        return factory
    }

    static func badConfig(_ error: ConfigError, entry: PluginEntry, index: Int, path: String, file: String) -> PluginLoadError {
        let line = error.line > 0 ? error.line : entry.line
        let located = ConfigError(path: error.path, line: line, column: error.column, message: error.message).prefixed("plugins[\(index)].config")
        return PluginLoadError(
            plugin: entry.name, file: path, reason: "bad config: \(file):\(located.line): key '\(located.path)': \(located.message)")
    }

    /// Loads every enabled plugin of `config`, in order.
    /// - Parameters:
    ///   - config: The engine configuration.
    ///   - pluginsDir: The resolved plugins folder.
    ///   - makeContext: Creates the context a plugin receives.
    /// - Returns: The plugins that loaded, and one error per plugin that did not (all are tried).
    ///   - refusedRegistration: Told about registrations a plugin makes after its set-up returned (they are ignored).
    public static func loadAll(
        config: EngineConfig, pluginsDir: String,
        refusedRegistration: @escaping @Sendable (String) -> Void = { _ in },
        makeContext: (String) throws -> PluginContext
    ) async -> ([LoadedPlugin], [PluginLoadError]) {
        var loaded: [LoadedPlugin] = []
        var errors: [PluginLoadError] = []
        for (index, entry) in config.plugins.enumerated() where entry.enabled {
            let path = resolvePath(entry, pluginsDir: pluginsDir)
            do {
                let factory = try open(name: entry.name, path: path)
                let context = try makeContext(entry.name)
                let instance: PluginInstance
                do {
                    instance = try factory.instantiate(config: entry.config, context: context)
                } catch let list as ConfigErrorList {
                    // One line per problem, each naming the plugin, the file and the YAML line.
                    for error in list.errors.dropLast() {
                        errors.append(badConfig(error, entry: entry, index: index, path: path, file: config.sourcePath))
                    }
                    guard let last = list.errors.last else { throw PluginLoadError(plugin: entry.name, file: path, reason: "bad config") }
                    throw badConfig(last, entry: entry, index: index, path: path, file: config.sourcePath)
                } catch let error as ConfigError {
                    throw badConfig(error, entry: entry, index: index, path: path, file: config.sourcePath)
                } catch let error as PluginLoadError {
                    throw error
                } catch {
                    throw PluginLoadError(plugin: entry.name, file: path, reason: "set-up threw: \(error)")
                }
                let name = entry.name
                let registrar = PluginRegistrar(refused: { what in
                    refusedRegistration("plugin '\(name)': \(what)")
                })
                do {
                    try await instance.setUp(registrar)
                } catch {
                    await instance.shutdown()
                    throw PluginLoadError(plugin: entry.name, file: path, reason: "set-up threw: \(error)")
                }
                registrar.close()
                let webDirectory: URL?
                do {
                    webDirectory = try resolveWebDirectory(entry, library: path, moduleName: factory.moduleName)
                } catch {
                    await instance.shutdown()
                    throw error
                }
                let problems = webProblems(registrar, webDirectory: webDirectory)
                if !problems.isEmpty {
                    await instance.shutdown()
                    for problem in problems.dropLast() { errors.append(PluginLoadError(plugin: entry.name, file: path, reason: problem)) }
                    throw PluginLoadError(plugin: entry.name, file: path, reason: problems[problems.count - 1])
                }
                loaded.append(
                    LoadedPlugin(
                        name: factory.name, version: factory.version, summary: factory.summary, file: path,
                        apiVersion: factory.builtAgainst, registrar: registrar, webDirectory: webDirectory,
                        instance: instance))
            } catch let error as PluginLoadError {
                errors.append(error)
            } catch {
                errors.append(PluginLoadError(plugin: entry.name, file: path, reason: "\(error)"))
            }
        }
        return (loaded, errors)
    }
}
