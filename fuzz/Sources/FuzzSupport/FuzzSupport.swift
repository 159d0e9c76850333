// Shared by every fuzz target: the libFuzzer driver entry, a way to run async code from the
// synchronous callback, an input reader, and small stand-ins for the engine's services.
//
// Why the driver entry: SwiftPM links an executable on Linux with `--defsym main=<Target>_main`, so
// libFuzzer's own `main` is never used. Each target defines `<Target>_main` and calls ``runFuzzer``
// from it with its function; `LLVMFuzzerTestOneInput` (referenced by libFuzzer's archive) is here.

import Dispatch
import Foundation
@_spi(Engine) import PluginAPI

typealias FuzzCallback = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: FuzzCallback
) -> CInt

/// The target's function, set by ``runFuzzer``.
nonisolated(unsafe) var currentTarget: (([UInt8]) -> Void)?

/// libFuzzer's per-input entry (its archive references this symbol); calls the running target.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    currentTarget?(bytes(data, size))
    return 0
}

/// Hands control to libFuzzer with `target` as the function under test (the command line is libFuzzer's:
/// corpus folders, -max_total_time=N, ...). Called from the target's `<Target>_main`.
public func runFuzzer(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, _ target: @escaping ([UInt8]) -> Void) -> CInt {
    currentTarget = target
    var count = argc
    var vector = argv
    return LLVMFuzzerRunDriver(&count, &vector, fuzzerTestOneInput)
}

/// The input as an array (empty for a null pointer).
public func bytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
    guard let data, size > 0 else { return [] }
    return Array(UnsafeBufferPointer(start: data, count: size))
}

/// Fails the run: libFuzzer saves the input as a crash artifact.
public func fuzzFail(_ message: String, file: StaticString = #file, line: UInt = #line) -> Never {
    fatalError("fuzz invariant broken: \(message)", file: file, line: line)
}

/// Runs `body` to completion from the synchronous fuzz callback.
public func runBlocking<T>(_ body: @escaping () async throws -> T) -> Result<T, any Error> {
    let box = ResultBox<T>()
    let done = DispatchSemaphore(value: 0)
    let work = UncheckedSendable(body)
    Task.detached {
        do { box.result = .success(try await work.value()) } catch { box.result = .failure(error) }
        done.signal()
    }
    done.wait()
    return box.result!
}

final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, any Error>?
}

struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// Reads an input as a sequence of choices: the first bytes steer the target, the rest is data.
public struct FuzzReader {
    public private(set) var bytes: [UInt8]
    public private(set) var offset = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public var isAtEnd: Bool { offset >= bytes.count }

    /// One byte (0 past the end).
    public mutating func byte() -> UInt8 {
        guard offset < bytes.count else { return 0 }
        defer { offset += 1 }
        return bytes[offset]
    }

    /// A little-endian integer of `count` bytes.
    public mutating func int(_ count: Int) -> Int {
        var value = 0
        for shift in 0..<count { value |= Int(byte()) << (8 * shift) }
        return value
    }

    /// Everything not read yet.
    public mutating func rest() -> [UInt8] {
        defer { offset = bytes.count }
        return offset < bytes.count ? Array(bytes[offset...]) : []
    }

    /// Up to `count` bytes.
    public mutating func take(_ count: Int) -> [UInt8] {
        let end = min(bytes.count, offset + max(0, count))
        defer { offset = end }
        return offset < end ? Array(bytes[offset..<end]) : []
    }
}

/// Decodes bytes as UTF-8, replacing invalid sequences (as the engine's HTTP layer sees header text).
public func text(_ bytes: [UInt8]) -> String { String(decoding: bytes, as: UTF8.self) }

// MARK: stand-ins

/// A deterministic CryptoProvider: not secure, only consistent (fuzzing needs no secrets).
public final class FakeCrypto: CryptoProvider, @unchecked Sendable {
    private var counter: UInt64 = 0
    public init() {}

    public func randomBytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in
            counter &+= 0x9E37_79B9_7F4A_7C15
            return UInt8(truncatingIfNeeded: counter >> 29)
        }
    }

    public func sha256(_ data: [UInt8]) -> [UInt8] {
        let hash = FakeHash()
        hash.update(data)
        return (try? hash.finish()) ?? []
    }

    public func hmacSHA256(key: [UInt8], message: [UInt8]) -> [UInt8] { sha256(key + [0x5C] + message) }
    public func hmacSHA1(key: [UInt8], message: [UInt8]) -> [UInt8] { Array(sha256(key + [0x36] + message).prefix(20)) }
    public func makeSHA256() -> any IncrementalHash { FakeHash() }
}

/// FNV-1a spread over 32 bytes.
public final class FakeHash: IncrementalHash {
    private var state: [UInt64] = [0xcbf2_9ce4_8422_2325, 0x84222325cbf29ce4, 0x1234_5678_9abc_def0, 0x0fed_cba9_8765_4321]
    public init() {}
    public func update(_ bytes: [UInt8]) {
        for byte in bytes {
            for index in state.indices { state[index] = (state[index] ^ UInt64(byte &+ UInt8(index))) &* 0x100_0000_01b3 }
        }
    }
    public func finish() throws -> [UInt8] { state.flatMap { word in (0..<8).map { UInt8(truncatingIfNeeded: word >> (8 * $0)) } } }
}

/// A logger that drops everything.
public struct SilentLogger: PluginLogger {
    public init() {}
    public func log(_ level: LogLevel, _ message: String, metadata: [String: String]) {}
}
