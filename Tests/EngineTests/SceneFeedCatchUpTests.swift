@testable import Engine
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NIOWebSocket
@_spi(Engine) import PluginAPI
import XCTest

/// A reconnecting overlay (`?since=&epoch=`) gets every version it missed exactly once and in order, through a real
/// hub, feed and connection on NIO's test channel, in the two orders a save can race a connect:
/// - the scene store installs a version before the feed publishes it, so the active scene can be ahead of the log;
/// - a change can be published after the connection is registered but before its catch-up ran.
/// Both made a resuming overlay skip versions (found as a flaky cluster test: "missed [33, 34]").
final class SceneFeedCatchUpTests: XCTestCase {
    static let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

    static func scene(_ version: Int64) -> Scene {
        var scene = Scene(name: "main")
        scene.version = version
        var element = SceneElement(id: "a", type: "text")
        element.x = Double(version)
        element.text = "v\(version)"
        scene.elements = [element]
        return scene
    }

    static func change(_ version: Int64) -> SceneChange {
        SceneChange(scene: scene(version), previous: version > 1 ? scene(version - 1) : nil, active: true, action: "patch", epoch: "e")
    }

    /// Opens an overlay socket whose catch-up runs `catchUp`, then runs `after`; returns the versions of the scene
    /// frames it was sent (`scene.full` and `scene.patch`), in order, and the `scene.resumed` messages.
    func serve(
        feed: SceneFeed, hub: ChannelHub, catchUp: @escaping @Sendable (ChannelConnection) -> Void, after: @escaping @Sendable () -> Void
    ) async throws -> (versions: [Int64], resumed: [[String: JSONValue]]) {
        let loop = NIOAsyncTestingEventLoop()
        let channel = NIOAsyncTestingChannel(loop: loop)
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).get()
        let settings = ChannelSocketHandler.Settings(maxMessageBytes: 1 << 16, pingPeriod: .hours(1), closeTimeout: .hours(1))
        try await loop.submit {
            try channel.pipeline.syncOperations.addHandler(WebSocketFrameEncoder())
            try hub.open(
                channel: .overlay, caller: .overlay, clientLabel: nil, takesPatches: true, on: channel, settings: settings, afterConnect: catchUp)
        }.get()
        after()
        for _ in 0..<20 {
            await Task.yield()
            await loop.run()
        }
        var bytes: [UInt8] = []
        while let part = try await channel.readOutbound(as: ByteBuffer.self) { bytes += part.readableBytesView }
        _ = try? await channel.close()
        await loop.run()
        var versions: [Int64] = []
        var resumed: [[String: JSONValue]] = []
        var at = 0
        while at + 2 <= bytes.count {
            var length = Int(bytes[at + 1] & 0x7F)
            var offset = at + 2
            if length == 126 {
                length = Int(bytes[offset]) << 8 | Int(bytes[offset + 1])
                offset += 2
            }
            let payload = Array(bytes[offset..<offset + length])
            at = offset + length
            guard case .object(let message)? = try? JSON.decode(JSONValue.self, from: payload), case .string(let type)? = message["type"]
            else { continue }
            if type == "scene.resumed" { resumed.append(message) }
            if type == "scene.full" || type == "scene.patch", case .number(let version)? = message["version"] { versions.append(Int64(version)) }
        }
        return (versions, resumed)
    }

    /// A feed whose log holds `published` versions of the active scene "main".
    func makeFeed(published: [Int64] = [1, 2, 3]) -> (SceneFeed, ChannelHub) {
        let metrics = EngineMetrics()
        let hub = ChannelHub(limits: LimitsConfig(), metrics: metrics, logger: Self.logger)
        let acks = OverlayAcks(metrics: metrics, isConnected: { _ in true })
        let feed = SceneFeed(hub: hub, acks: acks, capacity: 64, logger: Self.logger)
        for version in published { feed.publish(Self.change(version), epoch: "e") }
        return (feed, hub)
    }

    func testTheActiveSceneAheadOfTheLogIsReplayedAsFarAsTheLogAndTheRestArrivesLive() async throws {
        let (feed, hub) = makeFeed()
        // The store already holds 5; 4 and 5 are published after the catch-up.
        let got = try await serve(
            feed: feed, hub: hub,
            catchUp: { connection in
                feed.connect(connection, resume: .init(since: 1, epoch: "e"), current: { (Self.scene(5), "e") })
            },
            after: {
                feed.publish(Self.change(4), epoch: "e")
                feed.publish(Self.change(5), epoch: "e")
            })
        XCTAssertEqual(got.versions, [2, 3, 4, 5])
        XCTAssertEqual(got.resumed.count, 1)
        XCTAssertEqual(got.resumed.first?["from"], .number(1))
    }

    func testAChangePublishedBeforeTheCatchUpIsNotQueuedAheadOfIt() async throws {
        let (feed, hub) = makeFeed()
        let got = try await serve(
            feed: feed, hub: hub,
            catchUp: { connection in
                // Registered in the hub already: this publish reaches the connection before its catch-up.
                feed.publish(Self.change(4), epoch: "e")
                feed.connect(connection, resume: .init(since: 1, epoch: "e"), current: { (Self.scene(4), "e") })
            },
            after: { feed.publish(Self.change(5), epoch: "e") })
        XCTAssertEqual(got.versions, [2, 3, 4, 5])
    }

    func testAFullCatchUpIsNotFollowedByTheVersionsItAlreadyHolds() async throws {
        let (feed, hub) = makeFeed()
        let got = try await serve(
            feed: feed, hub: hub,
            catchUp: { connection in
                feed.connect(connection, resume: nil, current: { (Self.scene(5), "e") })
            },
            after: {
                for version: Int64 in 4...6 { feed.publish(Self.change(version), epoch: "e") }
            })
        XCTAssertEqual(got.versions, [5, 6])
    }

    func testNotLoadedYetTheLoadBringsTheScene() async throws {
        let (feed, hub) = makeFeed(published: [])
        let got = try await serve(
            feed: feed, hub: hub,
            catchUp: { connection in
                XCTAssertNil(feed.connect(connection, resume: nil, current: { nil }))
            },
            after: {
                feed.publish(
                    SceneChange(scene: Self.scene(7), previous: nil, active: true, action: "sync", epoch: "e"), epoch: "e")
            })
        XCTAssertEqual(got.versions, [7])
    }
}
