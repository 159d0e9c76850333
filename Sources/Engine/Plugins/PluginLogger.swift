// Plugins: the logger adapter handed to each plugin (swift-log underneath, the plugin's name attached).

import Logging
@_spi(Engine) import PluginAPI

struct SwiftLogPluginLogger: PluginLogger {
    let logger: Logger

    init(base: Logger, plugin: String) {
        var logger = base
        logger[metadataKey: "plugin"] = "\(plugin)"
        self.logger = logger
    }

    func log(_ level: LogLevel, _ message: String, metadata: [String: String]) {
        let mapped: Logger.Level
        switch level {
        case .trace: mapped = .trace
        case .debug: mapped = .debug
        case .info: mapped = .info
        case .notice: mapped = .notice
        case .warning: mapped = .warning
        case .error: mapped = .error
        case .critical: mapped = .critical
        }
        logger.log(level: mapped, "\(message)", metadata: metadata.mapValues { .string($0) })
    }
}
