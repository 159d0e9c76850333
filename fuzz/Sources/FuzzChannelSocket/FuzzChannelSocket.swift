// Fuzzes what an engine channel socket does with the bytes a client sends once upgraded: NIO's WebSocket frame
// decoder (without NIO's error handler, as the engine installs it), then ChannelSocketHandler (fragments, control
// frames, the close handshake, the message limit, frame errors) on a connection of a real ChannelHub, whose answers
// (pong events, error frames) come back through FrameWriter.
//
// Input: the bytes the client sends (masked or not, whole frames or not); an input of odd length then has the peer
// half-close its side.
// Invariants: no trap; a socket whose peer half-closed is closed; everything the engine writes back parses as whole,
// unmasked server frames; a close frame carries a code a server may send (1000-1014 or 4000-4999) and nothing
// follows it.

@testable import Engine
import FuzzSupport
import Logging
import NIOCore
import NIOEmbedded
import NIOWebSocket
@_spi(Engine) import PluginAPI

let loop = NIOAsyncTestingEventLoop()
let hub: ChannelHub = {
    var limits = LimitsConfig()
    limits.wsMaxMessageBytes = 300
    let hub = ChannelHub(limits: limits, metrics: EngineMetrics(), logger: Logger(label: "fuzz", factory: { _ in SwiftLogNoOpLogHandler() }))
    hub.on("ping", channels: SocketChannel.allCases, owner: "engine") { _, connection in connection.send(#"{"type":"pong"}"#) }
    return hub
}()
let settings = ChannelSocketHandler.Settings(maxMessageBytes: 300, pingPeriod: .hours(1), closeTimeout: .hours(1))

/// The server frames in `bytes`: (opcode, payload); fails on a masked, unfinished or cut-off frame.
func serverFrames(_ bytes: [UInt8]) -> [(opcode: UInt8, payload: ArraySlice<UInt8>)] {
    var frames: [(UInt8, ArraySlice<UInt8>)] = []
    var at = 0
    while at < bytes.count {
        guard bytes.count - at >= 2 else { fuzzFail("a cut-off frame header at \(at) of \(bytes.count)") }
        let first = bytes[at], second = bytes[at + 1]
        if second & 0x80 != 0 { fuzzFail("the server masked a frame") }
        if first & 0x70 != 0 { fuzzFail("the server set reserved bits") }
        var length = Int(second & 0x7F)
        var offset = at + 2
        if length == 126 {
            guard bytes.count >= offset + 2 else { fuzzFail("cut-off length") }
            length = Int(bytes[offset]) << 8 | Int(bytes[offset + 1])
            offset += 2
        } else if length == 127 {
            guard bytes.count >= offset + 8 else { fuzzFail("cut-off length") }
            length = bytes[offset..<offset + 8].reduce(0) { $0 << 8 | Int($1) }
            offset += 8
        }
        guard length >= 0, bytes.count >= offset + length else { fuzzFail("a cut-off frame payload") }
        frames.append((first & 0x0F, bytes[offset..<offset + length]))
        at = offset + length
    }
    return frames
}

func fuzzOne(_ input: [UInt8]) {
    let written: [UInt8]
    switch runBlocking({ () async throws -> [UInt8] in
        let channel = NIOAsyncTestingChannel(loop: loop)
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).get()
        try await loop.submit {
            let sync = channel.pipeline.syncOperations
            try sync.addHandler(WebSocketFrameEncoder())
            try sync.addHandler(ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 12)))
            try hub.open(
                channel: .overlay, caller: .overlay, clientLabel: nil, takesPatches: false, on: channel, settings: settings,
                afterConnect: { _ in })
        }.get()
        do { try await channel.writeInbound(ByteBuffer(bytes: input)) } catch {}
        // Inputs of odd length end with the peer's half-close (a client gone without a close frame).
        let peerLeft = input.count % 2 == 1
        if peerLeft {
            try await loop.submit { channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed) }.get()
        }
        // The hub handles messages in tasks; give them time to answer, and the loop to write the answers.
        for _ in 0..<20 {
            await Task.yield()
            await loop.run()
        }
        if peerLeft, try await loop.submit({ channel.isActive }).get() {
            fuzzFail("the socket stayed open after its peer closed its side")
        }
        var out: [UInt8] = []
        while let part = try await channel.readOutbound(as: ByteBuffer.self) { out += part.readableBytesView }
        _ = try? await channel.close()
        await loop.run()
        return out
    }) {
    case .success(let bytes): written = bytes
    case .failure(let error): fuzzFail("the test channel failed: \(error)")
    }
    var closed = false
    for (opcode, payload) in serverFrames(written) {
        if closed { fuzzFail("a frame (opcode \(opcode)) after the close frame") }
        switch opcode {
        case 0x1, 0x9, 0xA:
            break
        case 0x8:
            closed = true
            guard payload.count >= 2 else { fuzzFail("a close frame without a code") }
            let code = Int(payload[payload.startIndex]) << 8 | Int(payload[payload.startIndex + 1])
            if !((1000...1014).contains(code) || (4000...4999).contains(code)) { fuzzFail("close code \(code)") }
        default:
            fuzzFail("the server sent opcode \(opcode)")
        }
    }
}

@_cdecl("FuzzChannelSocket_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt { runFuzzer(argc, argv, fuzzOne) }
