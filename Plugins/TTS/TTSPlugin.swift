// TTS: moderators queue speech; overlays say it one utterance at a time (speechSynthesis, or a WAV file the
// server rendered with espeak-ng) and report back; moderators watch the queue.

import Foundation
import PluginAPI

@_cdecl("onionrp_plugin_entry")
public func onionrpPluginEntry(_ host: UInt32, _ built: UnsafeMutablePointer<UInt32>?) -> UnsafeMutableRawPointer? {
    PluginExport.entry(TTSPlugin.self, hostVersion: host, builtVersion: built)
}

/// Text-to-speech: `POST /api/tts/speak` and friends, the `tts.*` socket events, and server-rendered audio.
final class TTSPlugin: OverlayPlugin {
    static let name = "tts"
    static let version = "1.0.0"
    static let summary = "Text-to-speech queue: moderators speak, overlays say it (browser voices or espeak-ng audio)"

    let configuration: TTSConfiguration
    let context: PluginContext
    let blocklist: Blocklist
    let metrics: TTSMetrics
    let queue: SpeechQueue
    let cache: AudioCache
    let renderer: EspeakRenderer
    let overlayVoices = OverlayVoices()

    init(configuration: TTSConfiguration, context: PluginContext) throws {
        self.configuration = configuration
        self.context = context
        self.blocklist = Blocklist(configuration.blocklist)
        self.metrics = TTSMetrics(context.metrics)
        self.queue = SpeechQueue(
            sockets: context.sockets, logger: context.logger, metrics: metrics, maxLength: configuration.maxQueueLength,
            bus: context.bus, timing: SpeechQueue.Timing(grace: .milliseconds(Int64(configuration.timeoutGraceSeconds * 1000))),
            malformed: context.metrics.counter("tts_bus_messages_ignored_total", labels: []))
        self.cache = try AudioCache(
            directory: context.dataDirectory.appendingPathComponent("cache", isDirectory: true),
            maxBytes: configuration.cacheMaxBytes)
        self.renderer = EspeakRenderer(configuration: configuration, context: context, cache: cache)
    }

    /// Largest `POST /api/tts/speak` body: room for the longest text fully escaped, plus the other fields.
    var speakBodyLimit: Int { configuration.maxTextLength * 12 + configuration.maxVoiceLength * 12 + 4096 }

    func setUp(_ registrar: PluginRegistrar) async throws {
        // The queue is one queue across the engines sharing the store: join it before anything can change it.
        try await queue.start()
        // The overlay's speaker and the panel's TTS tab.
        registrar.webModule(.overlay, "overlay.js")
        registrar.webModule(.panel, "panel.js", styles: ["panel.css"])
        if configuration.mode != .browser {
            do {
                try await renderer.probe()
                context.logger.info(
                    "server speech ready",
                    [
                        "espeak": configuration.espeakPath,
                        "languages": String(renderer.languages.count), "mode": configuration.mode.rawValue,
                    ])
            } catch {
                guard configuration.mode == .auto else {
                    throw PluginError(status: 500, code: "tts_unavailable", message: "mode 'server' needs espeak-ng: \(error)")
                }
                context.logger.warning("server speech is off; overlays speak with their own voices", ["why": "\(error)"])
            }
        }
        let evicted = await cache.evict(protecting: [])
        metrics.cacheBytes.set(Double(evicted.bytes))

        registrar.route(
            .post, "/api/tts/speak", access: .moderator, bodyLimit: speakBodyLimit,
            rateLimit: RateLimit(name: "tts.speak", burst: 10, perMinute: 30),
            summary: "queue speech (JSON text, lang, rate, pitch, volume, voice) → 202 {id, position, mode, audio_url?}"
        ) { request in
            try await self.speak(request)
        }
        registrar.route(.get, "/api/tts/queue", access: .moderator, summary: "the queue: {current, queue}") { _ in
            PluginResponse(
                status: 200, headers: ["content-type": "application/json; charset=utf-8", "cache-control": "no-store"],
                body: .bytes(Array(await self.queue.snapshotFrame().utf8)))
        }
        registrar.route(
            .post, "/api/tts/skip", access: .moderator, bodyLimit: 4096,
            summary: "stop the current utterance, or drop one (JSON id, optional)"
        ) { request in
            try await self.skip(request)
        }
        registrar.route(.post, "/api/tts/clear", access: .moderator, bodyLimit: 4096, summary: "drop every queued utterance") { _ in
            try .json(["cleared": try await self.queue.clear()])
        }
        registrar.route(.get, "/api/tts/voices", access: .moderator, summary: "server languages and the voices overlays reported") { _ in
            try self.voicesAnswer()
        }
        registrar.route(.get, "/api/tts/audio/{file}", access: .overlay, summary: "a rendered WAV file (Range, ETag)") { request in
            try await AudioRoute.serve(request, cache: self.cache) { hash in await self.renderForAnotherEngine(hash) }
        }

        registrar.on("tts.started", channels: [.overlay]) { event, connection in
            let report = try OverlayReport.parse(event)
            try await self.queue.started(report.id, by: connection.id)
        }
        registrar.on("tts.finished", channels: [.overlay]) { event, _ in
            let report = try OverlayReport.parse(event)
            try await self.queue.finished(report.id)
        }
        registrar.on("tts.failed", channels: [.overlay]) { event, connection in
            let report = try OverlayReport.parse(event)
            try await self.queue.failed(report.id, reason: report.reason, by: connection.id)
        }
        registrar.on("tts.capabilities", channels: [.overlay]) { event, connection in
            let languages = try CapabilitiesReport.parse(event)
            self.overlayVoices.report(languages, from: connection.id)
            self.context.logger.debug("overlay voices", ["connection": connection.id, "languages": String(languages.count)])
        }
        registrar.onDisconnect(channels: [.overlay]) { connection in
            self.overlayVoices.remove(connection.id)
        }
        registrar.onConnect(channels: [.moderator]) { connection in
            connection.send(await self.queue.snapshotFrame())
        }
        // An overlay that connects (OBS reloading the page, a second browser source) gets what is still queued,
        // in order; pages drop ids they already have or already said.
        registrar.onConnect(channels: [.overlay]) { connection in
            for frame in await self.queue.replayFrames() { connection.send(frame) }
        }
    }

    func shutdown() async {
        await queue.shutdown()
        renderer.shutdown()
    }

    // MARK: routes

    func speak(_ request: PluginRequest) async throws -> PluginResponse {
        if let type = request.contentType, type != "application/json" {
            throw PluginError(status: 415, code: "unsupported_media_type", message: "expected application/json, got \(type)")
        }
        let bytes = try await request.body.collect(upTo: speakBodyLimit)
        let speak = try SpeakRequest.parse(bytes, configuration: configuration, blocklist: blocklist)
        try await queue.checkRoom()

        var mode = SpeechMode.browser
        var audio: CachedAudio?
        var rendered: RenderPlan?
        if let plan = try renderPlan(for: speak) {
            do {
                let result = try await renderer.render(plan)
                if result.hit { metrics.cacheHits.increment() }
                audio = result
                rendered = plan
                mode = .server
            } catch {
                context.logger.warning("server speech failed", ["why": "\(error)", "lang": speak.lang])
                if configuration.mode == .server {
                    throw PluginError(status: 503, code: "tts_render_failed", message: "the server could not render the speech: \(error)")
                }
                // auto: the overlays try their own voices.
            }
        }

        let utterance = Utterance(
            id: context.crypto.randomToken(bytes: 12), request: speak, mode: mode, audioHash: audio?.hash,
            audioDuration: audio?.info.duration, requestedBy: request.caller.role, queuedAt: Date(),
            timeout: timeout(for: speak, audio: audio?.info.duration), origin: queue.engineID, plan: rendered)
        let position = try await queue.enqueue(utterance)
        if let audio, !audio.hit { await evictCache() }
        context.logger.info("speech queued", ["id": utterance.id, "mode": mode.rawValue, "lang": speak.lang, "position": String(position)])

        /// The 202 body.
        struct Answer: Encodable {
            let id: String
            let position: Int
            let mode: String
            let audio_url: String?
            let overlays: Int
        }
        return try .json(
            Answer(
                id: utterance.id, position: position, mode: mode.rawValue, audio_url: utterance.audioURL,
                overlays: context.sockets.connectionCount(.overlay)), status: 202)
    }

    /// Keeps the cache within its size, never removing audio still queued.
    func evictCache() async {
        let result = await cache.evict(protecting: await queue.referencedHashes())
        if result.removed > 0 { metrics.cacheEvictions.increment(by: Int64(result.removed)) }
        metrics.cacheBytes.set(Double(result.bytes))
    }

    /// Audio another engine rendered and this one lacks (an overlay connected here asks for it): rendered here from
    /// the plan that came with the utterance on the bus. The name is the SHA-256 of every input of the render, so the
    /// same espeak-ng makes the same file; only names of utterances queued now or lately are rendered, and only when
    /// the plan hashes to the name asked for.
    /// - Returns: Whether the file is in the cache now.
    func renderForAnotherEngine(_ hash: String) async -> Bool {
        guard renderer.isAvailable, let plan = await queue.plan(forAudio: hash), renderer.hash(plan) == hash else { return false }
        do {
            let result = try await renderer.render(plan)
            if result.hit {
                metrics.cacheHits.increment()
            } else {
                metrics.remoteRenders.increment()
                await evictCache()
            }
            return true
        } catch {
            context.logger.warning("could not render audio another engine queued", ["hash": hash, "why": "\(error)"])
            return false
        }
    }

    /// Whether (and how) the server renders `speak`; nil: the overlays speak it themselves.
    /// - Throws: 400 naming `lang` in `server` mode when espeak-ng has no voice for it.
    func renderPlan(for speak: SpeakRequest) throws -> RenderPlan? {
        switch configuration.mode {
        case .browser:
            return nil
        case .server:
            guard let plan = renderer.plan(speak) else {
                throw PluginError.invalidField("lang", "the server has no voice for '\(speak.lang)'")
            }
            return plan
        case .auto:
            if overlayVoices.hasVoice(for: speak.lang) { return nil }
            return renderer.plan(speak)  // nil (no server voice either): the overlays try anyway
        }
    }

    /// How long an utterance may stay current: base + per character / rate, at least the audio's length + base, capped.
    func timeout(for speak: SpeakRequest, audio: Duration?) -> Duration {
        var seconds =
            configuration.timeoutBaseSeconds
            + configuration.timeoutPerCharSeconds * Double(speak.text.count) / max(speak.rate, 0.1)
        if let audio { seconds = max(seconds, audio.inSeconds + configuration.timeoutBaseSeconds) }
        return .milliseconds(Int64(min(seconds, configuration.timeoutMaxSeconds) * 1000))
    }

    func skip(_ request: PluginRequest) async throws -> PluginResponse {
        let bytes = try await request.body.collect(upTo: 4096)
        var id: String?
        if bytes.contains(where: { !($0 == 0x20 || $0 == 0x0a || $0 == 0x0d || $0 == 0x09) }) {
            let members = try jsonObject(bytes, what: "a JSON object with an optional 'id'")
            for name in members.keys.sorted() where name != "id" {
                throw PluginError.invalidField(name, "unknown field (known: id)")
            }
            switch members["id"] {
            case .string(let given)?:
                guard (1...64).contains(given.count) else { throw PluginError.invalidField("id", "1 to 64 characters") }
                id = given
            case nil, .null?:
                id = nil
            default:
                throw PluginError.invalidField("id", "must be a string")
            }
        }
        return try .json(["skipped": try await queue.skip(id)])
    }

    func voicesAnswer() throws -> PluginResponse {
        /// What one overlay connection reported.
        struct Overlay: Encodable {
            let connection: String
            let voices: [String]
        }
        /// What espeak-ng offers.
        struct Server: Encodable {
            let available: Bool
            let espeak: String
            let languages: [String]
        }
        /// The whole answer.
        struct Answer: Encodable {
            let mode: String
            let server: Server
            let overlays: [Overlay]
        }
        let overlays = overlayVoices.live().map { Overlay(connection: $0.connection, voices: $0.voices) }
        return try .json(
            Answer(
                mode: configuration.mode.rawValue,
                server: Server(available: renderer.isAvailable, espeak: configuration.espeakPath, languages: renderer.languages),
                overlays: overlays))
    }
}
