// TTS: server-side speech with espeak-ng: language to voice, request to command line, bounded concurrency.

import Foundation
import PluginAPI
import Synchronization

/// The voices espeak-ng has, read from `espeak-ng --voices`, and how a language tag picks one.
struct EspeakVoices: Sendable {
    /// Language names of the voices (`en-us`, `ru`, `cmn`), lower-cased.
    let languages: Set<String>
    /// Other names a voice answers to, with espeak-ng's priority (lower wins): `en` → (`en-gb`, 2).
    let aliases: [String: (voice: String, priority: Int)]
    /// Overrides from the configuration: lower-cased tag or primary language → voice.
    let overrides: [String: String]

    /// Parses the table `espeak-ng --voices` prints.
    static func parse(_ output: String, overrides: [String: String]) -> EspeakVoices {
        var languages = Set<String>()
        var aliases: [String: (voice: String, priority: Int)] = [:]
        for line in output.split(separator: "\n").dropFirst() {
            let columns = line.split(separator: " ", omittingEmptySubsequences: true)
            guard columns.count >= 5, Int(columns[0]) != nil else { continue }
            let language = columns[1].lowercased()
            languages.insert(language)
            // "Other Languages": "(zh-cmn 5)(zh 5)" after the file column.
            let rest = columns.dropFirst(5).joined(separator: " ")
            var scanner = rest[...]
            while let open = scanner.firstIndex(of: "("), let close = scanner[open...].firstIndex(of: ")") {
                let pair = scanner[scanner.index(after: open)..<close].split(separator: " ")
                if pair.count == 2, let priority = Int(pair[1]) {
                    let name = pair[0].lowercased()
                    if let known = aliases[name], known.priority <= priority {} else { aliases[name] = (language, priority) }
                }
                scanner = scanner[scanner.index(after: close)...]
            }
        }
        var lowered: [String: String] = [:]
        for (tag, voice) in overrides { lowered[(LanguageTag.canonical(tag) ?? tag).lowercased()] = voice }
        return EspeakVoices(languages: languages, aliases: aliases, overrides: lowered)
    }

    /// The voice for a canonical language tag, or nil when espeak-ng has none.
    ///
    /// In order: an override for the whole tag; a voice named like the tag (`en-US` → `en-us`); a voice
    /// answering to the tag (`es-MX` → `es-419`); then the same three for the primary language
    /// (`ru-RU` → `ru`, `en-AU` → `en-gb`, `zh-CN` → `cmn`).
    func voice(for tag: String) -> String? {
        let lower = tag.lowercased()
        let primary = LanguageTag.primary(tag)
        for candidate in lower == primary ? [lower] : [lower, primary] {
            if let voice = overrides[candidate] { return voice }
            if languages.contains(candidate) { return candidate }
            if let alias = aliases[candidate] { return alias.voice }
        }
        return nil
    }

    /// Every language tag that resolves, sorted (for `GET /api/tts/voices`).
    var allLanguages: [String] { Array(languages.union(aliases.keys).union(overrides.keys)).sorted() }

    /// A voice name safe to pass after `-v`: letters, digits and `-_+./`, not starting with `-`, no `..`.
    static func isSafeName(_ name: String) -> Bool {
        guard (1...64).contains(name.utf8.count), !name.hasPrefix("-"), !name.contains("..") else { return false }
        return name.unicodeScalars.allSatisfy {
            $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_+./".unicodeScalars.contains($0))
        }
    }
}

/// One render: the espeak-ng arguments and the cache name they produce.
struct RenderPlan: Sendable, Equatable {
    /// espeak-ng voice (`-v`).
    let voice: String
    /// Words per minute (`-s`), from the rate: 175 × rate, within 80...450.
    let speed: Int
    /// Pitch (`-p`), from the pitch: 50 × pitch, within 0...99.
    let pitch: Int
    /// Amplitude (`-a`), from the volume: 100 × volume, within 0...200.
    let amplitude: Int
    /// The text, passed after `--`.
    let text: String

    /// The string whose SHA-256 names the file: every input of the render, the text last.
    var cacheKey: String { "espeak-ng/1\n\(voice)\n\(speed)\n\(pitch)\n\(amplitude)\n\(text)" }

    /// The command line after the executable.
    func arguments(output: String) -> [String] {
        ["-b", "1", "-v", voice, "-s", String(speed), "-p", String(pitch), "-a", String(amplitude), "-w", output, "--", text]
    }

    /// A plan from its parts (one another engine sent on the bus).
    init(voice: String, speed: Int, pitch: Int, amplitude: Int, text: String) {
        self.voice = voice
        self.speed = speed
        self.pitch = pitch
        self.amplitude = amplitude
        self.text = text
    }

    /// Maps a request onto espeak-ng's scales.
    init(request: SpeakRequest, voice: String) {
        self.voice = voice
        self.speed = min(450, max(80, Int((175 * request.rate).rounded())))
        self.pitch = min(99, max(0, Int((50 * request.pitch).rounded())))
        self.amplitude = min(200, max(0, Int((100 * request.volume).rounded())))
        self.text = request.text
    }
}

/// A counting semaphore for async code: at most `limit` holders; the others wait in order.
actor RenderSlots {
    private var available: Int
    private var waiters: [CheckedContinuation<Void, Never>] = []

    /// Creates `limit` slots.
    init(limit: Int) { self.available = limit }

    /// Waits for a slot.
    func acquire() async {
        if available > 0 {
            available -= 1
            return
        }
        await withCheckedContinuation { waiters.append($0) }
    }

    /// Gives a slot back (to the longest waiter, if any).
    func release() {
        if waiters.isEmpty { available += 1 } else { waiters.removeFirst().resume() }
    }
}

/// Renders speech with espeak-ng into the cache.
final class EspeakRenderer: Sendable {
    let configuration: TTSConfiguration
    let context: PluginContext
    let cache: AudioCache
    let slots: RenderSlots
    let processes = RunningProcesses()
    private let voices = Mutex<EspeakVoices?>(nil)
    private let renderTimer: any MetricTimer
    private let renders: any MetricCounter
    private let renderFailures: any MetricCounter

    init(configuration: TTSConfiguration, context: PluginContext, cache: AudioCache) {
        self.configuration = configuration
        self.context = context
        self.cache = cache
        self.slots = RenderSlots(limit: configuration.maxConcurrentRenders)
        self.renderTimer = context.metrics.timer("tts_render_seconds", labels: [])
        self.renders = context.metrics.counter("tts_renders_total", labels: [])
        self.renderFailures = context.metrics.counter("tts_render_failures_total", labels: [])
    }

    /// True once `espeak-ng --voices` answered.
    var isAvailable: Bool { voices.withLock { $0 != nil } }

    /// Every language tag the server can render.
    var languages: [String] { voices.withLock { $0?.allLanguages ?? [] } }

    /// Asks espeak-ng which voices it has.
    /// - Throws: ``RenderFailure`` when the executable is missing or does not answer.
    func probe() async throws {
        guard FileManager.default.isExecutableFile(atPath: configuration.espeakPath) else {
            throw RenderFailure(
                message: "espeak-ng is not an executable file at '\(configuration.espeakPath)' (install espeak-ng or set espeak_path)")
        }
        let output = cache.temporaryURL("voices", suffix: "out")
        defer { try? FileManager.default.removeItem(at: output) }
        let outcome = try await runCapturingStandardOutput(arguments: ["--voices"], into: output)
        guard outcome.succeeded else {
            throw RenderFailure(
                message: "'\(configuration.espeakPath) --voices' failed (status \(outcome.status)\(outcome.timedOut ? ", timed out" : ""))")
        }
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        let parsed = EspeakVoices.parse(text, overrides: configuration.espeakVoices)
        guard !parsed.languages.isEmpty else { throw RenderFailure(message: "espeak-ng listed no voices") }
        voices.withLock { $0 = parsed }
    }

    private func runCapturingStandardOutput(arguments: [String], into file: URL) async throws -> ProcessOutcome {
        guard FileManager.default.createFile(atPath: file.path, contents: nil) else { throw RenderFailure(message: "cannot write \(file.path)") }
        return try await ProcessRunner.run(
            executable: configuration.espeakPath, arguments: arguments,
            timeout: .milliseconds(Int64(configuration.renderTimeoutSeconds * 1000)),
            standardErrorFile: nil, standardOutputFile: file, registry: processes)
    }

    /// The render of `request`, or nil when espeak-ng has no voice for its language (or is unavailable).
    func plan(_ request: SpeakRequest) -> RenderPlan? {
        guard let voice = voices.withLock({ $0?.voice(for: request.lang) }) else { return nil }
        return RenderPlan(request: request, voice: voice)
    }

    /// The cache name of a plan.
    func hash(_ plan: RenderPlan) -> String { context.crypto.sha256Hex(plan.cacheKey) }

    /// The cached audio of `plan`, rendered first when it is not cached yet.
    /// - Throws: ``RenderFailure`` when espeak-ng fails, times out or writes no audio.
    func render(_ plan: RenderPlan) async throws -> CachedAudio {
        let hash = hash(plan)
        let cache = self.cache
        return try await cache.obtain(hash) { [self] in
            await slots.acquire()
            do {
                try await runEspeak(plan, hash: hash)
                await slots.release()
            } catch {
                await slots.release()
                throw error
            }
        }
    }

    private func runEspeak(_ plan: RenderPlan, hash: String) async throws {
        let temporary = cache.temporaryURL(hash, suffix: "wav")
        let errors = cache.temporaryURL(hash, suffix: "err")
        defer { try? FileManager.default.removeItem(at: temporary) }
        renders.increment()
        let outcome: ProcessOutcome
        do {
            outcome = try await ProcessRunner.run(
                executable: configuration.espeakPath, arguments: plan.arguments(output: temporary.path),
                timeout: .milliseconds(Int64(configuration.renderTimeoutSeconds * 1000)), standardErrorFile: errors,
                standardOutputFile: nil, registry: processes)
        } catch {
            renderFailures.increment()
            throw RenderFailure(message: "espeak-ng could not be started: \(error)")
        }
        renderTimer.record(outcome.elapsed)
        guard outcome.succeeded else {
            renderFailures.increment()
            let why =
                outcome.timedOut
                ? "timed out after \(configuration.renderTimeoutSeconds) s"
                : outcome.signaled ? "killed by signal \(outcome.status)" : "exited with status \(outcome.status)"
            context.logger.warning("espeak-ng render failed", ["why": why, "stderr": outcome.standardError, "voice": plan.voice])
            throw RenderFailure(message: "espeak-ng \(why)")
        }
        guard let info = WAVInfo.read(temporary), info.dataBytes > 0 else {
            renderFailures.increment()
            throw RenderFailure(message: "espeak-ng wrote no audio")
        }
        guard rename(temporary.path, cache.url(hash).path) == 0 else {
            renderFailures.increment()
            throw RenderFailure(message: "cannot move the rendered file into the cache (errno \(errno))")
        }
        context.logger.info(
            "rendered speech",
            [
                "hash": hash, "voice": plan.voice, "render_ms": String(outcome.elapsed.wholeMilliseconds),
                "audio_ms": String(info.duration.wholeMilliseconds),
            ])
    }

    /// Kills renders still running (engine shutdown).
    func shutdown() { processes.killAll() }
}
