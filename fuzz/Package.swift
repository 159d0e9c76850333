// swift-tools-version:6.1
// Coverage-guided fuzz targets (libFuzzer) for the engine's and the plugins' pure parsers.
//
// Not part of the engine's build: `scripts/fuzz.sh` builds it with
//   swift build --package-path fuzz --scratch-path .build-fuzz -c debug \
//     -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
// and runs each executable for a bounded time on its corpus (fuzz/corpus/<target>/) after replaying
// fuzz/regressions/<target>/. Internal types are reached with `@testable import` (debug builds are
// compiled with -enable-testing); nothing here is linked into the engine.
import PackageDescription

let fuzzSettings: [SwiftSetting] = [.swiftLanguageMode(.v5)]

func fuzzTarget(_ name: String, _ dependencies: [Target.Dependency]) -> Target {
    .executableTarget(name: name, dependencies: ["FuzzSupport"] + dependencies, path: "Sources/\(name)", swiftSettings: fuzzSettings)
}

let engine: Target.Dependency = .product(name: "Engine", package: "OnionRPDock")
let pluginAPI: Target.Dependency = .product(name: "PluginAPI", package: "PluginAPI")

let package = Package(
    name: "OnionRPDockFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "OnionRPDock", path: ".."),
        .package(path: "../Sources/PluginAPI"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/vapor/multipart-kit.git", from: "4.7.1"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        .target(name: "FuzzSupport", dependencies: [pluginAPI], path: "Sources/FuzzSupport", swiftSettings: fuzzSettings),
        // overlay.yaml: Yams -> ConfigNode -> the strict decoder, the engine's sections and every plugin's section.
        fuzzTarget("FuzzConfig", [engine, pluginAPI, .product(name: "Yams", package: "Yams"),
                                  .product(name: "media", package: "OnionRPDock"),
                                  .product(name: "tts", package: "OnionRPDock"),
                                  .product(name: "webrtc-signaling", package: "OnionRPDock"),
                                  .product(name: "moderator-keys", package: "OnionRPDock")]),
        // Scene bodies: PUT validation, PATCH operations and their application, the JSON round trip of what is kept.
        fuzzTarget("FuzzScene", [engine, pluginAPI]),
        // Scale-out: scene.patch built and applied (must give the new scene), change-log cursors and entries, socket options.
        fuzzTarget("FuzzSceneFeed", [engine, pluginAPI]),
        // The plugin loader's ELF `.comment` reader (the toolchain check before dlopen).
        fuzzTarget("FuzzElfComment", [engine]),
        // multipart/form-data uploads through the Media plugin's UploadReceiver (fast path vs MultipartKit), the
        // boundary, Content-Disposition and file-name sanitising.
        fuzzTarget("FuzzMultipart", [pluginAPI, .product(name: "media", package: "OnionRPDock"),
                                     .product(name: "MultipartKit", package: "multipart-kit")]),
        // The Media plugin's type sniffer and image-size readers.
        fuzzTarget("FuzzSniffer", [pluginAPI, .product(name: "media", package: "OnionRPDock")]),
        // Range, If-None-Match, If-Range and HTTP dates of GET /media/{id}.
        fuzzTarget("FuzzRange", [pluginAPI]),
        // WebRTC room tokens and room names.
        fuzzTarget("FuzzRoomToken", [pluginAPI, .product(name: "webrtc-signaling", package: "OnionRPDock")]),
        // What the WebRTC plugin reads from Janus in sfu mode: HTTP responses, Janus replies, handle_info figures.
        fuzzTarget("FuzzJanus", [pluginAPI, .product(name: "webrtc-signaling", package: "OnionRPDock")]),
        // Inbound socket frames: the engine's envelope, event payloads, signaling payloads, request forms.
        // An engine channel socket after the upgrade: NIO's frame decoder, ChannelSocketHandler, the hub's answers.
        fuzzTarget("FuzzChannelSocket", [engine, pluginAPI, .product(name: "NIOEmbedded", package: "swift-nio"),
                                         .product(name: "NIOWebSocket", package: "swift-nio"),
                                         .product(name: "Logging", package: "swift-log")]),
        fuzzTarget("FuzzSocket", [engine, pluginAPI, .product(name: "webrtc-signaling", package: "OnionRPDock"),
                                  .product(name: "tts", package: "OnionRPDock")]),
    ]
)
