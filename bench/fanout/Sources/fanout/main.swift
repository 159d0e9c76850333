// N overlay WebSocket clients and one saver: saves per second, save-to-receive latency, and the engine's CPU
// time per delivered frame and RSS per connected socket (read from /proc/<pid> when --pid is given).

import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import HummingbirdWSClient
import Logging
import Synchronization

/// Receive instants per client, keyed by version.
final class Received: Sendable {
    let table = Mutex<[Int: [Int64: ContinuousClock.Instant]]>([:])
    let ready = Atomic<Int>(0)
    let failed = Atomic<Int>(0)

    func record(client: Int, version: Int64, at: ContinuousClock.Instant) {
        table.withLock { $0[client, default: [:]][version] = $0[client]?[version] ?? at }
    }

    func newest(client: Int) -> Int64 { table.withLock { $0[client]?.keys.max() ?? 0 } }
}

/// Pulls `"version":N` out of a scene.full (or scene.patch) frame without decoding the scene.
func version(in text: String) -> Int64? {
    guard text.hasPrefix("{\"type\":\"scene.full\"") || text.hasPrefix("{\"type\":\"scene.patch\""), let range = text.range(of: "\"version\":") else { return nil }
    let digits = text[range.upperBound...].prefix { $0.isNumber }
    return Int64(digits)
}

func percentile(_ sorted: [Double], _ q: Double) -> Double {
    guard !sorted.isEmpty else { return .nan }
    return sorted[min(sorted.count - 1, max(0, Int((q * Double(sorted.count)).rounded(.up)) - 1))]
}

/// utime and stime of a process in clock ticks (`/proc/<pid>/stat` fields 14 and 15).
func cpuTicks(pid: Int32) -> (user: Int, system: Int)? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
        let close = stat.range(of: ") ", options: .backwards)
    else { return nil }
    let fields = stat[close.upperBound...].split(separator: " ")
    guard fields.count > 12, let user = Int(fields[11]), let system = Int(fields[12]) else { return nil }
    return (user, system)
}

func rssKiB(pid: Int32) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.split(separator: " ").dropFirst().first ?? "")
    }
    return nil
}

@main
struct Fanout: AsyncParsableCommand {
    @Option(help: "Engine base URL.") var url = "http://127.0.0.1:8080"
    @Option(help: "Overlay clients.") var clients = 100
    @Option(help: "Seconds of saving.") var seconds = 10.0
    @Option(help: "Streamer token.") var token = "bench"
    @Option(help: "Engine pid, to report its RSS and CPU time.") var pid: Int32?
    @Option(help: "Text elements the scene gets before measuring (20: a ~3 KB frame); 0 keeps the scene and adds one.")
    var elements = 20
    @Option(help: "Clients connecting at once at most.") var connectBatch = 256
    @Flag(help: "Clients ask for scene.patch frames (?patches=1, as the overlay page does) instead of scene.full.")
    var patches = false

    func send(_ method: String, base: Int64, body: String) async throws -> Int64 {
        var request = URLRequest(url: URL(string: url + "/api/scene")!)
        request.httpMethod = method
        request.setValue(token, forHTTPHeaderField: "x-streamer-token")
        request.setValue("application/json", forHTTPHeaderField: "content-type")
        request.httpBody = Data(body.utf8)
        let (data, response) = try await URLSession.shared.data(for: request)
        guard (response as? HTTPURLResponse)?.statusCode == 200,
              let object = try JSONSerialization.jsonObject(with: data) as? [String: Any], let version = object["_version"] as? Int else {
            throw ValidationError("save failed: \(String(decoding: data, as: UTF8.self))")
        }
        return Int64(version)
    }

    func run() async throws {
        let logger: Logger = {
            var logger = Logger(label: "fanout")
            logger.logLevel = .error
            return logger
        }()
        let received = Received()
        let wsURL = url.replacingOccurrences(of: "http://", with: "ws://")
        let clock = ContinuousClock()
        let rssBefore = pid.flatMap(rssKiB)

        // The scene gets `elements` text elements (or one more element); every save moves the first.
        let current = try JSONSerialization.jsonObject(with: try await URLSession.shared.data(from: URL(string: url + "/api/scene")!).0) as? [String: Any]
        var base = Int64(current?["_version"] as? Int ?? 0)
        let elementID: String
        if elements > 0 {
            let items = (0..<elements).map { i in
                ##"{"id":"bench-\##(i)","type":"text","text":"Element \##(i)","x":\##(20 * i),"y":\##(40 * i),"width":420,"height":48,"size":32,"color":"#ffffff"}"##
            }
            base = try await send("PUT", base: base, body: #"{"base_version":\#(base),"elements":[\#(items.joined(separator: ","))]}"#)
            elementID = "bench-0"
        } else {
            base = try await send("PATCH", base: base, body: #"{"base_version":\#(base),"ops":[{"op":"add","element":{"id":"bench-\#(UUID().uuidString.prefix(8))","type":"text","text":"bench","x":0}}]}"#)
            let scene = try JSONSerialization.jsonObject(with: try await URLSession.shared.data(from: URL(string: url + "/api/scene")!).0) as? [String: Any]
            elementID = (scene?["elements"] as? [[String: Any]] ?? []).last?["id"] as? String ?? "bench"
        }
        let frameBytes = try await URLSession.shared.data(from: URL(string: url + "/api/scene")!).0.count

        try await withThrowingTaskGroup(of: Void.self) { group in
            for client in 0..<clients {
                // A bounded number of handshakes in flight, so the listen backlog never overflows.
                while client - received.ready.load(ordering: .relaxed) - received.failed.load(ordering: .relaxed) >= connectBatch {
                    try await Task.sleep(for: .milliseconds(2))
                }
                group.addTask {
                    do {
                        try await WebSocketClient.connect(url: "\(wsURL)/ws/overlay?overlay_id=bench-\(client)\(patches ? "&patches=1" : "")",
                                                          configuration: .init(maxFrameSize: 1 << 22), logger: logger) { inbound, _, _ in
                            var counted = false
                            for try await message in inbound.messages(maxSize: 1 << 22) {
                                guard case .text(let text) = message, let version = version(in: text) else { continue }
                                received.record(client: client, version: version, at: clock.now)
                                if !counted {
                                    counted = true
                                    received.ready.add(1, ordering: .relaxed)
                                }
                            }
                        }
                    } catch {
                        received.failed.add(1, ordering: .relaxed)
                        FileHandle.standardError.write(Data("client \(client): \(error)\n".utf8))
                    }
                }
            }
            // Wait for every client's first scene.full.
            let connectDeadline = clock.now + .seconds(60)
            while received.ready.load(ordering: .relaxed) + received.failed.load(ordering: .relaxed) < clients, clock.now < connectDeadline {
                try await Task.sleep(for: .milliseconds(50))
            }
            let connected = received.ready.load(ordering: .relaxed)
            let rssConnected = pid.flatMap(rssKiB)

            // Let the engine settle after the handshakes before the CPU window opens.
            try await Task.sleep(for: .milliseconds(500))
            let rssConnectedSettled = pid.flatMap(rssKiB) ?? rssConnected
            var sentAt: [Int64: ContinuousClock.Instant] = [:]
            let cpuBefore = pid.flatMap(cpuTicks)
            let start = clock.now
            let end = start + .milliseconds(Int(seconds * 1000))
            var x = 0
            while clock.now < end {
                x += 1
                let before = clock.now
                base = try await send("PATCH", base: base, body: #"{"base_version":\#(base),"ops":[{"op":"update","id":"\#(elementID)","fields":{"x":\#(x % 1000)}}]}"#)
                sentAt[base] = before
            }
            let elapsed = clock.now - start
            let saves = sentAt.count
            let last = base
            let drainDeadline = clock.now + .seconds(15)
            while clock.now < drainDeadline, (0..<clients).contains(where: { received.newest(client: $0) < last }) {
                try await Task.sleep(for: .milliseconds(20))
            }
            let cpuAfter = pid.flatMap(cpuTicks)
            let rssAfter = pid.flatMap(rssKiB)

            var latencies: [Double] = []
            var frames = 0
            received.table.withLock { table in
                for (_, versions) in table {
                    for (version, at) in versions {
                        guard let sent = sentAt[version] else { continue }
                        frames += 1
                        let d = at - sent
                        latencies.append(Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15)
                    }
                }
            }
            latencies.sort()
            let elapsedSeconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            let complete = (0..<clients).filter { received.newest(client: $0) >= last }.count
            let expected = saves * clients
            func mib(_ kib: Int?) -> String { kib.map { String(format: "%.1f MiB", Double($0) / 1024) } ?? "n/a" }
            print(String(format: "clients=%d connected=%d saves=%d saves_per_s=%.1f latency_ms_p50=%.2f p99=%.2f max=%.2f frames=%d/%d (%.1f%% delivered, rest coalesced) final_version_everywhere=%d/%d",
                         clients, connected, saves, Double(saves) / elapsedSeconds, percentile(latencies, 0.5), percentile(latencies, 0.99),
                         latencies.last ?? .nan, frames, expected, expected == 0 ? 0 : 100 * Double(frames) / Double(expected), complete, clients))
            print("engine_rss before=\(mib(rssBefore)) connected=\(mib(rssConnectedSettled)) after=\(mib(rssAfter))")
            // One machine-readable line for bench/perf.sh.
            let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
            var cpuSeconds = Double.nan
            var userSeconds = Double.nan
            if let cpuBefore, let cpuAfter {
                cpuSeconds = Double(cpuAfter.user + cpuAfter.system - cpuBefore.user - cpuBefore.system) / ticks
                userSeconds = Double(cpuAfter.user - cpuBefore.user) / ticks
            }
            let perDelivery = frames > 0 ? cpuSeconds * 1e6 / Double(frames) : .nan
            // User time is the engine's own code; system time is the kernel's (writev, TCP, and on loopback the
            // receiving side's softirq too, which runs on the sending core).
            let userPerDelivery = frames > 0 ? userSeconds * 1e6 / Double(frames) : .nan
            var perSocket = Double.nan
            if let rssBefore, let rssConnectedSettled { perSocket = Double(rssConnectedSettled - rssBefore) * 1024 / Double(max(1, connected)) }
            print(String(format: "RESULT clients=%d connected=%d frame_bytes=%d saves_per_s=%.1f p50_ms=%.2f p99_ms=%.2f delivered=%d cpu_s=%.2f cpu_us_per_delivery=%.1f user_us_per_delivery=%.1f rss_before_kib=%d rss_connected_kib=%d rss_per_socket_bytes=%.0f",
                         clients, connected, frameBytes, Double(saves) / elapsedSeconds, percentile(latencies, 0.5), percentile(latencies, 0.99),
                         frames, cpuSeconds, perDelivery, userPerDelivery, rssBefore ?? -1, rssConnectedSettled ?? -1, perSocket))
            fflush(nil)
            // Closing thousands of sockets one task at a time is slow; the process exit closes them all at once.
            Foundation.exit(0)
        }
    }
}
