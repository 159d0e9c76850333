// ModeratorKeys: the plugin's section of overlay.yaml.

import PluginAPI

/// `plugins[name=moderator-keys].config`.
struct ModeratorKeysConfiguration: DefaultedConfiguration {
    /// Longest accepted `streamer_id` and `label`.
    var maxFieldLength = 64
    /// Most unconsumed keys at once; generating more answers 409.
    var maxOutstandingKeys = 100
    /// Failed consumes allowed per client address within `failure_window_seconds`; past it: 429.
    var maxFailures = 10
    /// Length of the failure window.
    var failureWindowSeconds = 600

    init() {}

    func validate() throws {
        for (key, value) in [
            ("max_field_length", maxFieldLength), ("max_outstanding_keys", maxOutstandingKeys),
            ("max_failures", maxFailures), ("failure_window_seconds", failureWindowSeconds),
        ] where value <= 0 {
            throw ConfigProblem(key, "must be positive")
        }
    }
}
