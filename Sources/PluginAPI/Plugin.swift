// The plugin protocol, the API version check and the one C entry point every plugin exports.

/// The version of PluginAPI a binary was compiled against.
///
/// PluginAPI is not built with library evolution, so any change to its types changes their layout:
/// the engine loads a plugin only when the plugin's version equals its own, as nginx does with the
/// signature of a dynamic module.
@frozen
public struct PluginAPIVersion: Sendable, Equatable, CustomStringConvertible {
    /// Incremented when a change breaks plugins built before it.
    public var major: UInt16
    /// Incremented for every other change of a public type.
    public var minor: UInt16

    /// Creates a version from its parts.
    @inlinable
    public init(major: UInt16, minor: UInt16) {
        self.major = major
        self.minor = minor
    }

    /// Creates a version from the packed form that crosses the C entry point.
    @inlinable
    public init(packed: UInt32) {
        self.init(major: UInt16(truncatingIfNeeded: packed >> 16), minor: UInt16(truncatingIfNeeded: packed))
    }

    /// The version packed into 32 bits (major in the high half), as it crosses the C entry point.
    @inlinable
    public var packed: UInt32 { UInt32(major) << 16 | UInt32(minor) }

    /// "major.minor".
    public var description: String { "\(major).\(minor)" }

    /// The version of the PluginAPI sources this binary was compiled from.
    ///
    /// `@_alwaysEmitIntoClient` copies the literal into every plugin and into the engine at compile
    /// time, so a plugin reports the version it was built against, not the one it runs with.
    @_alwaysEmitIntoClient
    public static var current: PluginAPIVersion { PluginAPIVersion(major: 1, minor: 3) }
}

/// The name of the C symbol every plugin exports; see ``PluginExport``.
public let pluginEntrySymbol = "onionrp_plugin_entry"

/// A feature that the engine loads from a shared library: routes, socket events and endpoints.
///
/// The engine creates the plugin once, with its decoded configuration, calls ``setUp(_:)`` so that it
/// registers what it serves, and calls ``shutdown()`` when the engine stops.
public protocol OverlayPlugin: AnyObject, Sendable {
    /// The plugin's own section of `overlay.yaml` (`plugins[].config`), decoded strictly:
    /// unknown keys and wrong types are errors naming the YAML line.
    associatedtype Configuration: Decodable & Sendable = EmptyConfiguration

    /// Name used in `overlay.yaml`, in logs and as the namespace of the plugin's store keys.
    static var name: String { get }
    /// The plugin's own version, shown by `overlay-engine plugins` and `GET /api/plugins`.
    static var version: String { get }
    /// One line that says what the plugin adds.
    static var summary: String { get }

    /// Creates the plugin after its configuration was decoded.
    /// - Parameters:
    ///   - configuration: The decoded `config:` section.
    ///   - context: Everything the plugin may use from the engine.
    init(configuration: Configuration, context: PluginContext) throws

    /// Registers the plugin's routes, socket event handlers and endpoints. Runs once, before serving.
    /// Throwing here stops engine start-up with the error's message.
    func setUp(_ registrar: PluginRegistrar) async throws

    /// Called once when the engine stops, after it stopped accepting requests.
    func shutdown() async
}

extension OverlayPlugin {
    /// Default: nothing to release.
    public func shutdown() async {}
    /// Default summary: empty.
    public static var summary: String { "" }
}

/// The configuration of a plugin that has none: an empty or missing `config:` section.
public struct EmptyConfiguration: Decodable, Sendable {
    /// Creates an empty configuration.
    public init() {}
}

/// A loaded plugin's running instance, with its type erased for the engine.
@_spi(Engine)
public struct PluginInstance: Sendable {
    /// Runs ``OverlayPlugin/setUp(_:)``.
    public let setUp: @Sendable (PluginRegistrar) async throws -> Void
    /// Runs ``OverlayPlugin/shutdown()``.
    public let shutdown: @Sendable () async -> Void
}

/// What a plugin's entry point hands to the engine: its identity and how to create it.
public final class PluginFactory: Sendable {
    /// The plugin's name (``OverlayPlugin/name``).
    public let name: String
    /// The plugin's version (``OverlayPlugin/version``).
    public let version: String
    /// The plugin's summary (``OverlayPlugin/summary``).
    public let summary: String
    /// The PluginAPI version the plugin was compiled against.
    public let builtAgainst: PluginAPIVersion
    /// The Swift module the plugin type lives in (e.g. `TTS`): SwiftPM copies a target's resources to
    /// `<Package>_<Module>.resources` beside the library, where the engine looks for the plugin's `web` folder.
    public let moduleName: String
    private let make: @Sendable (ConfigNode?, PluginContext) throws -> PluginInstance

    /// Creates the factory for a plugin type. Plugins call this through ``PluginExport/entry(_:hostVersion:builtVersion:)``.
    public init<P: OverlayPlugin>(_ type: P.Type, builtAgainst: PluginAPIVersion) {
        self.name = P.name
        self.version = P.version
        self.summary = P.summary
        self.builtAgainst = builtAgainst
        self.moduleName = String(String(reflecting: type).split(separator: ".").first ?? "")
        self.make = { node, context in
            let configuration = try ConfigDecoder.decodeReportingAll(P.Configuration.self, from: node ?? ConfigNode(.mapping([]), line: 0, column: 0))
            let plugin = try P(configuration: configuration, context: context)
            return PluginInstance(setUp: { try await plugin.setUp($0) }, shutdown: { await plugin.shutdown() })
        }
    }

    /// Decodes the plugin's configuration and creates the plugin.
    /// - Parameters:
    ///   - config: The `config:` node from `overlay.yaml`, or nil when the entry has none.
    ///   - context: The context handed to the plugin.
    /// - Returns: The running instance.
    /// - Throws: ``ConfigErrorList`` with every problem of a bad configuration, or whatever the plugin's initialiser throws.
    @_spi(Engine)
    public func instantiate(config: ConfigNode?, context: PluginContext) throws -> PluginInstance {
        try make(config, context)
    }
}

/// The body of every plugin's entry point.
///
/// A plugin exports exactly this, with its own type:
/// ```swift
/// @_cdecl("onionrp_plugin_entry")
/// public func onionrpPluginEntry(_ host: UInt32, _ built: UnsafeMutablePointer<UInt32>?) -> UnsafeMutableRawPointer? {
///     PluginExport.entry(HelloPlugin.self, hostVersion: host, builtVersion: built)
/// }
/// ```
public enum PluginExport {
    /// Reports the PluginAPI version the plugin was compiled against and, when it equals the
    /// engine's, returns a retained ``PluginFactory``.
    /// - Parameters:
    ///   - type: The plugin type.
    ///   - hostVersion: The engine's ``PluginAPIVersion/packed`` version.
    ///   - builtVersion: Receives the plugin's compiled-in version.
    /// - Returns: A retained `PluginFactory`, or nil on a version mismatch (nothing is created then).
    @_alwaysEmitIntoClient
    public static func entry<P: OverlayPlugin>(
        _ type: P.Type, hostVersion: UInt32, builtVersion: UnsafeMutablePointer<UInt32>?
    ) -> UnsafeMutableRawPointer? {
        let mine = PluginAPIVersion.current
        builtVersion?.pointee = mine.packed
        guard hostVersion == mine.packed else { return nil }
        return Unmanaged.passRetained(PluginFactory(P.self, builtAgainst: mine)).toOpaque()
    }
}
