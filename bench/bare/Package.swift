// swift-tools-version:6.1
// A bare Hummingbird app: the framework's own ceiling for bench/http.sh (no middleware, fixed bytes).
// Built only when benchmarking; the same Hummingbird major/minor as the engine.
import PackageDescription

let package = Package(
    name: "bare",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1")
    ],
    targets: [
        .executableTarget(
            name: "bare",
            dependencies: [.product(name: "Hummingbird", package: "hummingbird")],
            swiftSettings: [.swiftLanguageMode(.v6)]
        )
    ]
)
