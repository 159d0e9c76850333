// swift-tools-version:6.1
// PluginAPI is its own package so that the engine and every plugin link ONE
// dynamic copy of it (libPluginAPI.so): two static copies would give each its own type metadata, and a
// plugin's PluginRegistrar would not be the engine's.
import PackageDescription

let package = Package(
    name: "PluginAPI",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "PluginAPI", type: .dynamic, targets: ["PluginAPI"])
    ],
    targets: [
        .target(
            name: "PluginAPI",
            path: ".",
            exclude: ["Package.swift", "API.txt"],
            swiftSettings: [.swiftLanguageMode(.v6)]
        )
    ]
)
