// swift-tools-version:6.1
// PluginAPI is its own package so that the engine and every plugin link ONE
// dynamic copy of it (libPluginAPI.so); see ARCHITECTURE.md section 4.
import PackageDescription

let package = Package(
    name: "PluginAPI",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "PluginAPI", type: .dynamic, targets: ["PluginAPI"]),
    ],
    targets: [
        .target(
            name: "PluginAPI",
            path: ".",
            exclude: ["Package.swift"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
