// Media: scaffolding; the feature is being written in this folder.

import MultipartKit
import PluginAPI

@_cdecl("onionrp_plugin_entry")
public func onionrpPluginEntry(_ host: UInt32, _ built: UnsafeMutablePointer<UInt32>?) -> UnsafeMutableRawPointer? {
    PluginExport.entry(MediaPlugin.self, hostVersion: host, builtVersion: built)
}

final class MediaPlugin: OverlayPlugin {
    static let name = "media"
    static let version = "0.0.1"

    init(configuration: EmptyConfiguration, context: PluginContext) throws {}

    func setUp(_ registrar: PluginRegistrar) async throws {}
}
