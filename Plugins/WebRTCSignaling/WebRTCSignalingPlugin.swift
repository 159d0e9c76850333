// WebRTCSignaling: scaffolding; the feature is being written in this folder.

import PluginAPI

@_cdecl("onionrp_plugin_entry")
public func onionrpPluginEntry(_ host: UInt32, _ built: UnsafeMutablePointer<UInt32>?) -> UnsafeMutableRawPointer? {
    PluginExport.entry(WebRTCSignalingPlugin.self, hostVersion: host, builtVersion: built)
}

final class WebRTCSignalingPlugin: OverlayPlugin {
    static let name = "webrtc-signaling"
    static let version = "0.0.1"

    init(configuration: EmptyConfiguration, context: PluginContext) throws {}

    func setUp(_ registrar: PluginRegistrar) async throws {}
}
