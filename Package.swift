// swift-tools-version:6.1
// OnionRP Dock: the overlay engine, its plugins and their tests.
import PackageDescription

let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]

/// Every feature plugin is a dynamic library of its own, loaded by the engine with dlopen.
/// The product name is the library's file name (`lib<product>.so`) and the plugin's name in overlay.yaml.
/// Its `web` folder (overlay, panel and admin modules, pages) is copied beside the library as the resources bundle
/// `OnionRPDock_<Name>.resources/web`, where the engine finds it.
func plugin(_ name: String, product: String, web: Bool = true, extra: [Target.Dependency] = []) -> (Product, Target) {
    (
        .library(name: product, type: .dynamic, targets: [name]),
        .target(
            name: name,
            dependencies: [.product(name: "PluginAPI", package: "PluginAPI")] + extra,
            path: "Plugins/\(name)",
            resources: web ? [.copy("web")] : [],
            swiftSettings: strict
        )
    )
}

/// The unit-test target of a plugin, `Tests/<Name>Tests`.
///
/// Every test target is linked into one test executable, so the plugins tested there each bring their
/// `onionrp_plugin_entry` (the C symbol the engine looks up with dlsym in each library); the linker is told to keep the
/// first. No test calls it, and the libraries themselves are linked as before.
func pluginTests(_ name: String, extra: [Target.Dependency] = []) -> Target {
    .testTarget(
        name: "\(name)Tests",
        dependencies: [.target(name: name), .product(name: "PluginAPI", package: "PluginAPI")] + extra,
        path: "Tests/\(name)Tests",
        swiftSettings: strict,
        linkerSettings: [.unsafeFlags(["-Xlinker", "--allow-multiple-definition"], .when(platforms: [.linux]))]
    )
}

let plugins = [
    plugin("ModeratorKeys", product: "moderator-keys", web: false),
    plugin("Media", product: "media", extra: [.product(name: "MultipartKit", package: "multipart-kit")]),
    plugin("TTS", product: "tts"),
    plugin("WebRTCSignaling", product: "webrtc-signaling"),
]

let package = Package(
    name: "OnionRPDock",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "overlay-engine", targets: ["overlay-engine"]),
        // For fuzz/ (a separate package that fuzzes the engine's parsers); the engine itself does not need it.
        .library(name: "Engine", targets: ["Engine"]),
    ] + plugins.map(\.0),
    dependencies: [
        .package(path: "Sources/PluginAPI"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/vapor/multipart-kit.git", from: "4.7.1"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.35.2"),
        .package(url: "https://github.com/hummingbird-project/swift-websocket.git", from: "1.6.2"),
    ],
    targets: [
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL", pkgConfig: "libcrypto",
                       providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CHiredis", path: "Sources/CHiredis",
                       providers: [.apt(["libhiredis-dev"])]),
        .target(
            name: "Engine",
            dependencies: [
                "COpenSSL",
                "CHiredis",
                .product(name: "PluginAPI", package: "PluginAPI"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                // Hummingbird's WebSocket handler, for plugin endpoints served by the engine's own child channel.
                .product(name: "WSCore", package: "swift-websocket"),
            ],
            path: "Sources/Engine",
            swiftSettings: strict
        ),
        .executableTarget(
            name: "overlay-engine",
            dependencies: [
                "Engine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Sources/overlay-engine",
            swiftSettings: strict
        ),
        .testTarget(
            name: "EngineTests",
            dependencies: [
                "Engine",
                .product(name: "PluginAPI", package: "PluginAPI"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
            ],
            path: "Tests/EngineTests",
            swiftSettings: strict
        ),
        // Unit tests of PluginAPI and of each plugin's logic, without HTTP or a browser. A plugin target is a normal
        // target, so `@testable import Media` sees its internals in a debug build. Engine is linked only for OpenSSLCrypto.
        .testTarget(
            name: "PluginAPITests",
            dependencies: [.product(name: "PluginAPI", package: "PluginAPI")],
            path: "Tests/PluginAPITests",
            swiftSettings: strict
        ),
        // What the plugin test targets share (a config mapping built without YAML).
        .target(
            name: "TestSupport",
            dependencies: [.product(name: "PluginAPI", package: "PluginAPI")],
            path: "Tests/TestSupport",
            swiftSettings: strict
        ),
        pluginTests("Media", extra: ["Engine", "TestSupport"]),
        pluginTests("TTS"),
        pluginTests("WebRTCSignaling", extra: ["Engine", "TestSupport"]),
    ] + plugins.map(\.1)
)
