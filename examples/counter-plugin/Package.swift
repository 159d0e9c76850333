// swift-tools-version:6.1
// A plugin bundle for OnionRP Dock, built outside the engine's package: the library (libcounter.so)
// depends on PluginAPI only; its web folder (web/) is named by `web:` in overlay.yaml.
import PackageDescription

let package = Package(
    name: "counter-plugin",
    platforms: [.macOS(.v15)],
    products: [
        // The product name is the library's file name: libcounter.so, loaded as plugin 'counter'.
        .library(name: "counter", type: .dynamic, targets: ["CounterPlugin"]),
    ],
    dependencies: [
        // The engine checkout's Sources/PluginAPI. Build with the same Swift toolchain as the engine.
        .package(path: "../../Sources/PluginAPI"),
    ],
    targets: [
        .target(
            name: "CounterPlugin",
            dependencies: [.product(name: "PluginAPI", package: "PluginAPI")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
