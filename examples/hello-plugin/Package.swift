// swift-tools-version:6.1
// A plugin for OnionRP Dock, built outside the engine's package: it depends on PluginAPI only.
import PackageDescription

let package = Package(
    name: "hello-plugin",
    platforms: [.macOS(.v15)],
    products: [
        // The product name is the library's file name: libhello.so, loaded as plugin 'hello'.
        .library(name: "hello", type: .dynamic, targets: ["HelloPlugin"]),
    ],
    dependencies: [
        // Point this at the engine's Sources/PluginAPI (a path, or a git URL and version of the engine repo).
        .package(path: "../../Sources/PluginAPI"),
    ],
    targets: [
        .target(
            name: "HelloPlugin",
            dependencies: [.product(name: "PluginAPI", package: "PluginAPI")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
